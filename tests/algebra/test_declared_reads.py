"""Every registered term reads only the slots it declares.

The order checks of ``>>`` (rlobj/algebra/term.py) trust each term's declared ``reads``: a
term that reads ``advantages`` without saying so could be put after an advantage term's
consumer and silently see stale values. Here every registered term (and every term of every
preset) runs on the registry's standard batch under a :class:`TracingState`, which records
each slot read by the term running at that moment (``logp``, ``mask``, ``entropy``,
``vocab``, ``extras:<key>``, ``part:<name>``, ...), through its ``__call__`` and its
mini-batch statistics hook; a read that is not declared fails the test.
"""

import contextlib

import pytest
import torch
from registry_cases import NAMES, complete, defaults, standard_batch

from rlobj import Objective, State, Term, clip_ratio, group_zscore, token_mean
from rlobj.algebra.state import STATS_PREFIX
from rlobj.algebra.term import as_terms, term_keys

#: State fields that are slots (DESIGN.md section 2); the rest (metrics, term_state, key, ...) are not.
SLOT_FIELDS = frozenset({"logp", "logp_old", "logp_ref", "mask", "group_ids", "entropy", "vocab", "rewards",
                         "token_rewards", "advantages", "aggregation"})


class Reads:
    """What was read, as ``{term key: {slot, ...}}``; recording is paused inside State's own
    helpers (``update`` copies every field, ``add_part`` every part: not reads of the term)."""

    def __init__(self):
        self.by_key: dict[str, set[str]] = {}
        self.paused = 0

    def record(self, key: str, slot: str) -> None:
        if not self.paused and key:
            self.by_key.setdefault(key, set()).add(slot)

    @contextlib.contextmanager
    def pause(self):
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1


class _TracingDict(dict):
    """A dict that records item reads (``extras:<key>``, ``part:<name>``); copying it with
    ``{**d}`` / ``dict(d)`` does not count (CPython copies a plain-iterating dict directly)."""

    def __init__(self, data, reads: Reads, key: str, prefix: str):
        super().__init__(data)
        self._trace = (reads, key, prefix)

    def _note(self, name):
        reads, key, prefix = self._trace
        if not (prefix == "extras:" and str(name).startswith(STATS_PREFIX)):  # the term's own statistics
            reads.record(key, f"{prefix}{name}")

    def __getitem__(self, name):
        self._note(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self._note(name)
        return super().get(name, default)

    def __contains__(self, name):
        self._note(name)
        return super().__contains__(name)


#: Tensor methods that look at a tensor's metadata, not its values: not reads.
METADATA = frozenset({"dtype", "shape", "device", "size", "dim", "ndim", "numel", "is_floating_point",
                      "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "requires_grad"})


class _TracedTensor(torch.Tensor):
    """A slot's tensor that records a read of the slot when its values are used (any torch
    function but the metadata ones); results are plain tensors."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(getattr(func, "__self__", None), "__name__", None) or getattr(func, "__name__", "")
        if name not in METADATA:
            for value in (*args, *kwargs.values()):
                for item in (value if isinstance(value, (list, tuple)) else (value,)):
                    if isinstance(item, _TracedTensor):
                        reads, key, slot = item.__dict__["_trace"]
                        reads.record(key, slot)
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


def _traced(value, reads: Reads, key: str, slot: str):
    if isinstance(value, torch.Tensor) and not reads.paused:
        value = value.as_subclass(_TracedTensor)
        value.__dict__["_trace"] = (reads, key, slot)
    elif value is None or not isinstance(value, torch.Tensor):  # looking at a missing slot (or a vocab view) is a read
        reads.record(key, slot)
    return value


class TracingState(State):
    """A :class:`State` that records the slots read through it into ``READS``: a tensor slot
    when its values are used (its dtype or shape is not a read), a missing one when looked at,
    ``extras`` and ``parts`` items when looked up."""

    def __getattribute__(self, name):
        value = object.__getattribute__(self, name)
        if name in SLOT_FIELDS or name in ("extras", "parts"):
            reads = READS[0]
            key = object.__getattribute__(self, "key")
            if reads.paused or not key:
                return value
            if name in SLOT_FIELDS:
                return _traced(value, reads, key, name)
            return _TracingDict(value, reads, key, "extras:" if name == "extras" else "part:")
        return value

    def require(self, name, by=None):
        READS[0].record(self.key, name)
        with READS[0].pause():
            return super().require(name, by)

    def require_part(self, name, by=None):
        READS[0].record(self.key, f"part:{name}")
        with READS[0].pause():
            return super().require_part(name, by)

    def token_entropy(self):
        READS[0].record(self.key, "entropy")
        with READS[0].pause():
            return super().token_entropy()

    @property
    def batch_size(self):  # the number of rows, not a read of logp's values
        with READS[0].pause():
            return super().batch_size


def _paused(method_name):
    method = getattr(State, method_name)

    def run(self, *args, **kwargs):
        with READS[0].pause():
            return method(self, *args, **kwargs)

    run.__name__ = method_name
    return run


for _name in ("update", "add_part", "add_metrics", "own_state", "set_own_state", "own_stats"):
    setattr(TracingState, _name, _paused(_name))

#: The recorder the tracing states write to (one per traced run).
READS: list[Reads] = [Reads()]


def traced_reads(term: Term, batch: dict) -> dict[str, set[str]]:
    """Run ``term`` (a chain) on ``batch`` under a tracing state, through ``__call__`` and the
    mini-batch statistics hooks; the slots each term read, by its chain key."""
    READS[0] = Reads()
    objective = Objective(term)
    state = TracingState.from_batch(**batch)
    prepared = objective.prepare(state)
    if objective.needs_minibatch_stats:
        stats = objective.minibatch_stats(prepared)
        prepared = prepared.update(extras={**prepared.extras, **stats})
    objective.loss(prepared)
    return READS[0].by_key


def undeclared_reads(term: Term, batch: dict) -> dict[str, set[str]]:
    """``{term key: slots it read without declaring them}`` for every term of ``term``."""
    reads = traced_reads(term, batch)
    found = {}
    for key, part in zip(term_keys(as_terms(term)), as_terms(term)):
        declared = part.slots_read() | part.slots_may_read() | part.minibatch_stats_reads()
        extra = reads.get(key, set()) - declared
        if extra:
            found[key] = extra
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_term_reads_only_what_it_declares(name):
    objective = complete(defaults(name))
    assert undeclared_reads(objective, standard_batch(name)) == {}


class under_declared(Term, stage="batch", reads=("rewards",), writes=("rewards",)):
    r"""$r_i \leftarrow r_i \cdot |g_i|$, but it declares only ``rewards``: it also reads
    ``group_ids`` and ``extras:weight``."""

    def __call__(self, state: State) -> State:
        sizes = torch.bincount(state.group_ids)[state.group_ids]
        weight = state.extras.get("weight", 1.0)
        return state.update(rewards=state.require("rewards") * sizes * weight)


def test_the_tracer_catches_an_under_declared_term():
    batch = standard_batch("grpo")
    found = undeclared_reads(under_declared() >> group_zscore() >> clip_ratio() >> token_mean(), batch)
    assert found == {"under_declared": {"group_ids", "extras:weight"}}


def test_the_tracer_sees_reads_of_parts_vocab_and_entropy():
    batch = standard_batch("grpo")
    reads = traced_reads(group_zscore() >> clip_ratio() >> token_mean(), batch)
    assert {"rewards", "group_ids"} <= reads["group_zscore"]
    assert {"logp", "logp_old", "advantages"} <= reads["clip_ratio"]
    assert "token_mean" not in reads or reads["token_mean"] <= {"mask"}


class clip_ratio_declaring_too_little(clip_ratio, reads=("logp", "advantages", "mask")):
    r"""$\ell$ of ``clip_ratio``, with a declaration that leaves out ``logp_old``."""


def test_the_tracer_catches_a_registered_term_with_a_wrong_declaration():
    found = undeclared_reads(group_zscore() >> clip_ratio_declaring_too_little() >> token_mean(),
                             standard_batch("grpo"))
    assert found == {"clip_ratio_declaring_too_little": {"logp_old"}}
