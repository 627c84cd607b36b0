r"""Your own prompts through Hugging Face ``datasets``: :class:`DatasetTask` (and :class:`JsonlTask`).

A :class:`DatasetTask` reads a local JSON / JSONL / Parquet / CSV file, a local folder of such
files, or a Hub dataset id (from the local Hugging Face cache when ``HF_HUB_OFFLINE=1``, from the
Hub otherwise) with ``datasets.load_dataset``, maps its columns onto rlobj's record fields and
serves records by index like every :class:`~rlobj.data.tasks.TaskSource`:

* ``prompt``: plain text, or a conversation (a list of ``{"role", "content"}`` messages, TRL's
  "conversational" format) rendered with the policy tokenizer's chat template
  (``add_generation_prompt=True``); a ``system_prompt`` turns plain prompts into a
  conversation too;
* ``answer``: the reference a verifier or reward function compares against;
* ``completion``: a demonstration for the supervised warm-up (defaults to the answer);
* every other column is kept, so a reward function receives it as a keyword argument.

Train / eval splits use the ``datasets`` split syntax: ``split: "train[:90%]"`` for training and
``split: "train[90%:]"`` for evaluation split one file; a Hub dataset's ``"test"`` split works
the same way.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError

__all__ = ["DatasetTask", "JsonlTask", "render_prompt", "is_conversation"]

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
#: Columns tried, in order, when ``columns`` does not name one for a field.
DEFAULT_COLUMNS = {"prompt": ("prompt", "question", "problem", "messages"),
                   "answer": ("answer", "solution", "ground_truth", "target")}


ANSWER_FORMATS = ("as_is", "gsm8k", "math")


def _final_answer(answer_format: str, text: str) -> str | None:
    from rlobj.data.loaders import gsm8k_final_answer, math_final_answer

    return (gsm8k_final_answer if answer_format == "gsm8k" else math_final_answer)(text)


def is_conversation(value: Any) -> bool:
    """True for a list of ``{"role": ..., "content": ...}`` messages (TRL's conversational rows)."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def render_prompt(prompt: Any, tokenizer: Any = None, system_prompt: str | None = None,
                  chat_template: str | None = None, where: str = "prompt") -> str:
    """A record's prompt as the text the policy sees.

    Plain text without ``system_prompt`` is returned unchanged. A conversation (or plain text
    with a ``system_prompt``, which becomes ``[system, user]``) is rendered with
    ``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``; ``chat_template``
    (a Jinja string) replaces the tokenizer's own. A ``system_prompt`` is put first unless the
    conversation already starts with a system message.

    Raises:
        RlobjInputError: a conversation without a tokenizer, a tokenizer without a chat template,
            or a prompt that is neither text nor a list of messages (the message names ``where``).
    """
    if isinstance(prompt, str) and system_prompt is None:
        return prompt
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif is_conversation(prompt):
        messages = [dict(m) for m in prompt]
    else:
        raise RlobjInputError(f"{where}: expected text or a list of {{'role', 'content'}} messages, "
                              f"got {type(prompt).__name__}: {str(prompt)[:80]!r}")
    if system_prompt is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    if tokenizer is None:
        raise RlobjInputError(f"{where}: a conversation (or a system_prompt) needs the policy's tokenizer "
                              "for its chat template; the RLDataModule binds it when training starts "
                              "(call bind_tokenizer(tokenizer) when using the task on its own)")
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise RlobjInputError(f"{where}: the tokenizer ({type(tokenizer).__name__}) has no chat_template; "
                              "use a model whose tokenizer has one, or give chat_template: '<jinja>'")
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=True)


def _check_json_lines(file: Path, owner: str) -> None:
    """Fail on the first malformed line of a JSONL file, naming the file, the line and the reason."""
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise RlobjInputError(f"{owner}.path: {file}:{number}: not valid JSON ({error.msg}, "
                                      f"column {error.colno})") from error
            if not isinstance(row, dict):
                raise RlobjInputError(f"{owner}.path: {file}:{number}: expected a JSON object per line, "
                                      f"got {type(row).__name__}")


def _check_json(file: Path, owner: str) -> None:
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RlobjInputError(f"{owner}.path: {file}:{error.lineno}: not valid JSON ({error.msg}, "
                              f"column {error.colno})") from error
    if not isinstance(payload, (list, dict)):
        raise RlobjInputError(f"{owner}.path: {file}: expected a JSON list of objects, got "
                              f"{type(payload).__name__}")


def _looks_local(path: str) -> bool:
    return (os.path.isabs(path) or path.startswith((".", "~")) or Path(path).suffix.lower() in _BUILDERS
            or path.count("/") > 1)


def load_rows(path: str, split: str = "train", name: str | None = None, cache_dir: str | None = None,
              owner: str = "DatasetTask"):
    """``datasets.load_dataset`` for a local file, a local folder or a Hub id, with key-naming errors."""
    import datasets

    file = Path(os.path.expanduser(path))
    if file.is_file():
        builder = _BUILDERS.get(file.suffix.lower())
        if builder is None:
            raise RlobjInputError(f"{owner}.path: {str(file)!r} has suffix {file.suffix!r}; expected one of "
                                  f"{sorted(_BUILDERS)}")
        if file.suffix.lower() == ".jsonl":
            _check_json_lines(file, owner)
        elif file.suffix.lower() == ".json":
            _check_json(file, owner)
        args: tuple = (builder,)
        kwargs: dict[str, Any] = {"data_files": {"train": str(file)}}
    elif file.is_dir():
        args, kwargs = (str(file),), {}
    elif _looks_local(path):
        raise RlobjInputError(f"{owner}.path: no such file {path!r}")
    else:
        args, kwargs = (path,), {"name": name}
    try:
        return datasets.load_dataset(*args, split=split, cache_dir=cache_dir, **kwargs)
    except (ValueError, KeyError) as error:  # an unknown split, a bad slice
        raise RlobjInputError(f"{owner}.split: cannot take split {split!r} of {path!r}: {error}") from error
    except Exception as error:  # noqa: BLE001 - a reader's error (CSV, Parquet, Hub) with the file named
        offline = " (HF_HUB_OFFLINE=1: only datasets already in the local cache)" \
            if os.environ.get("HF_HUB_OFFLINE") == "1" and not file.exists() else ""
        raise RlobjInputError(f"{owner}.path: cannot load {path!r}{offline}: "
                              f"{type(error).__name__}: {error}") from error


class DatasetTask(TaskSource):
    r"""Records from a Hugging Face ``datasets`` dataset (local file, local folder or Hub id).

    Index ``i`` maps to row ``perm_e[i mod N]`` with a fresh seeded permutation per pass
    ``e = i // N`` (identity with ``shuffle: false``), so the stream is deterministic and resumable.

    Args:
        path: a ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` file, a folder of such files, or a
            Hub dataset id (read from the local cache when ``HF_HUB_OFFLINE=1``).
        split: a ``datasets`` split, slices included (``"train[:90%]"``, ``"train[90%:]"``,
            ``"test"``). Default ``"train"`` (a single file is the ``train`` split).
        name: the Hub dataset's configuration name (e.g. ``"main"`` for GSM8K).
        columns: which dataset column fills each record field, e.g. ``{prompt: question, answer:
            final, completion: solution}``. A field not named is looked up in
            ``DEFAULT_COLUMNS`` order (prompt: ``prompt``, ``question``, ``problem``,
            ``messages``; answer: ``answer``, ``solution``, ``ground_truth``, ``target``);
            ``completion`` falls back to the answer.
        system_prompt: a system message put before every prompt (plain prompts then go through
            the chat template too).
        prompt_template: ``str.format`` template around a plain prompt (``{prompt}`` is the slot),
            applied before the chat template. Default ``"{prompt}"``.
        chat_template: a Jinja chat template replacing the tokenizer's own.
        answer_format: how the answer column becomes the answer: ``"as_is"`` (default),
            ``"gsm8k"`` (the text after ``####``, commas removed; the full text stays the
            completion) or ``"math"`` (the last ``\boxed{...}``), with
            :func:`rlobj.data.gsm8k_final_answer` / :func:`rlobj.data.math_final_answer`. A
            reference without a final answer is an error naming the row.
        shuffle: visit rows in a seeded random order. Default True.
        seed: order seed. Default 0.
        cache_dir: where ``datasets`` writes its Arrow cache (default: its usual cache).

    Conversational prompts need the policy's tokenizer: :class:`~rlobj.train.RLDataModule` calls
    :meth:`bind_tokenizer` when training, validation or ``rlobj eval`` starts.
    """

    def __init__(self, path: str, split: str = "train", name: str | None = None,
                 columns: dict[str, str] | None = None, system_prompt: str | None = None,
                 prompt_template: str = "{prompt}", chat_template: str | None = None,
                 answer_format: str = "as_is", shuffle: bool = True, seed: int = 0,
                 cache_dir: str | None = None):
        owner = type(self).__name__
        if answer_format not in ANSWER_FORMATS:
            raise RlobjInputError(f"{owner}.answer_format: expected one of {sorted(ANSWER_FORMATS)}, "
                                  f"got {answer_format!r}")
        self.answer_format = answer_format
        if not isinstance(path, str) or not path:
            raise RlobjInputError(f"{owner}.path: expected a file, folder or dataset id, got {path!r}")
        if "{prompt}" not in prompt_template:
            raise RlobjInputError(f"{owner}.prompt_template: must contain '{{prompt}}', got {prompt_template!r}")
        unknown = sorted(set(columns or {}) - {"prompt", "answer", "completion"})
        if unknown:
            raise RlobjInputError(f"{owner}.columns: unknown record field(s) {unknown}; "
                                  "map prompt, answer and completion")
        self.path, self.split, self.name = path, split, name
        self.system_prompt, self.prompt_template, self.chat_template = system_prompt, prompt_template, chat_template
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.dataset = load_rows(path, split=split, name=name, cache_dir=cache_dir, owner=owner)
        if len(self.dataset) == 0:
            raise RlobjInputError(f"{owner}.path: {path!r} (split {split!r}) holds no rows")
        present = list(self.dataset.column_names)
        self.columns = {}
        for field in ("prompt", "answer"):
            wanted = (columns or {}).get(field)
            candidates = (wanted,) if wanted else DEFAULT_COLUMNS[field]
            found = next((c for c in candidates if c in present), None)
            if found is None:
                key = f"{owner}.columns.{field}" if wanted else f"{owner}.columns"
                raise RlobjInputError(f"{key}: {path!r} has no column {' / '.join(candidates)} for the "
                                      f"{field}; columns present: {present}")
            self.columns[field] = found
        completion = (columns or {}).get("completion")
        if completion is not None and completion not in present:
            raise RlobjInputError(f"{owner}.columns.completion: {path!r} has no column {completion!r}; "
                                  f"columns present: {present}")
        self.columns["completion"] = completion or ("completion" if "completion" in present else self.columns["answer"])
        self.tokenizer = None
        self._orders: dict[int, list[int]] = {}

    def bind_tokenizer(self, tokenizer: Any) -> None:
        """The policy's tokenizer, whose chat template renders conversational prompts."""
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.dataset)

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.dataset)))
            if self.shuffle:
                random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._orders = {epoch: order}
        return self._orders[epoch]

    def record(self, index: int) -> dict[str, Any]:
        epoch, offset = divmod(int(index), len(self.dataset))
        position = self._order(epoch)[offset]
        row = dict(self.dataset[position])
        raw = row[self.columns["prompt"]]
        where = f"{type(self).__name__}: {self.path} row {position}"
        if isinstance(raw, str):
            raw = self.prompt_template.format(prompt=raw)
        prompt = render_prompt(raw, self.tokenizer, self.system_prompt, self.chat_template, where)
        answer = row[self.columns["answer"]]
        completion = row.get(self.columns["completion"])
        if self.answer_format != "as_is" and answer is not None:
            final = _final_answer(self.answer_format, str(answer))
            if final is None:
                raise RlobjInputError(f"{where}: the {self.columns['answer']!r} value has no final answer "
                                      f"for answer_format {self.answer_format!r}: {str(answer)[-80:]!r}")
            answer, completion = final, answer if completion is None else completion
        record = {**row, "prompt": prompt, "answer": "" if answer is None else str(answer),
                  "completion": str(answer if completion is None else completion)}
        if is_conversation(raw):
            record["prompt_messages"] = raw
        return record

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, split={self.split!r}, rows={len(self)})"


class JsonlTask(DatasetTask):
    """A local JSONL file of question/answer lines (the older spelling of :class:`DatasetTask`).

    Args:
        path: the file; checked when the source is built (a missing file or a malformed line
            fails before any model loads, naming the file and the line).
        prompt_key: field holding the question. Default ``"question"``.
        answer_key: field holding the reference answer. Default ``"answer"``.
        completion_key: field holding a demonstration (for ``sft``), optional. Default
            ``"solution"``; falls back to the answer when the file has no such field.
        prompt_template, system_prompt, chat_template, shuffle, seed: as :class:`DatasetTask`.
    """

    def __init__(self, path: str, prompt_key: str = "question", answer_key: str = "answer",
                 completion_key: str = "solution", prompt_template: str = "{prompt}",
                 system_prompt: str | None = None, chat_template: str | None = None,
                 shuffle: bool = True, seed: int = 0):
        if not Path(path).is_file():
            raise FileNotFoundError(f"JsonlTask.path: no such file {str(path)!r}")
        columns = {"prompt": prompt_key, "answer": answer_key}
        super().__init__(path, columns=columns, system_prompt=system_prompt, prompt_template=prompt_template,
                         chat_template=chat_template, shuffle=shuffle, seed=seed)
        if completion_key in self.dataset.column_names:
            self.columns["completion"] = completion_key
