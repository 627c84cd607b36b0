"""Issue 14 (continued): the recipes of rlobj/presets/seed_recipes.py equal plain-torch
transcriptions of their references' formulas with the references' settings, in float64.

Each transcription follows the authors' code named in the recipe's docstring (RL-PLUS
``compute_token_on_off_policy_loss`` + ``rlplus_actor.py``; CANON
``compute_dr_entropy_per_token_group_outcome_advantage``; LaSeR ``ray_trainer.py`` +
``dp_actor.py``; RLPR ``prob.py``; Co-rewarding ``co_reward.py`` + GRPO; SAR
``compute_ppl_qa_log``; the noisy-verifier paper's PGBC, App. B.2) for one micro-batch on one
rank; no rlobj helper computes an expected value.
"""

from collections import Counter

import pytest
import torch
from presets._transcriptions import (
    F64,
    check,
    clipped_pg,
    grpo_advantages,
    rollouts,
    token_mean,
)

from rlobj.algebra import Objective
from rlobj.algebra.aggregation import constant_normalizer
from rlobj.presets.recipes import RECIPES
from rlobj.terms.regularizers import entropy_bonus


def low_var_kl(logp, logp_ref):
    kl = torch.clamp(logp_ref - logp, -20, 20)
    return torch.clamp(torch.exp(kl) - kl - 1, -10, 10)


def masked_row_mean(values, mask):
    return (values * mask).sum(-1) / mask.sum(-1)


def group_stats(values, group_ids):
    mean, std = torch.zeros_like(values), torch.zeros_like(values)
    for gid in group_ids.unique():
        rows = group_ids == gid
        mean[rows], std[rows] = values[rows].mean(), values[rows].std()
    return mean, std


# ------------------------------------------------------------------------------ RL-PLUS
def test_rl_plus_recipe():
    batch, g = rollouts(groups=4, size=8, width=16)
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2
    external = torch.zeros(batch["logp"].shape, dtype=torch.bool)
    external[::8] = True  # n_prefix = 1 whole-response demonstration per group of 8
    external &= batch["mask"]
    mean, _ = group_stats(batch["rewards"], batch["group_ids"])
    adv = (batch["rewards"] - mean)[:, None]  # grpo_use_std=False
    width = batch["mask"].shape[-1]

    def reference(logp):
        old = batch["logp_old"]
        on = -adv * torch.exp(logp - old)  # loss_remove_clip=True
        omega = 0.5 * (torch.exp(old) + 1)
        off_ratio = 2 * torch.exp(logp) / (torch.exp(old) + omega)
        off = -off_ratio * (adv * (1 - torch.exp(logp.detach())) ** 0.5)
        prefix = external.to(F64)
        pg = off * prefix + on * (1 - prefix)
        pg_loss = (pg * batch["mask"]).sum() / width  # loss_remove_token_mean=True
        return pg_loss - 0.001 * token_mean(entropy, batch["mask"])  # masked_mean(entropy)

    objective = RECIPES["rl_plus_recipe"].objective.replace(
        constant_normalizer, constant_normalizer(max_tokens=width, per_sequence=False))
    check("rl_plus_recipe", batch, reference, objective=objective, entropy=entropy, extras={"off_policy": external})
    theirs = reference(batch["logp"])
    # the option matters: the entropy reduced like the policy loss (sum / T) gives another loss
    plain = objective.replace(entropy_bonus, entropy_bonus(coef=0.001))
    other = Objective(plain)(**batch, entropy=entropy, extras={"off_policy": external}).loss
    assert abs(float(other.detach()) - float(theirs.detach())) > 1e-4


# ------------------------------------------------------------------------------ CANON
def test_canon_recipe():
    batch, g = rollouts(groups=4, size=5, width=12)  # odd groups: C+ gets the extra row
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2
    scores, mask = batch["rewards"], batch["mask"]
    metric = masked_row_mean(entropy, mask)
    adv = torch.zeros_like(scores)
    for gid in batch["group_ids"].unique():
        rows = (batch["group_ids"] == gid).nonzero().flatten().tolist()
        paired = sorted(zip(metric[rows].tolist(), scores[rows].tolist(), rows), key=lambda x: x[0])
        mid = len(paired) // 2
        short = torch.tensor([s for _, s, _ in paired[:mid]], dtype=F64).mean()
        long = torch.tensor([s for _, s, _ in paired[mid:]], dtype=F64).mean()
        for k, (_, s, i) in enumerate(paired):
            lam, alpha, beta = 1.0, 1.0, 0.0
            if k >= mid:
                adv[i] = (lam * (s - alpha * short + beta) + (1 - lam) * (s - long)) / 8192
            else:
                adv[i] = (lam * (alpha * s - long - beta) + (1 - lam) * (s - short)) / 8192

    def reference(logp):  # seq-mean-token-sum, dual clip 3, clip 0.2 / 0.28
        per_token = clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.28, dual=3.0)
        return (per_token * mask).sum(-1).mean()

    check("canon_recipe", batch, reference, entropy=entropy)


# ------------------------------------------------------------------------------ LaSeR
def test_laser_recipe():
    batch, g = rollouts(groups=4, size=6, width=10)
    mask = batch["mask"]
    mask[[2, 9, 20]] = True  # three responses reach the length limit: truncated
    batch["mask"] = mask
    truncated = mask[:, -1].clone()
    rewards = batch["rewards"]
    probe = -23.0 + 10.0 * torch.rand(rewards.shape, generator=g, dtype=F64)
    probe[12:18] = -20.0 + 1e-3 * torch.arange(6, dtype=F64)  # a flat group: falls back to GRPO

    # ray_trainer.py: self-rewarding advantages
    a_grpo = grpo_advantages(rewards, batch["group_ids"])
    finished = ~truncated
    s = torch.where(finished, ((probe - (-23.0)) * 0.1).clamp(0.0, 1.0), torch.zeros_like(probe))
    s_mean, s_std = group_stats(s, batch["group_ids"])
    a_self = torch.where(s_std > 0.1, (s - s_mean) / s_std, a_grpo)
    adv = 0.9 * a_grpo + 0.1 * a_self
    assert bool((s_std <= 0.1).any()) and bool((s_std > 0.1).any())
    # balanced weights over the finished rows
    n_c = int(((rewards == 1) & finished).sum())
    n_i = int(((rewards == 0) & finished).sum())
    total = n_c + n_i
    w = torch.where(rewards == 1, torch.tensor(total / (2 * n_c), dtype=F64), torch.tensor(total / (2 * n_i), dtype=F64))

    def reference(logp, probe_leaf):
        pg = token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2, dual=3.0), mask)
        ratio = (probe_leaf * 1.0 - (-23.0)) * 0.1
        mse = (((ratio - rewards) ** 2) * finished.to(F64) * w).mean()
        return pg + 0.1 * mse

    leaf, probe_leaf = batch["logp"].clone().requires_grad_(True), probe.clone().requires_grad_(True)
    extras = {"self_reward_logp": probe_leaf, "truncated": truncated}
    ours = Objective(RECIPES["laser_recipe"].objective)(**{**batch, "logp": leaf}, extras=extras).loss
    grads = torch.autograd.grad(ours, (leaf, probe_leaf))
    ref_leaf, ref_probe = batch["logp"].clone().requires_grad_(True), probe.clone().requires_grad_(True)
    theirs = reference(ref_leaf, ref_probe)
    ref_grads = torch.autograd.grad(theirs, (ref_leaf, ref_probe))
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-9)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------------------ RLPR
def test_rlpr_recipe():
    batch, g = rollouts(width=12)
    entropy = torch.rand(batch["logp"].shape, generator=g, dtype=F64) * 2
    n = batch["rewards"].shape[0]
    answer_mask = torch.arange(5)[None, :] < torch.randint(1, 6, (n,), generator=g)[:, None]
    answer_logp = -torch.rand(n, 5, generator=g, dtype=F64) * 2
    prior = torch.rand(n, generator=g, dtype=F64) * 0.5
    fmt = batch["rewards"]  # the incoming reward is the R1 format check

    score_b = (torch.exp(answer_logp) * answer_mask).sum(-1) / answer_mask.sum(-1)  # mean_exp_log_softmax
    delta = torch.clamp(score_b - prior, min=0.0)  # threshold_0
    reward = 0.9 * delta + 0.1 * fmt  # (1 - format_coefficient) * delta + format_coefficient * format
    adv = grpo_advantages(reward, batch["group_ids"])
    assert bool((score_b < prior).any())  # the threshold acts

    def reference(logp):
        mask = batch["mask"]
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.27), mask) - 0.001 * token_mean(entropy, mask)

    check("rlpr_recipe", batch, reference, entropy=entropy,
          extras={"answer_logp": answer_logp, "answer_mask": answer_mask, "answer_prior": prior})


# ------------------------------------------------------------------------------ Co-rewarding-I
def test_co_reward_recipe():
    batch, g = rollouts(groups=4, size=6)  # groups 0/1 and 2/3 are the two views of a question
    answers = torch.tensor([3, 3, 3, 1, -1, 2,  3, 1, 1, 1, 4, -1,  5, 5, 5, 6, 6, 7,  6, 6, 6, 2, -1, 5])
    partner = torch.tensor([1] * 6 + [0] * 6 + [3] * 6 + [2] * 6)
    logp_ref = (batch["logp_old"] + 0.1 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)

    def majority(values):  # co_reward.py: most common non-empty answer
        kept = [v for v in values if v != -1]
        return Counter(kept).most_common(1)[0][0] if kept else None

    labels = {gid: majority(answers[batch["group_ids"] == gid].tolist()) for gid in range(4)}
    reward = torch.tensor([float(labels[int(partner[i])] is not None and int(answers[i]) == labels[int(partner[i])])
                           for i in range(len(answers))], dtype=F64)
    adv = grpo_advantages(reward, batch["group_ids"])
    assert reward.sum() > 0 and (reward == 0).any()

    def reference(logp):
        mask = batch["mask"]
        return (token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2, dual=3.0), mask)
                + 0.005 * token_mean(low_var_kl(logp, logp_ref), mask))

    check("co_reward_recipe", batch, reference, logp_ref=logp_ref,
          extras={"answer_ids": answers, "partner_group": partner})


# ------------------------------------------------------------------------------ Self-Aligned Reward
def test_sar_recipe():
    batch, g = rollouts(groups=4, size=6, width=12)
    mask = batch["mask"]
    alone = (batch["logp_old"] + 0.5 * torch.randn(mask.shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    logp_ref = (batch["logp_old"] + 0.1 * torch.randn(mask.shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    ppl_qa = torch.exp(-masked_row_mean(batch["logp_old"], mask))
    ppl_a = torch.exp(-masked_row_mean(alone, mask))
    sa = torch.clamp((ppl_a - ppl_qa) / (ppl_a + 1e-9), min=-1.0)  # use_denominator, no clip_value
    reward = batch["rewards"] + 0.2 * sa  # reward_factors [1, 0.2]
    mean, _ = group_stats(reward, batch["group_ids"])
    adv = reward - mean  # norm_adv_by_std_in_grpo=False
    assert bool((sa < 0).any()) and bool((sa > 0).any())
    rows = mask.shape[0]

    def reference(logp):
        # seq-mean-token-sum-norm of verl 0.9 / oat (sum / (N_seq L)), for policy loss and KL alike
        pg = clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2, dual=3.0)
        return ((pg * mask).sum() + 0.001 * (low_var_kl(logp, logp_ref) * mask).sum()) / (rows * 4096)

    check("sar_recipe", batch, reference, logp_ref=logp_ref, extras={"logp_unconditioned": alone})


# ------------------------------------------------------------------------------ noisy verifier (PGBC)
def test_noisy_rlvr_recipe():
    batch, g = rollouts(groups=4, size=8)
    logp_ref = (batch["logp_old"] + 0.1 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    noisy = batch["rewards"]
    r_hat = (noisy - 0.1) / max(1 - 0.1 - 0.2, 0.01)  # App. B: backward correction
    adv = torch.zeros_like(r_hat)
    for gid in batch["group_ids"].unique():  # leave-one-out baseline, s_BC = 1
        rows = batch["group_ids"] == gid
        values = r_hat[rows]
        adv[rows] = values - (values.sum() - values) / (values.numel() - 1)

    def reference(logp):
        mask = batch["mask"]
        return (token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2), mask)
                + 0.001 * token_mean(low_var_kl(logp, logp_ref), mask))

    check("noisy_rlvr_recipe", batch, reference, logp_ref=logp_ref)


# ------------------------------------------------------------------------------ Guide-GRPO
def test_guide_recipe():
    batch, g = rollouts(groups=4, size=6, width=10)
    mask = batch["mask"]
    guided = batch["group_ids"] == 1  # the whole group re-rolled with the hint
    mask[guided] = True  # full-length guided rows: the reference's quantile also reads padding
    batch["mask"] = mask
    batch["rewards"][18:24] = 0.0  # a flat group: filter_accuracy drops it
    hinted = (batch["logp_old"] + 0.5 * torch.randn(mask.shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    keep = torch.ones_like(guided)
    for gid in batch["group_ids"].unique():
        rows = batch["group_ids"] == gid
        accuracy = batch["rewards"][rows].mean()
        keep[rows] = bool(0.001 <= accuracy <= 0.999)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])[:, None]
    old = torch.where(guided[:, None], hinted, batch["logp_old"])  # importance_weighted_reroll
    live = mask & keep[:, None]
    on = ~guided[:, None].expand_as(mask)

    def reference(logp):  # core_algos.compute_policy_loss with apply_off_policy_shaping, percentile 0.9
        ratio = torch.exp(logp - old)
        gamma = torch.quantile(ratio[guided].detach().reshape(-1), 0.9).clamp(min=1e-4)
        shaped = torch.where(on, ratio, ratio / (ratio + gamma))
        loss1 = -adv * shaped
        loss2 = -adv * torch.where(on, torch.clamp(shaped, 0.8, 1.2), shaped)
        return token_mean(torch.maximum(loss1, loss2), live)

    check("guide_recipe", batch, reference, extras={"guided": guided, "logp_old_hint": hinted})
    assert not keep[18:24].any() and keep.any()


# ------------------------------------------------------------------------------ GHPO
def test_ghpo_recipe():
    batch, g = rollouts(groups=4, size=8)
    rewards = batch["rewards"] + 0.5 * (torch.rand(batch["rewards"].shape, generator=g) > 0.3).to(F64)  # acc + 0.5 fmt
    batch["rewards"] = rewards
    mean, std = group_stats(rewards, batch["group_ids"])
    adv = ((rewards - mean) / (std + 1e-4))[:, None]  # ghpo_trainer.py, scale_rewards

    def reference(logp):  # TRL GRPO loss, beta 0, epsilon 0.2, loss_type bnpo
        coef_1 = torch.exp(logp - batch["logp_old"])
        coef_2 = torch.clamp(coef_1, 0.8, 1.2)
        per_token = -torch.min(coef_1 * adv, coef_2 * adv)
        return (per_token * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1.0)

    check("ghpo_recipe", batch, reference)


# ------------------------------------------------------------------------------ AEPO (InfiGUI-G1)
def test_aepo_recipe():
    batch, g = rollouts(groups=4, size=8)
    n = batch["rewards"].shape[0]
    counts = torch.randint(1, 5, (n,), generator=g)
    ranks = torch.minimum(torch.randint(0, 5, (n,), generator=g), counts)
    valid = torch.rand(n, generator=g) > 0.15
    score = torch.tensor([-1.0 if not v else 1.0 + (1.0 / (c * k) ** 0.5 if k > 0 else -1.0 / c)
                          for v, c, k in zip(valid.tolist(), counts.tolist(), ranks.tolist())], dtype=F64)  # reward_fn.py
    adv = torch.zeros_like(score)
    for gid in batch["group_ids"].unique():  # verl compute_rloo_outcome_advantage
        rows = batch["group_ids"] == gid
        m = int(rows.sum())
        adv[rows] = score[rows] * m / (m - 1) - score[rows].mean() * m / (m - 1)
    assert bool((~valid).any()) and bool((ranks == 0).any()) and bool((ranks > 1).any())

    def reference(logp):
        return token_mean(clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.4, dual=3.0), batch["mask"])

    check("aepo_recipe", batch, reference,
          extras={"candidate_count": counts, "first_hit_rank": ranks, "format_valid": valid})


def test_guide_percentile_shaping_depends_on_the_micro_batch_and_constant_does_not():
    # the docstring's claim: gamma is the quantile of each call's guided ratios (the reference's
    # per-micro-batch quantile), so splitting the guided rows changes the loss; a constant gamma
    # obeys the micro-batch law
    from rlobj.algebra.state import Normalizer
    from rlobj.terms.surrogates import hint_clip_ratio

    batch, g = rollouts(groups=4, size=6, width=10)
    guided = batch["group_ids"] % 2 == 1
    hinted = (batch["logp_old"] + 0.5 * torch.randn(batch["mask"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    extras = {"guided": guided, "logp_old_hint": hinted}
    counts = Normalizer.from_masks([batch["mask"]], all_reduce=False)

    def whole_and_split(objective):
        whole = Objective(objective)(**batch, extras=extras, normalizer=counts).loss
        parts = []
        for rows in (slice(0, 12), slice(12, 24)):
            micro = {k: v[rows] for k, v in batch.items()}
            micro_extras = {k: v[rows] for k, v in extras.items()}
            parts.append(Objective(objective)(**micro, extras=micro_extras, normalizer=counts).loss)
        return float(whole), float(sum(parts))

    recipe = RECIPES["guide_recipe"].objective
    whole, split = whole_and_split(recipe)
    assert abs(whole - split) > 1e-6
    constant = recipe.replace(hint_clip_ratio, hint_clip_ratio(shaping="constant", gamma=1.0))
    whole, split = whole_and_split(constant)
    assert whole == pytest.approx(split, rel=1e-12)


# ------------------------------------------------------------------------------ WirelessMathLM (paper only)
def test_wirelessmath_recipe():
    batch, g = rollouts(groups=3, size=8)
    logp_ref = (batch["logp_old"] + 0.1 * torch.randn(batch["logp"].shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    adv = grpo_advantages(batch["rewards"], batch["group_ids"])

    def reference(logp):  # GRPO (clip 0.2, mean over tokens then sequences) + KL beta 0.01 (k3)
        mask = batch["mask"]
        per_token = clipped_pg(logp, batch["logp_old"], adv, 0.2, 0.2) + 0.01 * low_var_kl(logp, logp_ref)
        return masked_row_mean(per_token, mask).mean()

    check("wirelessmath_recipe", batch, reference, logp_ref=logp_ref)
