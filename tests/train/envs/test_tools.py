"""Tools of multi-turn rollouts (rlobj/train/envs/tools.py): formats, calculator, sandboxed Python,
retrieval, building tools from config."""

import time

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train.envs import (
    Calculator,
    PythonInterpreter,
    Retrieval,
    ToolCall,
    ToolCallFormat,
    build_tool,
    run_tool,
)

CORPUS = ["Paris is the capital of France.", "Berlin is the capital of Germany.",
          "The Seine flows through Paris and Rouen.", "Mount Everest is the highest mountain."]


@pytest.mark.parametrize("expression, value", [("12*34", "408"), ("(1+2)*-3", "-9"), ("7/2", "3.5"),
                                               ("2**10", "1024"), ("17 // 5 + 17 % 5", "5"), ("1.5*4", "6")])
def test_calculator_values(expression, value):
    assert Calculator()(expression) == value


@pytest.mark.parametrize("expression", ["__import__('os').system('echo hi')", "open('/etc/passwd')", "x + 1",
                                        "(1).real", "'a' * 3", "9**9**9", "1/0", "[1, 2]", "lambda: 1",
                                        "1" * 300, "10**59 * 10**59"])
def test_calculator_rejects_code_and_huge_values(expression):
    start = time.monotonic()
    with pytest.raises(ValueError):
        Calculator()(expression)
    assert time.monotonic() - start < 1


def test_formats_parse_and_render():
    json_format, code_format = ToolCallFormat("json"), ToolCallFormat("code")
    text = "I will compute. " + json_format.render("calculator", "12*34")
    assert json_format.parse(text) == ToolCall("calculator", "12*34")
    assert json_format.parse('<tool_call>{"name": "search", "arguments": {"query": "Paris"}}</tool_call>') == \
        ToolCall("search", "Paris")
    assert json_format.parse("no call here") is None
    assert json_format.parse("<tool_call>{not json</tool_call>").startswith("error: the tool call is not valid JSON")
    assert json_format.parse('<tool_call>{"arguments": 1}</tool_call>').startswith("error:")
    assert code_format.parse("text\n```python\nprint(1)\n```\nmore") == ToolCall("python", "print(1)\n")
    assert code_format.parse(code_format.render("calculator", "2+2")) == ToolCall("calculator", "2+2\n")
    assert code_format.parse("```\nno language\n```") is None
    with pytest.raises(RlobjInputError, match="ToolCallFormat.kind"):
        ToolCallFormat("xml")


def test_run_tool_turns_failures_into_observations():
    tools = {"calculator": Calculator()}
    assert run_tool(tools, ToolCall("calculator", "6*7")) == ("42", True)
    text, ok = run_tool(tools, ToolCall("calculator", "1/0"))
    assert not ok and text == "error: ValueError: division by zero"
    text, ok = run_tool(tools, ToolCall("shell", "rm -rf /"))
    assert not ok and text.startswith("error: unknown tool 'shell'")

    def exploding(argument):
        raise MemoryError("x" * 100_000)

    exploding.name = "boom"
    text, ok = run_tool({"boom": exploding}, ToolCall("boom", ""), max_chars=100)
    assert not ok and len(text) == 100


def test_retrieval_ranks_by_bm25():
    search = Retrieval(CORPUS, top_k=2)
    assert search("capital of France").splitlines()[0] == CORPUS[0]
    assert search("Seine").splitlines() == [CORPUS[2]]  # only one passage has the word
    assert Retrieval(CORPUS)("Rouen Paris") == CORPUS[2]  # two matching words beat one
    assert search("zzz") == "no passage matches"
    with pytest.raises(ValueError):
        search("   ")
    with pytest.raises(RlobjInputError):
        Retrieval([])


def test_retrieval_reads_a_corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n\n")
    assert Retrieval(str(path))("Everest") == CORPUS[3]


def test_python_interpreter_runs_in_the_sandbox():
    python = PythonInterpreter(wall_seconds=2)
    assert python("print(6 * 7)") == "42\n"
    assert "ZeroDivisionError" in python("1/0")
    start = time.monotonic()
    assert python("while True: pass").endswith("[timed out after 2 s]")
    assert time.monotonic() - start < 10
    flood = python("print('x' * 10_000_000)")  # 10 MB of output: cut by the sandbox's output limit
    assert len(flood) < 100_000
    assert "secret" not in python("import os; print(os.listdir('/'))")


def test_build_tool_from_config():
    assert build_tool("calculator") == Calculator()
    assert build_tool({"search": {"corpus": CORPUS, "top_k": 1}}).top_k == 1
    with pytest.raises(RlobjInputError, match="tool name"):
        build_tool("shell")
    with pytest.raises(RlobjInputError, match="tool search"):
        build_tool({"search": {"corpus": CORPUS, "bogus": 1}})
