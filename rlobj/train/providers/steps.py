r"""Providers of per-step and per-token inputs: reasoning steps, process rewards, critic votes,
prefix accuracies (VSRM) and token influence scores (THR / NTHR).

Steps are found on the decoded response: a step ends at the token that holds an occurrence of
``delimiter`` (default ``"\n"``; ``"+"`` or ``" "`` suit the tiny arithmetic task), and the last
response token always ends the final step. Token positions come from decoding each response
token on its own (checked against the decoded response; where the pieces do not add up to it,
e.g. multi-byte characters split across tokens, every prefix of the row is decoded instead).

Where the paper's input comes from a model rlobj does not have (a process reward model, LLM
critics), the provider uses a scripted step checker stated below; a scorer that reports a
:attr:`Score.fields <rlobj.train.stages.Score>` entry of the slot's name wins (one value per
step, in order, or one per response token).
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import RolloutBatch
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.providers.scores import row_generator, row_keys

__all__ = ["ReasoningSteps", "TokenInfluence", "Step", "split_steps", "check_equations", "token_char_ends"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One reasoning step of a response: its last token's position, its text, the text up to its end."""

    end: int
    text: str
    prefix: str


def _plain_rollout(response_ids: Tensor, response_mask: Tensor, pad: int) -> RolloutBatch:
    """A rollout around response rows (prompts of one pad token) for ``ctx.decode``."""
    rows = response_ids.shape[0]
    return RolloutBatch(prompt_ids=torch.full((rows, 1), pad, dtype=torch.long),
                        prompt_mask=torch.ones(rows, 1, dtype=torch.bool), response_ids=response_ids.long(),
                        response_mask=response_mask.bool(),
                        logp_rollout=torch.zeros(response_ids.shape, dtype=torch.float32),
                        group_ids=torch.arange(rows), truncated=torch.zeros(rows, dtype=torch.bool),
                        finish_reasons=("stop",) * rows)


def token_char_ends(ctx, rollout: RolloutBatch) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """``(texts, positions, char_ends)``: the decoded responses, per row the positions of its
    response tokens and, for each, the length of the decoded text through that token."""
    texts = ctx.decode(rollout)
    ids, mask = rollout.response_ids.cpu(), rollout.response_mask.cpu().bool()
    positions = [mask[row].nonzero().flatten().tolist() for row in range(len(texts))]
    flat = torch.cat([ids[row, pos] for row, pos in enumerate(positions)]) if texts else ids[:0, 0]
    pieces = ctx.decode(_plain_rollout(flat[:, None], torch.ones(len(flat), 1, dtype=torch.bool),
                                       ctx.pad_token_id)) if len(flat) else []
    ends, start = [], 0
    for row, pos in enumerate(positions):
        own = pieces[start:start + len(pos)]
        start += len(pos)
        if "".join(own) == texts[row]:
            lengths, total = [], 0
            for piece in own:
                total += len(piece)
                lengths.append(total)
        else:  # pieces do not add up: decode every prefix of the row
            count = len(pos)
            prefix_mask = torch.zeros(count, ids.shape[1], dtype=torch.bool)
            for k in range(count):
                prefix_mask[k, pos[:k + 1]] = True
            prefixes = ctx.decode(_plain_rollout(ids[row].expand(count, -1), prefix_mask, ctx.pad_token_id))
            lengths = [len(p) for p in prefixes]
        ends.append(lengths)
    return texts, positions, ends


def split_steps(ctx, rollout: RolloutBatch, delimiter: str) -> tuple[Tensor, list[list[Step]], list[str]]:
    """``(step_ends, steps, texts)``: bool ``"batch seq"`` step ends, the :class:`Step` list of each row
    and the decoded responses. A delimiter followed only by whitespace ends no separate step."""
    texts, positions, char_ends = token_char_ends(ctx, rollout)
    step_ends = torch.zeros(rollout.response_mask.shape, dtype=torch.bool)
    steps: list[list[Step]] = []
    pattern = re.compile(re.escape(delimiter))
    for row, text in enumerate(texts):
        pos, ends = positions[row], char_ends[row]
        if not pos:
            steps.append([])
            continue
        chosen: list[int] = []
        for match in pattern.finditer(text):
            last_char = match.end() - 1
            index = next(i for i, e in enumerate(ends) if e > last_char)
            if text[ends[index]:].strip() and (not chosen or chosen[-1] != index):
                chosen.append(index)
        if not chosen or chosen[-1] != len(pos) - 1:
            chosen.append(len(pos) - 1)
        row_steps, begin = [], 0
        for index in chosen:
            stop = len(text) if index == len(pos) - 1 else ends[index]
            row_steps.append(Step(end=pos[index], text=text[begin:stop], prefix=text[:stop]))
            step_ends[row, pos[index]] = True
            begin = stop
        steps.append(row_steps)
    return step_ends.to(rollout.response_mask.device), steps, texts


_EQUATION = re.compile(r"(\d+(?:\s*[-+*]\s*\d+)*)\s*=\s*(-?\d+)")


def _evaluate(expression: str) -> int:
    """Value of ``a op b op ...`` with ``*`` before ``+`` / ``-`` (non-negative integer literals)."""
    tokens = re.findall(r"\d+|[-+*]", expression)
    total, sign, product = 0, 1, int(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            product *= int(number)
        else:
            total += sign * product
            sign, product = (1 if op == "+" else -1), int(number)
    return total + sign * product


def check_equations(text: str, neutral: float = 0.5) -> float:
    """Fraction of the equations ``expr = n`` in ``text`` that hold; ``neutral`` when there are none.

    Example:
        >>> check_equations("12+3*2=18, so 18-1=16"), check_equations("no equation here")
        (0.5, 0.5)
        >>> check_equations("2*3+1=7")
        1.0
    """
    found = _EQUATION.findall(text)
    if not found:
        return neutral
    return sum(_evaluate(lhs) == int(rhs) for lhs, rhs in found) / len(found)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _per_step(batch, name: str, steps: list[list[Step]], width: int) -> Tensor | None:
    """A scorer field given per step (placed at the step ends) or per response token, as ``[batch, width]``."""
    if batch.scores is None or not batch.scores or any(name not in s.fields for s in batch.scores):
        return None
    out = torch.zeros(len(steps), width, dtype=torch.float32)
    mask = batch.rollout.response_mask.cpu().bool()
    for row, score in enumerate(batch.scores):
        values = [float(v) for v in score.fields[name]]
        tokens = mask[row].nonzero().flatten()
        if len(values) == len(steps[row]):
            for step, value in zip(steps[row], values):
                out[row, step.end] = value
        elif len(values) == len(tokens):
            out[row, tokens] = torch.tensor(values)
        else:
            raise RlobjInputError(f"score field {name!r} of row {row}: expected one value per step ({len(steps[row])}) "
                                  f"or per response token ({len(tokens)}), got {len(values)}")
    return out


@register_provider
class ReasoningSteps(Provider):
    r"""Reasoning steps and what is known about them, for
    :class:`~rlobj.terms.rewards.process.ppr_renorm` (PPR, arXiv 2509.25598),
    :class:`~rlobj.terms.rewards.process.vsrm_step_reward` (VSRM, arXiv 2508.10293) and
    :class:`~rlobj.terms.advantages.token_credit.critique_token_advantage` (CAPO, arXiv 2508.02298).
    Only the slots the objective reads are computed.

    * ``extras:step_ends`` (bool ``"batch seq"``): :func:`split_steps` at ``delimiter``.
    * ``extras:process_rewards`` (float ``"batch seq"``, at step ends, in [0, 1]): a scripted
      step checker standing in for a process reward model: ``checker="equations"``: the
      fraction of equations ``a+b*c=d`` in the step that hold, ``neutral`` when it has none
      (:func:`check_equations`); ``checker="reference_prefix"``: 1 while the response so far
      (whitespace collapsed) is a prefix of ``records[b][reference_key]``, else 0. A scorer
      field ``process_rewards`` (a real PRM's scores) wins.
    * ``extras:step_wrong_votes`` (float ``"batch seq"``, at step ends): the fraction of
      ``critics`` scripted critics (standing in for CAPO's generative critiques) that flag the
      step; critic $c$ flags step $k$ with probability $\epsilon + (1 - 2\epsilon)(1 - p_k)$,
      $p_k$ the process reward and $\epsilon$ = ``critic_noise``, drawn per row from a
      generator seeded by (``seed``, run seed, step, the row's content key
      :func:`~rlobj.train.providers.scores.row_keys`). A scorer field
      ``step_wrong_votes`` wins.
    * ``extras:step_accuracy`` (float ``"batch seq"``, at step ends) and
      ``extras:start_accuracy`` (float ``" batch"``): computed for real by sampling: ``samples``
      continuations (``ctx.sample`` on the record with prompt = prompt + response prefix through
      the step + ``force_text``) are scored by the run's scorer on prefix + ``force_text`` +
      continuation; the accuracy is the fraction with reward > 0.5. The start accuracy samples
      from the prompt alone (one draw per group, shared by its rows). Each prefix is sampled on
      its own, seeded from its row's content key (:func:`~rlobj.train.providers.scores.row_keys`)
      and the prefix, so neither micro-batching nor the data-parallel rank changes a draw. Costs
      ``samples * (steps + groups)`` extra generations per batch. The prefix text is
      re-encoded (exact for the character tokenizer; a BPE tokenizer may tokenize it
      differently from the sampled tokens). Scorer fields ``step_accuracy`` /
      ``start_accuracy`` win.

    Args:
        delimiter: the text that ends a step.
        checker: ``"equations"`` or ``"reference_prefix"``.
        neutral: process reward of a step without an equation (``equations``).
        reference_key: record field with the reference solution (``reference_prefix``).
        critics: number of scripted critics $M \ge 1$.
        critic_noise: $\epsilon \in [0, 0.5]$.
        samples: continuations per prefix for the accuracies.
        force_text: text appended to each prefix to force an answer (VSRM's answer-forcing).
        max_new_tokens: token budget of the continuations (None: the run's sampling setting).
        seed: salt of the critics' draws and of the continuations' sampling.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:step_ends", "extras:process_rewards", "extras:step_wrong_votes",
                                           "extras:step_accuracy", "extras:start_accuracy")

    def __init__(self, delimiter: str = "\n", checker: str = "equations", neutral: float = 0.5,
                 reference_key: str = "completion", critics: int = 4, critic_noise: float = 0.1, samples: int = 4,
                 force_text: str = "", max_new_tokens: int | None = None, seed: int = 0):
        if not delimiter:
            raise RlobjInputError("ReasoningSteps.delimiter: expected a non-empty string")
        if checker not in ("equations", "reference_prefix"):
            raise RlobjInputError(f"ReasoningSteps.checker: expected 'equations' or 'reference_prefix', got {checker!r}")
        if not 0.0 <= neutral <= 1.0:
            raise RlobjInputError(f"ReasoningSteps.neutral: expected in [0, 1], got {neutral}")
        if critics < 1 or samples < 1:
            raise RlobjInputError(f"ReasoningSteps: critics and samples must be >= 1, got {critics}, {samples}")
        if not 0.0 <= critic_noise <= 0.5:
            raise RlobjInputError(f"ReasoningSteps.critic_noise: expected in [0, 0.5], got {critic_noise}")
        self.delimiter, self.checker, self.neutral, self.reference_key = delimiter, checker, neutral, reference_key
        self.critics, self.critic_noise, self.samples = critics, critic_noise, samples
        self.force_text, self.max_new_tokens, self.seed = force_text, max_new_tokens, seed

    def _wants(self, slot: str) -> bool:
        return not self.needed or slot in self.needed

    # ------------------------------------------------------------------ process rewards and critics
    def step_score(self, step: Step, record: dict, row: int) -> float:
        if self.checker == "equations":
            return check_equations(step.text, self.neutral)
        if self.reference_key not in record:
            raise RlobjInputError(f"ReasoningSteps: records[{row}] has no field {self.reference_key!r} "
                                  f"(checker='reference_prefix')")
        return float(_squash(str(record[self.reference_key])).startswith(_squash(step.prefix)))

    def process_rewards(self, batch, steps, width) -> Tensor:
        given = _per_step(batch, "process_rewards", steps, width)
        if given is not None:
            return given
        out = torch.zeros(len(steps), width, dtype=torch.float32)
        for row, row_steps in enumerate(steps):
            for step in row_steps:
                out[row, step.end] = self.step_score(step, batch.records[row], row)
        return out

    def wrong_votes(self, ctx, batch, steps, process: Tensor) -> Tensor:
        given = _per_step(batch, "step_wrong_votes", steps, process.shape[1])
        if given is not None:
            return given
        out = torch.zeros_like(process)
        eps, keys = self.critic_noise, row_keys(batch.rollout)
        for row, row_steps in enumerate(steps):
            if not row_steps:
                continue
            draws = torch.rand(len(row_steps), self.critics,
                               generator=row_generator(self.seed, ctx.seed, ctx.step, "critics", keys[row]))
            ends = torch.tensor([s.end for s in row_steps])
            flag = eps + (1 - 2 * eps) * (1 - process[row, ends])
            out[row, ends] = (draws < flag[:, None]).float().mean(-1)
        return out

    # ------------------------------------------------------------------ prefix accuracies (VSRM)
    def _accuracies(self, ctx, batch, prefixes: list[tuple[int, str]]) -> list[float]:
        """Accuracy of ``samples`` continuations of each (row, prefix text). Each prefix is sampled
        on its own, seeded from (``seed``, run seed, step, the row's content key, the prefix): the
        draws do not depend on the other rows of the batch nor on the rank that holds the row."""
        from rlobj.rollout import left_pad_prompts

        if not prefixes:
            return []
        changes = {} if self.max_new_tokens is None else {"max_new_tokens": self.max_new_tokens}
        keys = row_keys(batch.rollout)
        origin, continuations, truncated, reasons = [], [], [], []
        for index, (row, text) in enumerate(prefixes):
            record = {**batch.records[row], "prompt": str(batch.records[row]["prompt"]) + text + self.force_text}
            seed = int(torch.randint(0, 2**62, (), generator=row_generator(
                self.seed, ctx.seed, ctx.step, "prefix", keys[row], text)))
            roll = ctx.sample([record], n=self.samples, salt=7_919 + self.seed, seed=seed, **changes).rollout
            ids, mask = roll.response_ids.cpu(), roll.response_mask.cpu().bool()
            for j in range(ids.shape[0]):
                origin.append(index)
                continuations.append(ids[j, mask[j]].tolist())
            truncated.append(roll.truncated.cpu())
            reasons.extend(roll.finish_reasons)
        pad = ctx.pad_token_id
        prompts, responses = [], []
        for index, cont in zip(origin, continuations):
            row, text = prefixes[index]
            prompts.append(ctx.encode(str(batch.records[row]["prompt"])) or [pad])
            responses.append(ctx.encode(text + self.force_text) + cont)
        prompt_ids, prompt_mask = left_pad_prompts(prompts, pad)
        width = max(1, max(len(r) for r in responses))
        response_ids = torch.full((len(responses), width), pad, dtype=torch.long)
        response_mask = torch.zeros(len(responses), width, dtype=torch.bool)
        for j, ids in enumerate(responses):
            response_ids[j, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            response_mask[j, :len(ids)] = True
        joined = RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                              response_mask=response_mask, logp_rollout=torch.zeros(response_ids.shape),
                              group_ids=torch.tensor(origin, dtype=torch.long), truncated=torch.cat(truncated),
                              finish_reasons=tuple(reasons))
        from rlobj.train.stages import Batch

        scored = ctx.score(Batch(rollout=joined, records=[batch.records[prefixes[i][0]] for i in origin]))
        correct = torch.tensor([float(s.reward > 0.5) for s in scored.scores])
        totals = torch.zeros(len(prefixes)).index_add_(0, torch.tensor(origin), correct)
        counts = torch.zeros(len(prefixes)).index_add_(0, torch.tensor(origin), torch.ones(len(origin)))
        return (totals / counts.clamp(min=1)).tolist()

    def accuracies(self, ctx, batch, steps, width) -> tuple[Tensor, Tensor]:
        step_given = _per_step(batch, "step_accuracy", steps, width)
        start_given = None
        if batch.scores and all("start_accuracy" in s.fields for s in batch.scores):
            start_given = batch.score_field("start_accuracy").float().cpu()
        group_ids = batch.rollout.group_ids.cpu().tolist()
        first_row: dict[int, int] = {}
        for row, gid in enumerate(group_ids):
            first_row.setdefault(gid, row)
        prefixes: list[tuple[int, str]] = []
        if start_given is None:
            prefixes += [(row, "") for row in first_row.values()]
        starts = len(prefixes)
        if step_given is None:
            prefixes += [(row, step.prefix) for row, row_steps in enumerate(steps) for step in row_steps]
        values = self._accuracies(ctx, batch, prefixes)
        if start_given is None:
            by_group = dict(zip(first_row, values[:starts]))
            start_given = torch.tensor([by_group[g] for g in group_ids], dtype=torch.float32)
        if step_given is None:
            step_given = torch.zeros(len(steps), width, dtype=torch.float32)
            found = iter(values[starts:])
            for row, row_steps in enumerate(steps):
                for step in row_steps:
                    step_given[row, step.end] = next(found)
        return step_given, start_given

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        width = batch.rollout.response_ids.shape[1]
        ends, steps, _ = split_steps(ctx, batch.rollout, self.delimiter)
        out: dict[str, Tensor] = {"extras:step_ends": ends}
        if self._wants("extras:process_rewards") or self._wants("extras:step_wrong_votes"):
            process = self.process_rewards(batch, steps, width)
            out["extras:process_rewards"] = process
            if self._wants("extras:step_wrong_votes"):
                out["extras:step_wrong_votes"] = self.wrong_votes(ctx, batch, steps, process)
        if self._wants("extras:step_accuracy") or self._wants("extras:start_accuracy"):
            out["extras:step_accuracy"], out["extras:start_accuracy"] = self.accuracies(ctx, batch, steps, width)
        return {k: v.to(device) for k, v in out.items()}


# --------------------------------------------------------------------------- THR / NTHR
@register_provider
class TokenInfluence(Provider):
    r"""``extras:token_influence`` (float32 ``"batch seq"``) for
    :class:`~rlobj.terms.advantages.token_credit.token_hidden_reward` (THR, arXiv 2510.03669; NTHR).

    NTHR's influence of token $(i,k)$ on the correct responses $P$ of its group, computed from
    the policy (the old policy: providers run before the update) as the paper defines it:

    $$s_{i,k} = \sum_{(j,l) \in P} \big(e_{j,l}^\top e_{i,k}\big)\,\big(h_{j,l}^\top h_{i,k}\big),
      \qquad e = \mathrm{onehot}(y) - \pi(\cdot \mid \text{context})$$

    ($h$: the final hidden state that predicts the token, $\pi$ at the sampling temperature),
    i.e. the inner product of the output layer's log-likelihood gradients
    $\nabla_W \log\pi = e\,h^\top$, summed over every response token of the group's correct
    rows (reward > ``threshold``, the term's). $e_{j}^\top e_{i} = [y_i = y_j] - \pi_i(y_j) -
    \pi_j(y_i) + \pi_i^\top\pi_j$ is evaluated without building $e$. Groups without a correct
    response get 0. Forwards run in micro-batch chunks without gradient; the values do not
    depend on the chunking. Cost: the next-token distributions of the batch are kept
    (``[tokens, vocab]``): meant for small vocabularies; a real-scale run supplies its own
    estimate (batch extras or a scorer field ``token_influence``, one value per token).

    Args:
        threshold: correct iff reward > threshold (None: the term's ``threshold``, else 0.5).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:token_influence",)

    def __init__(self, threshold: float | None = None):
        self.threshold = threshold

    def setup(self, terms):
        found = {float(t.threshold) for t in terms if "extras:token_influence" in t.slots_read()
                 and hasattr(t, "threshold")}
        if len(found) > 1:
            raise RlobjInputError(f"objective: terms reading extras['token_influence'] disagree on threshold: {sorted(found)}")
        if self.threshold is None:
            self.threshold = found.pop() if found else 0.5

    def batch(self, ctx, batch, inputs):
        from rlobj.train.forward import final_hidden_states

        rollout = batch.rollout
        mask = rollout.response_mask.bool()
        given = _per_step(batch, "token_influence", [[] for _ in range(len(rollout))], mask.shape[1])
        if given is not None:
            return {"extras:token_influence": given.to(mask.device)}
        policy = ctx.models.policy
        head = policy.get_output_embeddings()
        hidden_parts, prob_parts = [], []
        with torch.no_grad():
            for rows in ctx.models.chunks(len(rollout)):
                hidden = final_hidden_states(policy, rollout.prompt_ids[rows], rollout.prompt_mask[rows],
                                             rollout.response_ids[rows], rollout.response_mask[rows]).float()
                logits = hidden @ head.weight.float().T
                if getattr(head, "bias", None) is not None:
                    logits = logits + head.bias.float()
                hidden_parts.append(hidden)
                prob_parts.append(torch.softmax(logits / ctx.models.temperature, -1))
        hidden, probs = torch.cat(hidden_parts), torch.cat(prob_parts)
        tokens = rollout.response_ids
        correct = inputs["rewards"].detach() > self.threshold
        influence = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        group_ids = rollout.group_ids
        for gid in torch.unique(group_ids):
            rows = (group_ids == gid).nonzero().flatten()
            good = rows[correct[rows]]
            if good.numel() == 0:
                continue
            keep = mask[good]
            h_pos, p_pos, y_pos = hidden[good][keep], probs[good][keep], tokens[good][keep]
            for row in rows.tolist():
                valid = mask[row]
                if not bool(valid.any()):
                    continue
                h_i, p_i, y_i = hidden[row][valid], probs[row][valid], tokens[row][valid]
                errors = ((y_i[:, None] == y_pos[None, :]).float() - p_i[:, y_pos] - p_pos[:, y_i].T
                          + p_i @ p_pos.T)
                influence[row, valid] = (errors * (h_i @ h_pos.T)).sum(-1)
        return {"extras:token_influence": influence}
