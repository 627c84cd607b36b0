r"""Tools a policy calls in multi-turn rollouts, and the formats it calls them in.

A tool is a callable ``tool(argument: str) -> str`` with a ``name``; its answer becomes an
observation. Tools never raise into the sampler: :func:`run_tool` turns an exception into an
``error: ...`` observation (bounded length) and reports ``ok=False``.

* :class:`Calculator`: arithmetic parsed with :mod:`ast` into an allow-list of nodes (numbers,
  ``+ - * / // % **``, unary signs, parentheses); nothing is evaluated as code; exponents and
  magnitudes are bounded.
* :class:`PythonInterpreter`: runs a program in rlobj's sandbox
  (:func:`rlobj.verifiers.sandbox.run_program`: namespaces, cgroup, wall and memory limits) and
  returns what it printed.
* :class:`Retrieval`: the ``top_k`` passages of a small local corpus by BM25 score.

Formats (:class:`ToolCallFormat`): ``"json"`` reads the last
``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` of a turn (``arguments`` a string or
a mapping with one value); ``"code"`` reads the last fenced block whose info string names a tool
(`` ```python``, `` ```calculator``).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rlobj.ops.errors import RlobjInputError

__all__ = ["Calculator", "PythonInterpreter", "Retrieval", "ToolCall", "ToolCallFormat", "run_tool", "build_tool",
           "TOOLS"]


@dataclass(frozen=True)
class ToolCall:
    """One parsed tool call: the tool's ``name`` and its ``argument`` text."""

    name: str
    argument: str


_JSON_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_FENCE = re.compile(r"```([A-Za-z_][\w-]*)[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ToolCallFormat:
    """How tool calls are written in a turn: ``"json"`` or ``"code"`` (see the module docstring).

    Args:
        kind: ``"json"`` (``<tool_call>{"name": "calculator", "arguments": "12*34"}</tool_call>``)
            or ``"code"`` (a fenced block: `` ```calculator\n12*34\n``` ``).
    """

    kind: str = "json"

    def __post_init__(self):
        if self.kind not in ("json", "code"):
            raise RlobjInputError(f"ToolCallFormat.kind: expected 'json' or 'code', got {self.kind!r}")

    def parse(self, text: str) -> ToolCall | str | None:
        """The last tool call of ``text``; None when there is none; an error message (str) when a
        call is there but malformed (it becomes the observation)."""
        if self.kind == "code":
            found = _FENCE.findall(text)
            return ToolCall(found[-1][0], found[-1][1]) if found else None
        found = _JSON_CALL.findall(text)
        if not found:
            return None
        try:
            call = json.loads(found[-1])
        except json.JSONDecodeError as error:
            return f"error: the tool call is not valid JSON ({error.msg})"
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return 'error: a tool call is {"name": str, "arguments": str or {name: value}}'
        arguments = call.get("arguments", "")
        if isinstance(arguments, dict):
            if len(arguments) != 1:
                return "error: the tool takes one argument"
            arguments = next(iter(arguments.values()))
        return ToolCall(call["name"], arguments if isinstance(arguments, str) else json.dumps(arguments))

    def render(self, name: str, argument: str) -> str:
        """A call of ``name`` with ``argument`` in this format (for prompts and demonstrations)."""
        if self.kind == "code":
            return f"```{name}\n{argument}\n```"
        return "<tool_call>" + json.dumps({"name": name, "arguments": argument}) + "</tool_call>"


def run_tool(tools: dict[str, Any], call: ToolCall, max_chars: int = 2000) -> tuple[str, bool]:
    """``(observation, ok)`` of one call: the tool's answer, or ``error: ...`` for an unknown tool
    or an exception (never raises; the text is cut to ``max_chars``)."""
    tool = tools.get(call.name)
    if tool is None:
        return f"error: unknown tool {call.name[:40]!r}; tools: {sorted(tools)}"[:max_chars], False
    try:
        answer = tool(call.argument)
    except Exception as error:  # noqa: BLE001 - a tool's failure is an observation, never a crash
        return f"error: {type(error).__name__}: {error}"[:max_chars], False
    return str(answer)[:max_chars], True


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


@dataclass(frozen=True)
class Calculator:
    """Arithmetic without ``eval``: an :mod:`ast` walk over an allow-list of nodes.

    Numbers (int, float), ``+ - * / // % **``, unary ``+ -`` and parentheses. Anything else
    (names, calls, attributes, strings) raises ``ValueError``. Bounds: expression length
    ``max_chars``, exponents of at most ``max_exponent``, results of at most ``max_digits``
    digits; division by zero raises.

    Example:
        >>> Calculator()("(12 + 3) * 4 - 2 ** 3")
        '52'
    """

    name: str = "calculator"
    max_chars: int = 200
    max_exponent: int = 64
    max_digits: int = 60

    def __call__(self, expression: str) -> str:
        if not isinstance(expression, str) or len(expression) > self.max_chars:
            raise ValueError(f"expected an expression of at most {self.max_chars} characters")
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as error:
            raise ValueError(f"cannot parse {expression.strip()[:60]!r}: {error.msg}") from None
        value = self._walk(tree.body)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("the result is not finite")
            return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        return str(value)

    def _walk(self, node: ast.AST):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._walk(node.left), self._walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > self.max_exponent:
                raise ValueError(f"exponent {right} is larger than {self.max_exponent}")
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
                raise ValueError("division by zero")
            value = _BINARY[type(node.op)](left, right)
            if isinstance(value, complex):
                raise ValueError("the result is not a real number")
            if isinstance(value, int) and len(str(abs(value))) > self.max_digits:
                raise ValueError(f"the result has more than {self.max_digits} digits")
            return value
        raise ValueError(f"not allowed in an expression: {type(node).__name__}")


@dataclass(frozen=True)
class PythonInterpreter:
    """Run a Python program in rlobj's sandbox and return its output (stdout, then stderr).

    Isolation and limits are those of :func:`rlobj.verifiers.sandbox.run_program` under
    ``SandboxLimits(wall_seconds=..., memory_mb=..., output_bytes=..., allow_missing=...)``; a
    timeout or a non-zero exit is reported in the text, never raised.

    Args:
        wall_seconds: wall-clock limit of the program.
        memory_mb: address-space limit.
        output_bytes: largest output kept by the sandbox.
        allow_missing: isolation mechanisms to run without when the host lacks them (see
            :class:`~rlobj.verifiers.sandbox.SandboxLimits`); ``"auto"``: whatever
            :func:`~rlobj.verifiers.sandbox_capabilities` reports missing.
    """

    name: str = "python"
    wall_seconds: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 65536
    allow_missing: Any = "auto"

    def limits(self):
        from rlobj.verifiers.sandbox import SandboxLimits, sandbox_capabilities

        missing = sandbox_capabilities().missing if self.allow_missing == "auto" else tuple(self.allow_missing)
        return SandboxLimits(wall_seconds=self.wall_seconds, memory_mb=self.memory_mb,
                             output_bytes=self.output_bytes, allow_missing=missing)

    def __call__(self, source: str) -> str:
        from rlobj.verifiers.sandbox import LANGUAGES, run_program

        outcome = run_program(source, LANGUAGES["python"], "", self.limits())
        text = outcome.stdout
        if outcome.timed_out:
            return text + f"\n[timed out after {self.wall_seconds} s]"
        if outcome.returncode != 0:
            return text + f"\n[exit {outcome.returncode}]\n" + outcome.stderr[-1000:]
        return text


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Retrieval:
    r"""BM25 search over a small local corpus: the ``top_k`` passages for a query.

    $\mathrm{score}(q, d) = \sum_{w \in q} \mathrm{idf}(w)\,\frac{f_{w,d}(k_1+1)}{f_{w,d} +
    k_1(1 - b + b\,|d|/\overline{|d|})}$ with $\mathrm{idf}(w) = \ln(1 + (N - n_w + 0.5)/(n_w + 0.5))$
    (Robertson and Zaragoza, 2009), words lower-cased.

    Args:
        corpus: the passages (a list of strings) or a path to a text file with one passage a line.
        top_k: passages returned, best first, one a line.
    """

    corpus: Any = ()
    top_k: int = 1
    name: str = "search"
    k1: float = 1.5
    b: float = 0.75
    _index: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        passages = self.corpus
        if isinstance(passages, str):
            with open(passages, encoding="utf-8") as handle:
                passages = [line.strip() for line in handle if line.strip()]
        passages = tuple(passages)
        if not passages or not all(isinstance(p, str) for p in passages):
            raise RlobjInputError("Retrieval.corpus: expected a non-empty list of passages or a file path")
        docs = [Counter(_WORD.findall(p.lower())) for p in passages]
        seen = Counter(w for d in docs for w in d)
        object.__setattr__(self, "corpus", passages)
        object.__setattr__(self, "_index", (docs, seen, sum(sum(d.values()) for d in docs) / len(docs)))

    def __call__(self, query: str) -> str:
        docs, seen, mean_length = self._index
        words = _WORD.findall(str(query).lower())
        if not words:
            raise ValueError("empty query")
        total = len(docs)
        scores = []
        for index, doc in enumerate(docs):
            length, score = sum(doc.values()), 0.0
            for w in words:
                f = doc.get(w, 0)
                if f:
                    idf = math.log(1 + (total - seen[w] + 0.5) / (seen[w] + 0.5))
                    score += idf * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * length / mean_length))
            scores.append((-score, index))
        best = [i for s, i in sorted(scores)[:self.top_k] if s < 0]
        return "\n".join(self.corpus[i] for i in best) if best else "no passage matches"


#: name -> tool class (YAML shorthand of :func:`build_tool`).
TOOLS: dict[str, type] = {"calculator": Calculator, "python": PythonInterpreter, "search": Retrieval}


def build_tool(spec: Any):
    """A tool from config: an instance, a name of :data:`TOOLS` or ``{name: {args}}``."""
    if callable(spec) and hasattr(spec, "name") and not isinstance(spec, (str, dict, type)):
        return spec
    args: dict = {}
    if isinstance(spec, dict) and len(spec) == 1:
        (spec, args), = spec.items()
        args = dict(args or {})
    if not isinstance(spec, str) or spec not in TOOLS:
        raise RlobjInputError(f"tools: expected a tool name {sorted(TOOLS)} or {{name: {{args}}}}, got {spec!r:.120}")
    try:
        return TOOLS[spec](**args)
    except TypeError as error:
        raise RlobjInputError(f"tool {spec}: {error}") from error
