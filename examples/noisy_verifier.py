r"""Noisy-verifier correction: a verifier with known error rates, and advantages that stay unbiased.

A bandit-like setting: four prompts with eight one-token responses each, whose clean
correctness $R^*$ is fixed. The verifier reports $\tilde R$ with false-positive rate
$\rho_0 = 0.1$ and false-negative rate $\rho_1 = 0.2$ (Cai et al., arXiv 2510.00915). The
script draws the verifier's verdicts 5,000 times (one big batch, each copy its own groups)
and compares the Monte Carlo mean of each advantage with the clean one:

* ``leave_one_out()`` on the noisy rewards shrinks the advantage:
  $\mathbb E[\tilde A] = (1-\rho_0-\rho_1)\,A^*$, slope 0.7.
* ``backward_correction(0.1, 0.2) >> leave_one_out()`` first rewrites the reward into
  $\hat R = (\tilde R - \rho_0)/(1-\rho_0-\rho_1)$, unbiased for $R^*$, so
  $\mathbb E[\hat A] = A^*$ (slope 1), at the price of a larger variance.
* ``forward_correction(rho1=0.2)`` needs only $\rho_1$ and writes $w = \tilde R - (1-\rho_1)$,
  with $\mathbb E[w] = (1-\rho_0-\rho_1)(R^* - 1)$: the clean reward less a constant baseline,
  scaled, so the expected policy gradient points along the clean one.

Because the responses are single tokens, the policy-gradient loss is $-A_i \log\pi(y_i)$ up to
the normaliser, so an unbiased advantage gives an unbiased gradient. A group z-score after the
backward correction would undo it exactly (for binary rewards), so that chain is refused when
it is built; the script shows the error.

Run: ``python examples/noisy_verifier.py`` (plot: ``artifacts/plots/noisy_verifier.png``;
``--docs`` also writes the copy shown below).

![Monte Carlo mean of the advantages against the clean advantage](../assets/examples/noisy_verifier.png)
"""

import sys
from pathlib import Path

import torch

from rlobj import (
    Objective,
    RlobjBuildError,
    backward_correction,
    forward_correction,
    grpo,
    leave_one_out,
)

RHO0, RHO1 = 0.1, 0.2  # false-positive and false-negative rates of the simulated verifier
DRAWS = 5_000
CLEAN = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0],   # prompt 0: 1 of 8 correct
                      [1, 1, 0, 1, 0, 0, 0, 0],   # prompt 1: 3 of 8
                      [0, 1, 1, 1, 0, 1, 1, 0],   # prompt 2: 5 of 8
                      [1, 1, 1, 1, 1, 1, 0, 1]],  # prompt 3: 7 of 8
                     dtype=torch.float32).flatten()
PROMPTS, GROUP = 4, 8


def verifier(clean: torch.Tensor, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``draws`` independent noisy verdicts of every response: ``[draws, responses]`` in {0, 1}."""
    uniform = torch.rand(draws, clean.numel(), generator=generator)
    return torch.where(clean.bool(), uniform >= RHO1, uniform < RHO0).float()


def advantages(term, rewards: torch.Tensor) -> torch.Tensor:
    """Sequence advantages of ``term`` on ``[copies, responses]`` rewards, each copy its own groups."""
    copies = rewards.shape[0]
    group_ids = torch.arange(copies * PROMPTS).repeat_interleave(GROUP)
    mask = torch.ones(rewards.numel(), 1, dtype=torch.bool)  # one token per response: a bandit
    state = Objective(term).prepare(logp=torch.full((rewards.numel(), 1), -2.0), mask=mask,
                                    rewards=rewards.flatten(), group_ids=group_ids)
    return state.advantages[:, 0].view(copies, -1)


def slope_through_origin(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x * y).sum() / (x * x).sum())


def save_plot(figure, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=80)
        print(f"plot written to {(folder / f'{name}.png').as_posix()}")


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = verifier(CLEAN, DRAWS, generator)
    print(f"verifier: rho0 = {RHO0} (false positives), rho1 = {RHO1} (false negatives); {DRAWS} draws")
    print(f"observed: false-positive rate {float(noisy[:, CLEAN == 0].mean()):.4f}, "
          f"false-negative rate {float(1 - noisy[:, CLEAN == 1].mean()):.4f}")

    clean_adv = advantages(leave_one_out(), CLEAN[None, :])[0]
    chains = {"noisy, no correction": leave_one_out(),
              "backward_correction": backward_correction(rho0=RHO0, rho1=RHO1) >> leave_one_out(),
              "forward_correction": forward_correction(rho1=RHO1)}
    samples = {name: advantages(term, noisy) for name, term in chains.items()}
    means = {name: values.mean(0) for name, values in samples.items()}
    errors = {name: values.std(0) / DRAWS ** 0.5 for name, values in samples.items()}
    forward_target = (1 - RHO0 - RHO1) * (CLEAN - 1)

    print("\nresponse  R*  clean A   E[A] noisy  E[A] backward  E[w] forward  (1-rho0-rho1)(R*-1)")
    for row in range(2 * GROUP):  # the first two prompts
        print(f"{row:8d} {int(CLEAN[row]):3d} {float(clean_adv[row]):+8.4f} {float(means['noisy, no correction'][row]):+12.4f}"
              f" {float(means['backward_correction'][row]):+14.4f} {float(means['forward_correction'][row]):+13.4f}"
              f" {float(forward_target[row]):+20.4f}")

    print(f"\nover all {CLEAN.numel()} responses (target: the clean A, or (1-rho0-rho1)(R*-1) for forward):")
    targets = {"noisy, no correction": clean_adv, "backward_correction": clean_adv, "forward_correction": forward_target}
    for name, target in targets.items():
        gap = (means[name] - target).abs().max()
        print(f"  {name:22s} slope vs target {slope_through_origin(target, means[name]):.4f}   "
              f"max |E - target| {float(gap):.4f} ({float(gap / errors[name].max()):.1f} s.e.)   "
              f"std of one draw {float(samples[name].std(0).mean()):.4f}")
    print(f"  (no correction: the expected slope against the clean A is 1 - rho0 - rho1 = {1 - RHO0 - RHO1:.1f})")

    print("\nbackward_correction >> grpo (a group z-score after the correction):")
    try:
        backward_correction(rho0=RHO0, rho1=RHO1) >> grpo
    except RlobjBuildError as error:
        print(f"  RlobjBuildError: {error}")

    import matplotlib.pyplot as plt

    figure, (scatter, running) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    line = torch.linspace(float(clean_adv.min()) - 0.1, float(clean_adv.max()) + 0.1, 2)
    scatter.plot(line, line, color="grey", linewidth=1, label="E[A] = clean A")
    for name, marker in (("noisy, no correction", "s"), ("backward_correction", "o")):
        scatter.errorbar(clean_adv, means[name], yerr=2 * errors[name], fmt=marker, markersize=4, label=name)
    scatter.set(xlabel="clean leave-one-out advantage A*", ylabel=f"Monte Carlo mean ({DRAWS} draws)",
                title="E[A] against the clean advantage")
    scatter.legend(fontsize=7)
    row = 0  # the one correct response of prompt 0
    draws = torch.arange(1, DRAWS + 1)
    for name in ("noisy, no correction", "backward_correction"):
        running.plot(draws, samples[name][:, row].cumsum(0) / draws, label=name)
    running.axhline(float(clean_adv[row]), color="grey", linestyle=":", label="clean A")
    running.set(xscale="log", xlabel="verifier draws", ylabel="running mean of A", title=f"response {row} (R* = 1)")
    running.legend(fontsize=7)
    figure.tight_layout()
    save_plot(figure, "noisy_verifier")


if __name__ == "__main__":
    main()
