"""Registry-wide test cases, shared by tests/test_registry.py, tests/algebra/test_declared_reads.py and
tests/train/pipeline_cases.py: every registered name, its default build, a runnable chain around it
and the standard batch it runs on."""

import torch
from batches import make_batch

import rlobj
from rlobj import Term
from rlobj.algebra.term import as_terms
from rlobj.registry import PRESETS, REGISTRY


def complete(term: Term) -> Term:
    """A runnable chain around a single term, according to what it reads and writes."""
    writes, reads = term.slots_written(), term.slots_read()
    if isinstance(term, rlobj.Chain):
        return term
    if "aggregation" in writes:
        return rlobj.group_zscore() >> rlobj.clip_ratio() >> term
    if "advantages" in writes and "advantages" in reads:  # advantage shaping (e.g. VOGUE's bonus)
        return rlobj.group_zscore() >> term >> rlobj.clip_ratio() >> rlobj.token_mean()
    if "advantages" in writes:
        return term >> rlobj.clip_ratio() >> rlobj.token_mean()
    if "rewards" in writes or "mask" in writes or "token_rewards" in writes:
        if hasattr(term, "check_chain"):  # e.g. the backward correction refuses a z-score after it
            return term >> rlobj.leave_one_out() >> rlobj.clip_ratio()
        return term >> rlobj.group_zscore() >> rlobj.clip_ratio()
    if "part:policy" in writes and "part:policy" in reads:
        return rlobj.group_zscore() >> rlobj.clip_ratio() >> term
    if "part:policy" in writes:
        return rlobj.group_zscore() >> term
    return rlobj.group_zscore() >> rlobj.clip_ratio() >> term  # penalties


def defaults(name):
    entry = REGISTRY[name]
    return entry if name in PRESETS else entry()


NAMES = sorted(REGISTRY)


def standard_batch(name, dtype=torch.float32):
    """The standard batch; with vocabulary views for terms that read ``vocab``."""
    needs_vocab = any("vocab" in t.slots_read() for t in as_terms(defaults(name)))
    return make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5, dtype=dtype, vocab=needs_vocab)
