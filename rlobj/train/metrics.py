"""Metrics of a rollout batch: rewards, lengths, truncation, sampler/trainer log-prob mismatch."""

from torch import Tensor

from rlobj.rollout import RolloutBatch

__all__ = ["batch_metrics"]


def batch_metrics(rollout: RolloutBatch, rewards: Tensor, logp_old: Tensor, pass_threshold: float) -> dict[str, float]:
    """Reward mean/std, pass rate, response lengths, truncated fraction and ``mismatch/logp_abs``
    (mean $|\\log\\pi_\text{sampler} - \\log\\pi_\text{old}|$ over response tokens)."""
    mask = rollout.response_mask
    lengths = mask.sum(-1).float()
    n_valid = max(float(mask.sum()), 1.0)
    return {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "pass_rate": float((rewards >= pass_threshold).float().mean()),
        "response/length_mean": float(lengths.mean()),
        "response/length_max": float(lengths.max()),
        "response/truncated_fraction": float(rollout.truncated.float().mean()),
        "mismatch/logp_abs": float((rollout.logp_rollout - logp_old).abs()[mask].sum()) / n_valid,
    }
