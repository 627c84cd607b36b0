"""Layer 3: paper recipes, each a one-line chain of primitive terms."""

from rlobj.presets.papers import cispo, dapo, dr_grpo, gmpo, grpo, gspo, reinforce_pp, rloo, sapo

__all__ = ["cispo", "dapo", "dr_grpo", "gmpo", "grpo", "gspo", "reinforce_pp", "rloo", "sapo"]

# seed methods II
from rlobj.presets.papers import one_shot_rlvr  # noqa: E402

__all__ += ["one_shot_rlvr"]

# faithful recipes (issue 14): the whole objective of each paper with its reference settings
from rlobj.presets.recipes import (  # noqa: E402
    RECIPES,  # noqa: F401 - the table of recipes (rlobj.presets.recipes.RECIPES)
    clip_cov_recipe,
    dapo_recipe,
    dph_rl_recipe,
    forking_tokens_recipe,
    kl_cov_recipe,
    lp_reg_recipe,
    one_shot_rlvr_recipe,
    pacs_recipe,
    papo_recipe,
    riskpo_recipe,
    siren_recipe,
    ulorl_recipe,
    vppo_recipe,
    w_reinforce_recipe,
)

__all__ += [
    "clip_cov_recipe",
    "dapo_recipe",
    "dph_rl_recipe",
    "forking_tokens_recipe",
    "kl_cov_recipe",
    "lp_reg_recipe",
    "one_shot_rlvr_recipe",
    "pacs_recipe",
    "papo_recipe",
    "riskpo_recipe",
    "siren_recipe",
    "ulorl_recipe",
    "vppo_recipe",
    "w_reinforce_recipe",
]
