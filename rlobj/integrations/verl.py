r"""Register rlobj chains in verl by name: a policy loss and an advantage estimator.

:func:`register` puts a chain into verl's two registries (``register_policy_loss`` and
``register_adv_est`` of ``verl.trainer.ppo.core_algos``), so a verl YAML names it::

    # my_objectives.py, imported by verl through VERL_USE_EXTERNAL_MODULES=my_objectives
    from rlobj import grpo, lp_reg
    from rlobj.integrations.verl import register
    register("rlobj_grpo", grpo)

    # then: algorithm.adv_estimator=rlobj_grpo actor_rollout_ref.actor.policy_loss.loss_mode=rlobj_grpo

* The **advantage estimator** runs the chain's batch-stage terms on verl's
  ``token_level_rewards`` (as rlobj ``token_rewards``: a sequence's reward is their sum, and
  token returns are their sums to go), grouped by verl's ``index`` (the prompt uid), and returns
  ``(advantages, advantages)`` as verl's outcome estimators do.
* The **policy loss** runs the loss-stage terms on verl's ``log_prob`` / ``old_log_prob`` /
  ``advantages`` / ``response_mask`` with a :class:`~rlobj.algebra.state.Normalizer` from verl's
  global batch counts (``config.global_batch_info``: ``batch_num_tokens`` -> ``tokens``,
  ``global_batch_size`` -> ``seqs``, ``dp_size`` -> ``ranks``; local counts when verl gives none).
  The chain's own aggregation wins; a chain without one follows verl's ``loss_agg_mode``
  (:func:`aggregation_for`). Returns ``(loss, metrics)`` with metrics as ``rlobj/<name>`` floats.

Warning:
    verl's ``rollout_is_weights`` (rollout correction) are refused by the rlobj loss: use
    rlobj's own corrections (``truncated_is``, ``masked_is``) in the chain instead. Terms that
    need the vocabulary (``forward_kl``, ``lp_reg``'s proxy) or extras verl does not pass to a
    policy loss cannot run here; :func:`register` refuses them when it is called.
"""

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from rlobj.algebra.aggregation import (
    Aggregation,
    constant_normalizer,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
)
from rlobj.algebra.objective import Objective
from rlobj.algebra.state import Normalizer, State
from rlobj.integrations._shared import as_objective, batch_state, slots_read
from rlobj.ops.errors import RlobjInputError

__all__ = ["register", "policy_loss_fn", "advantage_fn", "aggregation_for", "LOSS_AGG_MODES"]

#: verl's ``loss_agg_mode`` values (verl 0.9 ``agg_loss``) that :func:`aggregation_for` maps.
LOSS_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-sum-norm",
                  "seq-mean-token-mean")
#: Slots a verl policy loss can fill (anything else a loss-stage term reads is refused).
_POLICY_SLOTS = frozenset({"logp", "logp_old", "advantages", "mask", "aggregation"})


def aggregation_for(loss_agg_mode: str, horizon: int, loss_scale_factor: float | None = None) -> Aggregation:
    r"""The rlobj aggregation equal to verl's ``loss_agg_mode`` (verl 0.9 ``agg_loss``).

    ``token-mean`` -> ``token_mean``; ``token-sum`` -> ``constant_normalizer(1, per_sequence=False)``
    (the plain sum, times the data-parallel size as verl does); ``seq-mean-token-sum`` ->
    ``seq_mean_token_sum``; ``seq-mean-token-sum-norm`` -> ``constant_normalizer(L)`` with
    $L$ = ``loss_scale_factor`` or the padded response length ``horizon`` (verl divides by
    $N_\text{seq} L$); ``seq-mean-token-mean`` -> ``seq_mean_token_mean``.
    """
    if loss_agg_mode == "token-mean":
        return token_mean()
    if loss_agg_mode == "token-sum":
        return constant_normalizer(max_tokens=1.0, per_sequence=False)
    if loss_agg_mode == "seq-mean-token-sum":
        return seq_mean_token_sum()
    if loss_agg_mode == "seq-mean-token-sum-norm":
        return constant_normalizer(max_tokens=float(loss_scale_factor or horizon), per_sequence=True)
    if loss_agg_mode == "seq-mean-token-mean":
        return seq_mean_token_mean()
    raise RlobjInputError(f"loss_agg_mode: expected one of {LOSS_AGG_MODES}, got {loss_agg_mode!r}")


def _normalizer(info: Mapping, mask: Tensor) -> Normalizer:
    local = Normalizer.from_masks([mask], all_reduce=False)
    tokens, seqs = info.get("batch_num_tokens"), info.get("global_batch_size")
    return Normalizer(tokens=float(local.tokens if tokens is None else tokens),
                      seqs=float(local.seqs if seqs is None else seqs), ranks=int(info.get("dp_size", 1) or 1))


def _has_aggregation(objective: Objective) -> bool:
    return any(isinstance(term, Aggregation) for term in objective.chain.terms)


def policy_loss_fn(objective):
    """A verl policy-loss function (verl's ``PolicyLossFn`` signature) running ``objective``'s loss stage."""
    objective = as_objective(objective, "policy_loss_fn")
    extra = {slot for slot in slots_read(objective, "loss") if not slot.startswith("part:")} - _POLICY_SLOTS
    if extra:
        raise RlobjInputError(f"policy_loss_fn: the chain's loss terms read {sorted(extra)}, which a verl "
                              f"policy loss does not receive (it gets log_prob, old_log_prob, advantages, "
                              f"response_mask)")
    own_aggregation = _has_aggregation(objective)

    def rlobj_policy_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
                          config=None, rollout_is_weights=None):
        if rollout_is_weights is not None:
            raise RlobjInputError("rollout_is_weights: verl's rollout correction is not applied by an rlobj "
                                  "policy loss; put truncated_is / masked_is in the chain instead")
        info = dict(getattr(config, "global_batch_info", None) or {}) if config is not None else {}
        chosen = objective
        if not own_aggregation:
            chosen = Objective(objective.chain >> aggregation_for(
                loss_agg_mode, response_mask.shape[-1], info.get("loss_scale_factor")))
        mask = response_mask.bool()
        state = State.from_batch(logp=log_prob, logp_old=old_log_prob, advantages=advantages, mask=mask)
        out = chosen.loss(state, normalizer=_normalizer(info, mask))
        return out.loss, {f"rlobj/{name}": float(value) for name, value in out.metrics.items()}

    return rlobj_policy_loss


def _group_ids(index, device) -> Tensor:
    ids = {}
    return torch.tensor([ids.setdefault(key, len(ids)) for key in np.asarray(index).tolist()],
                        dtype=torch.long, device=device)


def advantage_fn(objective):
    """A verl advantage estimator running ``objective``'s batch stage (see the module)."""
    objective = as_objective(objective, "advantage_fn")

    def rlobj_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
        mask = response_mask.bool()
        group_ids = None if index is None else _group_ids(index, mask.device)
        state = batch_state(objective, mask=mask, token_rewards=token_level_rewards, group_ids=group_ids,
                            dtype=token_level_rewards.dtype)
        if state.advantages is None:
            raise RlobjInputError("advantage_fn: the chain wrote no advantages (add an advantage term, e.g. "
                                  "group_zscore())")
        advantages = torch.where(mask, state.advantages, torch.zeros((), dtype=state.advantages.dtype))
        return advantages, advantages

    return rlobj_advantage


def register(name: str, objective, *, policy_loss: bool = True, advantage: bool = True) -> None:
    """Register ``objective`` in verl as policy loss ``name`` and/or advantage estimator ``name``.

    Args:
        name: the name a verl YAML uses (``policy_loss.loss_mode`` / ``algorithm.adv_estimator``).
        objective: an rlobj term, chain or :class:`~rlobj.algebra.objective.Objective`.
        policy_loss: register the loss stage with ``register_policy_loss``.
        advantage: register the batch stage with ``register_adv_est``.
    """
    from verl.trainer.ppo import core_algos

    objective = as_objective(objective, "register")
    if not isinstance(name, str) or not name:
        raise RlobjInputError(f"register: name must be a non-empty string, got {name!r}")
    if not (policy_loss or advantage):
        raise RlobjInputError("register: nothing to register (policy_loss and advantage are both False)")
    if policy_loss:
        core_algos.register_policy_loss(name)(policy_loss_fn(objective))
    if advantage:
        core_algos.register_adv_est(name)(advantage_fn(objective))
