"""PACS (rlobj/terms/surrogates/pacs.py): hand values, plain-loop reference on Hypothesis
inputs, log 2 on-policy and the gradient identity, gradcheck, zero-sum RLOO scores, recipes, bad input.
"""

import math

import pytest
import torch
from batches import F64, assert_trains, presets
from hypothesis import given
from hypothesis import strategies as st

from rlobj import Objective, seq_mean_token_mean, token_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.surrogates import pacs_loss


@st.composite
def pacs_inputs(draw):
    n_groups = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(2, 4), min_size=n_groups, max_size=n_groups))
    group_ids = [g for g, n in enumerate(sizes) for _ in range(n)]
    order = draw(st.permutations(range(len(group_ids))))
    group_ids = [group_ids[i] for i in order]
    n = len(group_ids)
    width = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, width), min_size=n, max_size=n))
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    seed = draw(st.integers(0, 10_000))
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(n, width, generator=g, dtype=F64) * 3
    logp = (logp_old + 0.5 * torch.randn(n, width, generator=g, dtype=F64)).clamp(max=0)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return dict(logp=logp, logp_old=logp_old, mask=mask, rewards=torch.tensor(rewards, dtype=F64),
                group_ids=torch.tensor(group_ids))


def pacs_loop(fields, beta=1.0, baseline="rloo", balanced=True):
    logp, old, mask = fields["logp"].tolist(), fields["logp_old"].tolist(), fields["mask"].tolist()
    r, gid = fields["rewards"].tolist(), fields["group_ids"].tolist()
    n = len(r)
    s = [beta * sum(a - b for a, b, m in zip(logp[i], old[i], mask[i]) if m) for i in range(n)]
    members = {g: [i for i in range(n) if gid[i] == g] for g in set(gid)}
    total = 0.0
    for i in range(n):
        group = members[gid[i]]
        if baseline == "rloo":
            psi = s[i] - sum(s[j] for j in group if j != i) / (len(group) - 1)
        elif baseline == "zscore":
            mean = sum(s[j] for j in group) / len(group)
            std = math.sqrt(sum((s[j] - mean) ** 2 for j in group) / (len(group) - 1))
            psi = (s[i] - mean) / (std + 1e-6) if std > 0 else 0.0
        else:
            psi = s[i]
        sig = 1 / (1 + math.exp(-psi))
        bce = -(r[i] * math.log(sig) + (1 - r[i]) * math.log(1 - sig))
        n_c = sum(1 for j in group if r[j] > 0.5)
        w = 1.0
        if balanced and 0 < n_c < len(group):
            w = len(group) / (2 * (n_c if r[i] > 0.5 else len(group) - n_c))
        total += w * bce
    return total / n


def pacs(term, fields, aggregation=None):
    return Objective(term >> (aggregation or token_mean()))(**fields)


def test_pacs_hand_values():
    # one group of 4, rewards [1, 0, 0, 0], one token each; logp - logp_old = [0.3, 0, 0, -0.3]
    # s = [0.3, 0, 0, -0.3]; RLOO psi_i = s_i - mean of the others: [0.3, 0, 0, -0.3] - [-0.1, 0, 0, 0.1]
    # = [0.4, 0, 0, -0.4]; weights: n+ = 1 -> 4/2 = 2, n- = 3 -> 4/6 = 2/3
    # loss = (2 softplus(-0.4) + 2/3 (log 2 + log 2 + softplus(-0.4))) / 4
    old = torch.full((4, 1), -1.0, dtype=F64)
    fields = dict(logp=old + torch.tensor([[0.3], [0.0], [0.0], [-0.3]], dtype=F64), logp_old=old,
                  mask=torch.ones(4, 1, dtype=torch.bool), rewards=torch.tensor([1.0, 0, 0, 0], dtype=F64),
                  group_ids=torch.zeros(4, dtype=torch.long))
    sp = math.log1p(math.exp(-0.4))
    expected = (2 * sp + 2 / 3 * (2 * math.log(2) + sp)) / 4
    assert float(pacs(pacs_loss(), fields).loss) == pytest.approx(expected)


@given(pacs_inputs(), st.sampled_from(["rloo", "zscore", "none"]), st.booleans(), st.sampled_from([1.0, 2.0]))
def test_pacs_matches_loop_reference(fields, baseline, balanced, beta):
    term = pacs_loss(beta=beta, baseline=baseline, balanced=balanced)
    for aggregation in (token_mean(), seq_mean_token_mean()):
        assert float(pacs(term, fields, aggregation).loss) == pytest.approx(pacs_loop(fields, beta, baseline, balanced),
                                                                              rel=1e-9, abs=1e-12)


@given(pacs_inputs())
def test_pacs_is_log2_on_policy_and_gradient_identity(fields):
    on_policy = {**fields, "logp": fields["logp_old"].clone().requires_grad_(True)}
    out = pacs(pacs_loss(), on_policy)
    assert float(out.loss.detach()) == pytest.approx(math.log(2))  # psi = 0; mixed-group weights sum to |g|
    (grad,) = torch.autograd.grad(out.loss, on_policy["logp"])
    # dL/dlogp_{i,t} = (beta / N) sum_j w_j (sigma(psi_j) - r_j) dpsi_j/ds_i, dpsi_j/ds_i = 1 or -1/(|g|-1)
    r, gid = fields["rewards"], fields["group_ids"]
    weights = pacs_loss().weights(r, gid)
    n = len(r)
    expected = torch.zeros(n, dtype=F64)
    for i in range(n):
        size = int((gid == gid[i]).sum())
        for j in range(n):
            if gid[j] != gid[i]:
                continue
            d = 1.0 if i == j else -1.0 / (size - 1)
            expected[i] += weights[j] * (0.5 - r[j]) * d / n
    torch.testing.assert_close(grad, torch.where(fields["mask"], expected[:, None].expand_as(grad), 0.0))


def test_pacs_gradcheck():
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(4, 3, generator=g, dtype=F64)
    fields = dict(logp_old=old, mask=torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.bool),
                  rewards=torch.tensor([1.0, 0, 1, 0], dtype=F64), group_ids=torch.tensor([0, 0, 0, 0]))
    start = (old - 0.2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda lp: pacs(pacs_loss(), {**fields, "logp": lp}).loss, (start,))


@given(pacs_inputs(), st.floats(0, 2))
def test_pacs_rloo_scores_zero_sum_and_shift_invariant(fields, shift):
    base = pacs(pacs_loss(), fields).loss
    # adding a per-group constant to every score (one token's log-prob in every row of group 0) cancels
    moved = dict(fields)
    logp_old = fields["logp_old"].clone()
    rows = fields["group_ids"] == fields["group_ids"][0]
    logp_old[rows, 0] -= shift
    moved["logp_old"] = logp_old
    assert float(pacs(pacs_loss(), moved).loss) == pytest.approx(float(base), rel=1e-9, abs=1e-12)
    r, gid = fields["rewards"], fields["group_ids"]
    weights = pacs_loss().weights(r, gid)
    for g in gid.unique():
        members = gid == g
        if 0 < float(r[members].sum()) < int(members.sum()):
            assert float(weights[members].sum()) == pytest.approx(int(members.sum()))


@presets()
def test_pacs_composes_with_presets(preset):
    # PACS replaces the surrogate (and needs no advantage); the presets' reward shaping and
    # aggregation stay
    from rlobj import clip_ratio
    recipe = preset.replace(clip_ratio, pacs_loss())
    advantage = preset.terms[-3]
    recipe = recipe.replace(type(advantage), None)
    assert_trains(recipe)


def test_pacs_bad_input():
    with pytest.raises(RlobjInputError, match=r"pacs_loss.beta: expected > 0.0, got 0.0"):
        pacs_loss(beta=0.0)
    with pytest.raises(RlobjInputError, match=r"pacs_loss.baseline: expected 'rloo', 'zscore' or 'none', got 'mean'"):
        pacs_loss(baseline="mean")
    fields = dict(logp=torch.full((2, 1), -0.5), mask=torch.ones(2, 1, dtype=torch.bool),
                  rewards=torch.tensor([1.0, 0.0]), group_ids=torch.tensor([0, 0]))
    with pytest.raises(RlobjInputError, match=r"pacs_loss reads 'logp_old'"):
        pacs(pacs_loss(), fields)
    with pytest.raises(RlobjInputError, match=r"expected values in \[0, 1\], got \[2.0\]"):
        pacs(pacs_loss(), {**fields, "logp_old": fields["logp"], "rewards": torch.tensor([2.0, 0.0])})
    with pytest.raises(RlobjInputError, match=r"pacs_loss needs at least 2 responses per group"):
        pacs(pacs_loss(), {**fields, "logp_old": fields["logp"], "group_ids": torch.tensor([0, 1])})
