r"""Batch transforms: the pipeline stage ``(ctx, Batch) -> Batch`` on scored batches (DESIGN.md section 6).

Each transform wraps a pure function of :mod:`rlobj.rollout.filters` (the functions listed in
:data:`rlobj.registry.BATCH_FUNCTIONS`) and may draw more rollouts through
:attr:`~rlobj.train.stages.StepContext.sample` and :attr:`~rlobj.train.stages.StepContext.score`:

============================  =======================  ==================================================
name                          class                    wraps
============================  =======================  ==================================================
``informative_groups``        :class:`InformativeGroups`  ``informative_groups``
``dynamic_sampling``          :class:`DynamicSampling`    ``dynamic_sampling`` (DAPO refill, same prompts)
``std_filter``                :class:`StdFilter`          ``std_filter`` (RLPR; EMA state)
``prof_filter``               :class:`ProfFilter`         ``prof_filter`` (PROF; PRM step scores)
``dars``                      :class:`DARS`               ``dars_extra_rollouts``, ``dars_cumulative_advantage``
``rorecomp``                  :class:`RoRecomp`           ``rorecomp_priority``, ``compensation_step`` (buffer state)
``self_curation``             :class:`SelfCuration`       ``self_curation`` (SELF; greedy decode)
``guided_resample``           :class:`GuidedResample`     GHPO hints for all-wrong groups (no batch function)
``ground_truth_rows``         :class:`GroundTruthRows`    ViSurf ground-truth rows (no batch function)
============================  =======================  ==================================================

In YAML, a list of names, ``{name: {args}}``, dotted paths ``mypkg.mod.MyTransform`` (a
:class:`~rlobj.train.stages.Transform` subclass, or a function ``(ctx, batch) -> Batch``), or
LightningCLI's ``{class_path: ..., init_args: {...}}``; :func:`build_transforms` builds them::

    transforms:
      - dynamic_sampling: {max_rounds: 5, on_short: error}
      - std_filter: {beta: 0.9}
      - mypkg.filters.MyFilter

Transforms return new batches (the input is not modified); rows of a group stay contiguous. A
transform may return an empty batch (every group dropped): the module then skips the update.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from rlobj.ops.errors import RlobjInputError, did_you_mean, import_dotted
from rlobj.train.stages import Batch, StepContext, Transform
from rlobj.train.transforms.groups import DARS, DynamicSampling, InformativeGroups, SelfCuration
from rlobj.train.transforms.guidance import GroundTruthRows, GuidedResample
from rlobj.train.transforms.rows import ProfFilter, RoRecomp, StdFilter

__all__ = ["TRANSFORMS", "BATCH_FUNCTION_TRANSFORMS", "build_transforms", "register_transform",
           "transform_for_batch_function", "CallableTransform", "InformativeGroups", "DynamicSampling", "DARS",
           "SelfCuration", "StdFilter", "ProfFilter", "RoRecomp", "GuidedResample", "GroundTruthRows"]

#: registry name -> Transform class (names as YAML writes them).
TRANSFORMS: dict[str, type[Transform]] = {
    "informative_groups": InformativeGroups,
    "dynamic_sampling": DynamicSampling,
    "std_filter": StdFilter,
    "prof_filter": ProfFilter,
    "dars": DARS,
    "rorecomp": RoRecomp,
    "self_curation": SelfCuration,
    "guided_resample": GuidedResample,
    "ground_truth_rows": GroundTruthRows,
}

#: each name of :data:`rlobj.registry.BATCH_FUNCTIONS` -> the registered transform that calls it.
BATCH_FUNCTION_TRANSFORMS: dict[str, str] = {
    "compensation_step": "rorecomp",
    "dars_cumulative_advantage": "dars",
    "dars_extra_rollouts": "dars",
    "dynamic_sampling": "dynamic_sampling",
    "informative_groups": "informative_groups",
    "prof_filter": "prof_filter",
    "rorecomp_priority": "rorecomp",
    "self_curation": "self_curation",
    "std_filter": "std_filter",
}


def transform_for_batch_function(name: str) -> str:
    """The registry name of the transform that applies the batch function ``name``."""
    if name not in BATCH_FUNCTION_TRANSFORMS:
        raise RlobjInputError(f"unknown batch function {name!r}.{did_you_mean(name, BATCH_FUNCTION_TRANSFORMS)} "
                              f"Known: {sorted(BATCH_FUNCTION_TRANSFORMS)}")
    return BATCH_FUNCTION_TRANSFORMS[name]


def register_transform(name: str, cls: type[Transform]) -> type[Transform]:
    """Add a user transform class under ``name`` (for YAML configs)."""
    if not (isinstance(cls, type) and issubclass(cls, Transform)):
        raise RlobjInputError(f"register_transform: {cls!r} is not a rlobj.train.stages.Transform subclass")
    if name in TRANSFORMS and TRANSFORMS[name] is not cls:
        raise RlobjInputError(f"register_transform: the name {name!r} is already taken by {TRANSFORMS[name].__name__}")
    TRANSFORMS[name] = cls
    return cls


class CallableTransform(Transform):
    """A function ``fn(ctx, batch, **kwargs) -> Batch`` used as a transform (no state)."""

    def __init__(self, fn: Callable[..., Batch], kwargs: Mapping | None = None):
        if not callable(fn):
            raise RlobjInputError(f"CallableTransform: expected a callable, got {fn!r}")
        self.fn, self.kwargs = fn, dict(kwargs or {})

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        out = self.fn(ctx, batch, **self.kwargs)
        if not isinstance(out, Batch):
            raise RlobjInputError(f"transform {_name(self.fn)} returned {type(out).__name__}, expected a Batch")
        return out

    def __repr__(self) -> str:
        return f"CallableTransform({_name(self.fn)}, kwargs={self.kwargs!r})"


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _known() -> dict[str, type[Transform]]:
    """Registry names and class names."""
    return {**{cls.__name__: cls for cls in TRANSFORMS.values()}, **TRANSFORMS}


def _resolve(name: str, where: str):
    known = _known()
    if name in known:
        return known[name]
    if "." in name:
        return import_dotted(name, where)
    raise RlobjInputError(f"{where}: unknown transform {name!r}.{did_you_mean(name, known)} Known: {sorted(TRANSFORMS)}, or a dotted "
                          "path to a Transform subclass or a function (ctx, batch) -> Batch")


def _build_one(item, where: str) -> Transform:
    if isinstance(item, Transform):
        return item
    args = {}
    if isinstance(item, Mapping) and "class_path" in item:
        extra = set(item) - {"class_path", "init_args"}
        if extra:
            raise RlobjInputError(f"{where}: unexpected keys {sorted(extra)} next to class_path")
        item, args = item["class_path"], item.get("init_args") or {}
    elif isinstance(item, Mapping):
        if len(item) != 1:
            raise RlobjInputError(f"{where}: a mapping item must have exactly one key (the transform's name), "
                                  f"got keys {sorted(map(str, item))}")
        (item, args), = item.items()
        args = {} if args is None else args
    elif callable(item) and not isinstance(item, type):
        return CallableTransform(item)
    if not isinstance(args, Mapping):
        raise RlobjInputError(f"{where}: the arguments of {item!r} must be a mapping, got {args!r}")
    if isinstance(item, str):
        target = _resolve(item, where)
    elif isinstance(item, type):
        target = item
    else:
        raise RlobjInputError(f"{where}: expected a Transform, a name, {{name: {{args}}}} or a dotted path, "
                              f"got {item!r}")
    label = item if isinstance(item, str) else _name(item)
    if isinstance(target, type):
        if not issubclass(target, Transform):
            raise RlobjInputError(f"{where}: {label!r} is a class but not a rlobj.train.stages.Transform subclass")
        try:
            return target(**dict(args))
        except TypeError as error:
            params = [p for p in inspect.signature(target.__init__).parameters if p != "self"]
            raise RlobjInputError(f"{where}: cannot build {label!r} with {dict(args)!r} ({error}); its arguments "
                                  f"are {params}") from error
    if isinstance(target, Transform):
        if args:
            raise RlobjInputError(f"{where}: {label!r} is a Transform instance and takes no arguments")
        return target
    if callable(target):
        return CallableTransform(target, args)
    raise RlobjInputError(f"{where}: {label!r} is neither a Transform subclass nor a callable (ctx, batch) -> Batch")


def build_transforms(spec) -> list[Transform]:
    """Transforms from config: Transform instances, registered names or class names, ``{name: {args}}``,
    dotted paths (``"mypkg.mod.MyTransform"``, ``{"mypkg.mod.MyTransform": {args}}``),
    ``{class_path, init_args}`` mappings, or functions ``(ctx, batch) -> Batch``. None gives ``[]``."""
    if spec is None:
        return []
    if isinstance(spec, (str, Mapping, Transform)) or not isinstance(spec, (list, tuple)):
        spec = [spec]
    return [_build_one(item, f"transforms[{index}]") for index, item in enumerate(spec)]
