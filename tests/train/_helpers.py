"""Shared builders for the trainer tests (tiny model, synthetic rollouts with uneven lengths)."""

import functools

import torch

from rlobj.rollout import RolloutBatch
from rlobj.train import RLModule
from rlobj.train.forward import token_logprobs

TINY = {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}


def sgd(lr: float = 1.0):
    """An ``OptimizerCallable``: plain SGD at ``lr`` (the tests' default: updates are easy to check)."""
    return functools.partial(torch.optim.SGD, lr=lr)


def tiny_module(module_cls=RLModule, **overrides) -> RLModule:
    """A built module on the 1-layer tiny model; group mappings in ``overrides`` update the defaults."""
    kwargs = dict(policy={"tiny_model": TINY}, rollout={"max_new_tokens": 6, "group_size": 4},
                  update={"grad_clip": None}, optimizer=sgd(1.0), seed=0)
    for key, value in overrides.items():
        kwargs[key] = {**kwargs[key], **value} if isinstance(kwargs.get(key), dict) and isinstance(value, dict) else value
    module = module_cls(**kwargs)
    module.build()
    return module


def synthetic_rollout(module: RLModule, groups: int = 4, group_size: int = 4, seed: int = 0) -> RolloutBatch:
    """Prompts of different lengths, responses with uneven lengths (1..6), exact logp_rollout."""
    generator = torch.Generator().manual_seed(seed)
    vocab = len(module.tokenizer)
    batch = groups * group_size
    prompt_len, seq = 5, 6
    prompt_ids = torch.randint(3, vocab, (batch, prompt_len), generator=generator)
    prompt_mask = torch.ones(batch, prompt_len, dtype=torch.bool)
    for row in range(batch):
        pad = (row // group_size) % 3
        prompt_mask[row, :pad] = False
        prompt_ids[row, :pad] = 0
    lengths = torch.randint(1, seq + 1, (batch,), generator=generator)
    response_mask = torch.arange(seq)[None, :] < lengths[:, None]
    response_ids = torch.randint(3, vocab, (batch, seq), generator=generator)
    response_ids = torch.where(response_mask, response_ids, 0)
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, prompt_ids, prompt_mask, response_ids, response_mask)
    return RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                        response_mask=response_mask, logp_rollout=logp,
                        group_ids=torch.arange(groups).repeat_interleave(group_size),
                        truncated=lengths == seq,
                        finish_reasons=tuple("length" if n == seq else "stop" for n in lengths.tolist()))


def synthetic_rewards(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1)
    rewards = (torch.rand(batch, generator=generator) > 0.5).float()
    rewards[0], rewards[1] = 1.0, 0.0  # group 0 is never flat
    return rewards


class StartsWithDigit:
    """A verifier with informative rewards for an untrained model: 1 when the completion starts
    with a digit (the registry-wide ``rlobj fit`` checks use it so filters keep groups)."""

    def __call__(self, completion: str, record: dict) -> float:
        return 1.0 if completion[:1].isdigit() else 0.0


def fit_rollout_example(tmp_path, monkeypatch, name: str, *extra: str) -> list[dict]:
    """``rlobj fit`` on ``examples/configs/rollout/<name>.yaml`` shrunk to 1 warm-up step and 2 prompts
    (``extra``: more CLI overrides); returns the rows of its metrics.csv."""
    import csv
    import glob
    from pathlib import Path

    from rlobj.train.cli import main

    monkeypatch.chdir(tmp_path)
    path = Path(__file__).resolve().parents[2] / "examples" / "configs" / "rollout" / f"{name}.yaml"
    main(["fit", "--config", str(path), "--trainer.max_steps=3", "--model.warmup.steps=1",
          "--data.prompts_per_step=2", "--data.eval_size=2", "--model.evaluation.samples=2",
          "--model.evaluation.k=[1, 2]", "--model.policy.tiny_model={hidden_size: 128, layers: 1, heads: 2, seed: 0}",
          "--trainer.logger.init_args.save_dir=runs", *extra])
    (metrics_csv,) = glob.glob(str(tmp_path / "runs" / "**" / "metrics.csv"), recursive=True)
    return list(csv.DictReader(open(metrics_csv)))


def run_worker(worker, devices: int, out, *options: str, timeout: int = 300) -> dict:
    """Run a multi-process worker script (``worker devices out *options``) in a fresh interpreter
    with one thread per process; it must exit 0 and save a dict to ``out``, which is returned."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(worker), str(devices), str(out), *options], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return torch.load(out, weights_only=True)
