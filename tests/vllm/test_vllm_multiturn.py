"""Multi-turn rollouts through real vLLM: a scripted environment, masking and log-probs token by
token (the trainer's forward over each transcript against vLLM's reported log-probs), then one
RL update through the trainer."""

import functools

import pytest
import torch

from rlobj.train import RLModule
from rlobj.train.envs import Environment
from rlobj.train.forward import token_logprobs
from rlobj.train.multiturn import EnvironmentScorer, MultiTurnSampler

pytestmark = pytest.mark.vllm

ATOL = 1e-5  # vLLM's CPU float32 kernels agree with the HF forward to <= 5e-7 (test_vllm_training)
OBSERVATIONS = ["12=", "3+4=", "56-7="]


class Scripted(Environment):
    """Observation OBSERVATIONS[k] after turn k, reward = digits in the turn % 3, done after 3 turns."""

    def __init__(self):
        self.k = 0

    def step(self, action):
        self.k += 1
        return OBSERVATIONS[self.k - 1], float(sum(c.isdigit() for c in action) % 3), self.k >= 3, {}


def test_multiturn_episodes_through_vllm(tmp_path, monkeypatch):
    from rlobj.rollout import VLLMEngine

    monkeypatch.chdir(tmp_path)  # the standalone module writes the engine's model directory to the cwd

    torch.manual_seed(0)
    module = RLModule(objective="grpo", sampler=MultiTurnSampler(Scripted, max_turns=3, max_tokens=40),
                      scorer=EnvironmentScorer(),
                      rollout={"engine": "vllm", "engine_args": {"seed": 0}, "group_size": 4, "max_new_tokens": 4},
                      policy={"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
                      optimizer=functools.partial(torch.optim.AdamW, lr=3e-2, weight_decay=0.0),
                      update={"grad_clip": None}, seed=0)
    module.build()
    ctx = module.context(0)
    assert isinstance(ctx.engine, VLLMEngine)
    records = [{"prompt": "1+2=", "answer": "3"}, {"prompt": "40+2=", "answer": "42"}]
    batch = ctx.score(ctx.sample(records))
    r, obs = batch.rollout, batch.extras["observation_mask"]
    encoded = [module.encode(t) for t in OBSERVATIONS]
    observation_tokens = 0
    for b in range(len(r)):
        valid = r.response_mask[b]
        ids, is_obs = r.response_ids[b][valid].tolist(), obs[b][valid].tolist()
        runs, start = [], 0
        for t in range(1, len(ids) + 1):
            if t == len(ids) or is_obs[t] != is_obs[start]:
                runs.append((is_obs[start], ids[start:t]))
                start = t
        assert [flag for flag, _ in runs] == [False, True, False, True, False], runs
        assert [tokens for _, tokens in runs[1::2]] == encoded[:2]
        observation_tokens += sum(is_obs)
    action = batch.action_mask()
    assert float(r.logp_rollout[obs].abs().sum()) == 0.0
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, r.prompt_ids.cpu(), r.prompt_mask.cpu(), r.response_ids.cpu(),
                                 r.response_mask.cpu())
    gap = (logp - r.logp_rollout.cpu()).abs()[action.cpu()]
    print(f"\nvLLM multi-turn: {len(r)} episodes, {int(action.sum())} generated tokens, {observation_tokens} "
          f"observation tokens; max |logp_trainer - logp_vllm| on generated tokens = {float(gap.max()):.2e}")
    assert float(gap.max()) < ATOL
    metrics = module.update_on_batch(batch, ctx)
    assert module.rl_updates == 1 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert metrics["mismatch/logp_abs"] < ATOL  # over generated tokens only
    print(f"one update through the trainer: loss {metrics['loss']:.4f}, reward/mean {metrics['reward/mean']:.3f}, "
          f"mismatch/logp_abs {metrics.get('mismatch/logp_abs', float('nan')):.2e}")
