r"""A tool-use environment: the policy may call tools, then answers; the answer is verified.

Each turn, :class:`ToolEnvironment` looks for a tool call (:class:`~rlobj.train.envs.tools.ToolCallFormat`).
With one, it runs the tool (errors become observations) and returns the tool's answer wrapped in
``result_template`` as the observation, reward ``tool_reward``; the episode goes on. A turn with
no call is the final answer: the verifier scores it (the final reward) and the episode ends. A
malformed call is an observation (``error: ...``) and counts as a failed tool call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError, import_dotted
from rlobj.train.envs.base import Environment, StepOutput
from rlobj.train.envs.tools import ToolCall, ToolCallFormat, build_tool, run_tool

__all__ = ["ToolEnvironment", "ToolTranscriptTask"]


class ToolEnvironment(Environment):
    """Tools, then a verified final answer (see the module docstring).

    Args:
        tools: tool specs (:func:`~rlobj.train.envs.tools.build_tool`): ``["calculator",
            {"search": {"corpus": [...]}}, "python"]``.
        format: ``"json"`` or ``"code"`` (:class:`~rlobj.train.envs.tools.ToolCallFormat`).
        verifier: ``verifier(answer_text, row) -> float`` of the final answer; default
            :class:`rlobj.train.ExactAnswer`; a ``{class_path, init_args}`` mapping is built.
        result_template: the observation around a tool's answer (``{result}``).
        tool_reward: reward of a turn with a successful tool call (0: only the final answer counts).
        max_result_chars: a tool answer is cut to this many characters.
    """

    def __init__(self, tools: Any = ("calculator",), format: str = "json", verifier: Any = None,
                 result_template: str = "<result>{result}</result>", tool_reward: float = 0.0,
                 max_result_chars: int = 2000):
        if isinstance(tools, (str, Mapping)):
            tools = [tools]
        built = [build_tool(t) for t in tools]
        self.tools = {t.name: t for t in built}
        if not self.tools:
            raise RlobjInputError("ToolEnvironment.tools: give at least one tool")
        self.format = ToolCallFormat(format)
        self.verifier = _build_verifier(verifier)
        if "{result}" not in result_template:
            raise RlobjInputError(f"ToolEnvironment.result_template: must contain '{{result}}', got {result_template!r}")
        self.result_template, self.tool_reward, self.max_result_chars = result_template, float(tool_reward), max_result_chars
        self.row: Mapping[str, Any] | None = None

    def reset(self, row):
        self.row = row
        return super().reset(row)

    def step(self, action: str) -> StepOutput:
        call = self.format.parse(action)
        if call is None:
            reward = float(self.verifier(action, self.row))
            return "", reward, True, {"answered": True}
        if isinstance(call, ToolCall):
            result, ok = run_tool(self.tools, call, self.max_result_chars)
        else:
            result, ok = call, False
        observation = self.result_template.format(result=result)
        return observation, self.tool_reward if ok else 0.0, False, {"tool_call": True, "tool_ok": ok}


def _build_verifier(spec):
    if spec is None:
        from rlobj.data.tasks import ExactAnswer

        return ExactAnswer()
    if isinstance(spec, Mapping) and "class_path" in spec:
        cls = import_dotted(spec["class_path"], "ToolEnvironment.verifier")
        try:
            return cls(**dict(spec.get("init_args") or {}))
        except TypeError as error:
            raise RlobjInputError(f"ToolEnvironment.verifier: cannot build {spec['class_path']!r} ({error})") from error
    if not callable(spec):
        raise RlobjInputError(f"ToolEnvironment.verifier: expected a callable (answer, row) -> float, got {spec!r:.120}")
    return spec


class ToolTranscriptTask(TaskSource):
    r"""Records of a task whose demonstration (``completion``) is a whole tool-use transcript.

    ``completion`` = the call of ``tool`` on ``record[argument_key]`` in ``format``, the end of
    the turn written as ``turn_end`` (the tokenizer's EOS text, so supervised warm-up learns to
    end the turn there), the observation ``result_template`` around the tool's answer, and the
    record's answer: ``"```calculator\n12*34\n```<eos>[408]408"``. Supervised warm-up on it
    teaches the call format and the use of the result; the multi-turn sampler then produces the
    same token sequence when the policy follows it. Prompts and answers are unchanged.

    Args:
        task: a task source with ``record(index)`` (e.g. :class:`rlobj.train.GeneratedTask`).
        tool: the tool spec (:func:`~rlobj.train.envs.tools.build_tool`).
        argument_key: the record field passed to the tool. Default ``"expression"``.
        format, result_template: as in :class:`ToolEnvironment` (use the same values).
        turn_end: the text of the end of a turn. Default ``"<eos>"``.
    """

    def __init__(self, task: Any, tool: Any = "calculator", argument_key: str = "expression", format: str = "json",
                 result_template: str = "<result>{result}</result>", turn_end: str = "<eos>"):
        if not callable(getattr(task, "record", None)):
            raise RlobjInputError(f"ToolTranscriptTask.task: expected a task source with record(index), got {task!r:.120}")
        self.task, self.tool, self.argument_key = task, build_tool(tool), argument_key
        self.format, self.result_template, self.turn_end = ToolCallFormat(format), result_template, turn_end

    def record(self, index: int) -> dict[str, Any]:
        row = dict(self.task.record(index))
        if self.argument_key not in row:
            raise RlobjInputError(f"ToolTranscriptTask: record {index} has no field {self.argument_key!r}")
        argument = str(row[self.argument_key])
        result, _ = run_tool({self.tool.name: self.tool}, ToolCall(self.tool.name, argument))
        row["completion"] = (self.format.render(self.tool.name, argument) + self.turn_end
                             + self.result_template.format(result=result) + str(row["answer"]))
        return row

    def __repr__(self) -> str:
        return f"ToolTranscriptTask(task={self.task!r}, tool={self.tool!r}, format={self.format.kind!r})"
