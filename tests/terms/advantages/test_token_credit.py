"""CAPO critique advantages, Token Hidden Reward and VPPO shaping / pivotal mask
(rlobj/terms/advantages/token_credit.py; the VPPO mask is in rlobj/terms/masks/token_selection.py):
hand values with the arithmetic in comments, plain-loop references on Hypothesis batches, detached
outputs and gradients, properties from the specs, recipes with grpo / dr_grpo / dapo, bad input."""

import math

import pytest
import torch
from batches import assert_trains, batches, leaf, make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import Objective, clip_ratio, dapo, dr_grpo, group_zscore, grpo, token_mean
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import (
    critique_token_advantage,
    dependency_advantage_shaping,
    token_hidden_reward,
    wrong_step_tokens,
)
from rlobj.terms.masks import pivotal_token_mask

F64 = torch.float64
SETTINGS = settings(max_examples=40)
PRESETS = pytest.mark.parametrize("preset", [grpo, dr_grpo, dapo], ids=["grpo", "dr_grpo", "dapo"])


def advantage_state(fields):
    fields = {k: (v.to(F64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in fields.items()}
    fields["extras"] = {k: (v.to(F64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                        for k, v in fields["extras"].items()}
    return group_zscore()(State.from_batch(**fields))


def plain_state(advantages, mask, **extras):
    advantages = torch.tensor(advantages, dtype=F64)
    return State.from_batch(logp=torch.full_like(advantages, -0.5), mask=torch.tensor(mask), advantages=advantages,
                            extras=extras)


# --------------------------------------------------------------------------- CAPO
def test_capo_hand_values():
    # row: 5 tokens, steps end at t = 1 and t = 3 (step 0 = tokens 0-1, step 1 = tokens 2-3, token 4 in no step)
    # votes: step 0 .25 (1 of 4 critiques) -> not wrong at theta = .5; step 1 .75 -> wrong
    # A = 2: tokens 0, 1, 4 keep 2; tokens 2, 3 get 2 - 1 = 1. Union (theta = .25): all four step tokens -> 1
    ends = torch.tensor([[False, True, False, True, False]])
    votes = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]], dtype=F64)
    s = plain_state([[2.0] * 5], [[True] * 5], step_ends=ends, step_wrong_votes=votes)
    assert critique_token_advantage()(s).advantages.tolist() == [[2, 2, 1, 1, 2]]
    assert critique_token_advantage(vote_threshold=0.25)(s).advantages.tolist() == [[1, 1, 1, 1, 2]]
    # weights: 2 * 2 - .5 = 3.5 on the wrong step
    assert critique_token_advantage(whole_weight=2, process_weight=0.5)(s).advantages.tolist() == [[4, 4, 3.5, 3.5, 4]]
    assert wrong_step_tokens(ends, torch.tensor([[False, True, False, False, False]])).tolist() == [
        [True, True, False, False, False]]


def loop_capo(adv, mask, ends, votes, w_whole, w_process, theta):
    out = torch.zeros_like(adv)
    for i in range(adv.shape[0]):
        step_of, k = [], 0
        for t in range(adv.shape[1]):
            step_of.append(k)
            if ends[i, t] and mask[i, t]:
                k += 1
        end_positions = [t for t in range(adv.shape[1]) if ends[i, t] and mask[i, t]]
        for t in range(adv.shape[1]):
            if not mask[i, t]:
                continue
            wrong = step_of[t] < len(end_positions) and float(votes[i, end_positions[step_of[t]]]) >= theta
            out[i, t] = w_whole * adv[i, t] - w_process * wrong
    return out


@SETTINGS
@given(batches(), st.sampled_from([0.25, 0.5, 1.0]), st.floats(0, 2), st.floats(0, 2))
def test_capo_matches_loop(fields, theta, w_whole, w_process):
    state = advantage_state(fields)
    out = critique_token_advantage(w_whole, w_process, theta)(state)
    e = state.extras
    expected = loop_capo(state.advantages, state.mask, e["step_ends"], e["step_wrong_votes"], w_whole, w_process, theta)
    torch.testing.assert_close(out.advantages, expected)
    assert not out.advantages.requires_grad
    # property: w_process = 0 is a pure rescale; the penalty never raises an advantage
    if w_whole == 1:
        assert bool((out.advantages <= state.advantages + 1e-12).all())


# --------------------------------------------------------------------------- THR
def test_thr_hand_values():
    # one group: rows 0, 1 correct (A = +1), row 2 wrong (A = -2); p_g = 2/3
    # influence s: row 0 [1, 3], row 1 [2, 2], row 2 [4, -1]
    # THR = A s: row 0 [1, 3] mean|.| 2, row 1 [2, 2] mean 2, row 2 [-8, 2]; tau = 1 * min(2, 2) = 2
    # dominant |THR| > 2: (0,1) THR 3 -> A (1 + .2) = 1.2; (2,0) THR -8 -> -2 (1 - .2) = -1.6
    s = State.from_batch(logp=torch.full((3, 2), -0.5, dtype=F64), mask=torch.ones(3, 2, dtype=torch.bool),
                         advantages=torch.tensor([[1.0, 1.0], [1.0, 1.0], [-2.0, -2.0]], dtype=F64),
                         rewards=torch.tensor([1.0, 1.0, 0.0], dtype=F64), group_ids=torch.tensor([0, 0, 0]),
                         extras={"token_influence": torch.tensor([[1.0, 3.0], [2.0, 2.0], [4.0, -1.0]], dtype=F64)})
    out = token_hidden_reward(p=0.2)(s)
    torch.testing.assert_close(out.advantages, torch.tensor([[1.0, 1.2], [1.0, 1.0], [-1.6, -2.0]], dtype=F64))
    # thr_only zeroes the non-dominant tokens
    torch.testing.assert_close(token_hidden_reward(p=0.2, thr_only=True)(s).advantages,
                               torch.tensor([[0.0, 1.2], [0.0, 0.0], [-1.6, 0.0]], dtype=F64))
    # NTHR: tau = min(mean s over correct rows) = min(2, 2) = 2; wrong row tokens with s > 2: (2,0) s = 4
    # eta = 2 |.5 - 2/3| = 1/3 -> A = -2/3
    torch.testing.assert_close(token_hidden_reward(mode="nthr")(s).advantages,
                               torch.tensor([[1.0, 1.0], [1.0, 1.0], [-2 / 3, -2.0]], dtype=F64))


def loop_thr(adv, rewards, ids, mask, s, mode, p, beta, thr_only):
    out = adv.clone()
    for g in set(ids.tolist()):
        rows = [i for i in range(len(ids)) if ids[i] == g]
        correct = [i for i in rows if rewards[i] > 0.5]
        acc = len(correct) / len(rows)
        anchors = [i for i in correct if mask[i].any()]
        if acc in (0.0, 1.0) or not anchors:
            continue
        def value(i, t):
            return float(s[i, t]) if mode == "nthr" else abs(float(adv[i, t]) * float(s[i, t]))
        tau = beta * min(sum(value(i, t) for t in range(mask.shape[1]) if mask[i, t]) / int(mask[i].sum())
                         for i in anchors)
        for i in rows:
            for t in range(mask.shape[1]):
                if not mask[i, t]:
                    continue
                if mode == "nthr":
                    if rewards[i] <= 0.5 and float(s[i, t]) > tau:
                        out[i, t] = 2 * abs(0.5 - acc) * adv[i, t]
                else:
                    thr = float(adv[i, t]) * float(s[i, t])
                    if abs(thr) > tau:
                        out[i, t] = adv[i, t] * (1 + p * (1 if thr > 0 else -1 if thr < 0 else 0))
                    elif thr_only:
                        out[i, t] = 0.0
    return out


@SETTINGS
@given(batches(), st.sampled_from(["thr", "nthr"]), st.floats(-0.9, 0.9), st.floats(0, 2), st.booleans())
def test_thr_matches_loop_and_properties(fields, mode, p, beta, thr_only):
    state = advantage_state(fields)
    out = token_hidden_reward(mode, p, beta, thr_only)(state)
    expected = loop_thr(state.advantages, state.rewards, state.group_ids, state.mask,
                        state.extras["token_influence"], mode, p, beta, thr_only)
    torch.testing.assert_close(out.advantages, expected)
    new, old = out.advantages, state.advantages
    assert bool((new * old >= -1e-12).all())  # |p| < 1 and eta in [0, 1]: signs kept
    if mode == "nthr":
        correct = (state.rewards > 0.5)[:, None].expand_as(old)
        assert bool((new[correct] == old[correct]).all())  # only incorrect responses change
        assert bool((new.abs() <= old.abs() + 1e-12).all())
    flat = torch.zeros_like(state.rewards, dtype=torch.bool)
    for g in torch.unique(state.group_ids):
        rows = state.group_ids == g
        flat[rows] = bool((state.rewards[rows] > 0.5).all() | (state.rewards[rows] <= 0.5).all())
    assert bool((new[flat] == old[flat]).all())  # all-correct / all-wrong groups unchanged
    if mode == "thr" and not thr_only:
        assert bool((token_hidden_reward("thr", 0.0, beta)(state).advantages == old).all())  # p = 0 is GRPO


# --------------------------------------------------------------------------- VPPO
def test_vppo_hand_values():
    # row means of S: row 0 (1 + 3) / 2 = 2, row 1 0, row 2 1 -> n = 1, 0, .5; mean n = .5
    # beta_min .9: beta_max = .9 + .1 / .5 = 1.1; alpha = .9 + n * .2 = 1.1, .9, 1.0 (mean 1)
    s = plain_state([[1.0, 1.0], [-2.0, -2.0], [3.0, 3.0]], [[True, True]] * 3,
                    visual_dependency=torch.tensor([[1.0, 3.0], [0.0, 0.0], [1.0, 1.0]], dtype=F64))
    out = dependency_advantage_shaping()(s)
    torch.testing.assert_close(out.advantages, torch.tensor([[1.1, 1.1], [-1.8, -1.8], [3.0, 3.0]], dtype=F64))
    # pivotal mask, k = .4: row 0 ceil(.8) = 1 token (S 3 at t = 1); row 1 tie 0, 0 -> the first; row 2 the first
    policy = clip_ratio()(s.update(logp_old=s.logp))
    masked = pivotal_token_mask(k=0.4)(policy).parts["policy"]
    assert masked.mask.tolist() == [[False, True], [True, False], [True, False]]
    assert masked.normalize == "global"  # masked tokens stay in the denominator


def loop_vppo(adv, mask, dep, beta_min):
    means, valid = [], []
    for i in range(mask.shape[0]):
        n = int(mask[i].sum())
        valid.append(n > 0)
        means.append(sum(float(dep[i, t]) for t in range(mask.shape[1]) if mask[i, t]) / n if n else 0.0)
    vm = [m for m, v in zip(means, valid) if v]
    alpha = [1.0] * len(means)
    if len(vm) >= 2 and max(vm) - min(vm) > 1e-6:
        norm = [min(1.0, max(0.0, (m - min(vm)) / (max(vm) - min(vm)))) for m in means]
        mu = sum(n for n, v in zip(norm, valid) if v) / len(vm)
        beta_max = beta_min + (1 - beta_min) / (mu + 1e-8)
        alpha = [beta_min + n * (beta_max - beta_min) if v else 1.0 for n, v in zip(norm, valid)]
    return torch.tensor(alpha, dtype=F64)[:, None] * adv, alpha, valid


@SETTINGS
@given(batches(min_len=0), st.floats(0, 1), st.floats(0.05, 1))
def test_vppo_matches_loop_and_properties(fields, beta_min, k):
    state = advantage_state(fields)
    out = dependency_advantage_shaping(beta_min)(state)
    expected, alpha, valid = loop_vppo(state.advantages, state.mask, state.extras["visual_dependency"], beta_min)
    torch.testing.assert_close(out.advantages, expected)
    va = [a for a, v in zip(alpha, valid) if v]
    if va:
        assert sum(va) / len(va) == pytest.approx(1.0, abs=1e-6)  # factors average to 1
        assert all(a >= beta_min - 1e-12 for a in va)
    assert bool((out.advantages * state.advantages >= 0).all())  # signs kept
    # pivotal mask: exact per-row count ceil(k L_i), subset of the mask, top scores kept
    policy = clip_ratio()(out)
    sel = pivotal_token_mask(k)(policy).parts["policy"].mask
    dep = state.extras["visual_dependency"]
    for i in range(sel.shape[0]):
        n = int(state.mask[i].sum())
        assert int(sel[i].sum()) == (math.ceil(k * n) if n else 0)
        assert bool((sel[i] <= state.mask[i]).all())
        if sel[i].any() and (state.mask[i] & ~sel[i]).any():
            assert float(dep[i][sel[i]].min()) >= float(dep[i][state.mask[i] & ~sel[i]].max())


def test_vppo_gradient_and_identity():
    fields = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=8))
    recipe = grpo.replace(group_zscore, group_zscore() >> dependency_advantage_shaping()) >> pivotal_token_mask()
    out = Objective(recipe)(**fields)
    out.loss.backward()
    kept = out.state.parts["policy"].mask
    assert bool((fields["logp"].grad[fields["mask"] & ~kept] == 0).all())  # filtered tokens get no gradient
    assert bool((fields["logp"].grad[kept] != 0).any())
    # k = 1 and beta_min = 1: plain grpo
    plain = Objective(grpo)(**leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=8)))
    same = Objective(grpo.replace(group_zscore, group_zscore() >> dependency_advantage_shaping(1.0))
                     >> pivotal_token_mask(1.0))(**leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=8)))
    torch.testing.assert_close(same.loss, plain.loss)


# --------------------------------------------------------------------------- recipes
ADVANTAGE_TERMS = [critique_token_advantage(), token_hidden_reward(), token_hidden_reward(mode="nthr"),
                   dependency_advantage_shaping()]


@PRESETS
@pytest.mark.parametrize("term", ADVANTAGE_TERMS + [pivotal_token_mask()])
def test_composes_with_presets(preset, term):
    base = type(preset.terms[-3])  # the advantage term before the surrogate
    recipe = preset >> term if isinstance(term, pivotal_token_mask) else preset.replace(base, base() >> term)
    assert_trains(recipe)
    assert dapo.terms[-1] == token_mean()


def test_advantages_are_detached():
    fields = make_batch([3, 3], [3, 2, 4, 1, 3, 2], seed=1)
    influence = fields["extras"]["token_influence"].clone().requires_grad_(True)
    fields["extras"]["token_influence"] = influence
    state = group_zscore()(State.from_batch(**fields))
    for term in ADVANTAGE_TERMS:
        assert not term(state).advantages.requires_grad


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"critique_token_advantage.vote_threshold: expected > 0.0, got 0"):
        critique_token_advantage(vote_threshold=0)
    with pytest.raises(RlobjInputError, match=r"token_hidden_reward.p: expected in \(-1, 1\), got 1"):
        token_hidden_reward(p=1)
    with pytest.raises(RlobjInputError, match=r"token_hidden_reward.mode: expected 'thr' or 'nthr', got 'x'"):
        token_hidden_reward(mode="x")
    with pytest.raises(RlobjInputError, match=r"dependency_advantage_shaping.beta_min: expected <= 1.0, got 2"):
        dependency_advantage_shaping(beta_min=2)
    with pytest.raises(RlobjInputError, match=r"pivotal_token_mask.k: expected > 0.0, got 0"):
        pivotal_token_mask(k=0)
    mask = [[True, True]]
    with pytest.raises(RlobjInputError, match=r"critique_token_advantage reads 'extras:step_ends'"):
        critique_token_advantage()(plain_state([[1.0, 1.0]], mask))
    with pytest.raises(RlobjInputError, match=r"extras\['step_wrong_votes'\]: critique_token_advantage expected values in \[0, 1\]"):
        critique_token_advantage()(plain_state([[1.0, 1.0]], mask, step_ends=torch.tensor([[False, True]]),
                                               step_wrong_votes=torch.tensor([[0.0, 2.0]])))
    with pytest.raises(RlobjInputError, match=r"extras\['step_ends'\]: critique_token_advantage expected a bool tensor"):
        critique_token_advantage()(plain_state([[1.0, 1.0]], mask, step_ends=torch.ones(1, 2),
                                               step_wrong_votes=torch.zeros(1, 2)))
    with pytest.raises(RlobjInputError, match=r"extras\['visual_dependency'\]: expected shape \(batch seq\) = \(1, 2\), got \(1, 3\)"):
        dependency_advantage_shaping()(plain_state([[1.0, 1.0]], mask, visual_dependency=torch.zeros(1, 3)))
    with pytest.raises(RlobjInputError, match=r"extras\['visual_dependency'\]: dependency_advantage_shaping expected values >= 0"):
        dependency_advantage_shaping()(plain_state([[1.0, 1.0]], mask, visual_dependency=-torch.ones(1, 2)))
    with pytest.raises(RlobjInputError, match=r"extras\['token_influence'\]: expected finite values"):
        token_hidden_reward()(State.from_batch(logp=torch.zeros(2, 1) - 1, mask=torch.ones(2, 1, dtype=torch.bool),
                                               advantages=torch.ones(2, 1), rewards=torch.tensor([1.0, 0.0]),
                                               group_ids=torch.tensor([0, 0]),
                                               extras={"token_influence": torch.tensor([[float("nan")], [0.0]])}))
