r"""The design-card line: ``grpo >> lp_reg(tau) >> forward_kl(beta)`` on hidden states.

A synthetic policy head: hidden states $h_t$ (``[batch, seq, hidden]``) and an output
projection $W$ (``[vocab, hidden]``), $\pi(\cdot\mid s_t) = \mathrm{softmax}(h_t W^\top)$. The
old policy sampled 16 responses (4 prompts x 4) of 64 tokens over a 4,096-token vocabulary; the
reference policy is a perturbed copy. Every full-vocabulary quantity is read through
:class:`~rlobj.ops.vocab.VocabView` built with ``from_hidden``, so the ``[tokens, vocab]``
logits never exist:

* ``grpo``: group z-score advantages, PPO clip, sequence-mean-token-mean aggregation;
* ``lp_reg(tau)`` (Huang et al., arXiv 2510.03222): the proxy
  $\pi_\text{proxy} \propto \pi_\text{old}\,\mathbb 1[\pi_\text{old} \ge \tau\max\pi_\text{old}]$
  (``extras["logp_proxy"]``, computed once from the old policy's view), and on the
  lowest-probability negative-advantage tokens with $\pi_\theta < \pi_\text{proxy}$ the clipped
  loss is **replaced** by $-A\rho + \beta_\text{lp}\,k_3(\pi_\theta \to \pi_\text{proxy})$;
* ``forward_kl(beta)``: $\beta\,\mathrm{KL}(\pi_\text{ref}\Vert\pi_\theta)$ over the whole
  vocabulary (``extras["vocab_ref"]``).

The script builds exactly that line, runs forward and backward, prints the loss, its parts and
the metrics, checks the selected tokens against the rule, and plots $\pi_\theta(y_t)$ against
$\pi_\text{proxy}(y_t)$ for the negative-advantage tokens (the selected ones lie below the
diagonal, at the low-probability end). A second objective with a larger $\rho$ shows more
tokens selected.

Run: ``python examples/lp_reg_forward_kl.py`` (plot: ``artifacts/plots/lp_reg_forward_kl.png``;
``--docs`` also writes the copy shown below).

![policy vs proxy probability of the sampled negative-advantage tokens](../assets/examples/lp_reg_forward_kl.png)
"""

import sys
from pathlib import Path

import torch

from rlobj import Objective, forward_kl, grpo, lp_reg
from rlobj.ops.vocab import VocabView
from rlobj.terms.regularizers import proxy_logp

PROMPTS, GROUP, SEQ, HIDDEN, VOCAB = 4, 4, 64, 64, 4096
tau, beta = 0.02, 0.01


def rollout(generator: torch.Generator) -> dict:
    """Hidden states of the old / reference policy, sampled tokens, rewards (synthetic)."""
    batch = PROMPTS * GROUP
    weight = torch.randn(VOCAB, HIDDEN, generator=generator) / HIDDEN**0.5
    old_hidden = 0.9 * torch.randn(batch, SEQ, HIDDEN, generator=generator)
    ref_hidden = old_hidden + 0.3 * torch.randn(batch, SEQ, HIDDEN, generator=generator)
    # the rollout engine samples from the old policy (here: one row block at a time)
    tokens = torch.stack([torch.multinomial(torch.softmax(old_hidden[i] @ weight.T, -1), 1, generator=generator)[:, 0]
                          for i in range(batch)])
    lengths = torch.randint(SEQ // 2, SEQ + 1, (batch,), generator=generator)
    mask = torch.arange(SEQ)[None, :] < lengths[:, None]
    rewards = (torch.rand(batch, generator=generator) < 0.5).float()
    return {"weight": weight, "old_hidden": old_hidden, "ref_hidden": ref_hidden, "tokens": tokens,
            "mask": mask, "rewards": rewards, "group_ids": torch.arange(PROMPTS).repeat_interleave(GROUP)}


def save_plot(figure, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=80)
        print(f"plot written to {(folder / f'{name}.png').as_posix()}")


def main() -> None:
    torch.manual_seed(0)
    data = rollout(torch.Generator().manual_seed(0))
    mask, tokens = data["mask"], data["tokens"]
    # the policy being trained starts at the old policy (first PPO step): its head is a parameter
    hidden = data["old_hidden"].clone().requires_grad_(True)
    weight = data["weight"].clone().requires_grad_(True)
    view = VocabView.from_hidden(hidden, weight)
    old = VocabView.from_hidden(data["old_hidden"], data["weight"])
    ref = VocabView.from_hidden(data["ref_hidden"], data["weight"])

    # once per rollout batch, by the trainer: old and reference log-probs and the proxy
    logp_old = old.logp(tokens, mask=mask)
    logp_proxy = proxy_logp(old, tokens, tau, "minp", mask=mask)
    batch = dict(logp_old=logp_old, mask=mask, rewards=data["rewards"], group_ids=data["group_ids"],
                 vocab=view, extras={"logp_proxy": logp_proxy, "vocab_ref": ref})

    objective = grpo >> lp_reg(tau) >> forward_kl(beta)
    print("objective:", objective)
    print(f"{int(mask.sum())} response tokens, vocabulary {VOCAB}, hidden {HIDDEN}; tau = {tau}, beta = {beta}")

    logp = view.logp(tokens, mask=mask)
    out = Objective(objective)(logp=logp, **batch)
    out.loss.backward()
    print(f"loss {float(out.loss.detach()):.6f}")
    for name in sorted(out.metrics):
        print(f"  {name:28s} {float(out.metrics[name]): .6f}")
    print("(rho = 0.01: k = int(0.01 x negatives) lowest-probability tokens are candidates; those the min-p\n"
          " filter removed from the proxy are never regularised, so the default may select none here)")
    print(f"grad norms: hidden {float(hidden.grad.norm()):.4e}, weight {float(weight.grad.norm()):.4e}")

    # a larger rho selects more tokens; every selected token obeys the rule
    wider = grpo >> lp_reg(tau, rho=0.05) >> forward_kl(beta)
    logp = view.logp(tokens, mask=mask)
    wide = Objective(wider)(logp=logp, **batch)
    plain = Objective(grpo >> forward_kl(beta))(logp=logp, **batch)
    selected = wide.state.parts["policy"].values.detach() != plain.state.parts["policy"].values.detach()
    advantages = wide.state.advantages
    assert bool((advantages[selected] < 0).all()) and bool((logp.detach()[selected] < logp_proxy[selected]).all())
    filtered = mask & (logp_proxy < -1e3)
    print(f"rho = 0.05: {int(selected.sum())} tokens regularised of {int((mask & (advantages < 0)).sum())} "
          f"negative-advantage tokens; {int(filtered.sum())} sampled tokens lie outside the min-p proxy")
    print(f"loss {float(wide.loss.detach()):.6f} (without lp_reg: {float(plain.loss.detach()):.6f})")

    import matplotlib.pyplot as plt

    negative = mask & (advantages < 0) & ~filtered
    policy_p, proxy_p = logp.detach().exp(), logp_proxy.exp()
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.scatter(policy_p[negative & ~selected], proxy_p[negative & ~selected], s=6, alpha=0.4, label="A < 0, not selected")
    axis.scatter(policy_p[selected], proxy_p[selected], s=18, color="C3", label="selected by lp_reg (rho = 0.05)")
    low = float(policy_p[negative].min()) * 0.8
    high = float(proxy_p[negative].max()) * 1.25
    axis.plot([low, high], [low, high], color="grey", linewidth=0.8, label="proxy = policy")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(r"$\pi_\theta(y_t)$")
    axis.set_ylabel(r"$\pi_\mathrm{proxy}(y_t)$ (min-p $\tau$ = 0.02, renormalised)")
    axis.set_title("Lp-Reg: sampled negative-advantage tokens")
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_plot(figure, "lp_reg_forward_kl")


if __name__ == "__main__":
    main()
