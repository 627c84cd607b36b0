r"""A custom term in ten lines: clip the advantages, compose it with GRPO, see the order check.

A term is one declaration and its math. The class line says when it runs (``stage="batch"``:
on whole groups, before micro-batching) and which slots it ``reads`` and ``writes``; the
fields are its hyperparameters, typed, with their range in the annotation (``Positive``: a
float > 0, checked when the term is built, naming the field); ``__call__`` maps a ``State``
to a new one, and ``state.require`` names the term by itself when a slot is missing. The class
becomes a frozen dataclass: it prints, compares by value and pickles. ``clip_advantages`` below bounds the group z-scores of GRPO, which
reach $(1-p)/\sigma \approx 2.5$ for the one success in a group of eight. It goes between the
advantage term and the surrogate: ``grpo.replace(group_zscore, group_zscore() >> clip_advantages(2.0))``.
Put after the surrogate (``grpo >> clip_advantages(2.0)``), it would change advantages that
``clip_ratio`` has already used; the chain refuses that order when it is built, naming both
terms.

Run: ``python examples/custom_term.py`` (plot: ``artifacts/plots/custom_term.png``;
``--docs`` also writes the copy shown below).

![Advantages of GRPO with and without clip_advantages](../assets/examples/custom_term.png)
"""

import pickle
import sys
from pathlib import Path

import torch

from rlobj import Objective, RlobjBuildError, RlobjInputError, State, Term, group_zscore, grpo
from rlobj.algebra import Positive


class clip_advantages(Term, stage="batch", reads=("advantages", "mask"), writes=("advantages",)):
    r"""$A_{i,t} \leftarrow \mathrm{clip}(A_{i,t}, -c, c)$: bound the advantages before the surrogate."""

    limit: Positive = 2.0

    def __call__(self, state: State) -> State:
        advantages = state.require("advantages")
        clipped = torch.where(state.mask, advantages.clamp(-self.limit, self.limit), 0.0)
        fraction = ((clipped != advantages) & state.mask).sum() / state.mask.sum()
        return state.update(advantages=clipped).add_metrics(**{"adv/clipped_frac": fraction})


def synthetic_batch(prompts: int = 6, group: int = 8, length: int = 16, seed: int = 0) -> dict:
    """Groups of eight responses with a few rare successes and unequal lengths."""
    generator = torch.Generator().manual_seed(seed)
    batch = prompts * group
    lengths = torch.randint(4, length + 1, (batch,), generator=generator)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    logp_old = -torch.rand(batch, length, generator=generator) * 3.0
    logp = (logp_old + 0.1 * torch.randn(batch, length, generator=generator)).clamp(max=0.0)
    success = torch.tensor([0.125, 0.25, 0.5, 0.125, 0.75, 0.125])[:prompts]
    rewards = (torch.rand(batch, generator=generator) < success.repeat_interleave(group)).float()
    group_ids = torch.arange(prompts).repeat_interleave(group)
    return dict(logp=logp.requires_grad_(), logp_old=logp_old, mask=mask, rewards=rewards, group_ids=group_ids)


def save_plot(figure, name: str) -> None:
    targets = [Path("artifacts/plots")] + ([Path("docs/assets/examples")] if "--docs" in sys.argv else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=80)
        print(f"plot written to {(folder / f'{name}.png').as_posix()}")


def main() -> None:
    term = clip_advantages(limit=2.0)
    print("the term:", term)
    print("compares by value:", term == clip_advantages(2.0), "| pickles:", pickle.loads(pickle.dumps(term)) == term)

    clipped_grpo = grpo.replace(group_zscore, group_zscore() >> term)
    print("\nchain:", clipped_grpo)

    batch = synthetic_batch()
    plain, clipped = Objective(grpo)(**batch), Objective(clipped_grpo)(**batch)
    print(f"\nrewards per group: {batch['rewards'].view(6, 8).sum(1).int().tolist()} successes of 8")
    for label, out in (("grpo", plain), ("grpo + clip_advantages", clipped)):
        print(f"{label:24s} loss = {float(out.loss.detach()):+.6f}   max |A| = {float(out.state.advantages.abs().max()):.4f}")
    print(f"adv/clipped_frac = {float(clipped.metrics['adv/clipped_frac']):.4f}")

    print("\nthe wrong order, grpo >> clip_advantages(2.0):")
    try:
        grpo >> term
    except RlobjBuildError as error:
        print(f"  RlobjBuildError: {error}")

    print("\nbad hyperparameters, refused when the term is built:")
    for bad in (lambda: clip_advantages(limit=0.0), lambda: clip_advantages(limit="2")):
        try:
            bad()
        except RlobjInputError as error:
            print(f"  RlobjInputError: {error}")
    print("run without advantages:")
    try:
        Objective(clip_advantages() >> grpo.replace(group_zscore, None))(**batch)
    except (RlobjInputError, RlobjBuildError) as error:
        print(f"  {type(error).__name__}: {error}")

    import matplotlib.pyplot as plt

    per_sequence = lambda out: out.state.advantages[:, 0].detach()  # noqa: E731 (constant over tokens)
    figure, axis = plt.subplots(figsize=(6.4, 3.2))
    rows = torch.arange(len(batch["rewards"]))
    axis.bar(rows - 0.2, per_sequence(plain), width=0.4, label="grpo (group z-score)")
    axis.bar(rows + 0.2, per_sequence(clipped), width=0.4, label="grpo + clip_advantages(2.0)")
    for limit in (-2.0, 2.0):
        axis.axhline(limit, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="response (groups of 8)", ylabel="advantage", title="Clipping the rare-success advantages")
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_plot(figure, "custom_term")


if __name__ == "__main__":
    main()
