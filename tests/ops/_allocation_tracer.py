"""An allocation tracer shared by the memory tests of the vocab engine (tests/ops/test_vocab_allocations.py)
and of the full-vocabulary terms (tests/terms/test_vocab_terms.py)."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class AllocationTracer(TorchDispatchMode):
    """Records ``(op, shape, dtype, numel)`` of every newly allocated op output."""

    def __init__(self):
        super().__init__()
        self.records = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.records.append((str(func), tuple(t.shape), t.dtype, t.numel()))
        return out

    def largest_float(self):
        floats = [r for r in self.records if r[2].is_floating_point]
        return max(floats, key=lambda r: r[3]) if floats else None

    def floats_of_at_least(self, numel: int):
        """Float allocations with at least ``numel`` elements."""
        return [r for r in self.records if r[2].is_floating_point and r[3] >= numel]
