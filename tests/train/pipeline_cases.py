"""Registry-wide trainer checks: one runnable training objective per registered name, and a rollout
batch (tiny model, uneven lengths, records) that every provider can read."""

import dataclasses

import torch
from registry_cases import NAMES, complete, defaults

from rlobj.algebra.term import as_terms, chain
from rlobj.presets.recipes import RECIPES
from rlobj.train.stages import Batch, Score

from ._helpers import synthetic_rollout, tiny_module

#: Terms whose full-vocabulary reads make the law check slow: checked with a smaller batch.
ANSWERS = ["3", "5", "7", "9"]


def law_abiding(objective):
    """``objective`` with every term that selects per micro-batch as its reference code does
    (``scope="micro_batch"``) moved to the mini-batch scope (the terms' law-abiding default)."""
    terms = [dataclasses.replace(t, scope="batch") if getattr(t, "scope", None) == "micro_batch" else t
             for t in as_terms(objective)]
    return chain(*terms, name=getattr(objective, "name", None))


def objective_for(name: str, reference_scope: bool = False):
    """The registered entry composed into a chain that trains (presets as they are). A faithful
    recipe that uses a reference's per-micro-batch scope on purpose (its gradient depends on the
    micro-batch size, as its docstring says) is checked by the registry-wide law tests in its
    law-abiding form, unless ``reference_scope``; tests/train/test_reference_providers.py shows
    the dependence of the recipe as written."""
    objective = complete(defaults(name))
    return objective if reference_scope or name not in RECIPES else law_abiding(objective)


def needs_vocab(name: str) -> bool:
    return any("vocab" in t.slots_read() for t in as_terms(objective_for(name)))


def module_for(name: str, **overrides):
    kwargs = dict(objective=objective_for(name), policy={"dtype": "float64"})
    kwargs.update(overrides)
    return tiny_module(**kwargs)


def batch_for(module, groups: int = 4, group_size: int = 4, seed: int = 0) -> Batch:
    """A scored Batch: synthetic rollout (uneven lengths), one arithmetic record per group."""
    rollout = synthetic_rollout(module, groups=groups, group_size=group_size, seed=seed)
    records = [{"prompt": f"{g}+{g}=", "answer": ANSWERS[g % len(ANSWERS)], "completion": ANSWERS[g % len(ANSWERS)]}
               for g in range(groups)]
    # successes per group 1, 2, 0, 3, 1, ... (mixed and flat groups; a lone success keeps pass@k
    # advantages non-zero), at seeded positions
    generator = torch.Generator().manual_seed(seed + 1)
    rewards = torch.zeros(len(rollout))
    for g in range(groups):
        rows = (rollout.group_ids == g).nonzero().squeeze(-1)
        hits = [1, 2, 0, 3][g % 4] % (group_size + 1)
        rewards[rows[torch.randperm(len(rows), generator=generator)[:hits]]] = 1.0
    return Batch(rollout=rollout, records=[records[g] for g in rollout.group_ids.tolist()],
                 scores=[Score(float(r)) for r in rewards], extras=turn_extras(rollout, seed))


def turn_extras(rollout, seed: int = 0) -> dict:
    """What the multi-turn sampler records, for a single-turn rollout split into up to 3 turns:
    ``turn_ids`` and ``turn_rewards`` (seeded rewards in {0, 1, 2} on each turn's last token)."""
    mask = rollout.response_mask
    generator = torch.Generator().manual_seed(seed + 7)
    lengths = mask.sum(-1, keepdim=True).clamp(min=1)
    turns = torch.randint(1, 4, (mask.shape[0], 1), generator=generator)
    turn_ids = torch.where(mask, torch.arange(mask.shape[1])[None, :] * turns // lengths, torch.full((), -1))
    last = mask & (torch.cat([turn_ids[:, 1:], torch.full((mask.shape[0], 1), -1)], 1) != turn_ids)
    rewards = torch.where(last, torch.randint(0, 3, mask.shape, generator=generator).float(), torch.zeros(()))
    return {"turn_ids": turn_ids, "turn_rewards": rewards}


__all__ = ["NAMES", "objective_for", "module_for", "batch_for", "needs_vocab", "torch"]


def weights_after(name: str, micro, ppo_epochs: int = 1, mini=None, device: str = "cpu", **overrides) -> dict:
    """Weights after one RL update (SGD, lr 1: the change is minus the gradient) of ``name``'s objective."""
    module = module_for(name, update=dict(micro_batch_size=micro, ppo_epochs=ppo_epochs, mini_batch_size=mini), **overrides)
    batch = batch_for(module, groups=5, group_size=5)
    module.policy.to(device)  # the update moves the rollout to the policy's device
    module.update_on_batch(batch, module.context(0))
    return {n: p.detach().cpu().clone() for n, p in module.policy.named_parameters()}


def law_gaps(name: str, ppo_epochs: int = 1, sizes=(None, 13, 7), device: str = "cpu") -> list[float]:
    """Max |weights(K) - weights(K=1)| over parameters for micro-batch sizes ``sizes`` (25 rows in
    5 groups of 5: K = 1, 2, 4 micro-batches, groups split across them). Raises when the update
    does not move the weights (the check would be vacuous)."""
    reference = weights_after(name, sizes[0], ppo_epochs, device=device)
    initial = module_for(name).policy.state_dict()
    if max(float((reference[k] - initial[k]).abs().max()) for k in reference) == 0:
        raise AssertionError(f"{name}: the update did not move the weights; the law check would be vacuous")
    gaps = [0.0]
    for micro in sizes[1:]:
        other = weights_after(name, micro, ppo_epochs, device=device)
        gaps.append(max(float((other[k] - reference[k]).abs().max()) for k in reference))
    return gaps
