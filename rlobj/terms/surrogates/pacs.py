"""PACS: the policy loss recast as a supervised (cross-entropy) objective (Li et al., "Implicit
Actor Critic Coupling via a Supervised Learning Framework for RLVR", arXiv 2509.02522).

:class:`pacs_loss` writes the ``"policy"`` part in place of a clipped surrogate
(``grpo.replace(clip_ratio, pacs_loss())``-style recipes; see
:func:`~rlobj.presets.recipes.pacs_recipe`).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from rlobj.algebra.contract import Positive
from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.reductions import (
    broadcast_to_tokens,
    group_count,
    group_mean,
    group_std,
    group_sum,
    leave_one_out_mean,
    masked_sum,
)
from rlobj.terms._common import require_groups

__all__ = ["pacs_loss"]


class pacs_loss(Term,
                reads=("logp", "logp_old", "rewards", "group_ids", "mask"),
                writes=("part:policy",)):
    r"""PACS: RLVR as supervised learning, a class-balanced cross-entropy on a policy score.

    $$\hat s_i = \beta\sum_t m_{i,t}\big(\log\pi_\theta(y_{i,t}) - \log\pi_\text{old}(y_{i,t})\big),\qquad
      \psi_i = \hat s_i - \frac{1}{|g|-1}\sum_{j\in g, j\ne i}\hat s_j,$$
    $$\mathcal L = \frac{1}{N}\sum_i w_i\big[-r_i\log\sigma(\psi_i) - (1-r_i)\log(1-\sigma(\psi_i))\big]$$

    Li et al., "Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR",
    arXiv 2509.02522 (the PACS objective); reference code ``pacs_core_algos.py``: $\beta = 1$,
    RLOO scores (``baseline="rloo"``; ``"zscore"`` = group z-score of $\hat s$ with
    $\varepsilon = 10^{-6}$, ``"none"`` = raw $\hat s$), ``weight_mode="question"``: in a group
    holding both classes $w_c = |g|/(2 n_c)$ (correct: $r_i > 0.5$), else $w = 1$. The mean
    divides by the number of rows, not by $\sum w$. It replaces the PPO surrogate entirely
    (writes the ``"policy"`` part; no clipping). At $\theta = \theta_\text{old}$, $\psi = 0$
    and the gradient is $\frac{\beta}{N}\sum_i w_i(\tfrac12 - r_i)\,\partial\psi_i$: REINFORCE
    with advantage $r - \tfrac12$ and an RLOO baseline.

    The score is $\log\pi_\text{old}$-anchored as in the reference code (the paper frames it as
    a log-ratio to a reference policy). The per-row loss sits on the last valid token, and the
    mean divides by the **global** number of non-empty rows $N$ (the normalizer's ``seqs`` over
    all micro-batches and ranks, times the data-parallel world size as every aggregation does;
    the rows of the call when no normalizer is given), so ``token_mean`` and the ``seq_mean_*``
    aggregations give the row mean of the mini-batch.

    Micro-batches and split groups: the baseline $\psi_i$ reads the whole group. With the
    trainer's mini-batch statistics (:meth:`minibatch_stats`: the detached scores of every row
    of the mini-batch) a micro-batch may hold any part of a group: it contributes
    $\frac1N\sum_{j}\big[w_j\ell_j + c_j(\hat s_j - \mathrm{sg}[\hat s_j])\big]$ over its rows,
    with $w_j\ell_j$ the row's loss on the whole mini-batch (detached) and
    $c_j = \partial\big(\sum_i w_i\ell(\psi_i)\big)/\partial\hat s_j$ the exact gradient of the
    mini-batch loss with respect to row $j$'s score. For ``"rloo"``
    $c_j = w_j\ell'(\psi_j) - \frac{1}{|g|-1}\sum_{i\in g, i\ne j} w_i\ell'(\psi_i)$; for
    ``"none"`` $c_j = w_j\ell'(\psi_j)$; for ``"zscore"``
    $c_j = \sum_{i\in g} w_i\ell'(\psi_i)\,\partial\psi_i/\partial\hat s_j$ with
    $\partial\psi_i/\partial\hat s_j = \frac{\delta_{ij} - 1/|g|}{\sigma_g+\varepsilon}
    - \frac{(\hat s_i-\mu_g)(\hat s_j-\mu_g)}{(|g|-1)\,\sigma_g(\sigma_g+\varepsilon)^2}$ (Bessel $\sigma_g$);
    all three are computed as one vector-Jacobian product. Summed over micro-batches this is
    the gradient of the whole mini-batch exactly. Without the statistics (a direct call) every
    group must be whole in the call, as the reference asserts.

    Args:
        beta: $\beta > 0$.
        baseline: ``"rloo"``, ``"zscore"`` or ``"none"``.
        balanced: class-balanced weights per group (reference ``use_weight=True``).

    Example:
        >>> from rlobj import seq_mean_token_mean
        >>> recipe = pacs_loss(beta=1.0) >> seq_mean_token_mean()
    """

    beta: Positive = 1.0
    baseline: str = "rloo"
    balanced: bool = True

    def __post_init__(self):
        if self.baseline not in ("rloo", "zscore", "none"):
            raise RlobjInputError(f"pacs_loss.baseline: expected 'rloo', 'zscore' or 'none', got {self.baseline!r}")

    def weights(self, rewards: Tensor, group_ids: Tensor) -> Tensor:
        """$w_i$: $|g|/(2n_c)$ in groups with both classes, 1 elsewhere (or 1 if not ``balanced``)."""
        if not self.balanced:
            return torch.ones_like(rewards)
        correct = (rewards > 0.5).to(rewards.dtype)
        size = group_count(group_ids).to(rewards.dtype)
        n_correct = group_sum(correct, group_ids)
        n_class = torch.where(correct > 0, n_correct, size - n_correct)
        mixed = (n_correct > 0) & (n_correct < size)
        return torch.where(mixed, size / (2 * n_class.clamp(min=1)), torch.ones_like(rewards))

    def _labels(self, state: State) -> Tensor:
        rewards = state.require("rewards").detach()
        if bool(((rewards < 0) | (rewards > 1)).any()):
            raise RlobjInputError(f"rewards: pacs_loss uses rewards as labels, expected values in [0, 1], got "
                                  f"{rewards[(rewards < 0) | (rewards > 1)][:5].tolist()}")
        return rewards

    def _score(self, state: State, logp: Tensor) -> Tensor:
        r"""$\hat s_i = \beta\sum_t m_{i,t}(\log\pi_\theta - \log\pi_\text{old})$."""
        return self.beta * masked_sum(logp - state.require("logp_old"), state.mask, dim=-1)

    def _rows(self, state: State, score: Tensor, labels: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
        r"""$(w_i\ell(\psi_i), \psi_i)$ of every row, groups as given."""
        if self.baseline == "rloo":
            psi = score - leave_one_out_mean(score, group_ids)
        elif self.baseline == "zscore":
            std = group_std(score, group_ids)
            centred = score - group_mean(score, group_ids)
            psi = torch.where(std > 0, centred / (std + 1e-6), torch.zeros_like(centred))
        else:
            psi = score
        labels = labels.to(psi.dtype)
        per_row = self.weights(labels, group_ids) * F.binary_cross_entropy_with_logits(psi, labels, reduction="none")
        return per_row, psi

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""Per row of the mini-batch (``[batch]``): ``loss`` $w_i\ell(\psi_i)$, ``coef`` $c_i$
        (the gradient of the mini-batch's summed loss with respect to $\hat s_i$) and ``psi``."""
        labels = self._labels(state)
        group_ids = require_groups(state, minimum=2 if self.baseline != "none" else 1)
        with torch.enable_grad():
            score = self._score(state, state.logp.detach()).detach().requires_grad_(True)
            per_row, psi = self._rows(state, score, labels, group_ids)
            kept = state.mask.any(-1)  # rows without tokens carry no loss (no last token)
            total = torch.where(kept, per_row, torch.zeros((), dtype=per_row.dtype)).sum()
            (coef,) = torch.autograd.grad(total, score)
        return {"loss": per_row.detach(), "coef": coef.detach(), "psi": psi.detach()}

    def __call__(self, state: State) -> State:
        labels = self._labels(state)
        score = self._score(state, state.logp)
        loss, coef = state.own_stats("loss"), state.own_stats("coef")
        if loss is None or coef is None:
            group_ids = require_groups(state, minimum=2 if self.baseline != "none" else 1)
            per_row, psi = self._rows(state, score, labels, group_ids)
        else:
            per_row = loss.to(score.dtype) + coef.to(score.dtype) * (score - score.detach())
            psi = state.own_stats("psi")
        last = (state.mask.cumsum(-1) == state.mask.sum(-1, keepdim=True)) & state.mask
        if state.normalizer is not None:
            counts = Normalizer(tokens=state.normalizer.seqs, seqs=state.normalizer.seqs, ranks=state.normalizer.ranks)
        else:
            rows = float(state.mask.any(-1).sum())
            counts = Normalizer(tokens=rows, seqs=rows)
        part = LossPart(broadcast_to_tokens(per_row, last), last, "own", counts)
        psi = psi.detach()
        return state.add_part("policy", part).add_metrics(**{"pacs/psi_mean": psi.mean(),
                                                             "pacs/psi_std": psi.std() if psi.numel() > 1 else psi.sum() * 0})
