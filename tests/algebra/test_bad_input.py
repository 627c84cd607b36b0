"""Bad input gets a clear error naming the field, the expected and the received value."""

import pytest
import torch
from batches import make_batch

import rlobj
from rlobj import Objective, RlobjInputError, State, grpo
from rlobj.registry import build_objective, build_term


def fields(**overrides):
    batch = make_batch([2, 2], [3, 2, 3, 1], seed=1)
    batch.update(overrides)
    return batch


def test_mismatched_shapes_name_the_field_and_both_shapes():
    with pytest.raises(RlobjInputError, match=r"logp_old: expected shape \(batch seq\) = \(4, 3\), got \(4, 2\)"):
        State.from_batch(**fields(logp_old=torch.zeros(4, 2)))
    with pytest.raises(RlobjInputError, match=r"rewards: expected shape \(batch\) = \(4,\), got \(3,\)"):
        State.from_batch(**fields(rewards=torch.zeros(3)))
    with pytest.raises(RlobjInputError, match=r"mask: expected shape"):
        State.from_batch(**fields(mask=torch.ones(4, 4, dtype=torch.bool)))
    with pytest.raises(RlobjInputError, match="logp: expected a float tensor"):
        State.from_batch(**fields(logp=torch.zeros(4)))


@pytest.mark.parametrize("name", ["logp", "logp_old", "logp_ref", "entropy"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_at_valid_tokens_is_refused(name, bad):
    batch = fields()
    value = batch[name].clone()
    value[1, 0] = bad
    batch[name] = value
    with pytest.raises(RlobjInputError, match=rf"{name}: expected finite values, got {bad} at index \(1, 0\)"):
        State.from_batch(**batch)


def test_nan_in_padding_is_fine():
    batch = fields()
    batch["logp"] = batch["logp"].clone()
    batch["logp"][3, 2] = float("nan")  # row 3 has one valid token
    assert torch.isfinite(Objective(grpo)(**batch).loss)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_rewards_are_refused(bad):
    with pytest.raises(RlobjInputError, match="rewards: expected finite values"):
        State.from_batch(**fields(rewards=torch.tensor([1.0, bad, 0.0, 1.0])))


def test_positive_log_probabilities_are_refused():
    batch = fields()
    batch["logp_old"] = batch["logp_old"].clone()
    batch["logp_old"][0, 0] = 0.5
    with pytest.raises(RlobjInputError, match="logp_old: log-probabilities must be <= 0"):
        State.from_batch(**batch)


def test_non_boolean_mask_values_are_refused():
    mask = torch.ones(4, 3)
    mask[0, 0] = 2
    with pytest.raises(RlobjInputError, match="mask: expected bool or 0/1"):
        State.from_batch(**fields(mask=mask))


def test_integer_mask_is_accepted():
    batch = fields()
    out_int = Objective(grpo)(**{**batch, "mask": batch["mask"].long()})
    out_bool = Objective(grpo)(**batch)
    torch.testing.assert_close(out_int.loss, out_bool.loss)


def test_float_group_ids_are_refused():
    with pytest.raises(RlobjInputError, match="group_ids: expected an integer tensor"):
        State.from_batch(**fields(group_ids=torch.tensor([0.0, 0.0, 1.0, 1.0])))


def test_unknown_batch_field_is_refused():
    with pytest.raises(RlobjInputError, match=r"unknown batch field\(s\) \['logits_old'\]"):
        State.from_batch(**fields(logits_old=torch.zeros(4, 3)))


def test_missing_field_names_the_term_and_the_fix():
    batch = fields()
    del batch["rewards"]
    with pytest.raises(RlobjInputError, match="group_zscore reads 'rewards'.*Pass rewards="):
        Objective(grpo)(**batch)
    batch = fields()
    del batch["logp_old"]
    with pytest.raises(RlobjInputError, match="clip_ratio reads 'logp_old'"):
        Objective(grpo)(**batch)
    with pytest.raises(RlobjInputError, match="clip_ratio reads 'advantages'.*group_zscore"):
        rlobj.clip_ratio().loss(**fields())


def test_singleton_group_where_two_are_needed():
    batch = fields(group_ids=torch.tensor([0, 0, 1, 2]))
    with pytest.raises(RlobjInputError, match=r"group_ids: group_zscore needs at least 2 responses per group, but groups \[1, 2\]"):
        Objective(grpo)(**batch)
    with pytest.raises(RlobjInputError, match="leave_one_out needs at least 2"):
        Objective(rlobj.rloo)(**batch)


def test_all_false_mask_row_where_a_sequence_level_term_needs_tokens():
    batch = make_batch([2, 2], [3, 3, 3, 3], seed=1)
    batch["mask"] = batch["mask"].clone()
    batch["mask"][2] = False
    with pytest.raises(RlobjInputError, match=r"mask: sequence_clip .* rows \[2\] of the mask are all False"):
        Objective(rlobj.gspo)(**batch)
    # rows dropped on purpose (DAPO's zero-variance groups) are not an error
    dropped = rlobj.drop_zero_variance_groups() >> rlobj.gspo
    batch = make_batch([2, 2], [3, 3, 3, 3], seed=1)
    batch["rewards"] = torch.tensor([1.0, 1.0, 0.0, 1.0])
    assert torch.isfinite(Objective(dropped)(**batch).loss)


def test_all_false_mask_everywhere_is_refused():
    with pytest.raises(RlobjInputError, match="mask: the batch has no valid token"):
        Objective(grpo)(**fields(mask=torch.zeros(4, 3, dtype=torch.bool)))


def test_unknown_term_name_in_a_config_suggests_the_closest():
    with pytest.raises(RlobjInputError, match="unknown term 'grpoo'. Did you mean 'grpo'"):
        build_objective(["grpoo"])
    with pytest.raises(RlobjInputError, match=r"clip_ratio: unknown argument\(s\) \['epsilon_high'\]"):
        build_objective([{"clip_ratio": {"epsilon_high": 0.28}}])
    with pytest.raises(RlobjInputError, match=r"objective\[1\]: expected a term name"):
        build_objective(["group_zscore", 3])
    with pytest.raises(RlobjInputError, match="preset 'grpo' takes no arguments"):
        build_term("grpo", eps=0.1)


@pytest.mark.parametrize("build, message", [
    (lambda: rlobj.clip_ratio(eps_low=-0.1), "clip_ratio.eps_low: expected >= 0.0, got -0.1"),
    (lambda: rlobj.clip_ratio(dual_clip=0.5), "clip_ratio.dual_clip: expected > 1.0"),
    (lambda: rlobj.group_zscore(singleton="maybe"), "group_zscore.singleton"),
    (lambda: rlobj.kl_penalty(estimator="k4"), "kl_penalty.estimator"),
    (lambda: rlobj.kl_penalty(placement="advantage"), "kl_penalty.placement"),
    (lambda: rlobj.top_entropy_mask(rho=0.0), "top_entropy_mask.rho"),
    (lambda: rlobj.constant_normalizer(max_tokens=0), "constant_normalizer.max_tokens"),
    (lambda: rlobj.overlong_penalty(max_length=10, buffer=20), "overlong_penalty: buffer 20"),
])
def test_bad_hyperparameters_fail_when_the_term_is_built(build, message):
    with pytest.raises(RlobjInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()
