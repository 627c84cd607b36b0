"""Each data strategy on a synthetic prompt stream with known difficulties does what its formula says.

No model: prompt ``i`` of the stream is solved by a fixed fraction of its rollouts (its known
difficulty), and the rewards are fed to the loop as the trainer would after scoring.
"""

import math

import pytest

from rlobj.data.tasks import AdditionTask, TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.train.data_loops import DataLoop, DataStrategy, FixedStream
from rlobj.train.data_strategies import (
    DifficultyCurriculum,
    DomainMixture,
    HardFocus,
    HintScaffold,
    allocate,
    hint_fraction,
    mixture_weights,
)
from rlobj.train.datamodule import PromptStream
from rlobj.train.prompt_stats import PromptStats

GROUP = 4


class Known(TaskSource):
    """Record ``i``: prompt ``"q<i>"``, solution ``"1234"``, solved by ``RATES[i % len(RATES)]`` of its rollouts."""

    RATES = (1.0, 0.5, 0.25, 0.75, 0.0, 0.5)

    def record(self, index):
        return {"prompt": f"q{index}", "answer": "1234", "completion": "1234", "domain": f"d{index % 2}"}


def _rewards(record: dict, rate: float | None = None) -> list[float]:
    index = int(str(record.get("parent", record["prompt_id"])).split(":")[-1].split("/")[0])
    wins = round(GROUP * (Known.RATES[index % len(Known.RATES)] if rate is None else rate))
    return [1.0] * wins + [0.0] * (GROUP - wins)


def _run_step(loop: DataLoop, step: int) -> list[str]:
    chosen = loop.records(step)
    rows = [r for r in chosen for _ in range(GROUP)]
    loop.observe(step, rows, [x for r in chosen for x in _rewards(r)])
    return [r["prompt_id"] for r in chosen]


def test_fixed_stream_is_the_plain_stream():
    loop = DataLoop(FixedStream(), AdditionTask(seed=1), per_rank=3)
    plain = PromptStream(AdditionTask(seed=1), per_rank=3, rank=1, world=2)
    for step in range(3):
        ours = loop.records(step, rank=1, world=2)
        assert [r["prompt"] for r in ours] == [r["prompt"] for r in plain.batch(step)["records"]]
        assert [r["prompt_id"] for r in ours] == [str((step * 2 + 1) * 3 + i) for i in range(3)]


def test_curriculum_revisits_medium_then_hard_and_retires_easy():
    loop = DataLoop(DifficultyCurriculum(revisit_fraction=0.5), Known(), per_rank=6)
    assert _run_step(loop, 0) == ["0", "1", "2", "3", "4", "5"]
    # rates 1.0 easy, 0.5 medium, 0.25 hard, 0.75 easy, 0.0 hard, 0.5 medium; 3 revisit slots:
    # medium by |r - 0.5| then id (1, 5), then hard by highest rate (2, then 4 does not fit)
    assert _run_step(loop, 1) == ["1", "5", "2", "6", "7", "8"]
    assert loop.strategy.metrics() == {"curriculum_hard": 1.0, "curriculum_medium": 2.0, "curriculum_restructured": 0.0}
    assert [loop.strategy.band(r) for r in (0.3, 0.31, 0.7, 0.71)] == ["hard", "medium", "medium", "easy"]


def test_curriculum_restructuring_hook_rewrites_hard_and_medium_prompts():
    calls = []

    def rewrite(record, kind):
        calls.append((record["prompt_id"], kind))
        return {**record, "prompt": f"{kind}:{record['prompt']}"} if kind == "simplify" else None

    loop = DataLoop(DifficultyCurriculum(revisit_fraction=0.5, restructure=rewrite), Known(), per_rank=6)
    _run_step(loop, 0)
    chosen = loop.records(1)
    assert calls == [("1", "diversify"), ("5", "diversify"), ("2", "simplify")]
    assert chosen[2] == {**Known().record(2), "prompt": "simplify:q2", "prompt_id": "2/simplify", "parent": "2"}
    assert chosen[0]["prompt"] == "q1" and chosen[0]["prompt_id"] == "1"
    with pytest.raises(RlobjInputError, match="restructure"):
        DifficultyCurriculum(restructure=42)


def test_curriculum_restructure_returning_a_non_record_is_an_error():
    bad = DataLoop(DifficultyCurriculum(revisit_fraction=1.0, restructure=lambda r, k: "text"), Known(), 6)
    _run_step(bad, 0)
    with pytest.raises(RlobjInputError, match="restructure"):
        bad.records(1)


def test_hint_fraction_formula_by_hand():
    # h = (logit(p*) - theta + b) / alpha, clipped to [0, max]
    assert hint_fraction(0.5, 0.0, 2.0, 4.0) == pytest.approx(0.5)
    assert hint_fraction(0.75, 1.0, 0.0, 2.0) == pytest.approx((math.log(3) - 1.0) / 2.0)
    assert hint_fraction(0.5, 3.0, 0.0, 4.0) == 0.0
    assert hint_fraction(0.5, 0.0, 9.0, 4.0, max_hint=0.75) == 0.75


def test_hint_scaffold_cuts_the_solution_where_the_fit_predicts_the_target():
    stats = PromptStats()
    # domain d0 solved 1 time in 4 with no hint: the ML difficulty is b = -logit(0.25) = log 3
    stats.apply([("x", "d0", 0.0, [1.0, 0.0, 0.0, 0.0], 0)])
    strategy = HintScaffold(target=0.5, item="domain", prior_std=None, hint_prior=(4.0, 1e-6))
    loop = DataLoop(strategy, Known(), per_rank=2, stats=stats)
    chosen = loop.records(0)
    h = math.log(3) / 4.0  # (logit(0.5) - 0 + log 3) / 4 = 0.2747
    assert chosen[0]["hint_fraction"] == pytest.approx(h, abs=1e-4)
    assert chosen[0]["prompt"] == "1 q0"  # round(4 * 0.2747) = 1 character of "1234"
    # d1 was never tried: it takes the mean fitted difficulty (log 3 too)
    assert chosen[1]["hint_fraction"] == pytest.approx(h, abs=1e-4)
    levels = DataLoop(HintScaffold(item="domain", prior_std=None, hint_prior=(4.0, 1e-6), levels=4), Known(), 2, stats)
    assert levels.records(0)[0]["hint_fraction"] == 0.25
    # the hinted attempts are recorded with their hint, and the next fit sees them
    rows = [chosen[0]] * 4
    loop.observe(0, rows, [1.0, 1.0, 0.0, 0.0])
    assert stats.entries["0"].cells == [[0, pytest.approx(h, abs=1e-4), 2, 4]]


def test_hint_scaffold_needs_a_solution_and_a_template():
    with pytest.raises(RlobjInputError, match="template"):
        HintScaffold(template="{prompt}")
    with pytest.raises(RlobjInputError, match="target"):
        HintScaffold(target=1.0)
    loop = DataLoop(HintScaffold(solution_key="proof"), Known(), 2)
    with pytest.raises(RlobjInputError, match="proof"):
        loop.records(0)


def test_hard_focus_serves_the_hardest_prompts_and_retires_solved_ones():
    loop = DataLoop(HardFocus(hard_fraction=0.5, pool_size=3, retire_at=0.75), Known(), per_rank=6)
    _run_step(loop, 0)
    # rates 1.0, 0.5, 0.25, 0.75, 0.0, 0.5: retired 0 and 3 (>= 0.75); hardest 3: 4 (0.0), 2 (0.25), 1 (0.5)
    assert loop.records(1)[:3] == [{**Known().record(i), "prompt_id": str(i)} for i in (4, 2, 1)]
    assert [r["prompt_id"] for r in loop.records(1)] == ["4", "2", "1", "6", "7", "8"]
    assert "5" not in loop.strategy.pool and "0" not in loop.strategy.pool  # beyond pool_size / retired
    assert loop.strategy.metrics() == {"hard_revisits": 3.0, "hard_pool_solve_rate": pytest.approx(0.25)}


def test_mixture_weights_and_allocation_by_hand():
    w = mixture_weights({"a": 0.5, "b": 0.0}, temperature=0.5, floor=0.2)
    soft = math.e / (math.e + 1)
    assert w == {"a": pytest.approx(0.8 * soft + 0.1), "b": pytest.approx(0.8 * (1 - soft) + 0.1)}
    assert allocate(w, 4) == {"a": 3, "b": 1}  # exact 2.74 / 1.26: floors 2, 1, the larger remainder to a
    assert allocate({"a": 1.0, "b": 1.0, "c": 1.0}, 4) == {"a": 2, "b": 1, "c": 1}


def test_domain_mixture_moves_weight_to_the_improving_domain():
    sources = {"a": Known(), "b": Known()}
    strategy = DomainMixture(sources, window=2, temperature=0.5, floor=0.2)
    loop = DataLoop(strategy, AdditionTask(), per_rank=4)
    progress = {0: {"a": 0.0, "b": 0.5}, 1: {"a": 0.5, "b": 0.5}}
    for step in (0, 1):
        chosen = loop.records(step)
        assert [r["domain"] for r in chosen] == ["a", "a", "b", "b"]  # uniform until a slope exists
        rows = [r for r in chosen for _ in range(GROUP)]
        loop.observe(step, rows, [x for r in chosen for x in _rewards(r, progress[step][r["domain"]])])
    # slopes: a 0.0 -> 0.5 over one step = 0.5, b flat = 0: the weights of the hand-computed test above
    assert strategy.progress == {"a": pytest.approx(0.5), "b": pytest.approx(0.0)}
    chosen = loop.records(2)
    assert [r["prompt_id"] for r in chosen] == ["a:4", "a:5", "a:6", "b:4"]
    restored = DomainMixture(sources, window=2, temperature=0.5, floor=0.2)
    restored.load_state_dict(strategy.state_dict())
    assert restored.state_dict() == strategy.state_dict()


def test_loop_checks_what_a_strategy_returns():
    class Short(DataStrategy):
        def select(self, selection):
            return selection.fresh[:1]

    with pytest.raises(RlobjInputError, match="list of 2 records"):
        DataLoop(Short(), Known(), 2).records(0)
    with pytest.raises(RlobjInputError, match="DataStrategy"):
        DataLoop("curriculum", Known(), 2)
    with pytest.raises(RlobjInputError, match="medium_lower"):
        DifficultyCurriculum(medium_lower=0.8, medium_upper=0.7)
    with pytest.raises(RlobjInputError, match="sources"):
        DomainMixture({"a": "not a source"})
    with pytest.raises(RlobjInputError, match="domains"):
        DomainMixture({"a": Known()}).load_state_dict({"weights": {"z": 1.0}})
