"""Terms, the ``>>`` operator, identity and chains, and the build-time order checks.

A term is a frozen dataclass whose call maps a :class:`~rlobj.algebra.state.State` to a new
one. Each term declares the *slots* it reads and writes:

* inputs: ``logp``, ``logp_old``, ``logp_ref``, ``mask``, ``group_ids``, ``entropy``,
  ``vocab``, ``extras:<key>``;
* derived: ``rewards``, ``token_rewards``, ``advantages``, ``part:<name>`` (the surrogate is
  ``part:policy``; penalties are other parts), ``aggregation``.

``a >> b`` flattens both sides into one :class:`Chain` (so ``>>`` is associative and
:func:`identity` is neutral) and then checks the order. A chain is refused when

1. a term writes a derived slot that an earlier term only *read* (its change would be
   silently ignored: ``clip_ratio() >> group_zscore()``);
2. a term produces a slot from scratch after another term already produced it (it would
   silently replace it: ``group_zscore() >> rloo()``, two aggregations, two surrogates);
3. a per-batch term (rewards, advantages) reads what a per-token term before it wrote, so
   the chain could not be split into a batch stage and a micro-batch loss stage;
4. a KL against the same policy is placed both in the reward and in the loss, unless one of
   the two terms says ``allow_reward_and_loss=True``;
5. a term's own ``check_chain(terms, position)`` hook refuses its neighbours (the noisy-reward
   backward correction refuses a later group z-score, which would undo it).

Reads that nothing in the chain writes are checked when the chain runs, against the batch.
"""

import dataclasses
import functools
from collections.abc import Iterable
from typing import ClassVar

from torch import Tensor

from rlobj.algebra.contract import check_fields
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjBuildError

__all__ = ["Term", "Chain", "identity", "chain", "as_terms", "term_name", "term_keys", "DERIVED_SLOTS"]

#: Slots that terms derive (and the order checks watch); everything else is a batch input.
DERIVED_SLOTS = ("rewards", "token_rewards", "advantages", "aggregation")


def _is_derived(slot: str) -> bool:
    return slot in DERIVED_SLOTS or slot.startswith("part:")


class Term:
    r"""Base of every term: a pure, immutable map from state to state.

    A term is declared in one line; the class becomes a frozen dataclass of its typed
    hyperparameter fields (no decorator needed):

    >>> import torch
    >>> from typing import Annotated
    >>> from rlobj.algebra import Positive, State, Term
    >>> class clip_advantages(Term, stage="batch", reads=("advantages", "mask"), writes=("advantages",)):
    ...     "Bound the advantages to [-limit, limit]."
    ...     limit: Positive = 2.0
    ...     def __call__(self, state: State) -> State:
    ...         advantages = state.require("advantages")
    ...         return state.update(advantages=advantages.clamp(-self.limit, self.limit))
    >>> clip_advantages(1.5)
    clip_advantages(limit=1.5)
    >>> clip_advantages(0)
    Traceback (most recent call last):
        ...
    rlobj.ops.errors.RlobjInputError: clip_advantages.limit: expected > 0.0, got 0

    The class keywords:

    * ``stage``: ``"batch"`` for reward/advantage terms that need whole groups, ``"loss"``
      (default) for per-token terms run per micro-batch;
    * ``reads`` / ``writes``: the slots (module docstring) it reads and writes; override
      :meth:`slots_read` / :meth:`slots_written` when they depend on a field;
    * ``may_read``: optional inputs it reads when the batch has them (``("extras:dropped",)``).

    * ``abstract=True``: a base of other terms, not a term itself (it stays a plain class;
      its subclasses are made terms).

    Subclasses inherit them (and may restate any). Hyperparameters are checked against their
    annotations when the term is built (:func:`rlobj.algebra.contract.check_fields`: types,
    and ranges written ``Annotated[float, Range(ge=0)]`` or :data:`~rlobj.algebra.Positive`...),
    before the class's own ``__post_init__`` runs. Inside :meth:`__call__`,
    ``state.require("advantages")`` names the running term in its error by itself.

    The older spelling, ``@dataclass(frozen=True)`` on the class and ``stage``, ``reads``,
    ``writes`` as ``ClassVar`` attributes, still works.
    """

    stage: ClassVar[str] = "loss"
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    #: Inputs read only when the batch has them (``extras:dropped``): declared, so the read is
    #: known, but not required (no provider is asked for them). Derived slots belong in ``reads``.
    may_read: ClassVar[tuple[str, ...]] = ()
    #: :meth:`minibatch_stats` is additive over rows: its 0-dim statistics are sums over rows
    #: and its per-row statistics depend on their own row only. The trainer may then compute
    #: them on each data-parallel rank's rows and sum the 0-dim ones across ranks, instead of
    #: gathering the rows (which it cannot do for a ``vocab`` view).
    minibatch_stats_additive: ClassVar[bool] = False

    def __init_subclass__(cls, stage: str | None = None, reads: Iterable[str] | None = None,
                          writes: Iterable[str] | None = None, may_read: Iterable[str] | None = None,
                          abstract: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if stage is not None:
            if stage not in ("batch", "loss"):
                raise RlobjBuildError(f"{cls.__name__}: stage must be 'batch' or 'loss', got {stage!r}")
            cls.stage = stage
        for keyword, value in (("reads", reads), ("writes", writes), ("may_read", may_read)):
            if value is not None:
                if isinstance(value, str):
                    raise RlobjBuildError(f"{cls.__name__}: {keyword} must be a tuple of slot names, "
                                          f"got the string {value!r} (write ({value!r},))")
                setattr(cls, keyword, tuple(value))
        derived = [slot for slot in cls.may_read if _is_derived(slot)]
        if derived:
            raise RlobjBuildError(f"{cls.__name__}: may_read is for optional inputs; the derived slot(s) "
                                  f"{derived} go in reads (the order checks need them)")
        if not abstract:
            _declare(cls)

    def __post_init__(self):
        check_fields(self)

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: terms are immutable "
                                              f"(dataclasses.replace(term, {name}=...) makes a changed copy)")

    def __delattr__(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}: terms are immutable")

    def slots_read(self) -> frozenset[str]:
        return frozenset(self.reads)

    def slots_written(self) -> frozenset[str]:
        return frozenset(self.writes)

    def slots_may_read(self) -> frozenset[str]:
        """Optional inputs this term reads when present (:attr:`may_read`)."""
        return frozenset(self.may_read)

    def __call__(self, state: State) -> State:  # pragma: no cover - every subclass overrides
        raise TypeError(f"{type(self).__name__} does not define __call__")

    # ------------------------------------------------------------------ mini-batch statistics
    def minibatch_stats(self, state: State) -> dict[str, Tensor]:
        """Statistics this loss-stage term needs over the whole optimizer mini-batch.

        The micro-batch law (DESIGN.md section 3.7) needs every batch-wide choice of a loss
        term (a top-fraction selection, a covariance, a mean inside a nonlinear function,
        a group baseline across split groups) made once per mini-batch, not once per
        micro-batch. The trainer calls this hook **once per mini-batch**, through
        :meth:`Objective.minibatch_stats <rlobj.algebra.objective.Objective.minibatch_stats>`,
        on a state holding the whole mini-batch (gathered across data-parallel ranks when
        distributed): the prepared batch-stage outputs (``advantages``, ``rewards``, ...),
        the current policy's *detached* ``logp`` and ``entropy``, and a no-grad ``vocab``
        view if the term reads one. ``state.key`` is the term's chain key and
        ``state.term_state`` its stored state, as in :meth:`__call__`.

        Returns tensors that are 0-dim (the same for every micro-batch), ``[batch]`` or
        ``[batch, seq]`` (cut to each micro-batch's rows like other extras). The term reads
        them back with :meth:`State.own_stats`; when they are absent (an objective called
        directly on one batch) it computes the same statistics from its own call. The
        default has none.
        """
        return {}

    def has_minibatch_stats(self) -> bool:
        """Whether this term (with these hyperparameters) uses :meth:`minibatch_stats`.

        Default: the class overrides :meth:`minibatch_stats`. Terms whose reference option
        works per micro-batch (``scope="micro_batch"``) override this to say False there.
        """
        return type(self).minibatch_stats is not Term.minibatch_stats

    def minibatch_stats_reads(self) -> frozenset[str]:
        """Slots :meth:`minibatch_stats` reads (default: the term's reads without loss parts),
        so the trainer knows whether its pre-pass must compute ``entropy`` or a ``vocab`` view."""
        return frozenset(s for s in self.slots_read() if not s.startswith("part:"))

    def __rshift__(self, other: "Term") -> "Term":
        if not isinstance(other, Term):
            return NotImplemented
        return _compose(as_terms(self) + as_terms(other))

    # Convenience so a single term or a chain can be run directly.
    def loss(self, state: State | None = None, **kwargs):
        """Run this term (or chain) as an objective: see :class:`rlobj.algebra.Objective`."""
        if _OBJECTIVE_TYPE is None:
            raise RuntimeError("Term.loss runs rlobj.algebra.objective.Objective, which is not imported: "
                               "import rlobj.algebra (or rlobj) first")
        return _OBJECTIVE_TYPE(self)(state, **kwargs)


#: What :meth:`Term.loss` runs: :mod:`rlobj.algebra.objective` registers its ``Objective`` here
#: when it is imported (``rlobj.algebra`` always imports it). ``objective.py`` imports this
#: module, so this module does not import it back: the algebra's import graph has no cycle.
_OBJECTIVE_TYPE: type | None = None


def register_objective(objective_type: type) -> None:
    """Set the class :meth:`Term.loss` runs (called once, by :mod:`rlobj.algebra.objective`)."""
    global _OBJECTIVE_TYPE
    _OBJECTIVE_TYPE = objective_type


def term_name(term: Term) -> str:
    """The name a term is known by: its class name (``group_zscore``)."""
    return type(term).__name__


def term_keys(terms: Iterable[Term]) -> list[str]:
    """Stable state keys of a chain's terms: the term's name, ``name#2`` for the second term of
    the same class, ... Adding or removing an unrelated term leaves the others' keys alone, so
    their stored state (``term_state``) and mini-batch statistics stay theirs."""
    seen: dict[str, int] = {}
    keys = []
    for term in terms:
        name = term_name(term)
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


# ---------------------------------------------------------------------- the class declaration
def _declare(cls: type) -> None:
    """Make a new Term subclass a frozen dataclass whose build checks its fields, and whose
    ``__call__`` / ``minibatch_stats`` run under its own name when called outside a chain.

    The dataclass is made here, when the class is created, so the decorator is optional. A
    class that still carries ``@dataclass(frozen=True)`` is processed a second time by it; for
    that to work, the frozen ``__setattr__``/``__delattr__`` live on :class:`Term` (the
    decorator refuses to overwrite its own), and fields declared with ``field(...)`` get their
    ``Field`` back as class attribute so the second pass sees the same declaration.
    """
    declared = {name: value for name, value in cls.__dict__.items() if isinstance(value, dataclasses.Field)}
    dataclasses.dataclass(frozen=True)(cls)
    for name in ("__setattr__", "__delattr__"):  # generated just now: Term has the same ones
        delattr(cls, name)
    for name, value in declared.items():
        setattr(cls, name, value)
    post_init = cls.__dict__.get("__post_init__")
    if post_init is not None and not getattr(post_init, "_checks_fields", False):
        @functools.wraps(post_init)
        def checked_post_init(self, *args, **kwargs):
            check_fields(self)
            return post_init(self, *args, **kwargs)

        checked_post_init._checks_fields = True
        cls.__post_init__ = checked_post_init
    for method in ("__call__", "minibatch_stats"):
        function = cls.__dict__.get(method)
        if function is not None and not getattr(function, "_runs_named", False):
            setattr(cls, method, _run_named(function))


def _run_named(function):
    """``function(self, state, ...)`` with ``state.running`` set to the term's name (what
    ``state.require(...)`` names in its errors) and ``state.key`` to it when empty (a term
    called directly, not from a chain: its stored state is then keyed as in a chain of one);
    the returned state gets the caller's ``key`` and ``running`` back."""
    @functools.wraps(function)
    def named(self, state=None, *args, **kwargs):
        name = term_name(self)
        if not isinstance(state, State) or (state.key and state.running == name):
            return function(self, state, *args, **kwargs)
        out = function(self, state.update(key=state.key or name, running=name), *args, **kwargs)
        return out.update(key=state.key, running=state.running) if isinstance(out, State) else out

    named._runs_named = True
    return named


@dataclasses.dataclass(frozen=True, repr=False)
class Chain(Term):
    """Terms applied left to right; ``Chain(())`` is the identity.

    Attributes:
        terms: the primitive terms, in order (nested chains are flattened).
        name: optional display name (paper presets set it); ignored by equality.
    """

    terms: tuple[Term, ...] = ()
    name: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(t for term in self.terms for t in as_terms(term)))
        check_order(self.terms)

    def slots_read(self) -> frozenset[str]:
        return frozenset().union(*(t.slots_read() for t in self.terms))

    def slots_written(self) -> frozenset[str]:
        return frozenset().union(*(t.slots_written() for t in self.terms))

    def slots_may_read(self) -> frozenset[str]:
        return frozenset().union(*(t.slots_may_read() for t in self.terms))

    def __call__(self, state: State, stage: str | None = None) -> State:
        """Apply every term (or only those of ``stage``), each under its own state key."""
        for key, term in zip(term_keys(self.terms), self.terms):
            if stage is not None and term.stage != stage:
                continue
            state = term(state.update(key=key, running=term_name(term)))
        return state.update(key="", running="")

    def replace(self, old: type | Term, new: Term | None) -> "Chain":
        """A chain with every term of type ``old`` (or equal to ``old``) replaced by ``new``.

        ``new=None`` removes it. Useful for recipe edits: ``grpo.replace(group_zscore, rloo())``.
        """
        def matches(term):
            return isinstance(term, old) if isinstance(old, type) else term == old

        if not any(matches(t) for t in self.terms):
            raise RlobjBuildError(f"replace: no term matching {old!r} in {self!r}")
        kept = [new if matches(t) else t for t in self.terms]
        return Chain(tuple(t for t in kept if t is not None), name=None)

    def __repr__(self) -> str:
        if not self.terms:
            return "identity()"
        body = " >> ".join(repr(t) for t in self.terms)
        return f"{self.name}: {body}" if self.name else body

    def __len__(self) -> int:
        return len(self.terms)


def as_terms(term: Term) -> tuple[Term, ...]:
    """The flat tuple of primitive terms a term or chain stands for."""
    if isinstance(term, Chain):
        return term.terms
    if not isinstance(term, Term):
        raise RlobjBuildError(f"expected a Term, got {type(term).__name__}: {term!r}")
    return (term,)


def _compose(terms: tuple[Term, ...]) -> Term:
    if len(terms) == 1:
        return terms[0]
    return Chain(terms)


def identity() -> Chain:
    """The neutral element of ``>>``: ``identity() >> t == t == t >> identity()``."""
    return Chain(())


def chain(*terms: Term, name: str | None = None) -> Term:
    """Compose ``terms`` left to right; with ``name`` the result prints as a named recipe."""
    flat = tuple(t for term in terms for t in as_terms(term))
    if name is None:
        return _compose(flat)
    return Chain(flat, name=name)


def check_order(terms: Iterable[Term]) -> None:
    """Raise :class:`RlobjBuildError` for the orders that cannot work (module docstring)."""
    terms = tuple(terms)
    consumed: dict[str, Term] = {}   # slot -> first term that read it without writing it
    produced: dict[str, Term] = {}   # slot -> last term that wrote it
    per_token_writes: dict[str, Term] = {}
    for term in terms:
        reads, writes = term.slots_read(), term.slots_written()
        for slot in sorted(writes):
            if not _is_derived(slot):
                continue
            if slot in consumed:
                reader = consumed[slot]
                raise RlobjBuildError(
                    f"{term_name(term)} writes {slot!r} after {term_name(reader)} already read "
                    f"it, so its change would be ignored. Put {term_name(term)} before "
                    f"{term_name(reader)}."
                )
            if slot not in reads and slot in produced and slot != "rewards":
                earlier = produced[slot]
                if slot in earlier.slots_read():
                    raise RlobjBuildError(
                        f"{term_name(earlier)} modifies {slot!r} but comes before "
                        f"{term_name(term)}, which produces it. Put {term_name(earlier)} after "
                        f"{term_name(term)}."
                    )
                raise RlobjBuildError(
                    f"{term_name(term)} writes {slot!r}, which {term_name(earlier)} already "
                    f"wrote: the second would silently replace the first. Keep one of them "
                    f"(chain.replace({term_name(earlier)}, {term_name(term)}(...)) swaps it)."
                )
        if term.stage == "batch":
            for slot in sorted(reads):
                if slot in per_token_writes:
                    raise RlobjBuildError(
                        f"{term_name(term)} works on whole groups (batch stage) but reads "
                        f"{slot!r}, written by the per-token term "
                        f"{term_name(per_token_writes[slot])} before it. Put "
                        f"{term_name(term)} first."
                    )
        for slot in reads:
            if _is_derived(slot) and slot not in writes:
                consumed.setdefault(slot, term)
        for slot in writes:
            produced[slot] = term
            if term.stage != "batch":
                per_token_writes[slot] = term
    _check_double_kl(terms)
    for position, term in enumerate(terms):
        hook = getattr(term, "check_chain", None)
        if hook is not None:
            hook(terms, position)


def _check_double_kl(terms: tuple[Term, ...]) -> None:
    placed: dict[tuple[str, str], Term] = {}
    for term in terms:
        target = getattr(term, "against", None)
        placement = getattr(term, "placement", None)
        if target is None or placement not in ("reward", "loss"):
            continue
        other_placement = "loss" if placement == "reward" else "reward"
        other = placed.get((target, other_placement))
        if other is not None and not (
            getattr(term, "allow_reward_and_loss", False)
            or getattr(other, "allow_reward_and_loss", False)
        ):
            raise RlobjBuildError(
                f"{term_name(other)} (placement={other_placement!r}) and {term_name(term)} "
                f"(placement={placement!r}) both put a KL against {target!r} into the objective: "
                f"once in the reward and once in the loss. Keep one, or pass "
                f"allow_reward_and_loss=True to say you mean both."
            )
        placed[(target, placement)] = term
