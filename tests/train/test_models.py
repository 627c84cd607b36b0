"""Policy and reference forwards (rlobj/train/models.py): the logits mode chosen and refused, chunks of
rows, the reference built once as a frozen copy, and chunked no-grad log-probs equal to one forward
of all rows, in both logits modes."""

import pytest
import torch

from rlobj.train.models import Models

from ._helpers import synthetic_rollout, tiny_module


def test_logits_mode_chunks_and_errors():
    module = tiny_module()
    assert Models(module.policy).logits == "chunked"  # the tiny Qwen2 exposes a decoder and lm_head
    assert Models(module.policy, logits="full").logits == "full"
    assert Models(torch.nn.Linear(2, 2)).logits == "full"  # auto falls back without a decoder
    with pytest.raises(ValueError, match="logits: expected 'auto', 'chunked' or 'full', got 'dense'"):
        Models(module.policy, logits="dense")
    with pytest.raises(ValueError, match="logits: 'chunked' needs a model with get_decoder"):
        Models(torch.nn.Linear(2, 2), logits="chunked")
    assert Models(module.policy, micro_batch_size=3).chunks(7) == [slice(0, 3), slice(3, 6), slice(6, 9)]
    assert Models(module.policy).chunks(5) == [slice(0, 5)] and Models(module.policy).chunks(0) == []


def test_reference_is_a_frozen_copy_built_once():
    module = tiny_module()
    models = Models(module.policy)
    assert not models.has_reference
    reference = models.reference
    assert models.has_reference and models.reference is reference and reference is not module.policy
    assert not any(p.requires_grad for p in reference.parameters())
    assert all(torch.equal(a, b) for a, b in zip(reference.parameters(), module.policy.parameters(), strict=True))
    built = []
    factory = Models(module.policy, reference_factory=lambda: built.append(1) or torch.nn.Linear(2, 2))
    factory.reference, factory.reference  # noqa: B018
    assert built == [1]


@pytest.mark.parametrize("logits", ["chunked", "full"])
def test_no_grad_logprobs_in_chunks_equal_one_forward(logits):
    module = tiny_module()
    rollout = synthetic_rollout(module, groups=2, group_size=3)
    whole = Models(module.policy, logits=logits)
    chunked = Models(module.policy, logits=logits, micro_batch_size=4)
    logp, entropy = whole.no_grad_logprobs(rollout, with_entropy=True)
    logp_c, entropy_c = chunked.no_grad_logprobs(rollout, with_entropy=True)
    mask = rollout.response_mask
    torch.testing.assert_close(logp_c[mask], logp[mask], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(entropy_c[mask], entropy[mask], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logp[mask], rollout.logp_rollout[mask], rtol=1e-4, atol=1e-5)  # same policy
    some, _ = chunked.no_grad_logprobs(rollout, rows=[4, 1])
    torch.testing.assert_close(some[mask[[4, 1]]], logp[[4, 1]][mask[[4, 1]]], rtol=1e-5, atol=1e-6)
