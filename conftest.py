"""Repository-level pytest configuration.

``rlobj/rollout/vllm_ead.py`` subclasses vLLM's logits-processor base class at import time, so
it can only be imported where vLLM is installed; it holds no doctests and is exercised by
``tests/vllm`` in the real-vLLM step (``scripts/test_vllm.sh``). The doctest collection of the
main suite skips it.
"""

collect_ignore = ["rlobj/rollout/vllm_ead.py"]
