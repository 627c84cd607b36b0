"""PROPA's step labels from a search tree (rlobj/rollout/mcts_labels.py), by hand."""

import math

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.mcts import MCTSConfig, SearchTree, StepSample


def test_propa_step_labels_by_hand():
    from rlobj.rollout.mcts_labels import log_boost, step_labels

    config = MCTSConfig(width=2, max_depth=2, step_tokens=1, backup="mean", evaluation="rollout",
                        reward_scale=1.0, reward_baseline=0.0)
    tree = SearchTree(config, paths=1, length_limit=10)
    a, b = tree.add_children(0, [StepSample((1,), (-0.1,), False), StepSample((2,), (-0.2,), False)])
    a1, a2 = tree.add_children(a, [StepSample((3,), (-0.1,), False), StepSample((4,), (-0.1,), False)])
    tree.backup(a1, tree.value_of(1.0))
    tree.backup(a2, tree.value_of(0.0))
    labels = {label.node: (label.prefix, label.label) for label in step_labels(tree)}
    # A: Q = 1/2 -> log(1 + 5)/log(11); A1: Q = 1 -> 1; A2: Q = 0 -> 0; B: unvisited, a sibling
    # (A) has a non-zero value -> 0
    assert labels == {a: ((1,), pytest.approx(math.log(6) / math.log(11))), a1: ((1, 3), 1.0),
                      a2: ((1, 4), 0.0), b: ((2,), 0.0)}
    c, d = tree.add_children(b, [StepSample((5,), (-0.1,), False), StepSample((6,), (-0.1,), False)])
    # unvisited children whose siblings are all at 0 are left out
    assert c not in {label.node for label in step_labels(tree)} and d not in {label.node for label in step_labels(tree)}
    assert log_boost(-1.0) == 0.0 and log_boost(2.0) == 1.0
    with pytest.raises(RlobjInputError, match="log_boost: a must be > 0"):
        log_boost(0.5, a=0.0)
