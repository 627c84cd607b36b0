r"""Reward modelling as the task, and sentence-level judging (RM-R1, TRM).

* :class:`PreferenceTask` and :class:`PreferenceVerdict`: RM-R1's task format. The policy *is*
  the reward model being trained: each prompt shows a question and two candidate answers, the
  policy reasons and names the better one, and a rule checks the verdict (RLVR on preference data).
* :class:`SentenceJudge`: TRM's sentence-level reward for the policy: the judge assesses every
  sentence of the answer against the supporting documents, first faithfulness, then correctness.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from rlobj.data.tasks import TaskSource
from rlobj.ops.errors import RlobjInputError
from rlobj.train.judges import PrincipleJudge, fill, render_prompt

__all__ = ["PreferenceTask", "PreferenceVerdict", "SentenceJudge", "RMR1_TEMPLATE", "split_sentences"]

RMR1_TEMPLATE = ("Judge which answer to the question is better. Think first, then write the better answer's "
                 "letter as [[A]] or [[B]].\nQuestion: {question}\n[A] {first}\n[B] {second}\n")


class PreferenceTask(TaskSource):
    r"""RM-R1's task format ("RM-R1: Reward Modeling as Reasoning", 2025;
    code: github.com/RM-R1-UIUC/RM-R1): preference pairs as verifiable prompts for training a reasoning reward model.

    Row ``i`` of ``rows`` (each ``{question_key, chosen_key, rejected_key}``) becomes the prompt
    ``template`` with the two answers in an order drawn from ``random.Random(seed * 1_000_003 + i)``
    (so position carries no signal), and ``answer`` is the letter of the chosen one (``"A"`` or
    ``"B"``). :class:`PreferenceVerdict` rewards $r = \mathbb 1[\text{the last } [[X]] \text{ of the
    response} = \text{answer}]$.

    Args:
        rows: the preference rows (a list of mappings).
        template: the prompt with ``{question}``, ``{first}``, ``{second}``.
        question_key, chosen_key, rejected_key: the rows' keys.
        seed: seed of the order draws.
    """

    def __init__(self, rows: Sequence[dict], template: str = RMR1_TEMPLATE, question_key: str = "question",
                 chosen_key: str = "chosen", rejected_key: str = "rejected", seed: int = 0):
        if not isinstance(rows, (list, tuple)) or not rows:
            raise RlobjInputError(f"PreferenceTask.rows: expected a non-empty list of rows, got {rows!r}")
        for i, row in enumerate(rows):
            missing = [k for k in (question_key, chosen_key, rejected_key) if k not in row]
            if missing:
                raise RlobjInputError(f"PreferenceTask.rows[{i}]: missing keys {missing} (has {sorted(row)})")
        for field in ("{question}", "{first}", "{second}"):
            if field not in template:
                raise RlobjInputError(f"PreferenceTask.template: must contain {field}")
        self.rows, self.template, self.seed = list(rows), template, int(seed)
        self.keys = (question_key, chosen_key, rejected_key)

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, index: int) -> dict[str, Any]:
        question_key, chosen_key, rejected_key = self.keys
        row = self.rows[int(index) % len(self.rows)]
        chosen_first = random.Random(self.seed * 1_000_003 + int(index)).random() < 0.5
        first, second = (row[chosen_key], row[rejected_key]) if chosen_first else (row[rejected_key], row[chosen_key])
        prompt = self.template.format(question=row[question_key], first=first, second=second)
        answer = "A" if chosen_first else "B"
        return {"prompt": prompt, "answer": answer, "completion": f"[[{answer}]]"}


class PreferenceVerdict:
    r"""RM-R1's verifiable reward: 1 when the response's last ``[[A]]`` / ``[[B]]`` names the
    record's ``answer``, else 0 (no verdict: 0).

    Example:
        >>> PreferenceVerdict()("A is vague, B is exact. [[B]]", {"answer": "B"})
        1.0
        >>> PreferenceVerdict()("no verdict", {"answer": "A"})
        0.0
    """

    pattern = re.compile(r"\[\[\s*([AB])\s*\]\]")

    def __call__(self, completion: str, sample) -> float:
        found = self.pattern.findall(completion)
        return float(bool(found) and found[-1] == sample["answer"])


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: cut after ``.``, ``!``, ``?`` or a newline; empty pieces dropped.

    Example:
        >>> split_sentences("Paris is big. It is in France!\\nYes")
        ['Paris is big.', 'It is in France!', 'Yes']
    """
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


TRM_FAITHFUL = ("Documents: {documents}\nQuestion: {prompt}\nSentence: {sentence}\n"
                "Is the sentence supported by the documents? Answer Yes or No: ")
TRM_CORRECT = ("Documents: {documents}\nQuestion: {prompt}\nSentence: {sentence}\n"
               "The sentence is {faithful} by the documents. Reasoning about what you know, is the sentence "
               "correct? Answer Yes or No: ")


class SentenceJudge(PrincipleJudge):
    r"""TRM's sentence-level reward ("From Faithfulness to Correctness: Generative
    Reward Models that Think Critically", 2025).

    The answer is split into sentences $s_1..s_n$ (:func:`split_sentences`). For each, the judge
    first assesses faithfulness to the supporting documents (``record[documents_key]``),
    $f_k = \mathbb 1[p(\text{Yes} \mid \text{faithful\_template}) > 1/2]$, then, told that verdict
    ("supported" / "not supported"), judges correctness, $c_k = p(\text{Yes} \mid
    \text{correct\_template}, f_k)$. The reward is the mean correctness,
    $r = \frac1n \sum_k c_k$ (``binary=True``: $\mathbb 1[c_k > 1/2]$); an answer with no
    sentence is unreadable (status ``"invalid"``). The per-sentence verdicts are in
    ``last_judgements`` (a list of ``(f_k, c_k)`` per row).

    Args:
        model, dtype, chat_template: the judge (:class:`~rlobj.train.judges.JudgeModel`).
        documents_key: the record key of the supporting documents (a string or a list of strings).
        faithful_template, correct_template: the two stages' prompts.
        binary: threshold the correctness at 1/2.
    """

    def __init__(self, model: str, documents_key: str = "documents", faithful_template: str = TRM_FAITHFUL,
                 correct_template: str = TRM_CORRECT, binary: bool = False, dtype: str = "float32",
                 chat_template: bool = True, name: str | None = "trm", batch_size: int = 16,
                 timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, principles=["<sentence>"], template="{principle}", binary=binary, dtype=dtype,
                         chat_template=chat_template, name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        for template in (faithful_template, correct_template):
            if "{sentence}" not in template:
                raise RlobjInputError("SentenceJudge: both templates must contain {sentence}")
        if "{faithful}" not in correct_template:
            raise RlobjInputError("SentenceJudge.correct_template: must contain {faithful}")
        self.documents_key, self.faithful_template, self.correct_template = (documents_key, faithful_template,
                                                                             correct_template)

    def score_rows(self, prompts, completions, records):
        judge = self.ready()
        sentences = [split_sentences(c) for c in completions]
        stage1, owner = [], []
        for b, (p, r) in enumerate(zip(prompts, records)):
            if self.documents_key not in r:
                raise RlobjInputError(f"SentenceJudge.documents_key: the record has no key {self.documents_key!r}")
            docs = r[self.documents_key]
            docs = "\n".join(docs) if isinstance(docs, (list, tuple)) else str(docs)
            for s in sentences[b]:
                stage1.append(dict(record=r, prompt=render_prompt(p), documents=docs, sentence=s))
                owner.append(b)
        if not stage1:
            return [None] * len(completions)
        filled = [fill(self.faithful_template, x["record"], prompt=x["prompt"], documents=x["documents"],
                       sentence=x["sentence"]) for x in stage1]
        faithful = [p > 0.5 for p in judge.choice_probs(filled, self.choices)[:, 0].tolist()]
        filled = [fill(self.correct_template, x["record"], prompt=x["prompt"], documents=x["documents"],
                       sentence=x["sentence"], faithful="supported" if f else "not supported")
                  for x, f in zip(stage1, faithful)]
        correct = judge.choice_probs(filled, self.choices)[:, 0].tolist()
        per_row: list[list[tuple[bool, float]]] = [[] for _ in completions]
        for b, f, c in zip(owner, faithful, correct):
            per_row[b].append((f, float(c > 0.5) if self.binary else c))
        self.last_judgements = per_row
        return [sum(c for _, c in row) / len(row) if row else None for row in per_row]
