r"""Monte Carlo tree search over reasoning steps: the pure tree logic (no engine, no model).

A tree holds one prompt's partial responses: the root is the prompt, a node is one *step* (a
span of sampled tokens: up to a delimiter such as a newline, or a fixed number of tokens),
its path from the root is a partial response. :func:`run_search` grows a batch of trees (one
per prompt) in rounds; what a step is and how it is sampled and scored is the caller's
``expand`` / ``evaluate`` / ``simulate`` functions (:mod:`rlobj.rollout.mcts_engine` wires them
to any rlobj engine and verifier), so everything here runs on a toy tree in tests.

One round, for every tree still searching (DeepSearch, Wu et al., arXiv 2509.25454; reference
code github.com/smiles724/DeepSearch @ 9c80532, ``deepsearch/utils/mcts.py``):

1. **expansion**: the tree's current node gets ``width`` children, sampled by ``expand``; a
   child is terminal when its step ended the response (EOS), at ``max_depth`` steps, or at the
   response's token limit.
2. **evaluation**: terminal children are scored by ``evaluate`` (the verifier); with
   ``evaluation="rollout"`` each non-terminal child is scored by one completion (``simulate``),
   otherwise (the reference code) it only gains a visit.
3. **path choice and backup**: among the round's terminal children, those of the highest
   reward, and among them the one of lowest mean token entropy proxy
   $\bar H = -\frac{1}{|y|}\sum_t \log\pi(y_t)$ over the whole path (``path_choice="entropy"``,
   the reference code's "most confident" choice) becomes a training path and is backed up;
   with ``path_choice="all"`` every terminal child is. The value $v = s\,(r - b)$ of a reward
   $r$ (``reward_scale`` $s$, ``reward_baseline`` $b$: verifier rewards in $\{0, 1\}$ become
   the reference's $\{-1, +1\}$) is backed up along the path (``backup``, see
   :meth:`SearchTree.backup`).
4. **selection**: when no child was terminal, the current node becomes its best non-terminal
   child by UCT (:meth:`SearchTree.uct`); otherwise (or when every child is terminal) the
   next node is chosen by **global frontier selection** over the whole tree
   (``backtrack="global"``, :meth:`SearchTree.frontier_score`) or by UCT descent from the
   root (``backtrack="uct"``).

**Frontier scope** (``frontier_scope``): the reference code (``select_global_best_node``)
scores the open nodes of *one* tree, so each tree expands its own best node every round
(``"tree"``, the default and what the recipe uses: it is the reference's behaviour, and every
prompt gets the same search effort, so each group is filled from its own tree). The paper's
wording (and the issue) describe one frontier over *all* trees: ``"global"`` ranks the open
nodes of every searching tree by :meth:`SearchTree.frontier_score` together and expands the
best ``global_expansions`` of them per round (default: as many as trees are searching, so a
round costs the same), several from one tree and none from another when the scores say so. A
tree never takes more expansions in a round than its node and token budgets allow; in this
scope ``stats.rounds`` counts the tree's expansions.

A tree stops when it holds ``paths`` training paths, when it has no open node left, or when
the next round would pass its node or token budget. :func:`run_search` then fills missing
paths, first with scored terminal leaves that were not chosen, then by completing open nodes
(``complete``); those tokens are counted apart (``fill_tokens``).

Differences from the reference code, on purpose: the reference's ``"uct"`` backtrack picks one
child of the root; here it descends from the root to an open leaf (classic UCT). Rewards are
whatever the verifier returns, mapped by ``reward_scale`` / ``reward_baseline`` (the reference
hard-codes $\pm 1$ and an ``incomplete_score`` for truncated answers). The reference picks
among terminal children by reward *class* (correct, then incorrect, then incomplete); here by
the highest reward, which is the same for $\{0, 1\}$ verifiers.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rlobj.ops.errors import RlobjInputError

__all__ = ["MCTSConfig", "StepSample", "SearchNode", "SearchTree", "SearchStats", "run_search", "global_frontier"]

_CHOICES = {"selection": ("uct", "puct"), "prior": ("mean_logp", "sum_logp", "uniform"),
            "backup": ("deepsearch", "mean"), "backtrack": ("global", "uct"),
            "evaluation": ("terminal", "rollout"), "path_choice": ("entropy", "all"),
            "frontier_scope": ("tree", "global"),
            "depth_bonus": ("sqrt", "log", "constant")}


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RlobjInputError(f"MCTSConfig.{name}: expected an int >= 1{' or None' if allow_none else ''}, "
                              f"got {value!r}")


@dataclass(frozen=True)
class MCTSConfig:
    r"""How the search grows its trees (defaults: DeepSearch's reference ``mcts_config``).

    Args:
        width: children sampled per expansion (``expansion_width``). Default 4.
        max_depth: largest number of steps in a path (``max_depth``; 32 in the reference). Default 8.
        step_tokens: largest number of tokens of one step (the reference's steps are exactly
            ``response_length // max_depth`` tokens). Default 16.
        delimiter_ids: token ids that end a step (e.g. the newline's id): a step is cut after
            the first of them. Empty (default): fixed-length steps of ``step_tokens``.
        selection: ``"uct"``: $Q(c) + \lambda\sqrt{\ln N(p) / N(c)}$ (0 when $N(p)$ or $N(c)$ is
            0, as the reference's ``puct``); ``"puct"``: $Q(c) + \lambda\,P(c)\sqrt{N(p)}/(1+N(c))$
            with the prior $P$ of ``prior``.
        c: $\lambda$ (``lambda_puct``). Default 2.0.
        prior: the PUCT prior over siblings, $P(c) = \mathrm{softmax}_c(\ell_c / \tau)$ with $\ell_c$
            the step's mean (``"mean_logp"``) or summed (``"sum_logp"``) sampled log-prob;
            ``"uniform"``: $1/\text{width}$.
        prior_temperature: $\tau > 0$. Default 1.0.
        backup: ``"deepsearch"`` (weighted, sign-aware; :meth:`SearchTree.backup`) or ``"mean"``
            ($W \mathrel{+}= v$, $N \mathrel{+}= 1$).
        backup_threshold: the smallest depth weight of the DeepSearch backup. Default 0.1.
        backtrack: after a terminal round, ``"global"`` frontier selection or ``"uct"`` descent.
        evaluation: non-terminal children: ``"terminal"`` (no value; the reference) or
            ``"rollout"`` (one completion each, scored and backed up).
        path_choice: ``"entropy"`` (one path per terminal round) or ``"all"``.
        frontier_weights: $(\lambda_1, \lambda_2, \lambda_3, \lambda_4)$ of
            :meth:`SearchTree.frontier_score`. Default (0.4, 0.4, 0.01, 0.0).
        depth_bonus: ``"sqrt"`` $\sqrt{d/D}$, ``"log"`` $\log(d+1)$ or ``"constant"`` $d$.
        uncertainty_bonus: add $\lambda_2 \bar H$ of the node's step to the frontier score
            (the reference's ``involve_uncertainty_bonus``, off by default).
        reward_scale, reward_baseline: the backed-up value $v = s (r - b)$. Default 2.0, 0.5.
        node_budget: most nodes per tree (root included); None: no limit.
        token_budget: most sampled tokens per tree during the search (expansions and rollouts,
            discarded tokens after a delimiter included); None: no limit.
        frontier_scope: ``"tree"`` (each tree expands its own node per round; the reference) or
            ``"global"`` (one frontier over all trees; see the module notes).
        global_expansions: expansions per round with ``frontier_scope="global"`` (None: the
            number of trees still searching).
    """

    width: int = 4
    max_depth: int = 8
    step_tokens: int = 16
    delimiter_ids: tuple[int, ...] = ()
    selection: str = "uct"
    c: float = 2.0
    prior: str = "mean_logp"
    prior_temperature: float = 1.0
    backup: str = "deepsearch"
    backup_threshold: float = 0.1
    backtrack: str = "global"
    evaluation: str = "terminal"
    path_choice: str = "entropy"
    frontier_weights: tuple[float, float, float, float] = (0.4, 0.4, 0.01, 0.0)
    depth_bonus: str = "sqrt"
    uncertainty_bonus: bool = False
    reward_scale: float = 2.0
    reward_baseline: float = 0.5
    node_budget: int | None = None
    token_budget: int | None = None
    frontier_scope: str = "tree"
    global_expansions: int | None = None

    def __post_init__(self):
        for name in ("width", "max_depth", "step_tokens"):
            _positive_int(name, getattr(self, name))
        _positive_int("global_expansions", self.global_expansions, allow_none=True)
        _positive_int("node_budget", self.node_budget, allow_none=True)
        _positive_int("token_budget", self.token_budget, allow_none=True)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise RlobjInputError(f"MCTSConfig.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        ids = tuple(self.delimiter_ids)
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise RlobjInputError(f"MCTSConfig.delimiter_ids: expected token ids (ints >= 0), got {self.delimiter_ids!r}")
        object.__setattr__(self, "delimiter_ids", ids)
        weights = tuple(float(w) for w in self.frontier_weights)
        if len(weights) != 4:
            raise RlobjInputError(f"MCTSConfig.frontier_weights: expected 4 numbers, got {self.frontier_weights!r}")
        object.__setattr__(self, "frontier_weights", weights)
        for name in ("c", "prior_temperature", "backup_threshold", "reward_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (name in ("prior_temperature", "reward_scale") and value == 0):
                raise RlobjInputError(f"MCTSConfig.{name}: expected a finite number "
                                      f"{'> 0' if name in ('prior_temperature', 'reward_scale') else '>= 0'}, got {value!r}")


@dataclass(frozen=True)
class StepSample:
    """One sampled step: its tokens, their sampled log-probs, whether it ended the response
    (EOS), and ``cost``, the tokens the engine generated for it (>= ``len(tokens)``)."""

    tokens: tuple[int, ...]
    logps: tuple[float, ...]
    finished: bool
    cost: int = 0


@dataclass
class SearchNode:
    """A node: one step of a partial response and its search statistics.

    Attributes:
        index, parent, depth: position in the tree (root: index 0, parent -1, depth 0).
        tokens, logps: the step's tokens and sampled log-probs (root: empty).
        terminal: the path ends here (EOS, depth or length limit).
        finished: the step ended with EOS.
        reward: the verifier's reward of the path (terminal nodes, once evaluated).
        visits, value: $N$ and $W$ (``Q = W / N``).
        prior: $P$ among its siblings (PUCT).
        chosen: the path to this node is a training path.
        children: indices of the children.
    """

    index: int
    parent: int
    depth: int
    tokens: tuple[int, ...] = ()
    logps: tuple[float, ...] = ()
    terminal: bool = False
    finished: bool = False
    reward: float | None = None
    visits: int = 0
    value: float = 0.0
    prior: float = 1.0
    chosen: bool = False
    children: list[int] = field(default_factory=list)

    @property
    def q(self) -> float:
        """$Q = W / N$ (0 before the first visit)."""
        return self.value / self.visits if self.visits else 0.0


@dataclass
class SearchStats:
    """What one tree's search cost: nodes, rounds, sampled tokens (search and fill) and budgets."""

    nodes: int = 1
    rounds: int = 0
    search_tokens: int = 0
    fill_tokens: int = 0
    stop: str = ""


class SearchTree:
    """One prompt's search tree (pure Python; see the module notes).

    Args:
        config: :class:`MCTSConfig`.
        paths: training paths wanted (the group size).
        length_limit: largest number of response tokens of a path (``max_new_tokens``).
    """

    def __init__(self, config: MCTSConfig, paths: int, length_limit: int):
        _positive_int("paths", paths)
        self.config, self.paths, self.length_limit = config, paths, length_limit
        self.nodes = [SearchNode(index=0, parent=-1, depth=0)]
        self.current = 0
        self.chosen: list[int] = []
        self.done = False
        self.stats = SearchStats()

    # ------------------------------------------------------------------ paths
    def path(self, index: int) -> list[SearchNode]:
        """The nodes from the root's first child down to ``index`` (the root excluded)."""
        out = []
        while index > 0:
            out.append(self.nodes[index])
            index = self.nodes[index].parent
        return out[::-1]

    def path_tokens(self, index: int) -> list[int]:
        return [t for node in self.path(index) for t in node.tokens]

    def path_logps(self, index: int) -> list[float]:
        return [lp for node in self.path(index) for lp in node.logps]

    def path_entropy(self, index: int) -> float:
        r"""$\bar H = -\mathrm{mean}_t \log\pi(y_t)$ over the path's sampled tokens (0 when empty)."""
        logps = self.path_logps(index)
        return -sum(logps) / len(logps) if logps else 0.0

    # ------------------------------------------------------------------ growth
    def add_children(self, parent: int, samples: Sequence[StepSample]) -> list[int]:
        """Append one child per sample under ``parent``; sets terminal flags and PUCT priors."""
        node = self.nodes[parent]
        length = len(self.path_tokens(parent))
        made = []
        for sample in samples:
            if len(sample.tokens) != len(sample.logps):
                raise RlobjInputError(f"StepSample: {len(sample.tokens)} tokens but {len(sample.logps)} log-probs")
            child = SearchNode(index=len(self.nodes), parent=parent, depth=node.depth + 1,
                               tokens=tuple(sample.tokens), logps=tuple(float(v) for v in sample.logps),
                               finished=bool(sample.finished))
            child.terminal = (child.finished or child.depth >= self.config.max_depth
                              or length + len(child.tokens) >= self.length_limit or not child.tokens)
            self.nodes.append(child)
            node.children.append(child.index)
            made.append(child.index)
            self.stats.search_tokens += int(sample.cost)
        self.stats.nodes = len(self.nodes)
        self._set_priors(parent)
        return made

    def _set_priors(self, parent: int) -> None:
        children = [self.nodes[i] for i in self.nodes[parent].children]
        if self.config.prior == "uniform":
            scores = [0.0] * len(children)
        else:
            scores = [(sum(c.logps) / max(len(c.logps), 1) if self.config.prior == "mean_logp" else sum(c.logps))
                      / self.config.prior_temperature for c in children]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        for child, weight in zip(children, weights, strict=True):
            child.prior = weight / sum(weights)

    # ------------------------------------------------------------------ statistics
    def value_of(self, reward: float) -> float:
        r"""$v = s\,(r - b)$ (``reward_scale``, ``reward_baseline``)."""
        return self.config.reward_scale * (reward - self.config.reward_baseline)

    def backup(self, index: int, value: float) -> None:
        r"""Back ``value`` up from node ``index`` to the root (the node itself included).

        ``"mean"``: $N \mathrel{+}= 1$, $W \mathrel{+}= v$ on every node of the path.
        ``"deepsearch"`` (the reference's ``MCTSNode.update``): with $L$ = depth of ``index`` + 1,
        each node at depth $d$ gets $N \mathrel{+}= 1$ and, with weight
        $w = \max((d+1)/L, \text{backup\_threshold})$: $W \leftarrow W + w v$ when $W v \ge 0$;
        $W \leftarrow w v$ when $v > 0 > W$ (a success overrides earlier failures); $W$ kept when
        $v < 0 < W$ (a failure does not erase a success).
        """
        length = self.nodes[index].depth + 1
        while index >= 0:
            node = self.nodes[index]
            node.visits += 1
            if self.config.backup == "mean":
                node.value += value
            elif value != 0:
                weight = max((node.depth + 1) / length, self.config.backup_threshold)
                if node.value * value >= 0:
                    node.value += weight * value
                elif value > 0:
                    node.value = weight * value
            index = node.parent

    def uct(self, index: int) -> float:
        r"""The selection score of node ``index`` under its parent (see :class:`MCTSConfig`.selection)."""
        node = self.nodes[index]
        parent = self.nodes[node.parent]
        if self.config.selection == "puct":
            return node.q + self.config.c * node.prior * math.sqrt(parent.visits) / (1 + node.visits)
        if parent.visits == 0 or node.visits == 0:
            return node.q
        return node.q + self.config.c * math.sqrt(math.log(parent.visits) / node.visits)

    def best_child(self, index: int) -> int | None:
        """The non-terminal child of highest :meth:`uct` (first on ties), None when all are terminal."""
        open_children = [i for i in self.nodes[index].children if not self.nodes[i].terminal]
        if not open_children:
            return None
        return max(open_children, key=lambda i: (self.uct(i), -i))

    def frontier(self) -> list[int]:
        """Open nodes: non-terminal nodes without children (the root only while it has none)."""
        return [n.index for n in self.nodes if not n.terminal and not n.children]

    def frontier_score(self, index: int) -> float:
        r"""Global frontier priority (DeepSearch's ``select_global_best_node``):

        $$ F(s) = \lambda_1 \tanh Q(\mathrm{parent}(s)) + \lambda_4 \tanh Q(s)
                  + \lambda_2 \bar H(s)\,[\text{uncertainty\_bonus}] + \lambda_3\, B(d(s)) $$

        $\bar H(s)$ is the mean negative sampled log-prob of the node's own step, $B$ the
        ``depth_bonus`` ($\sqrt{d/D}$ with $D$ = ``max_depth``, $\log(d+1)$ or $d$).
        """
        l1, l2, l3, l4 = self.config.frontier_weights
        node = self.nodes[index]
        parent_q = self.nodes[node.parent].q if node.parent >= 0 else 0.0
        score = l1 * math.tanh(parent_q) + l4 * math.tanh(node.q)
        if self.config.uncertainty_bonus and node.logps:
            score += l2 * (-sum(node.logps) / len(node.logps))
        bonus = {"sqrt": lambda d: math.sqrt(d / self.config.max_depth), "log": lambda d: math.log(d + 1),
                 "constant": float}[self.config.depth_bonus](node.depth)
        return score + l3 * bonus

    def global_select(self) -> int | None:
        """The open node of highest :meth:`frontier_score` (first on ties), None when none is open."""
        candidates = self.frontier()
        if not candidates:
            return None
        return max(candidates, key=lambda i: (self.frontier_score(i), -i))

    def descend(self) -> int | None:
        """UCT descent from the root to an open node (falls back to global selection)."""
        index = 0
        while self.nodes[index].children:
            child = self.best_child(index)
            if child is None:
                return self.global_select()
            index = child
        return None if self.nodes[index].terminal else index

    # ------------------------------------------------------------------ one round
    def resolve(self, children: Sequence[int], rewards: dict[int, float], rollout_values: dict[int, float]) -> None:
        """Steps 3 and 4 of a round for the new ``children`` of the current node.

        Args:
            children: the node indices :meth:`add_children` returned.
            rewards: verifier rewards of the terminal children.
            rollout_values: rewards of the completions of non-terminal children
                (``evaluation="rollout"``).
        """
        terminal = [i for i in children if self.nodes[i].terminal]
        for index in terminal:
            if index not in rewards:
                raise RlobjInputError(f"SearchTree.resolve: terminal node {index} has no reward")
            self.nodes[index].reward = float(rewards[index])
        for index in children:
            if self.nodes[index].terminal:
                continue
            if index in rollout_values:
                self.backup(index, self.value_of(rollout_values[index]))
            else:
                self.nodes[index].visits += 1  # the reference's update(0) of an intermediate node
        picked = self.pick_paths(terminal)
        for index in picked:
            if len(self.chosen) >= self.paths:
                break
            self.backup(index, self.value_of(self.nodes[index].reward))
            self.nodes[index].chosen = True
            self.chosen.append(index)
        self.stats.rounds += 1
        if terminal:
            self.current = self.global_select() if self.config.backtrack == "global" else self.descend()
        else:
            child = self.best_child(self.current)
            self.current = child if child is not None else self.global_select()
        self._check_done()

    def pick_paths(self, terminal: Sequence[int]) -> list[int]:
        """Training paths among terminal nodes: all, or the lowest-entropy one of the best reward."""
        terminal = [i for i in terminal if not self.nodes[i].chosen]
        if not terminal or self.config.path_choice == "all":
            return list(terminal)
        best = max(self.nodes[i].reward for i in terminal)
        top = [i for i in terminal if self.nodes[i].reward == best]
        return [min(top, key=lambda i: (self.path_entropy(i), i))]

    def round_cost(self) -> int:
        """Most tokens the next round may sample (expansion, plus rollouts when enabled)."""
        per_child = self.config.step_tokens + (self.length_limit if self.config.evaluation == "rollout" else 0)
        return self.config.width * per_child

    def _check_done(self) -> None:
        cfg = self.config
        if len(self.chosen) >= self.paths:
            self.done, self.stats.stop = True, "paths"
        elif self.current is None:
            self.done, self.stats.stop = True, "exhausted"
        elif cfg.node_budget is not None and len(self.nodes) + cfg.width > cfg.node_budget:
            self.done, self.stats.stop = True, "node_budget"
        elif cfg.token_budget is not None and self.stats.search_tokens + self.round_cost() > cfg.token_budget:
            self.done, self.stats.stop = True, "token_budget"

    def expansions_left(self) -> int:
        """Expansions the node and token budgets still allow (a large number when unlimited)."""
        cfg, room = self.config, 1 << 30
        if cfg.node_budget is not None:
            room = min(room, (cfg.node_budget - len(self.nodes)) // cfg.width)
        if cfg.token_budget is not None:
            room = min(room, (cfg.token_budget - self.stats.search_tokens) // self.round_cost())
        return max(room, 0)

    def start(self) -> None:
        """Check the budgets before the first round (a budget too small for one round stops here)."""
        self._check_done()

    def unchosen_leaves(self) -> list[int]:
        """Scored terminal leaves that are not training paths, best reward first, then lowest entropy."""
        leaves = [n.index for n in self.nodes if n.terminal and n.reward is not None and not n.chosen]
        return sorted(leaves, key=lambda i: (-self.nodes[i].reward, self.path_entropy(i), i))

    def step_values(self, index: int) -> list[float]:
        """$W$ of every node on the path to ``index`` (root excluded), read after the search."""
        return [node.value for node in self.path(index)]


#: expand(requests) -> width samples per request; requests are (tree index, node index).
Expand = Callable[[list[tuple[int, int]]], list[list[StepSample]]]
#: evaluate(requests) -> the reward of each terminal node's path.
Evaluate = Callable[[list[tuple[int, int]]], list[float]]
#: simulate(requests) -> (reward, tokens sampled) of one completion from each node.
Simulate = Callable[[list[tuple[int, int]]], list[tuple[float, int]]]
#: complete(requests) -> one sample to the end of the response from each node.
Complete = Callable[[list[tuple[int, int]]], list[StepSample]]


def run_search(trees: Sequence[SearchTree], expand: Expand, evaluate: Evaluate,
               simulate: Simulate | None = None, complete: Complete | None = None) -> list[list[int]]:
    r"""Grow every tree in rounds (batched: one ``expand`` call per round for all trees).

    Returns each tree's training paths (leaf node indices, ``tree.paths`` of them when
    ``complete`` is given; fewer only if the tree is out of both leaves and open nodes).
    Filling: scored unchosen leaves first, then completions of open nodes (``complete``, its
    tokens counted in ``stats.fill_tokens``); filled paths are backed up like chosen ones.
    """
    for tree in trees:
        tree.start()
    while True:
        active = [i for i, tree in enumerate(trees) if not tree.done]
        if not active:
            break
        if trees[active[0]].config.frontier_scope == "global":
            requests = global_frontier(trees, active)
            if not requests:  # cannot happen while an active tree has an open node; never loop forever
                for i in active:
                    trees[i].done, trees[i].stats.stop = True, "exhausted"
                break
        else:
            requests = [(i, trees[i].current) for i in active]
        samples = expand(requests)
        created = [trees[i].add_children(node, group) for (i, node), group in zip(requests, samples, strict=True)]
        made = [(i, c) for (i, _), kids in zip(requests, created, strict=True) for c in kids]
        terminal = [(i, c) for i, c in made if trees[i].nodes[c].terminal]
        rewards = dict(zip(terminal, evaluate(terminal) if terminal else [], strict=True))
        rollouts: dict[tuple[int, int], float] = {}
        open_children = [(i, c) for i, c in made if not trees[i].nodes[c].terminal]
        if trees[active[0]].config.evaluation == "rollout" and open_children:
            if simulate is None:
                raise RlobjInputError("run_search: evaluation='rollout' needs a simulate function")
            for (i, c), (reward, cost) in zip(open_children, simulate(open_children), strict=True):
                rollouts[(i, c)] = reward
                trees[i].stats.search_tokens += int(cost)
        for (i, node), kids in zip(requests, created, strict=True):
            trees[i].current = node  # resolve() reads the expanded node
            trees[i].resolve(kids, {c: rewards[(i, c)] for c in kids if (i, c) in rewards},
                             {c: rollouts[(i, c)] for c in kids if (i, c) in rollouts})
    _fill(trees, evaluate, complete)
    return [list(tree.chosen) for tree in trees]


def global_frontier(trees: Sequence[SearchTree], active: Sequence[int]) -> list[tuple[int, int]]:
    """One round's expansions under ``frontier_scope="global"``: the open nodes of the ``active``
    trees ranked together by :meth:`SearchTree.frontier_score` (ties: lower tree, then lower
    node), the best ``global_expansions`` of them (default ``len(active)``), at most
    :meth:`SearchTree.expansions_left` per tree; returned as ``(tree, node)`` in tree order."""
    limit = trees[active[0]].config.global_expansions or len(active)
    ranked = sorted((-trees[i].frontier_score(n), i, n) for i in active for n in trees[i].frontier())
    room = {i: trees[i].expansions_left() for i in active}
    out: list[tuple[int, int]] = []
    for _, i, n in ranked:
        if len(out) == limit:
            break
        if room[i] > 0:
            room[i] -= 1
            out.append((i, n))
    return sorted(out)


def _fill(trees: Sequence[SearchTree], evaluate: Evaluate, complete: Complete | None) -> None:
    requests = []
    for i, tree in enumerate(trees):
        for leaf in tree.unchosen_leaves()[:tree.paths - len(tree.chosen)]:
            tree.backup(leaf, tree.value_of(tree.nodes[leaf].reward))
            tree.nodes[leaf].chosen = True
            tree.chosen.append(leaf)
        missing = tree.paths - len(tree.chosen)
        if missing and complete is not None:
            ranked = sorted(tree.frontier(), key=lambda n: (-tree.frontier_score(n), n)) or [0]
            requests += [(i, ranked[k % len(ranked)]) for k in range(missing)]
    if not requests:
        return
    made = []
    for (i, node), sample in zip(requests, complete(requests), strict=True):
        tree = trees[i]
        child, = tree.add_children(node, [sample])
        tree.stats.search_tokens -= int(sample.cost)  # counted as fill, not search
        tree.stats.fill_tokens += int(sample.cost)
        tree.nodes[child].terminal = True
        made.append((i, child))
    for (i, child), reward in zip(made, evaluate(made), strict=True):
        tree = trees[i]
        tree.nodes[child].reward = float(reward)
        tree.backup(child, tree.value_of(float(reward)))
        tree.nodes[child].chosen = True
        tree.chosen.append(child)
