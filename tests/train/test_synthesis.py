"""WeaknessSynthesis (SwS): failure cases become new, validated, deduplicated problems with provenance."""

import pytest
import torch

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.train.data_loops import DataLoop
from rlobj.train.synthesis import SimilarAddition, WeaknessSynthesis


class Sums(TaskSource):
    """Record i: ``i+i=`` (one digit for i < 10)."""

    def record(self, index):
        return {"prompt": f"{index}+{index}=", "answer": str(2 * index), "completion": str(2 * index)}


def _observe(loop, step, chosen, solved):
    rows = [r for r in chosen for _ in range(4)]
    loop.observe(step, rows, [float(r["prompt_id"] in solved) for r in rows])


def test_failed_prompts_become_new_problems_with_provenance():
    strategy = WeaknessSynthesis(per_weakness=2, synth_fraction=0.5, fail_rate=0.0, min_attempts=4, seed=1)
    loop = DataLoop(strategy, Sums(), per_rank=4)
    chosen = loop.records(0)
    assert [r["prompt_id"] for r in chosen] == ["0", "1", "2", "3"]
    _observe(loop, 0, chosen, solved={"0", "2"})  # prompts 1 and 3 always fail
    assert strategy.metrics() == {"sws/synthesized": 4.0, "sws/rejected_invalid": 0.0,
                                  "sws/rejected_duplicate": 0.0, "sws/queued": 4.0}
    assert [entry["parent"] for entry in strategy.log] == ["1", "1", "3", "3"]
    chosen = loop.records(1)
    # two synthesised problems (oldest first: the children of prompt 1), then the step's first
    # two fresh prompts (4, 5; the stream's 6 and 7 are skipped)
    assert [r["prompt_id"] for r in chosen] == ["syn0", "syn1", "4", "5"]
    for record in chosen[:2]:
        assert record["provenance"] == {"parent": "1", "step": 0, "synthesizer": "SimilarAddition"}
        a, b = record["prompt"][:-1].split("+")
        assert len(a) == len(b) == 1 and record["answer"] == str(int(a) + int(b))
    # a weakness is synthesised from once; the queue keeps the rest
    _observe(loop, 1, chosen, solved=set(chosen_id["prompt_id"] for chosen_id in chosen))
    assert strategy.metrics()["sws/synthesized"] == 0.0 and len(strategy.queue) == 2


def test_invalid_and_duplicate_problems_are_rejected():
    def synthesize(record, count, seed):
        return [{"prompt": "5+5=", "answer": "10"}, {"prompt": " 5+5= ", "answer": "10"},
                {"prompt": "1+1=", "answer": "3"}, {"prompt": "", "answer": "0"}, "text"]

    class Checked:
        def __call__(self, record, count, seed):
            return synthesize(record, count, seed)

        validate = staticmethod(SimilarAddition().validate)

    strategy = WeaknessSynthesis(synthesizer=Checked(), min_attempts=1)
    loop = DataLoop(strategy, Sums(), per_rank=2)
    chosen = loop.records(0)
    _observe(loop, 0, chosen, solved=set())
    # parent 0 gives "5+5=" (valid, new); its copy " 5+5= " is a duplicate; "1+1=3" fails validation;
    # the empty prompt and "text" are invalid; parent 1's "5+5=" is a duplicate too
    assert [e["prompt"] for e in strategy.log] == ["5+5="]
    assert strategy.metrics() == {"sws/synthesized": 1.0, "sws/rejected_invalid": 6.0,
                                  "sws/rejected_duplicate": 3.0, "sws/queued": 1.0}


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    strategy = WeaknessSynthesis(min_attempts=1)
    loop = DataLoop(strategy, Sums(), per_rank=2)
    chosen = loop.records(0)
    _observe(loop, 0, chosen, solved=set())
    torch.save(loop.state_dict(), tmp_path / "loop.pt")
    restored = DataLoop(WeaknessSynthesis(min_attempts=1), Sums(), per_rank=2)
    restored.load_state_dict(torch.load(tmp_path / "loop.pt", weights_only=True))
    assert restored.state_dict() == loop.state_dict()
    assert [r["prompt_id"] for r in restored.records(1)] == [r["prompt_id"] for r in loop.records(1)]


def test_bad_settings_are_named():
    with pytest.raises(RlobjInputError, match="synthesizer"):
        WeaknessSynthesis(synthesizer="no.such.thing")
    with pytest.raises(RlobjInputError, match="per_weakness"):
        WeaknessSynthesis(per_weakness=0)
    with pytest.raises(RlobjInputError, match="fail_rate"):
        WeaknessSynthesis(fail_rate=2.0)
