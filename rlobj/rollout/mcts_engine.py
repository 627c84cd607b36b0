r"""MCTS rollouts through any rlobj engine: the tree search of :mod:`rlobj.rollout.mcts` wired
to ``engine.generate`` and a scoring function.

Every expansion is one ``engine.generate`` call for all trees of the batch (``width`` samples
of at most ``step_tokens`` tokens from each tree's current node: the prompt followed by the
node's path); a sample is cut after the first ``delimiter_ids`` token. The engine does not
stop at the delimiter (the engine interface has no stop tokens), so the tokens after the cut
are sampled and dropped: they count in the token budget. A cut changes nothing for the kept
tokens, so ``logp_rollout`` of a path is exactly the concatenation of the log-probs its steps
were sampled with (temperature, top-k, top-p as in :class:`~rlobj.rollout.SamplingConfig`);
with top-k and top-p off it equals ``sequence_logprobs`` of the path (tested).

Works with every engine that honours the :class:`~rlobj.rollout.Engine` contract (HF, vLLM):
the search only sees token ids. A ``temperature_schedule`` is refused (the position of a
step's first token is not the engine's response position).
"""

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.rollout.engine import RolloutBatch, SamplingConfig
from rlobj.rollout.mcts import MCTSConfig, SearchStats, SearchTree, StepSample, run_search

__all__ = ["MCTSResult", "mcts_rollouts", "cut_step"]

#: score(rows) -> rewards, rows = (prompt index, response token ids, finished with EOS).
ScorePaths = Callable[[list[tuple[int, list[int], bool]]], list[float]]


def cut_step(tokens: Sequence[int], logps: Sequence[float], stop_ids: Sequence[int], room: int,
             eos_finished: bool) -> tuple[list[int], list[float], bool]:
    """A sampled continuation cut to one step: after the first ``stop_ids`` token and to ``room``
    tokens. Returns ``(tokens, logps, finished)``; finished = it still ends with the engine's EOS.

    Example:
        >>> cut_step([5, 9, 6, 1], [-.1, -.2, -.3, -.4], stop_ids=[9], room=10, eos_finished=True)
        ([5, 9], [-0.1, -0.2], False)
    """
    tokens, logps = list(tokens), list(logps)
    end = min(len(tokens), room)
    for position, token in enumerate(tokens[:end]):
        if token in stop_ids:
            end = position + 1
            break
    return tokens[:end], logps[:end], eos_finished and end == len(tokens)


@dataclass(frozen=True)
class MCTSResult:
    """The training paths of a search, row-aligned.

    Attributes:
        rollout: one row per path (``paths`` per prompt, contiguous, group id = prompt index).
        node_values: ``[batch, seq]`` float32, $W$ of the node (step) each token belongs to.
        step_ends: ``[batch, seq]`` bool, True on the last token of each step.
        rewards: ``[batch]`` the verifier's reward of each path.
        trees: the searched trees (statistics, for logging and tests).
        leaves: the leaf node (in its tree) of each row.
    """

    rollout: RolloutBatch
    node_values: Tensor
    step_ends: Tensor
    rewards: Tensor
    trees: tuple[SearchTree, ...]
    leaves: tuple[int, ...] = ()

    @property
    def stats(self) -> list[SearchStats]:
        return [tree.stats for tree in self.trees]


class _EngineCalls:
    """expand / simulate / complete of :func:`run_search` through ``engine.generate``."""

    def __init__(self, engine, prompts, trees, sampling: SamplingConfig, config: MCTSConfig, score: ScorePaths):
        self.engine, self.prompts, self.trees = engine, prompts, trees
        self.sampling, self.config, self.score = sampling, config, score
        self.calls = 0
        self.device = None

    def _generate(self, requests, n: int, max_new_tokens: int) -> RolloutBatch:
        seed = self.sampling.seed
        if seed is not None:
            seed = (seed + 1_000_003 * self.calls) % (2**62)
        self.calls += 1
        sampling = dataclasses.replace(self.sampling, max_new_tokens=max_new_tokens, seed=seed)
        prompts = [list(self.prompts[i]) + self.trees[i].path_tokens(node) for i, node in requests]
        batch = self.engine.generate(prompts, n=n, sampling=sampling)
        self.device = batch.response_ids.device
        return batch

    def _rows(self, batch: RolloutBatch):
        mask = batch.response_mask.cpu()
        ids, logps = batch.response_ids.cpu(), batch.logp_rollout.cpu()
        for row in range(len(batch)):
            yield ids[row][mask[row]].tolist(), logps[row][mask[row]].tolist(), \
                batch.finish_reasons[row] == "stop", int(mask[row].sum())

    def expand(self, requests):
        width = self.config.width
        batch = self._generate(requests, width, self.config.step_tokens)
        out = [[] for _ in requests]
        for row, (tokens, logps, finished, cost) in enumerate(self._rows(batch)):
            tree, node = self.trees[requests[row // width][0]], requests[row // width][1]
            room = tree.length_limit - len(tree.path_tokens(node))
            kept, kept_logps, done = cut_step(tokens, logps, self.config.delimiter_ids, room, finished)
            out[row // width].append(StepSample(tuple(kept), tuple(kept_logps), done, cost))
        return out

    def complete(self, requests):
        room = [self.trees[i].length_limit - len(self.trees[i].path_tokens(node)) for i, node in requests]
        batch = self._generate(requests, 1, max(max(room), 1))
        return [StepSample(tuple(tokens[:r]), tuple(logps[:r]), finished and len(tokens) <= r, cost)
                for r, (tokens, logps, finished, cost) in zip(room, self._rows(batch), strict=True)]

    def evaluate(self, requests):
        rows = [(i, self.trees[i].path_tokens(node), self.trees[i].nodes[node].finished) for i, node in requests]
        return [float(r) for r in self.score(rows)]

    def simulate(self, requests):
        samples = self.complete(requests)
        rows = [(i, self.trees[i].path_tokens(node) + list(s.tokens), s.finished)
                for (i, node), s in zip(requests, samples, strict=True)]
        return [(float(r), s.cost) for r, s in zip(self.score(rows), samples, strict=True)]


def mcts_rollouts(engine, prompts: Sequence[Sequence[int]], paths: int, sampling: SamplingConfig,
                  config: MCTSConfig, score: ScorePaths) -> MCTSResult:
    r"""Search one tree per prompt and return ``paths`` training paths per prompt.

    Args:
        engine: any rlobj engine (``generate(prompts, n, sampling) -> RolloutBatch``).
        prompts: token ids of each prompt.
        paths: training paths per prompt (the group size).
        sampling: how steps are sampled; ``max_new_tokens`` bounds a whole path.
        config: :class:`~rlobj.rollout.mcts.MCTSConfig`.
        score: rewards of ``(prompt index, response ids, finished)`` rows (the verifier).

    Returns:
        :class:`MCTSResult`.
    """
    if not isinstance(sampling, SamplingConfig):
        raise RlobjInputError(f"mcts_rollouts: sampling must be a SamplingConfig, got {type(sampling).__name__}")
    if sampling.temperature_schedule is not None:
        raise RlobjInputError("mcts_rollouts: sampling.temperature_schedule is not supported by the tree search "
                              "(a step's first token is not at the engine's response position 0)")
    if not prompts:
        raise RlobjInputError("mcts_rollouts: no prompts")
    trees = [SearchTree(config, paths, sampling.max_new_tokens) for _ in prompts]
    calls = _EngineCalls(engine, [list(map(int, p)) for p in prompts], trees, sampling, config, score)
    chosen = run_search(trees, calls.expand, calls.evaluate,
                        calls.simulate if config.evaluation == "rollout" else None, calls.complete)
    rows, values, ends, rewards, leaf_of_row = [], [], [], [], []
    for i, (tree, leaves) in enumerate(zip(trees, chosen, strict=True)):
        for leaf in leaves:
            path = tree.path(leaf)
            tokens = [t for node in path for t in node.tokens]
            rows.append((i, tokens, [lp for node in path for lp in node.logps], tree.nodes[leaf].finished))
            values.append([node.value for node in path for _ in node.tokens])
            ends.append([k == len(node.tokens) - 1 for node in path for k in range(len(node.tokens))])
            rewards.append(float(tree.nodes[leaf].reward))
            leaf_of_row.append(leaf)
    device = calls.device or "cpu"
    rollout = batch_from_rows([torch.tensor(prompts[i], dtype=torch.long) for i, _, _, _ in rows],
                              [torch.tensor(t, dtype=torch.long) for _, t, _, _ in rows],
                              [torch.tensor(lp, dtype=torch.float32) for _, _, lp, _ in rows],
                              [i for i, _, _, _ in rows], [f for _, _, _, f in rows],
                              engine.pad_token_id, device)
    width = rollout.response_ids.shape[1]
    node_values = torch.zeros((len(rows), width), dtype=torch.float32)
    step_ends = torch.zeros((len(rows), width), dtype=torch.bool)
    for row, (value, end) in enumerate(zip(values, ends, strict=True)):
        node_values[row, :len(value)] = torch.tensor(value, dtype=torch.float32)
        step_ends[row, :len(end)] = torch.tensor(end, dtype=torch.bool)
    return MCTSResult(rollout=rollout, node_values=node_values.to(device), step_ends=step_ends.to(device),
                      rewards=torch.tensor(rewards, dtype=torch.float32), trees=tuple(trees),
                      leaves=tuple(leaf_of_row))
