"""Repository-level pytest configuration.

``rlobj/rollout/vllm_ead.py`` subclasses vLLM's logits-processor base class at import time, so
it can only be imported where vLLM is installed; it holds no doctests and is exercised by
``tests/vllm`` in the real-vLLM step (``scripts/test_vllm.sh``). The doctest collection of the
main suite skips it.
"""

collect_ignore = ["rlobj/rollout/vllm_ead.py"]

# ``rlobj/integrations/trl.py`` imports TRL at import time (a GRPOTrainer subclass); TRL lives in
# the peers' environment (``scripts/test_peers.sh``, which runs ``tests/integrations``), not in
# the main one, so the main suite's doctest collection skips it where TRL is absent.
try:
    import trl  # noqa: F401
except ImportError:
    collect_ignore.append("rlobj/integrations/trl.py")
