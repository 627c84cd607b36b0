r"""Generative judges as scorers: pointwise, pairwise (position swap), principle list, thinking.

A judge is a causal language model asked about each response through a prompt ``template``.
It runs through any rlobj engine (:class:`~rlobj.rollout.HFEngine` on the trainer's device, or
:class:`~rlobj.rollout.VLLMEngine`) for generated verdicts; verdicts read from next-token
probabilities (``Yes``/``No``, ``A``/``B``) come from one forward of the HF model, or from vLLM's
prompt log-probabilities. Templates
are Python format strings; ``{prompt}`` and ``{response}`` are always there, and every field of
the dataset record can be named (``{answer}``, ``{completion}``, ...). A verdict that cannot be
read gives status ``"invalid"`` and no reward (:class:`~rlobj.train.model_scorers.ModelScorer`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.model_scorers import DTYPES, ModelScorer, _check_dtype, load_tokenizer

__all__ = ["JudgeModel", "PointwiseJudge", "PairwiseLLMJudge", "PrincipleJudge", "ThinkingJudge",
           "POINTWISE_TEMPLATE", "PAIRWISE_TEMPLATE", "PRINCIPLE_TEMPLATE"]

POINTWISE_TEMPLATE = ("Rate the response to the question from 0 to 10.\nQuestion: {prompt}\n"
                      "Response: {response}\nScore: ")
PAIRWISE_TEMPLATE = ("Which response answers the question better?\nQuestion: {prompt}\n"
                     "[A] {first}\n[B] {second}\nBetter: ")
PRINCIPLE_TEMPLATE = ("Question: {prompt}\nResponse: {response}\n"
                      "Does the response satisfy the principle: {principle}? Answer Yes or No: ")


def render_prompt(prompt) -> str:
    """A record's prompt as judge text (a message list becomes ``role: content`` lines)."""
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)
    return str(prompt)


def fill(template: str, record: dict, **fields) -> str:
    """``template`` with the record's fields and ``fields`` (which win); a missing field is an error."""
    values = {k: v for k, v in record.items() if isinstance(k, str)}
    values.update(fields)
    try:
        return template.format_map(values)
    except KeyError as error:
        raise RlobjInputError(f"judge template: field {error} is neither a template field nor a record key "
                              f"(record keys: {sorted(values)})") from error


class JudgeModel:
    """A judge language model and its tokenizer, loaded on first use.

    Args:
        model: a local model directory (or a hub id in the local cache) of a causal LM.
        engine: ``"hf"`` (an :class:`~rlobj.rollout.HFEngine` on the trainer's device) or ``"vllm"``
            (a :class:`~rlobj.rollout.VLLMEngine`; verdicts from token probabilities come from its
            prompt log-probabilities).
        dtype: parameter dtype.
        chat_template: wrap each judge prompt as a user message in the judge tokenizer's chat
            template (with the generation prompt) when it has one.
        max_new_tokens: verdict budget in tokens.
        temperature: 0 decodes greedily (the default), else samples at this temperature.
        engine_args: keyword arguments of the engine class.
    """

    def __init__(self, model: str, engine: str = "hf", dtype: str = "float32", chat_template: bool = True,
                 max_new_tokens: int = 16, temperature: float = 0.0, engine_args: dict | None = None):
        if not isinstance(model, str) or not model:
            raise RlobjInputError(f"judge.model: expected a model directory, got {model!r}")
        if engine not in ("hf", "vllm"):
            raise RlobjInputError(f"judge.engine: expected 'hf' or 'vllm', got {engine!r}")
        _check_dtype(dtype, "judge")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise RlobjInputError(f"judge.max_new_tokens: expected an int >= 1, got {max_new_tokens!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise RlobjInputError(f"judge.temperature: expected a number >= 0, got {temperature!r}")
        self.path, self.engine_kind, self.dtype = model, engine, dtype
        self.chat_template, self.max_new_tokens, self.temperature = chat_template, max_new_tokens, float(temperature)
        self.engine_args = dict(engine_args or {})
        self.tokenizer = None
        self.model = None
        self.engine = None
        self.calls = 0

    def load(self, device: torch.device) -> None:
        if self.tokenizer is not None:
            return
        self.tokenizer = load_tokenizer(self.path, "judge")
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        if self.engine_kind == "vllm":
            from rlobj.rollout import VLLMEngine

            self.engine = VLLMEngine(self.path, eos_token_id=eos, pad_token_id=pad, dtype=self.dtype,
                                     **self.engine_args)
            return
        from transformers import AutoModelForCausalLM

        from rlobj.rollout import HFEngine

        try:
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=DTYPES[self.dtype])
        except (OSError, ValueError) as error:
            raise RlobjInputError(f"judge.model: cannot load {self.path!r} ({error})") from error
        self.model = model.to(device).eval().requires_grad_(False)
        self.engine = HFEngine(self.model, eos_token_id=eos, pad_token_id=pad, **self.engine_args)

    def text(self, prompt: str) -> str:
        """The judge's input for a filled template (through the chat template when asked and present)."""
        if self.chat_template and getattr(self.tokenizer, "chat_template", None) is not None:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
        return prompt

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None, raw: bool = False) -> list[str]:
        """Decoded verdicts for filled templates (``raw``: no chat template, the text continues as is)."""
        from rlobj.rollout import SamplingConfig

        self.calls += 1
        ids = [self.encode(p if raw else self.text(p)) or [self.tokenizer.eos_token_id] for p in prompts]
        sampling = SamplingConfig(max_new_tokens=max_new_tokens or self.max_new_tokens,
                                  greedy=self.temperature == 0.0, temperature=self.temperature or 1.0,
                                  seed=self.calls)
        rollout = self.engine.generate(ids, n=1, sampling=sampling)
        return [self.tokenizer.decode([t for t, m in zip(row, mask) if m], skip_special_tokens=True)
                for row, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist())]

    def choice_ids(self, choices: Sequence[str]) -> list[int]:
        """The first token of each choice string; choices must start with distinct tokens."""
        ids = []
        for choice in choices:
            tokens = self.encode(choice)
            if not tokens:
                raise RlobjInputError(f"judge choice {choice!r} encodes to no token")
            ids.append(tokens[0])
        if len(set(ids)) != len(ids):
            raise RlobjInputError(f"judge choices {list(choices)} do not start with distinct tokens ({ids})")
        return ids

    @torch.no_grad()
    def choice_probs(self, prompts: Sequence[str], choices: Sequence[str]) -> torch.Tensor:
        r"""``[len(prompts), len(choices)]``: next-token probabilities of the choices' first tokens,
        renormalised over the choices, $p_c = e^{z_c} / \sum_{c'} e^{z_{c'}}$.

        With engine ``hf`` from one forward of the model (its last logits); with engine ``vllm``
        from vLLM's prompt log-probabilities: each prompt is sent once per choice with the choice's
        token appended, and ``prompt_logprobs`` gives $\log p(c \mid \text{prompt})$ (raw, at
        temperature 1), which renormalised over the choices is the same $p_c$."""
        self.calls += 1
        wanted = self.choice_ids(choices)
        ids = [self.encode(self.text(p)) or [self.tokenizer.eos_token_id] for p in prompts]
        if self.engine_kind == "vllm":
            return self._vllm_choice_probs(ids, wanted)
        from rlobj.rollout.logprobs import next_token_logits

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        logits = next_token_logits(self.model, ids, pad, int(self.model.config.vocab_size))
        device = logits.device
        return torch.softmax(logits[:, torch.tensor(wanted, device=device)], dim=-1).cpu()

    def _vllm_choice_probs(self, ids: list[list[int]], wanted: list[int]) -> torch.Tensor:
        params = self.engine._sampling_params_class(max_tokens=1, temperature=0.0, prompt_logprobs=0,
                                                    detokenize=False)
        requests = [{"prompt_token_ids": list(p) + [c]} for p in ids for c in wanted]
        outputs = self.engine.llm.generate(requests, params, use_tqdm=False)
        logp = []
        for request, output in zip(requests, outputs, strict=True):
            last = output.prompt_logprobs[-1] if output.prompt_logprobs else None
            token = request["prompt_token_ids"][-1]
            if not last or token not in last:
                raise RuntimeError("judge: vLLM returned no prompt log-probability for a choice token")
            logp.append(float(last[token].logprob))
        return torch.softmax(torch.tensor(logp, dtype=torch.float64).view(len(ids), len(wanted)), dim=-1).float()


class _JudgeScorer(ModelScorer):
    """A :class:`ModelScorer` that owns a :class:`JudgeModel` built from its arguments."""

    def __init__(self, model: str, engine: str = "hf", dtype: str = "float32", chat_template: bool = True,
                 max_new_tokens: int = 16, temperature: float = 0.0, engine_args: dict | None = None,
                 name: str | None = None, batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        self.judge = JudgeModel(model, engine=engine, dtype=dtype, chat_template=chat_template,
                                max_new_tokens=max_new_tokens, temperature=temperature, engine_args=engine_args)

    def load(self) -> None:
        """Load the judge (once) on the trainer's device."""
        self.judge.load(self.target_device())

    def ready(self) -> JudgeModel:
        self.load()
        return self.judge


def _check_pattern(pattern: str, owner: str) -> re.Pattern:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise RlobjInputError(f"{owner}.pattern: not a regular expression ({error})") from error
    if compiled.groups != 1:
        raise RlobjInputError(f"{owner}.pattern: needs exactly one capture group (the verdict), got {pattern!r}")
    return compiled


class PointwiseJudge(_JudgeScorer):
    r"""An LLM judge that grades each response alone: $r = (s - s_{\min}) / (s_{\max} - s_{\min})$.

    The judge generates a verdict for ``template`` filled with the row; :meth:`parse` reads the
    last match of ``pattern`` (one capture group, a number $s$). A verdict with no match, or a
    number outside ``[low, high]``, is unreadable: status ``"invalid"``, no reward.

    Args:
        model, engine, dtype, chat_template, max_new_tokens, temperature, engine_args: the judge
            (:class:`JudgeModel`).
        template: the judge prompt (``{prompt}``, ``{response}``, record fields).
        pattern: the verdict's regular expression with one capture group (default: the first
            number of the verdict).
        low, high: the scale of the verdict's number (the reward is rescaled to [0, 1]).
        name, batch_size, timeout, concurrency: as :class:`~rlobj.train.model_scorers.ModelScorer`.
    """

    def __init__(self, model: str, template: str = POINTWISE_TEMPLATE, pattern: str = r"^\s*(-?\d+(?:\.\d+)?)",
                 low: float = 0.0, high: float = 10.0, engine: str = "hf", dtype: str = "float32",
                 chat_template: bool = True, max_new_tokens: int = 16, temperature: float = 0.0,
                 engine_args: dict | None = None, name: str | None = "judge", batch_size: int = 16,
                 timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, engine, dtype, chat_template, max_new_tokens, temperature, engine_args,
                         name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        if "{response}" not in template:
            raise RlobjInputError("PointwiseJudge.template: must contain {response}")
        if not high > low:
            raise RlobjInputError(f"PointwiseJudge: high ({high}) must be above low ({low})")
        self.template, self.pattern = template, _check_pattern(pattern, "PointwiseJudge")
        self.low, self.high = float(low), float(high)
        self.last_outputs: list[str] = []

    def parse(self, text: str) -> float | None:
        """The reward in [0, 1] read from one verdict, None when it cannot be read."""
        found = self.pattern.findall(text)
        if not found:
            return None
        try:
            value = float(found[-1])
        except ValueError:
            return None
        if not self.low <= value <= self.high:
            return None
        return (value - self.low) / (self.high - self.low)

    def prompts(self, prompts, completions, records) -> list[str]:
        return [fill(self.template, r, prompt=render_prompt(p), response=c)
                for p, c, r in zip(prompts, completions, records)]

    def verdicts(self, filled: list[str]) -> list[str]:
        return self.ready().generate(filled)

    def score_rows(self, prompts, completions, records):
        texts = self.verdicts(self.prompts(prompts, completions, records))
        self.last_outputs = texts
        return [self.parse(t) for t in texts]


class ThinkingJudge(PointwiseJudge):
    r"""A judge that reasons before its verdict, within a token budget (budget forcing).

    Stage 1 generates up to ``think_tokens`` tokens after the filled template. When that text
    contains ``close_marker`` followed by a readable verdict, the verdict is read from it.
    Otherwise the reasoning is cut at ``close_marker`` (or at the budget), and stage 2 continues
    ``template + reasoning + close_marker + verdict_prefix`` for ``max_new_tokens`` tokens and
    reads the verdict from that. The reward is :meth:`PointwiseJudge.parse` of the verdict.

    Args:
        think_tokens: the reasoning budget in tokens.
        close_marker: the end of the reasoning (``</think>``).
        verdict_prefix: the text that asks for the verdict after a forced stop.
        (others): as :class:`PointwiseJudge`.
    """

    def __init__(self, model: str, template: str = POINTWISE_TEMPLATE + "<think>", think_tokens: int = 64,
                 close_marker: str = "</think>", verdict_prefix: str = "\nScore: ",
                 pattern: str = r"^\s*(-?\d+(?:\.\d+)?)", low: float = 0.0, high: float = 10.0,
                 engine: str = "hf", dtype: str = "float32", chat_template: bool = True, max_new_tokens: int = 8,
                 temperature: float = 0.0, engine_args: dict | None = None, name: str | None = "thinking_judge",
                 batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, template=template, pattern=pattern, low=low, high=high, engine=engine,
                         dtype=dtype, chat_template=chat_template, max_new_tokens=max_new_tokens,
                         temperature=temperature, engine_args=engine_args, name=name, batch_size=batch_size,
                         timeout=timeout, concurrency=concurrency)
        if isinstance(think_tokens, bool) or not isinstance(think_tokens, int) or think_tokens < 1:
            raise RlobjInputError(f"ThinkingJudge.think_tokens: expected an int >= 1, got {think_tokens!r}")
        self.think_tokens, self.close_marker, self.verdict_prefix = think_tokens, close_marker, verdict_prefix
        self.last_reasoning: list[str] = []

    def verdicts(self, filled: list[str]) -> list[str]:
        judge = self.ready()
        thoughts = judge.generate(filled, max_new_tokens=self.think_tokens)
        out: list[str | None] = [None] * len(filled)
        forced = []
        for i, thought in enumerate(thoughts):
            cut = thought.find(self.close_marker)
            if cut >= 0 and self.parse(thought[cut + len(self.close_marker):]) is not None:
                out[i] = thought[cut + len(self.close_marker):]
            else:
                forced.append(i)
                thoughts[i] = thought if cut < 0 else thought[:cut]
        self.last_reasoning = thoughts
        if forced:
            texts = [judge.text(filled[i]) + thoughts[i] + self.close_marker + self.verdict_prefix for i in forced]
            for i, verdict in zip(forced, judge.generate(texts, raw=True)):
                out[i] = verdict
        return [str(v) for v in out]


class PairwiseLLMJudge(_JudgeScorer):
    r"""An LLM judge that compares each response with a reference, in both presentation orders.

    For response $y$ and reference $y'$ the judge sees ``template`` with ``first``/``second`` =
    $(y, y')$ and then $(y', y)$. With ``verdict="tokens"`` each order gives the probability
    that the first-shown response is better, from the next-token probabilities of ``choices``
    (default ``A``/``B``) renormalised over the two; with ``verdict="generate"`` the generated
    verdict's last match of ``pattern`` (``A`` or ``B``) gives 1 or 0 (no match: ``"invalid"``).
    The reward averages the orders (position swap),

    $$ r(y; y') = \tfrac12\,\big(p_A(y, y') + p_B(y', y)\big), $$

    so $r(y; y') + r(y'; y) = 1$ for any judge: position bias cancels.

    The reference is ``record[reference]`` (a reference answer), or with ``reference="group"`` a
    response of the same group drawn uniformly from a generator seeded by (``seed``, run seed,
    step, the group's content), as BRPO draws it. Rows then carry the fields
    ``pairwise_reference`` and ``pairwise_wins`` (``[first-order win, swapped-order win]``) that
    :class:`~rlobj.train.providers.scores.PairwiseJudge` passes to
    :class:`~rlobj.terms.advantages.comparisons.brpo_advantage` in place of its scripted judge
    (Writing-Zero, Jia et al. 2025, arXiv 2506.00103); the reference's own reward is 1/2.

    Args:
        reference: a record key holding the reference text, or ``"group"``.
        verdict: ``"tokens"`` or ``"generate"``.
        choices: the two verdict strings (first-shown better, second-shown better).
        pattern: the generated verdict's regular expression (``verdict="generate"``).
        seed: salt of the group reference draws.
        (others): as :class:`JudgeModel` and :class:`~rlobj.train.model_scorers.ModelScorer`.
    """

    def __init__(self, model: str, reference: str = "completion", template: str = PAIRWISE_TEMPLATE,
                 verdict: str = "tokens", choices: Sequence[str] = ("A", "B"), pattern: str = r"\b([AB])\b",
                 seed: int = 0, engine: str = "hf", dtype: str = "float32", chat_template: bool = True,
                 max_new_tokens: int = 8, temperature: float = 0.0, engine_args: dict | None = None,
                 name: str | None = "pairwise_judge", batch_size: int = 16, timeout: float | None = None, concurrency: int = 1):
        super().__init__(model, engine, dtype, chat_template, max_new_tokens, temperature, engine_args,
                         name=name, batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        if verdict not in ("tokens", "generate"):
            raise RlobjInputError(f"PairwiseLLMJudge.verdict: expected 'tokens' or 'generate', got {verdict!r}")
        if "{first}" not in template or "{second}" not in template:
            raise RlobjInputError("PairwiseLLMJudge.template: must contain {first} and {second}")
        if len(choices) != 2:
            raise RlobjInputError(f"PairwiseLLMJudge.choices: expected two strings, got {choices!r}")
        self.reference, self.template, self.verdict = reference, template, verdict
        self.choices, self.seed = tuple(choices), seed
        self.pattern = _check_pattern(pattern, "PairwiseLLMJudge")
        self.last_outputs: list[str] = []
        self._wins: dict[int, list[bool]] = {}

    def first_better(self, filled: list[str]) -> list[float | None]:
        """P(first-shown response is better) for each filled template."""
        judge = self.ready()
        if self.verdict == "tokens":
            return judge.choice_probs(filled, self.choices)[:, 0].tolist()
        texts = judge.generate(filled)
        self.last_outputs = texts
        out = []
        for text in texts:
            found = [m.upper() for m in self.pattern.findall(text)]
            out.append(None if not found else float(found[-1] == self.choices[0].upper()))
        return out

    def compare(self, prompts, responses: list[str], references: list[str], records) -> list[float | None]:
        """$r(y; y')$ for each (response, reference) pair (None when a verdict is unreadable)."""
        rows = len(responses)
        shown = [render_prompt(p) for p in prompts]
        filled = [fill(self.template, r, prompt=p, first=y, second=z, response=y)
                  for p, y, z, r in zip(shown, responses, references, records)]
        filled += [fill(self.template, r, prompt=p, first=z, second=y, response=y)
                   for p, y, z, r in zip(shown, responses, references, records)]
        first = self.first_better(filled)
        out = []
        for b in range(rows):
            straight, swapped = first[b], first[rows + b]
            out.append(None if straight is None or swapped is None else 0.5 * (straight + (1.0 - swapped)))
            if "_row" in records[b] and out[-1] is not None:  # the orders' verdicts, for BRPO's wins
                self._wins[records[b]["_row"]] = [straight > 0.5, 1.0 - swapped > 0.5]
        return out

    def score_rows(self, prompts, completions, records):
        references = []
        for r in records:
            if "_pairwise_reference_text" in r:
                references.append(r["_pairwise_reference_text"])
            elif self.reference in r:
                references.append(str(r[self.reference]))
            else:
                raise RlobjInputError(f"PairwiseLLMJudge.reference: the record has no key {self.reference!r} "
                                      f"(keys: {sorted(r)})")
        return self.compare(prompts, completions, references, records)

    def __call__(self, ctx, batch):
        if self.reference != "group":
            return super().__call__(ctx, batch)
        from rlobj.train.providers.scores import group_rows, row_generator, row_keys

        self.bind(ctx)
        texts = ctx.decode(batch.rollout)
        keys = row_keys(batch.rollout)
        ref_of = [0] * len(texts)
        for rows in group_rows(batch.rollout.group_ids.cpu()).values():
            ordered = sorted(rows, key=lambda r: keys[r])
            draw = row_generator(self.seed, ctx.seed, ctx.step, "group", *[keys[r] for r in ordered])
            ref = ordered[int(torch.randint(len(rows), (1,), generator=draw))]
            for row in rows:
                ref_of[row] = ref
        records = [{**r, "_pairwise_reference_text": texts[ref_of[b]], "_row": b} for b, r in enumerate(batch.records)]
        self._wins = {}
        scores, metrics = self.score_texts(texts, records)
        batch.metrics.update(metrics)
        out = []
        for b, score in enumerate(scores):
            is_ref = ref_of[b] == b
            fields = dict(score.fields, pairwise_reference=is_ref,
                          pairwise_wins=[False, False] if is_ref else self._wins.get(b, [False, False]))
            out.append(type(score)(reward=0.5 if is_ref else score.reward, fields=fields))
        return out


class PrincipleJudge(_JudgeScorer):
    r"""An LLM judge that answers Yes/No for each principle of a list; the reward is the mean
    probability of Yes.

    For principles $c_1..c_K$ (``principles``, or the list in ``record[principles_key]``),

    $$ r = \frac{1}{K} \sum_{k=1}^{K} p_k, \qquad p_k = \frac{e^{z_{\text{Yes}}}}{e^{z_{\text{Yes}}}
       + e^{z_{\text{No}}}} $$

    read from the judge's next-token logits after ``template`` filled with the row and
    ``{principle}``; with ``binary=True`` each $p_k$ becomes the binary judgement
    $\mathbb{1}[p_k > 1/2]$.

    Args:
        principles: fixed principles (a list of strings).
        principles_key: a record key holding the row's principles (instead of ``principles``).
        template: the judge prompt (``{prompt}``, ``{response}``, ``{principle}``, record fields).
        choices: the (yes, no) verdict strings.
        binary: threshold each judgement at 1/2.
        (others): as :class:`JudgeModel` and :class:`~rlobj.train.model_scorers.ModelScorer`.
    """

    def __init__(self, model: str, principles: Sequence[str] | None = None, principles_key: str | None = None,
                 template: str = PRINCIPLE_TEMPLATE, choices: Sequence[str] = ("Yes", "No"), binary: bool = False,
                 dtype: str = "float32", chat_template: bool = True, name: str | None = "principle_judge",
                 batch_size: int = 16, timeout: float | None = None, concurrency: int = 1, engine: str = "hf",
                 engine_args: dict | None = None):
        super().__init__(model, engine, dtype, chat_template, engine_args=engine_args, name=name,
                         batch_size=batch_size, timeout=timeout, concurrency=concurrency)
        if (principles is None) == (principles_key is None):
            raise RlobjInputError("PrincipleJudge: give exactly one of principles (a list) and principles_key")
        if principles is not None and (not isinstance(principles, (list, tuple)) or not principles
                                       or not all(isinstance(p, str) for p in principles)):
            raise RlobjInputError(f"PrincipleJudge.principles: expected a non-empty list of strings, got {principles!r}")
        if "{principle}" not in template:
            raise RlobjInputError("PrincipleJudge.template: must contain {principle}")
        if len(choices) != 2:
            raise RlobjInputError(f"PrincipleJudge.choices: expected (yes, no), got {choices!r}")
        self.principles = list(principles) if principles is not None else None
        self.principles_key, self.template, self.choices, self.binary = principles_key, template, tuple(choices), binary
        self.last_judgements: list[list[float]] = []

    def row_principles(self, record: dict) -> list[str]:
        if self.principles is not None:
            return self.principles
        value = record.get(self.principles_key)
        if not isinstance(value, (list, tuple)) or not value:
            raise RlobjInputError(f"PrincipleJudge.principles_key: record[{self.principles_key!r}] is {value!r}; "
                                  "expected a non-empty list of principles")
        return [str(v) for v in value]

    def score_rows(self, prompts, completions, records):
        filled, owner = [], []
        for b, (p, c, r) in enumerate(zip(prompts, completions, records)):
            for principle in self.row_principles(r):
                filled.append(fill(self.template, r, prompt=render_prompt(p), response=c, principle=principle))
                owner.append(b)
        yes = self.ready().choice_probs(filled, self.choices)[:, 0].tolist()
        per_row: list[list[float]] = [[] for _ in completions]
        for b, p in zip(owner, yes):
            per_row[b].append(float(p > 0.5) if self.binary else p)
        self.last_judgements = per_row
        return [sum(v) / len(v) for v in per_row]
