"""The trainer on a tiny vision-language model: policies from ``tiny_vlm`` and from a saved
directory, the supervised warm-up and evaluation on rows with images, and the perturbed-image
forward PAPO / VPPO / VOGUE read (patch blackening, per-row draws)."""

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train import RLModule
from rlobj.train.policies import processor_of
from rlobj.train.providers.policy import PerturbedContext
from rlobj.train.shapes import ShapesTask
from rlobj.train.stages import Batch

TINY_VLM = {"kind": "llava", "image_size": 28, "patch_size": 7, "hidden_size": 32, "layers": 1, "heads": 2,
            "vision_hidden_size": 16, "seed": 0}


def _module(**overrides):
    kwargs = dict(policy={"tiny_vlm": TINY_VLM}, rollout={"group_size": 3, "max_new_tokens": 3},
                  evaluation={"samples": 2, "k": [1]}, seed=0)
    kwargs.update(overrides)
    module = RLModule(**kwargs)
    module.build()
    return module


@pytest.fixture(scope="module")
def sampled():
    module = _module()
    records = ShapesTask(seed=3).records(0, 3)
    ctx = module.context(0)
    ctx.row_offset = 0
    return module, ctx, ctx.sample(records)


def test_policy_settings_are_checked():
    with pytest.raises(RlobjInputError, match="policy.tiny_vlm"):
        RLModule(policy={"tiny_vlm": TINY_VLM, "tiny_model": {"hidden_size": 32}})
    with pytest.raises(RlobjInputError, match="policy.tiny_vlm"):
        _module(policy={"tiny_vlm": {"kind": "llava", "layer": 1}})


def test_a_saved_vlm_directory_loads_with_its_processor(tmp_path):
    module = _module()
    module.policy.save_pretrained(tmp_path)
    processor_of(module.tokenizer).save_pretrained(tmp_path)
    loaded = _module(policy={"model_path": str(tmp_path)})
    assert type(loaded.policy).__name__ == "LlavaForConditionalGeneration"
    assert processor_of(loaded.tokenizer) is not None
    records = ShapesTask(seed=3).records(0, 2)
    a, b = module.context(0).sample(records), loaded.context(0).sample(records)
    assert torch.equal(a.rollout.response_ids, b.rollout.response_ids)
    assert torch.allclose(a.rollout.logp_rollout, b.rollout.logp_rollout, atol=1e-6)


def test_warmup_and_evaluation_take_rows_with_images():
    module = _module(warmup={"steps": 1, "lr": 1e-3})
    records = ShapesTask(seed=3).records(0, 4)
    before = [p.detach().clone() for p in module.policy.parameters()]
    metrics = module.sft_update(records)
    assert torch.isfinite(torch.tensor(metrics["sft/nll"]))
    vision = next(p for n, p in zip([n for n, _ in module.policy.named_parameters()], before) if "vision_tower" in n)
    after = next(p for n, p in module.policy.named_parameters() if "vision_tower" in n)
    assert not torch.equal(vision, after)  # the image reaches the loss: the vision tower learns
    result = module.evaluate(records)
    assert 0.0 <= result["pass@1"] <= 1.0


def _perturbed(module, ctx, batch, spec, rows=None):
    provider = PerturbedContext(spec)
    provider.needed = frozenset({"extras:logp_perturbed"})
    if rows is not None:
        module.models.micro_batch_size = rows
    return provider.batch(ctx, batch, {})["extras:logp_perturbed"]


def test_blackening_nothing_gives_the_trainer_log_probs_bit_for_bit(sampled):
    module, ctx, batch = sampled
    none = _perturbed(module, ctx, batch, {"patches": {"ratio": 0.0, "patch_size": 7}})
    logp, _ = module.models.no_grad_logprobs(batch.rollout)
    assert torch.equal(none, logp) or torch.allclose(none, logp, atol=1e-6)


def test_blackened_patches_change_the_log_probs_and_not_with_the_chunking(sampled):
    module, ctx, batch = sampled
    spec = {"patches": {"ratio": 0.6, "patch_size": 7, "fill": -1.0}}
    whole = _perturbed(module, ctx, batch, spec, rows=None)
    chunked = _perturbed(module, ctx, batch, spec, rows=2)
    module.models.micro_batch_size = None
    logp, _ = module.models.no_grad_logprobs(batch.rollout)
    mask = batch.rollout.response_mask
    assert float((whole - logp)[mask].abs().max()) > 1e-4
    assert torch.allclose(whole, chunked, atol=1e-6)
    black = _perturbed(module, ctx, batch, {"patches": {"ratio": 1.0, "patch_size": 7, "fill": -1.0}})
    assert not torch.allclose(black, whole, atol=1e-5)  # another draw, other log-probs


def test_perturbations_that_do_not_fit_the_rows_are_refused(sampled):
    module, ctx, batch = sampled
    with pytest.raises(RlobjInputError, match="prompt-span masking would mask image"):
        _perturbed(module, ctx, batch, {"ratio": 0.5})
    text = Batch(rollout=batch.rollout.__class__(**{**batch.rollout.__dict__, "vision": None}), records=batch.records)
    with pytest.raises(RlobjInputError, match="blackens images, but the batch's rows carry none"):
        _perturbed(module, ctx, text, {"patches": {"ratio": 0.5}})
    with pytest.raises(RlobjInputError, match="takes no other keys"):
        PerturbedContext({"patches": {"ratio": 0.5}, "span": 2})
    default = PerturbedContext()
    assert type(default._spec(batch.rollout)).__name__ == "PatchBlackening"  # images: patches by default


def test_text_only_samplers_refuse_rows_with_images(sampled):
    from rlobj.train.samplers import build_sampler

    module, ctx, _ = sampled
    records = ShapesTask(seed=3).records(0, 2)
    with pytest.raises(RlobjInputError, match="carries images: this sampler takes text rows"):
        build_sampler({"broad": {"chunk_size": 4}}).sample(ctx, records, 2)


def test_an_engine_without_image_inputs_is_named():
    from rlobj.rollout import VLLMEngine
    from rlobj.train.samplers import generate_records

    module = _module()
    engine = VLLMEngine.__new__(VLLMEngine)  # the class's generate() signature only; nothing started
    engine.processor = processor_of(module.tokenizer)
    with pytest.raises(RlobjInputError, match="VLLMEngine takes no images"):
        generate_records(engine, module.encode, ShapesTask(seed=3).records(0, 1), 2, module._sampling(0))


def test_a_transform_checkpoint_keeps_the_rows_images(sampled):
    from rlobj.train.transforms.rows import _batch_from_state, _batch_state

    _, _, batch = sampled
    restored = _batch_from_state(_batch_state(batch)).rollout
    assert len(restored.vision) == len(batch)
    assert all(torch.equal(a["pixel_values"], b["pixel_values"])
               for a, b in zip(restored.vision.rows, batch.rollout.vision.rows, strict=True))
