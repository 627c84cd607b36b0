"""Every public term, aggregation and preset by name, and objectives built from config.

The registry drives the shared checks of the test suite (every entry builds from its
defaults, runs, pickles, round-trips through YAML, accepts fp32 and bf16 and ignores unknown
extras) and the YAML form of an objective: a list of ``{name: {arg: value}}`` items.

Example:
    >>> from rlobj.registry import build_objective
    >>> build_objective(["group_zscore", {"clip_ratio": {"eps_high": 0.28}}, "token_mean"])
    group_zscore(eps=1e-06, unbiased=True, singleton='error') >> clip_ratio(eps_low=0.2, eps_high=0.28, dual_clip=None, log_ratio_clamp=20.0) >> token_mean()
"""

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from rlobj import algebra, presets, terms
from rlobj.algebra.term import Term, chain
from rlobj.ops.errors import RlobjInputError, did_you_mean, import_dotted
from rlobj.rollout import filters

__all__ = ["REGISTRY", "TERM_FACTORIES", "PRESETS", "BATCH_FUNCTIONS", "build_term", "build_objective",
           "register", "to_config"]

#: name -> term class or factory function (called with keyword arguments).
TERM_FACTORIES: dict[str, Callable[..., Term]] = {}
#: name -> preset chain (a value).
PRESETS: dict[str, Term] = {}

for _module in (terms, algebra):
    for _name in _module.__all__:
        _obj = getattr(_module, _name)
        if inspect.isclass(_obj) and issubclass(_obj, Term) and dataclasses.is_dataclass(_obj) \
                and _obj.__name__ == _name and _name != "Chain":
            TERM_FACTORIES[_name] = _obj
for _name in ("k1_kl", "k2_kl", "k3_kl", "abs_kl"):
    TERM_FACTORIES[_name] = getattr(terms, _name)
for _name in presets.__all__:
    PRESETS[_name] = getattr(presets, _name)

#: Everything that composes with ``>>``, by name.
REGISTRY: dict[str, Any] = {**TERM_FACTORIES, **PRESETS}

#: Methods that act on the rollout batch rather than on the loss (DAPO dynamic sampling, SELF,
#: DARS, RoRecomp, PROF, RLPR's std filter): pure functions of ``rlobj.rollout.filters``,
#: public in ``rlobj`` and listed here so configs and checks can find them by name.
BATCH_FUNCTIONS: dict[str, Callable] = {
    name: getattr(filters, name)
    for name in ("compensation_step", "dars_cumulative_advantage", "dars_extra_rollouts",
                 "dynamic_sampling", "informative_groups", "prof_filter", "rorecomp_priority",
                 "self_curation", "std_filter")
}


def register(name: str, factory: Callable[..., Term]) -> Callable[..., Term]:
    """Add a user-defined term class or factory under ``name`` (for YAML configs)."""
    if name in REGISTRY:
        raise RlobjInputError(f"register: the name {name!r} is already taken by {REGISTRY[name]!r}")
    TERM_FACTORIES[name] = factory
    REGISTRY[name] = factory
    return factory


def _import_term(path: str) -> Callable[..., Term]:
    """A user's term class or factory by dotted path (``mypkg.terms.length_cost``)."""
    factory = import_dotted(path, "term")
    if isinstance(factory, Term):  # a module-level chain or term value
        return lambda: factory
    if not callable(factory) or (inspect.isclass(factory) and not issubclass(factory, Term)):
        raise RlobjInputError(f"term {path!r}: expected a Term subclass, a factory returning a Term or a Term value, "
                              f"got {factory!r}")
    return factory


def build_term(name: str, **kwargs) -> Term:
    """Build the registered term ``name`` with ``kwargs``; unknown names and keys are errors.

    A dotted name that is not registered (``mypkg.terms.length_cost``) is imported: a user's
    :class:`~rlobj.algebra.term.Term` subclass (built with ``kwargs``), a factory returning a term,
    or a term value; configs saved by ``rlobj fit`` keep the dotted name, so they re-run as is.
    """
    if name not in REGISTRY and "." in name:
        factory = _import_term(name)
        try:
            term = factory(**kwargs)
        except TypeError as error:
            raise RlobjInputError(f"{name}: {error}") from error
        if not isinstance(term, Term):
            raise RlobjInputError(f"term {name!r}: the factory returned {type(term).__name__}, not a Term")
        return term
    if name not in REGISTRY:
        raise RlobjInputError(f"unknown term {name!r}.{did_you_mean(name, REGISTRY)} Known: {sorted(REGISTRY)}")
    if name in PRESETS:
        if kwargs:
            raise RlobjInputError(f"preset {name!r} takes no arguments, got {sorted(kwargs)}; "
                                  "add or replace terms instead")
        return PRESETS[name]
    factory = TERM_FACTORIES[name]
    target = factory if inspect.isclass(factory) else None
    allowed = ({f.name for f in dataclasses.fields(target)} if target is not None
               else set(inspect.signature(factory).parameters) | {f.name for f in dataclasses.fields(terms.kl_penalty)})
    unknown = set(kwargs) - allowed
    if unknown:
        raise RlobjInputError(f"{name}: unknown argument(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return factory(**kwargs)
    except TypeError as error:
        raise RlobjInputError(f"{name}: {error}") from error


def build_objective(spec) -> Term:
    """Build a chain from a config: a name, or a list of names / ``{name: {args}}`` items."""
    if isinstance(spec, str):
        return build_term(spec)
    if not isinstance(spec, (list, tuple)) or not spec:
        raise RlobjInputError(f"objective: expected a non-empty list of terms, got {spec!r}")
    built = []
    for index, item in enumerate(spec):
        if isinstance(item, str):
            built.append(build_term(item))
        elif isinstance(item, dict) and len(item) == 1:
            (name, kwargs), = item.items()
            if kwargs is not None and not isinstance(kwargs, dict):
                raise RlobjInputError(f"objective[{index}].{name}: expected a mapping of arguments, got {kwargs!r}")
            built.append(build_term(name, **(kwargs or {})))
        else:
            raise RlobjInputError(f"objective[{index}]: expected a term name or {{name: {{args}}}}, got {item!r}")
    return chain(*built)


def to_config(term: Term) -> list:
    """The YAML-ready form of a term or chain: ``[{name: {field: value}}, ...]``.

    ``build_objective(to_config(t)) == t`` for every registered term (a tested round trip); a
    user's term defined in an importable module is written under its dotted path.
    """
    from rlobj.algebra.term import as_terms

    items = []
    for primitive in as_terms(term):
        name = type(primitive).__name__
        if TERM_FACTORIES.get(name) is not type(primitive):
            module = type(primitive).__module__
            if module in ("__main__", "builtins") or "<" in type(primitive).__qualname__:
                raise RlobjInputError(f"to_config: {name} is neither registered nor importable by a dotted path "
                                      "(define it in a module, or call rlobj.registry.register first)")
            name = f"{module}.{type(primitive).__qualname__}"
        values = {f.name: getattr(primitive, f.name) for f in dataclasses.fields(primitive)}
        items.append({name: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}})
    return items
