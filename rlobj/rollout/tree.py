r"""LATR: Lookahead Tree-Based Rollouts (branch at uncertain steps, look ahead, prune look-alikes).

Xing et al., "Lookahead Tree-Based Rollouts for Enhanced Trajectory-Level Exploration in
Reinforcement Learning with Verifiable Rewards", arXiv 2510.24302 (ICLR 2026); reference code
github.com/starreeze/latr @ 2adb0ed. LATR is a sampler, not an objective: each branch becomes a
full, independent sequence (shared prefixes duplicated) of its prompt's group and is trained with
the unchanged GRPO/DAPO objective.

Per decoding step and live branch (tree phase), with $p$ the untempered next-token
probabilities and $p_1 \ge p_2 \ge \dots$ the top-$m$ candidates ($m$ = ``max_branch_per_token``
= 2): the branch continues with candidate 1, and candidate $j \ge 2$ spawns a child branch iff
$$ p_j > \tau_\text{abs} \quad\text{and}\quad p_1 - p_j < \tau_\text{rel}, $$
while the prompt has fewer than $n_\text{kt} = \operatorname{round}(\eta n)$ tree branches
(lower-rank candidates are suppressed first). **Lookahead and pruning**: when a child is exactly
$r \in R$ tokens old ($R$ = ``lookahead`` = (20, 30, 50)), its last $r$ tokens $a$ are compared
with its parent's $r$ tokens $b$ at the same positions (skipped when either holds EOS, or when the
parent's fork token is in ``protected_fork_tokens``); the child is pruned when
``similarity="edit"``: $\mathrm{ED}(a, b)/r < \tau_\text{ed}$ (0.4, Countdown recipe), or
``similarity="math"``: suffix-match$(a,b) > 0.2$ or ROUGE-L$(a,b) > 0.5$ (math recipe). Pruning
frees capacity. Roots are never pruned, so every prompt keeps at least one tree branch.

The tree phase ends at ``force_return_step`` tokens, or when the tree is full (branches
$\ge \operatorname{round}(n_\text{kt} B\,\theta_t)$ with $\theta_t = 0.98 - 0.05\,t/L$) and no child
is younger than $\max R$; unfinished branches are then completed by ordinary sampling from the
engine (``kt_mixed_engine``), and each prompt's group is filled with $n -$ (its tree branches)
ordinarily sampled responses. The mix ratio $\eta(s)$ (:class:`MixSchedule`) is the fraction of
each group produced by the tree, piecewise constant in the training step $s$; math recipe
$\{0: 1, 100: 0.75, 200: 0.5, 300: 0.25\}$, Countdown $\{0: 1, 10: 0.75, 20: 0.5, 80: 0.25,
200: 0\}$. $\eta = 0$ is plain sampling.

Log-probs: in the tree phase tokens are chosen, not drawn (the reference's default tree phase is
greedy apart from branch points), so as for greedy decoding ``logp_rollout`` is the policy's
log-prob at the sampling temperature, $\log\mathrm{softmax}(z/T)_{y_t}$; after the tree phase it
is the log-prob under the distribution sampled (temperature, top-k, top-p). With top-k and top-p
off, every branch's ``logp_rollout`` equals ``sequence_logprobs`` of that branch.

This implementation recomputes the context of every live branch at each tree-phase step (no KV
cache shared between branches), which is exact and simple but costs $O(t)$ per step: meant for
small models and moderate ``force_return_step``; the completion phase uses the engine's cached loop.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from rlobj.rollout._batching import batch_from_rows
from rlobj.rollout.engine import (
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    validate_generate_args,
)
from rlobj.rollout.logprobs import next_token_logits

__all__ = ["MixSchedule", "LATRConfig", "LATREngine", "TreeInfo", "edit_distance_ratio",
           "suffix_match", "rouge_l"]


# ----------------------------------------------------------------------------- similarity
def _levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def edit_distance_ratio(a: Sequence[int], b: Sequence[int]) -> float:
    r"""Levenshtein distance over the longer length, in [0, 1]; 0 iff ``a == b``.

    Example:
        >>> edit_distance_ratio([1, 2, 3, 4], [1, 2, 5, 4])
        0.25
    """
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else _levenshtein(a, b) / longest


def _contains(haystack: Sequence[int], needle: Sequence[int]) -> bool:
    k = len(needle)
    return any(list(haystack[i:i + k]) == list(needle) for i in range(len(haystack) - k + 1))


def suffix_match(a: Sequence[int], b: Sequence[int]) -> float:
    r"""Longest suffix of one sequence occurring contiguously in the other, over the longer length.

    Example:
        >>> suffix_match([1, 2, 3, 4], [9, 3, 4, 9])
        0.5
    """
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    best = 0
    for x, y in ((a, b), (b, a)):
        for k in range(len(x), best, -1):
            if _contains(y, x[len(x) - k:]):
                best = k
                break
    return best / longest


def rouge_l(a: Sequence[int], b: Sequence[int]) -> float:
    r"""ROUGE-L F1: $\frac{2PR}{P+R}$ with $P = \mathrm{LCS}/|a|$, $R = \mathrm{LCS}/|b|$, in [0, 1].

    Example:
        >>> rouge_l([1, 2, 3, 4], [1, 3, 4, 5])
        0.75
    """
    if not a or not b:
        return 1.0 if len(a) == len(b) else 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class MixSchedule:
    r"""Piecewise-constant mix ratio $\eta(s)$: the value of the last milestone $\le s$.

    Args:
        milestones: ``((step, eta), ...)`` with increasing steps, the first at 0, each
            $\eta \in [0, 1]$. Default: LATR's math recipe ``((0, 1.0), (100, 0.75), (200, 0.5),
            (300, 0.25))``; Countdown: ``((0, 1), (10, .75), (20, .5), (80, .25), (200, 0))``.

    Example:
        >>> MixSchedule()(150)
        0.75
    """

    milestones: tuple[tuple[int, float], ...] = ((0, 1.0), (100, 0.75), (200, 0.5), (300, 0.25))

    def __post_init__(self) -> None:
        pairs = tuple((int(s), float(e)) for s, e in (tuple(p) for p in self.milestones))
        if not pairs or pairs[0][0] != 0:
            raise ValueError(f"MixSchedule.milestones must start at step 0, got {self.milestones!r}")
        steps = [s for s, _ in pairs]
        if steps != sorted(set(steps)):
            raise ValueError(
                f"MixSchedule.milestones steps must be strictly increasing, got {steps}")
        if any(not 0.0 <= e <= 1.0 for _, e in pairs):
            raise ValueError(f"MixSchedule.milestones ratios must lie in [0, 1], got {pairs}")
        object.__setattr__(self, "milestones", pairs)

    def __call__(self, step: int) -> float:
        value = self.milestones[0][1]
        for milestone, eta in self.milestones:
            if step >= milestone:
                value = eta
        return value


@dataclass(frozen=True)
class LATRConfig:
    r"""LATR hyper-parameters (defaults: the reference dataclass / Countdown scripts).

    Args:
        max_branch_per_token: top-$m$ candidates considered per step, $m \ge 1$ (1: no
            branching). Default 2.
        tau_abs: $\tau_\text{abs}$, candidate probability threshold. Default 0.25 (math: 0.15).
        tau_rel: $\tau_\text{rel}$, largest gap to the top candidate. Default 0.15 (math: 0.25).
        lookahead: ages $R$ (tokens) at which a child is compared with its parent.
            Default (20, 30, 50).
        similarity: ``"edit"`` (normalised edit distance, Countdown) or ``"math"`` (suffix match
            or ROUGE-L). Default ``"edit"``.
        tau_ed: prune when $\mathrm{ED}/r <$ ``tau_ed``. Default 0.4.
        tau_suffix: prune when suffix-match $>$ ``tau_suffix`` (math). Default 0.2.
        tau_rouge: prune when ROUGE-L $>$ ``tau_rouge`` (math). Default 0.5.
        force_return_step: largest tree-phase length. Default 1024.
        mix: the mix-ratio schedule $\eta(s)$. Default :class:`MixSchedule` () (math recipe).
        protected_fork_tokens: token ids whose forks are never pruned (the reference's
            ``keep_math_symbols`` with a tokenizer's digit/operator ids). Default none.
    """

    max_branch_per_token: int = 2
    tau_abs: float = 0.25
    tau_rel: float = 0.15
    lookahead: tuple[int, ...] = (20, 30, 50)
    similarity: str = "edit"
    tau_ed: float = 0.4
    tau_suffix: float = 0.2
    tau_rouge: float = 0.5
    force_return_step: int = 1024
    mix: MixSchedule = field(default_factory=MixSchedule)
    protected_fork_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_branch_per_token, bool) or not isinstance(
                self.max_branch_per_token, int) or self.max_branch_per_token < 1:
            raise ValueError(
                f"LATRConfig.max_branch_per_token must be an int >= 1, got "
                f"{self.max_branch_per_token!r}")
        for name in ("tau_abs", "tau_rel", "tau_ed", "tau_suffix", "tau_rouge"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"LATRConfig.{name} must be a number >= 0, got {value!r}")
        lookahead = tuple(self.lookahead)
        if any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in lookahead):
            raise ValueError(f"LATRConfig.lookahead must hold ints >= 1, got {self.lookahead!r}")
        object.__setattr__(self, "lookahead", lookahead)
        if self.similarity not in ("edit", "math"):
            raise ValueError(
                f"LATRConfig.similarity must be 'edit' or 'math', got {self.similarity!r}")
        if isinstance(self.force_return_step, bool) or not isinstance(
                self.force_return_step, int) or self.force_return_step < 0:
            raise ValueError(
                f"LATRConfig.force_return_step must be an int >= 0, got {self.force_return_step!r}")
        if isinstance(self.mix, dict):
            object.__setattr__(self, "mix", MixSchedule(tuple(sorted(self.mix.items()))))
        if not isinstance(self.mix, MixSchedule):
            raise ValueError(f"LATRConfig.mix must be a MixSchedule or a dict, got {self.mix!r}")
        object.__setattr__(self, "protected_fork_tokens",
                           tuple(int(t) for t in self.protected_fork_tokens))

    def similar(self, a: Sequence[int], b: Sequence[int]) -> bool:
        """Whether a child's lookahead window ``a`` is a near-duplicate of its parent's ``b``."""
        if self.similarity == "edit":
            return edit_distance_ratio(a, b) < self.tau_ed
        return suffix_match(a, b) > self.tau_suffix or rouge_l(a, b) > self.tau_rouge


@dataclass
class _Branch:
    prompt: int
    tokens: list[int]
    logps: list[float]
    parent: int | None
    birth: int
    finished: bool = False
    pruned: bool = False


@dataclass(frozen=True)
class TreeInfo:
    """Diagnostics of one LATR batch, row-aligned with the returned ``RolloutBatch``.

    Attributes:
        source: ``"tree"`` or ``"sample"`` per row.
        parent: row index of the branch a tree row forked from (-1: a root or a sampled row).
        birth_step: response position of the fork token (-1: root or sampled).
        pruned: number of pruned branches per prompt.
        tree_steps: length of the tree phase.
        eta: the mix ratio used.
    """

    source: tuple[str, ...]
    parent: tuple[int, ...]
    birth_step: tuple[int, ...]
    pruned: tuple[int, ...]
    tree_steps: int
    eta: float


class LATREngine:
    r"""An engine that samples groups with LATR (see the module notes); wraps an ``HFEngine``.

    Args:
        engine: an :class:`~rlobj.rollout.hf_engine.HFEngine` (its model, EOS, pad id and cached
            sampling loop are used).
        config: :class:`LATRConfig`.

    ``step`` (attribute, default 0) is the training step the mix ratio reads; set it each step,
    or pass ``step=`` to :meth:`generate`. :attr:`last_info` holds the last batch's
    :class:`TreeInfo`.
    """

    supports_sleep = False

    def __init__(self, engine, config: LATRConfig | None = None) -> None:
        if not hasattr(engine, "decode_rows"):
            raise TypeError(
                f"LATREngine: engine must provide decode_rows (HFEngine), got "
                f"{type(engine).__name__}")
        self.engine = engine
        self.config = LATRConfig() if config is None else config
        if not isinstance(self.config, LATRConfig):
            raise TypeError(f"LATREngine: config must be a LATRConfig, got {type(config).__name__}")
        self.step = 0
        self.last_info: TreeInfo | None = None

    @property
    def pad_token_id(self) -> int:
        return self.engine.pad_token_id

    def generate(self, prompts: Sequence[Sequence[int] | Tensor], n: int,
                 sampling: SamplingConfig, step: int | None = None) -> RolloutBatch:
        r"""``n`` responses per prompt: up to $\operatorname{round}(\eta(s) n)$ from the tree, the rest sampled.

        Rows of prompt ``i`` are contiguous (tree branches in creation order, then sampled
        ones) with group id ``i``. Deterministic given ``sampling.seed``.
        """
        validate_generate_args(prompts, n, sampling)
        if sampling.temperature_schedule is not None:
            raise ValueError(
                "LATREngine: sampling.temperature_schedule is not supported with tree rollouts "
                "(the tree phase chooses tokens; use a plain temperature)")
        cfg = self.config
        eta = cfg.mix(self.step if step is None else step)
        n_kt = min(n, int(round(eta * n)))
        if n_kt == 0:  # eta = 0: exactly the wrapped engine's sampling
            batch = self.engine.generate(prompts, n, sampling)
            self.last_info = TreeInfo(source=("sample",) * len(batch), parent=(-1,) * len(batch),
                                      birth_step=(-1,) * len(batch), pruned=(0,) * len(prompts),
                                      tree_steps=0, eta=eta)
            return batch
        prompt_ids, prompt_mask = left_pad_prompts(prompts, self.engine.pad_token_id,
                                                   self.engine.vocab_size)
        rows = [prompt_ids[i][prompt_mask[i]] for i in range(len(prompts))]
        device = next(self.engine.model.parameters()).device
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(sampling.seed)
        branches: list[_Branch] = []
        pruned = [0] * len(prompts)
        tree_steps = 0
        if n_kt >= 1:
            branches = [_Branch(prompt=i, tokens=[], logps=[], parent=None, birth=-1)
                        for i in range(len(prompts))]
            tree_steps = self._grow(branches, rows, n_kt, sampling, pruned, device)
            self._complete(branches, rows, sampling, generator, device, tree_steps)
        kept = [b for b in branches if not b.pruned]
        out_rows, info_rows = [], []
        eos = set(self.engine.eos_token_ids)
        for i in range(len(prompts)):
            tree = [b for b in kept if b.prompt == i]
            for branch in tree:
                out_rows.append((rows[i], branch.tokens, branch.logps, i,
                                 bool(branch.tokens) and branch.tokens[-1] in eos))
                info_rows.append(("tree", branch))
            extra = n - len(tree)
            if extra:
                ids, mask = rows[i].unsqueeze(0).repeat(extra, 1), torch.ones(
                    extra, rows[i].numel(), dtype=torch.bool)
                r_ids, r_mask, r_logp, r_done = self.engine.decode_rows(
                    ids.to(device), mask.to(device), sampling, generator)
                for k in range(extra):
                    out_rows.append((rows[i], r_ids[k][r_mask[k]].tolist(),
                                     r_logp[k][r_mask[k]].tolist(), i, bool(r_done[k])))
                    info_rows.append(("sample", None))
        index_of = {id(branch): row for row, (kind, branch) in enumerate(info_rows)
                    if kind == "tree"}
        self.last_info = TreeInfo(
            source=tuple(kind for kind, _ in info_rows),
            parent=tuple(-1 if b is None or b.parent is None else index_of[id(branches[b.parent])]
                         for _, b in info_rows),
            birth_step=tuple(-1 if b is None or b.parent is None else b.birth
                             for _, b in info_rows),
            pruned=tuple(pruned), tree_steps=tree_steps, eta=eta)
        return batch_from_rows(
            [r[0] for r in out_rows], [torch.tensor(r[1], dtype=torch.long) for r in out_rows],
            [torch.tensor(r[2], dtype=torch.float32) for r in out_rows], [r[3] for r in out_rows],
            [r[4] for r in out_rows], self.engine.pad_token_id, device)

    # -- tree phase ------------------------------------------------------------------
    def _next_logits(self, contexts: list[Tensor], device) -> Tensor:
        return next_token_logits(self.engine.model, contexts, self.engine.pad_token_id).to(device)

    def _grow(self, branches: list[_Branch], rows: list[Tensor], n_kt: int,
              sampling: SamplingConfig, pruned: list[int], device) -> int:
        cfg = self.config
        eos = set(self.engine.eos_token_ids)
        budget = sampling.max_new_tokens
        limit = min(budget, cfg.force_return_step)
        longest = max(cfg.lookahead, default=0)
        t = 0
        while t < limit:
            live = [b for b in branches if not b.finished and not b.pruned]
            if not live:
                break
            theta = 0.98 - 0.05 * t / budget
            count = sum(1 for b in branches if not b.pruned)
            youngest = min((t - b.birth for b in live if b.parent is not None), default=longest)
            if t > 0 and count >= round(n_kt * len(rows) * theta) and youngest >= longest:
                break  # the tree is full and every child has passed its lookahead windows
            logits = self._next_logits(
                [torch.cat([rows[b.prompt], torch.tensor(b.tokens, dtype=torch.long)])
                 for b in live], device)
            probs = torch.softmax(logits, dim=-1)
            logp_t = torch.log_softmax(logits / sampling.temperature, dim=-1)
            m = min(cfg.max_branch_per_token, probs.shape[-1])
            top_p, top_i = torch.topk(probs, m, dim=-1)
            sizes = [sum(1 for b in branches if b.prompt == i and not b.pruned)
                     for i in range(len(rows))]
            children = []
            for row, branch in enumerate(live):
                parent_index = branches.index(branch)
                for j in range(1, m):
                    p1, pj = float(top_p[row, 0]), float(top_p[row, j])
                    if pj > cfg.tau_abs and p1 - pj < cfg.tau_rel and sizes[branch.prompt] < n_kt:
                        token = int(top_i[row, j])
                        children.append(_Branch(
                            prompt=branch.prompt, tokens=branch.tokens + [token],
                            logps=branch.logps + [float(logp_t[row, token])],
                            parent=parent_index, birth=t))
                        sizes[branch.prompt] += 1
                token = int(top_i[row, 0])
                branch.tokens.append(token)
                branch.logps.append(float(logp_t[row, token]))
            branches.extend(children)
            t += 1
            for branch in branches:
                if not branch.finished and not branch.pruned and len(branch.tokens) == t:
                    branch.finished = branch.tokens[-1] in eos
            self._prune(branches, t, eos, pruned)
        return t

    def _prune(self, branches: list[_Branch], t: int, eos: set, pruned: list[int]) -> None:
        cfg = self.config
        for child in branches:
            if child.parent is None or child.pruned:
                continue
            age = t - child.birth
            if age not in cfg.lookahead:
                continue
            parent = branches[child.parent]
            a = child.tokens[child.birth:child.birth + age]
            b = parent.tokens[child.birth:child.birth + age]
            if len(a) < age or len(b) < age or eos & set(a) or eos & set(b):
                continue
            if parent.tokens[child.birth] in cfg.protected_fork_tokens:
                continue
            if cfg.similar(a, b):
                child.pruned = True
                pruned[child.prompt] += 1
                for other in branches:  # descendants of a pruned child go with it
                    if other.parent is not None and not other.pruned and _descends(
                            branches, other, child):
                        other.pruned = True
                        pruned[other.prompt] += 1

    def _complete(self, branches: list[_Branch], rows: list[Tensor], sampling: SamplingConfig,
                  generator, device, tree_steps: int) -> None:
        """Finish unfinished tree branches with ordinary sampling (cached engine loop)."""
        open_ = [b for b in branches if not b.finished and not b.pruned
                 and len(b.tokens) < sampling.max_new_tokens]
        if not open_:
            return
        contexts = [torch.cat([rows[b.prompt], torch.tensor(b.tokens, dtype=torch.long)])
                    for b in open_]
        ids, mask = left_pad_prompts(contexts, self.engine.pad_token_id)
        remaining = sampling.max_new_tokens - tree_steps
        offsets = torch.tensor([len(b.tokens) for b in open_], dtype=torch.long, device=device)
        r_ids, r_mask, r_logp, r_done = self.engine.decode_rows(
            ids.to(device), mask.to(device), replace(sampling, max_new_tokens=remaining),
            generator, offsets)
        for k, branch in enumerate(open_):
            branch.tokens += r_ids[k][r_mask[k]].tolist()
            branch.logps += r_logp[k][r_mask[k]].tolist()
            branch.finished = bool(r_done[k])

    def update_weights(self, named_params) -> None:
        """Forwarded to the wrapped engine."""
        self.engine.update_weights(named_params)

    def sleep(self) -> None:
        """No-op (the wrapped HFEngine keeps no memory between calls)."""

    def wake(self) -> None:
        """No-op; see :meth:`sleep`."""


def _descends(branches: list[_Branch], branch: _Branch, ancestor: _Branch) -> bool:
    while branch.parent is not None:
        branch = branches[branch.parent]
        if branch is ancestor:
            return True
    return False
