r"""Code reasoning tasks checked by running them: parsing, the sandboxed runner, validation.

A task is a deterministic Python function ``f`` with inputs written as argument lists (``"3, [1, 2]"``)
and outputs as ``repr`` strings. Inputs and outputs must be Python literals
(:func:`ast.literal_eval`): the caller never evaluates model-written text, it only parses literals;
every call of ``f`` runs in rlobj's sandbox (:func:`rlobj.verifiers.sandbox.run_program`: its own
namespaces, uid, cgroup, no network), one sandboxed process per :func:`run_function` call.

The sandbox keeps the host safe; it does not make a program honest: ``f`` runs in the same
interpreter as the small harness that reports its results, so a program written to tamper with
the harness could report a wrong output for itself. That can only spoil the task it defines.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from rlobj.ops.errors import RlobjInputError

__all__ = ["BANNED_MODULES", "CodeRunner", "literal", "same_value", "parse_program", "fenced_blocks",
           "tagged_answer", "task_key"]

#: Modules a proposed program may not import: the ``banned_words`` of the Absolute Zero reference
#: config (``azr.data_selection_strategy.banned_words``: nondeterminism and process access) plus
#: ``os``, ``sys``, ``socket``, ``shutil``, ``ctypes``, ``importlib``, ``signal``, ``pathlib``,
#: ``builtins`` (ours: the program only computes a value).
BANNED_MODULES = ("logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime", "time",
                  "hashlib", "hmac", "bcrypt", "calendar", "os", "sys", "socket", "shutil", "ctypes", "importlib",
                  "signal", "pathlib", "builtins")
#: Names a proposed program may not use (ours): file, process and interpreter access.
BANNED_NAMES = ("open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "input",
                "breakpoint", "exit", "quit", "getattr", "setattr", "delattr")

_MARK = "@@rlobj-code-task@@"
_HARNESS = """import ast, contextlib, io, json
_SOURCE = {source}
_ARGS = {args}
def _run():
    space = {{"__name__": "task"}}
    try:
        exec(compile(_SOURCE, "task.py", "exec"), space)
    except BaseException as error:
        return {{"error": "runtime_error", "detail": type(error).__name__}}
    f = space.get("f")
    if not callable(f):
        return {{"error": "no_function_f"}}
    results = []
    for text in _ARGS:
        values = []
        for _ in range({repeat}):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    values.append(repr(f(*ast.literal_eval("(" + text + ",)"))))
            except BaseException as error:
                values.append(None)
                results.append({{"error": "runtime_error", "detail": type(error).__name__}})
                break
        else:
            results.append({{"outputs": values}})
    return {{"results": results}}
print({mark!r} + json.dumps(_run()))
"""


def literal(text: Any) -> tuple[bool, Any]:
    """``(True, value)`` when ``text`` is a Python literal (``ast.literal_eval``), else ``(False, None)``.

    Example:
        >>> literal("[1, 'a']"), literal("__import__('os')")
        ((True, [1, 'a']), (False, None))
    """
    try:
        return True, ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def arguments(text: Any) -> tuple[bool, tuple]:
    """``(True, args)`` when ``text`` is an argument list of literals (``"1, [2]"``)."""
    ok, value = literal(f"({str(text).strip()},)") if str(text).strip() else (False, None)
    return ok, value


def same_value(left: str, right: str) -> bool:
    """Whether two literal texts denote equal values (``False`` when either is not a literal).

    Example:
        >>> same_value("[1, 2]", " [1,2] "), same_value("1", "2"), same_value("f()", "f()")
        (True, False, False)
    """
    (ok_a, a), (ok_b, b) = literal(left), literal(right)
    try:
        return ok_a and ok_b and bool(a == b)
    except Exception:  # noqa: BLE001 - literals compare; defensive
        return False


def fenced_blocks(text: str, label: str) -> list[str]:
    """The contents of the fenced blocks ```` ```label ... ``` ```` of ``text``, in order."""
    return [m.strip("\n") for m in re.findall(rf"```{re.escape(label)}[ \t]*\n(.*?)```", str(text), re.DOTALL)]


def tagged_answer(text: str, tag: str = "answer") -> str | None:
    """The content of the last ``<tag>...</tag>`` of ``text`` (stripped), or None."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", str(text), re.DOTALL)
    return found[-1].strip() if found else None


def parse_program(source: str, banned_modules=BANNED_MODULES, banned_names=BANNED_NAMES) -> tuple[str, str]:
    """Static checks of a proposed program: ``(status, normalised source)``.

    Status ``"ok"``, ``"syntax_error"``, ``"no_function_f"`` (no top-level ``def f``),
    ``"banned_import"`` (imports a module of ``banned_modules``, any dotted part, as the
    reference's ``contains_banned_imports``), ``"banned_name"`` (uses a name of ``banned_names``
    or a dunder attribute). The normalised source is ``ast.unparse`` of the tree (comments and
    layout removed: the deduplication key).
    """
    try:
        tree = ast.parse(str(source))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return "syntax_error", ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                                                     else [])
            if any(part in banned_modules for name in names for part in name.split(".")):
                return "banned_import", ""
        if isinstance(node, ast.Name) and node.id in banned_names:
            return "banned_name", ""
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            return "banned_name", ""
    if not any(isinstance(n, ast.FunctionDef) and n.name == "f" for n in tree.body):
        return "no_function_f", ""
    return "ok", ast.unparse(tree)


def task_key(kind: str, program: str, inputs: list[str]) -> str:
    """Deduplication key of a task: its kind, normalised program and normalised inputs."""
    normal = [repr(arguments(i)[1]) if arguments(i)[0] else str(i) for i in inputs]
    return json.dumps([kind, program, normal])


@dataclass(frozen=True)
class CodeRunner:
    """Runs ``f`` of a program on argument lists in rlobj's sandbox, one sandboxed process per call.

    Args:
        wall_seconds: wall-clock limit of the sandboxed process (all calls together).
        memory_mb: address-space limit.
        allow_missing: isolation mechanisms to run without when the host lacks them (see
            :class:`~rlobj.verifiers.sandbox.SandboxLimits`); ``"auto"``: whatever
            :func:`~rlobj.verifiers.sandbox_capabilities` reports missing.
    """

    wall_seconds: float = 5.0
    memory_mb: int = 512
    allow_missing: Any = "auto"

    def limits(self):
        from rlobj.verifiers.sandbox import SandboxLimits, sandbox_capabilities

        missing = sandbox_capabilities().missing if self.allow_missing == "auto" else tuple(self.allow_missing)
        return SandboxLimits(wall_seconds=self.wall_seconds, memory_mb=self.memory_mb, output_bytes=1 << 20,
                             allow_missing=missing)

    def run(self, program: str, inputs: list[str], repeat: int = 1) -> tuple[str, list[list[str] | None]]:
        """``(status, outputs)``: status ``"ok"`` (then ``outputs[i]`` holds the ``repeat`` reprs of
        ``f(*inputs[i])``, or None when that call raised), ``"timeout"``, ``"runtime_error"``
        (the program itself failed to load or the process died) or ``"no_function_f"``."""
        from rlobj.verifiers.sandbox import LANGUAGES, run_program

        for text in inputs:
            if not arguments(text)[0]:
                raise RlobjInputError(f"CodeRunner.run: input {text!r} is not an argument list of literals")
        script = _HARNESS.format(source=repr(str(program)), args=repr([str(i) for i in inputs]),
                                 repeat=int(repeat), mark=_MARK)
        outcome = run_program(script, LANGUAGES["python"], "", self.limits())
        if outcome.timed_out:
            return "timeout", []
        lines = [line for line in outcome.stdout.splitlines() if line.startswith(_MARK)]
        if outcome.returncode != 0 or not lines:
            return "runtime_error", []
        try:
            report = json.loads(lines[-1][len(_MARK):])
        except json.JSONDecodeError:
            return "runtime_error", []
        if "error" in report:
            return str(report["error"]), []
        results = report.get("results") or []
        return "ok", [r.get("outputs") if isinstance(r, dict) and "outputs" in r else None for r in results]
