r"""Advantage estimators that compare a response with a chosen part of its group.

* :class:`canon_advantage`: CANON conditional advantage estimation (Chen, Li, Jiang, Qian, Ren,
  Yang, Cheng, Liu, Shao, "Conditional Advantage Estimation for Reinforcement Learning in Large
  Reasoning Models", arXiv 2509.23962). Each prompt group is split at the median of a metric
  (mean token entropy or length) and each response is compared with the *other* half (which
  trend of the metric pays) and with its *own* half (which response is better given the trend).
* :class:`brpo_advantage`: BRPO bootstrapped relative advantages (Writing-Zero, Jia et al.,
  arXiv 2506.00103). One response per group is the temporary reference; a pairwise judge says
  whether each other response beats it, and the verdict itself is the advantage.

Both run in the batch stage, write ``advantages`` and take the place of ``group_zscore`` /
``group_mean_baseline`` in a recipe.
"""

from typing import Annotated

import torch
from torch import Tensor

from rlobj.algebra.contract import Fraction, Positive, Range
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError, check_shape
from rlobj.ops.reductions import sequence_lengths, sequence_mean
from rlobj.terms._common import check_range, require_groups, sequence_rewards, with_advantages

__all__ = ["canon_advantage", "conditional_halves", "brpo_advantage", "pick_references"]


def conditional_halves(metric: Tensor, group_ids: Tensor) -> Tensor:
    r"""CANON regrouping: True for the members of $C^+$ (the upper half of the metric in each group).

    Each group (size $n$) is sorted by ``metric`` ascending with a *stable* sort, so ties keep
    batch order; the first $\lfloor n/2\rfloor$ form $C^-$, the rest $C^+$ ($C^+$ gets the
    extra member when $n$ is odd).
    """
    high = torch.zeros(metric.shape, dtype=torch.bool, device=metric.device)
    for gid in torch.unique(group_ids):
        rows = (group_ids == gid).nonzero().flatten()
        order = torch.sort(metric[rows].float(), stable=True).indices
        high[rows[order[rows.numel() // 2:]]] = True
    return high


class canon_advantage(Term,
                      stage="batch",
                      reads=("rewards", "token_rewards", "group_ids", "mask", "entropy"),
                      writes=("advantages",)):
    r"""CANON: advantages against the other half (inter) and the own half (intra) of a metric split.

    Split each group at the median of the metric $m_i$ into $C^-$ (low) and $C^+$ (high) (see
    :func:`conditional_halves`); $\mu^\pm$ = mean reward of $C^\pm$. With $\alpha = 1$,
    $\beta = 0$:

    $$A_i = \frac{1}{L}\Big[\mu_w\,\big(r_i - \mu^{\bar c(i)}\big) + (1-\mu_w)\,\big(r_i - \mu^{c(i)}\big)\Big]$$

    where $c(i)$ is the half of $i$ and $\bar c(i)$ the other one: the first bracket is the
    inter-group estimate (which trend of the metric is better), the second the intra-group one
    (which response is better under the same trend). The asymmetry knob $\alpha$ and bias
    $\beta$ of the reference code (paper Eq. 8) enter the inter-group part as

    * entropy (and index) metric: $C^+$: $r_i - \alpha\mu^- + \beta$; $C^-$: $\alpha r_i - \mu^+ - \beta$;
    * length metric: $C^+$ (long): $\alpha r_i - \mu^- + \beta$; $C^-$ (short): $r_i - \alpha\mu^+ - \beta$.

    No std division. $\mu_w = \tfrac12$ with even groups, $\alpha = 1$, $\beta = 0$ is exactly
    Dr. GRPO's $r_i - \mathrm{mean}_g r$, since $(\mu^+ + \mu^-)/2$ is then the group mean.

    Metrics (``metric``): ``"entropy"``: $m_i$ = mean over valid tokens of the per-token
    entropy (the ``entropy`` field, else computed from ``vocab``); ``"length"``: $m_i = |y_i|$;
    ``"index"``: $m_i$ = position of the response inside its group in batch order (the
    paper's random-regrouping control).

    Reference defaults (biuboomc/CANON, ``scripts/setups.sh``; README: ``_lambda`` is $\mu_w$
    of Eq. 5, ``alpha`` is $\alpha$ of Eq. 8): $\mu_w = 1$ (pure inter-group), $\alpha = 1$,
    $\beta = 0$, 16 rollouts, clip high 0.28, ``seq-mean-token-sum`` aggregation with the
    advantage divided by $L = 8192$, no KL. Here ``norm_const`` $L$ defaults to 1: put the
    constant into the aggregation instead (``constant_normalizer``, as ``dr_grpo`` does) or
    set ``norm_const=8192`` with ``seq_mean_token_sum()`` to copy the reference.

    ``schedule="anneal"`` is the reference's First-Intra-Later-Inter variant: $\mu_w$ = the
    batch accuracy (fraction of rows with $r_i > 0.5$) instead of ``mu``. The cosine-restart
    schedule of the reference is not implemented. UNVERIFIED (the paper body was not read):
    the meaning of Eq. 8's $\alpha$ beyond the code, the tie rule (stable sort here) and the
    accuracy definition of the anneal schedule for non-binary rewards.

    Args:
        metric: ``"entropy"``, ``"length"`` or ``"index"``.
        mu: $\mu_w \in [0, 1]$, weight of the inter-group estimate.
        alpha: $\alpha$ (Eq. 8), 1 = symmetric.
        beta: $\beta$, additive bias of the inter-group estimate.
        norm_const: $L > 0$, divides the advantage.
        schedule: ``"constant"`` ($\mu_w$ = ``mu``) or ``"anneal"`` ($\mu_w$ = batch accuracy).

    Returns:
        The state with ``advantages`` (per sequence, broadcast to its tokens; no gradient) and
        the metrics ``canon/mu_high``, ``canon/mu_low`` (batch means of $\mu^\pm$) and ``canon/mu_w``.

    Example:
        >>> from rlobj import dr_grpo, group_mean_baseline
        >>> recipe = dr_grpo.replace(group_mean_baseline, canon_advantage(metric="entropy", mu=1.0))

    References:
        Chen et al., arXiv 2509.23962, Eq. 5 (inter/intra mix) and Eq. 8 ($\alpha$);
        reference code ``compute_dr_entropy_per_token_group_outcome_advantage`` and
        ``compute_dr_length_on_mean_group_outcome_advantage`` (biuboomc/CANON).
    """

    metric: str = "entropy"
    mu: Fraction = 1.0
    alpha: float = 1.0
    beta: float = 0.0
    norm_const: Positive = 1.0
    schedule: str = "constant"

    def __post_init__(self):
        if self.metric not in ("entropy", "length", "index"):
            raise RlobjInputError(f"canon_advantage.metric: expected 'entropy', 'length' or 'index', got {self.metric!r}")
        if self.schedule not in ("constant", "anneal"):
            raise RlobjInputError(f"canon_advantage.schedule: expected 'constant' or 'anneal', got {self.schedule!r}")

    def metric_values(self, state: State, group_ids: Tensor) -> Tensor:
        """$m_i$ per sequence (no gradient)."""
        if self.metric == "entropy":
            return sequence_mean(state.token_entropy().detach().float(), state.mask)
        if self.metric == "length":
            return sequence_lengths(state.mask)
        position = torch.zeros(group_ids.shape, dtype=torch.float32, device=group_ids.device)
        for gid in torch.unique(group_ids):
            rows = (group_ids == gid).nonzero().flatten()
            position[rows] = torch.arange(rows.numel(), dtype=torch.float32, device=rows.device)
        return position

    def __call__(self, state: State) -> State:
        rewards = sequence_rewards(state).detach()
        group_ids = require_groups(state, minimum=2)
        high = conditional_halves(self.metric_values(state, group_ids), group_ids)
        mu_high = _half_mean(rewards, group_ids, high)  # mu^+ of each row's group
        mu_low = _half_mean(rewards, group_ids, ~high)  # mu^- of each row's group
        mu_w = (rewards > 0.5).to(rewards.dtype).mean() if self.schedule == "anneal" else rewards.new_tensor(self.mu)
        a, b = self.alpha, self.beta
        if self.metric == "length":
            inter = torch.where(high, a * rewards - mu_low + b, rewards - a * mu_high - b)
        else:
            inter = torch.where(high, rewards - a * mu_low + b, a * rewards - mu_high - b)
        intra = rewards - torch.where(high, mu_high, mu_low)
        advantages = (mu_w * inter + (1 - mu_w) * intra) / self.norm_const
        return with_advantages(state, advantages).add_metrics(
            **{"canon/mu_high": mu_high.mean(), "canon/mu_low": mu_low.mean(), "canon/mu_w": mu_w})


def _half_mean(rewards: Tensor, group_ids: Tensor, member: Tensor) -> Tensor:
    """Mean reward of the rows with ``member`` True in each row's group, returned per row."""
    out = torch.zeros_like(rewards)
    for gid in torch.unique(group_ids):
        rows = group_ids == gid
        out[rows] = rewards[rows & member].mean()
    return out


def pick_references(group_ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""BRPO: choose one temporary reference per group uniformly at random.

    Returns a bool tensor ``" batch"``, True at exactly one row of every group, for the
    pairwise judge to compare the other responses with (``extras["pairwise_reference"]`` of
    :class:`brpo_advantage`). The randomness comes only from ``generator`` (pass a seeded one
    for reproducible runs).
    """
    chosen = torch.zeros(group_ids.shape, dtype=torch.bool, device=group_ids.device)
    for gid in torch.unique(group_ids):
        rows = (group_ids == gid).nonzero().flatten()
        pick = int(torch.randint(rows.numel(), (1,), generator=generator))
        chosen[rows[pick]] = True
    return chosen


_REF, _WINS = "pairwise_reference", "pairwise_wins"


class brpo_advantage(Term,
                     stage="batch",
                     reads=("group_ids", "mask", f"extras:{_REF}", f"extras:{_WINS}"),
                     writes=("advantages", "mask"),
                     may_read=("extras:dropped",)):
    r"""BRPO: the pairwise verdict against a random in-group reference is the advantage.

    One response per group is the reference (``extras["pairwise_reference"]``, from
    :func:`pick_references`). A pairwise judge compares every other response $o_i$ with it
    under $V$ voting conditions (e.g. both presentation orders), given as
    ``extras["pairwise_wins"]`` (``" batch"`` or ``"batch V"``, 1 where $o_i$ won):

    $$A_i = R_i = \begin{cases} 0 & i = \mathrm{ref}\\ +1 & o_i \text{ wins under all } V \text{ conditions}\\
      -1 & o_i \text{ loses under all conditions}\\ \kappa & \text{mixed verdicts}\end{cases}$$

    No mean or std normalisation. Dynamic filter: a group is dropped (its rows leave the loss
    and its normaliser; ``extras["dropped"]`` records them) when
    $|\sum_{i\in g} R_i| / D > \tau$, i.e. the reference is an extreme outlier.

    Reference defaults (Writing-Zero, Jia et al., arXiv 2506.00103, Sec. 3; no official code):
    $\kappa = -1$ (inconsistent judgments count as losses), $\tau = 0.6$ ("more than 9 of 16"),
    $D = G$ (group size). UNVERIFIED (secondary sources only): whether the filter divides by
    $G$ or $G - 1$ (``filter_denominator``), strict ">" (used here), and $\kappa$ (the paper calls
    0 vs -1 an open choice; ``inconsistent``). ``filter_threshold=None`` switches the filter off.

    Args:
        inconsistent: $\kappa$, the advantage of a response with mixed verdicts.
        filter_threshold: $\tau \ge 0$, or None for no filter.
        filter_denominator: ``"group"`` ($D = G$) or ``"others"`` ($D = G - 1$).

    Returns:
        The state with ``advantages`` (no gradient), the mask without the filtered groups, and
        the metrics ``brpo/win_frac`` and ``brpo/filtered_frac``.

    Example:
        >>> from rlobj import grpo, group_zscore
        >>> recipe = grpo.replace(group_zscore, brpo_advantage(filter_threshold=0.6))  # reads extras["pairwise_*"]

    References:
        Jia et al., "Writing-Zero: Bridge the Gap Between Non-verifiable Tasks and Verifiable
        Rewards", arXiv 2506.00103 (BRPO advantage and the dynamic filter).
    """

    inconsistent: Annotated[float, Range(ge=-1.0, le=1.0)] = -1.0
    filter_threshold: float | None = 0.6
    filter_denominator: str = "group"

    def __post_init__(self):
        if self.filter_threshold is not None:
            check_range("brpo_advantage", "filter_threshold", self.filter_threshold, low=0.0)
        if self.filter_denominator not in ("group", "others"):
            raise RlobjInputError(
                f"brpo_advantage.filter_denominator: expected 'group' or 'others', got {self.filter_denominator!r}")

    def slots_written(self) -> frozenset[str]:
        return frozenset(("advantages", "mask") if self.filter_threshold is not None else ("advantages",))

    def verdicts(self, state: State, group_ids: Tensor) -> Tensor:
        r"""$R_i$ per sequence, from the reference flags and the judge's wins."""
        reference, wins = _pairwise_inputs(state, group_ids)
        won_all, lost_all = wins.all(dim=1), (~wins).all(dim=1)
        values = torch.where(won_all, 1.0, torch.where(lost_all, -1.0, self.inconsistent))
        return torch.where(reference, 0.0, values).to(state.logp.dtype)

    def __call__(self, state: State) -> State:
        group_ids = require_groups(state, minimum=2)
        verdicts = self.verdicts(state, group_ids)
        state = with_advantages(state, verdicts)
        metrics = {"brpo/win_frac": (verdicts > 0).float().mean()}
        if self.filter_threshold is not None:
            totals = torch.zeros_like(verdicts)
            sizes = torch.zeros_like(verdicts)
            for gid in torch.unique(group_ids):
                rows = group_ids == gid
                totals[rows] = verdicts[rows].sum()
                sizes[rows] = float(rows.sum()) - (1.0 if self.filter_denominator == "others" else 0.0)
            drop = totals.abs() / sizes > self.filter_threshold
            dropped = drop | state.extras.get("dropped", torch.zeros_like(drop))
            state = state.update(mask=state.mask & ~drop[:, None], extras={**state.extras, "dropped": dropped})
            metrics["brpo/filtered_frac"] = drop.float().mean()
        return state.add_metrics(**metrics)


def _pairwise_inputs(state: State, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    reference = state.require(f"extras:{_REF}", "brpo_advantage")
    wins = state.require(f"extras:{_WINS}", "brpo_advantage")
    for name, value in ((_REF, reference), (_WINS, wins)):
        if not isinstance(value, Tensor):
            raise RlobjInputError(f"extras[{name!r}]: brpo_advantage expected a tensor, got {type(value).__name__}")
    check_shape(f"extras[{_REF!r}]", reference, (state.batch_size,), "batch")
    if reference.dtype != torch.bool:
        raise RlobjInputError(f"extras[{_REF!r}]: expected a bool tensor (True at each group's reference), got {reference.dtype}")
    if wins.dim() == 1:
        wins = wins[:, None]
    if wins.dim() != 2 or wins.shape[0] != state.batch_size or wins.shape[1] < 1:
        raise RlobjInputError(
            f"extras[{_WINS!r}]: expected shape (batch,) or (batch, V) with batch={state.batch_size}, V >= 1, "
            f"got {tuple(wins.shape)}")
    if wins.dtype != torch.bool:
        if bool(((wins != 0) & (wins != 1)).any()):
            raise RlobjInputError(f"extras[{_WINS!r}]: expected bool or 0/1 verdicts, got other values")
        wins = wins != 0
    for gid in torch.unique(group_ids):
        count = int(reference[group_ids == gid].sum())
        if count != 1:
            raise RlobjInputError(
                f"extras[{_REF!r}]: expected exactly one reference per group, got {count} in group {int(gid)}")
    return reference, wins
