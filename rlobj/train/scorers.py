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
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["VerifierScorer", "ProcessScorer", "score_completions", "as_score"]


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
        verifier: the reward function (default :class:`~rlobj.train.tasks.ExactAnswer`).
        workers: >0 scores in a :class:`rlobj.verifiers.VerifierPool` of that many processes.
        timeout: seconds per item in the pool.
    """

    def __init__(self, verifier: Any = None, workers: int = 0, timeout: float = 10.0):
        from rlobj.train.tasks import ExactAnswer

        self.verifier = verifier if verifier is not None else ExactAnswer()
        if not callable(self.verifier):
            raise RlobjInputError(f"verifier: expected a callable (completion, record) -> reward, "
                                  f"got {type(self.verifier).__name__}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise RlobjInputError(f"verifier_workers: expected an int >= 0, got {workers!r}")
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
