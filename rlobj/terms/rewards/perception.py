"""VPPO's token visual dependency (Huang et al., "Spotlight on Token Perception for Multimodal
Reinforcement Learning", arXiv 2510.09285): a per-token score written once per rollout batch.

:func:`visual_dependency` is the score, :class:`visual_dependency_score` the batch-stage term
that writes it to ``extras["visual_dependency"]``, read later by VPPO's trajectory advantage
shaping (:class:`~rlobj.terms.advantages.token_credit.dependency_advantage_shaping`) and its
pivotal-token mask (:class:`~rlobj.terms.masks.token_selection.pivotal_token_mask`). It reads
``extras["logp_perturbed"]``, the log-probs of the sampled tokens under the perturbed context
(:func:`rlobj.rollout.perception.perception_forward`).
"""

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import masked_mean
from rlobj.ops.typecheck import typechecked
from rlobj.terms._perception import _perturbed_logp
from rlobj.terms.divergences.sampled_kl import kl_estimate

__all__ = ["visual_dependency", "visual_dependency_score"]


@typechecked
def visual_dependency(
    logp_perturbed: Float[Tensor, "batch seq"],
    logp_old: Float[Tensor, "batch seq"],
    mask: Bool[Tensor, "batch seq"] | None = None,
) -> Float[Tensor, "batch seq"]:
    r"""VPPO's per-token visual dependency $S_t$, the k3 estimate of the perception KL.

    $$ d_t = \mathrm{clip}(\log\pi_\text{old}(y_t\mid q, I', y_{<t}) - \log\pi_\text{old}(y_t\mid q, I, y_{<t}), -20, 20),
       \qquad S_t = \mathrm{clip}(e^{d_t} - d_t - 1, 0, 10) $$
    with $I'$ the image after random patch blackening (14-px patches, probability 0.5). $S_t$ is
    the sampled-token estimator of $\mathrm{KL}(\pi_\text{old}(\cdot\mid I)\,\Vert\,\pi_\text{old}(\cdot\mid I'))$:
    $S_t \ge 0$, $S_t = 0$ iff the two log-probs are equal, $S_t \le 10$. No gradient (both
    inputs are detached): it is a score, not a loss.

    Args:
        logp_perturbed: $\log\pi_\text{old}$ of the sampled tokens under the perturbed context.
        logp_old: $\log\pi_\text{old}$ of the same tokens under the normal context.
        mask: valid tokens; $S_t = 0$ elsewhere. Default: all valid.

    Returns:
        $S$ ``[batch, seq]``, the value for ``extras["visual_dependency"]`` (read by VPPO's
        pivotal-token mask and trajectory advantage shaping).

    Example:
        >>> s = visual_dependency(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -1.0]]))
        >>> [round(v, 4) for v in s[0].tolist()]  # e^-1 - (-1) - 1
        [0.0, 0.3679]

    References:
        Huang et al., "Spotlight on Token Perception for Multimodal Reinforcement Learning"
        (VPPO), arXiv 2510.09285, token visual dependency; reference code clamps as above.
    """
    if logp_perturbed.shape != logp_old.shape:
        raise RlobjInputError(
            f"logp_perturbed: expected the shape of logp_old {tuple(logp_old.shape)}, got {tuple(logp_perturbed.shape)}")
    score = kl_estimate(logp_old.detach(), logp_perturbed.detach(), "k3", clamp=True).clamp(min=0.0)
    if mask is not None:
        check_shape("mask", mask, tuple(logp_old.shape), "batch seq")
        score = torch.where(mask, score, torch.zeros((), dtype=score.dtype))
    return score


class visual_dependency_score(Term,
                              stage="batch",
                              reads=("logp_old", "mask", "extras:logp_perturbed"),
                              writes=("extras:visual_dependency",)):
    r"""Write VPPO's per-token visual dependency $S_{i,t}$ into ``extras["visual_dependency"]``.

    $S_{i,t}$ = :func:`visual_dependency` (``extras["logp_perturbed"]``, ``logp_old``): the
    clamped k3 estimate of $\mathrm{KL}(\pi_\text{old}(\cdot\mid I)\Vert\pi_\text{old}(\cdot\mid I'))$
    at every valid token (0 at padding), no gradient. A batch-stage term that changes no loss:
    put it before the VPPO terms that read ``extras["visual_dependency"]`` (pivotal-token mask,
    trajectory advantage shaping).

    Metric ``perception/visual_dependency`` (token mean).

    References:
        Huang et al., VPPO, arXiv 2510.09285 (spec §8.1).
    """

    def __call__(self, state: State) -> State:
        logp_old = state.require("logp_old")
        logp_perturbed = _perturbed_logp(state, "visual_dependency_score")
        score = visual_dependency(logp_perturbed, logp_old, state.mask)
        return state.update(extras={**state.extras, "visual_dependency": score}).add_metrics(
            **{"perception/visual_dependency": masked_mean(score, state.mask)}
        )
