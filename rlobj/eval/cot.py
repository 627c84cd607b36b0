r"""CoT-pass@k: a sample counts only when its final answer *and* its chain of thought are correct.

Wen et al., "Reinforcement Learning with Verifiable Rewards Implicitly Incentivizes Correct
Reasoning in Base LLMs", arXiv 2506.14245 (Sec. 3, CoT-Pass@K). With $n$ samples of which $d$
have a correct answer and a chain of thought the judge accepts, the unbiased estimator is that
of pass@k with $d$ in place of $c$:

$$ \widehat{\text{CoT-pass@}k} = 1 - \binom{n-d}{k} \Big/ \binom{n}{k}, \qquad d \le c. $$

So CoT-pass@k $\le$ pass@k for every $k$. The judge is pluggable: any callable
``judge(prompt, response) -> bool``. Two are provided: :class:`RuleCotJudge` (checks that can be
made by reading the text: one consistent final answer, enough reasoning before it, every
written arithmetic claim ``a op b = c`` true) and :class:`EngineCotJudge` (asks a language
model through any object with the rollout :class:`~rlobj.rollout.engine.Engine` interface; the
paper used DeepSeek-R1 as the judge). Only samples with a correct answer are judged.
"""

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlobj.eval.passk import pass_at_k

__all__ = ["CotJudge", "RuleCotJudge", "EngineCotJudge", "JUDGE_TEMPLATE", "judge_samples",
           "cot_pass_at_k", "cot_pass_at_k_mean"]


@runtime_checkable
class CotJudge(Protocol):
    """``judge(prompt, response) -> bool``: is the chain of thought of ``response`` correct?"""

    def __call__(self, prompt: str, response: str) -> bool: ...


def judge_samples(judge: Callable[[str, str], bool], prompt: str, responses: Sequence[str],
                  answer_correct: Sequence[bool]) -> list[bool]:
    """Verdicts for one problem's samples: the judge runs only on samples with a correct answer.

    A judge with a ``judge_many(pairs)`` method (such as :class:`EngineCotJudge`) gets all
    pairs in one call. Returns ``answer_correct[i] and judge(prompt, responses[i])``.
    """
    if len(responses) != len(answer_correct):
        raise ValueError(f"judge_samples: responses and answer_correct must have the same length, got "
                         f"{len(responses)} and {len(answer_correct)}")
    asked = [i for i, ok in enumerate(answer_correct) if ok]
    if hasattr(judge, "judge_many"):
        verdicts = judge.judge_many([(prompt, responses[i]) for i in asked]) if asked else []
    else:
        verdicts = [judge(prompt, responses[i]) for i in asked]
    out = [False] * len(responses)
    for i, verdict in zip(asked, verdicts, strict=True):
        out[i] = bool(verdict)
    return out


def cot_pass_at_k(answer_correct: Sequence[bool], cot_correct: Sequence[bool], k: int) -> float:
    r"""Unbiased CoT-pass@k of one problem: pass@k with $d = \#\{i : \text{answer}_i \wedge \text{cot}_i\}$.

    Args:
        answer_correct: per sample, whether the final answer is correct ($n$ samples).
        cot_correct: per sample, the judge's verdict on the chain of thought.
        k: budget (1..n).

    Example:
        >>> # 4 samples, 3 correct answers, the judge rejects the reasoning of one of them: d = 2
        >>> round(cot_pass_at_k([True, True, True, False], [True, False, True, True], k=2), 4)
        0.8333
    """
    if len(answer_correct) != len(cot_correct):
        raise ValueError(f"cot_pass_at_k: answer_correct and cot_correct must have the same length, got "
                         f"{len(answer_correct)} and {len(cot_correct)}")
    both = sum(bool(a) and bool(c) for a, c in zip(answer_correct, cot_correct, strict=True))
    return pass_at_k(len(answer_correct), both, k)


def cot_pass_at_k_mean(problems: Sequence[Mapping[str, Any]], judge: Callable[[str, str], bool],
                       ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k and CoT-pass@k over problems.

    Args:
        problems: each a mapping with ``prompt`` (str), ``responses`` (list of str) and
            ``answer_correct`` (list of bool, the verifier's verdicts).
        judge: the chain-of-thought judge.
        ks: budgets.

    Returns:
        ``{"pass@k": ..., "cot_pass@k": ...}`` for every ``k`` in ``ks``.
    """
    if not problems:
        raise ValueError("cot_pass_at_k_mean: problems must not be empty")
    sums = {f"{name}@{k}": 0.0 for k in ks for name in ("pass", "cot_pass")}
    for index, problem in enumerate(problems):
        missing = {"prompt", "responses", "answer_correct"} - set(problem)
        if missing:
            raise ValueError(f"cot_pass_at_k_mean: problems[{index}] lacks {sorted(missing)}")
        answers = list(problem["answer_correct"])
        verdicts = judge_samples(judge, problem["prompt"], problem["responses"], answers)
        for k in ks:
            sums[f"pass@{k}"] += pass_at_k(len(answers), sum(map(bool, answers)), k)
            sums[f"cot_pass@{k}"] += cot_pass_at_k(answers, verdicts, k)
    return {name: value / len(problems) for name, value in sums.items()}


# ------------------------------------------------------------------------------ rule-based judge
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_NUMBER = r"\d+(?:\.\d+)?"
_CLAIM = re.compile(rf"(?<![\w.)])(-?{_NUMBER}(?:\s*[-+*/×·]\s*-?{_NUMBER})+)\s*=\s*(-?{_NUMBER})(?![\w.]*\d)")


def _evaluate(expression: str) -> float:
    """Value of a +, -, *, / expression of numbers (operator precedence as in Python)."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not an arithmetic expression: {expression!r}")

    return walk(ast.parse(expression.replace("×", "*").replace("·", "*"), mode="eval"))


@dataclass(frozen=True)
class RuleCotJudge:
    r"""Accept a chain of thought when every rule holds.

    Rules: (1) the response states a final answer (``answer_pattern``, default ``\boxed{...}``)
    and every final answer it states is the same; (2) at least ``min_reasoning_chars``
    non-space characters of reasoning come before the first final answer; (3) with
    ``check_arithmetic``, every written claim ``a op b op ... = c`` over plain numbers
    (``+ - * / ×``, no parentheses) is true to ``rel_tol``; (4) none of ``forbidden`` (case
    insensitive) appears, e.g. ``("i guess",)``.

    These are checks that can be made by reading the text; they catch lucky guesses,
    contradicting answers and wrong intermediate arithmetic, not every logical error (the
    paper's judge is an LLM: :class:`EngineCotJudge`).

    Example:
        >>> judge = RuleCotJudge(min_reasoning_chars=10)
        >>> judge("2+3*4?", "3 * 4 = 12, then 2 + 12 = 14. \\boxed{14}")
        True
        >>> judge.problems("2+3*4?", "2 + 3 = 5 and 5 * 4 = 21 so \\boxed{20}")
        ['wrong arithmetic: 5 * 4 = 21']
    """

    min_reasoning_chars: int = 20
    answer_pattern: str = r"\\boxed\{([^{}]*)\}"
    check_arithmetic: bool = True
    rel_tol: float = 1e-6
    forbidden: tuple[str, ...] = ()

    def __post_init__(self):
        if self.min_reasoning_chars < 0:
            raise ValueError(f"RuleCotJudge.min_reasoning_chars must be >= 0, got {self.min_reasoning_chars}")
        if re.compile(self.answer_pattern).groups != 1:
            raise ValueError(f"RuleCotJudge.answer_pattern needs exactly one capture group (the answer), "
                             f"got {self.answer_pattern!r}")

    def problems(self, prompt: str, response: str) -> list[str]:
        """Every rule the response breaks, as readable strings (empty when it passes)."""
        found = []
        matches = list(re.finditer(self.answer_pattern, response))
        if not matches:
            found.append("no final answer")
        elif len({m.group(1).strip() for m in matches}) > 1:
            found.append("conflicting final answers: " + ", ".join(m.group(1).strip() for m in matches))
        reasoning = response[: matches[0].start()] if matches else response
        if len("".join(reasoning.split())) < self.min_reasoning_chars:
            found.append(f"reasoning too short ({len(''.join(reasoning.split()))} < {self.min_reasoning_chars} chars)")
        if self.check_arithmetic:
            for claim in _CLAIM.finditer(response):
                expression, stated = claim.group(1), float(claim.group(2))
                try:
                    value = _evaluate(expression)
                except (ValueError, ZeroDivisionError, SyntaxError):
                    continue
                if not math.isclose(value, stated, rel_tol=self.rel_tol, abs_tol=self.rel_tol):
                    found.append(f"wrong arithmetic: {claim.group(0).strip()}")
        lowered = response.lower()
        found.extend(f"forbidden phrase: {phrase!r}" for phrase in self.forbidden if phrase.lower() in lowered)
        return found

    def __call__(self, prompt: str, response: str) -> bool:
        return not self.problems(prompt, response)


# ------------------------------------------------------------------------------ LLM judge
JUDGE_TEMPLATE = (
    "You are checking a solution. Problem:\n{prompt}\n\nSolution:\n{response}\n\n"
    "Is every step of the reasoning correct and does it support the final answer? "
    "End with 'VERDICT: CORRECT' or 'VERDICT: INCORRECT'.\n"
)
_VERDICT = re.compile(r"verdict\s*:\s*(correct|incorrect)", re.IGNORECASE)


@dataclass
class EngineCotJudge:
    r"""Ask a language model whether a chain of thought is correct, through any rollout engine.

    For each (prompt, response) pair the judge prompt ``template.format(prompt=..., response=...)``
    is encoded, ``engine.generate`` samples ``votes`` judgements with ``sampling``, each is
    decoded and its last ``VERDICT: CORRECT|INCORRECT`` read (case insensitive; a judgement with
    no verdict counts as incorrect); the verdict is the strict majority of the votes.

    Args:
        engine: any object with the :class:`~rlobj.rollout.engine.Engine` interface (``HFEngine``,
            ``VLLMEngine``, or a test double).
        encode: text -> token ids of the judge model.
        decode: token ids -> text.
        sampling: a :class:`~rlobj.rollout.engine.SamplingConfig`; default greedy, 512 tokens.
        template: the judge prompt with ``{prompt}`` and ``{response}`` fields.
        votes: judgements per pair (majority vote).

    Attributes:
        last_outputs: the decoded judgements of the last call (for inspection).
    """

    engine: Any
    encode: Callable[[str], Sequence[int]]
    decode: Callable[[Sequence[int]], str]
    sampling: Any = None
    template: str = JUDGE_TEMPLATE
    votes: int = 1
    last_outputs: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        from rlobj.rollout.engine import Engine, SamplingConfig

        if not isinstance(self.engine, Engine):
            raise TypeError(f"EngineCotJudge.engine must have the Engine interface (generate, update_weights, "
                            f"sleep, wake, supports_sleep), got {type(self.engine).__name__}")
        if self.sampling is None:
            self.sampling = SamplingConfig(max_new_tokens=512, greedy=True)
        if not isinstance(self.votes, int) or self.votes < 1:
            raise ValueError(f"EngineCotJudge.votes must be an int >= 1, got {self.votes!r}")
        if "{prompt}" not in self.template or "{response}" not in self.template:
            raise ValueError("EngineCotJudge.template must contain the fields {prompt} and {response}")

    @staticmethod
    def parse_verdict(text: str) -> bool | None:
        """True / False from the last ``VERDICT:`` in ``text``; None when there is none."""
        found = _VERDICT.findall(text)
        return None if not found else found[-1].lower() == "correct"

    def judge_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Verdicts for many (prompt, response) pairs in one ``generate`` call."""
        if not pairs:
            return []
        prompts = [list(self.encode(self.template.format(prompt=p, response=r))) for p, r in pairs]
        rollout = self.engine.generate(prompts, n=self.votes, sampling=self.sampling)
        texts = [self.decode([t for t, m in zip(ids, mask, strict=True) if m])
                 for ids, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(), strict=True)]
        self.last_outputs = texts
        groups = rollout.group_ids.tolist()
        yes = [0] * len(pairs)
        for group, text in zip(groups, texts, strict=True):
            yes[group] += bool(self.parse_verdict(text))
        return [2 * count > self.votes for count in yes]

    def __call__(self, prompt: str, response: str) -> bool:
        return self.judge_many([(prompt, response)])[0]
