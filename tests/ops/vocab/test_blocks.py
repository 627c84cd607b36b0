"""What a query sees of one chunk (rlobj/ops/vocab/blocks.py), checked against dense float64 formulas:
the workspace's reused buffers, logit sources (given logits, a projection, temperature, soft-cap)
and the gradient they push back, a block's probabilities and ids, and the structured gradient
collector."""

import torch

from rlobj.ops.vocab.blocks import LogitBlock, LogitGradient, LogitSource, Workspace, as_column

F64 = torch.float64


def test_as_column_and_workspace_buffers_are_reused_views():
    assert as_column(torch.tensor([1.0, 2.0])).shape == (2, 1)
    space = Workspace(rows=2, cols=3, dtype=F64, device=torch.device("cpu"))
    a = space.get("z", 2, 3)
    b = space.get("z", 1, 2)  # the same buffer, a smaller view
    assert a.shape == (2, 3) and b.shape == (1, 2) and a.data_ptr() == b.data_ptr()
    assert space.get("p", 2, 3).data_ptr() != a.data_ptr()
    assert space.get("z", 2, 3, dtype=torch.float32).dtype == torch.float32  # one buffer per dtype


def test_logits_source_copies_a_block_with_temperature_and_softcap():
    logits = torch.randn(4, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    out = torch.empty(2, 3, dtype=F64)
    plain = LogitSource("logits", [0], 1.0, None, F64)
    assert plain.fill([logits], 1, 3, 2, 5, out) is None
    torch.testing.assert_close(out, logits[1:3, 2:5])
    rows = LogitSource("logits", [0], 2.0, None, F64, row_index=torch.tensor([3, 0]))
    rows.fill([logits], 0, 2, 0, 3, out)
    torch.testing.assert_close(out, logits[[3, 0], :3] / 2.0)
    capped = LogitSource("logits", [0], 0.5, 3.0, F64)
    squash = capped.fill([logits], 0, 2, 0, 3, out)
    torch.testing.assert_close(squash, torch.tanh(logits[:2, :3] / 3.0))
    torch.testing.assert_close(out, 3.0 * torch.tanh(logits[:2, :3] / 3.0) / 0.5)
    assert logits.isfinite().all()  # the user's logits are never modified in place


def test_projection_source_and_its_gradient_match_autograd():
    g = torch.Generator().manual_seed(1)
    hidden, weight, bias = (torch.randn(3, 4, dtype=F64, generator=g), torch.randn(5, 4, dtype=F64, generator=g),
                            torch.randn(5, dtype=F64, generator=g))
    source = LogitSource("hidden", [0, 1, 2], 1.5, None, F64)
    out = torch.empty(3, 5, dtype=F64)
    source.fill([hidden, weight, bias], 0, 3, 0, 5, out)
    torch.testing.assert_close(out, (hidden @ weight.T + bias) / 1.5)
    upstream = torch.randn(3, 5, dtype=F64, generator=g)
    leaves = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
    ((leaves[0] @ leaves[1].T + leaves[2]) / 1.5 * upstream).sum().backward()
    grads = [None, torch.empty_like(weight), torch.empty_like(bias)]
    grad_hidden = torch.empty_like(hidden)
    source.backprop([hidden, weight, bias], grads, (0, 3), (0, 5), upstream.clone(), None, grad_hidden)
    torch.testing.assert_close(grads[1], leaves[1].grad)
    torch.testing.assert_close(grads[2], leaves[2].grad)
    grads[0] = torch.empty_like(hidden)
    source.backprop([hidden, weight, bias], grads, (0, 3), (0, 5), upstream.clone(), None, grad_hidden)
    torch.testing.assert_close(grad_hidden, leaves[0].grad)


def _block(z, cols=(0, None)):
    start, stop = cols[0], cols[1] if cols[1] is not None else z.shape[1]
    space = Workspace(z.shape[0], z.shape[1], F64, torch.device("cpu"))
    return LogitBlock({0: z}, {0: None}, {0: torch.logsumexp(z, -1)}, start, stop, space)


def test_block_probabilities_log_probabilities_and_ids():
    z = torch.tensor([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]], dtype=F64)
    block = _block(z, cols=(4, 7))
    torch.testing.assert_close(block.probs(0), torch.softmax(z, -1))
    torch.testing.assert_close(block.log_probs(0), torch.log_softmax(z, -1))
    inside, local = block.locate(torch.tensor([[3, 4], [6, 9]]))
    assert inside.tolist() == [[False, True], [True, False]] and local.tolist() == [[0, 0], [2, 2]]


def test_gradient_collector_builds_the_structured_sum():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 4, dtype=F64, generator=g)
    block = _block(z)
    pi = torch.softmax(z, -1)
    alpha, beta, dense = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([2.0, 0.25], dtype=F64), \
        torch.randn(2, 4, dtype=F64, generator=g)
    collector = LogitGradient(2, F64, torch.device("cpu"))
    collector.add_probs(alpha)
    collector.add_probs_times_logits(beta, 0)
    collector.add_dense(dense)
    collector.add_at(torch.tensor([[1], [3]]), torch.tensor([[10.0], [20.0]], dtype=F64))
    expected = pi * (alpha[:, None] + beta[:, None] * z) + dense
    expected[0, 1] += 10.0
    expected[1, 3] += 20.0
    torch.testing.assert_close(collector.build(block, 0), expected)
