"""Issue 14: each defect found by the audit of the presets and terms against the authors' code,
with a test that fails on the code before the fix (commit d08dbac). Float64, hand-sized inputs,
expected values from the reference formulas, not from rlobj helpers."""

import math

import pytest
import torch

from rlobj import clip_cov, dapo, mvar_advantage, nsr, psr, reinforce, sapo, siren, w_reinforce
from rlobj.algebra import Objective, State
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView

F64 = torch.float64


def _batch(lengths, rewards, logp=-0.5, logp_old=None, group_ids=None, width=None, **extras):
    width = width or max(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    logp_t = torch.full(mask.shape, logp, dtype=F64) if not isinstance(logp, torch.Tensor) else logp
    old = logp_t.detach() if logp_old is None else logp_old
    return dict(logp=logp_t, logp_old=old, mask=mask, rewards=torch.tensor(rewards, dtype=F64),
                group_ids=torch.zeros(len(lengths), dtype=torch.long) if group_ids is None else group_ids,
                extras=extras)


# ------------------------------------------------------------------------------------------ DAPO
def test_dapo_drops_an_all_correct_group_even_when_a_length_penalty_splits_its_rewards():
    # four correct answers, one inside the overlong buffer (16384 < 18000 <= 20480): DAPO filters
    # on accuracy (verl filter_groups.metric = acc), so the group is flat and contributes nothing.
    # The old preset filtered the length-penalised reward and trained on advantages
    # [0.5, -1.5, 0.5, 0.5] (a length signal only).
    batch = _batch([100, 18000, 100, 100], [1.0, 1.0, 1.0, 1.0], accuracy=torch.ones(4, dtype=F64))
    out = Objective(dapo)(**batch)
    assert not out.state.mask.any()
    assert float(out.metrics["groups/zero_variance_frac"]) == 1.0


def test_dapo_overlong_penalty_is_relative_to_the_reward_range():
    # reference: rewards +1 / -1, penalty factor 1 (verl overlong_penalty_factor). On 0/1 rewards
    # the same shaping is factor 0.5: the z-scored advantages must equal the reference's.
    lengths = [100, 20480, 100, 100]
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64)
    batch = _batch(lengths, correct.tolist(), accuracy=correct)
    out = Objective(dapo)(**batch)
    expected_len = 20480 - 4096
    penalty = torch.tensor([min(0.0, (expected_len - n) / 4096) for n in lengths], dtype=F64).clamp(min=-1.0)
    reference = (2 * correct - 1) + penalty  # +1/-1 rewards, factor 1
    z = (reference - reference.mean()) / (reference.std() + 1e-6)
    got = out.state.advantages[:, 0]
    torch.testing.assert_close(got, z, rtol=1e-5, atol=1e-6)
    # a correct answer at the maximum length stays above the wrong ones (old: equal to them)
    assert got[1] > got[2]


# ------------------------------------------------------------------------------------------ SAPO
def test_sapo_averages_each_response_then_the_responses():
    # verl / TRL SAPO: per-sequence token mean. Lengths 1 and 3 with per-token losses chosen by
    # the gate: check against sum_i (1/|y_i|) sum_t l_it / N.
    lengths = [1, 3]
    logp_old = torch.full((2, 3), -1.0, dtype=F64)
    logp = logp_old + torch.tensor([[0.1, 0.0, 0.0], [0.2, -0.1, 0.05]], dtype=F64)
    batch = _batch(lengths, [1.0, 0.0], logp=logp, logp_old=logp_old)
    out = Objective(sapo)(**batch)
    adv = (torch.tensor([1.0, 0.0], dtype=F64) - 0.5) / (torch.tensor([1.0, 0.0], dtype=F64).std() + 1e-6)
    ratio = (logp - logp_old).exp()
    tau = torch.where(adv > 0, torch.tensor(1.0, dtype=F64), torch.tensor(1.05, dtype=F64))[:, None]
    gate = torch.sigmoid(tau * (ratio - 1)) * 4 / tau  # SAPO: f = (4/tau) sigmoid(tau (r - 1))
    per_token = -gate * adv[:, None]
    mask = batch["mask"]
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1)
    assert float(out.loss) == pytest.approx(float(per_seq.mean()), rel=1e-5)
    token_mean = (per_token * mask).sum() / mask.sum()  # the old aggregation, clearly different
    assert abs(float(out.loss) - float(token_mean)) > 1e-3


# ---------------------------------------------------------------------------------------- RiskPO
def test_mvar_default_uses_the_quantiles_of_each_step():
    # the released trainer in effect uses per-bundle quantiles on every step: the second step
    # (with term state from the first) gives the same advantages as a fresh first step
    rewards = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    batch = _batch([1] * 12, rewards, group_ids=groups)
    objective = Objective(mvar_advantage(bundle_size=2) >> reinforce())
    first = objective(**batch)
    shifted = _batch([1] * 12, [1.0 - r for r in rewards], group_ids=groups)
    fresh = objective(**shifted)
    second = objective(**shifted, term_state=first.term_state)
    torch.testing.assert_close(second.state.advantages, fresh.state.advantages)


# -------------------------------------------------------------------------------------- Clip-Cov
def test_clip_cov_clips_at_the_authors_range():
    # the authors' Clip-Cov scripts set clip_ratio_low = clip_ratio_high = 1: ratio 1.5 with a
    # positive advantage is not clipped (with 0.2 it was, at 1.2). One token: covariance 0, so
    # no token is detached.
    batch = _batch([1], [1.0], logp=torch.tensor([[math.log(0.75)]], dtype=F64),
                   logp_old=torch.tensor([[math.log(0.5)]], dtype=F64))
    batch["advantages"] = torch.ones(1, 1, dtype=F64)
    state = State.from_batch(**batch)
    policy = clip_cov()(state).parts["policy"].values
    assert float(policy[0, 0]) == pytest.approx(-1.5)


# -------------------------------------------------------------------------------------- PSR / NSR
@pytest.mark.parametrize("term", [psr(), nsr(), w_reinforce()])
def test_sample_class_terms_refuse_non_binary_rewards_without_a_threshold(term):
    # partial credit 0.7 used to be split at 0.5 silently
    batch = _batch([1, 1], [0.7, 0.0])
    with pytest.raises(RlobjInputError, match="threshold"):
        term(State.from_batch(**batch))
    kept = type(term)(threshold=0.5)(State.from_batch(**batch))
    assert kept.advantages is not None
    # binary rewards, 0/1 or -1/+1, need no threshold
    for rewards in ([1.0, 0.0], [1.0, -1.0]):
        assert term(State.from_batch(**_batch([1, 1], rewards))).advantages is not None


# ---------------------------------------------------------------------------------------- Lp-Reg
def test_lp_reg_fixed_mode_proxy_is_uniform_when_nothing_reaches_tau():
    # reference apply_min_p(regular_type="fixed"): every logit below tau is set to -1e4; when
    # all are, the softmax is uniform (old rlobj: the argmax alone, log-prob 0)
    z = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=F64)).view(1, 1, 4)
    view = VocabView.from_logits(z)
    for token in range(4):
        got = view.proxy_logp(torch.tensor([[token]]), 0.5, "fixed").item()
        assert got == pytest.approx(-math.log(4))


def test_lp_reg_proxy_renormalises_at_the_rollout_temperature():
    # reference: kept set from the raw logits, then logits / T, then log-softmax
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=F64)
    view = VocabView.from_logits(probs.log().view(1, 1, 4))
    temperature, kappa = 0.6, 0.25  # keeps p >= 0.125: tokens 0, 1, 2
    kept = probs[:3] ** (1 / temperature)
    for token in range(3):
        got = view.proxy_logp(torch.tensor([[token]]), kappa, "minp", temperature=temperature).item()
        assert got == pytest.approx(math.log(float(kept[token] / kept.sum())), rel=1e-12)


# ----------------------------------------------------------------------------------------- SIREN
def siren_reference_entropy(logits: torch.Tensor, k: int, p: float) -> torch.Tensor:
    """Transcription of SIREN's efficient_top_p_sampling (Linn3a/siren dp_actor.py) on
    [n, V] logits: softmax over V, nucleus = the top-k ids before the first cumulative >= p."""
    probs = torch.softmax(logits, -1)
    top = torch.topk(logits, k=k).indices
    cumulative = torch.cumsum(torch.gather(probs, 1, top), -1)
    cutoff = torch.searchsorted(cumulative, torch.full((logits.shape[0], 1), p, dtype=logits.dtype))
    keep = torch.zeros_like(probs, dtype=torch.bool)
    for row in range(logits.shape[0]):
        keep[row, top[row, : int(cutoff[row])]] = True
    q = probs * keep
    q = q / (q.sum(-1, keepdim=True) + 1e-12)
    return -(q * torch.log(q + 1e-12)).sum(-1)


def test_siren_nucleus_lives_in_the_top_10000_logits():
    # near-uniform rows over 12000 tokens: 80% of the mass needs ~9600 tokens at full
    # vocabulary, more than... so the reference's top-10000 pre-truncation is visible when the
    # mass of the top 10000 stays below p: use p = 0.9 (needs ~10800 tokens)
    g = torch.Generator().manual_seed(0)
    logits = 0.01 * torch.randn(3, 12000, generator=g, dtype=F64)
    expected = siren_reference_entropy(logits, 10000, 0.9)
    view = VocabView.from_logits(logits.view(1, 3, 12000))
    got = view.top_p_entropy(0.9, max_tokens=siren().top_k)[0]
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert siren().top_k == 10000
    # without the truncation the nucleus is larger and the entropy differs
    assert float((view.top_p_entropy(0.9)[0] - expected).abs().min()) > 1e-3


def test_siren_anchor_comes_from_the_first_rollout_batch_when_given():
    # the trainer gives extras["siren_anchor"] (the whole first rollout batch, SirenAnchor);
    # the first call must store it, not its own (micro- or mini-batch) mean
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 5, generator=g, dtype=F64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    state = State.from_batch(logp=torch.full((2, 3), -1.0, dtype=F64), mask=mask,
                             vocab=VocabView.from_logits(logits),
                             extras={"siren_anchor": torch.tensor(0.123, dtype=F64)})
    out = siren()(state)
    assert float(out.metrics["siren/anchor"]) == pytest.approx(0.123)
    assert "extras:siren_anchor" in siren().slots_read()
    assert "extras:siren_anchor" not in siren(anchor=0.5).slots_read()
