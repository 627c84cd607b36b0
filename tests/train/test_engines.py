"""The run's generation engine (rlobj/train/engines.py), the HF path: an engine on the policy module
itself (nothing to sync), with the tokenizer's end and padding tokens and the configured engine
arguments. The vLLM path needs the real vLLM: tests/vllm/test_vllm_training.py builds it."""

import pytest

from rlobj.rollout import HFEngine
from rlobj.train.engines import build_engine

from ._helpers import tiny_module


def test_hf_engine_samples_from_the_policy_module_with_the_tokenizers_ids():
    module = tiny_module()
    engine = build_engine(module)
    assert isinstance(engine, HFEngine) and engine.model is module.policy
    assert engine.eos_token_ids == (module.tokenizer.eos_token_id,)
    pad = module.tokenizer.pad_token_id
    assert engine.pad_token_id == (pad if pad is not None else module.tokenizer.eos_token_id)
    assert engine.processor is None and engine.suppress_token_ids == ()  # text policy: no image tokens


def test_engine_args_reach_the_engine_and_bad_ones_are_named():
    engine = build_engine(tiny_module(rollout={"engine_args": {"max_batch_size": 3}}))
    assert engine.max_batch_size == 3
    with pytest.raises(ValueError, match="HFEngine: max_batch_size must be an int >= 1 or None, got 0"):
        build_engine(tiny_module(rollout={"engine_args": {"max_batch_size": 0}}))
