import functools
import math

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import sequence_logprobs
from rlobj.train import ExactAnswer, RLModule, VerifierScorer, score_completions
from rlobj.train.forward import token_logprobs

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module


def test_forward_matches_sequence_logprobs_and_entropy():
    module = tiny_module()
    rollout = synthetic_rollout(module)
    args = (rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask)
    with torch.no_grad():
        logp, entropy = token_logprobs(module.policy, *args, temperature=0.7, with_entropy=True)
        reference = sequence_logprobs(module.policy, *args, temperature=0.7)
    assert torch.allclose(logp, reference, atol=1e-6)
    # entropy of one row computed directly from an unpadded forward
    row = 5
    prompt = rollout.prompt_ids[row][rollout.prompt_mask[row]]
    response = rollout.response_ids[row][rollout.response_mask[row]]
    with torch.no_grad():
        logits = module.policy(torch.cat([prompt, response])[None]).logits[0].float() / 0.7
    dist = torch.log_softmax(logits[len(prompt) - 1:-1], -1)
    direct = -(dist.exp() * dist).sum(-1)
    assert torch.allclose(entropy[row][rollout.response_mask[row]], direct, atol=1e-5)
    assert bool((entropy[~rollout.response_mask] == 0).all())


def _weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean"])
def test_micro_batches_give_the_same_update_as_the_whole_batch(aggregation):
    objective = ["group_zscore", {"clip_ratio": {}}, aggregation]
    results = []
    for micro in (None, 3, 5):
        module = tiny_module(objective=objective, update=dict(micro_batch_size=micro))
        rollout = synthetic_rollout(module)
        metrics = module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        results.append((_weights(module), metrics))
    base_weights, base_metrics = results[0]
    for weights, metrics in results[1:]:
        assert torch.allclose(weights, base_weights, atol=1e-6, rtol=0)
        assert metrics["reward/mean"] == base_metrics["reward/mean"]
    assert (base_weights - _weights(tiny_module(objective=objective))).abs().max() > 1e-3


def test_update_metrics_and_several_epochs_and_mini_batches():
    module = tiny_module(objective="grpo", update=dict(ppo_epochs=2, mini_batch_size=8, micro_batch_size=4, shuffle_minibatches=True, grad_clip=1.0))
    rollout = synthetic_rollout(module)
    metrics = module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
    assert module.rl_updates == 4  # 2 epochs x 2 mini-batches
    for key in ("loss", "loss/policy", "clip_frac", "reward/mean", "reward/std", "pass_rate",
                "response/length_mean", "entropy", "kl/old_k3", "mismatch/logp_abs", "grad_norm",
                "throughput/update_tokens_per_s"):
        assert key in metrics and math.isfinite(metrics[key]), key
    # the rollout's log-probs came from the same weights: no engine/trainer mismatch
    assert metrics["mismatch/logp_abs"] < 1e-5
    assert metrics["response/length_mean"] == pytest.approx(float(rollout.response_mask.sum(-1).float().mean()))


def test_reference_logprobs_only_when_read():
    module = tiny_module(objective="grpo")
    module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert module.reference is None
    module = tiny_module(objective=["group_zscore", "clip_ratio", "token_mean", {"k3_kl": {"beta": 0.1}}])
    metrics = module.update_on_rollout(synthetic_rollout(module), synthetic_rewards(16))
    assert module.reference is not None and "kl/ref_k3" in metrics
    assert "reference" not in dict(module.named_children())


def test_score_completions_survives_broken_verifiers():
    def broken(completion, sample):
        if completion == "boom":
            raise RuntimeError("verifier crashed")
        if completion == "nan":
            return float("nan")
        return 1.0

    rewards, metrics = score_completions(broken, ["ok", "boom", "nan", "ok"], [{}] * 4)
    assert rewards == [1.0, 0.0, 0.0, 1.0]
    assert metrics["verifier/failed_fraction"] == 0.5
    assert score_completions(ExactAnswer(), [" 12 ", "13"], [{"answer": "12"}] * 2)[0] == [1.0, 0.0]


@pytest.mark.parametrize("kwargs, key", [
    ({"objective": ["group_zscore", {"clip_ratoi": {}}]}, "objective"),
    ({"objective": [{"clip_ratio": {"eps_hgh": 0.2}}]}, "objective"),
    ({"warmup": {"objective": "nope"}}, "warmup.objective"),
    ({"policy": {"dtype": "float8"}}, "policy.dtype"),
    ({"rollout": {"engine": "sglang"}}, "rollout.engine"),
    ({"rollout": {"group_size": 0}}, "rollout.group_size"),
    ({"rollout": {"group_sise": 4}}, "rollout: unknown key"),
    ({"update": {"micro_batch_size": 0}}, "update.micro_batch_size"),
    ({"evaluation": {"k": [1, 16], "samples": 8}}, "evaluation.k"),
    ({"optimizer": "adamw"}, "optimizer"),
    ({"warmup": 600}, "warmup: expected a mapping"),
])
def test_bad_arguments_fail_before_any_model_is_built(kwargs, key):
    with pytest.raises(RlobjInputError, match=key):
        RLModule(**kwargs)


def test_lr_schedule_is_stepped_once_per_rl_update_and_not_by_warmup():
    from rlobj.train import WarmupSchedule

    schedule = functools.partial(WarmupSchedule, warmup_steps=2, shape="cosine", total_steps=12)
    module = tiny_module(optimizer=functools.partial(torch.optim.SGD, lr=1.0), lr_scheduler=schedule,
                         warmup={"lr": 0.25})
    seen = []
    for update in range(21):
        seen.append(round(module.rl_lr()[0], 6))
        if update == 3:  # a warm-up (SFT) step in between leaves the schedule where it was
            module.sft_update([{"prompt": "1+1=", "completion": "2"}])
            assert module._optimizer().param_groups[0]["lr"] == 0.25
        module._next_step()
    assert [seen[u] for u in (0, 1, 2, 7, 12, 20)] == [0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    with pytest.raises(RlobjInputError, match="total_steps"):
        WarmupSchedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), shape="cosine")


def test_generated_task_adapter_and_sources():
    import random

    from rlobj.data import ArithmeticTask
    from rlobj.train import AdditionTask, GeneratedTask, JsonlTask

    source = GeneratedTask(ArithmeticTask(split="test", test_fraction=0.5), seed=3)
    first = source.records(0, 5)
    assert first == source.records(0, 5) and source.record(2) == first[2]
    assert all(r["completion"] == r["answer"] and r["prompt"].endswith("=") for r in first)
    row = AdditionTask(seed=4).record(7)
    a, b = row["prompt"][:-1].split("+")
    assert int(a) + int(b) == int(row["answer"]) and row == AdditionTask(seed=4).record(7)
    with pytest.raises(TypeError, match="GeneratedTask.task"):
        GeneratedTask(object())
    with pytest.raises(FileNotFoundError, match="JsonlTask.path"):
        JsonlTask("/nonexistent.jsonl")
    assert random.Random(0).random() == random.Random(0).random()


def test_jsonl_task_order_is_seeded_and_covers_every_line(tmp_path):
    import json

    from rlobj.train import JsonlTask

    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(5)))
    source = JsonlTask(str(path), prompt_template="Q: {prompt}\nA:", seed=1)
    first_pass = [source.record(i)["answer"] for i in range(5)]
    assert sorted(first_pass) == ["0", "1", "2", "3", "4"]
    assert source.record(0)["prompt"].startswith("Q: q")
    assert [source.record(i)["answer"] for i in range(5)] == first_pass


def test_non_finite_loss_stops_training():
    module = tiny_module()
    with pytest.raises(RlobjInputError, match="non-finite"):
        module._backward(torch.tensor(float("nan"), requires_grad=True))


@pytest.mark.slow
def test_rl_update_with_verifier_pool_survives_a_crashing_verifier():
    from rlobj.verifiers.match import ExactMatch

    module = tiny_module(scorer=VerifierScorer(ExactMatch(), workers=1, timeout=5.0), rollout=dict(max_new_tokens=3))
    try:
        records = [{"prompt": "1+2=", "answer": "3"}, {"prompt": "4+4=", "answer": "8"}]
        metrics = module.rl_update(records, step=0)
        assert "verifier/failed_fraction" in metrics and metrics["verifier/failed_fraction"] == 0.0
        rewards, info = score_completions(_Raises(), ["a", "b"], [{}, {}], module._ensure_pool())
        assert rewards == [0.0, 0.0] and info["verifier/errors"] == 2.0
    finally:
        module.teardown("fit")


class _Raises:
    def __call__(self, completion, sample):
        raise RuntimeError("broken verifier")


def test_entropy_metric_is_not_counted_twice_when_a_term_reports_it():
    """entropy_bonus reports `entropy`; the trainer must not add its own copy on top."""
    values = {}
    for objective in ("grpo", ["group_zscore", {"clip_ratio": {}}, {"entropy_bonus": {"coef": 0.0}},
                               "seq_mean_token_mean"]):
        module = tiny_module(objective=objective)
        rollout = synthetic_rollout(module)
        key = "bonus" if isinstance(objective, list) else "plain"
        values[key] = module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))["entropy"]
    # same weights, same rollout, coefficient 0: the same entropy (it was 2x before the fix)
    assert values["bonus"] == pytest.approx(values["plain"], rel=1e-4)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_chunked_and_full_logits_give_the_same_update(dtype, tol):
    """policy.logits: chunked (hidden states x output layer, chunk by chunk) equals full logits."""
    results = {}
    for logits in ("chunked", "full"):
        module = tiny_module(objective=["grpo", {"entropy_bonus": {"coef": 0.01}}],
                             policy={"dtype": dtype, "logits": logits}, update={"micro_batch_size": 5})
        assert module.models.logits == logits
        rollout = synthetic_rollout(module)
        metrics = module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        results[logits] = (_weights(module), metrics)
    assert torch.allclose(results["chunked"][0], results["full"][0], atol=tol, rtol=0)
    assert not torch.equal(results["chunked"][0], _weights(tiny_module(policy={"dtype": dtype})))  # it moved
    assert results["chunked"][1]["entropy"] == pytest.approx(results["full"][1]["entropy"], abs=tol)


def test_chunked_logits_need_a_decoder_and_say_so():
    from rlobj.train.models import Models

    class Bare(torch.nn.Module):  # no get_decoder(): only full logits can work
        pass

    with pytest.raises(ValueError, match="'chunked' needs a model with get_decoder"):
        Models(Bare(), logits="chunked")
    assert Models(Bare(), logits="auto").logits == "full"
    with pytest.raises(RlobjInputError, match="policy.logits"):
        RLModule(policy={"logits": "half"})


def test_engine_sleeps_through_the_update_and_wakes_before_weights_and_sampling():
    """vLLM's sleep mode: the engine frees its memory while the trainer updates (a no-op for HF)."""
    from rlobj.rollout import HFEngine

    calls = []

    class Recording(HFEngine):
        def generate(self, *args, **kwargs):
            calls.append("generate")
            return super().generate(*args, **kwargs)

        def sleep(self):
            calls.append("sleep")

        def wake(self):
            calls.append("wake")

    module = tiny_module(verifier=lambda completion, record: float(len(completion)), rollout={"max_new_tokens": 3})
    tokenizer = module.tokenizer
    module.engine = Recording(module.policy, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    module.rl_update([{"prompt": "1+2=", "answer": "3"}, {"prompt": "4+4=", "answer": "8"}], step=0)
    assert calls == ["wake", "generate", "sleep", "wake"] and module.rl_updates == 1
