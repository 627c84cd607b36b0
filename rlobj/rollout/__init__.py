"""Generation engines (HF ``generate``-style loop, vLLM) and the rollout batch they return."""

from rlobj.rollout.engine import (
    Engine,
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    sampling_logprobs,
)
from rlobj.rollout.hf_engine import HFEngine
from rlobj.rollout.logprobs import positions_from_mask, sequence_logprobs
from rlobj.rollout.tiny import build_tiny_qwen2, save_model_directory
from rlobj.rollout.vllm_engine import VLLMEngine  # vllm itself is imported lazily

__all__ = [
    "Engine",
    "HFEngine",
    "RolloutBatch",
    "SamplingConfig",
    "VLLMEngine",
    "build_tiny_qwen2",
    "left_pad_prompts",
    "positions_from_mask",
    "sampling_logprobs",
    "save_model_directory",
    "sequence_logprobs",
]
