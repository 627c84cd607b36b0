r"""Token masks on the policy part: truncated completions, high-entropy tokens, off-policy
sequences, mastered positives, VPPO's pivotal tokens.

A mask term narrows the mask of the ``"policy"`` loss part (other parts, such as KL or
entropy penalties, keep the response mask). Whether masked tokens stay in the normaliser is
each term's documented choice.
"""

import math
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative, OpenFraction, Positive
from rlobj.algebra.state import LossPart, Normalizer, State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.terms._common import _token_extra

__all__ = ["truncated_mask", "top_entropy_mask", "top_fraction_mask", "off_policy_sequence_mask"]


class _PolicyMask(Term, writes=("part:policy",)):
    pass


class truncated_mask(_PolicyMask, reads=("part:policy", "extras:truncated")):
    r"""Drop completions that hit the length limit without finishing (DAPO overlong filtering).

    $m_{i,t} \leftarrow m_{i,t}\,\mathbb 1[\lnot\,\text{truncated}_i]$ on the policy part. Yu et al.,
    DAPO, arXiv 2503.14476, Sec. 3.4 ("overlong filtering"). Reads ``extras["truncated"]``
    (``" batch"`` bool), which the rollout engines provide.

    Args:
        normalizer: ``"keep"`` (default): the truncated tokens stay in the normaliser
            (``"global"``), as verl's masking does. ``"trl"``: TRL's
            ``mask_truncated_completions=True``, which zeroes the completion mask: the truncated
            tokens also leave the token count (``token_mean`` divides by the tokens of the
            finished completions, TRL's ``dapo`` / ``bnpo``), while the sequence count keeps every
            row (TRL's ``grpo`` row mean and ``dr_grpo`` constant still count them). With the
            trainer's mini-batch statistics the token count is the mini-batch's (exact under
            micro-batching); called directly, the call's.
    """

    minibatch_stats_additive: ClassVar[bool] = True  # a token count: a sum over rows
    normalizer: str = "keep"

    def __post_init__(self):
        if self.normalizer not in ("keep", "trl"):
            raise RlobjInputError(f"truncated_mask.normalizer: expected 'keep' or 'trl', got {self.normalizer!r}")

    def has_minibatch_stats(self) -> bool:
        return self.normalizer == "trl"

    def _kept(self, state: State) -> Tensor:
        truncated = state.require("extras:truncated")
        check_shape("extras['truncated']", truncated, (state.batch_size,), "batch")
        return ~truncated.bool()[:, None]

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """``tokens`` (0-dim): the response tokens of the finished completions of the mini-batch."""
        if not self.has_minibatch_stats():
            return {}
        return {"tokens": (state.mask & self._kept(state)).sum().double()}

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        keep = self._kept(state)
        part = policy.replace(mask=policy.mask & keep)
        if self.normalizer == "trl":
            counts = state.normalizer or Normalizer.from_masks([state.mask], all_reduce=False)
            tokens = state.own_stats("tokens")
            tokens = float((state.mask & keep).sum()) if tokens is None else float(tokens)
            counts = Normalizer(tokens=tokens, seqs=counts.seqs, ranks=counts.ranks)
            part = LossPart(policy.values, policy.mask & keep, "own", counts)
        return state.add_part("policy", part).add_metrics(
            **{"mask/truncated_frac": (~keep[:, 0]).float().mean()})


SCOPES = ("batch", "micro_batch", "sequence")


def top_fraction_mask(scores: Tensor, mask: Tensor, rho: float, scope: str = "batch") -> Tensor:
    r"""Select the $k = \max(1, \lceil \rho N\rceil)$ highest-scoring valid tokens.

    ``scope="micro_batch"``: $N$ = valid tokens of this tensor, on this rank only;
    ``scope="batch"``: $N$ = valid tokens of the whole tensor given (the trainer gives the whole
    optimizer mini-batch, gathered over data-parallel ranks, through ``Term.minibatch_stats``; no
    collective runs inside a term, where ranks holding different numbers of micro-batches
    would deadlock);
    ``scope="sequence"``: per row, $N = |y_i|$ (rows without tokens select nothing).
    Ties are broken by position (earlier flat index first, a stable descending sort), so the
    count is exact. Returns a bool mask, a subset of ``mask``.
    """
    if scope not in SCOPES:
        raise RlobjInputError(f"top_fraction_mask.scope: expected one of {SCOPES}, got {scope!r}")
    if not 0.0 < rho <= 1.0:
        raise RlobjInputError(f"top_fraction_mask.rho: expected 0 < rho <= 1, got {rho}")
    scores = scores.detach().float()
    if scope == "sequence":
        rows = [top_fraction_mask(scores[i : i + 1], mask[i : i + 1], rho, "batch")
                if bool(mask[i].any()) else torch.zeros_like(mask[i : i + 1]) for i in range(mask.shape[0])]
        return torch.cat(rows) if rows else mask.clone()
    flat_scores = torch.where(mask, scores, torch.full_like(scores, -torch.inf)).flatten()
    count = int(mask.sum())
    k = max(1, math.ceil(rho * count)) if count else 0
    order = torch.sort(flat_scores, descending=True, stable=True).indices[:k]
    selected = torch.zeros(flat_scores.numel(), dtype=torch.bool, device=mask.device)
    selected[order] = True
    return selected.view(mask.shape) & mask


class top_entropy_mask(_PolicyMask, reads=("part:policy", "entropy", "mask")):
    r"""Train the policy only on the highest-entropy ("forking") tokens.

    $m^\text{pg}_{i,t} = m_{i,t}\,\mathbb 1[H_{i,t} \text{ among the top } \lceil\rho N\rceil]$,
    with $H$ the full-vocab entropy of the current policy (no gradient through the choice).
    Wang et al., "Beyond the 80/20 Rule", arXiv 2506.01939, Sec. 4; reference $\rho = 0.2$,
    selection per micro-batch, count $\max(1, \lceil\rho N\rceil)$.

    Args:
        rho: fraction of valid tokens kept.
        scope: ``"batch"`` (default): $N$ = the valid tokens of the whole optimizer
            mini-batch (all micro-batches and data-parallel ranks). The trainer computes the
            selection once per mini-batch (:meth:`minibatch_stats`), so splitting the
            mini-batch into micro-batches changes no gradient. Called directly on one batch
            (no statistics), it selects among the tokens of the call, gathered across ranks
            when distributed. ``"micro_batch"``: the reference code's choice: selection and
            ``"selected"`` normaliser per call, on this rank only; the gradient then depends
            on the micro-batch size (and the number of ranks), which breaks the micro-batch
            law on purpose. ``"sequence"``: the top $\lceil\rho|y_i|\rceil$ of each
            response.
        normalize: ``"selected"`` (reference code: the policy loss is averaged over the
            selected tokens only, ~$1/\rho$ larger) or ``"all"`` (the paper's formula:
            selected tokens over the response-token normaliser). With ``"selected"`` and the
            mini-batch statistics the denominators are the mini-batch's selected counts:
            ``token_mean`` divides by the number of selected tokens of the mini-batch,
            ``seq_mean_token_mean`` averages each response's mean over its selected tokens
            over the responses of the mini-batch with at least one selected token (both exact
            under micro-batching); called directly, the counts of the call's selection.
            These counts are of the selected response tokens: a mask applied to the policy
            part before this term removes tokens from the numerator only. With
            ``scope="micro_batch"`` the denominators are the call's counts of the part's own
            mask (the reference).
    """

    rho: OpenFraction = 0.2
    scope: str = "batch"
    normalize: str = "selected"

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise RlobjInputError(f"top_entropy_mask.scope: expected one of {SCOPES}, got {self.scope!r}")
        if self.normalize not in ("selected", "all"):
            raise RlobjInputError(f"top_entropy_mask.normalize: expected 'selected' or 'all', got {self.normalize!r}")

    def has_minibatch_stats(self) -> bool:
        return self.scope == "batch" or (self.scope == "sequence" and self.normalize == "selected")

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """``selected`` (``[batch, seq]`` bool, the mini-batch's top tokens) and its counts
        ``tokens`` and ``rows`` (0-dim): the state already holds the whole mini-batch, so the
        selection is computed on it as is (no gather)."""
        if not self.has_minibatch_stats():
            return {}
        scope = "micro_batch" if self.scope == "batch" else self.scope
        selected = top_fraction_mask(state.token_entropy(), state.mask, self.rho, scope)
        return {"selected": selected, "tokens": selected.sum().double(), "rows": selected.any(-1).sum().double()}

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        entropy = state.token_entropy()
        selected = state.own_stats("selected") if self.has_minibatch_stats() else None
        counts = None
        if selected is None:
            selected = top_fraction_mask(entropy, state.mask, self.rho, self.scope)
            if self.scope != "micro_batch":
                counts = Normalizer(tokens=float(selected.sum()), seqs=float(selected.any(-1).sum()))
        else:
            ranks = state.normalizer.ranks if state.normalizer is not None else 1
            counts = Normalizer(tokens=float(state.own_stats("tokens")), seqs=float(state.own_stats("rows")),
                                ranks=ranks)
        if self.normalize == "selected":
            part = LossPart(policy.values, policy.mask & selected, "own", counts)
        else:
            part = policy.replace(mask=policy.mask & selected)
        return state.add_part("policy", part).add_metrics(**{
            "mask/top_entropy_frac": masked_mean(selected.float(), state.mask),
            "entropy/selected_min": entropy.detach()[selected].min() if bool(selected.any()) else torch.zeros(()),
        })


class off_policy_sequence_mask(_PolicyMask,
                               reads=("part:policy", "logp", "logp_old", "advantages", "mask"),
                               may_read=("extras:logp_rollout",)):
    r"""Drop negative-advantage sequences that drifted too far off-policy.

    $m_{i,t} \leftarrow 0$ for sequence $i$ when $\bar A_i < 0$ and
    $\frac{1}{|y_i|}\sum_t \big(\log\pi_\text{behav}(y_{i,t}) - \log\pi_\theta(y_{i,t})\big) > \delta$,
    where $\pi_\text{behav}$ is the sampler (``extras["logp_rollout"]`` when present, else
    ``logp_old``). DeepSeek-AI, DeepSeek-V3.2 report (arXiv 2512.02556, "Off-Policy
    Sequence Masking"); $\delta$ is deployment-specific (default 0.5 here). The mean
    log-ratio is a sampled estimate of $\mathrm{KL}(\pi_\text{behav}\Vert\pi_\theta)$.
    """

    threshold: float = 0.5

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        advantages = state.require("advantages")
        behaviour = state.extras.get("logp_rollout")
        if behaviour is None:
            behaviour = state.require("logp_old")
        else:
            check_shape("extras['logp_rollout']", behaviour, tuple(state.mask.shape), "batch seq")
        drift = masked_mean(behaviour - state.logp.detach(), state.mask, dim=-1)
        negative = masked_mean(advantages, state.mask, dim=-1) < 0
        drop = negative & (drift > self.threshold)
        part = policy.replace(mask=policy.mask & ~drop[:, None])
        return state.add_part("policy", part).add_metrics(**{"mask/off_policy_seq_frac": drop.float().mean()})


# ---------------------------------------------------------------------------------------------
# UloRL: dynamic masking of well-mastered positive tokens
# ---------------------------------------------------------------------------------------------

__all__ += ["mastered_positive_mask", "pivotal_token_mask"]

PROB_SOURCES = ("old", "current")
GATE_SCOPES = ("sequence", "batch")


class mastered_positive_mask(_PolicyMask,
                             reads=("part:policy", "rewards", "entropy", "logp_old", "mask")):
    r"""Drop the policy loss of well-mastered tokens of correct responses while entropy is low.

    $$\mathbb 1^\text{msk}_{i,t} = \mathbb 1\big[r_i \ge r^+\big]\,
      \mathbb 1\big[p_{i,t} \ge \tau\big]\,\mathbb 1\big[\bar H_i < \sigma\big],\qquad
      m^\text{pg}_{i,t} = m_{i,t}\,(1 - \mathbb 1^\text{msk}_{i,t})$$

    with $p_{i,t} = \pi(y_{i,t})$ the probability of the sampled token (``prob_source``: the
    old policy, detached, or the current policy, detached) and
    $\bar H_i = \frac{1}{|y_i|}\sum_t H_{i,t}$ the mean full-vocab entropy of response $i$
    (``gate_scope="sequence"``, UloRL Eq. 10) or of every response token of the optimizer
    mini-batch (``"batch"``). The masked tokens leave the numerator only: the normaliser keeps every
    response token ("denominator unchanged", UloRL Eq. 9), so with the mask off the loss is
    the base loss. Masking only fires while the policy is confident, so it stops the entropy
    collapse that training on already-mastered positive tokens causes, and switches itself
    off once entropy is back above $\sigma$. ``sigma=math.inf`` gives the always-on
    "Masking MPTs" variant the paper motivates DMMPT with.

    Args:
        tau: probability threshold of a mastered token (paper 0.99; above 1 nothing is masked).
        sigma: target entropy of the gate (paper 0.2; 0 masks nothing).
        positive_reward: a response is positive when $r_i \ge$ this (paper: reward 1).
        prob_source: ``"old"`` (default; $\pi_\text{old}$, equal to $\pi_\theta$ at the start
            of a step under UloRL's pseudo-on-policy ratio) or ``"current"``.
        gate_scope: ``"sequence"`` (default, per Eq. 10) or ``"batch"``: one gate from the
            token-mean entropy of the whole optimizer mini-batch (all micro-batches and
            data-parallel ranks), computed once per mini-batch by :meth:`minibatch_stats`, so
            splitting the mini-batch into micro-batches changes no gradient; called directly
            (no statistics), the mean over the response tokens of the call. There is no
            per-micro-batch option: UloRL releases no training code, so no reference fixes a
            per-micro-batch gate.

    Example:
        >>> from rlobj import grpo
        >>> print((grpo >> mastered_positive_mask()).terms[-1])
        mastered_positive_mask(tau=0.99, sigma=0.2, positive_reward=1.0, prob_source='old', gate_scope='sequence')

    References:
        Du et al., "UloRL: An Ultra-Long Output Reinforcement Learning Approach", arXiv
        2507.19766, Sec. 3.2, Eq. 9-10 (hyper-parameters: $\tau = 0.99$, $\sigma = 0.2$). No
        training code is released; which policy defines $p$ and whether $\bar H$ is per
        response or per batch are unverified readings, offered as options.
    """

    tau: Positive = 0.99
    sigma: NonNegative = 0.2
    positive_reward: float = 1.0
    prob_source: str = "old"
    gate_scope: str = "sequence"

    def __post_init__(self):
        if self.prob_source not in PROB_SOURCES:
            raise RlobjInputError(f"mastered_positive_mask.prob_source: expected one of {PROB_SOURCES}, "
                                  f"got {self.prob_source!r}")
        if self.gate_scope not in GATE_SCOPES:
            raise RlobjInputError(f"mastered_positive_mask.gate_scope: expected one of {GATE_SCOPES}, "
                                  f"got {self.gate_scope!r}")

    def slots_read(self) -> frozenset[str]:
        return frozenset(set(self.reads) - ({"logp_old"} if self.prob_source == "current" else set()))

    def has_minibatch_stats(self) -> bool:
        return self.gate_scope == "batch"

    def minibatch_stats_reads(self) -> frozenset[str]:
        return frozenset({"entropy", "mask"})

    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        r"""``mean_entropy`` (0-dim): $\bar H$ over every response token of the mini-batch
        (``gate_scope="batch"`` only)."""
        if not self.has_minibatch_stats():
            return {}
        return {"mean_entropy": masked_mean(state.token_entropy().detach(), state.mask)}

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        rewards = state.require("rewards")
        source = state.require("logp_old") if self.prob_source == "old" else state.logp
        entropy = state.token_entropy().detach()
        if self.gate_scope == "sequence":
            mean_entropy = masked_mean(entropy, state.mask, dim=-1)
        else:
            batch_mean = state.own_stats("mean_entropy")
            if batch_mean is None:
                batch_mean = masked_mean(entropy, state.mask)
            mean_entropy = batch_mean.to(entropy.dtype).expand(state.batch_size)
        positive = rewards >= self.positive_reward
        gate = positive & (mean_entropy < self.sigma)
        masked = gate[:, None] & (source.detach().exp() >= self.tau) & state.mask
        part = policy.replace(mask=policy.mask & ~masked)
        return state.add_part("policy", part).add_metrics(**{
            "mask/mastered_frac": masked_mean(masked.float(), state.mask),
            "mask/mastered_gate_frac": gate.float().sum() / positive.float().sum().clamp(min=1),
        })


class pivotal_token_mask(Term,
                         reads=("part:policy", "mask", "extras:visual_dependency"),
                         writes=("part:policy",)):
    r"""VPPO token-level gradient filtering: the policy loss only on each response's most visually dependent tokens.

    $$m^\text{pg}_{i,t} = m_{i,t}\,\mathbb 1\big[S_{i,t} \text{ among the } \lceil k\,|y_i|\rceil \text{ largest of row } i\big]$$

    (ties by position, :func:`rlobj.terms.masks.top_fraction_mask` with ``scope="sequence"``).
    Masked tokens stay in the normaliser (token mean over all valid tokens), as in the
    reference's ``loss_token_mask``. $S$ = ``extras["visual_dependency"]``.

    Huang et al., VPPO, arXiv 2510.09285; reference ``top_p_perception_tokens`` $k = 0.4$
    (training scripts; code default 0.2).

    Args:
        k: fraction of each response's tokens kept, in $(0, 1]$.

    Example:
        >>> from rlobj import dapo
        >>> recipe = dapo >> pivotal_token_mask(k=0.4)
    """

    k: OpenFraction = 0.4

    def __call__(self, state: State) -> State:
        policy = state.require_part("policy")
        dependency = _token_extra(state, "visual_dependency", "pivotal_token_mask")
        selected = top_fraction_mask(dependency, state.mask, self.k, scope="sequence")
        part = policy.replace(mask=policy.mask & selected)
        return state.add_part("policy", part).add_metrics(
            **{"vppo/pivotal_frac": masked_mean(selected.float(), state.mask)})
