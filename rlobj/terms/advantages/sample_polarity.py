r"""Sample-class reinforcement: advantages that depend only on whether a response is correct.

Positive and negative sample reinforcement (PSR / NSR) and their weighted mix W-REINFORCE
(Zhu, Xia, Wei, Chen, Chen, Meng, "The Surprising Effectiveness of Negative Reinforcement in
LLM Reasoning", arXiv 2506.01347). The paper writes the RLVR objective with rewards
$r \in \{-1, +1\}$ as $\mathcal L_\text{RLVR} = \mathcal L_\text{PSR} + \mathcal L_\text{NSR}$
(Eq. 3-5),

$$\mathcal L_\text{PSR} = -\mathbb E_x\Big[\sum_{y: r=+1}\pi_\theta(y\mid x)\Big],\qquad
  \mathcal L_\text{NSR} = -\mathbb E_x\Big[\sum_{y: r=-1}-\pi_\theta(y\mid x)\Big],$$

and W-REINFORCE as $\lambda\,\mathcal L_\text{PSR} + \mathcal L_\text{NSR}$ (Eq. 9, $\lambda = 0.1$).
Its reference code (RLVR-Decomposed, ``compute_psr_nsr_outcome_advantage``) turns this into
per-sequence advantages fed to the PPO clip surrogate (App. C), with no baseline, no std
division and no advantage whitening. These advantages are *not* zero-sum by design.

Which responses are correct (``threshold``): by default (``threshold=None``) the rewards must
be binary, $\{0, 1\}$ (the reference's verifiers) or $\{-1, +1\}$ (the paper's notation), and
correct means the larger value; any other reward (partial credit, a format bonus, a length
penalty) is refused with an error that names ``threshold``. ``threshold=t`` splits any reward
at $t$: correct iff $r_i > t$ (the reference code has binary rewards only, so it never needs
one).
"""

import torch

from rlobj.algebra.contract import NonNegative
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.terms._common import sequence_rewards, with_advantages

__all__ = ["psr", "nsr", "w_reinforce"]


class _ClassAdvantage(Term,
                      stage="batch",
                      reads=("rewards", "token_rewards", "mask"),
                      writes=("advantages", "mask"),
                      may_read=("extras:dropped",)):

    def slots_written(self) -> frozenset[str]:
        return frozenset(self.writes if getattr(self, "drop", False) else ("advantages",))


def _keep_only(state: State, keep: torch.Tensor, advantages: torch.Tensor, drop: bool, by: str) -> State:
    """Advantages on the kept rows; the other rows are removed from the loss (``drop``) or get 0."""
    advantages = torch.where(keep, advantages, torch.zeros_like(advantages))
    if drop:
        removed = ~keep
        dropped = removed | state.extras.get("dropped", torch.zeros_like(removed))
        state = state.update(mask=state.mask & keep[:, None], extras={**state.extras, "dropped": dropped})
    return with_advantages(state, advantages).add_metrics(**{f"{by}/kept_frac": keep.float().mean()})


def correct_rows(rewards: torch.Tensor, threshold: float | None, by: str) -> torch.Tensor:
    r"""Which responses are correct: $r_i > \tau$ with an explicit ``threshold`` $\tau$; with
    ``None`` the rewards must be binary ($\{0, 1\}$ or $\{-1, +1\}$) and correct is the value 1."""
    if threshold is not None:
        return rewards > threshold
    binary = ((rewards == 0) | (rewards == 1)).all() or ((rewards == -1) | (rewards == 1)).all()
    if not bool(binary):
        odd = sorted({float(v) for v in rewards.detach().flatten().tolist()} - {0.0, 1.0, -1.0})[:5]
        raise RlobjInputError(
            f"{by}: the rewards are not binary (values such as {odd}); the reference splits 0/1 "
            f"(or -1/+1) rewards only. Pass {by}(threshold=t) to count r > t as correct")
    return rewards == 1


class psr(_ClassAdvantage):
    r"""Positive sample reinforcement: learn only from correct responses, $A_i = +1$.

    $$A_i = \mathbb 1[r_i > \tau] \quad\text{(rows with } r_i \le \tau \text{ are removed)}$$

    Zhu et al., arXiv 2506.01347, Eq. 4 and App. C: with the PPO clip this is
    $-\frac{1}{|y|}\sum_t \min(\rho_t, \mathrm{clip}(\rho_t, 1-\varepsilon, 1+\varepsilon))$ on
    correct $y$ (an SFT-like update that sharpens the distribution). The reference code keeps
    only the correct sequences of the batch; ``drop=True`` (default) does the same by removing
    the other rows from the loss and its normaliser (``mask`` rows become False and
    ``extras["dropped"]`` records them); ``drop=False`` keeps them with $A = 0$.

    Args:
        threshold: None (default): binary rewards only, correct = 1 (see the module
            docstring); or $\tau$: correct iff $r_i > \tau$ for any reward.
        drop: remove the incorrect rows (True, reference) or give them advantage 0.

    Example:
        >>> from rlobj import clip_ratio, grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, psr())  # PSR + PPO clip 0.2, per-sequence mean
    """

    threshold: float | None = None
    drop: bool = True

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        correct = correct_rows(rewards, self.threshold, "psr")
        return _keep_only(state, correct, torch.ones_like(rewards), self.drop, "psr")


class nsr(_ClassAdvantage):
    r"""Negative sample reinforcement: learn only from incorrect responses, $A_i = -1$.

    $$A_i = -\mathbb 1[r_i \le \tau] \quad\text{(rows with } r_i > \tau \text{ are removed)}$$

    Zhu et al., arXiv 2506.01347, Eq. 5 and App. C: pushes down the sampled wrong answers and,
    through the softmax, redistributes their probability mass to the other tokens in proportion
    to their current probabilities (Eq. 7-8), which keeps pass@k high. ``drop`` as in
    :class:`psr`.

    Args:
        threshold: None (binary rewards only) or $\tau$: correct iff $r_i > \tau$.
        drop: remove the correct rows (True, reference) or give them advantage 0.

    Example:
        >>> from rlobj import grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, nsr())
    """

    threshold: float | None = None
    drop: bool = True

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        wrong = ~correct_rows(rewards, self.threshold, "nsr")
        return _keep_only(state, wrong, -torch.ones_like(rewards), self.drop, "nsr")


class w_reinforce(_ClassAdvantage, writes=("advantages",)):
    r"""W-REINFORCE: $A_i = \lambda$ for correct responses, $-1$ for incorrect ones.

    $$A_i = \lambda\,\mathbb 1[r_i > \tau] - \mathbb 1[r_i \le \tau]
          = \lambda A_i^\text{PSR} + A_i^\text{NSR}$$

    Zhu et al., arXiv 2506.01347, Eq. 9 ($\mathcal L = \lambda\mathcal L_\text{PSR} +
    \mathcal L_\text{NSR}$), recommended $\lambda = 0.1$ (the reference config key
    ``positive_advantage_weight`` defaults to 1, which is REINFORCE with $\pm1$ rewards). All
    rows are kept; no baseline, no std division (whitening would cancel the weighting). The
    paper's runs use PPO clip 0.2, no KL and an entropy bonus of 1e-4.

    Args:
        lam: $\lambda \ge 0$, the weight of the positive samples (default 0.1).
        threshold: None (binary rewards only) or $\tau$: correct iff $r_i > \tau$.

    Example:
        >>> from rlobj import entropy_bonus, grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, w_reinforce(lam=0.1)) >> entropy_bonus(1e-4)
    """

    lam: NonNegative = 0.1
    threshold: float | None = None

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state)
        correct = correct_rows(rewards, self.threshold, "w_reinforce")
        advantages = torch.where(correct, torch.full_like(rewards, self.lam), -torch.ones_like(rewards))
        return with_advantages(state, advantages).add_metrics(**{"w_reinforce/correct_frac": correct.float().mean()})
