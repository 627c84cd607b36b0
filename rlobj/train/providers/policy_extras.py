r"""Providers that run the policy on contexts other than the rollout's own: RLPR's reference-answer
log-probs, Self-Aligned Reward's unconditioned log-probs, LaSeR's self-verification probe and
Guide's hint-conditioned behaviour log-probs (with a sampler that draws hinted rows).

Every forward here is the trainer's :func:`~rlobj.train.forward.token_logprobs` at the sampling
temperature (``ctx.models.temperature``), so the values live on the same scale as ``logp_old``;
no-grad work runs in ``ctx.models.chunks`` and every value of a row depends only on that row.
A context that encodes to no token (an empty prompt) gets the pad id as its single start token:
a causal LM needs one position to predict the first scored token.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows, rows_of
from rlobj.train.forward import token_logprobs
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.stages import Batch, Sampler

__all__ = ["score_continuations", "RLPRAnswerLogprobs", "UnconditionedLogprobs", "SelfRewardProbe",
           "HintedContext", "GuidedSampler"]


def score_continuations(ctx, model, contexts: list[list[int]], targets: list[list[int]],
                        grad: bool = False) -> tuple[Tensor, Tensor]:
    r"""$\log\pi(\text{target}_t \mid \text{context}, \text{target}_{<t})$ of each row under ``model``.

    Returns ``(logp, mask)``, ``[rows, A]`` (float, 0 off the mask) and bool, ``A`` the longest
    target (at least 1). Without ``grad``: no gradient, in ``ctx.models.chunks``; with ``grad``:
    one forward in the caller's grad mode (a micro-batch).
    """
    device = next(model.parameters()).device
    pad = int(ctx.pad_token_id)
    prompts = [torch.tensor(list(c) or [pad], dtype=torch.long) for c in contexts]
    responses = [torch.tensor(list(t), dtype=torch.long) for t in targets]
    zeros = [torch.zeros(len(t)) for t in targets]
    rows = batch_from_rows(prompts, responses, zeros, [0] * len(prompts), [True] * len(prompts), pad, device)
    temperature = ctx.models.temperature

    def run(part):
        return token_logprobs(model, rows.prompt_ids[part], rows.prompt_mask[part], rows.response_ids[part],
                              rows.response_mask[part], temperature=temperature)[0]

    if grad:
        logp = run(slice(None))
    else:
        with torch.no_grad():
            logp = torch.cat([run(part) for part in ctx.models.chunks(len(prompts))])
    return logp, rows.response_mask


def _prompt_ids(rollout, row: int) -> list[int]:
    return rollout.prompt_ids[row][rollout.prompt_mask[row].bool()].tolist()


def _readers(terms, slot: str) -> tuple:
    return tuple(t for t in terms if slot in t.slots_read())


# --------------------------------------------------------------------------- RLPR
@register_provider
class RLPRAnswerLogprobs(Provider):
    r"""``extras:answer_logp`` / ``answer_mask`` / ``answer_prior`` for :class:`~rlobj.terms.rlpr_reward`
    (RLPR, Yu et al., arXiv 2506.18254).

    * ``answer_logp`` ``[batch, A]``: $\log\pi(y^*_t \mid x, z_i, y^*_{<t})$ of the reference answer
      $y^*$ (``record[answer_key]``, tokenized with ``ctx.encode``) under the current policy (the
      rollout policy; no grad), where $z_i$ is response $i$'s reasoning: its decoded text up to
      and including the first ``open_tag`` (the response's answer is replaced by $y^*$). A
      response without ``open_tag`` (or with ``open_tag=""``) is all reasoning: $y^*$ follows
      the whole response and ``open_tag``.
    * ``answer_mask`` ``[batch, A]`` bool: True on $y^*$'s tokens (right padding; a row with an
      empty answer has none).
    * ``answer_prior`` ``[batch]``: $r_A$ = :func:`~rlobj.terms.rewards.likelihood.answer_probability`
      of $y^*$ right after the prompt and ``open_tag`` (no reasoning), under the **initial**
      policy (``ctx.models.reference``, the policy at the first RL step), with the consuming
      term's ``aggregate``. It is computed once per (prompt, answer) and cached
      (``state_dict``), as the paper computes it once before training.

    The scores are the tiny policy's own probabilities, exactly RLPR's reward model (the policy
    itself); nothing is scripted. A scorer field ``answer_logp`` etc. is not read: a sampler or
    transform that attaches these extras wins.

    Args:
        answer_key: the record field with the reference answer.
        open_tag: text that opens the answer in a response (RLPR's template: ``<answer>``).
        aggregate: aggregation of the prior (default: the ``rlpr_reward`` term's).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:answer_logp", "extras:answer_mask", "extras:answer_prior")

    def __init__(self, answer_key: str = "answer", open_tag: str = "<answer>", aggregate: str | None = None):
        self.answer_key, self.open_tag, self.aggregate = answer_key, open_tag, aggregate
        self._prior: dict[tuple, float] = {}

    def setup(self, terms):
        readers = _readers(terms, "extras:answer_prior")
        if readers and all(getattr(t, "debias", True) is False for t in readers):
            self.needed = self.needed - {"extras:answer_prior"}  # rlpr_reward(debias=False) never reads it
        found = {str(t.aggregate) for t in readers if hasattr(t, "aggregate")}
        if len(found) > 1:
            raise RlobjInputError(f"objective: terms reading extras['answer_prior'] disagree on aggregate: {sorted(found)}")
        if self.aggregate is None:
            self.aggregate = found.pop() if found else "mean_prob"

    def _answer(self, batch: Batch, row: int) -> str:
        record = batch.records[row]
        if not isinstance(record, dict) or self.answer_key not in record:
            raise RlobjInputError(f"RLPRAnswerLogprobs: records[{row}] has no {self.answer_key!r} field (the reference "
                                  "answer RLPR scores); set answer_key")
        return str(record[self.answer_key])

    def reasoning(self, text: str) -> str:
        """The response text the answer is placed after (see the class docstring)."""
        if self.open_tag and self.open_tag in text:
            return text[:text.index(self.open_tag) + len(self.open_tag)]
        return text + self.open_tag

    def batch(self, ctx, batch, inputs):
        rollout = batch.rollout
        texts = ctx.decode(rollout)
        answers = [ctx.encode(self._answer(batch, b)) for b in range(len(batch))]
        prompts = [_prompt_ids(rollout, b) for b in range(len(batch))]
        out = {}
        if self.needed & {"extras:answer_logp", "extras:answer_mask"}:
            contexts = [p + ctx.encode(self.reasoning(t)) for p, t in zip(prompts, texts)]
            logp, mask = score_continuations(ctx, ctx.models.policy, contexts, answers)
            out["extras:answer_logp"], out["extras:answer_mask"] = logp.float(), mask.bool()
        if "extras:answer_prior" in self.needed:
            out["extras:answer_prior"] = self.prior(ctx, prompts, answers).to(rollout.response_ids.device)
        return out

    def prior(self, ctx, prompts: list[list[int]], answers: list[list[int]]) -> Tensor:
        """$r_A$ per row under the initial policy (cached per (prompt, answer) token ids)."""
        from rlobj.terms.rewards import answer_probability

        keys = [(tuple(p), tuple(a)) for p, a in zip(prompts, answers)]
        todo = sorted({k for k in keys if k not in self._prior})
        if todo:
            tag = ctx.encode(self.open_tag) if self.open_tag else []
            logp, mask = score_continuations(ctx, ctx.models.reference, [list(p) + tag for p, _ in todo],
                                             [list(a) for _, a in todo])
            values = answer_probability(logp.double(), mask.bool(), self.aggregate)
            self._prior.update({k: float(v) for k, v in zip(todo, values.tolist())})
        return torch.tensor([self._prior[k] for k in keys], dtype=torch.float32)

    def state_dict(self) -> dict:
        return {"prior": [[list(p), list(a), v] for (p, a), v in self._prior.items()]}

    def load_state_dict(self, state: dict) -> None:
        self._prior = {(tuple(p), tuple(a)): float(v) for p, a, v in state.get("prior", [])}


# --------------------------------------------------------------------------- Self-Aligned Reward
@register_provider
class UnconditionedLogprobs(Provider):
    r"""``extras:logp_unconditioned`` ``[batch, seq]`` for :class:`~rlobj.terms.self_aligned_reward`
    (Self-Aligned Reward, Han et al., arXiv 2509.05489): $\log\pi(y_t \mid c, y_{<t})$ of every
    response token under the current (rollout) policy with the question removed: the context
    $c$ is ``context`` alone (the paper's chat template with the system prompt and an empty
    user message; default empty, i.e. the pad id as the only start token). No grad, 0 on
    padding, same temperature as ``logp_old``.

    Args:
        context: the text that replaces the prompt (e.g. the chat template around an empty question).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:logp_unconditioned",)

    def __init__(self, context: str = ""):
        self.context = context

    def batch(self, ctx, batch, inputs):
        rollout = batch.rollout
        ids = ctx.encode(self.context) if self.context else []
        ids = torch.tensor(ids or [int(ctx.pad_token_id)], dtype=torch.long, device=rollout.response_ids.device)
        pieces = []
        with torch.no_grad():
            for part in ctx.models.chunks(len(rollout)):
                rows = rollout.response_ids[part].shape[0]
                prompt = ids.expand(rows, -1)
                logp, _ = token_logprobs(ctx.models.policy, prompt, torch.ones_like(prompt, dtype=torch.bool),
                                         rollout.response_ids[part], rollout.response_mask[part],
                                         temperature=ctx.models.temperature)
                pieces.append(logp.float())
        return {"extras:logp_unconditioned": torch.cat(pieces)}


# --------------------------------------------------------------------------- LaSeR
@register_provider
class SelfRewardProbe(Provider):
    r"""``extras:self_reward_logp`` ``[batch]`` for LaSeR's :class:`~rlobj.terms.self_reward_mse` and
    :class:`~rlobj.terms.self_reward_advantage` (Yang et al., arXiv 2510.14943):
    $\log\pi_\theta(z_c \mid x, y)$, the policy's log-prob of the fixed probe token $z_c$ placed one
    position after the response's last token (its EOS for a finished response), at the sampling
    temperature.

    * for batch-stage readers (``self_reward_advantage``): once per rollout batch, no grad;
    * for loss-stage readers (``self_reward_mse``): per micro-batch **with gradient** through
      ``ctx.models.policy`` (:meth:`micro`), so the auxiliary loss trains the policy.

    Truncated rows get a value too (the terms zero them). In a chain with both terms the update
    loop replaces the batch value by the micro-batch one, so the loss still gets the gradient.

    Args:
        token: $z_c$, an id or a one-token string (default: the pad id, a token the policy is
            never trained to emit; LaSeR uses a reserved special token).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:self_reward_logp",)

    def __init__(self, token: int | str | None = None):
        self.token = token
        self._batch_stage, self._loss_stage = False, True

    def setup(self, terms):
        readers = _readers(terms, "extras:self_reward_logp")
        self._batch_stage = any(t.stage == "batch" for t in readers)
        self._loss_stage = any(t.stage != "batch" for t in readers) or not readers

    def token_id(self, ctx) -> int:
        if self.token is None:
            return int(ctx.pad_token_id)
        if isinstance(self.token, int):
            return self.token
        ids = ctx.encode(self.token)
        if len(ids) != 1:
            raise RlobjInputError(f"SelfRewardProbe.token: {self.token!r} encodes to {len(ids)} tokens, expected one")
        return int(ids[0])

    def probe(self, ctx, rollout, rows) -> Tensor:
        """$\\log\\pi(z_c \\mid x, y)$ of ``rows`` in the caller's grad mode."""
        ids, mask = rollout.response_ids[rows], rollout.response_mask[rows].bool()
        lengths = mask.sum(-1)
        ids = torch.nn.functional.pad(ids, (0, 1), value=int(ctx.pad_token_id))
        mask = torch.nn.functional.pad(mask, (0, 1), value=False)
        at = lengths[:, None]
        ids = ids.scatter(1, at, self.token_id(ctx))
        mask = mask.scatter(1, at, True)
        logp, _ = token_logprobs(ctx.models.policy, rollout.prompt_ids[rows], rollout.prompt_mask[rows], ids, mask,
                                 temperature=ctx.models.temperature)
        return logp.gather(1, at).squeeze(1)

    def batch(self, ctx, batch, inputs):
        if not self._batch_stage:
            return {}
        rollout = batch.rollout
        index = torch.arange(len(rollout), device=rollout.response_ids.device)
        with torch.no_grad():
            value = torch.cat([self.probe(ctx, rollout, index[part]) for part in ctx.models.chunks(len(rollout))])
        return {"extras:self_reward_logp": value.float()}

    def micro(self, ctx, batch, rows, inputs):
        if not self._loss_stage:
            return {}
        return {"extras:self_reward_logp": self.probe(ctx, batch.rollout, rows)}


# --------------------------------------------------------------------------- Guide
def _hinted_text(record: dict, hint_key: str, template: str) -> str:
    return template.format(prompt=record["prompt"], hint=record[hint_key])


def _has_hint(record, hint_key: str) -> bool:
    return isinstance(record, dict) and bool(record.get(hint_key))


@register_provider
class HintedContext(Provider):
    r"""``extras:guided`` ``[batch]`` bool and ``extras:logp_old_hint`` ``[batch, seq]`` for Guide's
    :class:`~rlobj.terms.hint_clip_ratio` (Nath et al., arXiv 2506.13923).

    * ``guided``: the rows a sampler marked (``batch.extras["guided"]``, e.g. :class:`GuidedSampler`),
      else the rows whose record says ``record[flag_key]`` is true and holds a non-empty
      ``record[hint_key]``. No row is guided unless the sampler or the record says so.
    * ``logp_old_hint``: on guided rows, $\log\pi_\text{old}(y_t \mid x, h, y_{<t})$: the current
      (rollout) policy, no grad, on ``template.format(prompt=record["prompt"], hint=record[hint_key])``
      (the context the row was sampled in); other rows carry ``logp_old`` (the term ignores them).

    The rollout's own prompt of a guided row must be the prompt **without** the hint (the
    context the policy is trained for): :class:`GuidedSampler` builds such rows.

    Args:
        hint_key: record field with the hint.
        template: how the sampler put the hint into the prompt.
        flag_key: record field that marks a record's rows as sampled with the hint.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:guided", "extras:logp_old_hint")

    def __init__(self, hint_key: str = "hint", template: str = "{prompt}{hint}", flag_key: str = "guided"):
        self.hint_key, self.template, self.flag_key = hint_key, template, flag_key

    def guided(self, batch: Batch) -> Tensor:
        if "guided" in batch.extras:
            return batch.extras["guided"].bool()
        flags = [_has_hint(r, self.hint_key) and bool(r.get(self.flag_key, False)) for r in batch.records]
        return torch.tensor(flags, dtype=torch.bool, device=batch.rollout.response_ids.device)

    def batch(self, ctx, batch, inputs):
        rollout = batch.rollout
        guided = self.guided(batch)
        hinted = inputs["logp_old"].detach().float().clone()
        rows = guided.nonzero().flatten().tolist()
        for row in rows:
            if not _has_hint(batch.records[row], self.hint_key):
                raise RlobjInputError(f"HintedContext: guided row {row} has no {self.hint_key!r} in its record")
        if rows:
            contexts = [ctx.encode(_hinted_text(batch.records[r], self.hint_key, self.template)) for r in rows]
            targets = [rollout.response_ids[r][rollout.response_mask[r].bool()].tolist() for r in rows]
            logp, mask = score_continuations(ctx, ctx.models.policy, contexts, targets)
            width = min(logp.shape[1], hinted.shape[1])
            index = torch.tensor(rows, device=hinted.device)
            hinted[index, :width] = torch.where(mask[:, :width], logp[:, :width].float(), 0.0).to(hinted.device)
        return {"extras:guided": guided, "extras:logp_old_hint": hinted}


class GuidedSampler(Sampler):
    r"""Guide's sampler: for every record with a hint, ``round(fraction * n)`` of its ``n``
    responses are sampled with the hint in the prompt (``template``), the rest without.

    The hinted rows keep the record's group, carry the prompt **without** the hint (the policy is
    trained for that context) and are marked in ``batch.extras["guided"]``; their
    ``logp_rollout`` is the hinted distribution's, so the batch is ``on_policy=False`` (the
    trainer recomputes ``logp_old`` without the hint; :class:`HintedContext` computes
    ``logp_old_hint``). Records without a hint get ``n`` plain rows. Guide itself adds hinted
    rollouts only for prompts whose plain rollouts all failed; this sampler mixes a fixed
    fraction, which keeps one sampling pass per step (UNVERIFIED simplification, documented).

    YAML: ``sampler: {rlobj.train.providers.policy_extras.GuidedSampler: {fraction: 0.25}}``.

    Args:
        fraction: share of each hinted record's group sampled with the hint, in [0, 1].
        hint_key, template: as :class:`HintedContext`.
    """

    def __init__(self, fraction: float = 0.25, hint_key: str = "hint", template: str = "{prompt}{hint}"):
        if not 0.0 <= fraction <= 1.0:
            raise RlobjInputError(f"GuidedSampler.fraction: expected a value in [0, 1], got {fraction!r}")
        self.fraction, self.hint_key, self.template = float(fraction), hint_key, template

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        from rlobj.train.samplers import _prompts, _sampling

        plain = _prompts(ctx, records)
        k = int(round(self.fraction * n))
        hinted = [i for i, r in enumerate(records) if k and _has_hint(r, self.hint_key)]
        groups = {i: n for i in range(len(records))} | {i: n - k for i in hinted}
        rows: list[tuple] = []  # (record index, response ids, logp, finished, guided)

        def draw(indices, prompts, count, stream):
            if not indices or count == 0:
                return
            sampling = _sampling(ctx, salt * 7 + stream, changes)
            for _, r, lp, g, f in rows_of(ctx.engine.generate(prompts, n=count, sampling=sampling)):
                rows.append((indices[g], r, lp, f, stream == 2))

        for count in sorted(set(groups.values())):
            same = [i for i in range(len(records)) if groups[i] == count]
            draw(same, [plain[i] for i in same], count, 0 if count == n else 1)
        draw(hinted, [ctx.encode(_hinted_text(records[i], self.hint_key, self.template)) for i in hinted], k, 2)
        rows.sort(key=lambda row: row[0])  # stable: each record's rows together, plain first
        device = next(ctx.models.policy.parameters()).device
        rollout = batch_from_rows([torch.tensor(plain[i]) for i, *_ in rows], [r[1] for r in rows],
                                  [r[2] for r in rows], [r[0] for r in rows], [r[3] for r in rows],
                                  int(ctx.pad_token_id), device)
        guided = torch.tensor([r[4] for r in rows], dtype=torch.bool, device=rollout.response_ids.device)
        metrics = {"guide/sampled_fraction": float(guided.float().mean()) if len(rows) else 0.0}
        return Batch(rollout=rollout, records=[records[r[0]] for r in rows], extras={"guided": guided},
                     metrics=metrics, on_policy=not bool(guided.any()))
