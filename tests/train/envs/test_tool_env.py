"""ToolEnvironment (rlobj/train/envs/tool_env.py): an episode with tool calls, a broken call, the
final answer, bad input."""


import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train.envs import (
    ToolCallFormat,
    ToolEnvironment,
)


def test_tool_environment_episode():
    env = ToolEnvironment(tools=["calculator"], format="json")
    assert env.reset({"prompt": "12*34=", "answer": "408"}) == "12*34="
    call = ToolCallFormat("json").render("calculator", "12*34")
    observation, reward, done, info = env.step(call)
    assert (observation, reward, done) == ("<result>408</result>", 0.0, False)
    assert info == {"tool_call": True, "tool_ok": True}
    observation, reward, done, info = env.step("<tool_call>{broken</tool_call>")
    assert observation.startswith("<result>error:") and not info["tool_ok"] and not done
    assert env.step("408")[1:3] == (1.0, True)
    assert env.step("407")[1:3] == (0.0, True)
    with pytest.raises(RlobjInputError, match="result_template"):
        ToolEnvironment(result_template="no placeholder")
