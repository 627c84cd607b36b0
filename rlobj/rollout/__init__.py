"""Generation engines (HF ``generate``-style loop, vLLM), the rollout batch they return,
sampling schedules and rollout strategies (EAD, LATR, BroRL, UloRL segments), and batch
filters (DAPO dynamic sampling, SELF, DARS, RoRecomp, PROF, RLPR std filter).

Names are imported lazily (PEP 562), so ``import rlobj.rollout.filters`` does not pull in
transformers or the engines.
"""

import importlib

#: public name -> the submodule that defines it
_HOMES = {
    "build_tiny_qwen2": "rlobj.rollout.tiny",
    "compensation_step": "rlobj.rollout.filters",
    "CompensationStep": "rlobj.rollout.filters",
    "ConstantTemperature": "rlobj.rollout.schedules",
    "dars_cumulative_advantage": "rlobj.rollout.filters",
    "dars_extra_rollouts": "rlobj.rollout.filters",
    "dynamic_sampling": "rlobj.rollout.filters",
    "DynamicSamplingResult": "rlobj.rollout.filters",
    "ead_temperatures": "rlobj.rollout.schedules",
    "EADSchedule": "rlobj.rollout.schedules",
    "Engine": "rlobj.rollout.engine",
    "first_groups": "rlobj.rollout.filters",
    "generate_broad": "rlobj.rollout.broad",
    "HFEngine": "rlobj.rollout.hf_engine",
    "informative_groups": "rlobj.rollout.filters",
    "LATRConfig": "rlobj.rollout.tree",
    "LATREngine": "rlobj.rollout.tree",
    "left_pad_prompts": "rlobj.rollout.engine",
    "right_pad_responses": "rlobj.rollout.engine",
    "MixSchedule": "rlobj.rollout.tree",
    "positions_from_mask": "rlobj.rollout.logprobs",
    "prof_balanced_counts": "rlobj.rollout.filters",
    "prof_filter": "rlobj.rollout.filters",
    "ProfResult": "rlobj.rollout.filters",
    "resolve_model_path": "rlobj.rollout.hub",
    "RolloutBatch": "rlobj.rollout.engine",
    "rorecomp_priority": "rlobj.rollout.filters",
    "sampling_logprobs": "rlobj.rollout.engine",
    "SamplingConfig": "rlobj.rollout.engine",
    "save_model_directory": "rlobj.rollout.tiny",
    "scheduled_sequence_logprobs": "rlobj.rollout.schedules",
    "SegmentRollout": "rlobj.rollout.segments",
    "self_curation": "rlobj.rollout.filters",
    "sequence_logprobs": "rlobj.rollout.logprobs",
    "std_filter": "rlobj.rollout.filters",
    "StdFilterResult": "rlobj.rollout.filters",
    "TemperatureSchedule": "rlobj.rollout.schedules",
    "TreeInfo": "rlobj.rollout.tree",
    "VLLMEngine": "rlobj.rollout.vllm_engine",
}

__all__ = sorted(_HOMES, key=str.lower)


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
