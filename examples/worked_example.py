"""A worked example on synthetic rollouts: build an objective, run it, print loss and metrics.

Eight prompts x four responses of up to twelve tokens are drawn from a small random
categorical policy; rewards are 1 when a response contains more of token 0 than the group
median. The objective is GRPO with a k3 KL to a reference and an entropy bonus, then the
same batch under DAPO and Dr. GRPO for comparison.

Run: ``python examples/worked_example.py``
"""

import torch

from rlobj import Objective, dapo, dr_grpo, entropy_bonus, grpo, k3_kl


def synthetic_batch(prompts: int = 8, group: int = 4, length: int = 12, vocab: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch = prompts * group
    logits = torch.randn(batch, length, vocab, generator=generator)
    policy = torch.log_softmax(logits, dim=-1)
    tokens = torch.multinomial(policy.exp().view(-1, vocab), 1, generator=generator).view(batch, length)
    lengths = torch.randint(4, length + 1, (batch,), generator=generator)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    logp_old = policy.gather(-1, tokens[..., None])[..., 0]
    reference = torch.log_softmax(logits + 0.3 * torch.randn(logits.shape, generator=generator), dim=-1)
    logp_ref = reference.gather(-1, tokens[..., None])[..., 0]
    entropy = -(policy.exp() * policy).sum(-1)
    group_ids = torch.arange(prompts).repeat_interleave(group)
    zeros = ((tokens == 0) & mask).sum(-1).float()
    medians = torch.stack([zeros[group_ids == g].median() for g in range(prompts)])[group_ids]
    rewards = (zeros > medians).float()
    # The policy being trained: a slightly moved copy of the sampling policy, with grad.
    logp = (logp_old + 0.05 * torch.randn(logp_old.shape, generator=generator)).clamp(max=0.0)
    # extras["accuracy"]: what DAPO's group filter tests (here the 0/1 reward itself)
    return dict(logp=logp.requires_grad_(), logp_old=logp_old, logp_ref=logp_ref, mask=mask,
                rewards=rewards, group_ids=group_ids, entropy=entropy, extras={"accuracy": rewards})


def main() -> None:
    batch = synthetic_batch()
    objective = grpo >> k3_kl(beta=0.04) >> entropy_bonus(coef=0.001)
    print("objective:", objective)
    output = Objective(objective)(**batch)
    output.loss.backward()
    print(f"loss = {float(output.loss.detach()):+.6f}   |grad logp| = {float(batch['logp'].grad.norm()):.6f}")
    for name, value in sorted(output.metrics.items()):
        print(f"  {name:24s} {float(value):+.6f}")
    print()
    for recipe in (dr_grpo, dapo):
        fresh = synthetic_batch()
        out = Objective(recipe)(**fresh)
        print(f"{recipe.name:8s} loss = {float(out.loss.detach()):+.6f}   ({recipe})")


if __name__ == "__main__":
    main()
