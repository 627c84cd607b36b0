"""Multimodal rows through the rollout: encoding with the processor, per-row pixel inputs kept on
the batch, the HF engine sampling with them, and the trainer's forwards recomputing the engine's
log-probs exactly from them (tiny LLaVA built locally)."""

import dataclasses

import numpy as np
import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import HFEngine, SamplingConfig
from rlobj.rollout._batching import concat_rollouts, take
from rlobj.rollout.tiny_vlm import build_tiny_vlm
from rlobj.rollout.vision import VisionInputs, encode_records, image_token_ids, load_image
from rlobj.train.forward import chunked_logprobs, token_logprobs


@pytest.fixture(scope="module")
def vlm():
    model, processor = build_tiny_vlm("llava", image_size=28, patch_size=7, hidden_size=32, layers=1,
                                      vision_hidden_size=16, seed=0)
    return model, processor


def _image(seed):
    return np.random.default_rng(seed).integers(0, 256, (28, 28, 3), dtype=np.uint8)


def _encode(tokenizer):
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


def _sample(vlm, records, n=3, seed=1, tokens=5):
    model, processor = vlm
    tok = processor.tokenizer
    ids, vision = encode_records(records, _encode(tok), processor)
    engine = HFEngine(model, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      suppress_token_ids=image_token_ids(model))
    return engine.generate(ids, n=n, sampling=SamplingConfig(max_new_tokens=tokens, seed=seed), vision=vision)


def test_encode_records_expands_images_and_keeps_pixels(vlm):
    model, processor = vlm
    records = [{"prompt": "how many?", "images": [_image(0)]},
               {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                          {"type": "text", "text": "same?"}]}],
                "images": [_image(1), _image(2)]}]
    ids, vision = encode_records(records, _encode(processor.tokenizer), processor)
    image = model.config.image_token_id
    assert [row.count(image) for row in ids] == [16, 32]  # (28 / 7)^2 patches per image
    assert [tuple(r["pixel_values"].shape) for r in vision.rows] == [(1, 3, 28, 28), (2, 3, 28, 28)]
    text = processor.tokenizer.decode([t for t in ids[0] if t != image])
    assert text == "how many? answer:"


def test_text_records_pass_through_and_bad_rows_are_named(vlm, tmp_path):
    _, processor = vlm
    encode = _encode(processor.tokenizer)
    ids, vision = encode_records([{"prompt": "ab"}], encode, processor)
    assert vision is None and ids == [encode("ab")]
    with pytest.raises(RlobjInputError, match="rows \\[1\\] carry no images"):
        encode_records([{"prompt": "a", "images": [_image(0)]}, {"prompt": "b"}], encode, processor)
    with pytest.raises(RlobjInputError, match="no processor"):
        encode_records([{"prompt": "a", "images": [_image(0)]}], encode, None)
    with pytest.raises(RlobjInputError, match="H x W x 3 uint8"):
        encode_records([{"prompt": "a", "images": [np.zeros((4, 4), dtype=np.uint8)]}], encode, processor)
    with pytest.raises(RlobjInputError, match="cannot open image file"):
        encode_records([{"prompt": "a", "images": [str(tmp_path / "missing.png")]}], encode, processor)
    with pytest.raises(RlobjInputError, match="1 image part\\(s\\) for 2 image"):
        encode_records([{"messages": [{"role": "user", "content": [{"type": "image"}]}],
                         "images": [_image(0), _image(1)]}], encode, processor)
    with pytest.raises(RlobjInputError, match="expected a list"):
        encode_records([{"prompt": "a", "images": _image(0)}], encode, processor)


def test_image_paths_load_like_arrays(vlm, tmp_path):
    from PIL import Image

    _, processor = vlm
    path = tmp_path / "square.png"
    Image.fromarray(_image(3)).save(path)
    assert np.array_equal(load_image(str(path)), _image(3))
    encode = _encode(processor.tokenizer)
    from_path = encode_records([{"prompt": "a", "images": [str(path)]}], encode, processor)
    from_array = encode_records([{"prompt": "a", "images": [_image(3)]}], encode, processor)
    assert from_path[0] == from_array[0]
    assert torch.equal(from_path[1].rows[0]["pixel_values"], from_array[1].rows[0]["pixel_values"])


def test_engine_log_probs_equal_the_trainer_forwards_with_images(vlm):
    model, _ = vlm
    records = [{"prompt": "how many?", "images": [_image(0)]}, {"prompt": "colour?", "images": [_image(1)]}]
    batch = _sample(vlm, records)
    assert len(batch.vision) == len(batch) == 6
    assert batch.vision.rows[0] is batch.vision.rows[2]  # the group's rows share the prompt's tensors
    assert not bool(torch.isin(batch.response_ids, torch.tensor(image_token_ids(model))).any())
    pixels = batch.vision.model_inputs()
    args = (model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask)
    with torch.no_grad():
        full, _ = token_logprobs(*args, model_inputs=pixels)
        chunked, _ = chunked_logprobs(*args, model_inputs=pixels)
        swapped = VisionInputs(tuple(reversed(batch.vision.rows))).model_inputs()
        other, _ = token_logprobs(*args, model_inputs=swapped)
    assert torch.allclose(chunked, full, atol=1e-5)
    assert float((other - full).abs().max()) > 1e-4  # the images do reach the log-probs
    # the engine's log-probs: the same forward with the image token suppressed (renormalised)
    from rlobj.rollout.logprobs import response_logits

    with torch.no_grad():
        logits = response_logits(*args, model_inputs=pixels).float()
    logits[..., image_token_ids(model)] = float("-inf")
    expected = torch.log_softmax(logits, -1).gather(-1, batch.response_ids[..., None]).squeeze(-1)
    expected = expected.masked_fill(~batch.response_mask, 0.0)
    assert torch.allclose(expected, batch.logp_rollout, atol=1e-5)
    assert float((full - batch.logp_rollout).abs().max()) > 1e-3  # so the sampler marks the batch off-policy


def test_batches_keep_their_rows_images_through_select_concat_and_to(vlm):
    batch = _sample(vlm, [{"prompt": "a", "images": [_image(0)]}, {"prompt": "b", "images": [_image(1)]}], n=2)
    picked = take(batch, torch.tensor([3, 0]))
    assert picked.vision.rows[0] is batch.vision.rows[3] and picked.vision.rows[1] is batch.vision.rows[0]
    joined = concat_rollouts([batch, picked], pad_token_id=0)
    assert len(joined.vision) == 6 and joined.vision.rows[4] is batch.vision.rows[3]
    assert batch.to("cpu").vision is not None
    with pytest.raises(ValueError, match="vision must have 4 rows"):
        dataclasses.replace(batch, vision=batch.vision.select(slice(0, 3)))
    text = dataclasses.replace(batch, vision=None)
    with pytest.raises(RlobjInputError, match="some batches carry images"):
        concat_rollouts([batch, text], pad_token_id=0)


def test_vision_inputs_refuse_rows_with_different_keys():
    with pytest.raises(RlobjInputError, match="same pixel inputs"):
        VisionInputs(({"pixel_values": torch.zeros(1, 3, 2, 2)}, {"image_sizes": torch.zeros(1, 2)}))


