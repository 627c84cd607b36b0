"""Repository-level pytest configuration: the environment switches and Hypothesis profiles.

Environment. Pytest imports this file before any test module or doctest imports ``rlobj``, so
every test runs with the same switches whatever the import order: runtime type and shape checks
on (``RLOBJ_TYPECHECK=1``, :mod:`rlobj.ops.typecheck`) and no network for Hugging Face libraries
(``HF_HUB_OFFLINE`` and friends). Test modules do not set them again
(``tests/test_environment.py`` checks both).

Hypothesis. Two profiles, chosen by ``HYPOTHESIS_PROFILE``: ``dev`` (the default: fast, for the
edit-test loop) and ``ci`` (more examples; ``scripts/test.sh`` selects it). Both turn off the
deadline (CPU timings on a shared machine vary), the example database and the too-slow health
check. A test that needs other settings (``derandomize``, fewer examples for an expensive body)
states only those.

``rlobj/rollout/vllm_ead.py`` subclasses vLLM's logits-processor base class at import time, so
it can only be imported where vLLM is installed; it holds no doctests and is exercised by
``tests/vllm`` in the real-vLLM step (``scripts/test_vllm.sh``). The doctest collection of the
main suite skips it.
"""

import os

ENVIRONMENT = {
    "RLOBJ_TYPECHECK": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
os.environ.update(ENVIRONMENT)

try:  # the CUDA check's environment (scripts/gpu_check.sh) may lack Hypothesis
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover
    settings = None

PROFILES = {"dev": 20, "ci": 50}  # max_examples of each profile
if settings is not None:
    for _name, _examples in PROFILES.items():
        settings.register_profile(_name, max_examples=_examples, deadline=None, database=None,
                                  suppress_health_check=[HealthCheck.too_slow])
    _profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    if _profile not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE: expected one of {sorted(PROFILES)}, got {_profile!r}")
    settings.load_profile(_profile)

collect_ignore = ["rlobj/rollout/vllm_ead.py"]

# ``rlobj/integrations/trl.py`` imports TRL at import time (a GRPOTrainer subclass); TRL lives in
# the peers' environment (``scripts/test_peers.sh``, which runs ``tests/integrations``), not in
# the main one, so the main suite's doctest collection skips it where TRL is absent.
try:
    import trl  # noqa: F401
except ImportError:
    collect_ignore.append("rlobj/integrations/trl.py")
