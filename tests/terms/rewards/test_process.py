"""PPR ReNorm and VSRM (rlobj/terms/rewards/process.py): hand values with the arithmetic in
comments, plain-loop references on Hypothesis inputs, properties from each paper's math, detached
outputs, recipes with grpo / dr_grpo / dapo, bad input."""


import pytest
import torch
from batches import assert_trains, leaf, make_batch, presets
from hypothesis import given
from hypothesis import strategies as st
from terms.rewards._helpers import F64, reference_step_rewards, state_of

from rlobj import Objective, batch_whiten, dapo, dr_grpo, group_zscore, grpo
from rlobj.ops.errors import RlobjBuildError, RlobjInputError
from rlobj.terms.rewards import ppr_renorm, vsrm_step_reward


# ppr_renorm >> dapo is refused by design (test_ppr_renorm_reads_the_final_outcome)
@pytest.mark.parametrize("make,preset", [(m, p) for m in (ppr_renorm,) for p in (grpo, dr_grpo, dapo)
                                         if not (m is ppr_renorm and p is dapo)])
def test_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset)
    assert not out.state.rewards.requires_grad


def test_ppr_renorm_reads_the_final_outcome():
    # ppr_renorm reads the outcome and leaves it in rewards: a reward term after it (dapo's
    # overlong penalty) would change an outcome it already used, which the chain refuses
    with pytest.raises(RlobjBuildError, match=r"overlong_penalty writes 'rewards' after ppr_renorm already read it"):
        ppr_renorm() >> dapo


# =========================================================================== PPR ReNorm
def ppr_state(outcome, process, ends, lengths=None, width=4, token_rewards=None):
    extras = {"step_ends": torch.tensor(ends), "process_rewards": torch.tensor(process, dtype=F64)}
    fields = {"token_rewards": torch.tensor(token_rewards, dtype=F64)} if token_rewards is not None else {}
    return state_of(outcome, lengths=lengths, width=width, extras=extras, **fields)


def test_ppr_hand_values():
    # row 0 correct (r^o = 1), turns end at t = 1 (r^p = .8) and t = 3 (the answer turn):
    #   .8 + 1 - 1 = .8 at t = 1; t = 3 keeps the outcome alone (in rewards)
    # row 1 wrong (r^o = 0), length 3, turns end at t = 0 (r^p = .9), t = 1 (r^p = .4) and t = 2
    #   (answer): .9 - 1 = -.1, .4 - 1 = -.6; t = 3 is padding: its end flag is ignored
    s = ppr_state([1.0, 0.0], [[0.0, 0.8, 0.5, 0.2], [0.9, 0.4, 0.0, 0.7]],
                  [[False, True, False, True], [True, True, True, True]], lengths=[4, 3])
    out = ppr_renorm()(s)
    torch.testing.assert_close(out.token_rewards, torch.tensor([[0, 0.8, 0, 0], [-0.1, -0.6, 0, 0]], dtype=F64))
    assert out.rewards.tolist() == [1.0, 0.0]  # the outcome stays (reference: ORM at the last token)
    assert float(out.metrics["ppr/steps"]) == 1.5
    # existing token rewards are kept (e.g. a KL folded into the reward before it)
    s = ppr_state([1.0], [[1.0, 1.0]], [[True, True]], width=2, token_rewards=[[-0.1, -0.2]])
    torch.testing.assert_close(ppr_renorm()(s).token_rewards, torch.tensor([[0.9, -0.2]], dtype=F64))
    # one turn (or none): the outcome only, as the reference skips rows with <= 1 boundary
    s = ppr_state([1.0, 0.0], [[0.3, 0.3], [0.3, 0.3]], [[False, True], [False, False]], width=2)
    assert ppr_renorm()(s).token_rewards.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # beta shifts the judged turns: .8 + 1 - .5
    s = ppr_state([1.0], [[0.8, 0.0]], [[True, True]], width=2)
    assert ppr_renorm(beta=0.5)(s).token_rewards.tolist() == [[pytest.approx(1.3), 0.0]]


def reference_renorm(outcome, process, ends, lengths, width, beta=1.0):
    """Transcription of Zhuohao-Li/ppr main_ppo.py RewardManager for one batch: outcome at the
    last valid token, process scores at the turn boundaries but the last, then
    _apply_process_reward_optimizations (score + orm_score - beta, rows with <= 1 boundary skipped)."""
    out = [[0.0] * width for _ in outcome]
    for i, length in enumerate(lengths):
        boundaries = [t for t in range(length) if ends[i][t]]
        out[i][length - 1] = outcome[i]
        for pos in boundaries[:-1]:
            out[i][pos] = process[i][pos]
        if len(boundaries) <= 1:
            continue
        orm = out[i][boundaries[-1]]
        for pos in boundaries[:-1]:
            out[i][pos] = out[i][pos] + orm - beta
    return out


@st.composite
def ppr_inputs(draw):
    n, width = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, width), min_size=n, max_size=n))
    outcome = draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=n, max_size=n))
    process = draw(st.lists(st.lists(st.floats(0, 1), min_size=width, max_size=width), min_size=n, max_size=n))
    ends = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    for row, length in zip(ends, lengths):
        row[length - 1] = True  # the answer turn ends at the last token (the outcome's position)
    return outcome, process, ends, lengths, width


@given(ppr_inputs(), st.sampled_from([1.0, 0.5]))
def test_ppr_matches_the_reference_reward_tensor(data, beta):
    outcome, process, ends, lengths, width = data
    out = ppr_renorm(beta=beta)(ppr_state(outcome, process, ends, lengths, width))
    expected = reference_renorm(outcome, process, ends, lengths, width, beta)
    for i in range(len(outcome)):
        ours = out.token_rewards[i].tolist()
        ours[lengths[i] - 1] += float(out.rewards[i])  # the outcome rides on the last token
        assert ours == pytest.approx(expected[i], abs=1e-12)
        if beta == 1.0:
            judged = [t for t in range(lengths[i]) if ends[i][t]][:-1]
            for t in judged:
                r = float(out.token_rewards[i, t])
                assert -1.0 <= r <= 1.0
                assert r >= 0.0 if outcome[i] == 1.0 else True  # sign consistency
                assert r <= 0.0 if outcome[i] == 0.0 else True
    assert not out.token_rewards.requires_grad


def test_ppr_extremes():
    # perfectly scored correct trajectory -> +1 per judged turn; zero-scored wrong one -> -1
    s = ppr_state([1.0, 0.0], [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], [[True, True, True], [True, True, True]], width=3)
    assert ppr_renorm()(s).token_rewards.tolist() == [[1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]]


def test_ppr_returns_with_batch_whiten():
    # one row, turns end at t = 0 (r^p = 1), t = 2 (r^p = .5) and t = 3 (answer), outcome 1: step
    # rewards 1 and .5, the outcome 1 on the last token; returns to go (gamma = 1): [2.5, 1.5, 1.5, 1]
    s = ppr_state([1.0], [[1.0, 0.0, 0.5, 0.0]], [[True, False, True, True]], width=4)
    out = (ppr_renorm() >> batch_whiten())(s)
    returns = torch.tensor([2.5, 1.5, 1.5, 1.0], dtype=F64)
    expected = (returns - returns.mean()) / torch.sqrt(returns.var(unbiased=False) + 1e-8)
    torch.testing.assert_close(out.advantages[0], expected)


# =========================================================================== VSRM
def vsrm_state(ends, accuracy, start, lengths=None, width=None, outcome=None):
    width = width or len(ends[0])
    return state_of(outcome or [0.0] * len(ends), lengths=lengths, width=width, extras={
        "step_ends": torch.tensor(ends), "step_accuracy": torch.tensor(accuracy, dtype=F64),
        "start_accuracy": torch.tensor(start, dtype=F64)})


def test_vsrm_hand_values():
    # steps end at t = 1, 3, 4 with prefix accuracies .25, .25, 1; a_0 = 0:
    # gains d = .25 - 0 = .25, .25 - .25 = 0, 1 - .25 = .75 (sum 1 = a_K - a_0)
    s = vsrm_state([[False, True, False, True, True]], [[0, 0.25, 0, 0.25, 1.0]], [0.0])
    out = vsrm_step_reward(lookahead=0)(s)
    assert out.token_rewards.tolist() == [[0, 0.25, 0, 0.0, 0.75]]
    # look-ahead W = 2, gamma = .5 (the reference's rule): r_1 = .25 (its own gain is not flat:
    # later gains are not added); r_2 = .5 * .75 = .375 (flat: the next non-flat gain, decayed);
    # r_3 = .75
    out = vsrm_step_reward(lookahead=2, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0, 0.25, 0, 0.375, 0.75]]


def test_vsrm_defaults_are_the_references():
    # 1benwu1/VSRM-Efficient-LRMs rollout_postprocess.py compute_step_reward: gamma 0.7,
    # MAX_LOOKAHEAD 4, flat below 1e-5
    term = vsrm_step_reward()
    assert (term.lookahead, term.gamma, term.flat) == (4, 0.7, 1e-5)


@st.composite
def vsrm_inputs(draw):
    n, width = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    lengths = draw(st.lists(st.integers(0, width), min_size=n, max_size=n))
    ends = draw(st.lists(st.lists(st.booleans(), min_size=width, max_size=width), min_size=n, max_size=n))
    acc = draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=width, max_size=width),
                        min_size=n, max_size=n))
    start = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n))
    return ends, acc, start, lengths, width


@given(vsrm_inputs(), st.integers(1, 4), st.floats(0, 1))
def test_vsrm_matches_loop_reference_and_telescopes(data, window, gamma):
    ends, acc, start, lengths, width = data
    out = vsrm_step_reward(lookahead=window, gamma=gamma)(vsrm_state(ends, acc, start, lengths, width))
    plain = vsrm_step_reward(lookahead=0)(vsrm_state(ends, acc, start, lengths, width))
    for i in range(len(ends)):
        positions = [t for t in range(lengths[i]) if ends[i][t]]
        levels = [start[i]] + [acc[i][t] for t in positions]
        expected = reference_step_rewards(levels, gamma, window)
        for k, t in enumerate(positions):
            assert float(out.token_rewards[i, t]) == pytest.approx(expected[k], abs=1e-9)
            assert -1.0 <= float(plain.token_rewards[i, t]) <= 1.0
        others = [t for t in range(width) if t not in positions]
        assert all(float(out.token_rewards[i, t]) == 0.0 for t in others)
        if positions:  # telescoping: sum of the plain gains = a_K - a_0
            assert float(plain.token_rewards[i].sum()) == pytest.approx(levels[-1] - levels[0], abs=1e-12)


def test_vsrm_propagation_reaches_a_zero_gain_step_and_decays_with_distance():
    # gains 0, 0, 0, 1 (accuracy jumps only at the last step): with W = 3, gamma = .5 the earlier
    # steps get .125, .25, .5 — positive and smaller the further they are from the gain
    s = vsrm_state([[True, True, True, True]], [[0.0, 0.0, 0.0, 1.0]], [0.0])
    out = vsrm_step_reward(lookahead=3, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0.125, 0.25, 0.5, 1.0]]
    # past the window the flat step gets nothing: W = 2 reaches only the 2 next gains
    out = vsrm_step_reward(lookahead=2, gamma=0.5)(s)
    assert out.token_rewards.tolist() == [[0.0, 0.25, 0.5, 1.0]]


# =========================================================================== recipes, bad input
@pytest.mark.parametrize("make", [vsrm_step_reward])
@presets()
def test_second_batch_composes_before_presets(make, preset):
    out = assert_trains(make() >> preset, seed=4)
    assert not out.state.rewards.requires_grad


def test_step_rewards_compose_with_token_returns():
    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=4))
    for term in (ppr_renorm(), vsrm_step_reward(lookahead=2)):
        out = Objective(term >> grpo.replace(group_zscore, batch_whiten()))(**batch)
        assert torch.isfinite(out.loss)


def test_bad_input():
    good = ppr_state([1.0], [[0.5, 0.5]], [[False, True]], width=2)
    with pytest.raises(RlobjInputError, match=r"ppr_renorm reads 'extras:step_ends'"):
        ppr_renorm()(state_of([1.0], width=2))
    with pytest.raises(RlobjInputError, match=r"extras\['process_rewards'\]: ppr_renorm expected values in \[0, 1\], got \[1.5\]"):
        ppr_renorm()(ppr_state([1.0], [[1.5, 0.5]], [[True, True]], width=2))
    with pytest.raises(RlobjInputError, match=r"ppr_renorm.beta: expected >= 0.0, got -1"):
        ppr_renorm(beta=-1)
    with pytest.raises(RlobjInputError, match=r"rewards: ppr_renorm \(the outcome reward r\^o\) expected values in \[0, 1\]"):
        ppr_renorm()(good.update(rewards=torch.tensor([2.0], dtype=F64)))
    with pytest.raises(RlobjInputError, match=r"extras\['step_ends'\]: expected shape \(batch seq\) = \(1, 2\), got \(1, 3\)"):
        ppr_renorm()(good.update(extras={**good.extras, "step_ends": torch.ones(1, 3, dtype=torch.bool)}))
    with pytest.raises(RlobjInputError, match=r"extras\['step_ends'\]: ppr_renorm expected a bool tensor"):
        ppr_renorm()(good.update(extras={**good.extras, "step_ends": torch.ones(1, 2)}))
    with pytest.raises(RlobjInputError, match=r"vsrm_step_reward.gamma: expected <= 1.0, got 2"):
        vsrm_step_reward(gamma=2)
    with pytest.raises(RlobjInputError, match=r"step_accuracy'\]: vsrm_step_reward expected values in \[0, 1\]"):
        vsrm_step_reward()(vsrm_state([[True]], [[1.5]], [0.0]))
    with pytest.raises(RlobjInputError, match=r"vsrm_step_reward reads 'extras:start_accuracy'"):
        vsrm_step_reward()(state_of([0.0], width=1, extras={"step_ends": torch.ones(1, 1, dtype=torch.bool),
                                                            "step_accuracy": torch.zeros(1, 1, dtype=F64)}))
