"""The pure tree search (rlobj/rollout/mcts.py) on toy trees with known rewards."""

import dataclasses
import math

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.mcts import MCTSConfig, SearchTree, StepSample, run_search


class ToyTree:
    """A fixed tree: the children of a path are ``children[path]`` (token, logp) pairs; a leaf's
    reward is ``rewards[path]``. Records every expansion request."""

    def __init__(self, children, rewards, depth):
        self.children, self.rewards, self.depth = children, rewards, depth
        self.expanded = []

    def bind(self, trees):
        self.trees = trees
        return self

    def expand(self, requests):
        out = []
        for i, node in requests:
            path = tuple(self.trees[i].path_tokens(node))
            self.expanded.append(path)
            out.append([StepSample((token,), (logp,), finished=False, cost=1) for token, logp in self.children[path]])
        return out

    def evaluate(self, requests):
        return [self.rewards[tuple(self.trees[i].path_tokens(node))] for i, node in requests]

    def complete(self, requests):  # greedy completion: always the first child
        out = []
        for i, node in requests:
            path = tuple(self.trees[i].path_tokens(node))
            tokens, logps = [], []
            while len(path) + len(tokens) < self.depth:
                token, logp = self.children[path + tuple(tokens)][0]
                tokens.append(token)
                logps.append(logp)
            out.append(StepSample(tuple(tokens), tuple(logps), finished=False, cost=len(tokens)))
        return out


def two_by_two():
    # root -> A (1), B (2); A -> A1 (3), A2 (4); B -> B1 (5), B2 (6); only B2 is correct
    children = {(): [(1, -0.2), (2, -0.3)], (1,): [(3, -1.0), (4, -0.5)], (2,): [(5, -0.1), (6, -2.0)]}
    rewards = {(1, 3): 0.0, (1, 4): 0.0, (2, 5): 0.0, (2, 6): 1.0}
    return ToyTree(children, rewards, depth=2)


def test_two_by_two_statistics_equal_the_hand_computation():
    config = MCTSConfig(width=2, max_depth=2, step_tokens=1)
    trees = [SearchTree(config, paths=2, length_limit=10)]
    toy = two_by_two().bind(trees)
    chosen = run_search(trees, toy.expand, toy.evaluate, complete=toy.complete)
    tree = trees[0]
    # round 1 expands the root; no terminal child, UCT ties at 0 (root unvisited) -> A (first)
    # round 2 expands A: A1, A2 both reward 0 -> value -1; lowest path entropy: A2 (0.35 < 0.6)
    # backup of -1 from A2 (L = 3): A2 w=1 -> -1; A w=2/3 -> -2/3; root w=1/3 -> -1/3
    # global frontier: only B is open -> round 3 expands B: B2 (reward 1) is chosen
    # backup of +1 from B2: B2 -> 1; B w=2/3 -> 2/3; root: -1/3 and +1 differ in sign -> 1/3 * 1
    assert toy.expanded == [(), (1,), (2,)]
    assert [tree.nodes[i].tokens for i in chosen[0]] == [(4,), (6,)]
    by_token = {node.tokens: node for node in tree.nodes}
    expected = {(): (2, 1 / 3), (1,): (2, -2 / 3), (2,): (2, 2 / 3), (3,): (0, 0.0), (4,): (1, -1.0),
                (5,): (0, 0.0), (6,): (1, 1.0)}
    for tokens, (visits, value) in expected.items():
        assert by_token[tokens].visits == visits, tokens
        assert math.isclose(by_token[tokens].value, value, abs_tol=1e-12), tokens
    assert tree.step_values(chosen[0][1]) == pytest.approx([2 / 3, 1.0])
    assert tree.stats.rounds == 3 and tree.stats.nodes == 7 and tree.stats.stop == "paths"
    assert tree.stats.search_tokens == 6 and tree.stats.fill_tokens == 0


def test_uct_and_puct_scores_by_hand():
    config = MCTSConfig(width=2, max_depth=3, step_tokens=1, c=2.0)
    tree = SearchTree(config, paths=1, length_limit=10)
    a, b = tree.add_children(0, [StepSample((1,), (-0.2,), False), StepSample((2,), (-0.9,), False)])
    tree.backup(a, 1.0)  # mean-free check: deepsearch weight at depth 1 for L = 2 is 1
    tree.backup(b, -1.0)
    tree.backup(b, -1.0)
    root = tree.nodes[0]
    assert (root.visits, tree.nodes[a].visits, tree.nodes[b].visits) == (3, 1, 2)
    assert tree.uct(a) == pytest.approx(1.0 + 2.0 * math.sqrt(math.log(3) / 1))
    assert tree.uct(b) == pytest.approx(-1.0 + 2.0 * math.sqrt(math.log(3) / 2))
    puct = SearchTree(MCTSConfig(width=2, max_depth=3, step_tokens=1, selection="puct", c=2.0), 1, 10)
    a, b = puct.add_children(0, [StepSample((1,), (-0.2,), False), StepSample((2,), (-0.9,), False)])
    prior_a = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-0.9))
    assert puct.nodes[a].prior == pytest.approx(prior_a)
    puct.backup(a, 1.0)
    assert puct.uct(a) == pytest.approx(1.0 + 2.0 * prior_a * math.sqrt(1) / 2)
    assert puct.uct(b) == pytest.approx(0.0 + 2.0 * (1 - prior_a) * math.sqrt(1) / 1)


def test_mean_backup_and_deepsearch_sign_rule():
    mean = SearchTree(MCTSConfig(width=1, max_depth=3, step_tokens=1, backup="mean"), 1, 10)
    (a,) = mean.add_children(0, [StepSample((1,), (0.0,), False)])
    mean.backup(a, 1.0)
    mean.backup(a, -0.5)
    assert (mean.nodes[a].visits, mean.nodes[a].value, mean.nodes[a].q) == (2, 0.5, 0.25)
    deep = SearchTree(MCTSConfig(width=1, max_depth=3, step_tokens=1), 1, 10)
    (a,) = deep.add_children(0, [StepSample((1,), (0.0,), False)])
    (b,) = deep.add_children(a, [StepSample((2,), (0.0,), False)])
    deep.backup(b, 1.0)   # L = 3: b w=1, a w=2/3, root w=1/3
    deep.backup(b, -1.0)  # a failure does not erase a success
    assert deep.nodes[a].value == pytest.approx(2 / 3) and deep.nodes[0].value == pytest.approx(1 / 3)
    deep.backup(a, -1.0)
    assert deep.nodes[a].value == pytest.approx(2 / 3)


def graded_tree(width=3, depth=3):
    """Token 0 is the right step at every depth; reward = fraction of right steps; the best
    leaf (all right) is the one a uniform sampler finds with probability width**-depth."""
    children, rewards = {}, {}

    def grow(path):
        if len(path) == depth:
            rewards[path] = sum(t == 0 for t in path) / depth
            return
        # the right step is sampled last and is the least likely: a pure likelihood search misses it
        children[path] = [(t, -0.1 * (t + 1)) for t in (1, 2, 0)[:width]] if width == 3 else \
            [(t, -0.1) for t in range(width)]
        for token, _ in children[path]:
            grow(path + (token,))

    grow(())
    return ToyTree(children, rewards, depth)


@pytest.mark.parametrize("backtrack", ["global", "uct"])
def test_search_finds_the_best_leaf_within_the_node_budget(backtrack):
    # the right step is sampled last at every node (ties go to the first child), so a search that
    # followed sampling order alone would need the whole tree; 34 of 40 nodes suffice
    full = 1 + 3 + 9 + 27
    config = MCTSConfig(width=3, max_depth=3, step_tokens=1, backtrack=backtrack, node_budget=34)
    trees = [SearchTree(config, paths=27, length_limit=10)]
    toy = graded_tree().bind(trees)
    chosen = run_search(trees, toy.expand, toy.evaluate)
    tree = trees[0]
    best = max(tree.nodes[i].reward for i in chosen[0])
    assert best == 1.0  # the all-right leaf, found with fewer nodes than the full tree
    assert tree.stats.nodes <= 34 < full
    assert [tree.path_tokens(i) for i in chosen[0] if tree.nodes[i].reward == 1.0] == [[0, 0, 0]]


def test_batched_trees_are_independent_and_one_expand_call_per_round():
    config = MCTSConfig(width=2, max_depth=2, step_tokens=1)
    trees = [SearchTree(config, paths=2, length_limit=10) for _ in range(3)]
    toy = two_by_two().bind(trees)
    calls = []

    def expand(requests):
        calls.append(len(requests))
        return toy.expand(requests)

    chosen = run_search(trees, expand, toy.evaluate)
    assert calls == [3, 3, 3]
    assert all([trees[k].nodes[i].tokens for i in chosen[k]] == [(4,), (6,)] for k in range(3))


def test_token_budget_stops_search_and_fill_completes_the_group():
    config = MCTSConfig(width=2, max_depth=2, step_tokens=1, token_budget=3)  # one round costs 2 tokens
    trees = [SearchTree(config, paths=2, length_limit=10)]
    toy = two_by_two().bind(trees)
    chosen = run_search(trees, toy.expand, toy.evaluate, complete=toy.complete)
    tree = trees[0]
    assert tree.stats.rounds == 1 and tree.stats.stop == "token_budget"
    assert tree.stats.search_tokens == 2 <= config.token_budget
    # fill: two completions of the best open nodes (A, then B), greedy -> A1 and B1
    assert sorted(tuple(tree.path_tokens(i)) for i in chosen[0]) == [(1, 3), (2, 5)]
    assert tree.stats.fill_tokens == 2


def test_bad_config_is_refused_with_the_field_named():
    with pytest.raises(RlobjInputError, match="MCTSConfig.width"):
        MCTSConfig(width=0)
    with pytest.raises(RlobjInputError, match="MCTSConfig.backtrack"):
        MCTSConfig(backtrack="bfs")
    with pytest.raises(RlobjInputError, match="MCTSConfig.delimiter_ids"):
        MCTSConfig(delimiter_ids=(-1,))
    with pytest.raises(RlobjInputError, match="frontier_weights"):
        MCTSConfig(frontier_weights=(1.0, 2.0))


def _global_trees(token_budget=None):
    config = MCTSConfig(width=2, max_depth=4, step_tokens=1, frontier_weights=(0.4, 0.4, 0.01, 0.0),
                        frontier_scope="global", token_budget=token_budget)
    trees = [SearchTree(config, paths=2, length_limit=10) for _ in range(3)]

    def kids(tree, parent, a, b):
        return tree.add_children(parent, [StepSample((a,), (-0.1,), False, cost=1), StepSample((b,), (-0.2,), False, cost=1)])

    a, _ = kids(trees[0], 0, 1, 2)
    trees[0].backup(a, 1.0)      # deepsearch backup, L = 2: A.W = 1, root.W = 1/2 -> Q(root0) = 0.5
    c, _ = kids(trees[1], 0, 3, 4)
    trees[1].backup(c, -1.0)     # C.W = -1, root.W = -1/2 -> Q(root1) = -0.5
    e, _ = kids(trees[2], 0, 5, 6)
    kids(trees[2], e, 7, 8)      # no values: depth decides
    return trees


def test_global_frontier_ranks_open_nodes_of_all_trees_together_by_hand():
    from rlobj.rollout.mcts import global_frontier

    trees = _global_trees()
    # F(s) = 0.4 tanh Q(parent) + 0.01 sqrt(d / 4):
    # tree 0: A (node 1), B (node 2): 0.4 tanh(0.5) + 0.01 * 0.5 = 0.189848...
    # tree 1: C (1), D (2): 0.4 tanh(-0.5) + 0.005 = -0.179848...
    # tree 2: F (2) at depth 1: 0.005; E1 (3), E2 (4) at depth 2 under E (Q 0): 0.01 sqrt(1/2) = 0.007071...
    high, low = 0.4 * math.tanh(0.5) + 0.005, 0.4 * math.tanh(-0.5) + 0.005
    assert trees[0].frontier_score(1) == pytest.approx(high) and trees[1].frontier_score(2) == pytest.approx(low)
    assert trees[2].frontier_score(3) == pytest.approx(0.01 * math.sqrt(0.5))
    assert trees[2].frontier_score(2) == pytest.approx(0.005)
    # three expansions (one per searching tree): A, B (tree 0) then E1 (tree 2); tree 1 gets none
    assert global_frontier(trees, [0, 1, 2]) == [(0, 1), (0, 2), (2, 3)]
    # per tree: only the reference's own-tree choice
    assert [t.global_select() for t in trees] == [1, 1, 3]


def test_global_frontier_respects_each_trees_budget_and_the_expansion_count():
    from rlobj.rollout.mcts import global_frontier

    trees = _global_trees(token_budget=10)  # a round costs width * step_tokens = 2 tokens
    trees[0].stats.search_tokens = 8        # tree 0: room for one more expansion
    assert [t.expansions_left() for t in trees] == [1, 4, 3]
    config = dataclasses.replace(trees[0].config, global_expansions=5)
    for tree in trees:
        tree.config = config
    # ranking A, B, E1, E2, F, C, D; B is skipped (tree 0 is out of room); five taken
    assert global_frontier(trees, [0, 1, 2]) == [(0, 1), (1, 1), (2, 2), (2, 3), (2, 4)]


def test_global_scope_search_runs_to_the_paths_and_keeps_rounds_within_the_limit():
    config = MCTSConfig(width=2, max_depth=2, step_tokens=1, frontier_scope="global")
    toy = two_by_two()
    trees = [SearchTree(config, paths=2, length_limit=10) for _ in range(2)]
    toy.bind(trees)
    sizes = []

    def expand(requests):
        sizes.append(len(requests))
        return toy.expand(requests)

    chosen = run_search(trees, expand, toy.evaluate, complete=toy.complete)
    # round 1: both roots (tie at 0); round 2: four depth-1 nodes tie at 0.4 tanh(0) + 0.01 sqrt(1/2):
    # tree 0's A and B win the two slots (lower tree first) and yield its two paths; round 3: tree 1
    # alone searches, one slot: its A (ties broken by node index), then B in round 4.
    assert sizes == [2, 2, 1, 1]
    assert toy.expanded == [(), (), (1,), (2,), (1,), (2,)]
    assert [len(c) for c in chosen] == [2, 2] and [t.stats.stop for t in trees] == ["paths", "paths"]
    with pytest.raises(RlobjInputError, match="frontier_scope"):
        MCTSConfig(frontier_scope="forest")
