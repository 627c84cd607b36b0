"""The state a chain of terms threads through, and the pieces of loss it accumulates.

A :class:`State` holds the rollout batch (the names of DESIGN.md section 2) plus what terms
have derived from it so far: rewards after shaping, advantages, the per-token loss parts
(the surrogate is the part named ``"policy"``, penalties are other parts), metrics, the
states of stateful terms and the chosen aggregation. It is immutable: a term returns a new
state through :meth:`State.update`, so calling a term is a pure function.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError, check_finite, check_shape

__all__ = ["State", "LossPart", "Normalizer", "TOKEN_FIELDS", "BATCH_FIELDS", "stats_key", "STATS_PREFIX"]

#: Per-token input fields, shape ``"batch seq"``.
TOKEN_FIELDS = ("logp", "logp_old", "logp_ref", "entropy", "token_rewards", "advantages")
#: Every field a user may pass when building a state.
BATCH_FIELDS = TOKEN_FIELDS + ("mask", "rewards", "group_ids", "vocab", "extras")
#: Prefix of the ``extras`` keys that hold mini-batch statistics (see :meth:`State.own_stats`).
STATS_PREFIX = "stats:"


def stats_key(term_key: str, name: str) -> str:
    """The ``extras`` key of statistic ``name`` of the term running under ``term_key``."""
    return f"{STATS_PREFIX}{term_key}:{name}"


@dataclass(frozen=True, eq=False)
class LossPart:
    r"""One named per-token loss contribution, aggregated at the end of the chain.

    Attributes:
        values: ``"batch seq"`` per-token loss (already multiplied by its coefficient).
        mask: ``"batch seq"`` bool, the tokens that count in the numerator.
        normalize: ``"global"`` (default): denominators come from the response mask and the
            global :class:`Normalizer`, so micro-batches and ranks add up exactly.
            ``"own"``: denominators come from this part's own mask, locally (used where a
            reference implementation normalises by the selected tokens only).
            ``"scalar"``: ``values`` is already one number for this (micro-)batch (a
            regulariser of batch statistics, e.g. SIREN's); the aggregation adds it as is,
            weighted by this micro-batch's share of the global sequences, so accumulating
            micro-batches averages it.
        aggregation: None (default): the chain's aggregation reduces this part. An
            :class:`~rlobj.algebra.aggregation.Aggregation` reduces this part instead (with the
            same global counts), for references that aggregate their loss parts differently
            (RL-PLUS: the policy loss summed over the padded length, the entropy by token mean).
        counts: only with ``"own"``: the denominators of this part's own mask counted over the
            whole (global) mini-batch, as a :class:`Normalizer` (``ranks`` = data-parallel
            world size). None (default) counts the part's mask locally, per (micro-)batch,
            which breaks the micro-batch law; terms that know the global counts (from
            :meth:`Term.minibatch_stats <rlobj.algebra.term.Term.minibatch_stats>` or the
            state's normalizer) set them so that micro-batches add up exactly. Terms that
            narrow or reweight a part keep ``counts`` (use :meth:`replace`): masked tokens
            then leave the numerator only.
    """

    values: Tensor
    mask: Tensor
    normalize: str = "global"
    counts: "Normalizer | None" = None
    aggregation: Any = None

    def __post_init__(self):
        if self.normalize not in ("global", "own", "scalar"):
            raise RlobjInputError(
                f"LossPart.normalize: expected 'global', 'own' or 'scalar', got {self.normalize!r}"
            )
        if self.normalize == "scalar" and self.values.dim() != 0:
            raise RlobjInputError(
                f"LossPart.values: a 'scalar' part needs a 0-dim tensor, got shape {tuple(self.values.shape)}"
            )
        if self.counts is not None and self.normalize != "own":
            raise RlobjInputError(
                f"LossPart.counts: global counts of the part's own mask need normalize='own', got {self.normalize!r}"
            )

    def replace(self, **changes) -> "LossPart":
        """A copy with ``changes`` (``values``, ``mask``, ...) applied; keeps ``normalize`` and ``counts``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Normalizer:
    """Global denominators of the aggregation: counts over all micro-batches and ranks.

    Attributes:
        tokens: total number of valid response tokens in the (global) mini-batch.
        seqs: total number of non-empty sequences in the (global) mini-batch.
    """

    tokens: float
    seqs: float
    ranks: int = 1

    @staticmethod
    def from_masks(masks, all_reduce: bool = True) -> "Normalizer":
        """Count tokens and non-empty sequences over micro-batch masks, summed over ranks.

        When ``torch.distributed`` is initialised and ``all_reduce`` is True the counts are
        summed across all data-parallel ranks, so every rank divides by the same number, and
        ``ranks`` is the world size: data-parallel training *averages* gradients over ranks,
        so each rank's loss is multiplied by ``ranks`` to make that average equal the
        gradient of the whole global batch.
        """
        tokens = sum(float(m.sum()) for m in masks)
        seqs = sum(float(m.any(dim=-1).sum()) for m in masks)
        ranks = 1
        if all_reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = torch.tensor([tokens, seqs], dtype=torch.float64)
            torch.distributed.all_reduce(counts)
            tokens, seqs = float(counts[0]), float(counts[1])
            ranks = torch.distributed.get_world_size()
        return Normalizer(tokens=tokens, seqs=seqs, ranks=ranks)


@dataclass(frozen=True, eq=False)
class State:
    """Rollout batch + everything the terms of a chain have derived from it.

    Build one with :meth:`State.from_batch` (validates and sanitises the inputs); terms use
    :meth:`update`, :meth:`require`, :meth:`add_part` and :meth:`add_metrics`.
    """

    logp: Tensor
    mask: Tensor
    logp_old: Tensor | None = None
    logp_ref: Tensor | None = None
    rewards: Tensor | None = None
    group_ids: Tensor | None = None
    token_rewards: Tensor | None = None
    advantages: Tensor | None = None
    entropy: Tensor | None = None
    vocab: Any = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    parts: Mapping[str, LossPart] = field(default_factory=dict)
    metrics: Mapping[str, Tensor] = field(default_factory=dict)
    term_state: Mapping[str, Any] = field(default_factory=dict)
    aggregation: Any = None
    normalizer: Normalizer | None = None
    key: str = ""
    running: str = ""  # the name of the term now running (set by the chain): what errors name
    cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_batch(cls, **fields) -> "State":
        """Validate a rollout batch and build the initial state.

        Checks shapes against ``logp`` (``"batch seq"``) and ``" batch"``, converts ``mask``
        to bool, requires finite values at valid tokens, in ``rewards`` and in every float
        tensor of ``extras`` (at valid tokens for ``"batch seq"`` ones), detaches the
        no-grad inputs (``logp_old``, ``logp_ref``) and zeroes padding positions with
        ``torch.where`` so that garbage in padding can never reach the loss or its gradient.
        Unknown field names raise; anything extra belongs in ``extras``.
        """
        unknown = set(fields) - set(BATCH_FIELDS) - {"term_state", "normalizer"}
        if unknown:
            raise RlobjInputError(
                f"unknown batch field(s) {sorted(unknown)}; expected some of {list(BATCH_FIELDS)}"
                " (put anything else in extras={...})"
            )
        for required in ("logp", "mask"):
            if fields.get(required) is None:
                raise RlobjInputError(f"{required}: required field is missing")
        logp = fields["logp"]
        if not isinstance(logp, Tensor) or logp.dim() != 2 or not logp.is_floating_point():
            got = tuple(logp.shape) if isinstance(logp, Tensor) else type(logp).__name__
            raise RlobjInputError(f"logp: expected a float tensor of shape (batch seq), got {got}")
        batch, seq = logp.shape
        for name in (*TOKEN_FIELDS, "mask", "rewards", "group_ids"):
            fields[name] = _as_tensor(name, fields.get(name), logp)
        mask = fields["mask"]
        check_shape("mask", mask, (batch, seq), "batch seq")
        if mask.dtype != torch.bool:
            if bool(((mask != 0) & (mask != 1)).any()):
                raise RlobjInputError("mask: expected bool or 0/1 values, got other numbers")
            mask = mask.bool()
        fields["mask"] = mask
        for name in TOKEN_FIELDS:
            value = fields.get(name)
            if value is None:
                continue
            if name == "advantages" and value.dim() == 1:
                check_shape(name, value, (batch,), "batch")
                value = value[:, None].expand(batch, seq)
            check_shape(name, value, (batch, seq), "batch seq")
            check_finite(name, value, where=mask)
            if name in ("logp_old", "logp_ref"):
                value = value.detach()
            fields[name] = torch.where(mask, value, torch.zeros((), dtype=value.dtype))
        if fields.get("rewards") is not None:
            rewards = fields["rewards"]
            check_shape("rewards", rewards, (batch,), "batch")
            check_finite("rewards", rewards)
            _check_reward_range(rewards, logp.dtype)
            fields["rewards"] = rewards.to(logp.dtype) if not rewards.is_floating_point() else rewards
        if fields.get("group_ids") is not None:
            group_ids = fields["group_ids"]
            check_shape("group_ids", group_ids, (batch,), "batch")
            if group_ids.is_floating_point() or group_ids.dtype == torch.bool:
                raise RlobjInputError(f"group_ids: expected an integer tensor, got {group_ids.dtype}")
        for name in ("logp", "logp_old", "logp_ref"):
            value = fields.get(name)
            if value is not None and bool((torch.where(mask, value.detach(), 0) > 1e-6).any()):
                raise RlobjInputError(
                    f"{name}: log-probabilities must be <= 0 at valid tokens, got max "
                    f"{float(torch.where(mask, value.detach(), -torch.inf).max()):.4g}"
                )
        fields["extras"] = dict(fields.get("extras") or {})
        for name, value in fields["extras"].items():  # what terms read from extras, checked once
            if isinstance(value, Tensor) and value.is_floating_point():
                token_shaped = tuple(value.shape) == (batch, seq)
                check_finite(f"extras[{name!r}]", value, where=mask if token_shaped else None)
        return cls(**fields)

    # ------------------------------------------------------------------ functional updates
    def update(self, **changes) -> "State":
        """A new state with ``changes`` applied (no validation: terms produce valid values)."""
        return dataclasses.replace(self, **changes)

    def reader(self, by: str | None = None) -> str:
        """The name errors give for whoever reads the state: ``by``, else the running term."""
        return by or self.running or "a term"

    def require(self, name: str, by: str | None = None):
        """Return field ``name`` or raise an error naming the term that needs it and the fix.

        ``by`` (the term's name) is found from the running term when not given."""
        by = self.reader(by)
        if name.startswith("extras:"):
            value = self.extras.get(name[len("extras:") :])
        else:
            value = getattr(self, name)
        if value is None:
            hint = _HINTS.get(name.split(":")[0], "")
            raise RlobjInputError(f"{by} reads {name!r}, but the state has none. {hint}".strip())
        return value

    def require_part(self, name: str, by: str | None = None) -> LossPart:
        """Return loss part ``name`` (``"policy"`` is the surrogate) or raise naming the fix."""
        by = self.reader(by)
        if name not in self.parts:
            raise RlobjInputError(
                f"{by} modifies the loss part {name!r}, but no term before it wrote one. "
                f"{_HINTS['parts'] if name == 'policy' else ''}".strip()
            )
        return self.parts[name]

    def add_part(self, name: str, part: LossPart) -> "State":
        """A new state with loss part ``name`` set (replacing a part of the same name)."""
        return self.update(parts={**self.parts, name: part})

    def add_metrics(self, **metrics) -> "State":
        """A new state with the given (detached) scalar metrics added."""
        detached = {k: (v.detach() if isinstance(v, Tensor) else torch.tensor(float(v)))
                    for k, v in metrics.items()}
        return self.update(metrics={**self.metrics, **detached})

    def own_state(self, default):
        """The stored state of the term now running (``default`` on the first call)."""
        return self.term_state.get(self.key, default)

    def set_own_state(self, value) -> "State":
        """A new state with the running term's stored state replaced by ``value``."""
        return self.update(term_state={**self.term_state, self.key: value})

    def own_stats(self, name: str, default=None):
        """Mini-batch statistic ``name`` of the running term, or ``default`` when absent.

        :meth:`Objective.minibatch_stats <rlobj.algebra.objective.Objective.minibatch_stats>`
        returns them under ``extras[f"stats:{key}:{name}"]`` (``key`` = the term's chain key:
        its name, ``"<term name>#2"`` for a second term of the same class); the trainer merges them into ``extras`` before it slices
        the mini-batch into micro-batches, so ``[batch]`` and ``[batch, seq]`` statistics
        arrive here cut to this micro-batch's rows, 0-dim ones whole.
        """
        return self.extras.get(stats_key(self.key, name), default)

    # ------------------------------------------------------------------ lazy quantities
    def token_entropy(self) -> Tensor:
        """Per-token full-vocab entropy: the ``entropy`` field, else computed once from ``vocab``."""
        if self.entropy is not None:
            return self.entropy
        if "entropy" not in self.cache:
            if self.vocab is None:
                raise RlobjInputError(
                    "entropy: a term needs per-token entropy, but the state has neither an "
                    "'entropy' tensor nor a 'vocab' view to compute it from"
                )
            entropy = self.vocab.entropy()
            self.cache["entropy"] = torch.where(self.mask, entropy, torch.zeros((), dtype=entropy.dtype))
        return self.cache["entropy"]

    @property
    def batch_size(self) -> int:
        return int(self.logp.shape[0])


def _check_reward_range(rewards: Tensor, dtype: torch.dtype) -> None:
    """Rewards within a quarter of the float range of ``logp``'s dtype, so that differences of
    rewards and advantages built from them cannot overflow (group statistics run in float64)."""
    if not (rewards.is_floating_point() or dtype.is_floating_point):
        return
    limit = torch.finfo(dtype if dtype.is_floating_point else rewards.dtype).max / 4
    largest = float(rewards.detach().abs().max()) if rewards.numel() else 0.0
    if largest > limit:
        raise RlobjInputError(
            f"rewards: |reward| must be <= {limit:.3g} (a quarter of the {dtype} range, so "
            f"advantages cannot overflow), got {largest:.3g}; rescale the rewards"
        )


def _as_tensor(name: str, value, like: Tensor):
    """``value`` as a tensor on ``like``'s device: lists, tuples and arrays are converted (float
    fields to ``like``'s dtype); anything else is an error naming the field."""
    if value is None or isinstance(value, Tensor):
        return value
    if not isinstance(value, (list, tuple)) and not hasattr(value, "__array__"):
        raise RlobjInputError(f"{name}: expected a tensor (or a list of numbers), got {type(value).__name__}")
    try:
        tensor = torch.as_tensor(value, device=like.device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise RlobjInputError(f"{name}: expected a tensor or a (nested) list of numbers, got {value!r:.80} ({error})") from error
    return tensor.to(like.dtype) if name in TOKEN_FIELDS and tensor.is_floating_point() else tensor


_HINTS = {
    "advantages": "Put an advantage term (e.g. group_zscore()) before it, or pass advantages=.",
    "rewards": "Pass rewards= (one scalar per sequence).",
    "group_ids": "Pass group_ids= (the prompt id of every sequence).",
    "logp_old": "Pass logp_old= (log-probs under the policy that sampled the batch).",
    "logp_ref": "Pass logp_ref= (log-probs under the frozen reference policy).",
    "parts": "Put a surrogate term (e.g. clip_ratio()) before it.",
    "extras": "Pass it in extras={...}.",
}
