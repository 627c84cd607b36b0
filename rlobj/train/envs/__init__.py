"""Environments and tools for multi-turn rollouts (:class:`~rlobj.train.multiturn.MultiTurnSampler`).

* :mod:`~rlobj.train.envs.base`: the protocol (``reset(row) -> observation``,
  ``step(action) -> (observation, reward, done, info)``) and building environments from config;
* :mod:`~rlobj.train.envs.tools`: tool-call formats (JSON, fenced code), a calculator, a
  sandboxed Python interpreter, BM25 retrieval over a local corpus;
* :mod:`~rlobj.train.envs.tool_env`: tools, then a verified final answer;
* :mod:`~rlobj.train.envs.simulated_user`: RLVER's simulated user with a persona whose emotion
  score is the reward.
"""

from rlobj.train.envs.base import ENVIRONMENTS, Environment, StepOutput, build_environment_factory
from rlobj.train.envs.tool_env import ToolEnvironment, ToolTranscriptTask
from rlobj.train.envs.tools import (
    TOOLS,
    Calculator,
    PythonInterpreter,
    Retrieval,
    ToolCall,
    ToolCallFormat,
    build_tool,
    run_tool,
)

__all__ = ["ENVIRONMENTS", "Environment", "StepOutput", "build_environment_factory", "ToolEnvironment", "ToolTranscriptTask", "TOOLS",
           "Calculator", "PythonInterpreter", "Retrieval", "ToolCall", "ToolCallFormat", "build_tool", "run_tool"]
