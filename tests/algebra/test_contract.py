"""The declarative term contract: one class declaration, hyperparameters checked at build by
their annotations, names derived, state keyed by a stable name."""

import dataclasses
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import pytest
import torch
import yaml

from rlobj import (
    LossPart,
    Objective,
    RlobjBuildError,
    RlobjInputError,
    State,
    Term,
    clip_ratio,
    group_zscore,
    grpo,
    token_mean,
)
from rlobj.algebra import Fraction, NonNegative, OpenFraction, Positive, Range
from rlobj.algebra.term import term_keys
from rlobj.registry import build_objective


class scale_rewards(Term, stage="batch", reads=("rewards",), writes=("rewards",)):
    r"""$r_i \leftarrow c\, r_i$ (a test term in the one-line declaration)."""

    coef: Annotated[float, Range(gt=0, le=10)] = 1.0
    mode: Literal["plain", "signed"] = "plain"
    tags: tuple[str, ...] = ()
    inner: Term | None = None
    fn: Callable | None = None
    offset: NonNegative = 0.0
    share: Fraction = 0.5
    rate: OpenFraction = 1.0
    steps: Annotated[int, Range(ge=1)] = 1
    scale: Positive = 1.0
    flag: bool = False
    notes: dict = field(default_factory=dict, compare=False)

    def __call__(self, state: State) -> State:
        return state.update(rewards=self.coef * state.require("rewards"))


class scale_more(scale_rewards):
    r"""$r_i \leftarrow 2c\, r_i$: inherits the declaration and the fields."""

    def __call__(self, state: State) -> State:
        return state.update(rewards=2 * self.coef * state.require("rewards"))


@dataclass(frozen=True)
class decorated(Term, stage="batch", reads=("rewards",), writes=("rewards",)):
    r"""$r_i$ unchanged; still carries the decorator, with a factory field."""

    seen: tuple = field(default_factory=tuple)
    weight: NonNegative = 1.0

    def __call__(self, state: State) -> State:
        return state


@dataclass(frozen=True)
class old_style(Term):
    r"""$r_i$ unchanged; the ClassVar spelling."""

    stage: ClassVar[str] = "batch"
    reads: ClassVar[tuple[str, ...]] = ("rewards",)
    writes: ClassVar[tuple[str, ...]] = ("rewards",)
    weight: float = 1.0

    def __post_init__(self):
        if self.weight == 3.0:
            raise RlobjInputError("old_style.weight: 3 is unlucky")

    def __call__(self, state: State) -> State:
        return state


class counter(Term, reads=("mask",)):
    r"""$\ell = 0$ (loss part ``part``); counts its calls in its stored state (``term_state``)."""

    part: str = "count"

    def slots_written(self) -> frozenset[str]:
        return frozenset({f"part:{self.part}"})

    def __call__(self, state: State) -> State:
        state = state.add_part(self.part, LossPart(torch.zeros_like(state.logp), state.mask))
        return state.set_own_state(state.own_state(0) + 1)


class needs_advantages(Term, reads=("advantages", "mask"), writes=("part:extra",)):
    r"""$\ell = 0$; fails without advantages, naming itself."""

    def __call__(self, state: State) -> State:
        state.require("advantages")
        return state


def batch(**changes):
    fields = dict(logp=torch.log(torch.full((4, 3), 0.5)), logp_old=torch.log(torch.full((4, 3), 0.5)),
                  mask=torch.ones(4, 3, dtype=torch.bool), rewards=torch.tensor([1.0, 0.0, 1.0, 1.0]),
                  group_ids=torch.tensor([0, 0, 1, 1]))
    fields.update(changes)
    return fields


# ---------------------------------------------------------------------------- the declaration
def test_the_class_keywords_declare_stage_reads_and_writes_and_make_a_frozen_dataclass():
    term = scale_rewards(2.0)
    assert (term.stage, term.slots_read(), term.slots_written()) == ("batch", {"rewards"}, {"rewards"})
    assert dataclasses.is_dataclass(term) and term == scale_rewards(2) and hash(term) == hash(scale_rewards(2.0))
    assert pickle.loads(pickle.dumps(term)) == term
    with pytest.raises(dataclasses.FrozenInstanceError):
        term.coef = 3.0
    assert repr(scale_rewards()).startswith("scale_rewards(coef=1.0, mode='plain'")
    assert scale_rewards(notes={"a": 1}) == scale_rewards()  # compare=False kept


def test_subclasses_inherit_the_declaration_and_fields():
    term = scale_more(coef=3.0)
    assert (term.stage, term.reads, term.writes) == ("batch", ("rewards",), ("rewards",))
    assert [f.name for f in dataclasses.fields(term)][:2] == ["coef", "mode"]
    with pytest.raises(RlobjInputError, match=r"scale_more\.coef: expected > 0, got 0"):
        scale_more(coef=0)
    out = Objective(scale_more(3.0) >> group_zscore() >> clip_ratio() >> token_mean())(**batch())
    assert torch.isfinite(out.loss)


def test_the_decorator_and_the_classvar_spelling_still_work():
    assert decorated().seen == () and decorated(seen=(1,)) != decorated()
    with pytest.raises(RlobjInputError, match=r"decorated\.weight: expected >= 0\.0, got -1"):
        decorated(weight=-1)
    assert (old_style.stage, old_style().slots_read()) == ("batch", {"rewards"})
    with pytest.raises(RlobjInputError, match=r"old_style\.weight: expected float, got str"):
        old_style("1")  # the type check runs before the class's own __post_init__
    with pytest.raises(RlobjInputError, match="unlucky"):
        old_style(3)


def test_bad_declarations_are_refused_when_the_class_is_made():
    with pytest.raises(RlobjBuildError, match="stage must be 'batch' or 'loss'"):
        class bad_stage(Term, stage="micro"):
            pass
    with pytest.raises(RlobjBuildError, match=r"reads must be a tuple of slot names.*\('rewards',\)"):
        class bad_reads(Term, reads="rewards"):
            pass
    with pytest.raises(RlobjBuildError, match="may_read is for optional inputs"):
        class bad_optional(Term, may_read=("advantages",)):
            pass


# ---------------------------------------------------------------------- hyperparameter checks
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"coef": -1}, "scale_rewards.coef: expected > 0, got -1"),
    ({"coef": 11.5}, "scale_rewards.coef: expected <= 10, got 11.5"),
    ({"coef": "0.2"}, "scale_rewards.coef: expected float, got str '0.2'"),
    ({"coef": True}, "scale_rewards.coef: expected float, got bool True"),
    ({"mode": "loud"}, "scale_rewards.mode: expected one of 'plain', 'signed', got str 'loud'"),
    ({"tags": ("a", 1)}, "scale_rewards.tags: expected tuple[str, ...], got tuple ('a', 1)"),
    ({"inner": "clip_ratio"}, "scale_rewards.inner: expected Term or None, got str 'clip_ratio'"),
    ({"fn": 3}, "scale_rewards.fn: expected Callable or None, got int 3"),
    ({"offset": -0.5}, "scale_rewards.offset: expected >= 0.0, got -0.5"),
    ({"share": 1.5}, "scale_rewards.share: expected <= 1.0, got 1.5"),
    ({"rate": 0.0}, "scale_rewards.rate: expected > 0.0, got 0.0"),
    ({"steps": 0}, "scale_rewards.steps: expected >= 1, got 0"),
    ({"steps": 1.5}, "scale_rewards.steps: expected int, got float 1.5"),
    ({"scale": None}, "scale_rewards.scale: expected float, got NoneType None"),
    ({"flag": 1}, "scale_rewards.flag: expected bool, got int 1"),
])
def test_a_bad_hyperparameter_is_named_with_what_was_expected(kwargs, message):
    with pytest.raises(RlobjInputError) as error:
        scale_rewards(**kwargs)
    assert str(error.value) == message


def test_values_as_yaml_and_the_cli_give_them_are_accepted():
    term = scale_rewards(coef=2, tags=["a", "b"], inner=clip_ratio(), fn=abs, steps=3, flag=True, mode="signed")
    assert term.coef == 2 and term.steps == 3
    loaded = yaml.safe_load("coef: 1e-1\noffset: 0\nshare: 1")  # YAML 1.1: '1e-1' is a string
    with pytest.raises(RlobjInputError, match="scale_rewards.coef: expected float, got str '1e-1'"):
        scale_rewards(**loaded)
    assert scale_rewards(coef=0.1, offset=loaded["offset"], share=loaded["share"]).share == 1


def test_registered_terms_are_type_checked_at_build():
    with pytest.raises(RlobjInputError) as error:
        clip_ratio(eps_low="0.2")
    assert str(error.value) == "clip_ratio.eps_low: expected float, got str '0.2'"
    with pytest.raises(RlobjInputError, match=r"group_zscore\.eps: expected >= 0\.0, got -1"):
        group_zscore(eps=-1)
    with pytest.raises(RlobjInputError, match=r"clip_ratio\.eps_high: expected float, got str"):
        build_objective([{"clip_ratio": {"eps_high": "0.28"}}])
    assert build_objective([{"clip_ratio": {"eps_high": 1}}]).eps_high == 1  # an int is a float


# ------------------------------------------------------------------------------- derived names
def test_require_names_the_running_term_in_a_chain_and_when_called_directly():
    state = State.from_batch(**batch())
    with pytest.raises(RlobjInputError, match="^needs_advantages reads 'advantages'"):
        needs_advantages()(state)
    with pytest.raises(RlobjInputError, match="^needs_advantages reads 'advantages'"):
        Objective(counter() >> needs_advantages())(**batch())
    assert needs_advantages()(state.update(advantages=torch.zeros(4, 3))).key == ""  # direct call: key restored


# ------------------------------------------------------------------------------ stable state keys
def test_term_keys_are_names_with_a_count_for_repeats():
    assert term_keys([counter(), group_zscore(), counter(), counter()]) == ["counter", "group_zscore", "counter#2",
                                                                              "counter#3"]


def test_stored_state_survives_inserting_a_term_in_front():
    first = Objective(counter())(**batch())
    assert first.term_state == {"counter": 1}
    longer = Objective(grpo >> counter())  # two terms more, before it
    second = longer(**batch(), term_state=first.term_state)
    assert second.term_state == {"counter": 2}
    both = Objective(counter() >> grpo >> counter(part="other"))(**batch(), term_state=second.term_state)
    assert both.term_state == {"counter": 3, "counter#2": 1}
