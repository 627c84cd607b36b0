r"""Scorers: a :class:`~rlobj.train.stages.Batch` -> one :class:`~rlobj.train.stages.Score` per row.

:class:`VerifierScorer` runs a reward function ``verifier(completion, record)`` on each decoded
response. The function may return a number (the reward), a :class:`Score`, or a mapping with a
``"reward"`` key whose other keys become :attr:`Score.fields` (an extracted answer, per-step
verdicts, a format flag, reward components): that is how verifier-side facts reach terms
(``extras:<field>``). A verifier that raises or returns something non-finite gives reward 0 and
is counted in ``verifier/failed_fraction``; training never stops on a broken verifier.

With ``workers > 0`` the items run in a :class:`rlobj.verifiers.VerifierPool` (separate
processes, per-item timeouts); the pool carries rewards only, so fields need ``workers: 0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rlobj.ops.errors import RlobjInputError
from rlobj.train.model_scorers import nanstd
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["VerifierScorer", "ProcessScorer", "RewardFunctions", "score_completions", "as_score", "reuse_scores"]


def as_score(value: Any) -> Score:
    """A verifier's return value as a :class:`Score` (number, Score, or mapping with ``reward``)."""
    if isinstance(value, Score):
        score = value
    elif isinstance(value, Mapping):
        if "reward" not in value:
            raise ValueError(f"a verifier's mapping needs a 'reward' key, got keys {sorted(value)}")
        fields = {k: v for k, v in value.items() if k not in ("reward", "token_rewards")}
        score = Score(reward=float(value["reward"]), token_rewards=value.get("token_rewards"), fields=fields)
    else:
        score = Score(reward=float(value))
    if not math.isfinite(score.reward):
        raise ValueError("non-finite reward")
    return score


def reuse_scores(batch: Batch) -> list[Score] | None:
    """The scores a sampler already gave ``batch``, or None when it comes unscored.

    The contract: a sampler that verified its rows while sampling (the MCTS sampler scores every
    terminal path it returns through ``ctx.score``, i.e. with this run's scorer) returns the
    batch with ``scores`` set; the scorer stage then reuses them instead of running the verifier
    again on the same rows (``verifier/reused_fraction`` = 1 in the step's metrics). Scorers
    built on :class:`VerifierScorer` (and :class:`~rlobj.train.process_reward.PRMScorer`) honour it.
    """
    if batch.scores is None:
        return None
    batch.metrics["verifier/reused_fraction"] = 1.0
    return list(batch.scores)


def score_completions(verifier, completions: list[str], samples: list[dict], pool=None) -> tuple[list[float], dict[str, float]]:
    """Rewards of ``completions``; a verifier that raises or returns garbage gives 0 and is counted."""
    scores, metrics = _scores(verifier, completions, samples, pool)
    return [s.reward for s in scores], metrics


def _scores(verifier, completions, samples, pool) -> tuple[list[Score], dict[str, float]]:
    if pool is not None:
        result = pool.score(verifier, completions, samples)
        return [Score(reward=float(r)) for r in result.rewards], result.metrics()
    scores, failed = [], 0
    for completion, sample in zip(completions, samples):
        try:
            score = as_score(verifier(completion, sample))
        except Exception:  # noqa: BLE001 - a broken verifier must never stop training
            score, failed = Score(reward=0.0), failed + 1
        scores.append(score)
    return scores, {"verifier/failed_fraction": failed / max(len(scores), 1)}


class VerifierScorer(Scorer):
    """Score each decoded response with ``verifier(completion, record)``.

    Args:
        verifier: the reward function (default :class:`~rlobj.data.tasks.ExactAnswer`).
        workers: >0 scores in a :class:`rlobj.verifiers.VerifierPool` of that many processes.
        timeout: seconds per item in the pool.
    """

    def __init__(self, verifier: Any = None, workers: int = 0, timeout: float = 10.0):
        from rlobj.data.tasks import ExactAnswer

        if isinstance(verifier, Mapping) and "class_path" in verifier:  # jsonargparse left it unbuilt
            verifier = _resolve_function(verifier, "verifier")
        self.verifier = verifier if verifier is not None else ExactAnswer()
        if not callable(self.verifier):
            raise RlobjInputError(f"verifier: expected a callable (completion, record) -> reward, "
                                  f"got {type(self.verifier).__name__}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise RlobjInputError(f"workers: expected an int >= 0, got {workers!r}")
        self.workers, self.timeout = workers, timeout
        self._pool = None

    def pool(self):
        if self.workers > 0 and self._pool is None:
            from rlobj.verifiers import VerifierPool

            self._pool = VerifierPool(workers=self.workers, timeout=self.timeout)
        return self._pool

    def score_texts(self, completions: list[str], records: list[dict]) -> tuple[list[Score], dict[str, float]]:
        return _scores(self.verifier, completions, records, self.pool())

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        reused = reuse_scores(batch)  # rows the sampler already verified with this scorer
        if reused is not None:
            return reused
        scores, metrics = self.score_texts(ctx.decode(batch.rollout), batch.records)
        batch.metrics.update(metrics)
        return scores

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class ProcessScorer(VerifierScorer):
    """A verifier's outcome reward plus per-step scores (``Score.fields["step_scores"]``).

    Responses are split into reasoning steps at ``delimiter``
    (:func:`rlobj.train.providers.steps.split_steps`) and each step is scored by the scripted
    step checker of :class:`~rlobj.train.providers.steps.ReasoningSteps` (``"equations"``: the
    fraction of ``a+b=c`` equations in the step that hold, ``neutral`` when it has none;
    ``"reference_prefix"``: 1 while the response is a prefix of ``record[reference_key]``). It is a
    stand-in for a process reward model; PROF (``transforms: [prof_filter]``) reads the field.

    Args:
        verifier, workers, timeout: as :class:`VerifierScorer`.
        delimiter, checker, neutral, reference_key: the step split and checker.
    """

    def __init__(self, verifier: Any = None, workers: int = 0, timeout: float = 10.0, delimiter: str = "\n",
                 checker: str = "equations", neutral: float = 0.5, reference_key: str = "completion"):
        super().__init__(verifier, workers=workers, timeout=timeout)
        from rlobj.train.providers.steps import ReasoningSteps

        self.steps = ReasoningSteps(delimiter=delimiter, checker=checker, neutral=neutral,
                                    reference_key=reference_key)

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        from rlobj.train.providers.steps import split_steps

        scores = super().__call__(ctx, batch)
        _, steps, _ = split_steps(ctx, batch.rollout, self.steps.delimiter)
        out = []
        for row, (score, row_steps) in enumerate(zip(scores, steps)):
            values = [self.steps.step_score(step, batch.records[row], row) for step in row_steps]
            out.append(Score(reward=score.reward, token_rewards=score.token_rewards,
                             fields={**score.fields, "step_scores": values}))
        return out


def _resolve_function(spec: Any, key: str):
    """A reward function from config: a callable, a dotted path, or ``{class_path, init_args}``."""
    if isinstance(spec, Mapping) and "class_path" in spec:
        cls = _resolve_function(spec["class_path"], f"{key}.class_path")
        try:
            return cls(**dict(spec.get("init_args") or {}))
        except TypeError as error:
            raise RlobjInputError(f"{key}.init_args: {error}") from error
    if isinstance(spec, str):
        from rlobj.ops.errors import import_dotted

        return import_dotted(spec, key)
    if not callable(spec):
        raise RlobjInputError(f"{key}: expected a callable f(prompts, completions, **columns), "
                              f"got {type(spec).__name__}")
    return spec


class RewardFunctions(Scorer):
    r"""TRL-style reward functions as the scorer stage: several, weighted, each logged separately.

    Each function is called once per batch as ``f(prompts=..., completions=...,
    completion_ids=..., **columns) -> list[float | None]``, exactly like a reward function of
    TRL's ``GRPOTrainer``:

    * ``prompts``: the records' prompts: the list of messages for conversational rows (TRL's
      conversational format), else the prompt text;
    * ``completions``: the decoded responses: text, or ``[{"role": "assistant", "content": text}]``
      for conversational rows;
    * ``completion_ids``: the sampled response token ids (the EOS token included when the
      response stopped);
    * ``columns``: every other dataset column, one list per column (``answer=[...]``,
      ``solution=[...]``), so ``def accuracy(completions, answer, **kwargs)`` works.

    A function returns one value per completion: a number, or ``None`` for "not applicable"
    (say, a math checker on a code prompt). The reward of row $b$ is

    $$r_b = \sum_{i:\ f_i(b) \neq \text{None}} w_i\, f_i(b),$$

    the weighted sum over the functions that apply (TRL's ``nansum``); a row where every function
    says ``None`` gets reward 0 and is counted in ``reward_funcs/all_none_fraction``. Per function
    ``<name>``, the batch logs ``reward_funcs/<name>/mean`` and ``reward_funcs/<name>/std`` (over
    the rows it applies to; TRL's ``nanmean`` and Bessel-corrected ``nanstd``) and
    ``reward_funcs/<name>/none_fraction``, and each row's :attr:`Score.fields` holds
    ``reward_funcs/<name>`` (NaN where ``None``).

    A member may also be a **scorer** (a :class:`~rlobj.train.stages.Scorer`: a reward model, an
    LLM judge, a verifier scorer): it is called on the batch and its rows that it did not score
    (field ``scored = 0``, a judge failure) count as ``None``. Its own metrics are logged too.

    Model-backed members (:class:`~rlobj.train.model_scorers.ModelScorer`: reward models,
    judges) are **submitted first** and run on their own worker threads while the plain functions
    run on the caller's thread (``overlap``, default on); each keeps its own wall-clock
    ``timeout``. The result does not depend on the overlap: values are summed in member order.

    A function that raises, returns the wrong number of values, or a non-finite value stops the
    step with an error naming the function (unlike per-item verifiers, a batch function failing
    fails the whole batch).

    Args:
        funcs: the reward functions: callables, dotted paths (``mypkg.rewards.accuracy``) or
            ``{class_path, init_args}`` of a callable class.
        weights: one weight per function (default all 1).
        overlap: run model-backed members concurrently with the plain functions (False: one
            after the other, in member order).

    Example (YAML, ``model.scorer``)::

        scorer:
          class_path: rlobj.train.RewardFunctions
          init_args:
            funcs: [mypkg.rewards.accuracy, mypkg.rewards.format_reward]
            weights: [1.0, 0.2]
    """

    def __init__(self, funcs: list[Any], weights: list[float] | None = None, overlap: bool = True):
        if not isinstance(overlap, bool):
            raise RlobjInputError(f"RewardFunctions.overlap: expected true or false, got {overlap!r}")
        self.overlap = overlap
        if not isinstance(funcs, (list, tuple)) or not funcs:
            raise RlobjInputError(f"reward_funcs: expected a non-empty list of reward functions, got {funcs!r}")
        self.funcs = [_resolve_function(f, f"funcs[{i}]") for i, f in enumerate(funcs)]
        if weights is None:
            weights = [1.0] * len(self.funcs)
        if len(weights) != len(self.funcs):
            raise RlobjInputError(f"weights: {len(weights)} weights for {len(self.funcs)} reward functions")
        for i, w in enumerate(weights):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                raise RlobjInputError(f"weights[{i}]: expected a finite number, got {w!r}")
        self.weights = [float(w) for w in weights]
        names: list[str] = []
        for f in self.funcs:
            name = getattr(f, "__name__", None) or getattr(f, "name", None) or type(f).__name__
            names.append(name if name not in names else f"{name}_{len(names)}")
        self.names = names

    def score_texts(self, completions: list[str], records: list[dict],
                    completion_ids: list[list[int]] | None = None, scorer_values=None) -> tuple[list[Score], dict[str, float]]:
        """Scores of decoded ``completions`` answering ``records``; metrics per function.

        ``scorer_values`` maps the index of each scorer member to its values (None where it did
        not score); :meth:`__call__` fills it (scorers need the batch)."""
        rows = len(completions)
        scorer_values = scorer_values or {}
        conversational = [isinstance(r.get("prompt_messages"), list) for r in records]
        prompts = [r["prompt_messages"] if c else r["prompt"] for r, c in zip(records, conversational)]
        shown = [[{"role": "assistant", "content": t}] if c else t for t, c in zip(completions, conversational)]
        keys = [k for k in records[0] if k not in ("prompt", "prompt_messages", "completion")] if records else []
        columns = {k: [r.get(k) for r in records] for k in keys}
        totals, applied = [0.0] * rows, [0] * rows
        values_by_name: dict[str, list[float]] = {}
        metrics: dict[str, float] = {}
        raw: dict[int, Any] = {}
        members = list(enumerate(self.funcs))
        # plain functions first, then the scorer members' values: a judge submitted before this call
        # (``scorer_values[index]`` a callable that waits for it) runs while the functions run
        for index, f in sorted(members, key=lambda m: isinstance(m[1], Scorer)):
            name = self.names[index]
            if isinstance(f, Scorer) and index not in scorer_values:
                raise RlobjInputError(f"reward function {name!r} is a scorer: it needs the rollout batch "
                                      "(call the RewardFunctions scorer on a batch, not score_texts)")
            try:
                if index in scorer_values:
                    given = scorer_values[index]
                    raw[index] = given() if callable(given) else given
                else:
                    raw[index] = f(prompts=prompts, completions=shown, completion_ids=completion_ids, **columns)
            except Exception as error:
                raise RlobjInputError(f"reward function {name!r} raised {type(error).__name__}: {error}") from error
        for index, (name, w) in enumerate(zip(self.names, self.weights)):
            values = raw[index]
            values = list(values) if values is not None else None
            if values is None or len(values) != rows:
                raise RlobjInputError(f"reward function {name!r} returned {0 if values is None else len(values)} "
                                      f"values for {rows} completions")
            floats = []
            for b, v in enumerate(values):
                if v is None:
                    floats.append(math.nan)
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise RlobjInputError(f"reward function {name!r}: value {b} is {v!r}; expected a finite "
                                          "number or None (not applicable)")
                floats.append(float(v))
                totals[b] += w * float(v)
                applied[b] += 1
            values_by_name[name] = floats
            present = [v for v in floats if not math.isnan(v)]
            metrics[f"reward_funcs/{name}/mean"] = sum(present) / len(present) if present else math.nan
            metrics[f"reward_funcs/{name}/std"] = nanstd(floats)
            metrics[f"reward_funcs/{name}/none_fraction"] = 1.0 - len(present) / max(rows, 1)
        metrics["reward_funcs/all_none_fraction"] = sum(1 for a in applied if a == 0) / max(rows, 1)
        scores = [Score(reward=totals[b], fields={f"reward_funcs/{n}": values_by_name[n][b] for n in self.names})
                  for b in range(rows)]
        return scores, metrics

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        from rlobj.train.model_scorers import ModelScorer

        ids = [[int(t) for t, m in zip(row, mask) if m]
               for row, mask in zip(batch.rollout.response_ids.tolist(), batch.rollout.response_mask.tolist())]

        def unscored_as_none(scores: list[Score]) -> list[float | None]:
            return [s.reward if s.fields.get("scored", 1.0) else None for s in scores]

        scorer_values: dict[int, Any] = {}
        for index, f in enumerate(self.funcs):
            if not isinstance(f, Scorer):
                continue
            if self.overlap and isinstance(f, ModelScorer) and type(f).__call__ is ModelScorer.__call__:
                pending = f.submit(ctx, batch)  # its chunks run on the scorer's threads from now on
                scorer_values[index] = lambda f=f, pending=pending: unscored_as_none(f.collect(pending, batch))
            else:
                scorer_values[index] = unscored_as_none(f(ctx, batch))
        scores, metrics = self.score_texts(ctx.decode(batch.rollout), batch.records, ids, scorer_values)
        batch.metrics.update(metrics)
        return scores

    def close(self) -> None:
        for f in self.funcs:
            if isinstance(f, Scorer):
                f.close()
