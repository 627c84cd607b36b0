"""Generation engines (HF ``generate``-style loop, vLLM), the rollout batch they return, and
sampling schedules / rollout strategies (EAD, LATR, BroRL, UloRL segments)."""

from rlobj.rollout.broad import BroadResult, broad_backward, generate_broad
from rlobj.rollout.engine import (
    Engine,
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    sampling_logprobs,
)
from rlobj.rollout.hf_engine import HFEngine
from rlobj.rollout.logprobs import positions_from_mask, sequence_logprobs
from rlobj.rollout.schedules import (
    ConstantTemperature,
    EADSchedule,
    TemperatureSchedule,
    ead_temperatures,
    scheduled_sequence_logprobs,
)
from rlobj.rollout.segments import SegmentRollout
from rlobj.rollout.tiny import build_tiny_qwen2, save_model_directory
from rlobj.rollout.tree import LATRConfig, LATREngine, MixSchedule, TreeInfo
from rlobj.rollout.vllm_engine import VLLMEngine  # vllm itself is imported lazily

__all__ = [
    "BroadResult",
    "ConstantTemperature",
    "EADSchedule",
    "Engine",
    "HFEngine",
    "LATRConfig",
    "LATREngine",
    "MixSchedule",
    "RolloutBatch",
    "SamplingConfig",
    "SegmentRollout",
    "TemperatureSchedule",
    "TreeInfo",
    "VLLMEngine",
    "broad_backward",
    "build_tiny_qwen2",
    "ead_temperatures",
    "generate_broad",
    "left_pad_prompts",
    "positions_from_mask",
    "sampling_logprobs",
    "save_model_directory",
    "scheduled_sequence_logprobs",
    "sequence_logprobs",
]
