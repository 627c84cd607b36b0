"""Orders that cannot work are refused when the chain is built, naming both terms and the fix."""

import pytest

import rlobj
from rlobj import (
    RlobjBuildError,
    clip_ratio,
    entropy_bonus,
    group_mean_baseline,
    group_zscore,
    k3_kl,
    kl_penalty,
    leave_one_out,
    overlong_penalty,
    seq_mean_token_mean,
    token_mean,
    top_entropy_mask,
    truncated_is,
)


def refused(build, *words):
    with pytest.raises(RlobjBuildError) as error:
        build()
    for word in words:
        assert word in str(error.value), str(error.value)
    return str(error.value)


def test_advantage_after_the_surrogate_is_refused():
    refused(lambda: clip_ratio() >> group_zscore(), "group_zscore", "clip_ratio", "Put group_zscore before clip_ratio")


def test_reward_shaping_after_the_advantage_is_refused():
    refused(lambda: group_zscore() >> overlong_penalty(), "overlong_penalty", "group_zscore", "rewards")


def test_two_advantage_estimators_are_refused():
    refused(lambda: group_zscore() >> leave_one_out(), "leave_one_out", "group_zscore", "replace")


def test_two_surrogates_are_refused():
    refused(lambda: rlobj.grpo >> rlobj.reinforce(), "reinforce", "clip_ratio")


def test_two_aggregations_are_refused():
    refused(lambda: rlobj.grpo >> token_mean(), "token_mean", "seq_mean_token_mean", "aggregation")


def test_modifier_before_the_surrogate_it_modifies_is_refused():
    refused(lambda: group_zscore() >> top_entropy_mask() >> clip_ratio(),
            "top_entropy_mask", "clip_ratio", "Put top_entropy_mask after clip_ratio")
    refused(lambda: group_zscore() >> truncated_is() >> clip_ratio(), "truncated_is", "clip_ratio")


def test_kl_in_reward_and_in_loss_against_the_same_policy_is_refused_unless_allowed():
    in_reward = kl_penalty(beta=0.01, estimator="k1", placement="reward")
    message = refused(lambda: in_reward >> group_zscore() >> clip_ratio() >> k3_kl(0.04),
                      "reward", "loss", "allow_reward_and_loss=True")
    assert "'ref'" in message
    allowed = in_reward >> group_zscore() >> clip_ratio() >> k3_kl(0.04, allow_reward_and_loss=True)
    assert len(allowed) == 4
    # against different policies: fine
    assert len(in_reward >> group_zscore() >> clip_ratio() >> k3_kl(0.04, against="init")) == 4
    # the preset REINFORCE++ already folds the KL into the reward
    refused(lambda: rlobj.reinforce_pp >> k3_kl(0.01), "kl_penalty")


def test_kl_in_reward_after_the_advantage_is_refused():
    refused(lambda: group_zscore() >> kl_penalty(placement="reward"), "kl_penalty", "token_rewards")


def test_refusal_does_not_depend_on_bracketing():
    a, b, c = clip_ratio(), entropy_bonus(), group_mean_baseline()
    refused(lambda: (a >> b) >> c, "group_mean_baseline")
    refused(lambda: a >> (b >> c), "group_mean_baseline")


def test_partial_chains_are_allowed_and_checked_when_run():
    """`lp_reg`-style modifiers may be written before their base exists in a sub-chain."""
    tail = truncated_is() >> k3_kl(0.1) >> seq_mean_token_mean()
    assert len(tail) == 3
    full = group_zscore() >> clip_ratio() >> tail
    assert len(full) == 5
    import torch
    with pytest.raises(rlobj.RlobjInputError, match="truncated_is modifies the loss part 'policy'"):
        tail.loss(logp=-torch.ones(2, 2), mask=torch.ones(2, 2, dtype=torch.bool),
                  logp_old=-torch.ones(2, 2), logp_ref=-torch.ones(2, 2),
                  extras={"logp_rollout": -torch.ones(2, 2)})


def test_non_terms_are_rejected():
    with pytest.raises(TypeError):
        clip_ratio() >> 3  # type: ignore[operator]
    with pytest.raises(RlobjBuildError, match="expected a Term"):
        rlobj.chain(clip_ratio(), "token_mean")  # type: ignore[arg-type]
