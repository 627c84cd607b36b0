"""rlobj/algebra has no import cycle, and each of its modules imports on its own.

The graph counts every import of an ``rlobj.algebra`` module anywhere in a file (module level or
inside a function: a deferred import is still a cycle). "On its own": in a fresh interpreter the
packages ``rlobj`` and ``rlobj.algebra`` are empty stand-ins, so importing one module runs only
that module and what it imports itself, not ``rlobj/__init__.py``.
"""

import ast
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
ALGEBRA = REPO / "rlobj" / "algebra"
MODULES = sorted(f"rlobj.algebra.{path.stem}" for path in ALGEBRA.glob("*.py") if path.stem != "__init__")


def algebra_imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        else:
            continue
        names.update(name for name in found if name in MODULES)
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_algebra_import_graph_has_no_cycle():
    graph = {f"rlobj.algebra.{path.stem}": algebra_imports(path) - {f"rlobj.algebra.{path.stem}"}
             for path in ALGEBRA.glob("*.py") if path.stem != "__init__"}
    assert graph["rlobj.algebra.objective"] >= {"rlobj.algebra.term", "rlobj.algebra.aggregation"}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in rlobj/algebra: {' -> '.join(cycle)}"


ISOLATED = """
import importlib, json, sys, types
loaded = {}
for module in sys.argv[1:]:
    for name in [name for name in sys.modules if name == "rlobj" or name.startswith("rlobj.")]:
        del sys.modules[name]  # every module starts from nothing of rlobj (torch stays loaded)
    for name, folder in (("rlobj", "rlobj"), ("rlobj.algebra", "rlobj/algebra")):
        stand_in = types.ModuleType(name)
        stand_in.__path__ = [folder]
        sys.modules[name] = stand_in
    importlib.import_module(module)
    loaded[module] = sorted(name for name in sys.modules if name.startswith("rlobj."))
print(json.dumps(loaded))
"""


def test_each_algebra_module_imports_on_its_own():
    run = subprocess.run([sys.executable, "-c", ISOLATED, *MODULES], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.splitlines()[-1])
    assert sorted(loaded) == MODULES
    for module, names in loaded.items():
        assert module in names
        assert not any(name.startswith(("rlobj.terms", "rlobj.train", "rlobj.presets")) for name in names)
    # term.py does not pull in the objective that imports it
    assert "rlobj.algebra.objective" not in loaded["rlobj.algebra.term"]


def test_term_loss_runs_the_registered_objective():
    import torch

    from rlobj.algebra import Objective, term
    from rlobj.terms.supervised import sft

    assert term._OBJECTIVE_TYPE is Objective
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert torch.equal(sft().loss(logp=logp, mask=mask).loss, Objective(sft())(logp=logp, mask=mask).loss)
