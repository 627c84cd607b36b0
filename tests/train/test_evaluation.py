"""Evaluation of a module's policy (rlobj/train/evaluation.py): pass@k / maj@k from n samples per record,
the per-record samples it reports, and the mean reward rate."""

from rlobj.train.evaluation import evaluate_records

from ._helpers import tiny_module


def test_evaluate_counts_pass_at_k():
    module = tiny_module(evaluation=dict(samples=4, k=[1, 4]), verifier=lambda c, s: 1.0)
    result = module.evaluate([{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "answer": "4"}])
    assert result["pass@1"] == 1.0 and result["pass@4"] == 1.0
    module = tiny_module(evaluation=dict(samples=4, k=[1, 4]), verifier=lambda c, s: 0.0)
    assert module.evaluate([{"prompt": "1+1=", "answer": "2"}])["pass@4"] == 0.0


def test_counts_per_record_and_the_samples_it_reports():
    module = tiny_module(evaluation=dict(samples=4, k=[1, 2, 4]), verifier=lambda c, s: float(s["prompt"] == "1+1="))
    records = [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "answer": "4"}]
    samples = []
    result = evaluate_records(module, records, samples)
    # record 0: 4 of 4 correct (pass@k = 1); record 1: 0 of 4 (pass@k = 0): every mean is 1/2
    assert result["pass@1"] == result["pass@2"] == result["pass@4"] == 0.5
    assert result["mean_reward_rate"] == 0.5
    assert set(result) == {"pass@1", "pass@2", "pass@4", "maj@2", "maj@4", "mean_reward_rate"}  # no maj@1
    assert [(s["prompt"], s["n"], s["c"]) for s in samples] == [("1+1=", 4, 4), ("2+2=", 4, 0)]
    assert all(len(s["responses"]) == 4 and len(s["correct"]) == 4 for s in samples)


def test_no_records_gives_zeros():
    module = tiny_module(evaluation=dict(samples=2, k=[1]), verifier=lambda c, s: 1.0)
    assert module.evaluate([]) == {"pass@1": 0.0, "mean_reward_rate": 0.0}
