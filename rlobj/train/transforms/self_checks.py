r"""Transforms that ask the policy a second question about its own answers and reward the reply.

* :class:`SelfVerification` (RISE, "Trust, But Verify", arXiv 2505.13445): the policy critiques
  its own solutions; a critique is rewarded when its verdict matches the outcome verifier's, and
  the critiques train in the same update as the solutions;
* :class:`ShuffledConsistency` (ACRE, "Answer-Consistent Chain-of-thought RL"): the options of a
  multiple-choice question are shuffled and the policy answers again after its own reasoning; a
  correct answer keeps its full reward only when the second answer picks the same option.
"""

from __future__ import annotations

import random
import re

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score, StepContext, Transform
from rlobj.train.transforms._checks import check_scored
from rlobj.train.transforms._common import concat, group_rows, with_metrics

__all__ = ["SelfVerification", "ShuffledConsistency", "parse_verdict", "LETTERS"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_verdict(text: str, yes: str, no: str) -> float | None:
    """1.0 if ``yes`` occurs in ``text`` before ``no``, 0.0 if ``no`` does first, None if neither.

    Example:
        >>> parse_verdict("I think yes.", "yes", "no"), parse_verdict("no", "yes", "no"), parse_verdict("?", "yes", "no")
        (1.0, 0.0, None)
    """
    lowered = text.lower()
    hits = [(lowered.find(word.lower()), value) for word, value in ((yes, 1.0), (no, 0.0))]
    hits = [(at, value) for at, value in hits if at >= 0]
    return min(hits)[1] if hits else None


class SelfVerification(Transform):
    r"""RISE: the policy verifies its own solutions, rewarded by agreement with the outcome verifier.

    For each group, its first ``per_group`` responses (samples are i.i.d., so these are a random
    choice) become verification prompts ``template.format(prompt=..., solution=...)``; the policy
    samples ``samples`` critiques of each (``ctx.sample``, one new group per solution). A critique's
    verdict is :func:`parse_verdict` (``yes`` / ``no``); its reward is

    $$ r^{\text{ver}} = \mathbb{1}[\text{verdict} = \mathbb{1}[r^{\text{sol}} \ge \tau]], \qquad
       r^{\text{ver}} = r_\text{unparsed} \text{ when no verdict is found}, $$

    with $r^{\text{sol}}$ the solution's reward from the scorer. The critique groups are appended
    to the batch (distinct group ids), so the solutions and the critiques train in one update, as
    in RISE. Critique rows carry ``Score.fields["verification"] = 1``.

    Warning:
        RISE's reference code trains with PPO and asks for the verdict as a score in a box; rlobj
        groups each solution's critiques for the objective's group baseline and reads a yes/no
        word. The prompt template is the user's (the default is plain English).

    Args:
        template: verification prompt (``{prompt}``, ``{solution}``).
        yes, no: the verdict words.
        per_group: solutions verified per group.
        samples: critiques per solution (None: ``ctx.group_size``).
        threshold: a solution reward at or above it counts as correct.
        unparsed_reward: reward of a critique without a verdict.
        salt: sampling salt of the critiques.

    Metrics: ``rise/verify_rows``, ``rise/verify_accuracy`` (critiques whose verdict matches),
    ``rise/verify_unparsed``.
    """

    def __init__(self, template: str = "{prompt}{solution}\nIs this solution correct? Answer yes or no: ",
                 yes: str = "yes", no: str = "no", per_group: int = 1, samples: int | None = None,
                 threshold: float = 1.0, unparsed_reward: float = 0.0, salt: int = 4111):
        if "{prompt}" not in template or "{solution}" not in template:
            raise RlobjInputError(f"SelfVerification.template: must contain '{{prompt}}' and '{{solution}}', got "
                                  f"{template!r}")
        if not yes or not no or yes == no:
            raise RlobjInputError(f"SelfVerification: yes and no must be distinct non-empty words, got {yes!r}, {no!r}")
        for name, value in (("per_group", per_group), ("samples", samples)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise RlobjInputError(f"SelfVerification.{name}: expected an int >= 1, got {value!r}")
        self.template, self.yes, self.no, self.per_group, self.samples = template, yes, no, per_group, samples
        self.threshold, self.unparsed_reward, self.salt = float(threshold), float(unparsed_reward), int(salt)

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "SelfVerification")
        if not len(batch):
            return batch
        texts = ctx.decode(batch.rollout)
        rewards = batch.rewards.cpu().tolist()
        chosen = [r for rows in group_rows(batch.rollout.group_ids.cpu()).values() for r in rows[:self.per_group]]
        records = [{**batch.records[r], "prompt": self.template.format(prompt=batch.records[r]["prompt"],
                                                                      solution=texts[r]),
                    "verify_target": float(rewards[r] >= self.threshold), "task": "verify"} for r in chosen]
        critiques = ctx.sample(records, n=self.samples, salt=self.salt)
        verdicts = [parse_verdict(t, self.yes, self.no) for t in ctx.decode(critiques.rollout)]
        critiques.scores = [Score(self.unparsed_reward if v is None else float(v == rec["verify_target"]),
                                  fields={"verification": 1.0})
                            for v, rec in zip(verdicts, critiques.records)]
        merged = concat([batch, critiques], ctx, "SelfVerification")
        parsed = [v for v in verdicts if v is not None]
        right = sum(float(v == rec["verify_target"]) for v, rec in zip(verdicts, critiques.records) if v is not None)
        return with_metrics(merged, **{"rise/verify_rows": float(len(critiques)),
                                       "rise/verify_accuracy": right / len(verdicts) if verdicts else 0.0,
                                       "rise/verify_unparsed": float(len(verdicts) - len(parsed))})


class ShuffledConsistency(Transform):
    r"""ACRE: shuffle the options, answer again after the same reasoning, reward consistency.

    Records hold ``question``, ``options`` (a list) and ``answer`` (the correct option's letter).
    For every row whose first answer (``answer_pattern``'s group 1 in the completion) is parsed,
    the options are permuted (a seeded permutation that moves at least one option), and the policy
    answers greedily (``ctx.sample(..., n=1, greedy=True)``) the prompt ``template.format(
    question, options, reasoning)`` with ``reasoning`` the completion before the answer. The
    second letter is mapped back through the permutation; the answers are *consistent* when they
    name the same option. The reward becomes

    $$ r' = \begin{cases} r & \text{first answer correct and consistent} \\
           \lambda\, r & \text{first answer correct, second different} \\
           r & \text{otherwise (a wrong answer keeps the scorer's reward)} \end{cases} $$

    so a correct answer earns its full reward only when the reasoning, not the option order,
    carries it.

    Warning:
        ACRE's abstract gives the rule (high reward only when both answers agree and are correct;
        lower otherwise) but not the values, and we found no public code: $\lambda$ = 0.5 is ours.

    Args:
        template: the second prompt (``{question}``, ``{options}``, ``{reasoning}``).
        answer_pattern: regex whose group 1 is the chosen letter.
        inconsistent_scale: $\lambda$.
        max_new_tokens: tokens of the second answer.
        salt: seed of the permutations and the second sampling.

    Metrics: ``acre/consistency`` (consistent among parsed rows), ``acre/checked`` (rows checked).
    """

    def __init__(self, template: str = "{question}\n{options}\n{reasoning}\nAnswer: ",
                 answer_pattern: str = r"Answer:\s*([A-Z])", inconsistent_scale: float = 0.5, max_new_tokens: int = 4,
                 salt: int = 6007):
        for key in ("{question}", "{options}", "{reasoning}"):
            if key not in template:
                raise RlobjInputError(f"ShuffledConsistency.template: must contain {key!r}, got {template!r}")
        try:
            self.pattern = re.compile(answer_pattern)
        except re.error as error:
            raise RlobjInputError(f"ShuffledConsistency.answer_pattern: {error}") from error
        if self.pattern.groups < 1:
            raise RlobjInputError("ShuffledConsistency.answer_pattern: needs a group capturing the letter")
        if not 0.0 <= inconsistent_scale <= 1.0:
            raise RlobjInputError(f"ShuffledConsistency.inconsistent_scale: expected [0, 1], got {inconsistent_scale!r}")
        self.template, self.answer_pattern = template, answer_pattern
        self.inconsistent_scale, self.max_new_tokens, self.salt = float(inconsistent_scale), max_new_tokens, int(salt)

    def permutation(self, size: int, key: tuple) -> list[int]:
        """``perm[j]`` = original index of the option shown at position ``j`` (never the identity)."""
        rng = random.Random(repr(key))
        perm = list(range(size))
        while size > 1 and perm == list(range(size)):
            rng.shuffle(perm)
        return perm

    def __call__(self, ctx: StepContext, batch: Batch) -> Batch:
        check_scored(batch, "ShuffledConsistency")
        if not len(batch):
            return batch
        texts = ctx.decode(batch.rollout)
        checks, second = [], []
        for row, (record, text) in enumerate(zip(batch.records, texts)):
            options = record.get("options")
            if not isinstance(options, (list, tuple)) or "question" not in record or "answer" not in record:
                raise RlobjInputError(f"ShuffledConsistency: record of row {row} needs 'question', 'options' (a list) "
                                      f"and 'answer' (a letter), got keys {sorted(record)}")
            match = self.pattern.search(text)
            if match is None or match.group(1) not in LETTERS[:len(options)]:
                continue
            perm = self.permutation(len(options), (self.salt, ctx.seed, ctx.step, ctx.rank, row))
            shown = "\n".join(f"{LETTERS[j]}. {options[i]}" for j, i in enumerate(perm))
            second.append({**record, "prompt": self.template.format(question=record["question"], options=shown,
                                                                    reasoning=text[:match.start()].rstrip())})
            checks.append((row, LETTERS.index(match.group(1)), perm))
        scores = list(batch.scores)
        consistent = 0
        if second:
            replies = ctx.decode(ctx.sample(second, n=1, salt=self.salt, greedy=True,
                                            max_new_tokens=self.max_new_tokens).rollout)
            for (row, first, perm), reply in zip(checks, replies):
                found = re.search(r"[A-Z]", reply)
                shown = LETTERS.index(found.group(0)) if found else -1
                same = 0 <= shown < len(perm) and perm[shown] == first
                consistent += int(same)
                correct = LETTERS[first] == str(batch.records[row]["answer"]).strip()
                if correct and not same:
                    old = scores[row]
                    scores[row] = Score(old.reward * self.inconsistent_scale, old.token_rewards,
                                        {**old.fields, "acre_consistent": 0.0})
                else:
                    scores[row] = Score(scores[row].reward, scores[row].token_rewards,
                                        {**scores[row].fields, "acre_consistent": float(same)})
        out = Batch(rollout=batch.rollout, records=batch.records, scores=scores, extras=dict(batch.extras),
                    metrics=dict(batch.metrics), on_policy=batch.on_policy)
        return with_metrics(out, **{"acre/checked": float(len(checks)),
                                    "acre/consistency": consistent / len(checks) if checks else 0.0})

