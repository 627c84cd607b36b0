r"""The trainer's ``rollout:`` option: which sampling strategy produces each RL batch.

YAML forms (``model.rollout``)::

    rollout: plain                       # default: the engine's ordinary sampling

    rollout:                             # Exploratory Annealed Decoding, arXiv 2510.05251
      strategy: ead
      schedule: {tau_max: 1.2, tau_min: 0.1, d0: 25.0, slope: 5.0, cap: 40000.0,
                 warmup: 10, d_scale: 20.0}          # EADSchedule fields (all optional)

    rollout:                             # LATR lookahead tree rollouts, arXiv 2510.24302
      strategy: latr
      config: {tau_abs: 0.15, tau_rel: 0.25, similarity: math, mix: {0: 1.0, 100: 0.75}}

    rollout:                             # UloRL segment rollouts, arXiv 2507.19766
      strategy: segments
      segment_tokens: 16384
      release: group

What the trainer does with each (see :class:`rlobj.train.RLModule`):

* ``ead``: samples with ``SamplingConfig.temperature_schedule = schedule.at_step(k)``, $k$ = the
  number of RL optimizer updates done so far (``rl_updates``); the engine's log-probs of the
  annealed distribution go to ``extras['logp_rollout']`` and ``logp_old`` is recomputed at the plain
  temperature, so ``grpo >> truncated_is(cap=C)`` is the reference code's ``imp_ratio_cap``
  correction $\min(\pi_\text{old}/\pi_\text{sample}, C)$. Works with ``engine: hf`` and ``vllm``.
* ``latr``: :class:`~rlobj.rollout.tree.LATREngine` around the HF engine, its mix ratio read at
  ``rl_updates``.
* ``segments``: :class:`~rlobj.rollout.segments.SegmentRollout` around the HF engine with
  ``max_new_tokens`` as the whole budget; each step admits the step's prompts, advances every
  pending sample by one segment and trains on the released (complete) groups only.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from rlobj.ops.errors import RlobjInputError

__all__ = ["RolloutOption", "parse_rollout", "STRATEGIES"]

STRATEGIES = ("plain", "ead", "latr", "segments")
_KEYS = {"plain": set(), "ead": {"schedule"}, "latr": {"config"},
         "segments": {"segment_tokens", "release"}}


@dataclass(frozen=True)
class RolloutOption:
    """A parsed ``rollout:`` option (plain data + the built schedule / LATR config)."""

    strategy: str = "plain"
    schedule: Any = None          # EADSchedule (strategy "ead")
    latr: Any = None              # LATRConfig (strategy "latr")
    segment_tokens: int | None = None
    release: str = "group"


def _fields_of(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def parse_rollout(spec) -> RolloutOption:
    """Validate and build a ``rollout:`` option; errors name the key (``rollout.<key>``)."""
    if spec is None:
        return RolloutOption()
    if isinstance(spec, RolloutOption):
        return spec
    if isinstance(spec, str):
        spec = {"strategy": spec}
    if not isinstance(spec, dict):
        raise RlobjInputError(f"rollout: expected a strategy name {list(STRATEGIES)} or a mapping with "
                              f"'strategy', got {spec!r}")
    strategy = spec.get("strategy", "plain")
    if strategy not in STRATEGIES:
        raise RlobjInputError(f"rollout.strategy: expected one of {list(STRATEGIES)}, got {strategy!r}")
    unknown = set(spec) - {"strategy"} - _KEYS[strategy]
    if unknown:
        raise RlobjInputError(f"rollout: unknown key(s) {sorted(unknown)} for strategy {strategy!r}; "
                              f"expected {sorted(_KEYS[strategy]) or 'none'}")
    if strategy == "ead":
        from rlobj.rollout.schedules import EADSchedule

        args = spec.get("schedule") or {}
        if not isinstance(args, dict):
            raise RlobjInputError(f"rollout.schedule: expected a mapping of EADSchedule fields, got {args!r}")
        bad = set(args) - (_fields_of(EADSchedule) - {"step"})
        if bad:
            raise RlobjInputError(f"rollout.schedule: unknown EADSchedule field(s) {sorted(bad)} (the step is "
                                  "set by the trainer)")
        try:
            schedule = EADSchedule(**args)
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"rollout.schedule: {error}") from error
        return RolloutOption(strategy, schedule=schedule)
    if strategy == "latr":
        from rlobj.rollout.tree import LATRConfig

        args = dict(spec.get("config") or {})
        bad = set(args) - _fields_of(LATRConfig)
        if bad:
            raise RlobjInputError(f"rollout.config: unknown LATRConfig field(s) {sorted(bad)}")
        if isinstance(args.get("mix"), dict):
            try:
                args["mix"] = {int(k): float(v) for k, v in args["mix"].items()}
            except (TypeError, ValueError) as error:
                raise RlobjInputError(f"rollout.config.mix: expected {{step: eta}}, got {args['mix']!r}") from error
        for name in ("lookahead", "protected_fork_tokens"):
            if isinstance(args.get(name), list):
                args[name] = tuple(args[name])
        try:
            config = LATRConfig(**args)
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"rollout.config: {error}") from error
        return RolloutOption(strategy, latr=config)
    if strategy == "segments":
        tokens = spec.get("segment_tokens")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise RlobjInputError(f"rollout.segment_tokens: expected an int >= 1, got {tokens!r}")
        release = spec.get("release", "group")
        if release != "group":
            raise RlobjInputError(f"rollout.release: the trainer trains on complete groups only, expected "
                                  f"'group', got {release!r}")
        return RolloutOption(strategy, segment_tokens=tokens, release=release)
    return RolloutOption()
