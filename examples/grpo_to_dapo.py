r"""GRPO -> Dr. GRPO -> DAPO as chain edits, on one synthetic batch with unequal lengths.

The paper recipes are chains of primitives, so moving between them is an edit of the chain:

* **Dr. GRPO** (arXiv 2503.20783) removes GRPO's two biases: the std division
  (``group_zscore`` -> ``group_mean_baseline``) and the $1/|y_i|$ per sequence
  (``seq_mean_token_mean`` -> ``constant_normalizer(L)``): two ``.replace(...)`` calls.
* **DAPO** (arXiv 2503.14476) keeps the z-score, prepends overlong shaping and dynamic
  sampling with ``>>``, raises the upper clip to 0.28 and averages over all tokens.

Each edited chain equals the library's preset (with this batch's generation budget $L = 32$
in place of the papers' 4096 / 20480). The script prints each chain, its loss and metrics on
the same batch (eight prompts x four responses of 4 to 32 tokens), then measures the weight
each aggregation gives a sequence of length $|y|$: with every advantage 1 and
$\pi_\theta = \pi_\text{old}$, $-\partial \mathcal L / \partial \log\pi_\theta(y_{i,t})$ is the
weight of token $t$ of sequence $i$. GRPO's per-sequence mean gives every sequence the same
total weight (a long response's tokens count less); the token mean and Dr. GRPO's constant
give each token the same weight, so a sequence counts in proportion to its length.

Run: ``python examples/grpo_to_dapo.py`` (plot: ``artifacts/plots/grpo_to_dapo.png``;
``--docs`` also writes the copy shown below).

![Per-token and per-sequence weights of the three aggregations, by length](../assets/examples/grpo_to_dapo.png)
"""

import sys
from pathlib import Path

import torch

from rlobj import (
    Objective,
    clip_ratio,
    constant_normalizer,
    dapo,
    dr_grpo,
    drop_zero_variance_groups,
    group_mean_baseline,
    group_zscore,
    grpo,
    overlong_penalty,
    seq_mean_token_mean,
    token_mean,
)

BUDGET = 32  # the generation budget L of this synthetic batch


def synthetic_batch(prompts: int = 8, group: int = 4, seed: int = 0) -> dict:
    """Binary rewards, lengths 4..L (some in DAPO's overlong buffer), one all-wrong group."""
    generator = torch.Generator().manual_seed(seed)
    batch = prompts * group
    lengths = torch.randint(4, BUDGET + 1, (batch,), generator=generator)
    logp_old = -torch.rand(batch, BUDGET, generator=generator) * 2.0
    logp = (logp_old + 0.3 * torch.randn(batch, BUDGET, generator=generator)).clamp(max=0.0)
    rewards = (torch.rand(batch, generator=generator) < 0.5).float()
    rewards[:group] = 0.0  # group 0: every response wrong and short, so DAPO drops it
    lengths[:group] = lengths[:group].clamp(max=BUDGET - 8)
    mask = torch.arange(BUDGET)[None, :] < lengths[:, None]
    group_ids = torch.arange(prompts).repeat_interleave(group)
    # DAPO filters groups on each response's accuracy (here the 0/1 reward itself)
    return dict(logp=logp, logp_old=logp_old, mask=mask, rewards=rewards, group_ids=group_ids,
                extras={"accuracy": rewards})


def token_weights(aggregation, lengths: torch.Tensor) -> torch.Tensor:
    """Weight of every token under ``aggregation``: minus the loss gradient with advantages 1, ratio 1."""
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    logp = torch.full(mask.shape, -1.0, requires_grad=True)
    out = Objective(clip_ratio() >> aggregation)(logp=logp, logp_old=logp.detach(), mask=mask,
                                                  advantages=torch.ones(len(lengths)))
    out.loss.backward()
    return -logp.grad


def save_plot(figure, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=80)
        print(f"plot written to {(folder / f'{name}.png').as_posix()}")


def main() -> None:
    # Dr. GRPO: two replacements in GRPO.
    my_dr_grpo = (grpo.replace(group_zscore, group_mean_baseline())
                      .replace(seq_mean_token_mean, constant_normalizer(max_tokens=BUDGET)))
    # DAPO: two terms in front (overlong shaping at factor 0.5 for 0/1 rewards, the group filter on
    # the accuracy), clip-higher, token-level mean.
    my_dapo = (overlong_penalty(max_length=BUDGET, buffer=8, factor=0.5) >> drop_zero_variance_groups(on="accuracy")
               >> grpo.replace(clip_ratio, clip_ratio(eps_low=0.2, eps_high=0.28))
                      .replace(seq_mean_token_mean, token_mean()))
    recipes = {"grpo": grpo, "dr_grpo": my_dr_grpo, "dapo": my_dapo}
    presets = {"grpo": grpo,
               "dr_grpo": dr_grpo.replace(constant_normalizer, constant_normalizer(max_tokens=BUDGET)),
               "dapo": dapo.replace(overlong_penalty, overlong_penalty(max_length=BUDGET, buffer=8, factor=0.5))}
    for name, recipe in recipes.items():
        print(f"{name:8s} {recipe}")
        print(f"{'':8s} equals the preset {name} (budget {BUDGET}): {recipe == presets[name]}")

    batch = synthetic_batch()
    lengths = batch["mask"].sum(-1)
    print(f"\nbatch: {len(lengths)} responses, lengths {int(lengths.min())}..{int(lengths.max())}, "
          f"{int((lengths > BUDGET - 8).sum())} in the overlong buffer (> {BUDGET - 8}), "
          f"rewards per group {batch['rewards'].view(8, 4).sum(1).int().tolist()}")
    outputs = {name: Objective(recipe)(**batch) for name, recipe in recipes.items()}
    keys = sorted(set().union(*(out.metrics for out in outputs.values())))
    print(f"\n{'metric':28s}" + "".join(f"{name:>12s}" for name in outputs))
    for key in keys:
        cells = [f"{float(out.metrics[key]):+12.5f}" if key in out.metrics else f"{'-':>12s}" for out in outputs.values()]
        print(f"{key:28s}" + "".join(cells))

    aggregations = {"grpo: seq_mean_token_mean": seq_mean_token_mean(),
                    f"dr_grpo: constant_normalizer({BUDGET})": constant_normalizer(max_tokens=BUDGET),
                    "dapo: token_mean": token_mean()}
    grid = torch.arange(1, BUDGET + 1)  # one sequence of every length
    print(f"\nweights x N_seq ({len(grid)} sequences of lengths 1..{BUDGET}): per token / whole sequence")
    print(f"{'|y|':>5s}" + "".join(f"{label.split(':')[0]:>20s}" for label in aggregations))
    weights = {label: token_weights(aggregation, grid) * len(grid) for label, aggregation in aggregations.items()}
    for length in (1, 4, 8, 16, 32):
        row = [f"{float(w[length - 1, 0]):9.4f} /{float(w[length - 1].sum()):8.4f}" for w in weights.values()]
        print(f"{length:5d}" + "".join(f"{cell:>20s}" for cell in row))

    import matplotlib.pyplot as plt

    figure, (per_token, per_sequence) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    for label, w in weights.items():
        per_token.plot(grid, w[:, 0], marker=".", label=label)
        per_sequence.plot(grid, w.sum(-1), marker=".", label=label)
    per_token.set(xlabel="response length |y|", ylabel="weight of each token x N_seq", yscale="log",
                  title="per token")
    per_sequence.set(xlabel="response length |y|", ylabel="weight of the sequence x N_seq", title="per sequence")
    per_sequence.legend(fontsize=7)
    figure.tight_layout()
    save_plot(figure, "grpo_to_dapo")


if __name__ == "__main__":
    main()
