"""sampling_logprobs: the distribution actually sampled (temperature, top-k, top-p)."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlobj.rollout import SamplingConfig, sampling_logprobs


def slow_sampled_distribution(logits, temperature, top_k, top_p):
    """Plain-loop reference: scale, keep top-k, keep the smallest top-p prefix, renormalise."""
    scaled = [value / temperature for value in logits]
    order = sorted(range(len(scaled)), key=lambda index: -scaled[index])
    kept = order if top_k == 0 else order[:top_k]
    peak = max(scaled[index] for index in kept)
    weights = {index: math.exp(scaled[index] - peak) for index in kept}
    total = sum(weights.values())
    nucleus = []
    mass = 0.0
    for index in kept:  # most likely first
        if nucleus and mass >= top_p:
            break
        nucleus.append(index)
        mass += weights[index] / total
    nucleus_total = sum(weights[index] for index in nucleus)
    return [math.log(weights[index] / nucleus_total) if index in nucleus else -math.inf
            for index in range(len(scaled))]


def test_hand_computed_values():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    # top-k = 2 at T = 1: softmax over {2, 1}.
    expected_top2 = torch.tensor([[-math.log(1 + math.exp(-1.0)), -math.log(1 + math.exp(1.0)),
                                   -math.inf, -math.inf]])
    torch.testing.assert_close(sampling_logprobs(logits, top_k=2), expected_top2)
    # T = 2 without filtering: log softmax of [1, .5, 0, -.5].
    torch.testing.assert_close(sampling_logprobs(logits, temperature=2.0),
                               torch.log_softmax(logits / 2, dim=-1))
    # probabilities at T = 1: [.644, .237, .087, .032]; top_p = 0.85 keeps the first two
    # (mass before the third is .881 >= .85), top_p = 0.9 keeps three.
    kept_85 = torch.isfinite(sampling_logprobs(logits, top_p=0.85))
    kept_90 = torch.isfinite(sampling_logprobs(logits, top_p=0.9))
    assert kept_85.tolist() == [[True, True, False, False]]
    assert kept_90.tolist() == [[True, True, True, False]]
    # a tiny top_p keeps only the most likely token, which then has probability 1.
    assert sampling_logprobs(logits, top_p=1e-6)[0, 0].item() == 0.0


@settings(max_examples=200)
@given(
    logits=st.lists(st.integers(-400, 400), min_size=2, max_size=12, unique=True),
    temperature=st.floats(0.2, 3.0),
    top_k=st.integers(0, 12),
    top_p=st.floats(0.05, 1.0),
)
def test_matches_slow_reference(logits, temperature, top_k, top_p):
    values = [value / 50.0 for value in logits]  # distinct, spaced by >= 0.02
    reference = slow_sampled_distribution(values, temperature, top_k, top_p)
    # avoid top-p boundaries that float32 and float64 could decide differently
    scaled = sorted((value / temperature for value in values), reverse=True)
    kept = scaled if top_k == 0 else scaled[:top_k]
    weights = [math.exp(value - kept[0]) for value in kept]
    cumulative = [sum(weights[:index + 1]) / sum(weights) for index in range(len(weights))]
    assume(all(abs(mass - top_p) > 1e-4 for mass in cumulative))
    got = sampling_logprobs(torch.tensor([values]), temperature, top_k, top_p)[0]
    expected = torch.tensor(reference, dtype=torch.float32)
    assert torch.equal(torch.isfinite(got), torch.isfinite(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(got[finite], expected[finite], atol=2e-5, rtol=1e-5)
    # property: a distribution over the kept set
    torch.testing.assert_close(got.exp().sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_batched_rows_are_independent():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 9, generator=generator)
    together = sampling_logprobs(logits, 0.7, 4, 0.8)
    for row in range(5):
        torch.testing.assert_close(together[row], sampling_logprobs(logits[row:row + 1], 0.7, 4,
                                                                    0.8)[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=-1), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sampling_logprobs(torch.zeros(1, 3), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(max_new_tokens=4, temperature=0.0), "temperature"),
        (dict(max_new_tokens=4, temperature=-0.5), "temperature"),
        (dict(max_new_tokens=4, temperature=float("nan")), "temperature"),
        (dict(max_new_tokens=4, top_p=0.0), "top_p"),
        (dict(max_new_tokens=4, top_p=1.01), "top_p"),
        (dict(max_new_tokens=4, top_k=-3), "top_k"),
        (dict(max_new_tokens=4, seed=1.5), "seed"),
        (dict(max_new_tokens=4, temperature=0.0, greedy=True), "temperature"),
    ],
)
def test_sampling_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kwargs)


def test_sampling_config_coerces_numbers():
    config = SamplingConfig(max_new_tokens=3, temperature=1, top_p=1)
    assert isinstance(config.temperature, float) and isinstance(config.top_p, float)
