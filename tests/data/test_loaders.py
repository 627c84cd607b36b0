"""Local dataset loaders (through `datasets`, rlobj/data/loaders.py)."""

import json

import pytest

from rlobj.data import (
    ChatTemplate,
    PromptTemplate,
    build_char_tokenizer,
    load_qa_dataset,
)
from rlobj.verifiers import MathVerifier, NumericMatch

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "What is 1000 + 234?", "answer": "It is 1,234.\n#### 1,234"},
]
MATH_ROWS = [
    {
        "problem": "Compute $1/2 + 1/4$.",
        "solution": r"We get $\frac{3}{4}$, so $\boxed{\frac{3}{4}}$.",
        "level": "Level 1",
    },
    {"problem": "Solve $x+1=3$.", "solution": r"$x = \boxed{2}$", "level": "Level 1"},
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_gsm8k_jsonl(tmp_path):
    data = load_qa_dataset(
        _write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS), cache_dir=str(tmp_path / "cache")
    )
    assert data["answer"] == ["7", "1234"]
    assert data["prompt"] == [row["question"] for row in GSM8K_ROWS]
    assert data["solution"] == [row["answer"] for row in GSM8K_ROWS]
    assert NumericMatch()("so the total is 1234", data[1]) == 1.0


def test_math_parquet_with_template(tmp_path):
    import pandas

    path = tmp_path / "math.parquet"
    pandas.DataFrame(MATH_ROWS).to_parquet(path)
    data = load_qa_dataset(
        path, template="Problem: {question}\nAnswer:", cache_dir=str(tmp_path / "cache")
    )
    assert data["answer"] == [r"\frac{3}{4}", "2"]
    assert data["prompt"][1] == "Problem: Solve $x+1=3$.\nAnswer:"
    assert data["level"] == ["Level 1", "Level 1"]
    assert MathVerifier()(r"\boxed{0.75}", data[0]) == 1.0


def test_plain_qa_and_callable_template(tmp_path):
    rows = [{"prompt": "Capital of France?", "answer": " Paris "}]
    data = load_qa_dataset(
        _write_jsonl(tmp_path / "qa.jsonl", rows), template=str.upper, cache_dir=str(tmp_path / "c")
    )
    assert data["prompt"] == ["CAPITAL OF FRANCE?"] and data["answer"] == ["Paris"]


def test_chat_template_with_a_local_tokenizer(tmp_path):
    tokenizer = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz ?:\n")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    template = ChatTemplate(tokenizer, system_prompt="be brief", question_format="q: {question}")
    data = load_qa_dataset(
        _write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS[:1]),
        template=template,
        cache_dir=str(tmp_path / "c"),
    )
    assert (
        data["prompt"][0] == f"system: be brief\nuser: q: {GSM8K_ROWS[0]['question']}\nassistant:"
    )
    with pytest.raises(ValueError, match="no chat_template"):
        ChatTemplate(build_char_tokenizer())


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "train.jsonl"
    with pytest.raises(
        FileNotFoundError, match=r"dataset file not found \(argument 'path'\).*nope/train.jsonl"
    ):
        load_qa_dataset(missing)


def test_missing_column_names_path_and_column(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "label": "1"}])
    with pytest.raises(
        ValueError,
        match=r"bad.jsonl' has no column 'answer' required by schema 'qa'.*\['question', 'label'\]",
    ):
        load_qa_dataset(path, cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="no column 'problem' required by schema 'math'"):
        load_qa_dataset(
            _write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS),
            schema="math",
            cache_dir=str(tmp_path / "c"),
        )


def test_missing_final_answer_error_or_drop(tmp_path):
    rows = [*GSM8K_ROWS, {"question": "?", "answer": "no marker here"}]
    path = _write_jsonl(tmp_path / "g.jsonl", rows)
    with pytest.raises(ValueError, match=r"row 2: reference has no final answer"):
        load_qa_dataset(path, schema="gsm8k", cache_dir=str(tmp_path / "c"))
    kept = load_qa_dataset(
        path, schema="gsm8k", on_missing_answer="drop", cache_dir=str(tmp_path / "c2")
    )
    assert kept["answer"] == ["7", "1234"]


def test_loader_argument_errors(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS)
    (tmp_path / "g.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="suffix '.csv'"):
        load_qa_dataset(tmp_path / "g.csv")
    with pytest.raises(ValueError, match="'schema' must be one of"):
        load_qa_dataset(path, schema="squad")
    with pytest.raises(TypeError, match="'template' must be None"):
        load_qa_dataset(path, template=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'format' must contain"):
        PromptTemplate("no slot")
