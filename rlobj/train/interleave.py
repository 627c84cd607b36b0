r"""SFT interleaved with RL on the correct paths the search found (PROPA's training schedule).

PROPA (reference code github.com/YanbeiJiang/PROPA @ 8b9d77c,
``grpo_train_with_MCTS_iterative_qwen.sh``) trains in rounds over batches of 40 questions: MCTS
on the batch, one GRPO pass on it (lr 1e-6), then ``swift sft`` (lr 1e-4) on the correct
solutions found in those trees
(``create_SFT_train_qwen_after_grpo.py``: per tree, at most two correct terminal nodes, the pair
whose lowest common ancestor is closest to the root; a tree without a correct node contributes
the dataset's written solution instead). :class:`SFTInterleave` is that schedule as a trainer
callback, from YAML::

    trainer:
      callbacks:
        - class_path: rlobj.train.SFTInterleave
          init_args: {rl_steps: 2, sft_steps: 1, lr: 1.0e-3, fallback: demonstration}

After every ``rl_steps`` RL steps it takes ``sft_steps`` optimizer steps of the warm-up
objective (``warmup.objective``, default ``sft``) on the correct paths of those RL steps' batches
(reward $\ge$ ``correct``; per prompt at most ``paths_per_prompt`` distinct ones, the pair with
the shortest common token prefix: the reference's shallowest common ancestor), token ids as
sampled. With ``fallback: demonstration`` a prompt without a correct path adds its record's
``completion`` (the reference's fallback). The SFT steps run after Lightning's step, so they do
not count in ``trainer.max_steps`` (which counts warm-up and RL optimizer steps) and the
learning-rate scheduler does not advance on them; ``events`` records the schedule as it ran.

Differences from the reference: the reference runs one SFT *epoch* over per-step examples
(each step of a path predicted from the question and the steps before it, batch size 1); here
each SFT step is one optimizer step on whole paths, whose token NLL is the sum of the same
per-step terms. The reference's extra condition (only trees whose root value is 0) is not
reproduced: it is ambiguous under its own backup (the root's value is never updated there).
"""

from __future__ import annotations

import lightning as L
import torch

from rlobj.ops.errors import RlobjInputError

__all__ = ["SFTInterleave", "pick_pair"]


def pick_pair(paths: list[tuple[int, ...]], limit: int = 2) -> list[tuple[int, ...]]:
    """At most ``limit`` distinct paths; for ``limit = 2``, the pair with the shortest common prefix
    (first such pair in order), otherwise the first ``limit``.

    Example:
        >>> pick_pair([(1, 2, 3), (1, 2, 4), (5, 6)])
        [(1, 2, 3), (5, 6)]
    """
    distinct = list(dict.fromkeys(paths))
    if len(distinct) <= limit or limit != 2:
        return distinct[:limit]

    def common(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    pairs = [(common(a, b), i, j) for i, a in enumerate(distinct) for j, b in enumerate(distinct) if i < j]
    _, i, j = min(pairs)
    return [distinct[i], distinct[j]]


class SFTInterleave(L.Callback):
    """Alternate ``rl_steps`` RL steps with ``sft_steps`` SFT steps on search-found correct paths.

    Args:
        rl_steps: RL steps between two SFT phases (k >= 1).
        sft_steps: optimizer steps of each SFT phase (>= 1).
        correct: a path is correct when its reward is at least this.
        paths_per_prompt: most correct paths kept per prompt (the reference: 2).
        lr: learning rate of the SFT steps (None: ``warmup.lr``, else the optimizer's own).
        fallback: ``none`` or ``demonstration`` (a prompt without a correct path adds its record's
            ``completion``).

    Attributes:
        events: the schedule as it ran: ``("rl", data step)`` and ``("sft", data step)`` entries.
    """

    def __init__(self, rl_steps: int = 1, sft_steps: int = 1, correct: float = 1.0, paths_per_prompt: int = 2,
                 lr: float | None = None, fallback: str = "none"):
        for name, value in (("rl_steps", rl_steps), ("sft_steps", sft_steps), ("paths_per_prompt", paths_per_prompt)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlobjInputError(f"SFTInterleave.{name}: expected an int >= 1, got {value!r}")
        if fallback not in ("none", "demonstration"):
            raise RlobjInputError(f"SFTInterleave.fallback: expected 'none' or 'demonstration', got {fallback!r}")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
            raise RlobjInputError(f"SFTInterleave.lr: expected a number > 0 or null, got {lr!r}")
        self.rl_steps, self.sft_steps, self.correct = rl_steps, sft_steps, float(correct)
        self.paths_per_prompt, self.lr, self.fallback = paths_per_prompt, lr, fallback
        self.events: list[tuple[str, int]] = []
        self._paths: list[tuple[tuple[int, ...], tuple[int, ...]]] = []  # (prompt ids, response ids)
        self._demos: list[dict] = []
        self._since, self._seen = 0, None

    def collect(self, pl_module, batch) -> None:
        """Remember the correct paths of one scored RL batch (or the fallback demonstrations)."""
        rollout = batch.rollout
        rewards = batch.rewards.tolist()
        groups = rollout.group_ids.tolist()
        by_group: dict[int, list[int]] = {}
        for row, g in enumerate(groups):
            by_group.setdefault(g, []).append(row)
        for rows in by_group.values():
            good = [r for r in rows if rewards[r] >= self.correct]
            prompt = tuple(rollout.prompt_ids[rows[0]][rollout.prompt_mask[rows[0]]].tolist())
            if not good:
                if self.fallback == "demonstration" and "completion" in batch.records[rows[0]]:
                    self._demos.append(batch.records[rows[0]])
                continue
            responses = [tuple(rollout.response_ids[r][rollout.response_mask[r]].tolist()) for r in good]
            self._paths += [(prompt, p) for p in pick_pair(responses, self.paths_per_prompt)]

    def _rollout(self, pl_module):
        from rlobj.rollout._batching import batch_from_rows, concat_rollouts
        from rlobj.train.supervised import demonstrations

        parts = []
        device = pl_module.device_of_policy()
        pad = pl_module.tokenizer.pad_token_id
        if self._paths:
            parts.append(batch_from_rows([torch.tensor(p) for p, _ in self._paths],
                                         [torch.tensor(r) for _, r in self._paths],
                                         [torch.zeros(len(r)) for _, r in self._paths],
                                         list(range(len(self._paths))), [True] * len(self._paths), pad, device))
        if self._demos:
            parts.append(demonstrations(pl_module, self._demos))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else concat_rollouts(parts, pad)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        from rlobj.train.metrics import log_step_row
        from rlobj.train.supervised import sft_on_rollout

        step = int(batch["step"])
        if getattr(pl_module, "last_metrics", {}).get("phase", 1.0) == 0.0:
            return  # a warm-up step
        self.events.append(("rl", step))
        last = getattr(pl_module, "last_batch", None)
        if last is not None and last[0] is not self._seen:  # a step that filtered everything leaves it stale
            self._seen = last[0]
            self.collect(pl_module, last[0])
        self._since += 1
        if self._since < self.rl_steps:
            return
        self._since = 0
        rollout = self._rollout(pl_module)
        values = {"interleave/paths": float(len(self._paths)), "interleave/demonstrations": float(len(self._demos))}
        if rollout is not None:
            lr = self.lr if self.lr is not None else pl_module.cfg.warmup.lr
            for _ in range(self.sft_steps):
                metrics = sft_on_rollout(pl_module, rollout, lr)
                self.events.append(("sft", step))
            values.update({f"interleave/{k}": float(v) for k, v in metrics.items()})
        self._paths, self._demos = [], []
        log_step_row(pl_module, values)

    def state_dict(self) -> dict:
        return {"since": self._since, "paths": [[list(p), list(r)] for p, r in self._paths], "demos": self._demos}

    def load_state_dict(self, state: dict) -> None:
        self._since = int(state.get("since", 0))
        self._paths = [(tuple(p), tuple(r)) for p, r in state.get("paths", [])]
        self._demos = list(state.get("demos", []))
