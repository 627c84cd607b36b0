"""Layer 3: paper recipes, each a one-line chain of primitive terms."""

from rlobj.presets.papers import cispo, dapo, dr_grpo, gmpo, grpo, gspo, reinforce_pp, rloo, sapo

__all__ = ["cispo", "dapo", "dr_grpo", "gmpo", "grpo", "gspo", "reinforce_pp", "rloo", "sapo"]

# seed methods II
from rlobj.presets.papers import one_shot_rlvr  # noqa: E402

__all__ += ["one_shot_rlvr"]
