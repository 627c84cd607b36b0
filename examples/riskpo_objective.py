r"""A RiskPO objective: bundled Mixed-VaR advantages with a quantile tracker carried as term state.

RiskPO (Ren et al., arXiv 2510.00911) replaces GRPO's group z-score with ``mvar_advantage``:
bundles of $B = 5$ questions, "papers" made of the $j$-th rollout of each question, paper
scores $X_j = \sum_b r_{q_b, j}$, and an advantage that pushes hardest on papers below the
$\alpha = 0.2$ quantile of the scores and linearly between the $\alpha$ and $\beta = 0.8$
quantiles. With ``quantiles="track"`` those quantiles come from a Robbins-Monro tracker of
19 levels ($0.05, \dots, 0.95$) that the term returns as state: ``Output.term_state`` holds it
under the term's key, and passing it back with ``term_state=`` on the next call continues it.

The script simulates 60 policy steps on a synthetic task (two bundles of five questions, eight
rollouts each) whose success rate rises from about 0.3 to about 0.7, carries the term state
from call to call, and prints along the way the quantiles of the step's paper scores, the ones
the step used (metrics ``riskpo/quantile_low`` / ``_high``: per-bundle batch quantiles on the
first call, tracked values after) and the tracked ones. The tracker moves at most ``lr_q``
per step, so it follows the improving policy smoothly and with a lag. At the end: one
bundle's paper scores and advantages (the tail below the low quantile is pushed hardest), and
a plot of the tracked quantiles.

Run: ``python examples/riskpo_objective.py`` (plot: ``artifacts/plots/riskpo_objective.png``;
``--docs`` also writes the copy shown below).

![Tracked quantiles of the paper scores over 60 steps](../assets/examples/riskpo_objective.png)
"""

import sys
from pathlib import Path

import torch

from rlobj import Objective, group_zscore, grpo, mvar_advantage

QUESTIONS, ROLLOUTS, BUNDLE, LENGTH, STEPS = 10, 8, 5, 4, 60
SHOWN_STEP = 12  # the step whose papers and advantages are printed
LEVELS = [round(0.05 * k, 2) for k in range(1, 20)]  # the tracker's grid


def rollout_batch(step: int, generator: torch.Generator) -> dict:
    """One step's rollouts: success probability sigmoid(skill - difficulty), skill rising with the step."""
    skill = -1.0 + 2.0 * step / STEPS
    difficulty = torch.randn(QUESTIONS, generator=generator)
    success = torch.sigmoid(skill - difficulty).repeat_interleave(ROLLOUTS)
    rewards = (torch.rand(QUESTIONS * ROLLOUTS, generator=generator) < success).float()
    logp_old = -torch.rand(QUESTIONS * ROLLOUTS, LENGTH, generator=generator) * 2.0
    logp = (logp_old + 0.05 * torch.randn(logp_old.shape, generator=generator)).clamp(max=0.0)
    return dict(logp=logp, logp_old=logp_old, mask=torch.ones(logp.shape, dtype=torch.bool), rewards=rewards,
                group_ids=torch.arange(QUESTIONS).repeat_interleave(ROLLOUTS))


def paper_scores(rewards: torch.Tensor) -> torch.Tensor:
    """``[bundles, rollouts]`` scores: paper j of a bundle = the j-th rollout of each of its questions."""
    return rewards.view(QUESTIONS // BUNDLE, BUNDLE, ROLLOUTS).sum(1)


def save_plot(figure, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=80)
        print(f"plot written to {(folder / f'{name}.png').as_posix()}")


def main() -> None:
    risk = mvar_advantage(alpha=0.2, beta=0.8, w_mix=1.5, bundle_size=BUNDLE, quantiles="track", lr_q=0.1)
    objective = Objective(grpo.replace(group_zscore, risk))
    print("objective:", objective.chain)

    generator = torch.Generator().manual_seed(0)
    term_state: dict = {}
    history, batch_quantiles, mean_scores = [], [], []
    low, high = LEVELS.index(0.2), LEVELS.index(0.8)
    print(f"\n{'step':>4s} {'success':>8s} {'mean X':>7s} {'step q0.2':>10s} {'step q0.8':>10s}"
          f" {'used low':>9s} {'used high':>9s} {'tracked q0.2':>12s} {'tracked q0.8':>12s} {'loss':>9s}")
    for step in range(STEPS):
        batch = rollout_batch(step, generator)
        out = objective(**batch, term_state=term_state)
        term_state = out.term_state  # carry the tracker to the next call
        (key, tracked), = term_state.items()
        scores = paper_scores(batch["rewards"]).flatten()
        history.append(tracked)
        batch_quantiles.append(torch.quantile(scores, torch.tensor([0.2, 0.8])).tolist())
        mean_scores.append(float(scores.mean()))
        if step == SHOWN_STEP:
            middle = (batch, out)
        if step % 6 == 0 or step == STEPS - 1:
            print(f"{step:4d} {float(batch['rewards'].mean()):8.3f} {mean_scores[-1]:7.3f} {batch_quantiles[-1][0]:10.3f}"
                  f" {batch_quantiles[-1][1]:10.3f} {float(out.metrics['riskpo/quantile_low']):9.3f}"
                  f" {float(out.metrics['riskpo/quantile_high']):9.3f} {tracked[low]:12.3f} {tracked[high]:12.3f}"
                  f" {float(out.loss.detach()):+9.4f}")
    print(f"\nterm state after {STEPS} calls: key {key!r}, a {type(tracked).__name__} of {len(tracked)} floats")
    print("  tracked quantiles:", " ".join(f"{level}:{value:.2f}" for level, value in zip(LEVELS, tracked)))

    batch, out = middle
    advantages = out.state.advantages[:, 0].view(QUESTIONS // BUNDLE, BUNDLE, ROLLOUTS).sum(1)  # shares add up to A_j
    print(f"\nstep {SHOWN_STEP}, papers sorted by score (the step used the tracked "
          f"low {float(out.metrics['riskpo/quantile_low']):.3f} and high {float(out.metrics['riskpo/quantile_high']):.3f}):")
    for bundle, scores in enumerate(paper_scores(batch["rewards"])):
        order = scores.argsort(stable=True)
        print(f"  bundle {bundle}: paper score X_j", " ".join(f"{int(x):6d}" for x in scores[order]))
        print(f"  {'':10s}advantage A_j  ", " ".join(f"{float(a):+6.2f}" for a in advantages[bundle][order]))

    fresh = objective(**rollout_batch(STEPS - 1, torch.Generator().manual_seed(1)))
    print(f"\nwithout term_state a call starts over: it uses the batch quantiles and returns a new tracker "
          f"(low {float(fresh.metrics['riskpo/quantile_low']):.3f}, high {float(fresh.metrics['riskpo/quantile_high']):.3f})")

    import matplotlib.pyplot as plt

    tracked = torch.tensor(history)
    steps = torch.arange(STEPS)
    figure, axis = plt.subplots(figsize=(6.8, 3.6))
    colors = plt.cm.viridis(torch.linspace(0, 1, len(LEVELS)).numpy())
    for index, level in enumerate(LEVELS):
        bold = index in (low, high)
        axis.plot(steps, tracked[:, index], color=colors[index], linewidth=2.2 if bold else 0.7,
                  label=f"tracked q{level}" if bold else None)
    batch_quantiles = torch.tensor(batch_quantiles)
    axis.plot(steps, batch_quantiles[:, 0], "k:", linewidth=1, label="step q0.2 (all papers)")
    axis.plot(steps, batch_quantiles[:, 1], "k--", linewidth=1, label="step q0.8 (all papers)")
    axis.plot(steps, mean_scores, color="tab:red", linewidth=1, label="mean paper score")
    axis.set(xlabel="policy step (one objective call)", ylabel=f"paper score X (0..{BUNDLE})",
             title="RiskPO quantile tracker carried as term state")
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    save_plot(figure, "riskpo_objective")


if __name__ == "__main__":
    main()
