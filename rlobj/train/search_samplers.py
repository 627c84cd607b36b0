r"""Tree search as a sampler: MCTS rollouts (DeepSearch, arXiv 2509.25454) with adaptive replay.

YAML (``model.sampler``)::

    sampler: {mcts: {config: {width: 2, max_depth: 4, step_tokens: 4}, delimiter: "\n"}}
    sampler: {mcts: {config: {...}, replay: {threshold: 0.25}}}    # DeepSearch's replay buffer

The sampler searches one tree per record (:func:`~rlobj.rollout.mcts_engine.mcts_rollouts`,
any engine), scoring terminal nodes with the run's scorer (``ctx.score``), and returns the
``group_size`` training paths of each tree as one group. Each row carries two extras that the
:class:`~rlobj.terms.advantages.tree.tree_value_advantage` term reads:
``node_values`` (the value $W$ of the step each token belongs to, read after the search) and
``step_ends`` (the last token of each step). Every returned path was verified during the
search (``ctx.score``, the run's scorer): the batch comes back with those scores set and the
scorer stage reuses them (:func:`rlobj.train.scorers.reuse_scores`), so each path is verified
once. With ``labels: true`` the rows also carry ``step_labels``: PROPA's label
$\log(1 + 10\,Q)/\log 11$ of each step's node on the step's last token (-1 elsewhere and on
replayed rows: no label), the
online training data of :class:`~rlobj.train.process_reward.PRMScorer`. (PROPA labels every node
of the tree; here only the nodes on the returned paths reach the scorer.)

**Adaptive replay** (DeepSearch's replay buffer with cached solutions): a record whose
searched paths are correct (reward $\ge$ ``correct``) in a fraction $0 < f \le$ ``threshold``
of its group has its correct responses cached. When it comes back, it is not searched: its
group is ``group_size`` plain samples whose first rows are replaced by the cached solutions
(the reference's ``in_buffer`` branch), each row a single step with value $v(r)$. The
reference builds the buffer offline between training stages from logged rollouts and keeps it
fixed; here it is filled online and a record leaves it once its plain samples alone are
correct in more than ``threshold`` of the group (our choice, so the buffer follows the
policy). Cached rows were not sampled by the current policy: their ``logp_rollout`` is the
policy's log-prob, and such a batch is ``on_policy=False`` (the trainer recomputes
``logp_old``). The buffer is saved in checkpoints (``state_dict``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Sampler, Score

__all__ = ["MCTSSampler"]


def _key(record: dict) -> str:
    return str(record.get("id", record["prompt"]))


class MCTSSampler(Sampler):
    r"""MCTS over reasoning steps (see the module notes); engine-agnostic.

    Args:
        config: :class:`~rlobj.rollout.mcts.MCTSConfig` fields.
        delimiter: text whose token ends a step (default a newline), turned into
            ``config.delimiter_ids`` with the run's tokenizer (it must be one token); None:
            fixed-length steps of ``step_tokens`` (the reference code's steps). Ignored when
            ``config`` gives ``delimiter_ids``.
        replay: None (off) or ``{threshold: 0.25, correct: 1.0}`` (adaptive replay).
        labels: attach ``extras['step_labels']`` (PROPA's step labels, see the module notes).
    """

    def __init__(self, config: dict[str, Any] | None = None, delimiter: str | None = "\n",
                 replay: dict[str, float] | None = None, labels: bool = False):
        from rlobj.rollout.mcts import MCTSConfig

        args = dict(config or {})
        bad = set(args) - {f.name for f in dataclasses.fields(MCTSConfig)}
        if bad:
            raise RlobjInputError(f"mcts.config: unknown MCTSConfig field(s) {sorted(bad)}")
        for name in ("delimiter_ids", "frontier_weights"):
            if isinstance(args.get(name), list):
                args[name] = tuple(args[name])
        self.config = MCTSConfig(**args)
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise RlobjInputError(f"mcts.delimiter: expected a non-empty string or None, got {delimiter!r}")
        self.delimiter = delimiter
        replay = None if replay is None else dict(replay)
        if replay is not None:
            unknown = set(replay) - {"threshold", "correct"}
            if unknown:
                raise RlobjInputError(f"mcts.replay: unknown key(s) {sorted(unknown)}; expected threshold, correct")
            replay = {"threshold": float(replay.get("threshold", 0.25)), "correct": float(replay.get("correct", 1.0))}
            if not 0.0 < replay["threshold"] <= 1.0:
                raise RlobjInputError(f"mcts.replay.threshold: expected a number in (0, 1], got {replay['threshold']}")
        self.replay = replay
        if not isinstance(labels, bool):
            raise RlobjInputError(f"mcts.labels: expected true or false, got {labels!r}")
        self.labels = labels
        self.buffer: dict[str, list[list[int]]] = {}

    def _config(self, ctx):
        if self.config.delimiter_ids or self.delimiter is None:
            return self.config
        ids = ctx.encode(self.delimiter)
        if len(ids) != 1:
            raise RlobjInputError(f"mcts.delimiter: {self.delimiter!r} is {len(ids)} tokens of this tokenizer "
                                  f"({ids}); give one token, config.delimiter_ids, or delimiter: null")
        return dataclasses.replace(self.config, delimiter_ids=(int(ids[0]),))

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        from rlobj.rollout.mcts_engine import mcts_rollouts
        from rlobj.train.samplers import _prompts, _sampling

        prompts = _prompts(ctx, records)
        sampling = _sampling(ctx, salt, changes)
        replayed = [i for i, r in enumerate(records) if self.replay is not None and _key(r) in self.buffer]
        searched = [i for i in range(len(records)) if i not in replayed]
        config = self._config(ctx)
        parts, metrics = [], {}
        if searched:
            verified: dict[tuple, Score] = {}  # (tree, response ids) -> the scorer's Score

            def score(rows):
                scores = self._score(ctx, [records[searched[i]] for i, _, _ in rows],
                                     [prompts[searched[i]] for i, _, _ in rows], rows)
                verified.update({(i, tuple(t)): s for (i, t, _), s in zip(rows, scores, strict=True)})
                return [s.reward for s in scores]

            result = mcts_rollouts(ctx.engine, [prompts[i] for i in searched], n, sampling, config, score)
            rows = [searched[g] for g in result.rollout.group_ids.tolist()]
            extras = {"node_values": result.node_values, "step_ends": result.step_ends}
            if self.labels:
                extras["step_labels"] = _step_labels(result)
            found = Batch(rollout=result.rollout, records=[records[i] for i in rows], extras=extras)
            found.scores = self._verified(ctx, found, verified)
            parts.append((rows, found))
            self._remember(records, searched, result.rewards, result.rollout, n)
            metrics.update(_search_metrics(result, config))
        if replayed:
            parts.append((replayed, self._replay(ctx, records, prompts, replayed, n, sampling)))
        batch = Batch.concat([b for _, b in parts], ctx.pad_token_id, renumber_groups=True)
        batch.metrics.update(metrics)
        batch.metrics["search/replayed_prompts"] = float(len(replayed))
        batch.metrics["search/buffer_size"] = float(len(self.buffer))
        return batch

    # ------------------------------------------------------------------ scoring paths
    @staticmethod
    def _verified(ctx, batch: Batch, verified: dict) -> list[Score]:
        """The search's Score of each returned row; rows it never scored are scored now."""
        mask = batch.rollout.response_mask.cpu()
        ids = batch.rollout.response_ids.cpu()
        keys = [(int(g), tuple(ids[r][mask[r]].tolist())) for r, g in enumerate(batch.rollout.group_ids.tolist())]
        missing = [r for r, k in enumerate(keys) if k not in verified]
        if missing:
            part = ctx.score(batch.select(missing)).scores
            verified.update({keys[r]: s for r, s in zip(missing, part, strict=True)})
        batch.metrics["search/rescored_rows"] = float(len(missing))
        return [verified[k] for k in keys]

    @staticmethod
    def _score(ctx, records, prompts, rows) -> list[Score]:
        from rlobj.rollout._batching import batch_from_rows

        rollout = batch_from_rows([torch.tensor(p, dtype=torch.long) for p in prompts],
                                  [torch.tensor(t, dtype=torch.long) for _, t, _ in rows],
                                  [torch.zeros(len(t)) for _, t, _ in rows], list(range(len(rows))),
                                  [f for _, _, f in rows], ctx.pad_token_id)
        return list(ctx.score(Batch(rollout=rollout, records=list(records))).scores)

    # ------------------------------------------------------------------ adaptive replay
    def _remember(self, records, searched, rewards, rollout, n) -> None:
        if self.replay is None:
            return
        mask = rollout.response_mask.cpu()
        for g, i in enumerate(searched):
            rows = range(g * n, (g + 1) * n)
            correct = [r for r in rows if float(rewards[r]) >= self.replay["correct"]]
            if 0 < len(correct) / n <= self.replay["threshold"]:
                self.buffer[_key(records[i])] = [rollout.response_ids[r].cpu()[mask[r]].tolist() for r in correct]

    def _replay(self, ctx, records, prompts, replayed, n, sampling) -> Batch:
        from rlobj.rollout._batching import batch_from_rows, rows_of

        plain = ctx.engine.generate([prompts[i] for i in replayed], n=n, sampling=sampling)
        rows = rows_of(plain.to("cpu"))
        prompt_rows, responses, logps, groups, finished, cached = [], [], [], [], [], []
        for g, i in enumerate(replayed):
            solutions = self.buffer[_key(records[i])][:n]
            for k in range(n):
                prompt, response, logp, _, done = rows[g * n + k]
                if k < len(solutions):
                    response, logp, done = torch.tensor(solutions[k]), torch.zeros(len(solutions[k])), True
                prompt_rows.append(prompt)
                responses.append(response)
                logps.append(logp)
                groups.append(g)
                finished.append(done)
                cached.append(k < len(solutions))
        rollout = batch_from_rows(prompt_rows, responses, logps, groups, finished, ctx.pad_token_id,
                                  plain.response_ids.device)
        index = torch.tensor([r for r, c in enumerate(cached) if c], dtype=torch.long)
        if len(index):
            recomputed, _ = ctx.models.no_grad_logprobs(rollout, rows=index)
            logp = rollout.logp_rollout.clone()
            logp[index.to(logp.device)] = recomputed.to(logp.dtype) * rollout.response_mask[index.to(logp.device)]
            rollout = dataclasses.replace(rollout, logp_rollout=logp)
        batch = Batch(rollout=rollout, records=[records[replayed[g]] for g in groups], on_policy=not any(cached))
        rewards = ctx.score(batch).rewards  # kept: the scorer stage reuses them (reuse_scores)
        for g, i in enumerate(replayed):  # the record leaves the buffer once its own samples suffice
            own = [float(rewards[g * n + k]) >= self.replay["correct"] for k in range(n) if not cached[g * n + k]]
            if own and sum(own) / n > self.replay["threshold"]:
                self.buffer.pop(_key(records[i]), None)
        mask = rollout.response_mask
        value = self.config.reward_scale * (rewards.to(mask.device) - self.config.reward_baseline)
        ends = mask & ~torch.nn.functional.pad(mask[:, 1:], (0, 1))
        batch.extras = {"node_values": value[:, None] * mask, "step_ends": ends}
        if self.labels:
            batch.extras["step_labels"] = torch.full(mask.shape, -1.0, device=mask.device)
        return batch

    def state_dict(self) -> dict:
        return {"buffer": {k: [list(map(int, s)) for s in v] for k, v in self.buffer.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = {str(k): [list(map(int, s)) for s in v] for k, v in dict(state.get("buffer", {})).items()}


def _step_labels(result) -> torch.Tensor:
    """``[batch, seq]``: PROPA's label of each step's node on the step's last token, -1 elsewhere."""
    from rlobj.rollout.mcts_labels import log_boost

    out = torch.full(result.step_ends.shape, -1.0)
    for row, group in enumerate(result.rollout.group_ids.tolist()):
        position = -1
        for node in result.trees[group].path(result.leaves[row]):
            position += len(node.tokens)
            if node.tokens:
                out[row, position] = log_boost(node.q)
    return out.to(result.step_ends.device)


def _search_metrics(result, config) -> dict[str, float]:
    stats = result.stats
    trees = max(len(stats), 1)
    search = sum(s.search_tokens for s in stats)
    fill = sum(s.fill_tokens for s in stats)
    out = {"search/tokens_per_prompt": (search + fill) / trees, "search/search_tokens_per_prompt": search / trees,
           "search/fill_tokens_per_prompt": fill / trees, "search/nodes_per_prompt": sum(s.nodes for s in stats) / trees,
           "search/rounds_per_prompt": sum(s.rounds for s in stats) / trees,
           "search/kept_tokens_per_prompt": float(result.rollout.response_mask.sum()) / trees}
    if config.token_budget is not None:
        out["search/token_budget_per_prompt"] = float(config.token_budget)
    for reason in ("paths", "exhausted", "node_budget", "token_budget"):
        out[f"search/stop_{reason}"] = sum(s.stop == reason for s in stats) / trees
    return out
