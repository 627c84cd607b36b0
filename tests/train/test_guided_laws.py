"""``guide_recipe`` through the trainer on a batch that has guided rows.

The registry-wide law test (test_pipeline_laws.py) runs ``guide_recipe`` on batches whose records
carry no hint, so no row is guided and its off-policy shaping never runs. Here two rows of every
group were sampled with a hint (as :class:`GuidedSampler` marks them), :class:`HintedContext`
computes their hint-conditioned old log-probs, and one RL update (SGD, lr 1: the weight change is
minus the gradient; two PPO epochs) runs with micro-batches of 25, 13 and 7 rows (guided rows split across them):

* the law-abiding form (``hint_clip_ratio(scope="batch")``, the term's default: the 0.9-quantile
  of the guided ratios is a mini-batch statistic) gives the same weights within 1e-6;
* the recipe as written (``scope="micro_batch"``, the reference's quantile per call) does not:
  its docstring says the gradient then depends on the micro-batch size.
"""

import dataclasses

import torch

from rlobj.presets.recipes import RECIPES
from rlobj.terms.surrogates import hint_clip_ratio

from .pipeline_cases import batch_for, module_for, objective_for

TOLERANCE = 1e-6


def guided_batch(module):
    batch = batch_for(module, groups=5, group_size=5)
    records = [{**record, "hint": " the answer is"} for record in batch.records]
    guided = torch.zeros(len(records), dtype=torch.bool)
    for g in batch.rollout.group_ids.unique().tolist():
        rows = (batch.rollout.group_ids == g).nonzero().flatten()
        guided[rows[[0, 3]]] = True
    return dataclasses.replace(batch, records=records, extras={**batch.extras, "guided": guided})


def weights_after(objective, micro, ppo_epochs=1):
    module = module_for("guide_recipe", objective=objective,
                        update=dict(micro_batch_size=micro, ppo_epochs=ppo_epochs))
    initial = {n: p.detach().clone() for n, p in module.policy.named_parameters()}
    metrics = module.update_on_batch(guided_batch(module), module.context(0))
    after = {n: p.detach().clone() for n, p in module.policy.named_parameters()}
    assert max(float((after[k] - initial[k]).abs().max()) for k in after) > 0, "the update did not move the weights"
    return after, metrics


def gap(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_law_abiding_guide_recipe_obeys_the_micro_batch_law_with_guided_rows():
    ppo_epochs = 2  # the statistic is taken again after the first optimizer step
    objective = objective_for("guide_recipe")  # the recipe with scope="batch"
    assert [t.scope for t in objective.terms if isinstance(t, hint_clip_ratio)] == ["batch"]
    whole, metrics = weights_after(objective, None, ppo_epochs)
    assert any(k.endswith("guide/guided_frac") and v > 0 for k, v in metrics.items()), metrics
    for micro in (13, 7):
        assert gap(weights_after(objective, micro, ppo_epochs)[0], whole) <= TOLERANCE, micro
    # the guided rows' shaping is exercised: without it the same batch moves the weights elsewhere
    unshaped = objective.replace(hint_clip_ratio, hint_clip_ratio(eps_low=0.2, eps_high=0.2))
    assert gap(weights_after(unshaped, None, ppo_epochs)[0], whole) > 1e-4


def test_guide_recipe_as_written_depends_on_the_micro_batch_size_with_guided_rows():
    objective = RECIPES["guide_recipe"].objective  # the reference's per-call quantile
    assert [t.scope for t in objective.terms if isinstance(t, hint_clip_ratio)] == ["micro_batch"]
    whole, _ = weights_after(objective, None)
    assert gap(weights_after(objective, 7)[0], whole) > TOLERANCE
