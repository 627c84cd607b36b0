r"""Advantages from tree statistics: node-level values of a search tree to per-token advantages.

* :class:`tree_value_advantage`: DeepSearch (Wu et al., "DeepSearch: Overcome the Bottleneck
  of Reinforcement Learning with Verifiable Rewards via Monte Carlo Tree Search", arXiv
  2509.25454). Each token of a training path takes the value of the search node (reasoning
  step) it belongs to, squashed by ``tanh`` on intermediate steps, and is normalised with the
  statistics of the paths' final values in its group.

Reads ``extras:node_values`` and ``extras:step_ends`` (``"batch seq"``), which
:class:`~rlobj.train.search_samplers.MCTSSampler` attaches to its rows; runs in the batch stage
and takes the place of ``group_zscore`` in a recipe.
"""

import torch
from torch import Tensor

from rlobj.algebra.contract import NonNegative, Positive
from rlobj.algebra.state import State
from rlobj.algebra.term import Term
from rlobj.ops.reductions import group_count, group_mean, group_std
from rlobj.terms._common import require_extra, require_groups, with_advantages

__all__ = ["tree_value_advantage", "leaf_step_tokens"]


def leaf_step_tokens(step_ends: Tensor, mask: Tensor) -> Tensor:
    r"""True on the valid tokens of each row's last step (the leaf of its path).

    A token's step index is the number of step ends strictly before it; the leaf step is the
    step index of the row's last valid token.

    Example:
        >>> ends = torch.tensor([[False, True, False, True, False]])
        >>> leaf_step_tokens(ends, torch.tensor([[True, True, True, True, False]])).tolist()
        [[False, False, True, True, False]]
    """
    ends = (step_ends & mask).long()
    index = torch.cumsum(ends, dim=-1) - ends
    last = torch.where(mask, index, torch.full_like(index, -1)).amax(dim=-1, keepdim=True)
    return mask & (index == last)


class tree_value_advantage(Term,
                           stage="batch",
                           reads=("extras:node_values", "extras:step_ends", "group_ids", "mask"),
                           writes=("advantages",)):
    r"""DeepSearch's per-token advantages from node values (``compute_mcts_outcome_advantage``).

    With $v_{i,t}$ the value $W$ of the node that token $t$ of path $i$ belongs to
    (``extras:node_values``), the token score is
    $$ s_{i,t} = \begin{cases} v_{i,t} & t \text{ in the leaf step} \\
                 q_\max \tanh(v_{i,t} / T) & \text{otherwise} \end{cases} $$
    ($T$ = ``temperature``; $T = 0$ leaves every value as is), $f_i$ = $s$ at the last valid
    token of row $i$ (the leaf's value), and
    $$ A_{i,t} = \frac{s_{i,t} - \mathrm{mean}_{g(i)} f}{\mathrm{std}_{g(i)} f + \varepsilon} $$
    with the population std (the reference's ``sibling_mean_std``) when ``scale_by_std``;
    by default (the reference's run scripts) $A_{i,t} = s_{i,t} - \mathrm{mean}_{g(i)} f$. A
    group of one path is centred on 0 and not divided. Zero on padding.

    Warning:
        With ``scale_by_std=True`` and every path of a group at the same final value, the
        reference divides by $0 + \varepsilon$, which multiplies the intermediate tokens' scores
        by $10^6$; here such a group, like a group of one, is not divided.

    Note:
        In a group where every path failed, the leaf tokens get $A = 0$ and the earlier steps
        $A = q_\max\tanh(W/T) + 1 > 0$ (the reference's formula): with a weak policy this
        pushes up the prefixes of failed answers. ``informative_groups`` before the objective
        drops such groups (see the demonstration on the "Search in training" page).

    Args:
        temperature: $T \ge 0$ (``adv_temperature``). Default 1.0.
        q_max: $q_\max > 0$ (``q_value_max``). Default 1.0.
        eps: $\varepsilon \ge 0$. Default 1e-6 (the reference's).
        scale_by_std: divide by the group std (``norm_adv_by_std_in_grpo``). Default False, as
            the reference's training scripts set it (``round0.sh``:
            ``algorithm.norm_adv_by_std_in_grpo=False``; the function's own default is True).

    Returns:
        The state with ``advantages`` (no gradient).

    Example:
        >>> import torch
        >>> from rlobj.algebra import State
        >>> s = State.from_batch(logp=torch.zeros(2, 2), mask=torch.ones(2, 2, dtype=torch.bool),
        ...     rewards=torch.tensor([0.0, 1.0]), group_ids=torch.tensor([0, 0]),
        ...     extras={"node_values": torch.tensor([[-0.5, -1.0], [0.5, 1.0]]),
        ...             "step_ends": torch.ones(2, 2, dtype=torch.bool)})
        >>> [[round(a, 4) for a in row] for row in tree_value_advantage()(s).advantages.tolist()]
        [[-0.4621, -1.0], [0.4621, 1.0]]

    References:
        arXiv 2509.25454 (DeepSearch), reference code github.com/smiles724/DeepSearch
        @ 9c80532: ``deepsearch/reward_manager/advantage_fn.py`` and the ``rm_scores`` of
        ``deepsearch/rollout/sglang_mcts_wrapper.py`` (tanh on all but the last node).
    """

    temperature: NonNegative = 1.0
    q_max: Positive = 1.0
    eps: NonNegative = 1e-6
    scale_by_std: bool = False

    def __call__(self, state: State) -> State:
        mask = state.mask
        values = require_extra(state, "node_values", "tree_value_advantage", tuple(mask.shape), "batch seq", "float")
        ends = require_extra(state, "step_ends", "tree_value_advantage", tuple(mask.shape), "batch seq", "bool")
        group_ids = require_groups(state)
        values = torch.where(mask, values.float(), torch.zeros_like(values, dtype=torch.float32))
        scores = values
        if self.temperature > 0:
            scores = torch.where(leaf_step_tokens(ends, mask), values, self.q_max * torch.tanh(values / self.temperature))
        last = (mask.long().cumsum(-1) == mask.long().sum(-1, keepdim=True)) & mask
        final = (scores * last).sum(-1)
        alone = group_count(group_ids) == 1
        mean = torch.where(alone, torch.zeros_like(final), group_mean(final, group_ids))
        std = group_std(final, group_ids, unbiased=False)
        scale = torch.where(alone | (std == 0), torch.ones_like(final), std + self.eps)
        centred = scores - mean[:, None]
        advantages = centred / scale[:, None] if self.scale_by_std else centred
        return with_advantages(state, per_token=torch.where(mask, advantages, torch.zeros_like(advantages)))
