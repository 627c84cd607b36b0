"""PromptStats: hand-computed updates, the Rasch fit, checkpoints and rank synchronisation."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp

from rlobj.data.tasks import AdditionTask
from rlobj.ops.errors import RlobjInputError
from rlobj.train.data_loops import DataLoop
from rlobj.train.data_strategies import DifficultyCurriculum
from rlobj.train.prompt_stats import PromptStats


def test_updates_by_hand():
    stats = PromptStats(window=3, threshold=1.0)
    records = [{"prompt_id": "a", "domain": "x"}] * 3 + [{"prompt_id": "b"}] * 2 + [{"prompt": "no id"}]
    updates = stats.batch_updates(records, [1.0, 0.0, 1.0, 0.0, 0.0, 1.0], step=4)
    assert updates == [("a", "x", 0.0, [1.0, 0.0, 1.0], 4), ("b", "default", 0.0, [0.0, 0.0], 4)]
    stats.apply(updates)
    stats.apply([("a", "x", 0.5, [1.0, 1.0], 5)])
    assert stats.attempts("a") == 5 and stats.solve_rate("a") == pytest.approx(4 / 5)
    assert stats.entries["a"].recent == [1.0, 1.0, 1.0]  # the last 3 of 1, 0, 1, 1, 1
    assert stats.recent_rate("a") == 1.0
    assert stats.entries["a"].cells == [[4, 0.0, 2, 3], [5, 0.5, 2, 2]]
    assert stats.solve_rate("b") == 0.0 and stats.solve_rate("zzz") is None and stats.last_step("a") == 5
    assert stats.domain_step_rates("x") == {4: pytest.approx(2 / 3), 5: 1.0}


def test_recent_window_keeps_the_last_rewards():
    stats = PromptStats(window=3)
    stats.apply([("a", "d", 0.0, [1.0, 0.0, 1.0], 0), ("a", "d", 0.0, [0.0, 0.0], 1)])
    assert stats.entries["a"].recent == [1.0, 0.0, 0.0]
    assert stats.recent_rate("a") == pytest.approx(1 / 3)
    assert stats.solve_rate("a") == pytest.approx(2 / 5)


def test_rasch_maximum_likelihood_of_one_prompt_is_minus_logit_of_its_rate():
    stats = PromptStats()
    stats.apply([("p", "d", 0.0, [1.0, 1.0, 1.0, 0.0], 0)])
    fit = stats.rasch_fit(prior_std=None)
    assert fit.ability == 0.0
    assert fit.difficulty["p"] == pytest.approx(-math.log(3), abs=1e-5)
    assert fit.hint_slope == pytest.approx(4.0)  # no hints observed: the prior's mean
    assert fit.success_probability("p") == pytest.approx(0.75, abs=1e-5)


def test_rasch_fit_recovers_known_difficulties_and_hint_slope():
    true_b, slope, n = {"easy": -1.0, "mid": 0.0, "hard": 1.5}, 3.0, 2000
    stats = PromptStats()
    updates = []
    for name, b in true_b.items():
        for step, hint in enumerate((0.0, 0.25, 0.5)):
            p = 1 / (1 + math.exp(-(-b + slope * hint)))
            wins = round(n * p)
            updates.append((name, "d", hint, [1.0] * wins + [0.0] * (n - wins), step))
    stats.apply(updates)
    fit = stats.rasch_fit(prior_std=None, hint_prior=(1.0, 1e3))
    for name, b in true_b.items():
        assert fit.difficulty[name] == pytest.approx(b, abs=0.02)
    assert fit.hint_slope == pytest.approx(slope, abs=0.05)
    by_domain = stats.rasch_fit(item="domain", prior_std=None)
    assert set(by_domain.difficulty) == {"d"}


def test_ability_blocks_track_improvement():
    stats = PromptStats()
    # the same prompts solved at rate 0.2 in steps 0-1 and 0.8 in steps 2-3
    for step in range(4):
        rate = 0.2 if step < 2 else 0.8
        wins = round(500 * rate)
        stats.apply([(f"p{i}", "d", 0.0, [1.0] * wins + [0.0] * (500 - wins), step) for i in range(3)])
    fit = stats.rasch_fit(ability_window=2, prior_std=None)
    assert fit.abilities[0] == 0.0
    assert fit.ability == pytest.approx(math.log(4) - math.log(0.25), abs=1e-3)  # logit(0.8) - logit(0.2)


def test_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    stats = PromptStats(window=2)
    stats.apply([("a", "x", 0.25, [1.0, 0.0, 1.0], 3), ("b", "y", 0.0, [0.0], 4)])
    torch.save({"stats": stats.state_dict()}, tmp_path / "s.pt")
    restored = PromptStats(window=2)
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True)["stats"])
    assert restored.state_dict() == stats.state_dict()
    assert restored.rasch_fit().difficulty == pytest.approx(stats.rasch_fit().difficulty)
    with pytest.raises(RlobjInputError, match="window"):
        PromptStats(window=5).load_state_dict(stats.state_dict())


def test_bad_input_is_named():
    with pytest.raises(RlobjInputError, match="window"):
        PromptStats(window=0)
    with pytest.raises(RlobjInputError, match="not finite"):
        PromptStats().batch_updates([{"prompt_id": "a"}], [float("nan")], 0)
    with pytest.raises(RlobjInputError, match="item"):
        PromptStats().rasch_fit(item="user")
    with pytest.raises(RlobjInputError, match="ability_window"):
        PromptStats().rasch_fit(ability_window=0)


def _ddp_worker(rank: int, world: int, init: str, out: str):
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        loop = DataLoop(DifficultyCurriculum(revisit_fraction=0.5), AdditionTask(seed=1), per_rank=2)
        mine = loop.records(0, rank, world)
        # each rank sees its own rows; rank 0 solves half of its first prompt, rank 1 none of its own
        rewards = {0: [[1.0, 0.0], [1.0, 1.0]], 1: [[0.0, 0.0], [1.0, 1.0]]}[rank]
        rows = [r for r in mine for _ in range(2)]
        loop.observe(0, rows, [x for pair in rewards for x in pair])
        chosen = loop.records(1, rank, world)
        everything = [None] * world
        torch.distributed.all_gather_object(everything, (loop.stats.state_dict(), loop.last_selection,
                                                         [r["prompt_id"] for r in chosen]))
        if rank == 0:
            torch.save(everything, out)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_hold_the_same_statistics_and_pick_the_same_prompts(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    out = str(tmp_path / "out.pt")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_ddp_worker, args=(2, init, out), nprocs=2, join=True)
    (stats0, chosen0, mine0), (stats1, chosen1, mine1) = torch.load(out, weights_only=False)
    assert stats0 == stats1 and sorted(stats0["entries"]) == ["0", "1", "2", "3"]
    assert chosen0 == chosen1
    # step 0: rank 0 had prompts 0, 1 (rates 0.5, 1.0), rank 1 prompts 2, 3 (rates 0.0, 1.0);
    # 2 revisit slots: medium 0 first, then hard 2; then fresh 4, 5 (the stream's step-1 records)
    assert chosen0 == ["0", "2", "4", "5"]
    assert mine0 == ["0", "2"] and mine1 == ["4", "5"]
