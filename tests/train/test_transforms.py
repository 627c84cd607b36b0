"""The transforms package (rlobj/train/transforms/__init__.py): composition, build_transforms from names,
dicts and dotted paths and its errors, callables as transforms, every BATCH_FUNCTIONS name reachable
from YAML. Each transform's own tests are in tests/train/transforms/test_<module>.py."""

import inspect
import warnings

import pytest
from train.transforms._scripted import (
    R,
    Script,
    W,
    context,
    first_batch,
    groups_of,
    make_batch,
)

from rlobj.ops.errors import RlobjInputError
from rlobj.registry import BATCH_FUNCTIONS
from rlobj.train.stages import Score, Transform
from rlobj.train.transforms import (
    BATCH_FUNCTION_TRANSFORMS,
    TRANSFORMS,
    CallableTransform,
    DynamicSampling,
    InformativeGroups,
    StdFilter,
    build_transforms,
    transform_for_batch_function,
)


# --------------------------------------------------------------------------- composition
def test_transforms_compose_in_order():
    records = [dict(id=0, plan={0: [R, W]}, greedy=W), dict(id=1, plan={0: [R, R], 1: [R, W]}, greedy=R)]
    script = Script()
    batch = first_batch(script, records)
    ctx = context(script)
    for transform in build_transforms(["dynamic_sampling", "self_curation"]):
        batch = transform(ctx, batch)
    assert groups_of(batch) == [[0, 0]]
    assert batch.metrics["dynamic_sampling/rounds"] == 2 and batch.metrics["self_curation/kept"] == 1


# --------------------------------------------------------------------------- registry and YAML
def halve(ctx, batch, keep=1):
    """A transform as a function: the first ``keep`` rows."""
    return batch.select(list(range(keep)))


def test_build_transforms_from_names_dicts_and_paths(tmp_path, monkeypatch):
    (tmp_path / "my_transforms.py").write_text(
        "from rlobj.train.stages import Transform\n"
        "class Reverse(Transform):\n"
        "    def __init__(self, tag: str = 'x'):\n"
        "        self.tag = tag\n"
        "    def __call__(self, ctx, batch):\n"
        "        return batch.select(list(range(len(batch)))[::-1])\n"
        "def first(ctx, batch, keep=1):\n"
        "    return batch.select(list(range(keep)))\n"
        "class NotATransform:\n"
        "    pass\n"
        "VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    given = StdFilter(beta=0.1)
    built = build_transforms(["dynamic_sampling", {"std_filter": {"beta": 0.9}}, {"dars": None}, "RoRecomp",
                              given, "my_transforms.Reverse", {"my_transforms.Reverse": {"tag": "y"}},
                              {"my_transforms.first": {"keep": 2}},
                              {"class_path": "rlobj.train.transforms.ProfFilter", "init_args": {"keep": 2}}, halve])
    assert [type(t).__name__ for t in built] == ["DynamicSampling", "StdFilter", "DARS", "RoRecomp", "StdFilter",
                                                 "Reverse", "Reverse", "CallableTransform", "ProfFilter",
                                                 "CallableTransform"]
    assert built[1].beta == 0.9 and built[4] is given and built[6].tag == "y" and built[8].keep == 2
    assert all(isinstance(t, Transform) for t in built)
    batch = make_batch([dict(id=0)] * 3, [[5], [6], [7]], [0, 0, 0], scores=[Score(1.0), Score(0.0), Score(0.0)])
    assert len(built[7](context(Script()), batch)) == 2 and len(built[9](context(Script()), batch)) == 1
    assert build_transforms(None) == [] and len(build_transforms("std_filter")) == 1
    assert isinstance(build_transforms({"informative_groups": {}})[0], InformativeGroups)
    assert isinstance(CallableTransform(halve), Transform)


@pytest.mark.parametrize("item, message", [
    ("dynamic_sampln", "unknown transform 'dynamic_sampln'. Did you mean 'dynamic_sampling'"),
    ("std_filtre", "Did you mean 'std_filter'"),
    ("no_such_module_xyz.Thing", "cannot import 'no_such_module_xyz.Thing'"),
    ("collections.OrderedDict", "not a rlobj.train.stages.Transform subclass"),
    ("math.pi", "neither a Transform subclass nor a callable"),
    ({"std_filter": {"betta": 1.0}}, "cannot build 'std_filter' .*'betta'.*its arguments are \\['beta'"),
    ({"std_filter": {}, "dars": {}}, "exactly one key"),
    ({"std_filter": [1]}, "must be a mapping"),
    (3, "expected a Transform, a name"),
])
def test_build_transforms_errors(item, message):
    with pytest.raises(RlobjInputError, match=message) as error:
        build_transforms(["std_filter", item])
    assert "transforms[1]" in str(error.value)


def test_bad_callable_output():
    transform = build_transforms([lambda ctx, batch: None])[0]
    batch = make_batch([dict(id=0)], [[5]], [0], scores=[Score(1.0)])
    with pytest.raises(RlobjInputError, match="returned NoneType, expected a Batch"):
        transform(context(Script()), batch)


def test_every_batch_function_is_reachable_from_yaml():
    assert set(BATCH_FUNCTION_TRANSFORMS) == set(BATCH_FUNCTIONS)
    for name, function in BATCH_FUNCTIONS.items():
        registered = transform_for_batch_function(name)
        cls = TRANSFORMS[registered]
        assert issubclass(cls, Transform)
        source = inspect.getsource(inspect.getmodule(cls))
        assert f"{function.__name__}(" in source, f"{cls.__name__} does not call {name}"
        assert isinstance(build_transforms([registered])[0], cls)
    with pytest.raises(RlobjInputError, match="Did you mean 'std_filter'"):
        transform_for_batch_function("std_filtr")


def test_lightning_cli_style_config_builds_transforms():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--transforms", type=list[Transform])
    config = parser.parse_string(
        "transforms:\n"
        "  - class_path: rlobj.train.transforms.DynamicSampling\n"
        "    init_args: {max_rounds: 4, on_short: error}\n"
        "  - class_path: rlobj.train.transforms.StdFilter\n"
        "    init_args: {beta: 0.9}\n")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    built = instantiate(config).transforms
    assert isinstance(built[0], DynamicSampling) and built[0].max_rounds == 4 and built[0].on_short == "error"
    assert isinstance(built[1], StdFilter) and built[1].beta == 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in TRANSFORMS.values():  # every transform builds with its defaults
            assert isinstance(cls(), Transform)
