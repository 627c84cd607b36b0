r"""The environment protocol of multi-turn rollouts, and how environments are built from config.

An environment is one episode's world: the multi-turn sampler
(:class:`~rlobj.train.multiturn.MultiTurnSampler`) makes one per sampled trajectory and calls

* ``reset(row) -> observation``: the dataset row the trajectory answers; the returned text is
  the trajectory's first context (the prompt the policy sees);
* ``step(action_text) -> (observation, reward, done, info)``: the policy's turn (decoded text,
  EOS removed); ``observation`` is appended to the context as tokens the loss never sees,
  ``reward`` is this turn's reward (a per-turn reward; the reward of the step that returns
  ``done=True`` is the final reward), ``info`` a mapping of facts for metrics (``tool_call``,
  ``tool_ok``, ``timeout``, ``error``);
* ``close()``: free what the episode held (called once, after the episode ends).

Before ``reset`` the sampler sets ``env.seed`` to an integer derived from the run's seed, the
data step and the trajectory's row, so an environment that draws random numbers from
``random.Random(self.seed)`` replays the same episode when a run resumes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from rlobj.ops.errors import RlobjInputError, did_you_mean, import_subclass

__all__ = ["Environment", "StepOutput", "build_environment_factory", "ENVIRONMENTS"]

#: ``(observation, reward, done, info)``: what :meth:`Environment.step` returns.
StepOutput = tuple[str, float, bool, Mapping[str, Any]]


class Environment:
    """Base of environments (see the module docstring for the protocol).

    The default ``reset`` returns ``row["prompt"]``; subclasses define ``step``.

    Attributes:
        seed: set by the sampler before ``reset`` (None outside a sampler).
    """

    seed: int | None = None

    def reset(self, row: Mapping[str, Any]) -> str:
        """The first observation of an episode answering ``row`` (default: ``row["prompt"]``)."""
        if not isinstance(row, Mapping) or not isinstance(row.get("prompt"), str):
            raise RlobjInputError(f"{type(self).__name__}.reset: expected a row with a str 'prompt', got {row!r:.200}")
        return row["prompt"]

    def step(self, action: str) -> StepOutput:  # pragma: no cover - the protocol's abstract method
        raise TypeError(f"{type(self).__name__} does not define step()")

    def close(self) -> None:
        """Free the episode's resources (default: nothing)."""
        return None


def _environment_classes() -> dict[str, str]:
    return {"tools": "rlobj.train.envs.tool_env.ToolEnvironment",
            "simulated_user": "rlobj.train.envs.simulated_user.SimulatedUserEnvironment"}


#: name -> dotted class path of the built-in environments (YAML shorthand).
ENVIRONMENTS: dict[str, str] = _environment_classes()


def build_environment_factory(spec: Any) -> Callable[[], Environment]:
    """A zero-argument factory of fresh environments from config.

    ``spec`` is an :class:`Environment` subclass, a zero-argument callable, a name of
    :data:`ENVIRONMENTS`, a dotted class path, ``{name_or_path: {args}}`` or
    ``{"class_path": ..., "init_args": {...}}``.
    """
    if isinstance(spec, type) and issubclass(spec, Environment):
        return spec
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        return spec
    args: dict = {}
    if isinstance(spec, Mapping) and "class_path" in spec:
        unknown = set(spec) - {"class_path", "init_args"}
        if unknown:
            raise RlobjInputError(f"environment: unknown key(s) {sorted(unknown)} next to class_path")
        spec, args = spec["class_path"], dict(spec.get("init_args") or {})
    elif isinstance(spec, Mapping) and len(spec) == 1:
        (spec, args), = spec.items()
        args = dict(args or {})
    if not isinstance(spec, str):
        raise RlobjInputError(f"environment: expected a name {sorted(ENVIRONMENTS)}, a dotted class path, "
                              f"{{name: {{args}}}} or class_path/init_args, got {spec!r:.200}")
    path = ENVIRONMENTS.get(spec, spec)
    if "." not in path:
        raise RlobjInputError(f"environment: unknown environment {spec!r}.{did_you_mean(spec, ENVIRONMENTS)} "
                              f"Known: {sorted(ENVIRONMENTS)}")
    cls = import_subclass(path, Environment, "environment", "rlobj.train.envs.Environment")
    try:
        cls(**args).close()  # bad arguments fail when the sampler is built, not on the first step
    except TypeError as error:
        raise RlobjInputError(f"environment {spec}: {error}") from error
    return functools.partial(cls, **args)
