r"""Step-level labels from a search tree (PROPA's process-reward training data).

PROPA (Jiang et al., "PROPA: Toward Process-level Optimization in Visual Reasoning via
Reinforcement Learning"; reference code github.com/YanbeiJiang/PROPA @ 8b9d77c,
``GeoMath/RL_PRM_qwen_lora/create_RM_train_qwen_grpo.py``) labels every node of its MCTS
trees (UCT with greedy rollouts, rewards in $\{0, 1\}$, mean backup) with its value and trains a
process reward model on (partial response, label) pairs. The code labels a node with
$$ \ell(s) = \frac{\log(1 + a\,Q(s))}{\log(1 + a)}, \qquad Q(s) = W(s)/N(s) \in [0, 1] $$
(``log_boost`` with $a = 10$); an unvisited node gets $\ell = 0$ when a sibling has a
non-zero value and is left out otherwise. Here $Q$ is the tree's own $Q$: use
``MCTSConfig(backup="mean", evaluation="rollout", reward_scale=1.0, reward_baseline=0.0)`` so
that it is the mean reward of the completions through the node, as in the reference.

The process reward model trained on these labels is
:class:`rlobj.train.process_reward.ProcessRewardModel` (its scorer:
:class:`~rlobj.train.process_reward.PRMScorer`), the SFT/RL interleaving
:class:`rlobj.train.interleave.SFTInterleave`. The paper's first-error search has no separate
counterpart in the reference code (it labels nodes by value) and none here.
"""

import math
from dataclasses import dataclass

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.mcts import SearchTree

__all__ = ["StepLabel", "log_boost", "step_labels"]


def log_boost(value: float, a: float = 10.0) -> float:
    r"""$\log(1 + a x)/\log(1 + a)$ on $[0, 1]$ (0 below, 1 above): PROPA's label transform.

    Example:
        >>> round(log_boost(0.5), 4), log_boost(0.0), log_boost(1.0)
        (0.7472, 0.0, 1.0)
    """
    if not a > 0:
        raise RlobjInputError(f"log_boost: a must be > 0, got {a!r}")
    if value <= 0:
        return 0.0
    if value >= 1:
        return 1.0
    return math.log(1 + a * value) / math.log(1 + a)


@dataclass(frozen=True)
class StepLabel:
    """One training example of a process reward model: the node, its response prefix (token ids
    of the path up to and including the node's step) and its label in [0, 1]."""

    node: int
    prefix: tuple[int, ...]
    label: float


def step_labels(tree: SearchTree, a: float = 10.0) -> list[StepLabel]:
    """PROPA's labels of every non-root node of ``tree`` (see the module notes), in node order."""
    out = []
    for node in tree.nodes[1:]:
        if node.visits > 0:
            label = log_boost(node.q, a)
        else:
            siblings = [tree.nodes[i] for i in tree.nodes[node.parent].children if i != node.index]
            if all(s.q == 0.0 for s in siblings):
                continue
            label = 0.0
        out.append(StepLabel(node.index, tuple(tree.path_tokens(node.index)), label))
    return out
