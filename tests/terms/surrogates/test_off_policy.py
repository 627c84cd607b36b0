"""Guide's hint-conditioned ratio and RL-PLUS's MIS + exploration surrogate
(rlobj/terms/surrogates/off_policy.py): hand values with the arithmetic in comments, plain-loop
references on Hypothesis batches, gradients (analytic; no gradient through C), properties from the
specs, recipes with grpo / dr_grpo / dapo, bad input.
"""

import math

import pytest
import torch
from batches import batches, leaf, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import Objective, clip_ratio, dapo, dr_grpo, group_zscore, grpo, token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.surrogates import hint_clip_ratio, mis_exploration_pg

F64 = torch.float64
SETTINGS = settings(max_examples=40)
PRESETS = pytest.mark.parametrize("preset", [grpo, dr_grpo, dapo], ids=["grpo", "dr_grpo", "dapo"])


def state_of(logp, logp_old, advantages, extras, mask=None):
    logp = torch.tensor(logp, dtype=F64)
    return State.from_batch(logp=logp, logp_old=torch.tensor(logp_old, dtype=F64),
                            advantages=torch.tensor(advantages, dtype=F64),
                            mask=torch.ones_like(logp, dtype=torch.bool) if mask is None else torch.tensor(mask),
                            extras=extras)


def with_random_extras(fields, seed):
    g = torch.Generator().manual_seed(seed)
    shape = fields["mask"].shape
    fields = dict(fields)
    fields["extras"] = {**fields["extras"], "guided": torch.rand(shape[0], generator=g) < 0.5,
                        "logp_old_hint": (fields["logp_old"] + 0.4 * torch.randn(shape, generator=g)).clamp(max=-1e-3),
                        "off_policy": (torch.rand(shape[0], 1, generator=g) < 0.4).expand(shape).clone()}
    return fields


# --------------------------------------------------------------------------- hand values
def test_guide_hand_values():
    # row 0 guided: rho = pi_theta(no hint) / pi_old(hint) = .5 / .25 = 2, A = 1 -> clip at 1.2: loss -1.2
    # row 1 unguided: rho = .5 / .5 = 1 (the hint log-prob of this row is ignored), A = -1 -> loss 1
    half, quarter = math.log(0.5), math.log(0.25)
    s = state_of([[half], [half]], [[half], [half]], [[1.0], [-1.0]],
                 {"guided": torch.tensor([True, False]), "logp_old_hint": torch.tensor([[quarter], [quarter]], dtype=F64)})
    out = hint_clip_ratio()(s)
    torch.testing.assert_close(out.parts["policy"].values, torch.tensor([[-1.2], [1.0]], dtype=F64))
    assert float(out.metrics["clip_frac"]) == 0.5 and float(out.metrics["guide/guided_frac"]) == 0.5


def test_rlplus_hand_values_and_gradient():
    # token 0 external: pi_theta = pi_old = .5: r = .5 / (.75 * .5 + .25) = .8, C = (1 - .5)^.5 = .70711, A = 2
    #   loss = -.8 * 2 * .70711 = -1.13137; d/dlogp = -r A C (C has no gradient) = -1.13137
    # token 1 own: rho = exp(-.1) = .904837, A = 1 -> loss -.904837 (no clip), d/dlogp = -.904837
    half = math.log(0.5)
    logp = torch.tensor([[half, half - 0.1]], dtype=F64, requires_grad=True)
    s = State.from_batch(logp=logp, logp_old=torch.tensor([[half, half]], dtype=F64),
                         advantages=torch.tensor([[2.0, 1.0]], dtype=F64), mask=torch.ones(1, 2, dtype=torch.bool),
                         extras={"off_policy": torch.tensor([[True, False]])})
    out = mis_exploration_pg()(s)
    values = out.parts["policy"].values
    torch.testing.assert_close(values, torch.tensor([[-0.8 * 2 * 0.5**0.5, -math.exp(-0.1)]], dtype=F64))
    values.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.8 * 2 * 0.5**0.5, -math.exp(-0.1)]], dtype=F64))
    # clip=True: A = 1, rho = exp(.5) = 1.6487 -> clipped at 1.2 on the own token
    s2 = state_of([[half + 0.5]], [[half]], [[1.0]], {"off_policy": torch.tensor([[False]])})
    assert float(mis_exploration_pg(clip=True)(s2).parts["policy"].values) == pytest.approx(-1.2)
    assert float(mis_exploration_pg()(s2).parts["policy"].values) == pytest.approx(-math.exp(0.5))


# --------------------------------------------------------------------------- loop references
def per_token(fields, value):
    """Loop reference: ``value(i, t, logp, advantage)`` of each valid token, 0 on padding."""
    mask = fields["mask"]
    out = torch.zeros(mask.shape, dtype=F64)
    for i, t in mask.nonzero().tolist():
        out[i, t] = value(i, t, float(fields["logp"][i, t]), float(fields["advantages"][i, t]))
    return out


def loop_guide(fields, eps_low, eps_high):
    def value(i, t, logp, a):
        old = fields["extras"]["logp_old_hint"][i, t] if fields["extras"]["guided"][i] else fields["logp_old"][i, t]
        rho = math.exp(max(-20, min(20, logp - float(old))))
        return max(-a * rho, -a * min(max(rho, 1 - eps_low), 1 + eps_high))

    return per_token(fields, value)


def loop_rlplus(fields, gamma):
    def value(i, t, logp, a):
        p, old = math.exp(logp), math.exp(float(fields["logp_old"][i, t]))
        if fields["extras"]["off_policy"][i, t]:
            return -p / (0.5 * old + 0.5 * (old + 1) / 2) * a * (1 - p) ** gamma
        return -a * p / old

    return per_token(fields, value)


def prepared(fields):
    fields = {k: (v.to(F64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in fields.items()}
    fields["extras"] = {k: (v.to(F64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                        for k, v in fields["extras"].items()}
    state = group_zscore()(State.from_batch(**fields))
    return state, {**fields, "advantages": state.advantages, "logp": state.logp, "logp_old": state.logp_old}


@SETTINGS
@given(batches(), st.integers(0, 1000), st.floats(0, 0.5), st.floats(0, 0.5))
def test_guide_matches_loop(fields, seed, eps_low, eps_high):
    state, plain = prepared(with_random_extras(fields, seed))
    out = hint_clip_ratio(eps_low, eps_high)(state).parts["policy"].values
    torch.testing.assert_close(torch.where(state.mask, out, 0.0), loop_guide(plain, eps_low, eps_high))


@SETTINGS
@given(batches(), st.integers(0, 1000), st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_rlplus_matches_loop(fields, seed, gamma):
    state, plain = prepared(with_random_extras(fields, seed))
    out = mis_exploration_pg(gamma=gamma)(state).parts["policy"].values
    torch.testing.assert_close(torch.where(state.mask, out, 0.0), loop_rlplus(plain, gamma))


# --------------------------------------------------------------------------- properties
@SETTINGS
@given(batches(), st.integers(0, 1000))
def test_guide_reduces_to_clip_ratio(fields, seed):
    fields = with_random_extras(fields, seed)
    base = clip_ratio()(group_zscore()(State.from_batch(**fields))).parts["policy"].values
    no_guided = {**fields, "extras": {**fields["extras"], "guided": torch.zeros_like(fields["extras"]["guided"])}}
    empty_hint = {**fields, "extras": {**fields["extras"], "logp_old_hint": fields["logp_old"]}}
    for variant in (no_guided, empty_hint):
        got = hint_clip_ratio()(group_zscore()(State.from_batch(**variant))).parts["policy"].values
        torch.testing.assert_close(got, base)


def test_guide_gradient_flows_through_the_hint_free_numerator_only():
    fields = leaf(with_random_extras(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=1), 3))
    hint = fields["extras"]["logp_old_hint"].clone().requires_grad_(True)
    fields["extras"]["logp_old_hint"] = hint
    out = Objective(grpo.replace(clip_ratio, hint_clip_ratio()))(**fields)
    out.loss.backward()
    assert hint.grad is None or bool((hint.grad == 0).all())
    assert bool((fields["logp"].grad[fields["mask"]] != 0).any())
    # analytic gradient: for unclipped tokens d loss/d logp = -A rho / (N_seq |y_i|)
    state = out.state
    rho = torch.exp(state.logp.detach() - hint_clip_ratio().behaviour_logp(state))
    inside = (rho >= 0.8) & (rho <= 1.2) & state.mask
    lengths = state.mask.sum(-1, keepdim=True).float()
    expected = -state.advantages * rho / (lengths * state.batch_size)
    torch.testing.assert_close(fields["logp"].grad[inside], expected[inside])


@SETTINGS
@given(st.floats(-12, 0), st.floats(-12, 0), st.sampled_from([0.0, 0.5, 1.0]), st.floats(-3, 3))
def test_rlplus_bounds(logp, logp_old, gamma, advantage):
    s = state_of([[logp]], [[logp_old]], [[advantage]], {"off_policy": torch.tensor([[True]])})
    out = mis_exploration_pg(gamma=gamma)(s)
    p = math.exp(logp)
    r = p / (0.75 * math.exp(logp_old) + 0.25)
    c = (1 - p) ** gamma
    assert 0 <= r <= 4 + 1e-12 and 0 <= c <= 1  # r^MIS in (0, 4], C in [0, 1]
    shaped = advantage * c  # |A^c| <= |A|, same sign
    assert abs(shaped) <= abs(advantage) + 1e-12 and shaped * advantage >= 0
    assert float(out.parts["policy"].values) == pytest.approx(-r * advantage * c, rel=1e-9, abs=1e-12)
    if logp == 0 and logp_old == 0:
        assert r == pytest.approx(1.0)  # pi_theta = pi_old = 1


@SETTINGS
@given(batches(), st.integers(0, 1000))
def test_rlplus_without_external_rows_is_unclipped_pg(fields, seed):
    fields = with_random_extras(fields, seed)
    fields["extras"]["off_policy"] = torch.zeros_like(fields["extras"]["off_policy"])
    state = group_zscore()(State.from_batch(**fields))
    got = mis_exploration_pg()(state).parts["policy"].values
    expected = -state.advantages * torch.exp(state.logp - state.logp_old)
    torch.testing.assert_close(torch.where(state.mask, got, 0.0), torch.where(state.mask, expected, 0.0))


def test_rlplus_gradient_check():
    fields = with_random_extras(make_batch([3, 3], [3, 2, 4, 1, 3, 2], seed=2, dtype=F64), 5)
    fields["extras"]["logp_old_hint"] = fields["extras"]["logp_old_hint"].to(F64)
    state = group_zscore()(State.from_batch(**fields))
    mask = state.mask

    def loss(logp):
        return mis_exploration_pg().__call__(state.update(logp=logp)).parts["policy"].values[mask].sum()

    # C is a stop-gradient: autograd's gradient equals -A (r or rho) C with C held fixed
    logp = state.logp.clone().requires_grad_(True)
    loss(logp).backward()
    external = state.extras["off_policy"] & mask
    p = state.logp.exp()
    expected = torch.where(external, -(p / (0.75 * state.logp_old.exp() + 0.25)) * state.advantages * (1 - p) ** 0.5,
                           -state.advantages * torch.exp(state.logp - state.logp_old))
    torch.testing.assert_close(logp.grad[mask], expected[mask])


# --------------------------------------------------------------------------- recipes
@PRESETS
@pytest.mark.parametrize("term", [hint_clip_ratio(), mis_exploration_pg(), mis_exploration_pg(clip=True)])
def test_composes_with_presets(preset, term):
    recipe = preset.replace(clip_ratio, term)
    fields = leaf(with_random_extras(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=3), 7))
    out = Objective(recipe)(**fields)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(fields["logp"].grad).all()


def test_doc_recipes_build():
    from rlobj import constant_normalizer, seq_mean_token_mean

    recipe = grpo.replace(clip_ratio, mis_exploration_pg()).replace(seq_mean_token_mean, constant_normalizer(4096))
    assert isinstance(recipe.terms[1], mis_exploration_pg)
    assert dapo.replace(clip_ratio, hint_clip_ratio(eps_high=0.28)).terms[-1] == token_mean()


# --------------------------------------------------------------------------- bad input
def test_guide_percentile_scope_batch_is_a_mini_batch_statistic():
    # scope="batch": gamma is the 0.9-quantile of the guided ratios of the whole mini-batch
    # (Objective.minibatch_stats), so two halves with the statistic merged add up to the whole;
    # scope="micro_batch" takes it per call and does not
    from rlobj.algebra.state import Normalizer

    g = torch.Generator().manual_seed(3)
    logp_old = -torch.rand(8, 6, generator=g, dtype=F64) * 2 - 0.01
    logp = (logp_old + 0.3 * torch.randn(8, 6, generator=g, dtype=F64)).clamp(max=-1e-3)
    hinted = (logp_old + 0.6 * torch.randn(8, 6, generator=g, dtype=F64)).clamp(max=-1e-3)
    mask = torch.ones(8, 6, dtype=torch.bool)
    fields = dict(logp=logp, logp_old=logp_old, mask=mask, rewards=torch.tensor([1.0, 0, 1, 0, 0, 1, 1, 0], dtype=F64),
                  group_ids=torch.arange(2).repeat_interleave(4),
                  extras={"guided": torch.tensor([True, False, True, False, False, True, False, True]),
                          "logp_old_hint": hinted})
    counts = Normalizer.from_masks([mask], all_reduce=False)

    def halves(term):
        objective = Objective(group_zscore() >> term >> token_mean())
        prepared = objective.prepare(State.from_batch(**fields))
        stats = objective.minibatch_stats(prepared)
        merged = prepared.update(extras={**prepared.extras, **stats})
        whole = objective.loss(merged, normalizer=counts).loss
        parts = [objective.loss(piece, normalizer=counts).loss for piece in objective.split(merged, [4, 4])]
        return stats, float(whole), float(sum(parts))

    stats, whole, split = halves(hint_clip_ratio(shaping="percentile"))
    ratio = torch.exp(logp - hinted)[fields["extras"]["guided"]]
    assert float(next(iter(stats.values()))) == pytest.approx(float(torch.quantile(ratio, 0.9)), rel=1e-12)
    assert whole == pytest.approx(split, rel=1e-12)
    stats, whole, split = halves(hint_clip_ratio(shaping="percentile", scope="micro_batch"))
    assert stats == {} and abs(whole - split) > 1e-6


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"hint_clip_ratio.scope: expected 'batch' or 'micro_batch', got 'rank'"):
        hint_clip_ratio(shaping="percentile", scope="rank")
    with pytest.raises(RlobjInputError, match=r"hint_clip_ratio.eps_low: expected <= 1.0, got 2"):
        hint_clip_ratio(eps_low=2)
    with pytest.raises(RlobjInputError, match=r"mis_exploration_pg.gamma: expected >= 0.0, got -1"):
        mis_exploration_pg(gamma=-1)
    with pytest.raises(RlobjInputError, match=r"mis_exploration_pg.mis_max: expected > 0.0, got 0"):
        mis_exploration_pg(mis_max=0)
    half = math.log(0.5)
    with pytest.raises(RlobjInputError, match=r"hint_clip_ratio reads 'extras:guided'"):
        hint_clip_ratio()(state_of([[half]], [[half]], [[1.0]], {}))
    with pytest.raises(RlobjInputError, match=r"extras\['guided'\]: hint_clip_ratio expected a bool tensor"):
        hint_clip_ratio()(state_of([[half]], [[half]], [[1.0]], {"guided": torch.tensor([1]),
                                                                "logp_old_hint": torch.zeros(1, 1)}))
    with pytest.raises(RlobjInputError, match=r"extras\['logp_old_hint'\]: expected shape \(batch seq\) = \(1, 1\), got \(1, 2\)"):
        hint_clip_ratio()(state_of([[half]], [[half]], [[1.0]], {"guided": torch.tensor([True]),
                                                                "logp_old_hint": torch.zeros(1, 2)}))
    with pytest.raises(RlobjInputError, match=r"extras\['logp_old_hint'\]: log-probabilities must be <= 0"):
        hint_clip_ratio()(state_of([[half]], [[half]], [[1.0]], {"guided": torch.tensor([True]),
                                                                "logp_old_hint": torch.ones(1, 1)}))
    with pytest.raises(RlobjInputError, match=r"extras\['logp_old_hint'\]: expected finite values"):
        hint_clip_ratio()(state_of([[half]], [[half]], [[1.0]], {"guided": torch.tensor([True]),
                                                                "logp_old_hint": torch.full((1, 1), float("nan"))}))
    with pytest.raises(RlobjInputError, match=r"extras\['off_policy'\]: mis_exploration_pg expected a bool tensor"):
        mis_exploration_pg()(state_of([[half]], [[half]], [[1.0]], {"off_policy": torch.zeros(1, 1)}))
