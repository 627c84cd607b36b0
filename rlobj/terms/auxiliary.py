r"""Auxiliary losses: a loss part of its own that trains a side quantity of the policy.

LaSeR (Yang, Liu, Xie, Guo, Wu, Yang, Lin, "LaSeR: Reinforcement Learning with Last-Token
Self-Rewarding", arXiv 2510.14943) reads a self-verification score off the policy's own
log-probability of a fixed token $z_c$ placed one position after the EOS of a finished response:

$$r_s = \beta_v\,\big(T \log\pi_\theta(z_c \mid x, y, \text{EOS}) - c\big),$$

and trains it toward the verifiable reward with an auxiliary MSE loss (:class:`self_reward_mse`,
the part ``self_reward``); the advantage that mixes the score in is
:class:`~rlobj.terms.advantages.self_reward.self_reward_advantage`. The probe log-probability is
an extra forward output the trainer appends: ``extras["self_reward_logp"]`` (``" batch"``,
carrying gradient in the loss). Truncated responses (``extras["truncated"]``, optional) get no
self-reward. Reference code: RUCBM/LaSeR (``dp_actor.py``, ``actor.yaml``); defaults below are
its scripts'.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import (
    broadcast_to_tokens,
)
from rlobj.terms._self_reward import _PROBE, _check_common, _finished, _probe

__all__ = ["self_reward_score", "self_reward_mse"]


def self_reward_score(probe_logp: Tensor, beta_v: float = 0.1, c: float = -23.0, temperature: float = 1.0) -> Tensor:
    r"""$r_s = \beta_v\,(T\log\pi_\theta(z_c \mid x, y) - c)$: the last-token self-reward.

    Also the inference-time reranking score (predicted correct iff $r_s > 0.5$). ``c`` stands
    for $\log\pi_\text{ref}(z_c\mid x,y)$, a constant $-23$ in the reference
    (``ref_model_log_ratio_constant``); ``temperature`` $T$ undoes the sampling temperature
    applied to the logits (1 in the scripts).
    """
    return beta_v * (temperature * probe_logp - c)


SCOPES = ("batch", "micro_batch")


class self_reward_mse(Term,
                      reads=("rewards", f"extras:{_PROBE}", "mask"),
                      writes=("part:self_reward",),
                      may_read=("extras:truncated",)):
    r"""LaSeR auxiliary loss: the self-reward regressed onto the verifiable reward.

    $$\mathcal L_\text{SR} = \alpha\,\frac{1}{N}\sum_i m_i\,w_i\,(r_{s,i} - r_i)^2,\qquad
      w_i = \begin{cases}\frac{N_f}{2N_+} & r_i \text{ correct}\\ \frac{N_f}{2N_-} & \text{otherwise}\end{cases}$$

    $m_i = 1$ for finished responses, $N$ = non-empty rows, $N_f, N_+, N_-$ = finished /
    finished correct ($r_i > 0.5$) / finished incorrect rows (weight 0 for an empty class;
    $w = 1$ with ``balanced=False``). Yang et al., arXiv 2510.14943 (Eq. for the last-token
    self-rewarding loss); reference defaults $\alpha = 0.1$ (``self_reward_loss_coef``),
    $\beta_v = 0.1$, $c = -23$, balanced weights on. Its optimum is
    $\log\pi(z_c) = c + r/\beta_v$ ($-13$ correct, $-23$ wrong).

    Writes the loss part ``"self_reward"``: $\alpha m_i w_i (r_{s,i}-r_i)^2$ on the last valid
    token of each row, so ``token_mean`` and the ``seq_mean_*`` aggregations give the mean over
    the rows ($1/N$; ``constant_normalizer`` divides it by its constant as well).

    Counts, micro-batches and ranks: with ``scope="batch"`` (default) $N$ is the **global**
    number of non-empty rows of the optimizer mini-batch (the normaliser's ``seqs`` over all
    micro-batches and ranks; the rows of the call when no normaliser is given) and
    $N_f, N_+, N_-$ are counted once per mini-batch by :meth:`minibatch_stats` (gathered over
    ranks by the trainer; the rows of the call when called directly). Only counts of the
    rewards and of ``extras["truncated"]`` are statistics: the probe log-probability, which
    carries gradient, is read per micro-batch. Splitting a mini-batch into micro-batches then
    changes no gradient. The reference computes the balanced weights once on the whole rollout
    batch (``ray_trainer.py``, ``reweighting_factor``): the same as here when a rollout batch
    is one optimizer mini-batch.

    Args:
        coef: $\alpha \ge 0$.
        beta_v, c, temperature: see :func:`self_reward_score`.
        balanced: class-balanced weights (reference ``self_reward_loss_balanced``).
        scope: ``"batch"`` (default, above) or ``"micro_batch"``: the reference code's
            normalisation, ``.mean()`` over the rows of each micro-batch (``dp_actor.py``):
            $N$ = the rows of the call, on this rank (the part's own mask counted locally).
            The gradient then depends on the micro-batch size (and the number of ranks), which
            breaks the micro-batch law on purpose. The balanced weights still come from the
            mini-batch statistics when the trainer provides them (the reference's are
            batch-wide too), else from the rows of the call.

    Example:
        >>> from rlobj import grpo
        >>> recipe = grpo >> self_reward_mse(coef=0.1)  # needs extras["self_reward_logp"]
    """

    coef: NonNegative = 0.1
    beta_v: float = 0.1
    c: float = -23.0
    temperature: float = 1.0
    balanced: bool = True
    scope: str = "batch"

    def __post_init__(self):
        _check_common("self_reward_mse", self.beta_v, self.temperature)
        if self.scope not in SCOPES:
            raise RlobjInputError(f"self_reward_mse.scope: expected one of {SCOPES}, got {self.scope!r}")

    def has_minibatch_stats(self) -> bool:
        return self.balanced

    def minibatch_stats_reads(self) -> frozenset[str]:
        return frozenset({"rewards", "mask"})

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""0-dim counts of the mini-batch: ``finished`` $N_f$ and ``correct`` $N_+$ (no values
        of the probe, which carries gradient per micro-batch)."""
        if not self.balanced:
            return {}
        rewards = state.require("rewards").detach()
        finished = _finished(state)
        return {"finished": finished.sum().double(), "correct": ((rewards > 0.5) & finished).sum().double()}

    def weights(self, rewards: Tensor, finished: Tensor, counts: tuple[float, float] | None = None) -> Tensor:
        """$m_i w_i$: the class-balanced weights of the finished rows (0 on truncated rows).

        ``counts`` = $(N_f, N_+)$ of the mini-batch; None counts the rows given.
        """
        if not self.balanced:
            return finished.to(rewards.dtype)
        correct = (rewards > 0.5) & finished
        wrong = ~(rewards > 0.5) & finished
        if counts is None:
            counts = (float(finished.sum()), float(correct.sum()))
        total, n_correct = counts
        n_wrong = total - n_correct
        w_correct = total / (2 * n_correct) if n_correct > 0 else 0.0
        w_wrong = total / (2 * n_wrong) if n_wrong > 0 else 0.0
        zeros = torch.zeros_like(rewards)
        return torch.where(correct, zeros + w_correct, torch.where(wrong, zeros + w_wrong, zeros))

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards").detach()
        probe = _probe(state, "self_reward_mse")
        finished = _finished(state)
        score = self_reward_score(probe, self.beta_v, self.c, self.temperature)
        n_finished, n_correct = state.own_stats("finished"), state.own_stats("correct")
        counts = None if n_finished is None or n_correct is None else (float(n_finished), float(n_correct))
        weights = self.weights(rewards.to(score.dtype), finished, counts)
        per_row = self.coef * weights * (score - rewards.to(score.dtype)) ** 2
        last = (state.mask.cumsum(-1) == state.mask.sum(-1, keepdim=True)) & state.mask
        rows = None  # scope="micro_batch": the rows of the call (the part's own mask, locally)
        if self.scope == "batch" and state.normalizer is not None:
            rows = Normalizer(tokens=state.normalizer.seqs, seqs=state.normalizer.seqs, ranks=state.normalizer.ranks)
        elif self.scope == "batch":
            local = float(state.mask.any(-1).sum())
            rows = Normalizer(tokens=local, seqs=local)
        part = LossPart(broadcast_to_tokens(per_row, last), last, "own", rows)
        predicted = (score.detach() > 0.5) == (rewards > 0.5)
        accuracy = predicted[finished].float().mean() if bool(finished.any()) else torch.zeros(())
        return state.add_part("self_reward", part).add_metrics(
            **{"self_reward/score": score.detach()[finished].mean() if bool(finished.any()) else torch.zeros(()),
               "self_reward/accuracy": accuracy})
