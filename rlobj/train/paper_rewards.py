r"""Rewards from models of the seed papers, on the scorer stage.

Judge-shaped methods are the generic judges of :mod:`rlobj.train.judges` with the paper's
template and aggregation (:class:`RLBFFJudge`, :class:`PerceptionJudge`, :class:`NextSegmentJudge`,
:class:`WritingZeroJudge`, :class:`RLMTReward`); methods with their own arithmetic are scorers here:
:class:`R3Reward` (DRO's reasoning-reflection reward from the policy's own likelihood of the
reference), :class:`FlowReward` (RLFR's velocity deviation in a flow fitted on hidden states of
reference responses), :class:`CaptionUtility` (CapRL's second-stage question answering).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.train.flow_reward import FlowReward, VelocityField, velocity_deviation
from rlobj.train.judges import PairwiseLLMJudge, PrincipleJudge, _JudgeScorer, fill, render_prompt
from rlobj.train.model_scorers import SequenceClassifierRM
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["RLBFFJudge", "PerceptionJudge", "NextSegmentJudge", "WritingZeroJudge", "RLMTReward",
           "R3Reward", "r3_rewards", "r3_token_weights", "r3_propagation", "r3_reflective_tokens", "FlowReward", "VelocityField", "velocity_deviation", "CaptionUtility"]

RLBFF_TEMPLATE = ("Question: {prompt}\nResponse: {response}\nPrinciple: {principle}\n"
                  "Does the response satisfy the principle? Answer Yes or No: ")
PERCEPTION_TEMPLATE = ("Response: {response}\nVisual fact: {principle}\n"
                       "Is the response consistent with the visual fact? Answer Yes or No: ")
NEXT_SEGMENT_TEMPLATE = ("Context: {prompt}\nPredicted next segment: {response}\nReal next segment: {principle}\n"
                         "Does the prediction carry the same meaning as the real next segment? Answer Yes or No: ")


class RLBFFJudge(PrincipleJudge):
    r"""RLBFF's reward: binary principle judgements ("RLBFF: Binary
    Flexible Feedback to bridge between Human Feedback & Verifiable Rewards", 2025).

    The reward model answers, as an entailment task, whether the response satisfies each
    principle $c_k$ (``principles`` or the row's ``record[principles_key]``, e.g. "accuracy of
    information"); the reward is the mean probability of Yes, $r = \frac1K\sum_k p(\text{Yes}\mid
    x, y, c_k)$ (``binary=True``: the mean of the binary verdicts $\mathbb 1[p_k > 1/2]$). Same
    arguments as :class:`~rlobj.train.judges.PrincipleJudge`.
    """

    def __init__(self, model: str, principles: Sequence[str] | None = None, principles_key: str | None = None,
                 template: str = RLBFF_TEMPLATE, binary: bool = False, dtype: str = "float32",
                 chat_template: bool = True, name: str | None = "rlbff", batch_size: int = 16,
                 timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, principles=principles, principles_key=principles_key, template=template,
                         binary=binary, dtype=dtype, chat_template=chat_template, name=name,
                         batch_size=batch_size, timeout=timeout, concurrency=concurrency)


class PerceptionJudge(PrincipleJudge):
    r"""Perception-R1's visual perception reward ("Advancing Multimodal Reasoning Capabilities of
    Multimodal Large Language Models via Visual Perception Reward", 2025).

    Textual visual annotations of each problem (``record[annotations_key]``, collected from CoT
    trajectories) are the references; a judging LLM checks the consistency of the response with
    each annotation $a_k$, and the perception reward is the fraction judged consistent,
    $r = \frac1K \sum_k \mathbb 1[p(\text{Yes}\mid y, a_k) > 1/2]$ (``binary=False``: the mean
    probability). Add the answer-accuracy and format rewards with
    :class:`~rlobj.train.scorers.RewardFunctions`.
    """

    def __init__(self, model: str, annotations_key: str = "visual_annotations", template: str = PERCEPTION_TEMPLATE,
                 binary: bool = True, dtype: str = "float32", chat_template: bool = True,
                 name: str | None = "perception", batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, principles_key=annotations_key, template=template, binary=binary, dtype=dtype,
                         chat_template=chat_template, name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)


class NextSegmentJudge(PrincipleJudge):
    r"""RLPT's next-segment reasoning reward ("Reinforcement Learning on Pre-Training Data",
    2025).

    A text is cut into segments; the policy sees the context $s_{<i}$ and predicts the next
    segment $\hat s_i$; a generative reward model judges whether $\hat s_i$ is semantically
    consistent with the real $s_i$ (``record[reference_key]``):
    $r = \mathbb 1[p(\text{Yes}\mid s_{<i}, \hat s_i, s_i) > 1/2]$ (``binary=False``: the probability).
    """

    def __init__(self, model: str, reference_key: str = "completion", template: str = NEXT_SEGMENT_TEMPLATE,
                 binary: bool = True, dtype: str = "float32", chat_template: bool = True,
                 name: str | None = "next_segment", batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, principles=["<reference>"], template=template, binary=binary, dtype=dtype,
                         chat_template=chat_template, name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        self.reference_key = reference_key

    def row_principles(self, record: dict) -> list[str]:
        if self.reference_key not in record:
            raise RlobjInputError(f"NextSegmentJudge.reference_key: the record has no key {self.reference_key!r}")
        return [str(record[self.reference_key])]


class WritingZeroJudge(PairwiseLLMJudge):
    r"""Writing-Zero's pairwise generative reward for BRPO (Jia et al. 2025, arXiv 2506.00103).

    A response drawn from each group is the temporary reference $y_{\text{ref}}$; every other
    response is compared with it by the pairwise judge in both orders,
    $r_i = \tfrac12(p_A(y_i, y_{\text{ref}}) + p_B(y_{\text{ref}}, y_i))$, and the verdicts
    (``pairwise_reference``, ``pairwise_wins``) feed
    :class:`~rlobj.terms.advantages.comparisons.brpo_advantage` through the
    :class:`~rlobj.train.providers.scores.PairwiseJudge` provider. It is
    :class:`~rlobj.train.judges.PairwiseLLMJudge` with ``reference="group"``.
    """

    def __init__(self, model: str, verdict: str = "tokens", engine: str = "hf", dtype: str = "float32",
                 chat_template: bool = True, max_new_tokens: int = 8, seed: int = 0,
                 name: str | None = "writing_zero", batch_size: int = 16, timeout: float | None = None, concurrency: int = 1, **kwargs):
        super().__init__(model, reference="group", verdict=verdict, engine=engine, dtype=dtype,
                         chat_template=chat_template, max_new_tokens=max_new_tokens, seed=seed, name=name,
                         batch_size=batch_size, timeout=timeout, concurrency=concurrency, **kwargs)


class RLMTReward(SequenceClassifierRM):
    r"""RLMT's reward ("Language Models that Think, Chat Better", 2025).

    The policy writes ``<think>...</think>`` then its answer; a preference reward model
    (Skywork-Reward-V2 in the paper) scores only the answer, $r = f_\phi(x, y_{\text{answer}})$.
    A response without ``think_marker`` gets no reward (status ``"invalid"``).
    """

    def __init__(self, model: str, think_marker: str = "</think>", dtype: str = "bfloat16",
                 chat_template: bool = True, max_length: int = 2048, name: str | None = "rlmt",
                 batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, dtype=dtype, chat_template=chat_template, max_length=max_length,
                         think_marker=think_marker, name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)


# ----------------------------------------------------------------------------- DRO / R3
def r3_rewards(logp: Tensor, mask: Tensor, group_ids: Tensor, baseline_logp: Tensor | None = None,
               propagation_gamma: float | None = None, reflective_tokens: int = 3) -> Tensor:
    r"""DRO's Reasoning Reflection Reward R3 from the reference tokens' log-probabilities.

    Xu et al. 2025, arXiv 2506.13351 v1, "Direct Reasoning Optimization", section 4.1.3 (the
    equations there are unnumbered). With $\ell_{ij} = \log\pi(y_j \mid q, \hat c_i, y_{<j})$ the
    log-probability of reference token $j$ after the $i$-th sampled reasoning of a group and
    $\sigma_j$ its standard deviation over the group's reasonings (population, $1/G$), the paper
    defines

    $$ R3_i = \sum_{j=1}^{|y|} w_\Delta(\sigma_j)\, \ell_{ij} $$

    and, in its efficient correction of the certainty that earlier reference tokens lend to later
    ones, subtracts the log-probabilities under a masked reasoning,
    $b_j = \log\pi(y_j \mid q, c_{\text{masked}}, y_{<j})$ (``baseline_logp``):

    $$ R3_i = \sum_{j=1}^{|y|} w_\Delta(\sigma_j)\,\bigl[\ell_{ij} - b_j\bigr]. $$

    The paper only says that $w_\Delta$ "assigns greater weight to tokens with higher standard
    deviation"; it gives no formula, normalisation or temperature. rlobj's choice is the share
    $w_\Delta(\sigma_j) = \sigma_j / \sum_k \sigma_k$ (uniform $1/|y|$ when no token varies).
    $\sigma_j$ is taken over $\ell_{ij}$; a baseline shared by the group (reasoning removed, as
    :class:`R3Reward` computes it) shifts every row of the group by the same amount, so it leaves
    group-normalised advantages unchanged and matters only where rewards are compared across
    groups. The paper's other correction, the decaying propagation factor started at
    reasoning-reflective tokens, is applied with ``propagation_gamma`` (:func:`r3_propagation`):
    $\ell_{ij}$ becomes $\ell_{ij} + \sum_{k<j,\,k \in K} \log P^{prop}_{ik}(j)$, the weights
    $w_\Delta$ still come from the uncorrected $\ell_{ij}$.

    Args:
        logp: ``[batch, L]`` reference-token log-probs (0 where ``mask`` is False).
        mask: ``[batch, L]`` True on reference tokens (rows of one group share the reference).
        group_ids: ``[batch]`` group of each row.
        baseline_logp: optional ``[batch, L]`` log-probs of the same reference tokens under the
            masked reasoning, $b_j$ above.
        propagation_gamma: $\gamma > 0$ of the propagation factor; None (default) leaves it out.
        reflective_tokens: with ``propagation_gamma``, the number of reasoning-reflective tokens
            per group (:func:`r3_propagation`).

    Example:
        >>> import torch
        >>> r3_rewards(torch.tensor([[-1., -2.], [-1., -4.]]), torch.ones(2, 2, dtype=torch.bool),
        ...            torch.tensor([0, 0])).tolist()
        [-2.0, -4.0]
    """
    if baseline_logp is not None and baseline_logp.shape != logp.shape:
        raise RlobjInputError(f"r3_rewards: baseline_logp has shape {tuple(baseline_logp.shape)}, "
                              f"logp {tuple(logp.shape)}")
    out = torch.zeros(logp.shape[0], dtype=logp.dtype)
    for group in torch.unique(group_ids):
        rows = (group_ids == group).nonzero().flatten()
        values, valid = logp[rows], mask[rows].bool()
        if not bool((valid == valid[0]).all()):
            raise RlobjInputError("r3_rewards: rows of one group must share the reference tokens (equal masks)")
        weights = r3_token_weights(values, valid[0])
        if propagation_gamma is not None:
            values = r3_propagation(values, valid[0], propagation_gamma, reflective_tokens)
        if baseline_logp is not None:
            values = values - baseline_logp[rows]
        out[rows] = (values * valid * weights).sum(-1)
    return out


def r3_reflective_tokens(values: Tensor, valid: Tensor, count: int) -> list[int]:
    r"""Positions of one group's reasoning-reflective tokens: the ``count`` reference tokens with
    the largest $\sigma_j > 0$ (ties: the earlier position), in position order.

    DRO calls reasoning-reflective the tokens whose log-probability varies most across the
    group's reasonings (its Fig. 1 marks three) but gives no threshold; a fixed count per group
    is rlobj's choice."""
    sigma = values.std(dim=0, unbiased=False) * valid
    order = sorted(range(sigma.numel()), key=lambda j: (-float(sigma[j]), j))
    return sorted(j for j in order[:count] if float(sigma[j]) > 0)


def r3_propagation(values: Tensor, valid: Tensor, gamma: float, count: int = 3) -> Tensor:
    r"""DRO's controlled self-certainty propagation (arXiv 2506.13351 v1, section 4.1.3).

    For each reasoning-reflective token $k$ (:func:`r3_reflective_tokens`) and each later
    reference token $j$ at distance $d = j - k$, the propagation factor is

    $$ P^{prop}_{ik}(j) = p_{ik} + (1 - p_{ik})\,(1 - e^{-\gamma d}), \qquad p_{ik} = e^{\ell_{ik}}, $$

    the probability the row's reasoning gave token $k$, decaying to 1 with the distance. The
    corrected log-probability is $\log\bigl(\pi(y_j \mid \dots) \prod_{k<j} P^{prop}_{ik}(j)\bigr)
    = \ell_{ij} + \sum_{k<j} \log P^{prop}_{ik}(j)$: right after a reflective token the reasoning
    found unlikely, the certainty the reference itself lends to the next tokens is taken back.

    Args:
        values: ``[G, L]`` one group's reference-token log-probs.
        valid: ``[L]`` True on reference tokens.
        gamma: decay rate $\gamma > 0$.
        count: reasoning-reflective tokens per group, >= 1.

    Example:
        >>> import torch
        >>> out = r3_propagation(torch.tensor([[-2.0, -0.1], [-0.5, -0.1]]), torch.tensor([True, True]),
        ...                      gamma=0.6931471805599453, count=1)
        >>> round(float(out[0, 1]), 4)  # -0.1 + log(e^-2 + (1 - e^-2) / 2)
        -0.6662
    """
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise RlobjInputError(f"r3 propagation_gamma: expected a number > 0, got {gamma!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise RlobjInputError(f"r3 reflective_tokens: expected an int >= 1, got {count!r}")
    out = values.clone()
    positions = torch.arange(values.shape[1], dtype=values.dtype)
    for k in r3_reflective_tokens(values, valid, count):
        later = (positions > k) & valid
        decay = 1.0 - torch.exp(-float(gamma) * (positions - k))
        p = values[:, k:k + 1].exp()
        factor = p + (1.0 - p) * decay
        out = out + torch.where(later, torch.log(factor), torch.zeros((), dtype=values.dtype))
    return out


def r3_token_weights(values: Tensor, valid: Tensor) -> Tensor:
    r"""rlobj's $w_\Delta(\sigma_j) = \sigma_j / \sum_k \sigma_k$ for one group (``values``:
    ``[G, L]`` log-probs, ``valid``: ``[L]``); uniform over ``valid`` when no token varies."""
    sigma = values.std(dim=0, unbiased=False) * valid
    if float(sigma.sum()) > 0:
        return sigma / sigma.sum()
    return valid.to(values.dtype) / valid.sum()


class R3Reward(Scorer):
    r"""DRO's R3 reward (:func:`r3_rewards`) computed with the policy being trained.

    For each row the policy reads ``prompt + response + answer_prefix`` and the log-probability
    of every token of the reference outcome ``record[reference_key]`` is taken (no gradient);
    :func:`r3_rewards` turns the group's log-probs into the reward. The row's fields hold
    ``r3_logp_mean`` (the unweighted mean log-prob, the baseline R3 improves on).

    With ``masked_baseline=True`` the log-probs of the reference after ``prompt + answer_prefix``
    alone (the reasoning masked out) are the baseline $b_j$ of :func:`r3_rewards` (DRO's
    efficient correction for certainty propagated by earlier reference tokens, section 4.1.3).

    With ``propagation_gamma`` the log-probs get DRO's propagation factor (:func:`r3_propagation`)
    at the group's ``reflective_tokens`` most varying reference tokens.

    Each row also carries what DRO's data filter (section 4.2.2,
    :class:`~rlobj.train.transforms.r3.R3Filter`) reads: ``r3_ref_logp`` (the reference tokens'
    log-probs, a list) and ``r3_ref_ranks`` (each reference token's rank in the policy's
    next-token distribution, 1 = the most likely: one plus the number of tokens with a larger
    logit).

    Args:
        reference_key: the record key of the reference outcome.
        answer_prefix: text between the response (the reasoning) and the reference.
        masked_baseline: subtract the log-probs under the masked reasoning.
        propagation_gamma: decay $\gamma$ of the propagation factor; None leaves it out.
        reflective_tokens: reasoning-reflective tokens per group for the propagation factor.
    """

    def __init__(self, reference_key: str = "completion", answer_prefix: str = "", masked_baseline: bool = False,
                 propagation_gamma: float | None = None, reflective_tokens: int = 3):
        self.reference_key, self.answer_prefix = reference_key, answer_prefix
        self.masked_baseline = bool(masked_baseline)
        if propagation_gamma is not None:  # checked here, not at the first step
            r3_propagation(torch.zeros(1, 1), torch.ones(1, dtype=torch.bool), propagation_gamma, reflective_tokens)
        self.propagation_gamma, self.reflective_tokens = propagation_gamma, reflective_tokens
        self.name = "r3"

    @torch.no_grad()
    def __call__(self, ctx, batch: Batch) -> list[Score]:
        rollout = batch.rollout
        contexts, masked, references = [], [], []
        for b, record in enumerate(batch.records):
            if self.reference_key not in record:
                raise RlobjInputError(f"R3Reward.reference_key: record {b} has no key {self.reference_key!r}")
            prompt = rollout.prompt_ids[b][rollout.prompt_mask[b].bool()].tolist()
            response = rollout.response_ids[b][rollout.response_mask[b].bool()].tolist()
            if response and response[-1] in tuple(getattr(ctx.engine, "eos_token_ids", ())):
                response = response[:-1]  # the reasoning ends where the reference begins
            contexts.append(prompt + response + list(ctx.encode(self.answer_prefix)))
            masked.append(prompt + list(ctx.encode(self.answer_prefix)))
            references.append(list(ctx.encode(str(record[self.reference_key]))))
        if any(not r for r in references):
            raise RlobjInputError("R3Reward: a reference outcome encodes to no token")
        width = max(len(r) for r in references)
        ref_ids = torch.full((len(references), width), ctx.pad_token_id, dtype=torch.long)
        ref_mask = torch.zeros(len(references), width, dtype=torch.bool)
        for b, ref in enumerate(references):
            ref_ids[b, :len(ref)] = torch.tensor(ref)
            ref_mask[b, :len(ref)] = True
        logp, ranks = _reference_logprobs(ctx, contexts, ref_ids, ref_mask)
        baseline = _reference_logprobs(ctx, masked, ref_ids, ref_mask)[0] if self.masked_baseline else None
        rewards = r3_rewards(logp, ref_mask, rollout.group_ids.cpu(), baseline_logp=baseline,
                             propagation_gamma=self.propagation_gamma, reflective_tokens=self.reflective_tokens)
        mean = (logp.sum(-1) / ref_mask.sum(-1)).tolist()
        batch.metrics["r3/mean"] = float(rewards.mean())
        return [Score(reward=float(rewards[b]), fields={
            "r3_logp_mean": mean[b], "r3_ref_logp": logp[b][ref_mask[b]].tolist(),
            "r3_ref_ranks": ranks[b][ref_mask[b]].tolist()}) for b in range(len(mean))]


@torch.no_grad()
def _reference_logprobs(ctx, contexts: list[list[int]], ref_ids: Tensor, ref_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Policy log-probs (float32, CPU, eval mode) of ``ref_ids`` after each context, and their
    ranks (1 + the number of vocabulary tokens with a larger logit; 0 off the mask)."""
    from rlobj.rollout import left_pad_prompts
    from rlobj.rollout.logprobs import response_logits

    policy = ctx.models.policy
    device = next(policy.parameters()).device
    prompt_ids, prompt_mask = left_pad_prompts(contexts, ctx.pad_token_id, int(policy.config.vocab_size))
    was_training = policy.training
    policy.eval()
    try:
        logits = response_logits(policy, prompt_ids.to(device), prompt_mask.to(device), ref_ids.to(device),
                                 ref_mask.to(device)).float().cpu()
    finally:
        policy.train(was_training)
    target = logits.gather(-1, ref_ids.unsqueeze(-1))
    logp = torch.where(ref_mask, (target.squeeze(-1) - torch.logsumexp(logits, dim=-1)), torch.zeros(()))
    ranks = torch.where(ref_mask, 1 + (logits > target).sum(-1), torch.zeros((), dtype=torch.long))
    return logp, ranks


# ----------------------------------------------------------------------------- RLFR
# RLFR's flow reward lives in rlobj.train.flow_reward (imported above, kept importable from here).


# ----------------------------------------------------------------------------- CapRL
CAPTION_TEMPLATE = "Description: {response}\nQuestion: {question}\n{options}\nAnswer: "


class CaptionUtility(_JudgeScorer):
    r"""CapRL's two-stage caption utility ("CapRL: Stimulating Dense Image Caption Capabilities
    via Reinforcement Learning", 2025; code: github.com/InternLM/CapRL).

    Stage 1 is the policy's caption $c$; stage 2 asks a separate, vision-free LLM each
    multiple-choice question $q_k$ of the row (``record[questions_key]``: a list of
    ``{"question", "options": [...], "answer": <index>}``) with only the caption as context. The
    LLM's choice is the option letter with the highest next-token probability; the reward is the
    accuracy, $r = \frac1K \sum_k \mathbb 1[\hat a_k = a_k]$.

    Args:
        model, dtype, chat_template: the answering LLM (:class:`~rlobj.train.judges.JudgeModel`).
        questions_key: the record key of the questions.
        template: the answering prompt (``{response}`` the caption, ``{question}``, ``{options}``).
    """

    def __init__(self, model: str, questions_key: str = "questions", template: str = CAPTION_TEMPLATE,
                 dtype: str = "float32", chat_template: bool = True, name: str | None = "caption_utility",
                 batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, "hf", dtype, chat_template, name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        self.questions_key, self.template = questions_key, template
        self.last_choices: list[list[int]] = []

    def score_rows(self, prompts, completions, records):
        judge = self.ready()
        out, choices_per_row = [], []
        for p, caption, record in zip(prompts, completions, records):
            questions = record.get(self.questions_key)
            if not isinstance(questions, list) or not questions:
                raise RlobjInputError(f"CaptionUtility.questions_key: record[{self.questions_key!r}] is "
                                      f"{questions!r}; expected a non-empty list of questions")
            correct, chosen = 0, []
            for q in questions:
                letters = [chr(ord("A") + i) for i in range(len(q["options"]))]
                options = "\n".join(f"{letter}. {o}" for letter, o in zip(letters, q["options"]))
                text = fill(self.template, record, prompt=render_prompt(p), response=caption,
                            question=q["question"], options=options)
                pick = int(judge.choice_probs([text], letters)[0].argmax())
                chosen.append(pick)
                correct += pick == int(q["answer"])
            choices_per_row.append(chosen)
            out.append(correct / len(questions))
        self.last_choices = choices_per_row
        return out
