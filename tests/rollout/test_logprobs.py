"""sequence_logprobs: left-padded batches equal unpadded per-sample forwards (position_ids)."""

import batches
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.rollout import left_pad_prompts, positions_from_mask, sequence_logprobs

from .conftest import PAD, VOCAB


def right_pad(responses):
    return batches.right_pad(responses, PAD)


def unpadded_reference(model, prompt, response, temperature):
    """One sequence, no padding, positions 0..L-1 by default; plain loop over response tokens."""
    logits = model(input_ids=torch.tensor([prompt + response])).logits[0].float()
    values = []
    for step, token in enumerate(response):
        row = torch.log_softmax(logits[len(prompt) - 1 + step] / temperature, dim=-1)
        values.append(row[token])
    return torch.stack(values)


token = st.integers(2, VOCAB - 1)


@settings(max_examples=12)
@given(
    pairs=st.lists(st.tuples(st.lists(token, min_size=1, max_size=7),
                             st.lists(token, min_size=1, max_size=6)), min_size=1, max_size=4),
    temperature=st.sampled_from([1.0, 0.7, 1.6]),
)
def test_padded_batch_equals_unpadded_per_sample(tiny_model, pairs, temperature):
    prompt_ids, prompt_mask = left_pad_prompts([prompt for prompt, _ in pairs], PAD)
    response_ids, response_mask = right_pad([response for _, response in pairs])
    with torch.no_grad():
        batched = sequence_logprobs(tiny_model, prompt_ids, prompt_mask, response_ids,
                                    response_mask, temperature)
        for row, (prompt, response) in enumerate(pairs):
            expected = unpadded_reference(tiny_model, prompt, response, temperature)
            torch.testing.assert_close(batched[row, :len(response)], expected, atol=1e-5, rtol=0)
            assert (batched[row, len(response):] == 0).all()


@pytest.mark.parametrize("extra_padding", [0, 3, 17])
def test_invariant_to_the_amount_of_left_padding(tiny_model, extra_padding):
    """The same sample padded by 0, 3 or 17 extra tokens gets the same log-probs, and padding
    tokens are never attended to (changing their ids changes nothing)."""
    prompt, response = [9, 10, 4], [14, 15, 2]
    prompt_ids, prompt_mask = left_pad_prompts([prompt], PAD)
    prompt_ids = torch.cat([torch.full((1, extra_padding), 7), prompt_ids], 1)
    prompt_mask = torch.cat([torch.zeros((1, extra_padding), dtype=torch.bool), prompt_mask], 1)
    response_ids, response_mask = right_pad([response])
    response_ids = torch.cat([response_ids, torch.full((1, 4), 5)], 1)
    response_mask = torch.cat([response_mask, torch.zeros((1, 4), dtype=torch.bool)], 1)
    with torch.no_grad():
        got = sequence_logprobs(tiny_model, prompt_ids, prompt_mask, response_ids, response_mask)
        expected = unpadded_reference(tiny_model, prompt, response, 1.0)
    torch.testing.assert_close(got[0, :3], expected, atol=1e-5, rtol=0)
    assert (got[0, 3:] == 0).all()


def test_gradient_matches_per_sample_sum(tiny_model):
    import copy

    model = copy.deepcopy(tiny_model)
    pairs = [([3, 4, 5], [6, 7]), ([8], [9, 10, 11, 2])]
    prompt_ids, prompt_mask = left_pad_prompts([prompt for prompt, _ in pairs], PAD)
    response_ids, response_mask = right_pad([response for _, response in pairs])
    model.zero_grad()
    sequence_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask).sum().backward()
    batched_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    total = sum(unpadded_reference(model, prompt, response, 1.0).sum()
                for prompt, response in pairs)
    total.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(batched_grads[name], parameter.grad, atol=1e-5, rtol=1e-4,
                                   msg=name)


def test_positions_from_mask_hand_values():
    mask = torch.tensor([[False, True, True, True, False], [True, True, True, True, True]])
    assert positions_from_mask(mask).tolist() == [[0, 0, 1, 2, 2], [0, 1, 2, 3, 4]]


def test_bad_inputs(tiny_model):
    prompt_ids, prompt_mask = left_pad_prompts([[3, 4]], PAD)
    response_ids, response_mask = right_pad([[5, 6]])
    with pytest.raises(ValueError, match="temperature"):
        sequence_logprobs(tiny_model, prompt_ids, prompt_mask, response_ids, response_mask, 0.0)
    with pytest.raises(Exception, match="response"):
        sequence_logprobs(tiny_model, prompt_ids, prompt_mask, response_ids,
                          response_mask[:, :1])
    empty_prompt_mask = torch.zeros_like(prompt_mask)
    with pytest.raises(ValueError, match="at least one real token"):
        sequence_logprobs(tiny_model, prompt_ids, empty_prompt_mask, response_ids, response_mask)
