"""Perception views: perturbations (prompt spans, image patches), the perturbed forward pass, and
the Must-show property: with no perturbation the perception KL and the PAPO term are exactly zero."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import Objective, perception_kl, token_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import build_tiny_qwen2, left_pad_prompts, sequence_logprobs
from rlobj.rollout.perception import (
    PatchBlackening,
    PromptSpanMask,
    annealed_branch_probability,
    blacken_patches,
    noisy_branch_rows,
    patch_mask,
    perception_forward,
    prompt_span_mask,
)
from rlobj.rollout.tiny import build_char_tokenizer
from rlobj.terms.divergences import symmetric_kl


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny_qwen2(vocab_size=len(tokenizer), hidden_size=64, layers=2, heads=2, seed=3,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)


def encode_batch(tokenizer, prompts, responses):
    prompt_ids, prompt_mask = left_pad_prompts([tokenizer(p)["input_ids"] for p in prompts], tokenizer.pad_token_id)
    encoded = [tokenizer(r)["input_ids"] for r in responses]
    width = max(len(r) for r in encoded)
    response_ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((len(encoded), width), dtype=torch.bool)
    for row, ids in enumerate(encoded):
        response_ids[row, :len(ids)] = torch.tensor(ids)
        response_mask[row, :len(ids)] = True
    return prompt_ids, prompt_mask.bool(), response_ids, response_mask


@pytest.fixture(scope="module")
def batch(tokenizer):
    return encode_batch(tokenizer, ["12+34=", "7+8=", "100+250="], ["46", "15", "350"])


# ------------------------------------------------------------------------------------------
# prompt span masks
# ------------------------------------------------------------------------------------------


def span_mask_loop(prompt_mask, spec, step):
    """Reference: the same draws, then one real token at a time (rank // span picks the draw)."""
    batch, length = prompt_mask.shape
    generator = torch.Generator().manual_seed((spec.seed * 1_000_003 + step) % (2**63 - 1))
    draws = torch.rand(batch, max(1, math.ceil(length / spec.span)), generator=generator)
    out = torch.zeros_like(prompt_mask)
    for i in range(batch):
        rank = 0
        for t in range(length):
            if prompt_mask[i, t]:
                out[i, t] = bool(draws[i, rank // spec.span] < spec.ratio)
                rank += 1
    return out


@settings(max_examples=40)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4), ratio=st.floats(0, 1),
       span=st.integers(1, 4), seed=st.integers(0, 1000), step=st.integers(0, 50))
def test_prompt_span_mask_matches_loop(lengths, ratio, span, seed, step):
    width = max(lengths)
    prompt_mask = torch.arange(width)[None, :] >= width - torch.tensor(lengths)[:, None]  # left padded
    spec = PromptSpanMask(ratio=ratio, span=span, seed=seed)
    got = prompt_span_mask(prompt_mask, spec, step)
    assert torch.equal(got, span_mask_loop(prompt_mask, spec, step))
    assert not bool((got & ~prompt_mask).any())  # padding is never masked
    assert torch.equal(got, prompt_span_mask(prompt_mask, spec, step))  # reproducible


def test_prompt_span_mask_extremes_and_spans():
    prompt_mask = torch.tensor([[False, True, True, True, True, True]])
    assert not bool(prompt_span_mask(prompt_mask, PromptSpanMask(ratio=0.0)).any())
    assert torch.equal(prompt_span_mask(prompt_mask, PromptSpanMask(ratio=1.0)), prompt_mask)
    # spans of 2 real tokens are masked together: positions (1,2), (3,4), (5,)
    for seed in range(20):
        got = prompt_span_mask(prompt_mask, PromptSpanMask(ratio=0.5, span=2, seed=seed))[0]
        assert bool(got[1]) == bool(got[2]) and bool(got[3]) == bool(got[4])
    many = torch.ones(200, 50, dtype=torch.bool)
    fraction = float(prompt_span_mask(many, PromptSpanMask(ratio=0.6, seed=1)).float().mean())
    assert abs(fraction - 0.6) < 0.02  # 10,000 Bernoulli(0.6) draws: sd 0.005


# ------------------------------------------------------------------------------------------
# patch blackening
# ------------------------------------------------------------------------------------------


@settings(max_examples=30)
@given(height=st.integers(1, 40), width=st.integers(1, 40), patch=st.integers(1, 16),
       ratio=st.floats(0, 1), seed=st.integers(0, 1000), lead=st.sampled_from([(), (2,), (2, 3)]))
def test_blacken_patches_matches_loop(height, width, patch, ratio, seed, lead):
    images = torch.rand(*lead, 3, height, width) + 0.5  # never 0 before blackening
    spec = PatchBlackening(ratio=ratio, patch_size=patch, seed=seed)
    out, blackened = blacken_patches(images, spec, step=4)
    assert out.shape == images.shape and out.dtype == images.dtype
    flat_in, flat_out = images.reshape(-1, 3, height, width), out.reshape(-1, 3, height, width)
    assert blackened.shape == (flat_in.shape[0], math.ceil(height / patch), math.ceil(width / patch))
    assert torch.equal(blackened, patch_mask(flat_in.shape[0], height, width, spec, step=4))
    for n in range(flat_in.shape[0]):
        for y in range(height):
            for x in range(width):
                if blackened[n, y // patch, x // patch]:
                    assert bool((flat_out[n, :, y, x] == 0).all())
                else:
                    assert torch.equal(flat_out[n, :, y, x], flat_in[n, :, y, x])


def test_blacken_patches_fraction_extremes_and_fill():
    images = torch.rand(64, 3, 140, 140)
    spec = PatchBlackening(ratio=0.6, patch_size=14, seed=0)
    _, blackened = blacken_patches(images, spec)
    assert blackened.numel() == 6400
    assert abs(float(blackened.float().mean()) - 0.6) < 0.025  # Binomial(6400, 0.6): sd 0.006
    unchanged, none = blacken_patches(images, PatchBlackening(ratio=0.0))
    assert torch.equal(unchanged, images) and not bool(none.any())
    gray, _ = blacken_patches(images, PatchBlackening(ratio=1.0, fill=0.5))
    assert bool((gray == 0.5).all())
    step0, _ = blacken_patches(images, spec, step=0)
    step1, _ = blacken_patches(images, spec, step=1)
    assert not torch.equal(step0, step1)  # a new draw per step


def test_perturbation_specs_reject_bad_values():
    with pytest.raises(RlobjInputError, match="PatchBlackening.ratio"):
        PatchBlackening(ratio=1.5)
    with pytest.raises(RlobjInputError, match="PatchBlackening.patch_size"):
        PatchBlackening(patch_size=0)
    with pytest.raises(RlobjInputError, match="PromptSpanMask.span"):
        PromptSpanMask(span=0)
    with pytest.raises(RlobjInputError, match="PromptSpanMask.mode"):
        PromptSpanMask(mode="noise")
    with pytest.raises(RlobjInputError, match="PromptSpanMask.mask_id"):
        PromptSpanMask(mask_id=-1)
    with pytest.raises(RlobjInputError, match="step"):
        prompt_span_mask(torch.ones(1, 2, dtype=torch.bool), PromptSpanMask(), step=-1)


# ------------------------------------------------------------------------------------------
# the perturbed forward pass on a tiny text model
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("perturbation", [None, PromptSpanMask(ratio=0.0), PromptSpanMask(ratio=0.0, mode="embedding")])
def test_no_perturbation_equals_the_trainer_pass_bit_for_bit(model, batch, perturbation):
    with torch.no_grad():
        normal = sequence_logprobs(model, *batch)
        view = perception_forward(model, *batch, perturbation, with_vocab=True)
    assert torch.equal(view.logp, normal)
    torch.testing.assert_close(view.vocab.logp(batch[2], mask=batch[3]), normal, atol=1e-5, rtol=0)
    assert view.extras().keys() == {"logp_perturbed", "vocab_perturbed"}


@pytest.mark.parametrize("perturbation", [None, PromptSpanMask(ratio=0.0), PromptSpanMask(ratio=0.0, mode="embedding")])
def test_must_show_no_perturbation_gives_zero_kl_zero_loss_zero_gradient(model, batch, perturbation):
    """Must show: with no perturbation the perception KL is exactly zero and the PAPO term
    contributes zero loss and zero gradient (trainer log-probs with grad, perturbed pass detached)."""
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        perturbed = perception_forward(model, *batch, perturbation, with_vocab=True)
        normal_view = perception_forward(model, *batch, None, with_vocab=True).vocab
    kl_full = normal_view.kl(perturbed.vocab, "reverse", mask=batch[3])
    assert float(kl_full.abs().max()) == 0.0
    assert float(symmetric_kl(normal_view, perturbed.vocab, mask=batch[3]).abs().max()) == 0.0
    logp = sequence_logprobs(model, *batch)  # with gradient
    out = Objective(perception_kl(gamma=0.02) >> token_mean())(
        logp=logp, mask=batch[3], extras=perturbed.extras())
    assert float(out.loss) == 0.0 and float(out.metrics["perception/kl"]) == 0.0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(float(g.abs().max()) == 0.0 for g in grads)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("mode", ["token", "embedding"])
def test_a_perturbation_changes_the_distribution(model, batch, mode):
    with torch.no_grad():
        normal = perception_forward(model, *batch, None, with_vocab=True)
        perturbed = perception_forward(model, *batch, PromptSpanMask(ratio=1.0, mode=mode), with_vocab=True)
    assert bool(perturbed.perturbed.equal(batch[1]))  # every real prompt token masked
    assert float((perturbed.logp - normal.logp).abs().max()) > 1e-4
    kl = normal.vocab.kl(perturbed.vocab, "reverse", mask=batch[3])
    assert float(kl.max()) > 1e-6 and bool((kl >= -1e-7).all())
    sampled = Objective(perception_kl(gamma=1.0) >> token_mean())(
        logp=normal.logp, mask=batch[3], extras=perturbed.extras())
    full = Objective(perception_kl(gamma=1.0, estimator="full") >> token_mean())(
        logp=normal.logp, mask=batch[3], vocab=normal.vocab, extras=perturbed.extras())
    assert float(sampled.metrics["perception/kl"]) > 0 and float(full.metrics["perception/kl"]) > 0


def unpadded_loop(model, prompt, response, masked, mask_id):
    """Reference: one sequence, no padding, masked prompt ids replaced, plain loop over tokens."""
    ids = [mask_id if m else t for t, m in zip(prompt, masked)] + response
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.stack([torch.log_softmax(logits[len(prompt) - 1 + k], -1)[tok] for k, tok in enumerate(response)])


@settings(max_examples=6)
@given(seed=st.integers(0, 1000), ratio=st.floats(0.2, 0.9), span=st.integers(1, 3))
def test_perturbed_logp_matches_unpadded_loop(model, batch, tokenizer, seed, ratio, span):
    spec = PromptSpanMask(ratio=ratio, span=span, seed=seed)
    with torch.no_grad():
        view = perception_forward(model, *batch, spec, step=2)
        prompt_ids, prompt_mask, response_ids, response_mask = batch
        for row in range(prompt_ids.shape[0]):
            real = prompt_mask[row]
            prompt = prompt_ids[row][real].tolist()
            masked = view.perturbed[row][real].tolist()
            response = response_ids[row][response_mask[row]].tolist()
            expected = unpadded_loop(model, prompt, response, masked, tokenizer.pad_token_id)
            torch.testing.assert_close(view.logp[row][response_mask[row]], expected, atol=2e-5, rtol=0)


def test_gradient_follows_the_grad_mode(model, batch):
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        detached = perception_forward(model, *batch, PromptSpanMask(ratio=0.5), with_vocab=True)
    assert not detached.logp.requires_grad and not detached.vocab.requires_grad
    live = perception_forward(model, *batch, PromptSpanMask(ratio=0.5), with_vocab=True)
    normal = perception_forward(model, *batch, None, with_vocab=True)
    # PAPO with the perturbed branch recomputed with gradient, and the full-vocabulary KL
    out = Objective(perception_kl(gamma=1.0, estimator="full", perturbed_grad=True) >> token_mean())(
        logp=normal.logp, mask=batch[3], vocab=normal.vocab, extras=live.extras())
    out.loss.backward()
    assert float(model.get_output_embeddings().weight.grad.abs().sum()) > 0
    assert float(model.get_input_embeddings().weight.grad.abs().sum()) > 0
    model.zero_grad(set_to_none=True)


def test_perception_forward_bad_input(model, batch):
    with pytest.raises(RlobjInputError, match="pixel_values"):
        perception_forward(model, *batch, PatchBlackening())
    with pytest.raises(RlobjInputError, match="with_logp and with_vocab"):
        perception_forward(model, *batch, None, with_logp=False)
    with pytest.raises(RlobjInputError, match="temperature"):
        perception_forward(model, *batch, None, temperature=0.0)
    prompt_ids, prompt_mask, response_ids, response_mask = batch
    with pytest.raises(RlobjInputError, match="every prompt"):
        perception_forward(model, prompt_ids, torch.zeros_like(prompt_mask), response_ids, response_mask)
    no_pad = build_tiny_qwen2(vocab_size=20, hidden_size=64, heads=2, layers=1)
    with pytest.raises(RlobjInputError, match="mask_id"):
        perception_forward(no_pad, prompt_ids, prompt_mask, response_ids, response_mask, PromptSpanMask())


# ------------------------------------------------------------------------------------------
# VOGUE's annealed branch probability
# ------------------------------------------------------------------------------------------


def test_annealed_branch_probability_hand_values():
    assert annealed_branch_probability(0, 10, start=0.5) == 0.5
    assert annealed_branch_probability(5, 10, start=0.5) == 0.25
    assert annealed_branch_probability(10, 10, start=0.5, end=0.1) == pytest.approx(0.1)
    assert annealed_branch_probability(50, 10, start=0.5) == 0.0
    assert annealed_branch_probability(5, 10, start=0.8, schedule="cosine") == pytest.approx(0.4)


@settings(max_examples=40)
@given(total=st.integers(1, 100), start=st.floats(0, 1), end=st.floats(0, 1),
       schedule=st.sampled_from(["linear", "cosine"]))
def test_annealed_branch_probability_monotone_in_unit_interval(total, start, end, schedule):
    start, end = max(start, end), min(start, end)
    values = [annealed_branch_probability(s, total, start, end, schedule) for s in range(total + 3)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))


def test_noisy_branch_rows():
    assert not bool(noisy_branch_rows(5, 0.0).any()) and bool(noisy_branch_rows(5, 1.0).all())
    assert torch.equal(noisy_branch_rows(100, 0.3, seed=1, step=2), noisy_branch_rows(100, 0.3, seed=1, step=2))
    assert abs(float(noisy_branch_rows(10_000, 0.3).float().mean()) - 0.3) < 0.02
    with pytest.raises(RlobjInputError, match="probability"):
        noisy_branch_rows(3, 1.5)
    with pytest.raises(RlobjInputError, match="schedule"):
        annealed_branch_probability(1, 10, 0.5, schedule="step")
    with pytest.raises(RlobjInputError, match="total_steps"):
        annealed_branch_probability(1, 0, 0.5)


# ------------------------------------------------------------------------------------------
# per-row draws (row_keys): the same perturbation in any chunking of the rows
# ------------------------------------------------------------------------------------------


def _left_pad(rows: list[int], width: int) -> torch.Tensor:
    return torch.tensor([[False] * (width - n) + [True] * n for n in rows])


@settings(max_examples=30)
@given(lengths=st.lists(st.integers(1, 9), min_size=2, max_size=6), ratio=st.floats(0.1, 0.9),
       span=st.integers(1, 3), seed=st.integers(0, 1000), step=st.integers(0, 50), cut=st.integers(1, 5))
def test_prompt_span_mask_row_keys_are_chunking_and_padding_invariant(lengths, ratio, span, seed, step, cut):
    spec = PromptSpanMask(ratio=ratio, span=span, seed=seed)
    keys = torch.arange(len(lengths)) + 100
    width = max(lengths)
    whole = prompt_span_mask(_left_pad(lengths, width + 2), spec, step, row_keys=keys)
    cut = min(cut, len(lengths) - 1)
    for rows in (slice(0, cut), slice(cut, None)):
        chunk = lengths[rows]
        own = prompt_span_mask(_left_pad(chunk, max(chunk)), spec, step, row_keys=keys[rows])  # re-padded
        for i, n in enumerate(chunk):
            assert own[i, -n:].tolist() == whole[rows][i, -n:].tolist()
            assert not own[i, :-n].any()
    # keys, not positions, decide: reversing the rows reverses the masks
    flipped = prompt_span_mask(_left_pad(lengths[::-1], width + 2), spec, step, row_keys=keys.flip(0))
    assert flipped.flip(0).equal(whole)


def test_patch_mask_row_keys_are_chunking_invariant():
    spec = PatchBlackening(ratio=0.5, patch_size=7, seed=4)
    keys = torch.tensor([5, 9, 2, 11])
    pixels = torch.rand(4, 2, 3, 21, 14, generator=torch.Generator().manual_seed(0))  # 2 frames per row
    whole, blackened = blacken_patches(pixels, spec, 3, row_keys=keys)
    assert blackened.shape == (8, 3, 2)
    first, _ = blacken_patches(pixels[:1], spec, 3, row_keys=keys[:1])
    rest, _ = blacken_patches(pixels[1:], spec, 3, row_keys=keys[1:])
    assert torch.equal(torch.cat([first, rest]), whole)
    assert patch_mask(8, 21, 14, spec, 3, row_keys=keys).equal(blackened)
    with pytest.raises(RlobjInputError, match="row_keys"):
        patch_mask(6, 21, 14, spec, 3, row_keys=keys)
    with pytest.raises(RlobjInputError, match="row_keys"):
        blacken_patches(pixels, spec, 3, row_keys=keys[:3])
    with pytest.raises(RlobjInputError, match="row_keys"):
        prompt_span_mask(torch.ones(2, 3, dtype=torch.bool), PromptSpanMask(), 0, row_keys=torch.tensor([-1, 2]))
    with pytest.raises(RlobjInputError, match="row_keys"):
        prompt_span_mask(torch.ones(2, 3, dtype=torch.bool), PromptSpanMask(), 0, row_keys=torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("mode", ["token", "embedding"])
def test_perception_forward_row_keys_chunked_equals_whole(model, batch, mode):
    spec = PromptSpanMask(ratio=0.5, span=2, seed=7, mode=mode)
    keys = torch.tensor([3, 8, 1])
    with torch.no_grad():
        whole = perception_forward(model, *batch, spec, step=4, row_keys=keys)
        pieces = [perception_forward(model, *(t[rows] for t in batch), spec, step=4, row_keys=keys[rows])
                  for rows in (slice(0, 1), slice(1, 3))]
    assert torch.equal(torch.cat([p.perturbed for p in pieces]), whole.perturbed)
    torch.testing.assert_close(torch.cat([p.logp for p in pieces]), whole.logp, atol=2e-5, rtol=0)
    # the old calling form (one draw per call) still works and is reproducible
    with torch.no_grad():
        again = perception_forward(model, *batch, spec, step=4)
    assert torch.equal(again.perturbed, prompt_span_mask(batch[1], spec, 4))


# ------------------------------------------------------------------------------------------
# a tiny vision-language model (LLaVA architecture, random weights, built from a config)
# ------------------------------------------------------------------------------------------

IMAGE_TOKEN = 31


@pytest.fixture(scope="module")
def tiny_llava():
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        Qwen2Config,
    )

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=28, patch_size=14, projection_dim=32)
    text = Qwen2Config(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=IMAGE_TOKEN,
                         vision_feature_layer=-1, vision_feature_select_strategy="default")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).eval()
    # a 28x28 image gives 2x2 patches of 14 px = 4 image tokens per prompt
    prompt_ids = torch.tensor([[0, 3, IMAGE_TOKEN, IMAGE_TOKEN, IMAGE_TOKEN, IMAGE_TOKEN, 4, 5],
                               [2, 6, IMAGE_TOKEN, IMAGE_TOKEN, IMAGE_TOKEN, IMAGE_TOKEN, 7, 8]])
    prompt_mask = torch.tensor([[False] + [True] * 7, [True] * 8])
    response_ids = torch.tensor([[9, 10, 11], [12, 13, 0]])
    response_mask = torch.tensor([[True, True, True], [True, True, False]])
    pixels = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    return model, (prompt_ids, prompt_mask, response_ids, response_mask), pixels


def test_vision_language_model_patch_blackening(tiny_llava):
    model, batch, pixels = tiny_llava
    with torch.no_grad():
        normal = perception_forward(model, *batch, None, pixel_values=pixels, with_vocab=True)
        same = perception_forward(model, *batch, PatchBlackening(ratio=0.0), pixel_values=pixels, with_vocab=True)
        black = perception_forward(model, *batch, PatchBlackening(ratio=1.0), pixel_values=pixels, with_vocab=True)
        half = perception_forward(model, *batch, PatchBlackening(ratio=0.5, seed=3), pixel_values=pixels)
    # no perturbation: identical pass, perception KL exactly zero
    assert torch.equal(same.logp, normal.logp)
    assert float(normal.vocab.kl(same.vocab, "reverse", mask=batch[3]).abs().max()) == 0.0
    zero = Objective(perception_kl(gamma=0.02) >> token_mean())(logp=normal.logp, mask=batch[3], extras=same.extras())
    assert float(zero.loss) == 0.0
    # all patches black: the image tokens change, so the response distribution changes
    assert black.perturbed.shape == (2, 2, 2) and bool(black.perturbed.all())
    assert float((black.logp - normal.logp).abs().max()) > 1e-5
    assert float(normal.vocab.kl(black.vocab, "reverse", mask=batch[3]).max()) > 1e-8
    assert float(symmetric_kl(normal.vocab, black.vocab, mask=batch[3]).max()) > 1e-8
    assert half.vocab is None and half.logp.shape == batch[2].shape
    torch.testing.assert_close(normal.vocab.logp(batch[2], mask=batch[3]), normal.logp, atol=1e-5, rtol=0)
