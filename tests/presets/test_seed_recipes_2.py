"""Issue 14 (continued further): the recipes of rlobj/presets/seed_recipes_2.py equal plain-torch
transcriptions of their references' code with the references' settings, in float64.

VSRM: 1benwu1/VSRM-Efficient-LRMs ``rollout_postprocess.py::compute_step_reward`` and
``reward_manager/naive.py`` (step rewards, outcome on the last valid token), then the fork's
``compute_reinforce_plus_plus_outcome_advantage`` + ``masked_whiten`` (rlobj has no critic: the
recipe's documented substitute for GAE) and ``compute_policy_loss`` (clip 0.2, dual clip 3,
token mean). PPR: Zhuohao-Li/ppr ``main_ppo.py::RewardManager`` (ReNorm, beta 1),
``apply_kl_penalty`` (k1 KL 0.001 in the reward), the same returns whitening, Search-R1's
``compute_policy_loss`` (clip 0.2) and ``dp_actor.py`` (entropy bonus 0.001 by token mean). One
micro-batch on one rank; no rlobj helper computes an expected value.
"""

import torch
from presets._transcriptions import F64, check, rollouts, token_mean
from terms.rewards._helpers import reference_step_rewards  # VSRM compute_step_reward, transcribed


def reinforce_pp_advantages(token_rewards, mask):
    """verl compute_reinforce_plus_plus_outcome_advantage (gamma 1) with masked_whiten (Bessel)."""
    m = mask.to(F64)
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros(token_rewards.shape[0], dtype=F64)
    for t in reversed(range(token_rewards.shape[1])):
        running = token_rewards[:, t] + running
        returns[:, t] = running
        running = running * m[:, t]
    mean = (returns * m).sum() / m.sum()
    var = (((returns - mean) ** 2) * m).sum() / m.sum() * (m.sum() / (m.sum() - 1))
    return (returns - mean) * torch.rsqrt(var + 1e-8) * m


def ppo_token_losses(logp, logp_old, adv, clip=0.2, dual=None):
    ratio = torch.exp(logp - logp_old)  # neither reference clamps the log-ratio
    loss1, loss2 = -adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip)
    out = torch.maximum(loss1, loss2)
    if dual is not None:
        out = torch.where(adv < 0, torch.minimum(-adv * dual, out), out)
    return out


# ------------------------------------------------------------------------------ VSRM
def test_vsrm_recipe():
    batch, g = rollouts(groups=4, size=4, width=16, min_length=8)
    mask, lengths = batch["mask"], batch["mask"].sum(-1)
    ends = torch.zeros_like(mask)
    accuracy = torch.zeros(mask.shape, dtype=F64)
    levels = (torch.randint(0, 6, (16, 16), generator=g) / 5).to(F64)  # n2 = 5 answers per prefix
    levels[:, 1:4] = levels[:, :1]  # flat runs, so the look-ahead matters
    acc_lists = []
    for i in range(16):
        positions = sorted(torch.randperm(int(lengths[i]) - 1, generator=g)[:5].tolist())  # never the last token
        ends[i, positions] = True
        accuracy[i, positions] = levels[i, 1:len(positions) + 1]
        acc_lists.append((positions, levels[i, :len(positions) + 1].tolist()))
    start = levels[:, 0].clone()

    token_rewards = torch.zeros(mask.shape, dtype=F64)
    for i, (positions, acc_list) in enumerate(acc_lists):
        for pos, reward in zip(positions, reference_step_rewards(acc_list, 0.7, 4)):
            token_rewards[i, pos] = reward
        token_rewards[i, int(lengths[i]) - 1] = batch["rewards"][i]  # naive.py: outcome on the last token
    adv = reinforce_pp_advantages(token_rewards, mask)
    assert any(r != d for _, a in acc_lists for r, d in zip(reference_step_rewards(a, 0.7, 4), (a[k + 1] - a[k] for k in range(len(a) - 1))))

    def reference(logp):
        return token_mean(ppo_token_losses(logp, batch["logp_old"], adv, dual=3.0), mask)

    check("vsrm_recipe", batch, reference,
          extras={"step_ends": ends, "step_accuracy": accuracy, "start_accuracy": start})


# ------------------------------------------------------------------------------ PPR
def test_ppr_recipe():
    batch, g = rollouts(groups=4, size=4, width=16, min_length=4)
    mask, lengths = batch["mask"], batch["mask"].sum(-1)
    batch["rewards"] = torch.rand(16, generator=g, dtype=F64).round(decimals=1)  # exact match, F1 in [0, 1]
    logp_ref = (batch["logp_old"] + 0.2 * torch.randn(mask.shape, generator=g, dtype=F64)).clamp(max=-1e-3)
    entropy = torch.rand(mask.shape, generator=g, dtype=F64) * 2
    ends = torch.zeros_like(mask)
    process = torch.zeros(mask.shape, dtype=F64)
    scores = torch.randint(0, 7, mask.shape, generator=g).to(F64) / 6  # score / max_score, max 6
    for i in range(16):
        turns = torch.randint(0, 3, (), generator=g).item()  # judged turns before the answer turn
        positions = sorted(torch.randperm(int(lengths[i]) - 1, generator=g)[:turns].tolist())
        ends[i, positions + [int(lengths[i]) - 1]] = True  # turn_mask: the answer turn ends last
        process[i, positions] = scores[i, positions]

    token_scores = torch.zeros(mask.shape, dtype=F64)
    for i in range(16):  # main_ppo.py RewardManager with renorm (beta 1)
        last = int(lengths[i]) - 1
        token_scores[i, last] = batch["rewards"][i]
        boundaries = ends[i].nonzero().flatten().tolist()
        if len(boundaries) > 1:
            orm = float(token_scores[i, boundaries[-1]])
            for pos in boundaries[:-1]:
                token_scores[i, pos] = float(process[i, pos]) + orm - 1.0
    kld = (batch["logp_old"] - logp_ref) * mask  # apply_kl_penalty: kl_penalty "kl", old log-probs
    adv = reinforce_pp_advantages(token_scores - 0.001 * kld, mask)

    def reference(logp):
        pg = token_mean(ppo_token_losses(logp, batch["logp_old"], adv), mask)
        return pg - 0.001 * token_mean(entropy, mask)  # dp_actor.py: pg_loss - entropy_coeff * masked_mean

    check("ppr_recipe", batch, reference, logp_ref=logp_ref, entropy=entropy,
          extras={"step_ends": ends, "process_rewards": process})
