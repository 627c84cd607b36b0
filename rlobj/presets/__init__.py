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

# faithful recipes, continued (issue 14): the seed papers of issue 5 and the noisy-verifier corrections;
# their entries join the one table, rlobj.presets.recipes.RECIPES
from rlobj.presets.seed_recipes import (  # noqa: E402
    SEED_RECIPES,
    aepo_recipe,
    canon_recipe,
    co_reward_recipe,
    ghpo_recipe,
    guide_recipe,
    laser_recipe,
    noisy_rlvr_recipe,
    rl_plus_recipe,
    rlpr_recipe,
    sar_recipe,
    wirelessmath_recipe,
)

RECIPES.update({recipe.name: recipe for recipe in SEED_RECIPES})

__all__ += [
    "aepo_recipe",
    "canon_recipe",
    "co_reward_recipe",
    "ghpo_recipe",
    "guide_recipe",
    "laser_recipe",
    "noisy_rlvr_recipe",
    "rl_plus_recipe",
    "rlpr_recipe",
    "sar_recipe",
    "wirelessmath_recipe",
]

# faithful recipes, continued further (issue 14): VSRM and PPR, whose authors' code was found later
from rlobj.presets.seed_recipes_2 import SEED_RECIPES_2, ppr_recipe, vsrm_recipe  # noqa: E402

RECIPES.update({recipe.name: recipe for recipe in SEED_RECIPES_2})

__all__ += ["ppr_recipe", "vsrm_recipe"]
