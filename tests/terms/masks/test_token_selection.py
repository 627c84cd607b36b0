"""Policy-part masks (rlobj/terms/masks/token_selection.py): the test layers of DESIGN.md s.7.

truncated_mask, top_fraction_mask / top_entropy_mask ("Beyond the 80/20 rule") and
off_policy_sequence_mask: hand values, loop references on Hypothesis inputs (ties included),
gradients (exactly zero on masked tokens, unchanged elsewhere), the properties of the spec
(count rule, subset, ordering, rho = 1, shift invariance, positive-advantage sequences never
dropped), the data-parallel path on a one-rank gloo group, and bad input.

mastered_positive_mask (UloRL DMMPT, arXiv 2507.19766): hand values, a loop reference and its
gradient, monotone in its thresholds, switched off gives the base loss, composition with
grpo / dr_grpo / dapo.
"""

import math

import pytest
import torch
from batches import F64, padded_start, presets, t
from hypothesis import given
from hypothesis import strategies as st
from terms._confident_batches import confident_batches, confident_kw, valid

from rlobj import Objective, mastered_positive_mask, token_mean
from rlobj.algebra import LossPart, State
from rlobj.ops.errors import RlobjInputError
from rlobj.terms.masks import (
    off_policy_sequence_mask,
    top_entropy_mask,
    top_fraction_mask,
    truncated_mask,
)
from rlobj.terms.surrogates import clip_ratio, reinforce


@st.composite
def batches(draw, ties=False):
    """float64 batch with padding (garbage behind it); entropies on a 1/8 grid when ``ties``."""
    g, mask = padded_start(draw, 4, 7)
    b, n = mask.shape
    logp_old = -torch.rand(b, n, generator=g, dtype=F64) * 2 - 0.05
    logp = torch.clamp(logp_old + (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * 0.8, max=-1e-3)
    advantages = (torch.randn(b, generator=g, dtype=F64))[:, None] + 0.3 * torch.randn(b, n, generator=g, dtype=F64)
    entropy = torch.rand(b, n, generator=g, dtype=F64) * 3
    if ties:
        entropy = torch.round(entropy * 2) / 8  # values in {0, 1/8, ..., 6/8}: many ties
    logp_rollout = logp_old + (torch.rand(b, n, generator=g, dtype=F64) * 2 - 1) * 1.5
    truncated = torch.rand(b, generator=g) < 0.4
    pad = ~mask
    return {"logp": torch.where(pad, 4.0, logp), "logp_old": torch.where(pad, float("nan"), logp_old),
            "advantages": torch.where(pad, 1e6, advantages), "mask": mask,
            "entropy": torch.where(pad, float("nan"), entropy), "logp_rollout": torch.where(pad, 7.0, logp_rollout),
            "truncated": truncated}


def kw(batch, grad=False, rollout=False, truncated=False):
    out = {"logp": batch["logp"].clone().requires_grad_(grad), "logp_old": batch["logp_old"],
           "advantages": batch["advantages"], "mask": batch["mask"], "entropy": batch["entropy"]}
    extras = {}
    if rollout:
        extras["logp_rollout"] = batch["logp_rollout"]
    if truncated:
        extras["truncated"] = batch["truncated"]
    if extras:
        out["extras"] = extras
    return out


def ref_reinforce(batch):
    return [[-a * lp if m else 0.0 for a, lp, m in zip(arow, lrow, mrow, strict=True)]
            for arow, lrow, mrow in zip(batch["advantages"].tolist(), batch["logp"].tolist(),
                                        batch["mask"].tolist(), strict=True)]


def ref_top_fraction(scores, mask, rho):
    """Plain loops: k = max(1, ceil(rho*N)) highest scores, ties by earlier flat position."""
    flat = [(s, i * len(row) + j) for i, (srow, row) in enumerate(zip(scores, mask, strict=True))
            for j, (s, m) in enumerate(zip(srow, row, strict=True)) if m]
    if not flat:
        return [[False] * len(row) for row in mask]
    k = max(1, math.ceil(rho * len(flat)))
    chosen = {pos for _, pos in sorted(flat, key=lambda x: (-x[0], x[1]))[:k]}
    width = len(mask[0])
    return [[(i * width + j) in chosen for j in range(width)] for i in range(len(mask))]


# =========================================================================== truncated_mask
def test_truncated_mask_hand_values():
    # reinforce per token -A*logp: row 0 = [1, 2], row 1 (truncated) = [3, pad]
    # loss = (1 + 2) / 3 valid tokens (truncated tokens stay in the normaliser) = 1
    out = (reinforce() >> truncated_mask()).loss(
        logp=t([[-1.0, -2.0], [-3.0, 0.0]]), mask=t([[1, 1], [1, 0]]).bool(), advantages=t([[1.0, 1.0], [1.0, 0.0]]),
        extras={"truncated": torch.tensor([False, True])})
    assert out.state.parts["policy"].mask.tolist() == [[True, True], [False, False]]
    assert float(out.loss) == pytest.approx(1.0)
    assert float(out.metrics["mask/truncated_frac"]) == 0.5


@given(batches())
def test_truncated_mask_matches_loop_reference_and_gradient(batch):
    f = kw(batch, grad=True, truncated=True)
    out = (reinforce() >> truncated_mask()).loss(**f)
    base, mask, trunc = ref_reinforce(batch), batch["mask"].tolist(), batch["truncated"].tolist()
    total = sum(v for i, row in enumerate(base) for j, v in enumerate(row) if mask[i][j] and not trunc[i])
    assert float(out.loss.detach()) == pytest.approx(total / sum(map(sum, mask)), rel=1e-12, abs=1e-15)
    out.loss.backward()
    for i, row in enumerate(mask):
        for j, m in enumerate(row):
            if not m or trunc[i]:
                assert float(f["logp"].grad[i, j]) == 0.0
            else:
                assert float(f["logp"].grad[i, j]) == pytest.approx(-batch["advantages"][i, j].item() / sum(map(sum, mask)))


def test_truncated_mask_bad_input():
    base = {"logp": t([[-1.0]]), "mask": torch.ones(1, 1, dtype=torch.bool), "advantages": t([[1.0]])}
    with pytest.raises(RlobjInputError, match="truncated_mask reads 'extras:truncated'"):
        (reinforce() >> truncated_mask()).loss(**base)
    with pytest.raises(RlobjInputError, match=r"extras\['truncated'\]: expected shape \(batch\) = \(1,\), got \(2,\)"):
        (reinforce() >> truncated_mask()).loss(**base, extras={"truncated": torch.tensor([True, False])})
    with pytest.raises(RlobjInputError, match="truncated_mask modifies the loss part 'policy'"):
        truncated_mask().loss(**base, extras={"truncated": torch.tensor([True])})


# =========================================================================== top_fraction / top_entropy
def test_top_fraction_hand_values():
    # valid entropies 0.1, 0.9, 0.5 | 0.7, 0.2 (N = 5)
    scores = t([[0.1, 0.9, 0.5, 8.0], [0.7, 0.2, 9.0, 9.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    # rho 0.4: k = ceil(2.0) = 2 -> 0.9, 0.7 ; rho 0.5: ceil(2.5) = 3 -> + 0.5 ; rho 0.01: max(1, ceil(.05)) = 1
    assert top_fraction_mask(scores, mask, 0.4).tolist() == [[False, True, False, False], [True, False, False, False]]
    assert top_fraction_mask(scores, mask, 0.5).tolist() == [[False, True, True, False], [True, False, False, False]]
    assert top_fraction_mask(scores, mask, 0.01).sum() == 1
    # per sequence: row 0 N=3, rho 0.4 -> ceil(1.2) = 2: 0.9, 0.5 ; row 1 N=2 -> ceil(0.8) = 1: 0.7
    assert top_fraction_mask(scores, mask, 0.4, "sequence").tolist() == [
        [False, True, True, False], [True, False, False, False]]
    # ties: earlier flat index first
    assert top_fraction_mask(t([[1.0, 1.0, 1.0]]), torch.ones(1, 3, dtype=torch.bool), 0.5).tolist() == [
        [True, True, False]]


def test_top_entropy_mask_hand_values_and_normalisers():
    # reinforce per token -A*logp with A = 1: [1, 2, 3 | 4, pad]; entropies pick the top 2 of 4:
    # tokens with H 0.9 (loss 2) and 0.7 (loss 4)
    common = {"logp": t([[-1.0, -2.0, -3.0], [-4.0, 0.0, 0.0]]), "mask": t([[1, 1, 1], [1, 0, 0]]).bool(),
              "advantages": t([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), "entropy": t([[0.1, 0.9, 0.5], [0.7, 5.0, 5.0]])}
    selected = (reinforce() >> top_entropy_mask(rho=0.5)).loss(**common)
    assert selected.state.parts["policy"].mask.tolist() == [[False, True, False], [True, False, False]]
    assert float(selected.loss) == pytest.approx((2 + 4) / 2)  # reference code: over the selected tokens
    every = (reinforce() >> top_entropy_mask(rho=0.5, normalize="all")).loss(**common)
    assert float(every.loss) == pytest.approx((2 + 4) / 4)  # paper formula: over all response tokens
    assert float(selected.metrics["mask/top_entropy_frac"]) == 0.5
    assert float(selected.metrics["entropy/selected_min"]) == pytest.approx(0.7)
    assert top_entropy_mask().rho == 0.2


@given(batches(ties=True), st.sampled_from([0.01, 0.2, 0.37, 0.5, 0.8, 1.0]))
def test_top_fraction_matches_loop_reference_and_properties(batch, rho):
    scores, mask = batch["entropy"], batch["mask"]
    got = top_fraction_mask(scores, mask, rho)
    assert got.tolist() == ref_top_fraction(scores.tolist(), mask.tolist(), rho)
    n = int(mask.sum())
    assert int(got.sum()) == max(1, math.ceil(rho * n))
    assert not bool((got & ~mask).any())  # subset of the mask
    unselected = scores[mask & ~got]
    if unselected.numel():
        assert float(scores[got].min()) >= float(unselected.max())
    # per sequence: the same rule per row (rows without tokens select nothing)
    per_row = top_fraction_mask(scores, mask, rho, "sequence")
    for i in range(mask.shape[0]):
        assert per_row[i].tolist() == ref_top_fraction(scores[i : i + 1].tolist(), mask[i : i + 1].tolist(), rho)[0]


@given(batches(ties=True), st.sampled_from([0.2, 0.5]), st.sampled_from([-0.5, 0.25, 3.0]),
       st.sampled_from(["batch", "sequence"]))
def test_top_entropy_mask_shift_invariant(batch, rho, shift, scope):
    # the 1/8 grid plus these shifts is exact in float64, so the order (and ties) are kept
    shifted = dict(batch, entropy=batch["entropy"] + shift)
    a = (reinforce() >> top_entropy_mask(rho=rho, scope=scope)).loss(**kw(batch))
    b = (reinforce() >> top_entropy_mask(rho=rho, scope=scope)).loss(**kw(shifted))
    assert a.state.parts["policy"].mask.tolist() == b.state.parts["policy"].mask.tolist()


@given(batches(), st.sampled_from([0.1, 0.3, 0.6]), st.sampled_from(["selected", "all"]),
       st.sampled_from(["batch", "sequence"]))
def test_top_entropy_mask_loss_and_gradient_reference(batch, rho, normalize, scope):
    f = kw(batch, grad=True)
    out = (reinforce() >> top_entropy_mask(rho=rho, scope=scope, normalize=normalize)).loss(**f)
    if scope == "batch":
        chosen = ref_top_fraction(batch["entropy"].tolist(), batch["mask"].tolist(), rho)
    else:
        chosen = [ref_top_fraction([srow], [mrow], rho)[0]
                  for srow, mrow in zip(batch["entropy"].tolist(), batch["mask"].tolist(), strict=True)]
    base = ref_reinforce(batch)
    values = [base[i][j] for i, row in enumerate(chosen) for j, c in enumerate(row) if c]
    denominator = len(values) if normalize == "selected" else int(batch["mask"].sum())
    assert float(out.loss.detach()) == pytest.approx(sum(values) / denominator, rel=1e-12, abs=1e-15)
    out.loss.backward()
    for i, row in enumerate(chosen):
        for j, c in enumerate(row):
            expected = -batch["advantages"][i, j].item() / denominator if c else 0.0
            assert float(f["logp"].grad[i, j]) == pytest.approx(expected, rel=1e-12, abs=0.0)


@given(batches(), st.sampled_from(["selected", "all"]), st.sampled_from(["batch", "sequence"]))
def test_top_entropy_mask_rho_one_is_the_base_loss(batch, normalize, scope):
    f1, f2 = kw(batch, grad=True), kw(batch, grad=True)
    masked = (clip_ratio() >> top_entropy_mask(rho=1.0, normalize=normalize, scope=scope)).loss(**f1)
    base = clip_ratio().loss(**f2)
    torch.testing.assert_close(masked.loss, base.loss)
    masked.loss.backward()
    base.loss.backward()
    torch.testing.assert_close(f1["logp"].grad, f2["logp"].grad)


def test_top_entropy_mask_other_parts_keep_the_response_mask():
    from rlobj.terms.regularizers import entropy_bonus

    common = {"logp": t([[-1.0, -2.0, -3.0]]), "mask": torch.ones(1, 3, dtype=torch.bool),
              "advantages": t([[1.0, 1.0, 1.0]]), "entropy": t([[0.1, 0.9, 0.5]])}
    out = (reinforce() >> top_entropy_mask(rho=0.2) >> entropy_bonus(coef=1.0)).loss(**common)
    assert out.state.parts["policy"].mask.tolist() == [[False, True, False]]
    assert out.state.parts["entropy"].mask.tolist() == [[True, True, True]]
    assert float(out.metrics["loss/entropy"]) == pytest.approx(-0.5)


def test_top_fraction_runs_no_collective_inside_a_term(tmp_path):
    # torch.distributed initialised (gloo, world size 1): the selection is the local one; the
    # trainer gathers the mini-batch across ranks before (a collective per micro-batch inside a
    # term would deadlock ranks holding different numbers of micro-batches)
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialised")
    scores = torch.randperm(12, generator=torch.Generator().manual_seed(0)).double().view(3, 4)
    mask = t([[1, 1, 1, 0], [1, 0, 1, 1], [0, 0, 0, 0]]).bool()
    local = {rho: top_fraction_mask(scores, mask, rho) for rho in (0.1, 0.3, 0.5, 1.0)}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        for rho, expected in local.items():
            assert top_fraction_mask(scores, mask, rho).tolist() == expected.tolist()
        assert not top_fraction_mask(scores, torch.zeros_like(mask), 0.5).any()
    finally:
        dist.destroy_process_group()


def test_top_entropy_mask_bad_input():
    base = {"logp": t([[-1.0]]), "mask": torch.ones(1, 1, dtype=torch.bool), "advantages": t([[1.0]])}
    with pytest.raises(RlobjInputError, match="entropy"):
        (reinforce() >> top_entropy_mask()).loss(**base)
    with pytest.raises(RlobjInputError, match="top_entropy_mask modifies the loss part 'policy'"):
        top_entropy_mask().loss(**base, entropy=t([[0.3]]))


@pytest.mark.parametrize("build, match", [
    (lambda: top_entropy_mask(rho=0.0), "top_entropy_mask.rho"),
    (lambda: top_entropy_mask(rho=1.5), "top_entropy_mask.rho"),
    (lambda: top_entropy_mask(scope="microbatch"), "top_entropy_mask.scope"),
    (lambda: top_entropy_mask(normalize="own"), "top_entropy_mask.normalize"),
    (lambda: top_fraction_mask(t([[1.0]]), torch.ones(1, 1, dtype=torch.bool), 0.0), "top_fraction_mask.rho"),
    (lambda: top_fraction_mask(t([[1.0]]), torch.ones(1, 1, dtype=torch.bool), 0.5, "row"), "top_fraction_mask.scope"),
])
def test_invalid_hyperparameters(build, match):
    with pytest.raises(RlobjInputError, match=match):
        build()


# =========================================================================== off_policy_sequence_mask
def test_off_policy_sequence_mask_hand_values():
    # drift_i = mean_t (logp_behav - logp): row 0 A<0, drift 0.7 > 0.5 -> dropped
    # row 1 A<0, drift 0.3 -> kept ; row 2 A>0, drift 1.0 -> kept (positive advantages never dropped)
    logp = t([[-1.0, -1.0], [-1.0, -1.0], [-2.0, 0.0]])
    behaviour = t([[-0.3, -0.3], [-0.7, -0.7], [-1.0, 5.0]])
    common = {"logp": logp, "mask": t([[1, 1], [1, 1], [1, 0]]).bool(), "advantages": t([[-1.0, -1.0], [-1.0, -1.0], [1.0, 0.0]])}
    out = (reinforce() >> off_policy_sequence_mask()).loss(**common, logp_old=behaviour)
    assert out.state.parts["policy"].mask.tolist() == [[False, False], [True, True], [True, False]]
    assert float(out.metrics["mask/off_policy_seq_frac"]) == pytest.approx(1 / 3)
    # extras["logp_rollout"] takes precedence over logp_old
    out = (reinforce() >> off_policy_sequence_mask()).loss(**common, logp_old=logp, extras={"logp_rollout": behaviour})
    assert out.state.parts["policy"].mask[0].tolist() == [False, False]
    out = (reinforce() >> off_policy_sequence_mask(threshold=0.8)).loss(**common, logp_old=behaviour)
    assert out.state.parts["policy"].mask.tolist() == [[True, True], [True, True], [True, False]]


@given(batches(), st.booleans(), st.sampled_from([-0.2, 0.0, 0.3, 0.5]))
def test_off_policy_sequence_mask_matches_loop_reference(batch, use_rollout, threshold):
    f = kw(batch, grad=True, rollout=use_rollout)
    out = (reinforce() >> off_policy_sequence_mask(threshold=threshold)).loss(**f)
    behaviour = (batch["logp_rollout"] if use_rollout else batch["logp_old"]).tolist()
    mask, lp, adv = batch["mask"].tolist(), batch["logp"].tolist(), batch["advantages"].tolist()
    dropped = []
    for i, row in enumerate(mask):
        idx = [j for j, m in enumerate(row) if m]
        n = max(len(idx), 1)
        drift = sum(behaviour[i][j] - lp[i][j] for j in idx) / n
        mean_adv = sum(adv[i][j] for j in idx) / n
        drop = mean_adv < 0 and drift > threshold
        dropped.append(drop)
        assert out.state.parts["policy"].mask[i].tolist() == [m and not drop for m in row]
        if mean_adv >= 0:
            assert not drop  # never drops a non-negative-advantage sequence
    assert float(out.metrics["mask/off_policy_seq_frac"]) == pytest.approx(sum(dropped) / len(mask))
    out.loss.backward()
    for i, drop in enumerate(dropped):
        if drop:
            assert bool((f["logp"].grad[i] == 0).all())


@given(batches())
def test_off_policy_sequence_mask_drops_fewer_with_a_higher_threshold(batch):
    masks = [(reinforce() >> off_policy_sequence_mask(threshold=th)).loss(**kw(batch)).state.parts["policy"].mask
             for th in (0.0, 0.2, 0.5, 1.0)]
    for lower, higher in zip(masks, masks[1:], strict=False):
        assert not bool((lower & ~higher).any())  # every token kept at a lower threshold stays kept


def test_off_policy_sequence_mask_bad_input():
    base = {"logp": t([[-1.0]]), "mask": torch.ones(1, 1, dtype=torch.bool), "advantages": t([[-1.0]])}
    with pytest.raises(RlobjInputError, match="off_policy_sequence_mask reads 'logp_old'"):
        (reinforce() >> off_policy_sequence_mask()).loss(**base)
    with pytest.raises(RlobjInputError, match=r"logp_rollout.*\(1, 1\).*\(1, 2\)"):
        (reinforce() >> off_policy_sequence_mask()).loss(**base, extras={"logp_rollout": t([[-1.0, -1.0]])})
    with pytest.raises(RlobjInputError, match="off_policy_sequence_mask modifies the loss part 'policy'"):
        off_policy_sequence_mask().loss(**base, logp_old=t([[-1.0]]))
    # a policy part without advantages in the state (written by hand): the mask names what it needs
    state = State.from_batch(logp=t([[-1.0]]), mask=torch.ones(1, 1, dtype=torch.bool), logp_old=t([[-1.0]]))
    state = state.add_part("policy", LossPart(t([[0.5]]), state.mask))
    with pytest.raises(RlobjInputError, match="off_policy_sequence_mask reads 'advantages'"):
        off_policy_sequence_mask()(state)


def test_micro_batch_scope_equals_batch_scope_without_data_parallelism():
    from rlobj.terms.masks import top_fraction_mask

    scores = torch.rand(3, 5)
    mask = torch.rand(3, 5) > 0.3
    torch.testing.assert_close(top_fraction_mask(scores, mask, 0.4, "micro_batch"),
                               top_fraction_mask(scores, mask, 0.4, "batch"))
    with pytest.raises(RlobjInputError, match="scope: expected one of"):
        top_fraction_mask(scores, mask, 0.4, "global")


# =========================================================================== mastered_positive_mask
HAND = {
    # row 0: reward 1, p = e^-0.005 = 0.995, e^-0.7 = 0.497, e^-0.001 = 0.999; mean H = (0.1+0.3+0.05)/3 = 0.15 < 0.2
    # row 1: reward 1, p = 0.998, 0.741;  mean H = (0.1+0.5)/2 = 0.3 >= 0.2 -> gate closed
    # row 2: reward 0 -> never masked
    "logp": t([[-0.005, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]),
    "logp_old": t([[-0.005, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]),
    "mask": t([[1, 1, 1], [1, 1, 0], [1, 1, 1]]).bool(),
    "advantages": t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]),
    "entropy": t([[0.1, 0.3, 0.05], [0.1, 0.5, 0.0], [0.0, 0.0, 0.0]]),
    "rewards": t([1.0, 1.0, 0.0]),
}


def test_mastered_positive_mask_hand_values():
    # reinforce per token -A*logp: [0.005, 0.7, 0.001 | 0.002, 0.3 | -0.001, -0.004, -2.0], N = 8
    # masked: row 0 tokens 0 and 2 (p >= 0.99, gate open) -> numerator 0.7 + 0.002 + 0.3 - 0.001 - 0.004 - 2.0
    #       = -1.003, denominator unchanged = 8 -> -0.125375
    out = (reinforce() >> mastered_positive_mask() >> token_mean()).loss(**HAND)
    assert out.state.parts["policy"].mask.tolist() == [[False, True, False], [True, True, False], [True, True, True]]
    assert float(out.loss) == pytest.approx(-1.003 / 8, abs=1e-12)
    assert float(out.metrics["mask/mastered_frac"]) == pytest.approx(2 / 8)
    assert float(out.metrics["mask/mastered_gate_frac"]) == pytest.approx(1 / 2)  # 1 of 2 positive responses
    base = (reinforce() >> token_mean()).loss(**HAND)
    assert float(base.loss) == pytest.approx(-0.997 / 8, abs=1e-12)  # all 8 tokens: -1.003 + 0.005 + 0.001
    # batch gate: mean H over all 8 tokens = 1.05 / 8 = 0.13125 < 0.2 -> row 1 token 0 (p 0.998) also masked
    batch = (reinforce() >> mastered_positive_mask(gate_scope="batch") >> token_mean()).loss(**HAND)
    assert float(batch.loss) == pytest.approx((-1.003 - 0.002) / 8, abs=1e-12)
    # the always-on variant (sigma = inf) masks row 1 token 0 too; tau = 0.999 keeps only p >= 0.999 (row 0 token 2)
    assert float((reinforce() >> mastered_positive_mask(sigma=math.inf) >> token_mean()).loss(**HAND).loss) == \
        pytest.approx((-1.003 - 0.002) / 8, abs=1e-12)
    strict = (reinforce() >> mastered_positive_mask(tau=0.999) >> token_mean()).loss(**HAND)
    assert float(strict.loss) == pytest.approx((-0.997 - 0.001) / 8, abs=1e-12)


def test_mastered_positive_mask_reads_the_current_policy_when_asked():
    # current policy: row 0 token 0 drops to p = e^-0.5 = 0.61 -> only token 2 is masked
    fields = dict(HAND, logp=t([[-0.5, -0.7, -0.001], [-0.002, -0.3, 0.0], [-0.001, -0.004, -2.0]]))
    out = (reinforce() >> mastered_positive_mask(prob_source="current")).loss(**fields)
    assert out.state.parts["policy"].mask[0].tolist() == [True, True, False]
    assert "logp_old" not in mastered_positive_mask(prob_source="current").slots_read()
    old = (reinforce() >> mastered_positive_mask()).loss(**fields)
    assert old.state.parts["policy"].mask[0].tolist() == [False, True, False]


def ref_mastered(batch, tau, sigma, scope="sequence"):
    """Plain loops: the set of masked (i, j)."""
    mask, ent, lp, r = (batch["mask"].tolist(), batch["entropy"].tolist(), batch["logp_old"].tolist(),
                        batch["rewards"].tolist())
    if scope == "sequence":
        means = [sum(e for e, m in zip(er, mr) if m) / max(1, sum(mr)) for er, mr in zip(ent, mask)]
    else:
        pairs = valid(batch)
        means = [sum(ent[i][j] for i, j in pairs) / len(pairs)] * len(mask)
    return {(i, j) for i, j in valid(batch) if r[i] >= 1.0 and means[i] < sigma and math.exp(lp[i][j]) >= tau}


@given(confident_batches(), st.sampled_from([0.95, 0.99, 0.999]), st.sampled_from([0.1, 0.2, 0.3]),
       st.sampled_from(["sequence", "batch"]))
def test_mastered_positive_mask_matches_loop_reference_and_gradient(batch, tau, sigma, scope):
    fields = confident_kw(batch, grad=True)
    out = (reinforce() >> mastered_positive_mask(tau=tau, sigma=sigma, gate_scope=scope) >> token_mean()).loss(**fields)
    masked = ref_mastered(batch, tau, sigma, scope)
    pairs = valid(batch)
    adv, lp = batch["advantages"].tolist(), batch["logp"].tolist()
    total = sum(-adv[i][j] * lp[i][j] for i, j in pairs if (i, j) not in masked)
    assert float(out.loss.detach()) == pytest.approx(total / len(pairs), rel=1e-12, abs=1e-14)
    out.loss.backward()
    for i, j in pairs:
        expected = 0.0 if (i, j) in masked else -adv[i][j] / len(pairs)  # denominator: all N tokens
        assert float(fields["logp"].grad[i, j]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert not bool(fields["logp"].grad[~batch["mask"]].any())


@given(confident_batches())
def test_mastered_positive_mask_properties(batch):
    def masked(**options):
        out = (reinforce() >> mastered_positive_mask(**options)).loss(**confident_kw(batch))
        return batch["mask"] & ~out.state.parts["policy"].mask

    base = masked(tau=0.99, sigma=0.2)
    # monotone: raising sigma or lowering tau gives a superset
    assert not bool((base & ~masked(tau=0.99, sigma=0.3)).any())
    assert not bool((base & ~masked(tau=0.98, sigma=0.2)).any())
    # never a token of a reward-0 response, never a token with p < tau
    assert not bool(base[batch["rewards"] < 1].any())
    assert not bool((base & (batch["logp_old"].nan_to_num(0.0).exp() < 0.99)).any())
    # switched off (tau > 1 or sigma = 0): exactly the base loss
    plain = (reinforce() >> token_mean()).loss(**confident_kw(batch)).loss
    for options in ({"tau": 1.5}, {"sigma": 0.0}):
        off = (reinforce() >> mastered_positive_mask(**options) >> token_mean()).loss(**confident_kw(batch)).loss
        assert float(off) == float(plain)


def test_mastered_positive_mask_bad_input():
    with pytest.raises(RlobjInputError, match=r"mastered_positive_mask.tau: expected > 0.0, got 0"):
        mastered_positive_mask(tau=0)
    with pytest.raises(RlobjInputError, match=r"mastered_positive_mask.sigma: expected >= 0.0, got -1"):
        mastered_positive_mask(sigma=-1)
    with pytest.raises(RlobjInputError, match=r"prob_source: expected one of \('old', 'current'\), got 'new'"):
        mastered_positive_mask(prob_source="new")
    with pytest.raises(RlobjInputError, match=r"gate_scope: expected one of \('sequence', 'batch'\), got 'group'"):
        mastered_positive_mask(gate_scope="group")
    no_rewards = {k: v for k, v in HAND.items() if k != "rewards"}
    with pytest.raises(RlobjInputError, match="mastered_positive_mask reads 'rewards'"):
        (reinforce() >> mastered_positive_mask()).loss(**no_rewards)
    with pytest.raises(RlobjInputError, match="mastered_positive_mask modifies the loss part 'policy'"):
        mastered_positive_mask().loss(**HAND)
    no_old = {k: v for k, v in HAND.items() if k != "logp_old"}
    with pytest.raises(RlobjInputError, match="mastered_positive_mask reads 'logp_old'"):
        (reinforce() >> mastered_positive_mask()).loss(**no_old)
    no_entropy = {k: v for k, v in HAND.items() if k != "entropy"}
    with pytest.raises(RlobjInputError, match="entropy"):
        (reinforce() >> mastered_positive_mask()).loss(**no_entropy)


@presets()
def test_mastered_positive_mask_composition_with_presets(preset):
    from batches import leaf, make_batch

    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=5))
    base = Objective(preset)(**batch)
    # the mask switched off leaves the preset's loss unchanged; switched on it only removes tokens
    off = Objective(preset >> mastered_positive_mask(tau=1.5))(**batch)
    assert float(off.loss) == float(base.loss)
    on = Objective(preset >> mastered_positive_mask(tau=0.05, sigma=10.0))(**batch)
    assert bool((on.state.parts["policy"].mask <= base.state.parts["policy"].mask).all())
    assert float(on.metrics["mask/mastered_frac"]) > 0
