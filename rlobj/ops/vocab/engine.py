r"""The chunk engine: one pass over token chunks and vocabulary blocks, one autograd function.

:class:`ChunkedPass` runs a list of :class:`~rlobj.ops.vocab.protocol.VocabQuery` over one or
more logit sources. Forward, per chunk of token rows:

* whole rows fit one block: compute the logits once, shift each row by its max (so every
  exponent is ``<= 0`` and the sums have terms of one sign), normalise, then let every query
  accumulate;
* otherwise two passes over the vocabulary blocks: a streaming log-sum-exp (and the gathers of
  logits at token ids), then the queries' sums on logits shifted by the row max.

Backward recomputes each block'source logits and lets every differentiable query add its gradient to
one :class:`~rlobj.ops.vocab.blocks.LogitGradient` per source, which the source pushes into the
hidden states, weight and bias (or the given logits). Nothing of size ``[tokens, vocab]`` is
kept between the passes: only per-row statistics.
"""

import math
from dataclasses import dataclass

import torch

from rlobj.ops.chunking import chunk_bounds
from rlobj.ops.vocab.blocks import (
    LogitBlock,
    LogitGradient,
    LogitSource,
    RowStats,
    Workspace,
    as_column,
)
from rlobj.ops.vocab.protocol import QueryChunk, VocabQuery

__all__ = ["ChunkedPass", "VocabFunction"]


@dataclass
class ChunkedPass:
    """Everything one evaluation needs, shared by its forward and backward.

    Attributes:
        sources: the logit sources (the view first, then every distinct other view).
        queries: the queries, in output order.
        query_sources: per query, ``(view source, other source or None)``.
        data_slots: per query, the slots of its ``token_data`` in the flat tensor list.
        n_rows: token rows to compute; ``rows`` per chunk, ``cols`` vocabulary ids per block.
    """

    sources: list[LogitSource]
    queries: list[VocabQuery]
    query_sources: list[tuple[int, int | None]]
    data_slots: list[list[int]]
    n_rows: int
    rows: int
    cols: int
    vocab: int
    compute_dtype: torch.dtype
    device: torch.device

    # -- helpers ---------------------------------------------------------------------------
    def _fill_logits(self, tensors, row_start, row_stop, col_start, col_stop, workspace):
        logits, squash = {}, {}
        for index, source in enumerate(self.sources):
            logits[index] = workspace.get(f"z{index}", row_stop - row_start, col_stop - col_start)
            squash[index] = source.fill(tensors, row_start, row_stop, col_start, col_stop,
                                        logits[index])
        return logits, squash

    def _chunks(self, tensors, row_start, row_stop, query_indices):
        chunks = {}
        for index in query_indices:
            view, other = self.query_sources[index]
            data = [tensors[slot][row_start:row_stop] for slot in self.data_slots[index]]
            gathered = [None] * len(self.queries[index].gathered_ids())
            chunks[index] = QueryChunk(view=view, other=other, data=data, gathered=gathered)
        return chunks

    def _gather(self, block, index, chunk):
        """Logits of the block at the query'source token ids (merged over vocabulary blocks)."""
        for entry, (role, data_index, _) in enumerate(self.queries[index].gathered_ids()):
            ids = chunk.data[data_index].long()
            if ids.dim() == 1:
                ids = ids.unsqueeze(1)
            inside, local = block.locate(ids)
            source = chunk.view if role == 0 else chunk.other
            values = block.logits[source].gather(1, local)
            previous = chunk.gathered[entry]
            chunk.gathered[entry] = values if previous is None else torch.where(inside, values, previous)

    # -- forward ---------------------------------------------------------------------------
    def _whole_rows(self, tensors, row_start, row_stop, chunks, workspace):
        """One block per row: logits once, shifted by the row max, normalised in place."""
        rows = row_stop - row_start
        logits, squash = self._fill_logits(tensors, row_start, row_stop, 0, self.vocab, workspace)
        lse, shift, probs = {}, {}, {}
        for source in logits:
            # z' = z - max <= 0 in place: the sums below have terms of one sign (no cancellation)
            shift[source] = logits[source].amax(dim=1)
            exp = torch.exp(logits[source].sub_(as_column(shift[source])),
                            out=workspace.get(f"p{source}", rows, self.vocab))
            total = exp.sum(dim=1)
            lse[source] = total.log()
            probs[source] = exp.mul_(as_column(total.reciprocal()))
        block = LogitBlock(logits, squash, lse, 0, self.vocab, workspace)
        block.row_max = {source: torch.zeros_like(shift[source]) for source in shift}
        for source in probs:
            block.set_probs(source, probs[source])
        for index, query in enumerate(self.queries):
            chunks[index].shifts = shift
            self._gather(block, index, chunks[index])
            query.accumulate(block, chunks[index])
        return lse, shift

    def _split_rows(self, tensors, row_start, row_stop, chunks, workspace, col_blocks):
        """Rows split over vocabulary blocks: streaming log-sum-exp, then the queries' sums."""
        rows, dtype, device = row_stop - row_start, self.compute_dtype, self.device
        running_max = {source: torch.full((rows,), -math.inf, dtype=dtype, device=device)
                       for source in range(len(self.sources))}
        running_sum = {source: torch.zeros(rows, dtype=dtype, device=device) for source in running_max}
        for col_start, col_stop in col_blocks:
            logits, squash = self._fill_logits(tensors, row_start, row_stop, col_start, col_stop,
                                               workspace)
            block = LogitBlock(logits, squash, None, col_start, col_stop, workspace)
            for source in logits:
                new_max = torch.maximum(running_max[source], logits[source].amax(dim=1))
                rescale = (running_max[source] - new_max).exp()
                shifted = torch.sub(logits[source], as_column(new_max), out=block.scratch())
                block_sum = shifted.exp_().sum(dim=1)
                running_sum[source] = running_sum[source] * rescale + block_sum
                running_max[source] = new_max
            for index in range(len(self.queries)):
                self._gather(block, index, chunks[index])
        shift = running_max
        lse = {source: running_sum[source].log() for source in running_max}
        for index, query in enumerate(self.queries):  # gathers in shifted coordinates too
            chunk = chunks[index]
            chunk.shifts = shift
            for entry, (role, _, _) in enumerate(query.gathered_ids()):
                source = chunk.view if role == 0 else chunk.other
                chunk.gathered[entry] = chunk.gathered[entry] - as_column(shift[source])
        for col_start, col_stop in col_blocks:
            logits, squash = self._fill_logits(tensors, row_start, row_stop, col_start, col_stop,
                                               workspace)
            for source in logits:
                logits[source].sub_(as_column(shift[source]))
            block = LogitBlock(logits, squash, lse, col_start, col_stop, workspace)
            block.row_max = {source: torch.zeros_like(shift[source]) for source in shift}
            for index, query in enumerate(self.queries):
                query.accumulate(block, chunks[index])
        return lse, shift

    def forward(self, tensors):
        """Per query the ``[n_rows]`` result; per source the row log-normaliser (unshifted);
        per query the tensors its backward saved."""
        dtype, device = self.compute_dtype, self.device
        outputs = [[] for _ in self.queries]
        saved = [dict() for _ in self.queries]
        lse_pieces = {source: [] for source in range(len(self.sources))}
        col_blocks = chunk_bounds(self.vocab, self.cols)
        workspace = Workspace(self.rows, self.cols, dtype, device)
        for row_start, row_stop in chunk_bounds(self.n_rows, self.rows):
            chunks = self._chunks(tensors, row_start, row_stop, range(len(self.queries)))
            if len(col_blocks) == 1:
                lse, shift = self._whole_rows(tensors, row_start, row_stop, chunks, workspace)
            else:
                lse, shift = self._split_rows(tensors, row_start, row_stop, chunks, workspace,
                                              col_blocks)
            zero = {source: torch.zeros_like(shift[source]) for source in shift}
            stats = RowStats(lse=lse, row_max=zero, shift=shift, dtype=dtype)
            for source in lse_pieces:
                lse_pieces[source].append(lse[source] + shift[source])  # backward works on unshifted logits
            for index, query in enumerate(self.queries):
                value, keep = query.finalize(stats, chunks[index])
                outputs[index].append(value)
                for key, tensor in keep.items():
                    saved[index].setdefault(key, []).append(tensor)
        results = []
        for index, query in enumerate(self.queries):
            result_dtype = query.result_dtype or dtype
            if outputs[index]:
                results.append(torch.cat(outputs[index]).to(result_dtype))
            else:
                results.append(torch.zeros(0, dtype=result_dtype, device=device))
        lse_rows = [torch.cat(lse_pieces[source]) if lse_pieces[source] else torch.zeros(0, dtype=dtype, device=device)
                    for source in lse_pieces]
        saved_rows = [{key: torch.cat(pieces) for key, pieces in saved[index].items()}
                      for index in range(len(self.queries))]
        return results, lse_rows, saved_rows

    # -- backward --------------------------------------------------------------------------
    def _gradient_buffers(self, tensors, needs, fills):
        grads = [None] * len(tensors)
        source_needs = []
        for source in self.sources:
            need = False
            for slot in source.slots:
                if needs[slot]:
                    shape = tensors[slot].shape
                    if source.kind == "hidden" and fills:  # fully written by the first chunk
                        grads[slot] = torch.empty(shape, dtype=self.compute_dtype, device=self.device)
                    else:
                        dtype = self.compute_dtype if source.kind == "hidden" else tensors[slot].dtype
                        grads[slot] = torch.zeros(shape, dtype=dtype, device=self.device)
                    need = True
            source_needs.append(need)
        return grads, source_needs

    def backward(self, tensors, lse_rows, saved_rows, output_grads, needs):
        """Gradients of the flat tensor list (None where not needed)."""
        dtype, device = self.compute_dtype, self.device
        active = [index for index, query in enumerate(self.queries)
                  if query.differentiable and output_grads[index] is not None]
        grads, source_needs = self._gradient_buffers(tensors, needs, self.n_rows > 0 and bool(active))
        if not any(source_needs) or not active:
            return grads
        col_blocks = chunk_bounds(self.vocab, self.cols)
        workspace = Workspace(self.rows, self.cols, dtype, device)
        for row_start, row_stop in chunk_bounds(self.n_rows, self.rows):
            rows = row_stop - row_start
            chunks = self._chunks(tensors, row_start, row_stop, active)
            lse = {source: lse_rows[source][row_start:row_stop] for source in range(len(self.sources))}
            saved = {index: {key: value[row_start:row_stop] for key, value in saved_rows[index].items()}
                     for index in active}
            grad_output = {index: output_grads[index][row_start:row_stop].to(dtype) for index in active}
            grad_hidden = {
                source: torch.empty(rows, tensors[logit_source.slots[0]].shape[1], dtype=dtype, device=device)
                for source, logit_source in enumerate(self.sources)
                if logit_source.kind == "hidden" and needs[logit_source.slots[0]]
            }
            for col_start, col_stop in col_blocks:
                logits, squash = self._fill_logits(tensors, row_start, row_stop, col_start, col_stop,
                                                   workspace)
                block = LogitBlock(logits, squash, lse, col_start, col_stop, workspace)
                gradients = {source: LogitGradient(rows, dtype, device)
                             for source in range(len(self.sources)) if source_needs[source]}
                for index in active:
                    self.queries[index].backward(block, chunks[index], saved[index],
                                                 grad_output[index], gradients)
                for source, collector in gradients.items():
                    self.sources[source].backprop(tensors, grads, (row_start, row_stop),
                                             (col_start, col_stop), collector.build(block, source),
                                             squash[source], grad_hidden.get(source))
                del block, logits, gradients
            for source, buffer in grad_hidden.items():
                grads[self.sources[source].slots[0]][row_start:row_stop] = buffer
        for source in self.sources:
            for slot in source.slots:
                if grads[slot] is not None and grads[slot].dtype != tensors[slot].dtype:
                    grads[slot] = grads[slot].to(tensors[slot].dtype)
        return grads


class VocabFunction(torch.autograd.Function):
    """``apply(chunked_pass, *tensors)``: the results of a :class:`ChunkedPass`, differentiable in
    the flat tensors (hidden states, weights, biases, logits) through its analytic backward."""

    @staticmethod
    def forward(ctx, chunked_pass, *tensors):
        results, lse_rows, saved_rows = chunked_pass.forward(tensors)
        keys = [sorted(saved) for saved in saved_rows]
        flat_saved = [saved[key] for saved, names in zip(saved_rows, keys, strict=True) for key in names]
        ctx.chunked_pass, ctx.keys, ctx.n_inputs = chunked_pass, keys, len(tensors)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*tensors, *lse_rows, *flat_saved)
        for query, result in zip(chunked_pass.queries, results, strict=True):
            if not query.differentiable:
                ctx.mark_non_differentiable(result)
        return tuple(results)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *output_grads):
        chunked_pass = ctx.chunked_pass
        stored = ctx.saved_tensors
        tensors = stored[: ctx.n_inputs]
        n_sources = len(chunked_pass.sources)
        lse_rows = stored[ctx.n_inputs : ctx.n_inputs + n_sources]
        rest = list(stored[ctx.n_inputs + n_sources :])
        saved_rows = [{key: rest.pop(0) for key in names} for names in ctx.keys]
        needs = ctx.needs_input_grad[1:]
        grads = chunked_pass.backward(tensors, lse_rows, saved_rows, output_grads, needs)
        return (None, *grads)
