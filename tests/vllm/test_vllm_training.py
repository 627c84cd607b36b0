"""A short training run of the trainer (RLModule under Lightning) with ``engine: vllm``.

The module starts its own colocated in-process ``VLLMEngine`` on the tiny Qwen2 (untied
embeddings), samples every RL batch with it and pushes the weights after each optimizer step.
After every push, vLLM's log-probs of fixed sequences (scored as prompt log-probs, temperature 1)
must equal the trainer's, and every logged metric must be finite.
"""

import functools
import math

import lightning as L
import pytest
import torch
from batches import right_pad

from rlobj.train import AdditionTask, RLDataModule, RLModule
from rlobj.train.forward import token_logprobs

pytestmark = pytest.mark.vllm

# vLLM's CPU float32 kernels agree with the HF forward to <= 5e-7 here (measured).
ATOL = 1e-5
FIXED = [("12+34=", "46"), ("7+8=", "15"), ("99+1=", "100"), ("3+3=", "7")]


def engine_sequence_logprobs(engine, tokenizer, pairs):
    """vLLM's log-probs of each response token of fixed (prompt, response + EOS) sequences.

    The whole sequence is sent as a prompt and scored with ``prompt_logprobs=0`` (the log-prob of
    each given token under the engine's current weights, temperature 1)."""
    from vllm import SamplingParams

    eos = tokenizer.eos_token_id
    requests, lengths = [], []
    for prompt, response in pairs:
        p = tokenizer.encode(prompt, add_special_tokens=False)
        r = tokenizer.encode(response, add_special_tokens=False) + [eos]
        requests.append({"prompt_token_ids": p + r})
        lengths.append((len(p), len(r)))
    params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0, detokenize=False)
    outputs = engine.llm.generate(requests, params, use_tqdm=False)
    rows = []
    for output, request, (n_prompt, n_response) in zip(outputs, requests, lengths, strict=True):
        ids = request["prompt_token_ids"]
        values = [float(output.prompt_logprobs[i][ids[i]].logprob)
                  for i in range(n_prompt, n_prompt + n_response)]
        rows.append(values)
    return rows


def trainer_sequence_logprobs(module, pairs):
    from rlobj.rollout import left_pad_prompts

    tokenizer = module.tokenizer
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p, _ in pairs]
    responses = [tokenizer.encode(r, add_special_tokens=False) + [eos] for _, r in pairs]
    prompt_ids, prompt_mask = left_pad_prompts(prompts, pad)
    response_ids, response_mask = right_pad(responses, pad)
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, prompt_ids, prompt_mask, response_ids, response_mask)
    return [logp[row, :len(ids)].tolist() for row, ids in enumerate(responses)]


class CheckAfterPush(L.Callback):
    """After each training batch (the module has pushed its weights): engine == trainer."""

    def __init__(self):
        self.differences, self.metrics, self.pushes = [], [], 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        engine_rows = engine_sequence_logprobs(pl_module.engine, pl_module.tokenizer, FIXED)
        trainer_rows = trainer_sequence_logprobs(pl_module, FIXED)
        difference = max(abs(a - b) for ea, tb in zip(engine_rows, trainer_rows, strict=True)
                         for a, b in zip(ea, tb, strict=True))
        self.differences.append(difference)
        self.metrics.append(dict(pl_module.last_metrics))
        self.trainer_rows = trainer_rows


def test_short_training_run_through_vllm(tmp_path):
    from rlobj.rollout import VLLMEngine

    torch.manual_seed(0)
    module = RLModule(objective="grpo",
                      rollout={"engine": "vllm", "engine_args": {"seed": 0}, "group_size": 4, "max_new_tokens": 4},
                      policy={"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                      optimizer=functools.partial(torch.optim.AdamW, lr=3e-2, weight_decay=0.0), update={"grad_clip": None},
                      evaluation=dict(samples=2, k=[1, 2]), seed=0,
                      # a dense reward (completion length) so every group has a non-zero advantage
                      verifier=lambda completion, record: float(len(completion)))
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=4, eval_size=2)
    check = CheckAfterPush()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        default_root_dir=str(tmp_path), callbacks=[check])
    module.build()
    initial = trainer_sequence_logprobs(module, FIXED)
    trainer.fit(module, datamodule=data)

    assert isinstance(module.engine, VLLMEngine)
    assert module.policy.config.tie_word_embeddings is False
    assert module.rl_updates == 3 and len(check.metrics) == 3
    # every push reached vLLM: its log-probs of the fixed sequences follow the trainer's weights
    for step, difference in enumerate(check.differences):
        assert difference < ATOL, f"step {step}: |logp_vllm - logp_trainer| = {difference:.3e}"
    # ... and the weights really moved (the test would catch a push that did nothing)
    moved = max(abs(a - b) for r0, r1 in zip(initial, check.trainer_rows) for a, b in zip(r0, r1))
    print(f"engine/trainer |dlogp| after each push: {check.differences}; weights moved logp by {moved:.3f}")
    assert moved > 1e-2, f"weights barely changed ({moved:.2e}): the sync check is vacuous"
    for step, metrics in enumerate(check.metrics):
        bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
        assert not bad, f"step {step}: non-finite metrics {bad}"
        for key in ("loss", "reward/mean", "entropy", "kl/old_k3", "mismatch/logp_abs",
                    "throughput/generate_tokens_per_s"):
            assert key in metrics, key
        # the sampled tokens' vLLM log-probs equal the trainer's forward with the pushed weights
        assert metrics["mismatch/logp_abs"] < ATOL, (step, metrics["mismatch/logp_abs"])
    # the "before RL" evaluation also sampled through vLLM
    assert [label for label, _, _ in module.eval_history] == ["before RL"]
