"""Layer 3: paper recipes, each a one-line chain of primitive terms.

The package re-exports the presets of :mod:`~rlobj.presets.papers` and the faithful recipes
(issue 14: the whole objective of each paper with its reference settings) of
:mod:`~rlobj.presets.recipes`, :mod:`~rlobj.presets.seed_recipes` (the seed papers of issue 5
and the noisy-verifier corrections) and :mod:`~rlobj.presets.seed_recipes_2` (VSRM and PPR, whose
authors' code was found later): every ``*_recipe`` chain of their ``__all__``. The recipes of the
continuations join the one table, :data:`rlobj.presets.recipes.RECIPES`.
"""

from rlobj.presets import recipes, seed_recipes, seed_recipes_2
from rlobj.presets.papers import cispo, dapo, dr_grpo, gmpo, grpo, gspo, reinforce_pp, rloo, sapo
from rlobj.presets.recipes import *  # noqa: F403
from rlobj.presets.recipes import RECIPES
from rlobj.presets.seed_recipes import *  # noqa: F403
from rlobj.presets.seed_recipes import SEED_RECIPES
from rlobj.presets.seed_recipes_2 import *  # noqa: F403
from rlobj.presets.seed_recipes_2 import SEED_RECIPES_2

__all__ = ["cispo", "dapo", "dr_grpo", "gmpo", "grpo", "gspo", "reinforce_pp", "rloo", "sapo"]

# seed methods II
from rlobj.presets.papers import one_shot_rlvr  # noqa: E402

__all__ += ["one_shot_rlvr"]

RECIPES.update({recipe.name: recipe for recipe in (*SEED_RECIPES, *SEED_RECIPES_2)})
__all__ += [name for module in (recipes, seed_recipes, seed_recipes_2)
            for name in sorted(module.__all__) if name.endswith("_recipe")]
