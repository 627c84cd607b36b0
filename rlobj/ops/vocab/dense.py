r"""The dense reference: every query on the whole ``[tokens, vocab]`` logits, for tests.

:func:`dense_evaluate` computes the same results as :meth:`VocabView.evaluate
<rlobj.ops.vocab.VocabView.evaluate>` the obvious way: it builds the full logits
$z = \mathrm{softcap}(h W^\top + b) / \tau$ (or ``logits / tau``) in float64 and applies each
query's :meth:`~rlobj.ops.vocab.protocol.VocabQuery.dense` formula to them; gradients come from
autograd. It allocates what the view exists to avoid, so use it on small inputs only: tests
compare the chunked engine (any chunk and block sizes) with it.

Example:
    >>> import torch
    >>> from rlobj.ops.vocab import Entropy, VocabView
    >>> view = VocabView.from_logits(torch.randn(2, 3, 7), chunk_size=2, vocab_chunk_size=3)
    >>> chunked, = view.evaluate(Entropy())
    >>> dense, = dense_evaluate(view, Entropy())
    >>> torch.allclose(chunked.double(), dense, atol=1e-6)
    True
"""

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError

__all__ = ["dense_logits", "dense_evaluate"]


def dense_logits(view, dtype: torch.dtype = torch.float64) -> Tensor:
    """The view's whole logits ``[batch, seq, vocab]`` (temperature and soft-cap applied), in
    ``dtype``, differentiable in the view's tensors."""
    if view._kind == "hidden":
        hidden, weight, bias = view._tensors
        logits = hidden.to(dtype) @ weight.to(dtype).T
        if bias is not None:
            logits = logits + bias.to(dtype)
    else:
        logits = view._tensors[0].to(dtype)
    if view.softcap is not None:
        logits = view.softcap * torch.tanh(logits / view.softcap)
    return logits / view.temperature


def dense_evaluate(view, *queries, mask: Tensor | None = None,
                   dtype: torch.dtype = torch.float64) -> tuple[Tensor, ...]:
    """Each query's result ``"batch seq"`` from the whole logits (masked-out positions hold 0 /
    False, as in :meth:`VocabView.evaluate <rlobj.ops.vocab.VocabView.evaluate>`)."""
    if not queries:
        raise RlobjInputError("queries: expected at least one query, got none")
    batch, seq = view.shape
    rows = torch.arange(batch * seq) if mask is None else mask.reshape(-1).nonzero().squeeze(1)
    logits = dense_logits(view, dtype).reshape(batch * seq, -1)[rows]
    results = []
    for query in queries:
        query.validate(view)
        other = query.other_view()
        other_logits = None if other is None else dense_logits(other, dtype).reshape(batch * seq, -1)[rows]
        data = [values.reshape(batch * seq, *values.shape[2:])[rows] for values in query.token_data()]
        value = query.dense(logits, other_logits, data)
        full = torch.zeros(batch * seq, dtype=value.dtype, device=value.device)
        results.append(full.index_put((rows,), value).reshape(batch, seq))
    return tuple(results)
