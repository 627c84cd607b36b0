"""The micro-batch law through the mini-batch statistics hook (DESIGN.md section 3.7 and 6).

Splitting a mini-batch into micro-batches, with one global Normalizer and the statistics of
``Objective.minibatch_stats`` computed once on the whole mini-batch, gives the loss and the
gradient of the whole mini-batch, for the terms whose loss depends on batch-wide choices:
top_entropy_mask, pacs_loss, clip_cov, kl_cov, siren, self_reward_mse (class-balanced weights
from mini-batch counts, row mean over the global rows; the probe carries gradient per
micro-batch) and mastered_positive_mask(gate_scope="batch") (one entropy gate per mini-batch). Groups are interleaved so that every
micro-batch split cuts them; response lengths are uneven. The reference options
(``scope="micro_batch"``) keep the per-call values.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj import (
    Objective,
    clip_cov,
    clip_ratio,
    constant_normalizer,
    group_mean_baseline,
    group_zscore,
    grpo,
    kl_cov,
    mastered_positive_mask,
    pacs_loss,
    reinforce,
    self_reward_mse,
    seq_mean_token_mean,
    siren,
    token_mean,
    top_entropy_mask,
)
from rlobj.algebra.state import LossPart, Normalizer, State, stats_key
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import VocabView

F64 = torch.float64
SPLITS = [[4, 4], [2, 2, 2, 2], [3, 5], [1, 3, 4]]


def make_fields(seed: int, batch: int = 8, seq: int = 6, groups: int = 2, vocab: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    lengths[0] = seq
    mask = torch.arange(seq)[None, :] < lengths[:, None]
    logp_old = -0.05 - 2.0 * torch.rand(batch, seq, generator=g, dtype=F64)
    logp = torch.clamp(logp_old + 0.3 * torch.randn(batch, seq, generator=g, dtype=F64), max=-1e-3)
    rewards = (torch.rand(batch, generator=g) < 0.5).to(F64)
    rewards[:groups] = 1.0
    rewards[groups:2 * groups] = 0.0  # every group holds both classes
    fields = dict(logp=logp, logp_old=logp_old, mask=mask, rewards=rewards,
                  group_ids=torch.arange(batch) % groups,  # interleaved: every split cuts groups
                  entropy=3.0 * torch.rand(batch, seq, generator=g, dtype=F64))
    if vocab:
        fields["logits"] = 2.0 * torch.randn(batch, seq, vocab, generator=g, dtype=F64)
        fields["tokens"] = torch.randint(0, vocab, (batch, seq), generator=g)
    return fields


def with_probe(fields: dict, truncated=(2, 5)) -> dict:
    """LaSeR inputs: ``extras["self_reward_logp"]`` = 10 logp[:, 0] - 13 (so the score is
    logp[:, 0] + 1, with gradient through ``theta``) and rows ``truncated`` cut off."""
    cut = torch.zeros(fields["mask"].shape[0], dtype=torch.bool)
    cut[list(truncated)] = True
    return dict(fields, probe=True, truncated=cut)


def _inputs(fields: dict, theta: torch.Tensor, rows=slice(None)) -> dict:
    """The batch fields of ``rows`` with the policy computed from the parameter ``theta``."""
    out = {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in fields.items()
           if k not in ("logits", "tokens", "probe", "truncated")}
    if "logits" in fields:  # theta = logits: logp of the sampled tokens and a vocab view
        logits = theta[rows]
        out["logp"] = torch.log_softmax(logits, -1).gather(-1, fields["tokens"][rows, :, None])[..., 0]
        out["vocab"] = VocabView.from_logits(logits)
    else:  # theta = the log-probs themselves
        out["logp"] = theta[rows]
    out["logp"] = torch.where(out["mask"], out["logp"], torch.zeros((), dtype=F64))
    if fields.get("probe"):  # a per-row input with gradient, recomputed per micro-batch
        out["extras"] = {"self_reward_logp": 10.0 * out["logp"][:, 0] - 13.0, "truncated": fields["truncated"][rows]}
    return out


def whole(term, fields, term_state=None):
    """Loss and gradient of the whole batch, objective called directly (no statistics)."""
    theta = (fields["logits"] if "logits" in fields else fields["logp"]).clone().requires_grad_(True)
    out = Objective(term)(**_inputs(fields, theta), term_state=term_state)
    out.loss.backward()
    return out.loss.detach(), theta.grad, out


def micro(term, fields, sizes, term_state=None, stats=True):
    """Sum of the micro-batch losses and gradients: statistics once on the whole batch."""
    objective = Objective(term)
    theta = (fields["logits"] if "logits" in fields else fields["logp"]).clone().requires_grad_(True)
    inputs = _inputs(fields, theta.detach())
    view = inputs.pop("vocab", None)
    prepared = objective.prepare(**inputs)
    if stats:
        found = objective.minibatch_stats(prepared.update(vocab=view), term_state)
        assert (found or not objective.needs_minibatch_stats) and all(k.startswith("stats:") for k in found)
        prepared = prepared.update(extras={**prepared.extras, **found})
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    normalizer = Normalizer.from_masks([fields["mask"][r] for r in slices])
    total, outs = torch.zeros((), dtype=F64), []
    for rows, piece in zip(slices, objective.split(prepared, sizes)):
        live = _inputs(fields, theta, rows)
        piece = piece.update(logp=live["logp"], vocab=live.get("vocab"), cache={})
        if "extras" in live:  # per-micro-batch values with gradient win (the trainer's providers)
            piece = piece.update(extras={**piece.extras, **live["extras"]})
        out = objective.loss(piece, normalizer=normalizer, term_state=term_state)
        out.loss.backward()
        total, outs = total + out.loss.detach(), outs + [out]
    return total, theta.grad, outs


def assert_law(term, fields, sizes, term_state=None, nonzero=True):
    loss, grad, _ = whole(term, fields, term_state)
    got_loss, got_grad, _ = micro(term, fields, sizes, term_state)
    torch.testing.assert_close(got_loss, loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(got_grad, grad, atol=1e-6, rtol=1e-6)
    assert grad.abs().sum() > 0 or not nonzero


# ===================================================================== the law, term by term
TOP_ENTROPY = [grpo >> top_entropy_mask(rho=0.3),
               grpo >> top_entropy_mask(rho=0.3, normalize="all"),
               group_zscore() >> clip_ratio() >> token_mean() >> top_entropy_mask(rho=0.2),
               grpo >> top_entropy_mask(rho=0.4, scope="sequence")]
PACS = [pacs_loss(baseline=b, balanced=w) >> agg for b in ("rloo", "zscore", "none")
        for w, agg in ((True, seq_mean_token_mean()), (False, token_mean()))]
COV = [group_zscore() >> clip_cov(ratio=0.3, cov_low=-10.0, cov_high=10.0) >> token_mean(),
       group_zscore() >> clip_cov(ratio=0.1, cov_low=-0.2, cov_high=10.0, seed=5) >> seq_mean_token_mean(),
       group_zscore() >> kl_cov(ratio=0.2, beta=0.7) >> token_mean(),
       group_zscore() >> kl_cov(ratio=0.05) >> seq_mean_token_mean()]


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("term", TOP_ENTROPY, ids=repr)
def test_top_entropy_mask_law(term, sizes):
    assert_law(term, make_fields(1), sizes)


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("term", PACS, ids=repr)
def test_pacs_loss_law_with_split_groups(term, sizes):
    assert_law(term, make_fields(2), sizes)


SELF_REWARD = [grpo >> self_reward_mse(coef=0.7),
               self_reward_mse(coef=1.0) >> token_mean(),
               group_zscore() >> clip_ratio() >> constant_normalizer(max_tokens=6.0) >> self_reward_mse(coef=0.5),
               grpo >> self_reward_mse(coef=0.3, balanced=False)]


def mastered(sigma: float, tau: float = 0.5, **kwargs):
    return grpo >> mastered_positive_mask(tau=tau, sigma=sigma, gate_scope="batch", **kwargs)


def batch_entropy(fields: dict) -> float:
    return float(fields["entropy"][fields["mask"]].mean())


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("term", SELF_REWARD, ids=repr)
def test_self_reward_mse_law(term, sizes):
    assert_law(term, with_probe(make_fields(13)), sizes)


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("prob_source", ["old", "current"])
def test_mastered_positive_mask_batch_gate_law(prob_source, sizes):
    fields = make_fields(14)
    h = batch_entropy(fields)
    for sigma in (h + 1e-3, h - 1e-3):  # the gate on (mini-batch mean just below sigma), then off
        term = mastered(sigma, prob_source=prob_source)
        assert Objective(term).needs_minibatch_stats
        assert_law(term, fields, sizes)
    # the gate fires: the loss differs from plain grpo
    assert float(whole(mastered(h + 1e-3, prob_source=prob_source), fields)[0]) != \
        pytest.approx(float(whole(grpo, fields)[0]), rel=1e-6)


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("term", COV, ids=repr)
def test_clip_cov_and_kl_cov_law(term, sizes):
    assert_law(term, make_fields(3), sizes, term_state={})


SIREN_BASE = group_mean_baseline() >> clip_ratio() >> constant_normalizer(max_tokens=6.0)


@pytest.mark.parametrize("sizes", SPLITS)
@pytest.mark.parametrize("term", [SIREN_BASE >> siren(coef=0.7, anchor=0.2, p=0.7),
                                  grpo >> siren(coef=0.3, quantile=0.5)], ids=repr)
def test_siren_law(term, sizes):
    fields = make_fields(4, vocab=5)
    key = next(k for k in Objective(term)._stats_terms())[0]
    assert_law(term, fields, sizes, term_state={key: 0.35})  # a stored anchor (second mini-batch on)


def test_siren_anchor_is_the_first_minibatch_value():
    term = SIREN_BASE >> siren(coef=0.7)
    fields = make_fields(5, vocab=5)
    _, _, outs = micro(term, fields, [2, 2, 2, 2], term_state={})
    anchors = {out.term_state["siren"] for out in outs}
    whole_value = float(whole(term, fields)[2].metrics["siren/entropy"])
    assert len(anchors) == 1 and anchors.pop() == pytest.approx(whole_value, rel=1e-12)
    assert all(float(out.metrics["siren/regularizer"]) == 0.0 for out in outs)
    # the base loss and gradient only: R = 0 and dR = 0 at the anchor
    assert_close = torch.testing.assert_close
    assert_close(micro(term, fields, [2, 2, 2, 2], term_state={})[1], whole(SIREN_BASE, fields)[1])


def test_kl_cov_law_over_two_ppo_epochs():
    """The selection is recomputed per mini-batch from the current (detached) policy."""
    term = group_zscore() >> kl_cov(ratio=0.2, beta=0.7) >> token_mean()
    fields = make_fields(6)
    selections = []
    for _epoch in range(2):
        loss, grad, _ = whole(term, fields)
        got_loss, got_grad, outs = micro(term, fields, [2, 2, 2, 2])
        torch.testing.assert_close(got_loss, loss, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(got_grad, grad, atol=1e-6, rtol=1e-6)
        prepared = Objective(term).prepare(**_inputs(fields, fields["logp"]))
        selections.append(Objective(term).minibatch_stats(prepared)[stats_key("kl_cov", "selected")])
        fields = dict(fields, logp=torch.clamp(fields["logp"] - 2.0 * grad / grad.abs().max(), max=-1e-3))
    assert not torch.equal(selections[0], selections[1])


def test_the_clip_cov_counter_advances_once_per_minibatch():
    term = group_zscore() >> clip_cov(ratio=0.3, cov_low=-10.0, cov_high=10.0) >> token_mean()
    _, _, outs = micro(term, make_fields(7), [2, 2, 2, 2], term_state={"clip_cov": 3})
    assert [out.term_state["clip_cov"] for out in outs] == [4, 4, 4, 4]


# ============================================================ without statistics: the reference
def _sizes_loss(term, fields, sizes):
    return micro(term, fields, sizes, stats=False)


def test_micro_batch_scope_keeps_the_per_call_values():
    fields = make_fields(8)
    sizes = [3, 5]
    bounds = [(0, 3), (3, 8)]
    # top_entropy_mask: per call selection, normalised by the call's selected count
    term = reinforce() >> token_mean() >> top_entropy_mask(rho=0.3, scope="micro_batch")
    assert not Objective(term).needs_minibatch_stats
    total, _, _ = _sizes_loss(term, dict(fields, advantages=fields["rewards"] - 0.5), sizes)
    expected = 0.0
    for a, b in bounds:
        mask, entropy = fields["mask"][a:b], fields["entropy"][a:b]
        k = max(1, math.ceil(0.3 * int(mask.sum())))
        threshold = torch.sort(entropy[mask], descending=True).values[k - 1]
        chosen = mask & (entropy >= threshold)
        values = -(fields["rewards"][a:b, None] - 0.5) * fields["logp"][a:b]
        expected += float(values[chosen].sum()) / k
    assert float(total) == pytest.approx(expected, rel=1e-12)
    whole_loss = float(whole(term, dict(fields, advantages=fields["rewards"] - 0.5))[0])
    assert float(total) != pytest.approx(whole_loss, rel=1e-3)  # the law is broken, on purpose
    # clip_cov / kl_cov / siren: each micro-batch equals the term called on it alone
    for term in (group_zscore() >> kl_cov(ratio=0.2, scope="micro_batch") >> token_mean(),
                 group_zscore() >> clip_cov(ratio=0.3, cov_low=-10.0, cov_high=10.0, scope="micro_batch")
                 >> token_mean()):
        objective = Objective(term)
        assert not objective.needs_minibatch_stats
        prepared = objective.prepare(**_inputs(fields, fields["logp"]))
        for piece in objective.split(prepared, sizes):
            alone = objective.loss(piece, term_state={})
            direct = Objective(term.terms[1] >> token_mean()).loss(piece.update(parts={}), term_state={})
            torch.testing.assert_close(alone.loss, direct.loss)
            assert float(alone.metrics[f"{term.terms[1].__class__.__name__}/frac"]) > 0


def test_siren_micro_batch_scope_is_the_mean_of_per_micro_batch_regularisers():
    fields = make_fields(9, vocab=5)
    term = SIREN_BASE >> siren(coef=0.5, anchor=0.1, scope="micro_batch")
    assert not Objective(term).needs_minibatch_stats
    _, _, outs = micro(term, fields, [4, 4], stats=False)
    per_call = [0.5 * (float(out.metrics["siren/entropy"]) - 0.1) ** 2 for out in outs]
    added = [float(out.metrics["loss/siren"]) for out in outs]
    assert sum(added) == pytest.approx(sum(per_call) / 2, rel=1e-10)


def test_self_reward_mse_micro_batch_scope_keeps_the_per_call_values():
    """scope="micro_batch": the row mean of each call (the reference's per-micro-batch ``.mean()``);
    without statistics it is exactly the per-call value of the old term (weights over the call)."""
    fields = with_probe(make_fields(15))
    sizes, bounds = [3, 5], [(0, 3), (3, 8)]
    score = fields["logp"][:, 0] + 1.0
    rewards, finished = fields["rewards"], ~fields["truncated"]

    def per_call(a, b, counts=None):
        r, f = rewards[a:b], finished[a:b]
        n_f, n_c = counts if counts is not None else (float(f.sum()), float(((r > 0.5) & f).sum()))
        w_c, w_w = n_f / (2 * n_c) if n_c else 0.0, n_f / (2 * (n_f - n_c)) if n_f > n_c else 0.0
        w = torch.where(r > 0.5, torch.tensor(w_c, dtype=F64), torch.tensor(w_w, dtype=F64))
        return float((0.4 * w * f * (score[a:b] - r) ** 2).sum()) / (b - a)

    term = self_reward_mse(coef=0.4, scope="micro_batch") >> token_mean()
    old = [per_call(a, b) for a, b in bounds]
    _, _, outs = micro(term, fields, sizes, stats=False)
    assert [float(out.loss.detach()) for out in outs] == pytest.approx(old, rel=1e-12)
    # with the trainer's statistics the weights are the mini-batch's, the mean still per call
    counts = (float(finished.sum()), float(((rewards > 0.5) & finished).sum()))
    _, _, outs = micro(term, fields, sizes)
    assert [float(out.loss.detach()) for out in outs] == pytest.approx([per_call(a, b, counts) for a, b in bounds], rel=1e-12)
    # the law is broken on purpose; the default keeps it
    total = sum(float(out.loss.detach()) for out in outs)
    assert total != pytest.approx(float(whole(term, fields)[0]), rel=1e-3)
    default = self_reward_mse(coef=0.4) >> token_mean()
    assert float(micro(default, fields, sizes)[0]) == pytest.approx(float(whole(default, fields)[0]), rel=1e-12)
    assert float(whole(default, fields)[0]) == pytest.approx(per_call(0, 8), rel=1e-12)


def test_mastered_positive_mask_without_statistics_gates_per_call():
    """Called per micro-batch without statistics, the batch gate is each call's own mean entropy
    (the old value); with them, one gate for the whole mini-batch."""
    fields = make_fields(14)
    h = batch_entropy(fields)
    term = mastered(h + 1e-3)
    sizes, bounds = [3, 5], [(0, 3), (3, 8)]
    means = [float(fields["entropy"][a:b][fields["mask"][a:b]].mean()) for a, b in bounds]
    assert min(means) < h + 1e-3 < max(means)  # the per-call gates disagree with the mini-batch's
    _, _, outs = micro(term, fields, sizes, stats=False)
    objective = Objective(term)
    prepared = objective.prepare(**_inputs(fields, fields["logp"]))
    normalizer = Normalizer.from_masks([fields["mask"][a:b] for a, b in bounds])
    for out, piece, mean in zip(outs, objective.split(prepared, sizes), means):
        alone = Objective(grpo >> mastered_positive_mask(tau=0.5, sigma=h + 1e-3, gate_scope="sequence"))
        expected = alone.loss(piece.update(entropy=torch.full_like(piece.entropy, mean)), normalizer)
        torch.testing.assert_close(out.loss, expected.loss)
    per_call_total = sum(float(out.loss.detach()) for out in outs)
    assert per_call_total != pytest.approx(float(whole(term, fields)[0]), rel=1e-6)


def test_without_statistics_the_terms_compute_them_from_their_call():
    """Whole batch, direct call == whole batch with its own statistics (values and gradients)."""
    for term, fields in [(TOP_ENTROPY[0], make_fields(10)), (PACS[0], make_fields(10)),
                         (SELF_REWARD[0], with_probe(make_fields(10))), (mastered(1.5), make_fields(10)),
                         (COV[0], make_fields(10)), (COV[2], make_fields(10)),
                         (SIREN_BASE >> siren(coef=0.7, anchor=0.2), make_fields(10, vocab=5))]:
        loss, grad, _ = whole(term, fields, term_state={})
        got_loss, got_grad, _ = micro(term, fields, [8], term_state={})
        torch.testing.assert_close(got_loss, loss, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(got_grad, grad, atol=1e-12, rtol=1e-12)


# ======================================================================= values by hand
def test_pacs_rloo_coefficients_by_hand():
    fields = make_fields(11)
    term = pacs_loss(baseline="rloo", balanced=True)
    state = State.from_batch(**{k: fields[k] for k in ("logp", "logp_old", "mask", "rewards", "group_ids")})
    stats = Objective(term).minibatch_stats(state)
    coef = stats[stats_key("pacs_loss", "coef")]
    score = (torch.where(fields["mask"], fields["logp"] - fields["logp_old"], 0.0)).sum(-1)
    groups, r = fields["group_ids"], fields["rewards"]
    members = {j: [i for i in range(8) if groups[i] == groups[j]] for j in range(8)}
    d = torch.zeros(8, dtype=F64)  # w_i l'(psi_i), l' = sigmoid(psi) - r for BCE with logits
    for i in range(8):
        group = members[i]
        n, n_pos = len(group), sum(float(r[m]) > 0.5 for m in group)
        w = n / (2 * (n_pos if r[i] > 0.5 else n - n_pos))
        psi = score[i] - sum(score[m] for m in group if m != i) / (n - 1)
        d[i] = w * (torch.sigmoid(psi) - r[i])
    expected = torch.stack([d[j] - sum(d[i] for i in members[j] if i != j) / (len(members[j]) - 1)
                            for j in range(8)])
    torch.testing.assert_close(coef, expected)
    psi = stats[stats_key("pacs_loss", "psi")]
    torch.testing.assert_close(stats[stats_key("pacs_loss", "loss")],
                               torch.tensor([w * float(F.binary_cross_entropy_with_logits(p, y))
                                             for w, p, y in zip(term.weights(r, groups), psi, r)], dtype=F64))


def test_top_entropy_stats_and_global_count_by_hand():
    entropy = torch.tensor([[3.0, 1.0, 2.0, 0.0], [5.0, 4.0, 0.5, 0.0]], dtype=F64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    logp = torch.full((2, 4), -1.0, dtype=F64)
    objective = Objective(reinforce() >> token_mean() >> top_entropy_mask(rho=0.4))
    prepared = objective.prepare(logp=logp, mask=mask, entropy=entropy,
                                 advantages=torch.tensor([1.0, 2.0], dtype=F64))
    stats = objective.minibatch_stats(prepared)
    # 7 valid tokens, k = ceil(2.8) = 3: entropies 5, 4, 3
    assert stats["stats:top_entropy_mask:selected"].tolist() == [[True, False, False, False],
                                                                  [True, True, False, False]]
    assert float(stats["stats:top_entropy_mask:tokens"]) == 3.0
    assert float(stats["stats:top_entropy_mask:rows"]) == 2.0
    prepared = prepared.update(extras={**prepared.extras, **stats})
    first, second = objective.split(prepared, [1, 1])
    normalizer = Normalizer.from_masks([first.mask, second.mask])
    # loss -A logp = A on selected tokens; divided by the global count 3, not the local 1 or 2
    assert float(objective.loss(first, normalizer).loss) == pytest.approx(1.0 / 3)
    assert float(objective.loss(second, normalizer).loss) == pytest.approx(4.0 / 3)


def test_self_reward_mse_stats_and_global_rows_by_hand():
    # r = [1, 0, 1, 0], row 3 truncated; probe -> r_s = [1, 0.5, 0, 0.3]; errors^2 = [0, 0.25, 1, -]
    # mini-batch counts N_f = 3, N+ = 2, N- = 1 -> w = [3/4, 3/2, 3/4, 0]; N = 4 rows
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True], [True, True, False]])
    fields = dict(logp=torch.full((4, 3), -0.5, dtype=F64), mask=mask, rewards=torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64),
                  extras={"self_reward_logp": torch.tensor([-13.0, -18.0, -23.0, -20.0], dtype=F64),
                          "truncated": torch.tensor([False, False, False, True])})

    def losses(term, stats=True):
        objective = Objective(term >> token_mean())
        prepared = objective.prepare(**fields)
        found = objective.minibatch_stats(prepared) if stats else {}
        if stats:
            assert {k: float(v) for k, v in found.items()} == {"stats:self_reward_mse:finished": 3.0,
                                                               "stats:self_reward_mse:correct": 2.0}
        pieces = objective.split(prepared.update(extras={**prepared.extras, **found}), [2, 2])
        normalizer = Normalizer.from_masks([p.mask for p in pieces])
        return [float(objective.loss(p, normalizer).loss) for p in pieces]

    # default: mini-batch weights over the global N = 4: 0.1 (3/2 0.25) / 4, 0.1 (3/4 1) / 4
    assert losses(self_reward_mse()) == pytest.approx([0.009375, 0.01875])
    assert sum(losses(self_reward_mse())) == pytest.approx(float(mse(fields)))
    # micro_batch: mini-batch weights, mean over the 2 rows of each call
    assert losses(self_reward_mse(scope="micro_batch")) == pytest.approx([0.01875, 0.0375])
    # micro_batch without statistics (the old per-call term): call 1 w = [1, 1], call 2 N_f = 1, N+ = 1 -> w = 1/2
    assert losses(self_reward_mse(scope="micro_batch"), stats=False) == pytest.approx([0.0125, 0.025])
    assert not self_reward_mse(balanced=False).has_minibatch_stats()
    assert self_reward_mse(scope="micro_batch").has_minibatch_stats()
    assert self_reward_mse().minibatch_stats_reads() == {"rewards", "mask"}
    with pytest.raises(RlobjInputError, match="scope"):
        self_reward_mse(scope="rank")


def mse(fields):
    return Objective(self_reward_mse() >> token_mean())(**fields).loss


def test_mastered_positive_mask_batch_gate_by_hand():
    # entropy: row means 0.1 and 0.5, mini-batch mean 0.3 < sigma 0.35: both rows gated;
    # p_old >= 0.99 at row 0 tokens {0, 2}, row 1 tokens {0, 1}; loss -A logp = A, token_mean over 6
    entropy = torch.tensor([[0.1] * 3, [0.5] * 3], dtype=F64)
    logp_old = torch.log(torch.tensor([[0.995, 0.5, 0.999], [0.995, 0.995, 0.5]], dtype=F64))
    objective = Objective(reinforce() >> token_mean() >> mastered_positive_mask(sigma=0.35, gate_scope="batch"))
    prepared = objective.prepare(logp=torch.full((2, 3), -1.0, dtype=F64), logp_old=logp_old,
                                 mask=torch.ones(2, 3, dtype=torch.bool), entropy=entropy,
                                 rewards=torch.ones(2, dtype=F64), advantages=torch.tensor([1.0, 2.0], dtype=F64))
    stats = objective.minibatch_stats(prepared)
    assert list(stats) == ["stats:mastered_positive_mask:mean_entropy"]
    assert float(stats["stats:mastered_positive_mask:mean_entropy"]) == pytest.approx(0.3)
    normalizer = Normalizer.from_masks([prepared.mask[:1], prepared.mask[1:]])
    with_stats = objective.split(prepared.update(extras={**prepared.extras, **stats}), [1, 1])
    assert [float(objective.loss(p, normalizer).loss) for p in with_stats] == pytest.approx([1 / 6, 2 / 6])
    assert float(objective(prepared).loss) == pytest.approx(0.5)
    # per call (no statistics): row 1's own mean 0.5 >= sigma, so its gate is off: 3 tokens x 2 / 6
    alone = objective.split(prepared, [1, 1])
    assert [float(objective.loss(p, normalizer).loss) for p in alone] == pytest.approx([1 / 6, 1.0])
    assert not mastered_positive_mask().has_minibatch_stats()
    assert mastered_positive_mask().minibatch_stats(prepared) == {}
    assert mastered_positive_mask(gate_scope="batch").minibatch_stats_reads() == {"entropy", "mask"}


def test_siren_linearised_micro_batch_value_by_hand():
    fields = make_fields(12, vocab=5)
    term = SIREN_BASE >> siren(coef=0.5, anchor=0.1)
    _, _, outs = micro(term, fields, [3, 5], term_state={})
    h = float(whole(term, fields, term_state={})[2].metrics["siren/entropy"])
    live = [int(fields["mask"][a:b].any(-1).sum()) for a, b in ((0, 3), (3, 8))]
    for out, rows in zip(outs, live):
        assert float(out.metrics["siren/entropy"]) == pytest.approx(h, rel=1e-12)
        assert float(out.metrics["loss/siren"]) == pytest.approx(0.5 * (h - 0.1) ** 2 * rows / 8, rel=1e-10)


# ============================================================== API and bad input
def test_objective_stats_api():
    objective = Objective(grpo >> top_entropy_mask() >> siren())
    assert objective.needs_minibatch_stats
    assert {"entropy", "vocab", "mask"} <= objective.minibatch_stats_reads
    assert "part:policy" not in objective.minibatch_stats_reads
    assert not Objective(grpo).needs_minibatch_stats
    assert Objective(grpo).minibatch_stats(State.from_batch(logp=torch.zeros(1, 1), mask=torch.ones(1, 1))) == {}
    assert not top_entropy_mask(scope="micro_batch").has_minibatch_stats()
    assert top_entropy_mask(scope="sequence").has_minibatch_stats()
    assert not top_entropy_mask(scope="sequence", normalize="all").has_minibatch_stats()
    assert not clip_ratio().has_minibatch_stats()
    state = State.from_batch(logp=torch.zeros(1, 1), mask=torch.ones(1, 1), extras={"stats:x:a": torch.ones(1)})
    assert state.update(key="x").own_stats("a").tolist() == [1.0]
    assert state.update(key="x#2").own_stats("a", 7) == 7
    with pytest.raises(RlobjInputError, match="scope"):
        kl_cov(scope="rank")
    with pytest.raises(RlobjInputError, match="scope"):
        siren(scope="rank")
    with pytest.raises(RlobjInputError, match="counts"):
        LossPart(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), "global", Normalizer(1.0, 1.0))


def test_a_statistic_of_a_wrong_shape_is_refused():
    class bad(top_entropy_mask):
        def minibatch_stats(self, state):
            return {"selected": torch.ones(3)}

    state = State.from_batch(logp=torch.zeros(2, 2), mask=torch.ones(2, 2), entropy=torch.ones(2, 2))
    with pytest.raises(RlobjInputError, match=r"bad.minibatch_stats: statistic 'selected' must be"):
        Objective(reinforce() >> bad()).minibatch_stats(state.update(advantages=torch.ones(2, 2)))


# ====================================================================== Hypothesis property
@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 7), rho=st.sampled_from([0.05, 0.3, 0.8]),
       which=st.sampled_from(["top_entropy", "kl_cov", "pacs", "self_reward", "mastered"]))
def test_law_property(seed, cut, rho, which):
    fields = make_fields(seed)
    term = {"top_entropy": grpo >> top_entropy_mask(rho=rho),
            "kl_cov": group_zscore() >> kl_cov(ratio=rho) >> token_mean(),
            "pacs": pacs_loss(baseline="zscore") >> token_mean(),
            "self_reward": grpo >> self_reward_mse(coef=rho),
            "mastered": mastered(batch_entropy(fields) + rho - 0.3, tau=rho)}[which]
    if which == "self_reward":
        fields = with_probe(fields, truncated=[seed % 8])
    assert_law(term, fields, [cut, 8 - cut], term_state={}, nonzero=False)
