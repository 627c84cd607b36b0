"""The layout of ``rlobj/terms``: every registered term lives in the family of the slot it writes.

The rule, applied to each term built with its defaults:

1. Its **primary slot** is the first slot it writes in this order: ``part:policy``, any other
   ``part:<name>``, ``aggregation``, ``advantages``, ``rewards``, ``token_rewards``, ``mask``,
   ``extras:<key>`` (``brpo_advantage`` writes ``advantages`` and ``mask``: primary
   ``advantages``; ``turn_end_rewards`` writes ``rewards`` and ``token_rewards``: ``rewards``).
2. Its **family** follows from the primary slot:

   * ``part:policy`` without reading ``part:policy``: ``surrogates`` (it builds the policy loss);
   * ``part:policy`` read and rewritten: ``masks`` (a weight or mask on the surrogate before it);
   * another ``part:<name>``: by what the part is, from :data:`PART_FAMILIES` (a divergence
     compares the policy with another distribution; a regularizer shapes the policy itself;
     ``sft`` is supervised; a part for a side quantity is auxiliary). A new part name fails
     until it is added there with its family;
   * ``aggregation``: :mod:`rlobj.algebra.aggregation`;
   * ``advantages``: ``advantages``; ``rewards`` or ``token_rewards``: ``rewards``;
     ``mask``: ``masks``; only ``extras:<key>``: ``rewards`` (a score of the rollout written
     once per batch for later terms, as a reward is).
3. :data:`EXCEPTIONS` names the terms filed otherwise, each with its reason.

The term's module (``__module__`` of its class or factory) must be the family's module or
one inside the family's package: ``rlobj.terms.<family>`` or ``rlobj.terms.<family>.<module>``.
"""

import dataclasses
from pathlib import Path

import pytest

from rlobj.registry import TERM_FACTORIES

TERMS_DIR = Path(__file__).resolve().parents[2] / "rlobj" / "terms"

#: Loss parts other than ``policy``, by family.
PART_FAMILIES = {
    # divergences: the policy against a reference, the initial policy or a perturbed context
    "kl_ref": "divergences", "kl_init": "divergences", "kl_ref_forward_full": "divergences",
    "kl_ref_reverse_full": "divergences", "f_ref_full": "divergences", "js_ref_full": "divergences",
    "dph": "divergences", "perception_kl": "divergences",
    # regularizers: the policy's own entropy
    "entropy": "regularizers", "entropy_sampled": "regularizers", "entropy_double": "regularizers",
    "siren": "regularizers",
    "sft": "supervised",
    "self_reward": "auxiliary",
}

#: Terms filed against the rule, with the reason.
EXCEPTIONS = {
    "lp_reg": ("regularizers", "Lp-Reg reads and rewrites part:policy as a mask does, but it adds a "
                               "penalty toward a proxy policy: a regularizer by what it does and by its "
                               "paper's name"),
}

_ORDER = ("part:policy", "part:", "aggregation", "advantages", "rewards", "token_rewards", "mask", "extras:")


def primary_slot(written: frozenset[str]) -> str:
    """The first written slot in the order of the module docstring."""
    for prefix in _ORDER:
        matches = sorted(slot for slot in written
                         if (slot == prefix if not prefix.endswith(":") else slot.startswith(prefix)))
        if matches:
            return matches[0]
    raise AssertionError(f"writes no slot the layout rule knows: {sorted(written)}")


def family_of(name: str, term) -> str:
    """The family a registered term belongs in (rule of the module docstring)."""
    if name in EXCEPTIONS:
        return EXCEPTIONS[name][0]
    slot = primary_slot(term.slots_written())
    if slot == "part:policy":
        return "masks" if "part:policy" in term.slots_read() else "surrogates"
    if slot.startswith("part:"):
        part = slot.removeprefix("part:")
        assert part in PART_FAMILIES, (
            f"{name} writes the loss part {part!r}, which PART_FAMILIES does not list: add it with "
            "its family (divergences, regularizers, supervised or auxiliary)")
        return PART_FAMILIES[part]
    if slot == "aggregation":
        return "aggregation"
    return {"advantages": "advantages", "rewards": "rewards", "token_rewards": "rewards",
            "mask": "masks"}.get(slot, "rewards")  # only extras:<key> left: a score of the rollout


def misfiled(name: str, term, module: str) -> str | None:
    """Why ``term`` (registered as ``name``) does not belong in ``module``, or None."""
    family = family_of(name, term)
    home = "rlobj.algebra.aggregation" if family == "aggregation" else f"rlobj.terms.{family}"
    if module == home or module.startswith(home + "."):
        return None
    return (f"{name} writes {sorted(term.slots_written())} (primary slot "
            f"{primary_slot(term.slots_written())!r}), so it belongs in {home}, but it lives in {module}")


@pytest.mark.parametrize("name", sorted(TERM_FACTORIES))
def test_every_registered_term_lives_in_the_family_of_the_slot_it_writes(name):
    factory = TERM_FACTORIES[name]
    term = factory()
    problem = misfiled(name, term, factory.__module__)
    assert problem is None, problem + " (rule: tests/terms/test_layout.py docstring)"


@pytest.mark.parametrize("name, module", [
    ("clip_ratio", "rlobj.terms.masks.token_selection"),  # a surrogate filed as a mask
    ("truncated_is", "rlobj.terms.surrogates.policy_gradient"),  # a mask filed as a surrogate
    ("group_zscore", "rlobj.terms.rewards.shaping"),
    ("overlong_penalty", "rlobj.terms.advantages.baselines"),
    ("k3_kl", "rlobj.terms.regularizers.entropy"),
    ("entropy_bonus", "rlobj.terms.divergences.sampled_kl"),
    ("pacs_loss", "rlobj.terms.auxiliary"),
    ("drop_zero_variance_groups", "rlobj.terms.rewards.shaping"),
    ("lp_reg", "rlobj.terms.masks.token_selection"),  # the exception still pins its family
    ("token_mean", "rlobj.terms.masks"),
])
def test_a_term_in_the_wrong_family_is_caught(name, module):
    problem = misfiled(name, TERM_FACTORIES[name](), module)
    assert problem is not None and f"it lives in {module}" in problem


def test_a_new_loss_part_must_be_given_a_family():
    @dataclasses.dataclass(frozen=True)
    class novel:
        def slots_written(self):
            return frozenset({"part:novelty"})

        def slots_read(self):
            return frozenset()

    with pytest.raises(AssertionError, match="PART_FAMILIES does not list"):
        family_of("novel", novel())


def test_every_exception_is_needed():
    """An exception whose term the rule already files correctly is stale: remove it."""
    for name, (family, _reason) in list(EXCEPTIONS.items()):
        saved = EXCEPTIONS.pop(name)
        try:
            assert family_of(name, TERM_FACTORIES[name]()) != family, f"EXCEPTIONS[{name!r}] is not needed"
        finally:
            EXCEPTIONS[name] = saved


def test_no_module_of_the_terms_is_over_600_lines():
    sizes = {str(path.relative_to(TERMS_DIR)): len(path.read_text(encoding="utf-8").splitlines())
             for path in TERMS_DIR.rglob("*.py")}
    assert not {path: lines for path, lines in sizes.items() if lines > 600}


def test_every_family_package_exports_its_modules_public_names():
    """``rlobj.terms.<family>`` re-exports the ``__all__`` of each of its public modules."""
    import importlib

    for package in sorted(path for path in TERMS_DIR.iterdir() if (path / "__init__.py").is_file()):
        family = importlib.import_module(f"rlobj.terms.{package.name}")
        for source in sorted(package.glob("*.py")):
            if source.stem.startswith("_"):
                continue
            module = importlib.import_module(f"rlobj.terms.{package.name}.{source.stem}")
            missing = [name for name in module.__all__ if getattr(family, name, None) is not getattr(module, name)]
            assert not missing, f"rlobj.terms.{package.name} does not re-export {missing} of {module.__name__}"
            assert set(module.__all__) <= set(family.__all__)
