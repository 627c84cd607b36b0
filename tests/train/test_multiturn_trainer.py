"""Multi-turn rollouts through the trainer: the loss mask, the micro-batch law with observation
tokens present, RL steps from YAML, and deterministic restarts of pending episodes on resume."""

import functools
from pathlib import Path

import pytest
import torch

from rlobj.train.multiturn import EnvironmentScorer, MultiTurnSampler

from ._helpers import tiny_module
from .multiturn_cases import LengthRewardEnv, SeededEnv

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [{"prompt": f"{a}+{a}=", "answer": str(2 * a)} for a in range(5)]
OBJECTIVES = {"grpo": "grpo", "turn_returns": [{"turn_returns": {"gamma": 0.9}}, "clip_ratio", "token_mean"],
              "turn_end_rewards": ["turn_end_rewards", {"batch_whiten": {"gamma": 0.9}}, "clip_ratio", "token_mean"]}


def module_and_batch(objective, micro=None, ppo_epochs=1):
    module = tiny_module(objective=objective, policy={"dtype": "float64"},
                         rollout={"max_new_tokens": 3, "group_size": 5},
                         update=dict(micro_batch_size=micro, ppo_epochs=ppo_epochs),
                         sampler=MultiTurnSampler(LengthRewardEnv, max_turns=3, max_tokens=30),
                         scorer=EnvironmentScorer())
    ctx = module.context(0)
    batch = ctx.score(ctx.sample(RECORDS))
    return module, ctx, batch


def weights_after(objective, micro, ppo_epochs):
    module, ctx, batch = module_and_batch(objective, micro, ppo_epochs)
    module.update_on_batch(batch, ctx)
    return module, batch, {n: p.detach().clone() for n, p in module.policy.named_parameters()}


@pytest.mark.parametrize("ppo_epochs", [1, 2])
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_micro_batch_size_changes_no_update_with_observation_tokens(name, ppo_epochs):
    module, batch, reference = weights_after(OBJECTIVES[name], None, ppo_epochs)
    assert int(batch.extras["observation_mask"].sum()) > 0
    assert len(set(batch.rewards.tolist())) > 1  # informative groups: the update moves the weights
    initial = module_and_batch(OBJECTIVES[name])[0].policy.state_dict()
    assert max(float((reference[k] - initial[k]).abs().max()) for k in reference) > 0
    # the loss mask the objective saw excludes the observation tokens
    prepared = module.last_batch[1]
    assert torch.equal(prepared.mask.cpu(), batch.action_mask().cpu())
    for micro in (13, 7):
        _, _, other = weights_after(OBJECTIVES[name], micro, ppo_epochs)
        gap = max(float((other[k] - reference[k]).abs().max()) for k in reference)
        assert gap <= 1e-6, f"{name}: micro-batch {micro}: max weight difference {gap}"


def test_trainer_update_is_the_objective_on_the_action_mask():
    """One trainer update (SGD, lr 1) equals minus the gradient of the objective evaluated directly
    on the policy's log-probs with mask = response tokens less observation tokens; dropping the
    observation mask (observation tokens then count) gives another update."""
    from rlobj import Objective, grpo
    from rlobj.train.forward import token_logprobs

    module, ctx, batch = module_and_batch("grpo")
    r = batch.rollout
    action = batch.action_mask()
    assert bool(batch.extras["observation_mask"].any()) and not bool((action & batch.extras["observation_mask"]).any())
    policy = module.policy
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    logp, _ = token_logprobs(policy, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask)
    out = Objective(grpo)(logp=logp, logp_old=logp.detach(), mask=action, rewards=batch.rewards.double(),
                          group_ids=r.group_ids)
    grads = torch.autograd.grad(out.loss, list(policy.parameters()))
    expected = {n: before[n] - g for (n, _), g in zip(policy.named_parameters(), grads)}
    metrics = module.update_on_batch(batch, ctx)
    # the sampler's log-probs match the trainer's on the generated tokens (observations excluded)
    assert metrics["mismatch/logp_abs"] < 1e-5
    got = {n: p.detach().clone() for n, p in policy.named_parameters()}
    assert max(float((got[n] - expected[n]).abs().max()) for n in got) < 1e-6  # logp_old: float32 from the engine
    other, other_ctx, unmasked = module_and_batch("grpo")
    unmasked.extras.pop("observation_mask")
    other.update_on_batch(unmasked, other_ctx)
    moved = {n: p.detach() for n, p in other.policy.named_parameters()}
    assert max(float((moved[n] - got[n]).abs().max()) for n in got) > 1e-4


def _cli(args):
    from rlobj.train.cli import RlobjCLI, RlobjTrainer
    from rlobj.train.datamodule import RLDataModule
    from rlobj.train.module import RLModule

    return RlobjCLI(RLModule, RLDataModule, trainer_class=RlobjTrainer, args=args, run=False,
                    auto_configure_optimizers=False)


def test_two_rl_steps_from_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "examples" / "configs" / "multiturn" / "calculator_tool.yaml")
    cli = _cli(["--config", config, "--trainer.max_steps=62", "--model.warmup.steps=60", "--data.eval_size=4",
                "--data.prompts_per_step=8", "--trainer.logger=false", "--trainer.callbacks=[]"])
    assert type(cli.model.sampler) is MultiTurnSampler
    rows = []
    module = cli.model
    original = module.rl_update

    def recording(records, step):
        metrics = original(records, step)
        rows.append(metrics)
        return metrics

    monkeypatch.setattr(module, "rl_update", recording)
    cli.trainer.fit(module, datamodule=cli.datamodule)
    assert len(rows) == 2 and module.rl_updates == 2
    for metrics in rows:
        assert metrics["rollout/observation_tokens"] > 0
        assert metrics["rollout/turns_mean"] >= 1.0
        assert "rollout/tool_success_rate" in metrics and torch.isfinite(torch.tensor(metrics["loss"]))


class _KillOnSecondTurn:
    """An engine wrapper that raises KeyboardInterrupt on its second call (turn 1 of an episode
    batch): the kill lands with every environment reset and stepped once, still pending."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0

    def generate(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt("simulated kill with pending environments")
        return self.engine.generate(*args, **kwargs)


def _fit(root, max_steps, ckpt_path=None, record=None, kill_at=None):
    import lightning as L

    from rlobj.train import AdditionTask, RLDataModule, RLModule

    torch.manual_seed(0)
    module = RLModule(objective="grpo", policy={"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0}},
                      rollout={"group_size": 2, "max_new_tokens": 3}, warmup={"steps": 0},
                      sampler=MultiTurnSampler(SeededEnv, max_turns=3, max_tokens=30),
                      scorer=EnvironmentScorer(), evaluation={"samples": 1, "k": [1]},
                      optimizer=functools.partial(torch.optim.AdamW, lr=1e-2), seed=5)
    original = module.sampler.sample

    def sample(ctx, records, n, salt=0, **changes):
        if ctx.step == kill_at:
            ctx.engine = _KillOnSecondTurn(ctx.engine)
        batch = original(ctx, records, n, salt, **changes)
        if record is not None:
            record[ctx.step] = (batch.rollout.response_ids.clone(), list(module.sampler.last_transcripts))
        return batch

    module.sampler.sample = sample
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2, eval_size=1)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True, every_n_train_steps=1)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                        callbacks=[checkpoint])
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module


def test_resume_restarts_pending_environments_deterministically(tmp_path):
    """A run killed in the middle of step 2's episodes (environments reset and stepped once, the
    second turn not generated) and resumed from its last checkpoint (after step 1) replays step
    2's episodes exactly: same tokens, same environment seeds and observations."""
    full = {}
    _fit(tmp_path / "full", 3, record=full)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        _fit(tmp_path / "cut", 3, kill_at=2)
    resumed = {}
    _fit(tmp_path / "resumed", 3, ckpt_path=str(tmp_path / "cut" / "last.ckpt"), record=resumed)
    assert sorted(resumed) == [2]
    ids_full, transcript_full = full[2]
    ids_resumed, transcript_resumed = resumed[2]
    assert torch.equal(ids_full, ids_resumed)
    assert transcript_full == transcript_resumed
    # the seeded observations differ across rows and steps (the check is not vacuous)
    observations = {t[1][1] for t in transcript_full}
    assert len(observations) > 1 and full[1][1][0][1] != full[2][1][0][1]

