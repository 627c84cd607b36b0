r"""Samplers: records -> an unscored :class:`~rlobj.train.stages.Batch` (DESIGN.md section 6).

YAML (``model.sampler``): a name, ``{name: {args}}``, a ``class_path`` / ``init_args`` mapping
or a dotted path to a user's :class:`~rlobj.train.stages.Sampler` subclass::

    sampler: plain                                   # the engine's ordinary sampling (default)
    sampler: {ead: {schedule: {tau_max: 1.2, d0: 25.0}}}    # Exploratory Annealed Decoding
    sampler: {latr: {config: {tau_abs: 0.15}}}       # LATR lookahead tree rollouts (HF engine)
    sampler: {segments: {segment_tokens: 16384}}     # UloRL segment rollouts (HF engine)
    sampler: {broad: {chunk_size: 128}}              # BroRL: N >> G rollouts in engine-sized calls
    sampler: {mcts: {config: {width: 2, max_depth: 4}}}   # MCTS over steps (DeepSearch; search_samplers)
    sampler: {multi_turn: {environment: tools, max_turns: 3}}   # multi-turn / tool use (rlobj.train.multiturn)

Every sampler returns rows whose ``records[b]`` is the record response ``b`` answers and says
whether ``rollout.logp_rollout`` is the current policy at the plain temperature
(``Batch.on_policy``); when it is not (annealed temperatures, samples begun under older
weights) the trainer recomputes ``logp_old``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch

from rlobj.ops.errors import RlobjInputError, did_you_mean, import_subclass
from rlobj.rollout import SamplingConfig
from rlobj.train.search_samplers import MCTSSampler
from rlobj.train.stages import Batch, Sampler, StepContext

__all__ = ["PlainSampler", "EADSampler", "LATRSampler", "SegmentSampler", "BroadSampler", "MultiTurnSampler",
           "SAMPLERS", "build_sampler"]


def _prompts(ctx: StepContext, records: list[dict]) -> list[list[int]]:
    from rlobj.rollout.vision import is_multimodal

    for index, record in enumerate(records):
        if is_multimodal(record):
            raise RlobjInputError(f"records[{index}] carries images: this sampler takes text rows; use the plain "
                                  "sampler (the default) for multimodal rows")
        if not isinstance(record, dict) or "prompt" not in record:
            raise RlobjInputError(f"records[{index}]: expected a mapping with a 'prompt', got {record!r}")
    return [ctx.encode(r["prompt"]) for r in records]


def generate_records(engine, encode, records: list[dict], n: int, sampling: SamplingConfig):
    """``engine.generate`` on the records' prompts: text rows through ``encode``, rows with
    ``images`` through the engine's processor (:func:`rlobj.rollout.vision.encode_records`)."""
    from rlobj.rollout.vision import encode_records

    prompts, vision = encode_records(records, encode, getattr(engine, "processor", None))
    if vision is None:
        return engine.generate(prompts, n=n, sampling=sampling)
    if "vision" not in inspect.signature(engine.generate).parameters:
        raise RlobjInputError(f"rollout.engine: {type(engine).__name__} takes no images; rows with images need "
                              "engine: hf (vLLM's CPU build cannot load a vision-language model here, see "
                              "docs/how-to/vision-language.md)")
    return engine.generate(prompts, n=n, sampling=sampling, vision=vision)


def _sampling(ctx: StepContext, salt: int, changes: dict) -> SamplingConfig:
    base = ctx.sampling
    seed = None if base.seed is None else (base.seed + 1_000_003 * salt) % (2**62)
    try:
        return SamplingConfig(**{**base.__dict__, "seed": seed, **changes})
    except TypeError as error:
        raise RlobjInputError(f"sample(): unknown sampling setting(s): {error}") from error


def _rows(records: list[dict], rollout) -> list[dict]:
    return [records[g] for g in rollout.group_ids.tolist()]


class PlainSampler(Sampler):
    """The engine's ordinary sampling: ``n`` responses per record (rows with ``images`` through
    the policy's processor)."""

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        rollout = generate_records(ctx.engine, ctx.encode, records, n, _sampling(ctx, salt, changes))
        # suppressed tokens (a VLM's image placeholders) make logp_rollout a renormalised
        # distribution, not the policy's: the trainer then recomputes logp_old
        on_policy = not getattr(ctx.engine, "suppress_token_ids", ())
        return Batch(rollout=rollout, records=_rows(records, rollout), on_policy=on_policy)


class EADSampler(Sampler):
    r"""Exploratory Annealed Decoding (arXiv 2510.05251): a per-position temperature schedule.

    Samples with ``SamplingConfig.temperature_schedule = schedule.at_step(k)``, $k$ = RL
    optimizer updates so far. ``rollout.logp_rollout`` holds the annealed distribution's
    log-probs (``extras['logp_rollout']``); ``logp_old`` is recomputed at the plain
    temperature, so ``>> truncated_is(cap)`` is the reference code's correction.

    Args:
        schedule: :class:`~rlobj.rollout.schedules.EADSchedule` fields (``step`` is set here).
    """

    def __init__(self, schedule: dict[str, Any] | None = None):
        from rlobj.rollout.schedules import EADSchedule

        args = dict(schedule or {})
        bad = set(args) - ({f.name for f in dataclasses.fields(EADSchedule)} - {"step"})
        if bad:
            raise RlobjInputError(f"ead.schedule: unknown EADSchedule field(s) {sorted(bad)} (the step is set by "
                                  "the trainer)")
        try:
            self.schedule = EADSchedule(**args)
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"ead.schedule: {error}") from error

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        schedule = self.schedule.at_step(ctx.rl_updates)
        sampling = _sampling(ctx, salt, {"temperature_schedule": schedule, **changes})
        rollout = ctx.engine.generate(_prompts(ctx, records), n=n, sampling=sampling)
        valid = rollout.response_mask.cpu()
        tau = schedule.temperatures(torch.arange(valid.shape[1])).float()
        metrics = {"rollout/ead_step": float(ctx.rl_updates), "rollout/ead_decay": schedule.decay,
                   "rollout/ead_tau_mean": float((tau.expand_as(valid) * valid).sum() / max(float(valid.sum()), 1.0))}
        return Batch(rollout=rollout, records=_rows(records, rollout), metrics=metrics, on_policy=False)


class _Wrapping(Sampler):
    """A sampler around an engine wrapper built on first use (needs the HF engine)."""

    def _wrapped(self, ctx):
        from rlobj.rollout import HFEngine

        if getattr(self, "_engine", None) is None or self._base is not ctx.engine:
            if not isinstance(ctx.engine, HFEngine):
                raise RlobjInputError(f"sampler {type(self).__name__}: wraps the HF engine (engine: hf), got "
                                      f"{type(ctx.engine).__name__}")
            self._base = ctx.engine
            self._engine = self._wrap(ctx.engine)
        return self._engine


class LATRSampler(_Wrapping):
    """LATR lookahead tree rollouts (arXiv 2510.24302) around the HF engine; mix ratio at ``rl_updates``.

    Args:
        config: :class:`~rlobj.rollout.tree.LATRConfig` fields.
    """

    def __init__(self, config: dict[str, Any] | None = None):
        from rlobj.rollout.tree import LATRConfig

        args = dict(config or {})
        bad = set(args) - {f.name for f in dataclasses.fields(LATRConfig)}
        if bad:
            raise RlobjInputError(f"latr.config: unknown LATRConfig field(s) {sorted(bad)}")
        try:
            self.config = LATRConfig(**args)
        except (TypeError, ValueError) as error:
            raise RlobjInputError(f"latr.config: {error}") from error
        self._engine = None

    def _wrap(self, engine):
        from rlobj.rollout.tree import LATREngine

        return LATREngine(engine, self.config)

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        engine = self._wrapped(ctx)
        rollout = engine.generate(_prompts(ctx, records), n=n, sampling=_sampling(ctx, salt, changes),
                                  step=ctx.rl_updates)
        info = engine.last_info
        metrics = {"rollout/latr_eta": float(info.eta),
                   "rollout/latr_tree_fraction": sum(s == "tree" for s in info.source) / max(len(info.source), 1),
                   "rollout/latr_pruned": float(sum(info.pruned)), "rollout/latr_tree_steps": float(info.tree_steps)}
        return Batch(rollout=rollout, records=_rows(records, rollout), metrics=metrics)


class SegmentSampler(_Wrapping):
    """UloRL segment rollouts (arXiv 2507.19766) around the HF engine.

    ``max_new_tokens`` is the whole budget; each step admits the step's records, advances every
    pending sample by ``segment_tokens`` and returns the complete groups (``release="group"``) or
    samples; the batch may be empty. Pending samples are not saved in checkpoints.

    Args:
        segment_tokens: tokens generated per step for each pending sample.
        release: ``"group"`` or ``"sample"`` (see :class:`~rlobj.rollout.segments.SegmentRollout`).
    """

    def __init__(self, segment_tokens: int, release: str = "group"):
        if isinstance(segment_tokens, bool) or not isinstance(segment_tokens, int) or segment_tokens < 1:
            raise RlobjInputError(f"segments.segment_tokens: expected an int >= 1, got {segment_tokens!r}")
        if release not in ("group", "sample"):  # checked here, not on the first RL step
            raise RlobjInputError(f"segments.release: expected 'group' or 'sample', got {release!r}")
        self.segment_tokens, self.release = segment_tokens, release
        self._engine = None

    def _wrap(self, engine):
        from rlobj.rollout.segments import SegmentRollout

        return SegmentRollout(engine, self.segment_tokens, release=self.release)

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        engine = self._wrapped(ctx)
        rollout = engine.generate(_prompts(ctx, records), n=n, sampling=_sampling(ctx, salt, changes),
                                  keys=list(records))
        rows = list(engine.last_keys)
        if len(rollout):
            _, inverse = torch.unique(rollout.group_ids, return_inverse=True)
            rollout = dataclasses.replace(rollout, group_ids=inverse.to(rollout.group_ids.dtype))
        metrics = {"rollout/released_samples": float(len(rollout)), "rollout/released_groups": float(len(rollout) // n),
                   "rollout/pending_samples": float(engine.pending)}
        return Batch(rollout=rollout, records=rows, metrics=metrics, on_policy=False)


class BroadSampler(Sampler):
    r"""BroRL (arXiv 2510.01180): $N \gg G$ rollouts per prompt, sampled in engine calls of at most
    ``chunk_size`` sequences (:func:`~rlobj.rollout.broad.generate_broad`); the update stage's
    micro-batches bound the memory of the backward.

    Args:
        chunk_size: largest number of sequences per engine call.
    """

    def __init__(self, chunk_size: int = 128):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise RlobjInputError(f"broad.chunk_size: expected an int >= 1, got {chunk_size!r}")
        self.chunk_size = chunk_size

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        from rlobj.rollout.broad import generate_broad

        rollout = generate_broad(ctx.engine, _prompts(ctx, records), n, _sampling(ctx, salt, changes),
                                 self.chunk_size)
        return Batch(rollout=rollout, records=_rows(records, rollout),
                     metrics={"rollout/samples_per_prompt": float(n)})


#: name -> sampler class (YAML shorthand).
SAMPLERS: dict[str, type[Sampler]] = {"plain": PlainSampler, "ead": EADSampler, "latr": LATRSampler,
                                      "segments": SegmentSampler, "broad": BroadSampler}
SAMPLERS["mcts"] = MCTSSampler

from rlobj.train.multiturn import MultiTurnSampler  # noqa: E402 - it builds on _sampling above

SAMPLERS["multi_turn"] = MultiTurnSampler


def build_sampler(spec) -> Sampler:
    """A sampler from config: an instance, a name, ``{name: {args}}`` or a dotted class path."""
    if spec is None:
        return PlainSampler()
    if isinstance(spec, Sampler):
        return spec
    args: dict = {}
    if isinstance(spec, dict) and len(spec) == 1:
        (spec, args), = spec.items()
        args = args or {}
    if not isinstance(spec, str) or not isinstance(args, dict):
        raise RlobjInputError(f"sampler: expected a name {sorted(SAMPLERS)}, {{name: {{args}}}} or a dotted path, "
                              f"got {spec!r}")
    if spec in SAMPLERS:
        cls = SAMPLERS[spec]
    elif "." in spec:
        cls = import_subclass(spec, Sampler, "sampler", "rlobj.train.stages.Sampler")
    else:
        raise RlobjInputError(f"sampler: unknown sampler {spec!r}.{did_you_mean(spec, SAMPLERS)} Known: {sorted(SAMPLERS)}")
    try:
        return cls(**args)
    except TypeError as error:
        raise RlobjInputError(f"sampler {spec}: {error}") from error
