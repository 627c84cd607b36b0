"""Metrics of a rollout batch: rewards, lengths, truncation, sampler/trainer log-prob mismatch."""

from torch import Tensor

from rlobj.rollout import RolloutBatch

__all__ = ["batch_metrics", "log_step_row"]


def batch_metrics(rollout: RolloutBatch, rewards: Tensor, logp_old: Tensor, pass_threshold: float,
                  sampled: Tensor | None = None) -> dict[str, float]:
    """Reward mean/std, pass rate, response lengths, truncated fraction and ``mismatch/logp_abs``
    (mean $|\\log\\pi_\text{sampler} - \\log\\pi_\text{old}|$ over the sampled tokens: ``sampled``,
    default every response token; a multi-turn batch passes its loss mask, observations have no
    sampler log-prob)."""
    mask = rollout.response_mask
    lengths = mask.sum(-1).float()
    sampled = mask if sampled is None else sampled
    n_valid = max(float(sampled.sum()), 1.0)
    return {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "pass_rate": float((rewards >= pass_threshold).float().mean()),
        "response/length_mean": float(lengths.mean()),
        "response/length_max": float(lengths.max()),
        "response/truncated_fraction": float(rollout.truncated.float().mean()),
        "mismatch/logp_abs": float((rollout.logp_rollout - logp_old).abs()[sampled].sum()) / n_valid,
    }


def log_step_row(module, values: dict[str, float]) -> None:
    """Send exactly this step's metrics to every logger of ``module``'s trainer (one row per step
    in metrics.csv: Lightning's own rows repeat keys logged earlier in the epoch)."""
    trainer = module._trainer
    if trainer is None or not trainer.loggers or trainer.global_rank != 0:
        return
    if not getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True):
        return  # honour log_every_n_steps as Lightning's own logging does
    loop = getattr(trainer.fit_loop, "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", trainer.global_step)
    for logger in trainer.loggers:
        logger.log_metrics({**values, "epoch": float(trainer.current_epoch)}, step=step)
