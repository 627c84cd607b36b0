"""Every registered term, preset and batch transform trains from YAML through ``rlobj fit``.

Each entry is written into a config (the objective in its YAML form, ``rlobj.registry.to_config``;
transforms by registry name) and run for 2 RL steps on the tiny model from the default run's
settings. Meta-checks: every slot a registered term reads has a provider (or is the trainer's own
or written by another term), and every registered transform and batch function is reachable from
YAML.
"""

import math

import pytest

from rlobj.registry import BATCH_FUNCTIONS, PRESETS, REGISTRY, TERM_FACTORIES, to_config
from rlobj.train.providers import PROVIDERS, required_slots
from rlobj.train.transforms import BATCH_FUNCTION_TRANSFORMS, TRANSFORMS

from ._yaml_fit import addition_data, fit_from_yaml
from .pipeline_cases import NAMES, objective_for
from .vision_cases import MULTIMODAL_NAMES, VLM_DATA, VLM_MODEL

#: Settings of a two-step run: no warm-up, no evaluation, small batches, micro-batches that
#: split groups.
MODEL = {"policy": {"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
         "rollout": {"group_size": 4, "max_new_tokens": 4}, "warmup": {"steps": 0, "eval_at_end": False},
         "update": {"micro_batch_size": 6},
         "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3, "weight_decay": 0.0}},
         "verifier": {"class_path": "train._helpers.StartsWithDigit"}, "seed": 0}
#: Per-transform arguments a two-step run needs (everything else from the defaults).
TRANSFORM_ARGS = {"dynamic_sampling": {"max_rounds": 3}, "std_filter": {"ema_start": 0, "filter_start": 0},
                  "prof_filter": {"keep": 2}, "guided_resample": {"template": "{hint} {prompt}"}}
#: Per-transform model settings: PROF reads per-step scores, which the process scorer gives.
TRANSFORM_MODEL = {"prof_filter": {"verifier": None, "scorer": {
    "class_path": "rlobj.train.scorers.ProcessScorer",
    "init_args": {"verifier": {"class_path": "train._helpers.StartsWithDigit"}}}}}


#: Terms that read the multi-turn sampler's turn records train on multi-turn episodes.
MULTI_TURN = {"sampler": {"multi_turn": {"environment": "train.multiturn_cases.StartsWithDigitEnv", "max_turns": 2,
                                         "max_tokens": 16}},
              "verifier": None, "scorer": {"class_path": "rlobj.train.EnvironmentScorer"}}


def _reads_turns(name) -> bool:
    return any("extras:turn_ids" in t.slots_read() for t in objective_for(name).terms)


def _fit(tmp_path, model: dict, data: dict | None = None) -> dict:
    return fit_from_yaml(tmp_path, {**MODEL, **model}, {**addition_data(3), **(data or {})}).model.last_metrics


def _yaml_objective(name):
    return name if name in PRESETS else to_config(objective_for(name))


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_entry_trains_from_yaml(name, tmp_path):
    metrics = _fit(tmp_path, {"objective": _yaml_objective(name), **(MULTI_TURN if _reads_turns(name) else {})})
    assert metrics["phase"] == 1.0 and metrics["data_position"] == 2.0
    assert 0.0 < metrics["reward/mean"] < 1.0  # informative rewards: the objective has a gradient
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"]), metrics


@pytest.mark.parametrize("name", MULTIMODAL_NAMES)
def test_every_multimodal_entry_trains_on_the_tiny_vlm_from_yaml(name, tmp_path):
    """Terms and recipes that read a perturbed image: 2 RL steps of the tiny LLaVA on coloured
    squares, the perturbed forward blackening image patches (tests/train/vision_cases.py)."""
    metrics = _fit(tmp_path, {"objective": _yaml_objective(name), **VLM_MODEL}, data=VLM_DATA)
    assert metrics["phase"] == 1.0 and metrics["data_position"] == 2.0
    assert 0.0 < metrics["reward/mean"] < 1.0
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"]), metrics


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_every_registered_transform_trains_from_yaml(transform, tmp_path):
    spec = [{transform: TRANSFORM_ARGS.get(transform, {})}]
    metrics = _fit(tmp_path, {"objective": "grpo", "transforms": spec, **TRANSFORM_MODEL.get(transform, {})})
    assert metrics["phase"] == 1.0 and math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])


def test_every_required_input_has_a_provider():
    missing = {}
    for name, factory in TERM_FACTORIES.items():
        for slot in required_slots([factory()]):
            if slot not in PROVIDERS:
                missing.setdefault(slot, []).append(name)
    for name in PRESETS:
        for slot in required_slots(objective_for(name).terms):
            if slot not in PROVIDERS:
                missing.setdefault(slot, []).append(name)
    assert not missing, f"inputs no provider supplies: {missing}"


def test_every_batch_function_is_reachable_from_yaml():
    assert set(BATCH_FUNCTIONS) <= set(BATCH_FUNCTION_TRANSFORMS)
    assert set(BATCH_FUNCTION_TRANSFORMS.values()) <= set(TRANSFORMS)


def test_registry_count():
    assert len(REGISTRY) == len(NAMES) >= 91
