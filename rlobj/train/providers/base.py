r"""Providers: one per input a term reads, computed once per rollout batch (DESIGN.md section 6).

A term declares what it reads (``Term.slots_read()``: ``logp_ref``, ``entropy``,
``extras:logp_proxy``, ...). The trainer supplies the rollout fields itself (``logp``,
``logp_old``, ``mask``, ``rewards``, ``group_ids``, the current policy's ``entropy`` and
``vocab`` in the forward with gradient); every other slot comes from a **provider**:

* :meth:`Provider.batch` runs once per rollout batch, after scoring and the transforms, before
  the batch stage of the objective (no gradient; in micro-batch chunks where it runs a model);
* :meth:`Provider.micro` runs for each micro-batch of the update (lazy vocab views of the
  reference or a perturbed context, which are never built for the whole batch).

A provider names the slots it supplies in ``provides`` and registers itself as the default
for them with :func:`register_provider`. A user passes their own in YAML (``providers:``, a
class path or dotted name), which then wins over the default for those slots. Adding an input a
new term needs is one provider class; no trainer code changes.

Values a sampler, scorer or transform attached to the :class:`~rlobj.train.stages.Batch`
(``batch.extras``) reach the objective as ``extras`` directly and take precedence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from torch import Tensor

from rlobj.algebra.term import DERIVED_SLOTS, Term
from rlobj.ops.errors import RlobjInputError, did_you_mean

__all__ = ["Provider", "PROVIDERS", "TRAINER_SLOTS", "register_provider", "required_slots",
           "resolve_providers", "build_providers"]

#: Slots the update loop fills itself from the rollout and the forward with gradient.
TRAINER_SLOTS = frozenset({"logp", "logp_old", "mask", "rewards", "group_ids", "entropy", "vocab"})

#: slot -> default provider class.
PROVIDERS: dict[str, type[Provider]] = {}


class Provider:
    """Base of providers. Subclasses set ``provides`` and implement :meth:`batch` and/or :meth:`micro`.

    Providers are plain objects built from YAML (``class_path`` / ``init_args`` or a dotted
    name); their arguments are their settings. :meth:`setup` sees the objective's terms once,
    to read the settings of the terms that consume the slot (Lp-Reg's ``tau``).
    """

    provides: ClassVar[tuple[str, ...]] = ()
    #: the slots of ``provides`` this run needs (set by :func:`resolve_providers`).
    needed: frozenset = frozenset()

    def setup(self, terms: tuple[Term, ...]) -> None:
        """Read what the consuming terms configure; raise :class:`RlobjInputError` on a conflict."""
        return None

    def batch(self, ctx, batch, inputs: dict[str, Any]) -> dict[str, Tensor]:
        """Slots of the whole rollout batch (no grad). ``inputs``: what is known so far
        (``logp_old``, ``mask``, ``rewards``, ``group_ids`` and earlier providers' slots)."""
        return {}

    def micro(self, ctx, batch, rows: Tensor, inputs: dict[str, Any]) -> dict[str, Any]:
        """Slots of one micro-batch ``rows`` (lazy views). Default: nothing."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make ``cls`` the default provider of every slot in ``cls.provides``."""
    if not cls.provides:
        raise RlobjInputError(f"register_provider: {cls.__name__}.provides is empty")
    for slot in cls.provides:
        if slot in PROVIDERS and PROVIDERS[slot] is not cls:
            raise RlobjInputError(f"register_provider: slot {slot!r} already has the default provider "
                                  f"{PROVIDERS[slot].__name__}; pass {cls.__name__} in the config's providers instead")
        PROVIDERS[slot] = cls
    return cls


def required_slots(terms: Iterable[Term]) -> frozenset[str]:
    """The input slots of ``terms`` that a provider must supply: not derived, not the trainer's
    own, and not written by another term of the chain (``visual_dependency_score`` writes
    ``extras:visual_dependency`` for the terms after it)."""
    terms = tuple(terms)
    written = frozenset().union(*(t.slots_written() for t in terms)) if terms else frozenset()
    needed = set()
    for term in terms:
        for slot in term.slots_read():
            if slot in DERIVED_SLOTS or slot.startswith("part:") or slot in TRAINER_SLOTS or slot in written:
                continue
            needed.add(slot)
    return frozenset(needed)


def _import(path: str):
    from rlobj.ops.errors import import_dotted

    if "." not in path:
        raise RlobjInputError(f"providers: {path!r} is neither a registered provider name nor a dotted path")
    return import_dotted(path, "providers")


def build_providers(spec) -> list[Provider]:
    """Providers from config: instances, class names of registered providers, dotted paths,
    or ``{name_or_path: {args}}`` items."""
    if spec is None:
        return []
    if not isinstance(spec, (list, tuple)):
        spec = [spec]
    known = {cls.__name__: cls for cls in PROVIDERS.values()}
    built = []
    for index, item in enumerate(spec):
        args: dict = {}
        if isinstance(item, Provider):
            built.append(item)
            continue
        if isinstance(item, dict) and len(item) == 1:
            (item, args), = item.items()
            args = args or {}
        if not isinstance(item, str):
            raise RlobjInputError(f"providers[{index}]: expected a Provider, a name or {{name: {{args}}}}, got {item!r}")
        if item in known:
            cls = known[item]
        elif "." in item:
            cls = _import(item)
        else:
            raise RlobjInputError(f"providers[{index}]: unknown provider {item!r}.{did_you_mean(item, known)} "
                                  f"Known: {sorted(known)}")
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise RlobjInputError(f"providers[{index}]: {item!r} is not a rlobj.train.providers.Provider subclass")
        try:
            built.append(cls(**args))
        except TypeError as error:
            raise RlobjInputError(f"providers[{index}] {item}: {error}") from error
    return built


def resolve_providers(terms: tuple[Term, ...], given: list[Provider] | None = None,
                      also: Iterable[str] = ()) -> list[Provider]:
    """One provider per slot the terms need (plus ``also``): the user's first, else the default.

    Raises :class:`RlobjInputError` naming the slot and its terms when nothing provides it.
    """
    given = list(given or [])
    chosen: list[Provider] = []
    covered: set[str] = set()
    needed = sorted(required_slots(terms) | set(also))
    for provider in given:
        provider.needed = frozenset(provider.provides) & frozenset(needed)
        provider.setup(terms)
        chosen.append(provider)
        covered |= set(provider.provides)
    for slot in needed:
        if slot in covered:
            continue
        cls = PROVIDERS.get(slot)
        if cls is None:
            readers = [type(t).__name__ for t in terms if slot in t.slots_read()]
            raise RlobjInputError(f"{', '.join(readers) or 'the objective'} reads {slot!r} but no provider supplies it; "
                                  "add one to the model's providers: list (a rlobj.train.providers.Provider subclass "
                                  "with provides = (" + repr(slot) + ",))")
        provider = cls()
        provider.needed = frozenset(cls.provides) & frozenset(needed)
        provider.setup(terms)
        chosen.append(provider)
        covered |= set(cls.provides)
    return chosen
