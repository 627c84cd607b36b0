r"""Local question/answer datasets (JSONL, JSON, Parquet) through Hugging Face ``datasets``.

Only local files are read: the path is checked before ``datasets`` is called and the file is
loaded with ``Dataset.from_json`` / ``Dataset.from_parquet`` (packaged builders, no Hub access).

Schemas:

| schema | question column | reference column | final answer |
|---|---|---|---|
| ``"gsm8k"`` | ``question`` | ``answer`` | text after ``####`` (commas removed) |
| ``"math"`` | ``problem`` | ``solution`` | content of the last ``\boxed{...}`` |
| ``"qa"`` | ``question`` (or ``prompt``) | ``answer`` | the answer as written |
| ``"auto"`` | chosen from the columns present (``problem``+``solution`` -> math; ``answer`` containing ``####`` -> gsm8k; else qa) |

Every row comes out with ``prompt`` (the question after the template), ``question``, ``answer``
(the final answer a verifier compares against) and ``solution`` (the full reference text); other
columns are kept.
"""

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlobj.verifiers.extract import last_boxed_content

SCHEMAS = ("auto", "gsm8k", "math", "qa")
_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_GSM8K_MARKER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def gsm8k_final_answer(text: str) -> str | None:
    """The final answer of a GSM8K reference: what follows ``####``, thousands commas removed.

    Example:
        >>> gsm8k_final_answer("She has 3 + 4 = <<3+4=7>>7 apples.\\n#### 1,007")
        '1007'
    """
    match = _GSM8K_MARKER.search(text)
    return None if match is None else match.group(1).strip().replace(",", "")


def math_final_answer(text: str) -> str | None:
    r"""The final answer of a MATH solution: the content of its last ``\boxed{}``.

    Example:
        >>> math_final_answer(r"So $x = \boxed{\frac{1}{2}}$.")
        '\\frac{1}{2}'
    """
    found = last_boxed_content(text)
    return None if found is None else found.strip()


@dataclass(frozen=True)
class PromptTemplate:
    """A plain format string applied to each question, with ``{question}`` as the slot.

    Example:
        >>> PromptTemplate("Q: {question}\\nA:")("2+2?")
        'Q: 2+2?\\nA:'
    """

    format: str = "{question}"

    def __post_init__(self) -> None:
        if "{question}" not in self.format:
            raise ValueError(
                f"PromptTemplate: argument 'format' must contain '{{question}}', got {self.format!r}"
            )

    def __call__(self, question: str) -> str:
        return self.format.replace("{question}", question)


class ChatTemplate:
    """Wrap each question as a user turn (after an optional system prompt) with the tokenizer's chat
    template, ending with the generation prompt (``add_generation_prompt=True``).

    Args:
        tokenizer: a Hugging Face tokenizer whose ``chat_template`` is set.
        system_prompt: optional system message.
        question_format: format of the user turn, ``{question}`` as the slot. Default
            ``"{question}"``.
    """

    def __init__(
        self, tokenizer: Any, system_prompt: str | None = None, question_format: str = "{question}"
    ) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"ChatTemplate: argument 'tokenizer' ({type(tokenizer).__name__}) has no chat_template set"
            )
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.user_turn = PromptTemplate(question_format)

    def __call__(self, question: str) -> str:
        messages = (
            []
            if self.system_prompt is None
            else [{"role": "system", "content": self.system_prompt}]
        )
        messages.append({"role": "user", "content": self.user_turn(question)})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


def _resolve_template(template: str | Callable[[str], str] | None) -> Callable[[str], str]:
    if template is None:
        return PromptTemplate()
    if isinstance(template, str):
        return PromptTemplate(template)
    if callable(template):
        return template
    raise TypeError(
        f"argument 'template' must be None, a format string or a callable, got {type(template).__name__}"
    )


def _detect_schema(columns: list[str], first_row: dict | None) -> str:
    if "problem" in columns and "solution" in columns:
        return "math"
    if (
        "question" in columns
        and "answer" in columns
        and first_row is not None
        and "####" in str(first_row.get("answer", ""))
    ):
        return "gsm8k"
    return "qa"


def load_qa_dataset(
    path: str | os.PathLike,
    schema: str = "auto",
    template: str | Callable[[str], str] | None = None,
    on_missing_answer: str = "error",
    cache_dir: str | None = None,
):
    r"""Load a local JSONL / JSON / Parquet question-answer file as a ``datasets.Dataset``.

    Args:
        path: the file (``.jsonl``, ``.json`` or ``.parquet``).
        schema: one of ``"auto"``, ``"gsm8k"``, ``"math"``, ``"qa"`` (table in the module docstring).
        template: how a question becomes the prompt: ``None`` (as is), a format string with
            ``{question}``, or a callable such as :class:`ChatTemplate`.
        on_missing_answer: ``"error"`` (default) raises naming the file and row when a reference
            has no final answer (no ``####`` / ``\boxed{}``); ``"drop"`` skips such rows.
        cache_dir: where ``datasets`` writes its Arrow cache (default: its usual cache).

    Returns:
        ``datasets.Dataset`` with ``prompt``, ``question``, ``answer``, ``solution`` and the other
        original columns.

    Raises:
        FileNotFoundError: the file does not exist (message names the path).
        ValueError: unknown suffix or schema, or a required column is missing (message names the
            path, the column and the columns present).
    """
    file_path = Path(path)
    if not file_path.is_file():
        raise FileNotFoundError(
            f"load_qa_dataset: dataset file not found (argument 'path'): {str(file_path)!r}"
        )
    suffix = file_path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"load_qa_dataset: {str(file_path)!r} has suffix {suffix!r}; expected one of {sorted(_FORMATS)}"
        )
    if schema not in SCHEMAS:
        raise ValueError(
            f"load_qa_dataset: argument 'schema' must be one of {SCHEMAS}, got {schema!r}"
        )
    if on_missing_answer not in ("error", "drop"):
        raise ValueError(
            f"load_qa_dataset: argument 'on_missing_answer' must be 'error' or 'drop', got {on_missing_answer!r}"
        )
    apply_template = _resolve_template(template)

    import datasets

    reader = (
        datasets.Dataset.from_json if _FORMATS[suffix] == "json" else datasets.Dataset.from_parquet
    )
    dataset = reader(str(file_path), cache_dir=cache_dir, keep_in_memory=True)
    columns = list(dataset.column_names)
    resolved = (
        schema
        if schema != "auto"
        else _detect_schema(columns, dataset[0] if len(dataset) else None)
    )
    question_column = {"gsm8k": "question", "math": "problem"}.get(resolved)
    if resolved == "qa":
        question_column = "question" if "question" in columns else "prompt"
    reference_column = "solution" if resolved == "math" else "answer"
    for column in (question_column, reference_column):
        if column not in columns:
            raise ValueError(
                f"load_qa_dataset: {str(file_path)!r} has no column {column!r} required by schema {resolved!r}; "
                f"columns present: {columns}"
            )
    final_answer = {"gsm8k": gsm8k_final_answer, "math": math_final_answer}.get(
        resolved, lambda text: text.strip()
    )

    def convert(row: dict, index: int) -> dict:
        question, reference = str(row[question_column]), str(row[reference_column])
        answer = final_answer(reference)
        if answer is None and on_missing_answer == "error":
            marker = "'#### <answer>'" if resolved == "gsm8k" else "'\\boxed{...}'"
            raise ValueError(
                f"load_qa_dataset: {str(file_path)!r} row {index}: reference has no final answer ({marker} missing)"
            )
        return {
            "prompt": apply_template(question),
            "question": question,
            "answer": answer,
            "solution": reference,
        }

    converted = dataset.map(convert, with_indices=True, keep_in_memory=True, desc=None)
    if on_missing_answer == "drop":
        converted = converted.filter(lambda row: row["answer"] is not None, keep_in_memory=True)
    return converted
