r"""Multi-turn rollouts: generation alternates with environment steps, for a whole batch at once.

:class:`MultiTurnSampler` (YAML ``sampler: {multi_turn: {environment: ..., max_turns: 4}}``)
makes one environment per trajectory (:mod:`rlobj.train.envs`), resets it with the trajectory's
record, then repeats for every trajectory still running:

1. the engine samples one turn for all of them in one call (any engine: the contexts are token
   ids, so the HF and vLLM engines both work), up to EOS or the turn's token budget;
2. every environment steps on its turn's text **concurrently** (one thread each) under a
   per-step timeout; a step that overruns or raises ends that episode with an ``error:``
   observation and reward 0 (counted in ``rollout/env_timeouts`` / ``rollout/env_errors``);
3. observations are cleaned (control characters removed, special-token ids dropped, cut to
   ``max_observation_chars`` characters *before* tokenising and ``max_observation_tokens``
   tokens after) and appended to the context.

until the environment says ``done``, ``max_turns`` turns were taken or ``max_tokens`` response
tokens were used. The result is one :class:`~rlobj.rollout.RolloutBatch` whose response is the
whole transcript after the first observation: ``turn 0, observation 0, turn 1, ...``.
``response_mask`` is True on every real token (the model attends to observations), and
``logp_rollout`` holds the log-probs of the distribution each generated token was drawn from
(0 on observation tokens). The batch's extras say which tokens are which:

* ``observation_mask`` (bool ``batch seq``): True on observation tokens. The trainer's loss mask
  is ``response_mask & ~observation_mask`` (:meth:`~rlobj.train.stages.Batch.action_mask`);
* ``turn_ids`` (int64 ``batch seq``): the turn index of each generated token, -1 elsewhere;
* ``turn_rewards`` (float ``batch seq``): each turn's environment reward on that turn's last
  generated token (token-level rewards at turn ends), 0 elsewhere;
* ``episode_return`` (float ``batch``): the sum of a trajectory's turn rewards;
* ``num_turns`` (float ``batch``) and ``tool_calls`` / ``tool_successes`` (float ``batch``).

:class:`EnvironmentScorer` turns ``episode_return`` into the score; the terms
:class:`~rlobj.terms.turn_returns` and :class:`~rlobj.terms.turn_end_rewards` read the rest.

Determinism: turn ``k``'s sampling seed and each environment's ``seed`` derive from the run's
seed, the data step, the salt and the row, so a resumed run replays its episodes.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.envs.base import build_environment_factory
from rlobj.train.samplers import _sampling
from rlobj.train.stages import Batch, Sampler, Score, Scorer

__all__ = ["MultiTurnSampler", "EnvironmentScorer", "clean_observation"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_observation(text: Any, max_chars: int) -> str:
    """An observation as safe text: ``str``, cut to ``max_chars`` characters, control characters
    (but newline and tab) removed. Bounded work whatever the input's size."""
    text = text if isinstance(text, str) else str(text)[:max_chars]
    return _CONTROL.sub("", text[:max_chars])


def _check_int(name: str, value, low: int = 1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RlobjInputError(f"multi_turn.{name}: expected an int >= {low}, got {value!r}")


class MultiTurnSampler(Sampler):
    """Alternate generation and environment steps (see the module docstring).

    Args:
        environment: the environment spec (:func:`~rlobj.train.envs.build_environment_factory`).
        max_turns: largest number of policy turns per trajectory.
        max_tokens: largest number of response tokens per trajectory (turns and observations);
            a trajectory that reaches it stops (``truncated``).
        turn_tokens: largest number of tokens of one turn; default: the rollout's
            ``max_new_tokens``.
        step_timeout: seconds an environment step may take (the whole batch's step waits at
            most this long).
        max_observation_chars / max_observation_tokens: bounds of one observation.
        stop: strings that end a turn (e.g. ``"```output"`` or ``"</tool_call>"``): a turn is
            cut after the first token whose decoded prefix contains one; the tokens sampled
            after it are dropped (the kept tokens' log-probs are unchanged, so they stay those
            of the distribution sampled). Turns always end at EOS too.

    Evaluation (pass@k) runs episodes through this sampler too (``samples_evaluation``).
    """

    samples_evaluation = True

    def __init__(self, environment: Any, max_turns: int = 4, max_tokens: int = 256, turn_tokens: int | None = None,
                 step_timeout: float = 10.0, max_observation_chars: int = 4000, max_observation_tokens: int = 128,
                 stop: list[str] | tuple[str, ...] = ()):
        self.environment = build_environment_factory(environment)
        for name in ("max_turns", "max_tokens", "max_observation_chars", "max_observation_tokens"):
            _check_int(name, locals()[name])
        if turn_tokens is not None:
            _check_int("turn_tokens", turn_tokens)
        if not isinstance(step_timeout, (int, float)) or not step_timeout > 0:
            raise RlobjInputError(f"multi_turn.step_timeout: expected seconds > 0, got {step_timeout!r}")
        self.max_turns, self.max_tokens, self.turn_tokens = max_turns, max_tokens, turn_tokens
        self.step_timeout = float(step_timeout)
        self.max_observation_chars, self.max_observation_tokens = max_observation_chars, max_observation_tokens
        if isinstance(stop, str) or not all(isinstance(t, str) and t for t in stop):
            raise RlobjInputError(f"multi_turn.stop: expected a list of non-empty strings, got {stop!r}")
        self.stop = tuple(stop)
        self.last_transcripts: list[list[tuple[str, str]]] = []

    # ------------------------------------------------------------------ the loop
    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        rows = [records[i // n] for i in range(len(records) * n)]
        base_seed = ctx.seed * 1_000_003 + ctx.step * 9_973 + salt * 7_919
        envs, contexts = [], []
        for index, record in enumerate(rows):
            if not isinstance(record, dict):
                raise RlobjInputError(f"records[{index // n}]: expected a mapping, got {record!r:.200}")
            env = self.environment()
            env.seed = (base_seed * 131 + index) % (2**62)
            first = clean_observation(env.reset(record), self.max_observation_chars)
            envs.append(env)
            contexts.append(ctx.encode(first))
        special = set(getattr(ctx, "special_token_ids", ()) or ())
        state = [_Trajectory() for _ in rows]
        counts = {"timeouts": 0, "errors": 0}
        try:
            for turn in range(self.max_turns):
                alive = [b for b, s in enumerate(state) if not s.finished]
                if not alive:
                    break
                budget = min(self.turn_tokens or ctx.sampling.max_new_tokens,
                             self.max_tokens - min(len(state[b].ids) for b in alive))
                sampling = _sampling(ctx, salt * 1_000 + turn + 1, {"max_new_tokens": max(budget, 1), **changes})
                rollout = ctx.engine.generate([contexts[b] + state[b].ids for b in alive], n=1, sampling=sampling)
                actions = self._append_turns(ctx, state, alive, rollout, turn)
                stepping = [b for b in alive if not state[b].finished]
                outputs = self._step_all([envs[b] for b in stepping], [actions[b] for b in stepping], counts)
                for b, (observation, reward, done, info) in zip(stepping, outputs):
                    self._append_observation(ctx, state[b], observation, reward, done, info, special, turn)
        finally:
            for env in envs:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - a failing close must not hide the episode's result
                    counts["errors"] += 1
        for s in state:
            if not s.finished:  # the turn budget ran out
                s.finished, s.stopped = True, False
        return self._assemble(ctx, rows, contexts, state, n, counts)

    def _append_turns(self, ctx, state, alive, rollout, turn) -> dict[int, str]:
        actions = {}
        texts = ctx.decode(rollout)
        for row, b in enumerate(alive):
            mask = rollout.response_mask[row].cpu()
            ids = rollout.response_ids[row].cpu()[mask].tolist()
            logps = rollout.logp_rollout[row].cpu()[mask].tolist()
            s = state[b]
            room = self.max_tokens - len(s.ids)
            ids, logps = ids[:room], logps[:room]
            text = texts[row]
            if self.stop and any(t in text for t in self.stop):
                keep = self._stop_length(ctx, ids)
                ids, logps, text = ids[:keep], logps[:keep], _decode_ids(ctx, ids[:keep])
            s.extend(ids, logps, observation=False, turn=turn)
            s.turn_end.append(len(s.ids) - 1)
            s.turn_rewards.append(0.0)
            actions[b] = text
            s.transcript.append(("policy", text))
            if len(s.ids) >= self.max_tokens:
                s.finished, s.stopped = True, False
        return actions

    def _stop_length(self, ctx, ids: list[int]) -> int:
        """Smallest k whose decoded ``ids[:k]`` contains a stop string (binary search: containing
        one is monotone in k)."""
        low, high = 1, len(ids)
        while low < high:
            middle = (low + high) // 2
            if any(t in _decode_ids(ctx, ids[:middle]) for t in self.stop):
                high = middle
            else:
                low = middle + 1
        return high

    def _step_all(self, envs, actions, counts):
        results: list[Any] = [None] * len(envs)

        def run(index):
            try:
                results[index] = envs[index].step(actions[index])
            except Exception as error:  # noqa: BLE001 - reported as an observation and counted
                results[index] = error

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(envs))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.step_timeout
        outputs = []
        for index, thread in enumerate(threads):
            thread.join(max(deadline - time.monotonic(), 0.0))
            result = results[index]
            if thread.is_alive():
                counts["timeouts"] += 1
                outputs.append((f"error: the environment did not answer within {self.step_timeout:g} s", 0.0, True,
                                {"timeout": True}))
            elif isinstance(result, Exception):
                counts["errors"] += 1
                outputs.append((f"error: {type(result).__name__}: {result}", 0.0, True, {"error": True}))
            else:
                outputs.append(_check_output(type(envs[index]).__name__, result))
        return outputs

    def _append_observation(self, ctx, s, observation, reward, done, info, special, turn):
        s.turn_rewards[-1] = float(reward)
        s.tool_calls += float(bool(info.get("tool_call")))
        s.tool_successes += float(bool(info.get("tool_ok")))
        s.transcript.append(("environment", clean_observation(observation, 200)))
        if done:
            s.finished = True
            return
        if turn == self.max_turns - 1:
            return  # no turn follows: the observation would be context for nothing
        text = clean_observation(observation, self.max_observation_chars)
        ids = [t for t in ctx.encode(text) if t not in special][:self.max_observation_tokens] if text else []
        room = self.max_tokens - len(s.ids)
        s.extend(ids[:room], [0.0] * min(len(ids), room), observation=True, turn=-1)
        if len(s.ids) >= self.max_tokens:
            s.finished, s.stopped = True, False

    def _assemble(self, ctx, rows, contexts, state, n, counts) -> Batch:
        rollout = batch_from_rows([torch.tensor(c, dtype=torch.long) for c in contexts],
                                  [torch.tensor(s.ids, dtype=torch.long) for s in state],
                                  [torch.tensor(s.logps, dtype=torch.float32) for s in state],
                                  [b // n for b in range(len(state))], [s.stopped for s in state],
                                  ctx.pad_token_id)
        width = rollout.response_ids.shape[1]
        observation_mask = torch.zeros((len(state), width), dtype=torch.bool)
        turn_ids = torch.full((len(state), width), -1, dtype=torch.long)
        turn_rewards = torch.zeros((len(state), width), dtype=torch.float32)
        for b, s in enumerate(state):
            observation_mask[b, :len(s.ids)] = torch.tensor(s.observation, dtype=torch.bool)
            turn_ids[b, :len(s.ids)] = torch.tensor(s.turns, dtype=torch.long)
            for end, reward in zip(s.turn_end, s.turn_rewards):
                if end >= 0:
                    turn_rewards[b, end] += reward
        device = rollout.response_ids.device
        extras = {"observation_mask": observation_mask, "turn_ids": turn_ids, "turn_rewards": turn_rewards,
                  "episode_return": torch.tensor([sum(s.turn_rewards) for s in state]),
                  "num_turns": torch.tensor([float(len(s.turn_end)) for s in state]),
                  "tool_calls": torch.tensor([s.tool_calls for s in state]),
                  "tool_successes": torch.tensor([s.tool_successes for s in state])}
        extras = {k: v.to(device) for k, v in extras.items()}
        self.last_transcripts = [s.transcript for s in state]
        calls = float(extras["tool_calls"].sum())
        metrics = {"rollout/turns_mean": float(extras["num_turns"].mean()),
                   "rollout/observation_tokens": float(observation_mask.sum()),
                   "rollout/tool_calls_mean": calls / len(state),
                   "rollout/tool_success_rate": float(extras["tool_successes"].sum()) / calls if calls else 0.0,
                   "rollout/tool_use_rate": float((extras["tool_successes"] > 0).float().mean()),
                   "rollout/env_timeouts": float(counts["timeouts"]), "rollout/env_errors": float(counts["errors"]),
                   "rollout/episode_return_mean": float(extras["episode_return"].mean())}
        return Batch(rollout=rollout, records=list(rows), extras=extras, metrics=metrics, on_policy=True)


def _decode_ids(ctx, ids: list[int]) -> str:
    """Text of token ids through the trainer's ``ctx.decode`` (one-row batch)."""
    if not ids:
        return ""
    row = batch_from_rows([torch.tensor([0])], [torch.tensor(ids)], [torch.zeros(len(ids))], [0], [True],
                          ctx.pad_token_id)
    return ctx.decode(row)[0]


def _check_output(name, result):
    if not (isinstance(result, tuple) and len(result) == 4):
        return (f"error: {name}.step returned {type(result).__name__}, not (observation, reward, done, info)",
                0.0, True, {"error": True})
    observation, reward, done, info = result
    try:
        reward = float(reward)
    except (TypeError, ValueError):
        reward = float("nan")
    if reward != reward or reward in (float("inf"), float("-inf")):
        raise RlobjInputError(f"{name}.step: reward must be a finite number, got {result[1]!r:.80}")
    return observation, reward, bool(done), info if isinstance(info, dict) else {}


class _Trajectory:
    """One trajectory's tokens and bookkeeping while the loop runs."""

    def __init__(self):
        self.ids: list[int] = []
        self.logps: list[float] = []
        self.observation: list[bool] = []
        self.turns: list[int] = []
        self.turn_end: list[int] = []
        self.turn_rewards: list[float] = []
        self.transcript: list[tuple[str, str]] = []
        self.tool_calls = self.tool_successes = 0.0
        self.finished = False
        self.stopped = True  # ended by the environment (False: a budget ran out)

    def extend(self, ids, logps, observation: bool, turn: int):
        self.ids += ids
        self.logps += logps
        self.observation += [observation] * len(ids)
        self.turns += [turn] * len(ids)


class EnvironmentScorer(Scorer):
    """The environments' rewards as scores: ``reward`` = the episode's return (sum of its turn
    rewards, ``extras['episode_return']`` of :class:`MultiTurnSampler`); fields ``num_turns``,
    ``tool_calls`` and ``tool_successes``."""

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        if "episode_return" not in batch.extras:
            raise RlobjInputError("EnvironmentScorer: the batch has no extras['episode_return']; use it with the "
                                  "multi_turn sampler")
        keys = ("num_turns", "tool_calls", "tool_successes")
        values = {k: batch.extras[k].tolist() for k in keys}
        return [Score(float(r), fields={k: values[k][b] for k in keys})
                for b, r in enumerate(batch.extras["episode_return"].tolist())]
