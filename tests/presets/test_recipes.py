"""Issue 14: each faithful recipe's loss and gradient equal a transcription of its reference's
formula with the reference's settings, on synthetic float64 rollouts.

The transcriptions below are written from the reference code (verl ``core_algos.py``
``compute_policy_loss`` / ``agg_loss`` / ``kl_penalty``, and each paper's own loss) with plain
torch operations: no rlobj helper computes an expected value. Each check compares the loss and
its gradient with respect to the policy log-probs (and, for SIREN, the logits).
"""

import math

import pytest
import torch
from presets._transcriptions import F64, check, clipped_pg, grpo_advantages, rollouts, token_mean

from rlobj.algebra import Objective
from rlobj.ops.vocab import VocabView
from rlobj.presets.recipes import RECIPES


# ------------------------------------------------------------------------------ DAPO
def test_dapo_recipe():
    batch, g = rollouts(width=40)
    lengths = batch["mask"].sum(-1)
    correct = batch["rewards"].clone()
    correct[8:12] = 1.0  # one flat (all-correct) group that the length penalty would split
    batch["rewards"] = correct
    # reference: +1/-1 rewards, overlong buffer with factor 1 (verl reward_manager/dapo.py),
    # scaled here to max length 40 / buffer 16 on both sides
    from rlobj.presets.recipes import dapo_recipe
    from rlobj.terms.rewards import overlong_penalty

    small = dapo_recipe.replace(overlong_penalty, overlong_penalty(max_length=40, buffer=16, factor=0.5))
    pm = torch.clamp((24 - lengths.to(F64)) / 16, -1.0, 0.0)
    score = (2 * correct - 1) + pm
    keep = torch.ones_like(correct, dtype=torch.bool)
    for gid in batch["group_ids"].unique():  # filter_groups on acc
        rows = batch["group_ids"] == gid
        if correct[rows].std() == 0:
            keep[rows] = False
    adv = grpo_advantages(score, batch["group_ids"])
    mask = batch["mask"] & keep[:, None]

    def reference(logp):
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.28), mask)

    leaf = batch["logp"].clone().requires_grad_(True)
    ours = Objective(small)(**{**batch, "logp": leaf}, extras={"accuracy": correct}).loss
    (grad,) = torch.autograd.grad(ours, leaf)
    ref_leaf = batch["logp"].clone().requires_grad_(True)
    theirs = reference(ref_leaf)
    (ref_grad,) = torch.autograd.grad(theirs, ref_leaf)
    # equal up to the std epsilon: (r + p/2) / (std/2 + 1e-6) vs (2r - 1 + p) / (std + 1e-6)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-10)
    assert not keep[8:12].any() and keep.any()


# ------------------------------------------------------------------------------ Lp-Reg
def test_lp_reg_recipe():
    # enough negative tokens that floor(0.01 |N-|) >= 2 (the reference runs the branch for k > 1)
    batch, g = rollouts(groups=8, size=8, width=80)
    proxy = batch["logp_old"] + torch.rand(batch["logp"].shape, generator=g, dtype=F64)  # pi_proxy >= pi_old
    proxy = torch.where(torch.rand(proxy.shape, generator=g) < 0.2, torch.full_like(proxy, -1e4), proxy)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):
        # Lp-Reg-dev compute_policy_loss_lp_reg: lowest-logp k = int(0.01 |N-|) negative tokens,
        # kept where logp < proxy; there -A r + 1.0 * k3(proxy - logp); elsewhere clip [0, 10]
        mask = batch["mask"]
        a = adv[:, None].expand_as(mask)
        negatives = mask & (a < 0)
        k = int(0.01 * int(negatives.sum()))
        selected = torch.zeros_like(mask)
        if k > 1:
            flat = torch.where(negatives, logp.detach(), torch.full_like(logp, math.inf)).flatten()
            selected.view(-1)[torch.sort(flat, stable=True).indices[:k]] = True
        selected &= logp.detach() < proxy
        ratio = torch.exp(torch.clamp(logp - batch["logp_old"], -20, 20))
        d = torch.clamp(proxy - logp, -20, 20)
        k3 = torch.clamp(torch.exp(d) - d - 1, -10, 10)
        per_token = torch.where(selected, -a * ratio + 1.0 * k3, clipped_pg(logp, batch["logp_old"], adv, 1.0, 9.0))
        assert int(selected.sum()) >= 1
        return token_mean(per_token, mask)

    check("lp_reg_recipe", batch, reference, extras={"logp_proxy": proxy})


# ------------------------------------------------------------------------------ 80/20
def test_forking_tokens_recipe():
    batch, g = rollouts(width=20)
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 3
    correct = batch["rewards"]
    adv = grpo_advantages(correct, batch["group_ids"])  # no length penalty at these lengths

    def reference(logp):
        # get_global_entropy_top_mask: k = ceil(0.2 N) (int(x + 0.9999)) top-entropy valid tokens;
        # token-mean over the selected tokens; DAPO clip 0.2 / 0.28 with dual clip 3
        mask = batch["mask"]
        n = int(mask.sum())
        k = max(1, int(0.2 * n + 0.9999))
        flat = torch.where(mask, entropy, torch.full_like(entropy, -math.inf)).flatten()
        top = torch.zeros_like(mask)
        top.view(-1)[torch.topk(flat, k).indices] = True
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.28, dual=3.0), mask & top)

    check("forking_tokens_recipe", batch, reference, entropy=entropy, extras={"accuracy": correct})


# ------------------------------------------------------------------------------ SIREN
def test_siren_recipe():
    # verl pads responses to max_response_length: width 3072, seq-mean-token-sum-norm divides
    # each response's sum by it; a small vocabulary (top-10000 pre-truncation covers it)
    batch, g = rollouts(groups=2, size=4, width=3072, min_length=2)
    batch["mask"] = torch.arange(3072)[None, :] < torch.randint(2, 9, (8,), generator=g)[:, None]
    vocab = 7
    logits = torch.randn(8, 3072, vocab, generator=g, dtype=F64) * 1.5
    tokens = torch.randint(0, vocab, (8, 3072), generator=g)
    anchor = 0.3
    adv = grpo_advantages(batch["rewards"], batch["group_ids"], std=False)

    def reference(z):
        logp = torch.log_softmax(z, -1).gather(-1, tokens[..., None])[..., 0]
        mask = batch["mask"]
        pg = clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2, dual=3.0)
        pg_loss = torch.mean((pg * mask).sum(-1)) / mask.shape[-1]
        # efficient_top_p_sampling: softmax over V, nucleus before the first cumulative >= p
        probs = torch.softmax(z, -1)
        order = torch.sort(probs.detach(), -1, descending=True).indices
        cumulative = torch.gather(probs.detach(), -1, order).cumsum(-1)
        cutoff = (cumulative < 0.8).sum(-1, keepdim=True)
        inside = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, torch.arange(vocab) < cutoff)
        q = probs * inside
        q = q / (q.sum(-1, keepdim=True) + 1e-12)
        entropy = -(q * torch.log(q + 1e-12)).sum(-1)
        # mask_by_quantile(entropy, mask, 1, 0.8): x > nanquantile(x, 0.8) per row
        scores = torch.where(mask, entropy.detach(), torch.full_like(entropy, math.nan))
        peak = mask & (entropy.detach() > torch.nanquantile(scores, 0.8, dim=-1, keepdim=True))
        per_row = (entropy * peak).sum(-1) / peak.sum(-1)  # seq-mean-token-mean
        entropy_loss = per_row.mean()
        return pg_loss + 0.005 * (entropy_loss - anchor) ** 2

    leaf = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(leaf, -1).gather(-1, tokens[..., None])[..., 0]
    ours = Objective(RECIPES["siren_recipe"].objective)(
        **{**batch, "logp": logp}, vocab=VocabView.from_logits(leaf),
        extras={"siren_anchor": torch.tensor(anchor, dtype=F64)}).loss
    (grad,) = torch.autograd.grad(ours, leaf)
    ref_leaf = logits.clone().requires_grad_(True)
    theirs = reference(ref_leaf)
    (ref_grad,) = torch.autograd.grad(theirs, ref_leaf)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-8)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------------------ 1-shot RLVR
def test_one_shot_rlvr_recipe():
    batch, g = rollouts()
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2
    logp_ref = batch["logp_old"] + 0.1 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)
    logp_ref = logp_ref.clamp(max=-1e-3)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):
        # dp_actor.py: pg - entropy_coeff * token-mean H + kl_coef * token-mean low_var_kl
        mask = batch["mask"]
        kl = torch.clamp(logp_ref - logp, -20, 20)
        low_var_kl = torch.clamp(torch.exp(kl) - kl - 1, -10, 10)
        return (token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2), mask)
                - 0.001 * token_mean(entropy, mask) + 0.001 * token_mean(low_var_kl, mask))

    check("one_shot_rlvr_recipe", batch, reference, entropy=entropy, logp_ref=logp_ref)


# ------------------------------------------------------------------------------ W-REINFORCE
def test_w_reinforce_recipe():
    batch, g = rollouts()
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2
    # compute_psr_nsr_outcome_advantage: +lambda for reward 1, -1 for reward 0, no baseline
    adv = torch.where(batch["rewards"] == 1, torch.tensor(0.1, dtype=F64), torch.tensor(-1.0, dtype=F64))

    def reference(logp):
        mask = batch["mask"]
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2), mask) - 1e-4 * token_mean(entropy, mask)

    check("w_reinforce_recipe", batch, reference, entropy=entropy)


# ------------------------------------------------------------------------------ UloRL
def test_ulorl_recipe():
    batch, g = rollouts(width=10)
    # confident old policy on half the tokens, low entropy on two correct responses
    confident = torch.rand(batch["logp"].shape, generator=g) < 0.5
    batch["logp_old"] = torch.where(confident, torch.full_like(batch["logp_old"], math.log(0.995)), batch["logp_old"])
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64)
    entropy[0] = 0.05
    entropy[4] = 0.1
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):
        # ULORL.pdf Eq. 9-10: drop tokens of reward-1 responses with p >= 0.99 when the
        # response's mean entropy < 0.2; the normaliser keeps every token (1 / sum |o_i|)
        mask = batch["mask"]
        mean_h = (entropy * mask).sum(-1) / mask.sum(-1)
        mpt = (batch["rewards"] == 1)[:, None] & (batch["logp_old"].exp() >= 0.99) & (mean_h < 0.2)[:, None]
        values = clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2) * (~mpt)
        assert bool((mpt & mask).any())
        return (values * mask).sum() / mask.sum()

    check("ulorl_recipe", batch, reference, entropy=entropy)


# ------------------------------------------------------------------------------ Clip-Cov / KL-Cov
def _cov(logp, adv, mask):
    """verl: (A - mean A)(logp - mean logp) over the valid tokens (detached)."""
    a = adv[:, None].expand_as(mask)
    valid_a, valid_l = a[mask], logp.detach()[mask]
    cov = torch.zeros_like(logp)
    cov[mask] = (valid_a - valid_a.mean()) * (valid_l - valid_l.mean())
    return cov


def test_clip_cov_recipe():
    batch, g = rollouts(width=6)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])
    # log-probs nearly constant (every covariance far below 1), then one token moved so that its
    # covariance is about 3: the draw of max(1, int(2e-4 N)) = 1 token among the candidates in
    # (1, 5) has a single candidate, so the reference's random choice is determined
    batch["logp_old"] = torch.full_like(batch["logp_old"], -6.0)
    batch["logp"] = -6.0 + 0.01 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)
    a = adv[:, None].expand_as(batch["mask"])[batch["mask"]]
    row = int(torch.argmax(adv))
    batch["logp"][row, 0] = -6.0 + 3.0 / float(adv[row] - a.mean())
    batch["logp_old"][row, 0] = batch["logp"][row, 0] + 0.1  # ratio inside the [0, 2] clip
    cov = _cov(batch["logp"], adv, batch["mask"])
    inside = batch["mask"] & (cov > 1.0) & (cov < 5.0)
    assert int(inside.sum()) == 1 and bool((batch["logp"] < 0).all())

    def reference(logp):
        ratio = torch.exp(torch.clamp(logp - batch["logp_old"], -20, 20))
        unclipped = (ratio >= 0.0) & (ratio <= 2.0)
        detach = inside & unclipped
        values = clipped_pg(logp, batch["logp_old"], adv, 1.0, 1.0) * (~detach)
        return token_mean(values, batch["mask"])

    check("clip_cov_recipe", batch, reference)


def test_kl_cov_recipe():
    batch, g = rollouts(groups=16, size=8, width=8)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):
        # compute_policy_loss_kl_cov: -A r everywhere, + 1.0 |logp - logp_old| on the
        # max(1, int(0.002 N)) tokens of largest covariance
        mask = batch["mask"]
        cov = _cov(logp, adv, mask)
        k = max(1, int(0.002 * int(mask.sum())))
        flat = torch.where(mask, cov, torch.full_like(cov, -math.inf)).flatten()
        top = torch.zeros_like(mask)
        top.view(-1)[torch.topk(flat, k).indices] = True
        ratio = torch.exp(torch.clamp(logp - batch["logp_old"], -20, 20))
        values = -adv[:, None] * ratio + top * 1.0 * (logp - batch["logp_old"]).abs()
        return token_mean(values, mask)

    check("kl_cov_recipe", batch, reference)


# ------------------------------------------------------------------------------ RiskPO
def test_riskpo_recipe():
    batch, g = rollouts(groups=10, size=10, width=5)
    batch["rewards"] = (torch.rand(100, generator=g) < 0.4).to(F64)
    rewards, groups = batch["rewards"], batch["group_ids"]

    def transcribed_advantages():
        # RiskPO core_algos (bundled MVaR, DAPO-math script): bundles of 5 consecutive questions,
        # paper j = the j-th rollout of each; X_j = sum of its rewards; a, b = per-bundle
        # torch.quantile at 0.2 / 0.8; A = (1.5 g_C + g_R) / 2.5 / (std(X) + 1e-6);
        # sum-mean credit to the responses of the paper
        adv = torch.zeros_like(rewards)
        questions = [torch.nonzero(groups == q).flatten().tolist() for q in range(10)]
        for start in range(0, 10, 5):
            bundle = questions[start:start + 5]
            papers = [[q[j] for q in bundle] for j in range(10)]
            x = torch.stack([rewards[p].sum() for p in papers])
            a, b = torch.quantile(x, torch.tensor([0.2, 0.8], dtype=F64))
            g_r = (torch.clamp(x - a, min=0) - torch.clamp(x - b, min=0)) / (0.8 - 0.2)
            g_c = -torch.clamp(a - x, min=0) / 0.2
            paper_adv = (1.5 * g_c + g_r) / 2.5 / (x.std() + 1e-6)
            for j, paper in enumerate(papers):
                mu = [rewards[q].mean() for q in bundle]
                centred = [rewards[row] - m for row, m in zip(paper, mu)]
                total = sum(centred)
                for row, c in zip(paper, centred):
                    adv[row] = paper_adv[j] * c / total if abs(float(total)) > 1e-6 else paper_adv[j] / 5
        return adv

    adv = transcribed_advantages()

    def reference(logp):
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2), batch["mask"])

    check("riskpo_recipe", batch, reference)


# ------------------------------------------------------------------------------ DPH-RL
def test_dph_rl_recipe():
    # the reference's micro-batches are homogeneous: a D_exp batch gets the clipped PG
    # (clip 0.2 / 0.28, token mean), a D_pef batch (stored pi_0 samples of solved prompts,
    # advantage 0) only eta * token-mean(u - log u - 1), u = pi_theta / pi_0 (dp_actor.py type 2)
    batch, g = rollouts()
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])
    none = torch.zeros(16, dtype=torch.bool)
    logp_init = (batch["logp_old"] + 0.2 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)

    def exploration(logp):
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.28), batch["mask"])

    check("dph_rl_recipe", batch, exploration, extras={"dph_rows": none, "logp_init": logp_init})

    solved = {**batch, "rewards": torch.ones(16, dtype=F64)}

    def perfect(logp):
        log_u = torch.clamp(logp - logp_init, -20, 20)
        d = torch.clamp(torch.exp(log_u) - log_u - 1, -10, 10)
        return 0.01 * token_mean(d, batch["mask"])

    check("dph_rl_recipe", solved, perfect, extras={"dph_rows": ~none, "logp_init": logp_init})


# ------------------------------------------------------------------------------ PAPO
def test_papo_recipe():
    batch, g = rollouts()
    logp_masked = (batch["logp_old"] - 0.5 * torch.rand(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    logp_ref = (batch["logp_old"] + 0.1 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def low_var_kl(logp, ref):
        kl = (ref - logp).clamp(-20.0, 20.0)
        return torch.clamp(kl.exp() - kl - 1, -10.0, 10.0)

    def reference(logp):
        # PAPO dp_actor.py: pg (EasyR1 clip 0.2 / 0.3, dual 3, token mean) + 0.01 KL_ref
        # - 0.02 KL_prcp(logp, logp_masked) + 0.05 H_masked + 0.05 H_orig, H = token-mean(-logp)
        mask = batch["mask"]
        pg = token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.3, dual=3.0), mask)
        return (pg + 0.01 * token_mean(low_var_kl(logp, logp_ref), mask)
                - 0.02 * token_mean(low_var_kl(logp, logp_masked), mask)
                + 0.05 * token_mean(-logp_masked, mask) + 0.05 * token_mean(-logp, mask))

    check("papo_recipe", batch, reference, logp_ref=logp_ref, extras={"logp_perturbed": logp_masked})


# ------------------------------------------------------------------------------ VPPO
def test_vppo_recipe():
    batch, g = rollouts(width=10)
    dependency = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2  # S_t, distinct values
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):
        # VPPO-RL dp_actor.update_policy: S_bar_i = mean S over the response; min-max over the
        # (mini-)batch; beta_max = 0.9 + 0.1 / (mean n + 1e-8); A *= 0.9 + n (beta_max - 0.9);
        # per response the top ceil(0.4 L) tokens by S keep their PG loss; token mean over all
        # valid tokens; EasyR1 clip 0.2 / 0.28, dual 3; + 0.06 * token-mean(-logp)
        mask = batch["mask"]
        lengths = mask.sum(-1)
        s_bar = (dependency * mask).sum(-1) / lengths
        n = torch.clamp((s_bar - s_bar.min()) / (s_bar.max() - s_bar.min()), 0.0, 1.0)
        beta_max = 0.9 + 0.1 / (n.mean() + 1e-8)
        scaled = adv * (0.9 + n * (beta_max - 0.9))
        keep = torch.zeros_like(mask)
        for i in range(mask.shape[0]):
            k = math.ceil(0.4 * int(lengths[i]))
            scores = torch.where(mask[i], dependency[i], torch.full_like(dependency[i], -math.inf))
            keep[i, torch.topk(scores, k).indices] = True
        pg = clipped_pg(logp, batch["logp_old"], scaled, 0.2, 0.28, dual=3.0) * keep
        return token_mean(pg, mask) + 0.06 * token_mean(-logp, mask)

    check("vppo_recipe", batch, reference, extras={"visual_dependency": dependency})


# ------------------------------------------------------------------------------ PACS
def test_pacs_recipe():
    batch, g = rollouts()
    rewards, groups = batch["rewards"], batch["group_ids"]

    def reference(logp):
        # pacs_core_algos.py: s = beta * sum_t (logp - logp_old); psi = s - leave-one-out mean;
        # BCE-with-logits against r, balanced class weights per mixed group, mean over rows
        s = 1.0 * ((logp - batch["logp_old"]) * batch["mask"]).sum(-1)
        psi = torch.zeros_like(s)
        weights = torch.ones_like(s)
        for gid in groups.unique():
            rows = groups == gid
            size = int(rows.sum())
            psi[rows] = s[rows] - (s[rows].sum() - s[rows]) / (size - 1)
            positives = int((rewards[rows] > 0.5).sum())
            if 0 < positives < size:
                weights[rows] = torch.where(rewards[rows] > 0.5, torch.tensor(size / (2.0 * positives), dtype=F64),
                                            torch.tensor(size / (2.0 * (size - positives)), dtype=F64))
        bce = torch.nn.functional.binary_cross_entropy_with_logits(psi, rewards, reduction="none")
        return (weights * bce).mean()

    check("pacs_recipe", batch, reference)
