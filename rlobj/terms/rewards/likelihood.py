r"""Rewards read off the policy's own likelihoods: terms that rewrite rewards from log-probabilities
of a second forward pass, before the advantage.

Both run in the batch stage, write ``rewards`` and go *before* the advantage term of a recipe
(``term >> grpo``). The log-probabilities come in ``extras`` (the trainer's providers compute
them); the terms hold the arithmetic, and no gradient flows through the reward.

* :class:`self_aligned_reward`: SAR, perplexity drop from conditioning on the question (arXiv 2509.05489).
* :class:`rlpr_reward`: RLPR's debiased probability of the reference answer (arXiv 2506.18254).

The other sequence rewards are in :mod:`rlobj.terms.rewards.outcome`.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, NonNegative
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_finite
from rlobj.terms._common import require_extra as _extra

__all__ = ["self_aligned_reward", "self_aligned_score", "rlpr_reward", "answer_probability"]


# --------------------------------------------------------------------------- Self-Aligned Reward
def self_aligned_score(mean_logp_given_query: Tensor, mean_logp_alone: Tensor, use_log: bool = False) -> Tensor:
    r"""$R_\text{SA} = \max\!\big(\frac{\mathrm{ppl}(a) - \mathrm{ppl}(a\mid q)}{\mathrm{ppl}(a)}, -1\big) = \max(1 - e^{\bar\ell_a - \bar\ell_{a\mid q}}, -1)$.

    $\bar\ell$ = mean token log-probability of the response with / without the query. With
    ``use_log`` the cross-entropies $H = -\bar\ell$ are compared instead of the perplexities:
    $\mathrm{clip}((H_a - H_{a\mid q}) / H_a, -1, 1)$ (UNVERIFIED reading of the reference's
    ``use_log`` switch; $H_a$ is floored at $10^{-8}$).
    """
    if use_log:
        alone = (-mean_logp_alone).clamp(min=1e-8)
        return ((mean_logp_given_query - mean_logp_alone) / alone).clamp(-1.0, 1.0)
    return (-torch.expm1(mean_logp_alone - mean_logp_given_query)).clamp(min=-1.0)  # 1 - e^x, exact near 0


class self_aligned_reward(Term,
                          stage="batch",
                          reads=("rewards", "mask", "logp_old", "extras:logp_unconditioned"),
                          writes=("rewards",)):
    r"""Self-Aligned Reward: add how much the question makes the policy's own answer more likely.

    $$r_i \leftarrow r_i + \alpha\,R_{\text{SA},i},\qquad
      R_\text{SA} = \mathrm{clip}\Big(\frac{\mathrm{ppl}(a) - \mathrm{ppl}(a\mid q)}{\mathrm{ppl}(a)}, -1, 1\Big)
      = \max\big(1 - e^{\bar\ell_a - \bar\ell_{a\mid q}},\,-1\big)$$

    where $\bar\ell_{a\mid q}$ is the mean log-probability of the whole response (reasoning and
    answer) under the rollout policy given the question (``logp_old``; ``logp`` detached when
    there is none, i.e. on-policy) and $\bar\ell_a$ the same with an *empty* user message
    (``extras["logp_unconditioned"]``, ``"batch seq"``: the chat template with the system
    prompt and no question). $R_\text{SA} > 0$ iff the question raises the answer's mean
    log-probability; it is $< 1$ always. Empty responses get $R_\text{SA} = 0$. No gradient
    flows through the reward.

    Han, Krishnan, Friedland, You, Kong, "Self-Aligned Reward: Towards Effective and Efficient
    Reasoners", arXiv 2509.05489 (ICLR 2026); reference defaults
    (amazon-science/Self-Aligned-Reward..., ``compute_ppl_qa_log``, ``reward_factors [1, 0.2]``):
    $\alpha = 0.2$, perplexity comparison (``use_log=False``), constant $\alpha$. The reward is
    for training only (validation uses the verifier reward).

    Args:
        alpha: $\alpha \ge 0$.
        use_log: compare cross-entropies instead of perplexities (see :func:`self_aligned_score`).

    Example:
        >>> from rlobj import grpo
        >>> recipe = self_aligned_reward(alpha=0.2) >> grpo
    """

    alpha: NonNegative = 0.2
    use_log: bool = False

    def score(self, state: State) -> Tensor:
        """$R_\\text{SA}$ per sequence (0 for empty rows)."""
        alone = _extra(state, "logp_unconditioned", "self_aligned_reward", tuple(state.mask.shape), "batch seq", "float")
        check_finite("extras['logp_unconditioned']", alone, where=state.mask)
        if bool((torch.where(state.mask, alone.detach(), 0) > 1e-6).any()):
            raise RlobjInputError("extras['logp_unconditioned']: log-probabilities must be <= 0 at valid tokens")
        given = state.logp_old if state.logp_old is not None else state.logp.detach()
        dtype = torch.float64 if given.dtype == torch.float64 else torch.float32
        lengths = state.mask.sum(-1).clamp(min=1).to(dtype)
        mean_given = torch.where(state.mask, given.to(dtype), 0).sum(-1) / lengths
        mean_alone = torch.where(state.mask, alone.detach().to(dtype), 0).sum(-1) / lengths
        score = self_aligned_score(mean_given, mean_alone, self.use_log)
        return torch.where(state.mask.any(-1), score, torch.zeros_like(score))

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards")
        score = self.score(state).to(rewards.dtype)
        return state.update(rewards=rewards + self.alpha * score).add_metrics(**{"sar/score": score.mean()})


# --------------------------------------------------------------------------- RLPR
def answer_probability(answer_logp: Tensor, answer_mask: Tensor, aggregate: str = "mean_prob") -> Tensor:
    r"""RLPR's probability of the reference answer $y^*$ from its per-token log-probabilities.

    ``"mean_prob"`` (reference default): $\frac{1}{|y^*|}\sum_t \pi(y^*_t\mid\cdot)$;
    ``"geo_mean"``: $\exp\frac{1}{|y^*|}\sum_t\log\pi$; ``"product"``: $\exp\sum_t \log\pi$;
    ``"mean_logp"``: $\frac{1}{|y^*|}\sum_t\log\pi$ (not a probability). 0 for rows without answer tokens.
    Use it once before training, with the initial model and the answer placed right after the
    assistant prefix, to get the prior $r_A$ (``extras["answer_prior"]``).
    """
    if aggregate not in _AGGREGATES:
        raise RlobjInputError(f"answer_probability.aggregate: expected one of {_AGGREGATES}, got {aggregate!r}")
    logp = torch.where(answer_mask, answer_logp, torch.zeros((), dtype=answer_logp.dtype))
    counts = answer_mask.sum(-1).clamp(min=1).to(answer_logp.dtype)
    if aggregate == "mean_prob":
        value = torch.where(answer_mask, logp.exp(), 0).sum(-1) / counts
    elif aggregate == "geo_mean":
        value = (logp.sum(-1) / counts).exp()
    elif aggregate == "product":
        value = logp.sum(-1).exp()
    else:
        value = logp.sum(-1) / counts
    return torch.where(answer_mask.any(-1), value, torch.zeros_like(value))


_AGGREGATES = ("mean_prob", "geo_mean", "product", "mean_logp")


class rlpr_reward(Term,
                  stage="batch",
                  reads=("rewards", "extras:answer_logp", "extras:answer_mask", "extras:answer_prior"),
                  writes=("rewards",)):
    r"""RLPR: the policy's own probability of the reference answer after its reasoning, debiased.

    $$r_i \leftarrow (1 - f)\,\max\big(0,\ r_{B,i} - r_{A,i}\big) + f\,r_i,\qquad
      r_B = \frac{1}{|y^*|}\sum_{t \in y^*} \pi(y^*_t \mid x, z_i, y^*_{<t})$$

    $r_B$: the response's ``<answer>`` content is replaced by the reference answer $y^*$ and the
    rollout policy scores it after the response's reasoning $z_i$ (per-token log-probs in
    ``extras["answer_logp"]``, ``"batch A"``, with ``extras["answer_mask"]``, bool ``"batch A"``;
    $A$ = answer length axis); $r_A$: the same probability of $y^*$ right after the assistant
    prefix with no reasoning, computed once before training with the initial model
    (``extras["answer_prior"]``, ``" batch"``; see :func:`answer_probability`). The incoming
    ``rewards`` are the format reward (1 iff one each of ``<think>``, ``</think>``,
    ``<answer>``, ``</answer>`` in order, in the reference) and get weight $f$.

    Yu et al. (OpenBMB), "RLPR: Extrapolating RLVR to General Domains without Verifiers",
    arXiv 2506.18254 (id not re-checked); reference defaults (OpenBMB/RLPR, ``prob.py``,
    ``reproduce_*.sh``): ``mean_prob`` aggregation, debiasing on, ``threshold_0`` shaping
    (negative values to 0), $f = 0.1$; GRPO with clip (0.2, 0.27), 8 rollouts, no KL; the
    std filter is :func:`rlobj.rollout.filters.std_filter`. The reference's hashed n-gram
    repetition penalty is not part of this term (add it as a separate reward).

    Args:
        format_weight: $f \in [0, 1]$.
        aggregate: see :func:`answer_probability`.
        debias: subtract $r_A$ (False: $r_B$ alone, ``extras["answer_prior"]`` not read).
        clip_at_zero: $\max(0, \cdot)$ (the reference's ``threshold_0``).

    Example:
        >>> from rlobj import clip_ratio, grpo
        >>> recipe = rlpr_reward(format_weight=0.1) >> grpo.replace(clip_ratio, clip_ratio(eps_high=0.27))
    """

    format_weight: Fraction = 0.1
    aggregate: str = "mean_prob"
    debias: bool = True
    clip_at_zero: bool = True

    def __post_init__(self):
        if self.aggregate not in _AGGREGATES:
            raise RlobjInputError(f"rlpr_reward.aggregate: expected one of {_AGGREGATES}, got {self.aggregate!r}")

    def probability_reward(self, state: State) -> Tensor:
        r"""$\hat r = \max(0, r_B - r_A)$ per sequence (no gradient)."""
        answer_logp = state.require("extras:answer_logp")
        if not isinstance(answer_logp, Tensor) or answer_logp.dim() != 2 or answer_logp.shape[0] != state.batch_size:
            got = tuple(answer_logp.shape) if isinstance(answer_logp, Tensor) else type(answer_logp).__name__
            raise RlobjInputError(f"extras['answer_logp']: rlpr_reward expected a float tensor of shape (batch A) "
                                  f"with batch={state.batch_size}, got {got}")
        answer_logp = _extra(state, "answer_logp", "rlpr_reward", tuple(answer_logp.shape), "batch A", "float").detach()
        answer_mask = _extra(state, "answer_mask", "rlpr_reward", tuple(answer_logp.shape), "batch A", "bool")
        check_finite("extras['answer_logp']", answer_logp, where=answer_mask)
        if bool((torch.where(answer_mask, answer_logp, 0) > 1e-6).any()):
            raise RlobjInputError("extras['answer_logp']: log-probabilities must be <= 0 at answer tokens")
        dtype = torch.float64 if answer_logp.dtype == torch.float64 else torch.float32  # bf16 inputs: compute in fp32
        score = answer_probability(answer_logp.to(dtype), answer_mask, self.aggregate)
        if self.debias:
            prior = _extra(state, "answer_prior", "rlpr_reward", (state.batch_size,), "batch", "float").detach()
            check_finite("extras['answer_prior']", prior)
            score = score - prior.to(dtype)
        return score.clamp(min=0.0) if self.clip_at_zero else score

    def __call__(self, state: State) -> State:
        rewards = state.require("rewards")
        probability = self.probability_reward(state).to(rewards.dtype)
        new = (1 - self.format_weight) * probability + self.format_weight * rewards
        return state.update(rewards=new).add_metrics(**{"rlpr/probability_reward": probability.mean()})
