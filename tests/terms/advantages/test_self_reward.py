"""LaSeR's advantage mixer (rlobj/terms/advantages/self_reward.py): hand values, the plain-loop
reference on Hypothesis inputs, its limits (tau = 0 is GRPO, tau = 1 the self-reward z-score), bad
input. The self-reward loss and score are tested in tests/terms/test_auxiliary.py."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from terms._self_reward_fields import F64, fields_of

from rlobj import (
    group_zscore,
)
from rlobj.algebra.state import State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.advantages import self_reward_advantage
from rlobj.terms.auxiliary import self_reward_score


def test_mixer_hand_values():
    # rewards [1, 0, 0, 1] -> GRPO z = [1, -1, -1, 1] / (std 0.57735 + 1e-6) = +-0.866025;
    # self scores clip(0.1 (p + 23), 0, 1) = [1, 0, 0.5, 0.5] -> mean 0.5, std 0.408248 -> z = [1.224742, -1.224742, 0, 0]
    base = 0.5 / (0.5773502691896258 + 1e-6)
    self_z = 0.5 / (0.408248290463863 + 1e-6)
    s = State.from_batch(**fields_of([1.0, 0.0, 0.0, 1.0], [-13.0, -30.0, -18.0, -18.0]))
    out = self_reward_advantage(tau=0.1)(s).advantages[:, 0]
    expected = torch.tensor([0.9 * base + 0.1 * self_z, -0.9 * base - 0.1 * self_z, -0.9 * base, 0.9 * base], dtype=F64)
    torch.testing.assert_close(out, expected)
    # with the std floor above 0.41 the group falls back to the GRPO advantage
    torch.testing.assert_close(self_reward_advantage(tau=0.1, std_floor=0.5)(s).advantages[:, 0],
                               torch.tensor([base, -base, -base, base], dtype=F64))


@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.floats(-40, 0), st.booleans()), min_size=2, max_size=8),
       st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.sampled_from([0.0, 0.1, 0.3]))
def test_mixer_matches_loop_reference(rows, tau, floor):
    n = len(rows)
    groups = [i % 2 for i in range(n)] if n >= 4 else [0] * n
    rewards, probe, truncated = [r for r, _, _ in rows], [p for _, p, _ in rows], [t for _, _, t in rows]
    out = self_reward_advantage(tau=tau, std_floor=floor)(State.from_batch(**fields_of(rewards, probe, truncated, group_ids=groups)))

    def zscore(values, g):
        members = [values[i] for i in range(n) if groups[i] == g]
        mean = sum(members) / len(members)
        std = (sum((v - mean) ** 2 for v in members) / (len(members) - 1)) ** 0.5
        if max(members) == min(members):
            std = 0.0
        return mean, std

    expected = []
    scores = [0.0 if t else min(max(0.1 * (p + 23), 0.0), 1.0) for p, t in zip(probe, truncated)]
    for i in range(n):
        mean_r, std_r = zscore(rewards, groups[i])
        base = (rewards[i] - mean_r) / (std_r + 1e-6) if std_r > 0 else 0.0
        mean_s, std_s = zscore(scores, groups[i])
        own = (scores[i] - mean_s) / (std_s + 1e-6) if std_s > floor and std_s > 0 else base
        expected.append((1 - tau) * base + tau * own)
    torch.testing.assert_close(out.advantages[:, 0], torch.tensor(expected, dtype=F64), atol=1e-7, rtol=1e-7)


def test_mixer_limits():
    s = State.from_batch(**fields_of([1.0, 0.0, 0.0, 1.0], [-13.0, -30.0, -18.0, -20.0]))
    torch.testing.assert_close(self_reward_advantage(tau=0.0)(s).advantages, group_zscore()(s).advantages)
    probe = s.extras["self_reward_logp"]
    self_only = State.from_batch(**fields_of([0.3, 0.4, 0.5, 0.6], [0.0] * 4)).update(
        rewards=torch.clamp(self_reward_score(probe), 0, 1))
    torch.testing.assert_close(self_reward_advantage(tau=1.0, std_floor=0.0)(s).advantages,
                               group_zscore()(self_only).advantages)


def test_bad_input():
    with pytest.raises(RlobjInputError, match=r"self_reward_advantage.tau: expected <= 1.0, got 2"):
        self_reward_advantage(tau=2)
    with pytest.raises(RlobjInputError, match=r"self_reward_advantage needs at least 2 responses per group"):
        self_reward_advantage()(State.from_batch(**fields_of([1.0, 0.0], [-1.0, -1.0], group_ids=[0, 1])))
