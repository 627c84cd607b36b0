r"""Perception views: a second forward pass of a policy under a perturbed context.

Multimodal RLVR methods compare the policy's next-token distributions with and without a part of
its context: PAPO (arXiv 2507.06448) maximises the KL between them, VPPO (arXiv 2510.09285) scores
each token's visual dependency by it, VOGUE (arXiv 2510.01444) turns their symmetric KL into an
uncertainty bonus. This module computes the perturbed side, generic over *what* is perturbed:

* :class:`PatchBlackening` (vision-language models): the image is cut into
  ``patch_size x patch_size`` pixel patches and each is set to ``fill`` (0, "black") independently
  with probability ``ratio`` (PAPO: 14 px, 0.6; VPPO: 14 px, 0.5);
* :class:`PromptSpanMask` (text-only models): the real prompt tokens are cut into consecutive spans
  of ``span`` tokens and each span is masked independently with probability ``ratio``, either by
  replacing its ids with a mask id (``mode="token"``) or by zeroing its input embeddings
  (``mode="embedding"``). It is the one-dimensional analogue of patch blackening.

:func:`perception_forward` runs the policy on the perturbed context and returns a
:class:`PerceptionView`: the response tokens' log-probs (``logp_perturbed``) and/or a lazy
:class:`~rlobj.ops.vocab.VocabView` of the perturbed next-token distributions
(``vocab_perturbed``), ready for ``extras``. With ``perturbation=None`` (or a ratio of 0) it is the
normal pass, computed the same way: its log-probs equal :func:`~rlobj.rollout.sequence_logprobs`
bit for bit, so every perception KL is exactly zero.

VOGUE's annealed branch probability (:func:`annealed_branch_probability`) and the draw of the rows
that go through the noisy branch (:func:`noisy_branch_rows`) live here too: routing is a rollout
decision; the terms read the result from ``extras["noisy_branch"]``.
"""

import math
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.ops.typecheck import typechecked
from rlobj.ops.vocab import VocabView
from rlobj.rollout.logprobs import _logits_to_keep_kwarg, positions_from_mask

__all__ = [
    "PatchBlackening",
    "PromptSpanMask",
    "PerceptionView",
    "prompt_span_mask",
    "patch_mask",
    "blacken_patches",
    "perception_forward",
    "annealed_branch_probability",
    "noisy_branch_rows",
]

MASK_MODES = ("token", "embedding")
SCHEDULES = ("linear", "cosine")


def _check_ratio(owner: str, ratio: float) -> None:
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 <= ratio <= 1.0:
        raise RlobjInputError(f"{owner}.ratio: expected a probability in [0, 1], got {ratio!r}")


def _check_positive_int(owner: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RlobjInputError(f"{owner}.{name}: expected a positive int, got {value!r}")


def _generator(seed: int, step: int, device) -> torch.Generator:
    """A generator for one (seed, step) pair: the same pair always draws the same masks."""
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise RlobjInputError(f"step: expected a non-negative int, got {step!r}")
    generator = torch.Generator(device=device)
    generator.manual_seed((int(seed) * 1_000_003 + step) % (2**63 - 1))
    return generator


def _row_generator(seed: int, step: int, key: int) -> torch.Generator:
    """A CPU generator for one (seed, step, row key): a row draws the same masks whatever the
    other rows of its call (chunking-invariant)."""
    generator = torch.Generator()
    generator.manual_seed(((int(seed) * 1_000_003 + int(step)) * 1_000_033 + int(key)) % (2**63 - 1))
    return generator


def _check_row_keys(row_keys, batch: int, step: int) -> list[int]:
    _generator(0, step, None)  # validates step
    if not isinstance(row_keys, Tensor) or row_keys.shape != (batch,) or row_keys.is_floating_point() \
            or row_keys.dtype == torch.bool:
        got = (row_keys.dtype, tuple(row_keys.shape)) if isinstance(row_keys, Tensor) else type(row_keys).__name__
        raise RlobjInputError(f"row_keys: expected an integer tensor of shape ({batch},) (one key per row), got {got}")
    if bool((row_keys < 0).any()):
        raise RlobjInputError("row_keys: expected non-negative keys")
    return [int(k) for k in row_keys.tolist()]


@dataclass(frozen=True)
class PatchBlackening:
    r"""Random patch blackening of images (PAPO §6.1, VPPO §8.1).

    The ``H x W`` image is tiled into $\lceil H/p\rceil \times \lceil W/p\rceil$ patches of
    $p$ = ``patch_size`` pixels (the last row/column of patches may be smaller); each patch is
    replaced by ``fill`` independently with probability ``ratio``, over all channels.

    Args:
        ratio: probability that a patch is blackened (PAPO ``black_prob`` 0.6; VPPO 0.5).
        patch_size: patch side in pixels (14 in both reference codes).
        seed: seed of the draws; the masks of step ``s`` depend only on ``(seed, s)``.
        fill: value written into blackened patches. 0 is black on raw pixels in $[0, 1]$; on
            normalised ``pixel_values`` (after a processor's mean/std) 0 is the mean colour.
    """

    ratio: float = 0.6
    patch_size: int = 14
    seed: int = 0
    fill: float = 0.0

    def __post_init__(self):
        _check_ratio("PatchBlackening", self.ratio)
        _check_positive_int("PatchBlackening", "patch_size", self.patch_size)


@dataclass(frozen=True)
class PromptSpanMask:
    r"""Random masking of prompt spans for text-only models (the analogue of patch blackening).

    The real tokens of each prompt (``prompt_mask`` True, counted from the first one) are cut into
    consecutive spans of ``span`` tokens; each span is masked independently with probability
    ``ratio``. ``mode="token"`` replaces the masked ids by ``mask_id`` (default: the model's
    ``pad_token_id``); ``mode="embedding"`` zeroes their input embeddings. Attention masks and
    positions are unchanged: the model still sees a token there, just not which one.

    Args:
        ratio: probability that a span is masked.
        span: tokens per span (1 = independent tokens).
        seed: seed of the draws; the masks of step ``s`` depend only on ``(seed, s)``.
        mode: ``"token"`` or ``"embedding"``.
        mask_id: the id written into masked positions with ``mode="token"``; None for the
            model config's ``pad_token_id``.
    """

    ratio: float = 0.6
    span: int = 1
    seed: int = 0
    mode: str = "token"
    mask_id: int | None = None

    def __post_init__(self):
        _check_ratio("PromptSpanMask", self.ratio)
        _check_positive_int("PromptSpanMask", "span", self.span)
        if self.mode not in MASK_MODES:
            raise RlobjInputError(f"PromptSpanMask.mode: expected one of {MASK_MODES}, got {self.mode!r}")
        if self.mask_id is not None and (not isinstance(self.mask_id, int) or self.mask_id < 0):
            raise RlobjInputError(f"PromptSpanMask.mask_id: expected a non-negative int or None, got {self.mask_id!r}")


@typechecked
def prompt_span_mask(
    prompt_mask: Bool[Tensor, "batch prompt"], spec: PromptSpanMask, step: int = 0,
    row_keys: Tensor | None = None,
) -> Bool[Tensor, "batch prompt"]:
    r"""Which prompt positions :class:`PromptSpanMask` masks: True at real tokens whose span
    (rank among the row's real tokens, integer-divided by ``span``) drew $u < $ ``ratio``.

    Without ``row_keys`` the draws of the whole call come from one generator of
    ``(seed, step)``: a row's mask depends on its position in the call and on the padded
    width. With ``row_keys`` (one non-negative integer per row, e.g. the row's index in the
    rollout batch) each row draws from its own generator of ``(seed, step, key)``, only as
    many spans as it has real tokens: the same row gets the same mask in any chunking and
    under any padding (what a trainer that computes rows in micro-batches needs).

    Example:
        >>> mask = torch.tensor([[False, True, True, True]])
        >>> prompt_span_mask(mask, PromptSpanMask(ratio=1.0)).tolist()
        [[False, True, True, True]]
        >>> prompt_span_mask(mask, PromptSpanMask(ratio=0.0)).tolist()
        [[False, False, False, False]]
    """
    batch, length = prompt_mask.shape
    rank = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
    spans = max(1, math.ceil(length / spec.span))
    if row_keys is None:
        draws = torch.rand(batch, spans, generator=_generator(spec.seed, step, prompt_mask.device),
                           device=prompt_mask.device)
    else:
        keys = _check_row_keys(row_keys, batch, step)
        draws = torch.ones(batch, spans, dtype=torch.float32)
        for row, (key, real) in enumerate(zip(keys, prompt_mask.sum(-1).tolist(), strict=True)):
            own = max(1, math.ceil(int(real) / spec.span))
            draws[row, :own] = torch.rand(own, generator=_row_generator(spec.seed, step, key))
        draws = draws.to(prompt_mask.device)
    masked_span = draws < spec.ratio
    return masked_span.gather(1, rank // spec.span) & prompt_mask


def patch_mask(images: int, height: int, width: int, spec: PatchBlackening, step: int = 0,
               device=None, row_keys: Tensor | None = None) -> Tensor:
    r"""Which patches :class:`PatchBlackening` blackens: a bool ``[images, ceil(H/p), ceil(W/p)]``
    tensor, each entry True with probability ``ratio`` (independent draws).

    With ``row_keys`` (``[batch]`` non-negative integers, ``images`` a multiple of ``batch``:
    the images of row ``i`` are ``images // batch`` consecutive ones) each row's patches are
    drawn from its own generator of ``(seed, step, key)``, so a row gets the same patches in
    any chunking of the batch.

    Example:
        >>> patch_mask(1, 28, 30, PatchBlackening(ratio=1.0)).shape
        torch.Size([1, 2, 3])
    """
    for name, value in (("images", images), ("height", height), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise RlobjInputError(f"patch_mask: {name} must be a positive int, got {value!r}")
    rows, cols = math.ceil(height / spec.patch_size), math.ceil(width / spec.patch_size)
    if row_keys is None:
        draws = torch.rand(images, rows, cols, generator=_generator(spec.seed, step, device), device=device)
        return draws < spec.ratio
    batch = int(row_keys.shape[0]) if isinstance(row_keys, Tensor) and row_keys.dim() == 1 else -1
    if batch < 1 or images % batch:
        raise RlobjInputError(f"row_keys: expected one key per row of a batch whose rows hold the {images} images "
                              f"equally (shape (batch,) with batch dividing {images}), got "
                              f"{tuple(row_keys.shape) if isinstance(row_keys, Tensor) else type(row_keys).__name__}")
    keys = _check_row_keys(row_keys, batch, step)
    per_row = images // batch
    draws = torch.cat([torch.rand(per_row, rows, cols, generator=_row_generator(spec.seed, step, key))
                       for key in keys])
    return draws.to(device) < spec.ratio


@typechecked
def blacken_patches(
    pixel_values: Float[Tensor, "*images channels height width"], spec: PatchBlackening, step: int = 0,
    row_keys: Tensor | None = None,
) -> tuple[Float[Tensor, "*images channels height width"], Bool[Tensor, "_n _rows _cols"]]:
    r"""Images with random patches set to ``spec.fill`` (see :class:`PatchBlackening`).

    $$ \tilde I_{c,y,x} = \begin{cases} \text{fill} & M_{\lfloor y/p\rfloor, \lfloor x/p\rfloor}
       \\ I_{c,y,x} & \text{otherwise} \end{cases}, \qquad M_{jk} \sim \mathrm{Bernoulli}(\text{ratio}) $$

    Args:
        pixel_values: ``[..., channels, height, width]`` images (any leading dims: one image, a
            batch, a batch of frames).
        spec: the perturbation.
        step: training step (a new draw per step, reproducible).
        row_keys: optional ``[batch]`` keys, one per row (the first leading dim is the batch):
            per-row draws, the same in any chunking (see :func:`patch_mask`).

    Returns:
        ``(perturbed, blackened)``: the perturbed images (same shape and dtype; unblackened pixels
        are the original values, untouched) and the per-patch mask ``[n_images, rows, cols]``
        (leading dims flattened).
    """
    *lead, _, height, width = pixel_values.shape
    images = int(math.prod(lead)) if lead else 1
    if row_keys is not None and (not lead or isinstance(row_keys, Tensor) and row_keys.shape[:1] != (lead[0],)):
        raise RlobjInputError(f"row_keys: expected shape ({lead[0] if lead else 'batch'},), one key per row of "
                              f"pixel_values' first dim, got {tuple(getattr(row_keys, 'shape', ()))}")
    blackened = patch_mask(images, height, width, spec, step, device=pixel_values.device, row_keys=row_keys)
    pixels = blackened.repeat_interleave(spec.patch_size, 1).repeat_interleave(spec.patch_size, 2)
    pixels = pixels[:, :height, :width].reshape(*lead, 1, height, width)
    fill = torch.full((), spec.fill, dtype=pixel_values.dtype, device=pixel_values.device)
    return torch.where(pixels, fill, pixel_values), blackened


@dataclass(frozen=True)
class PerceptionView:
    r"""The response side of one (perturbed) forward pass.

    Attributes:
        logp: ``[batch, seq]`` log-probs of the response tokens (0 at padding), or None.
        vocab: a :class:`~rlobj.ops.vocab.VocabView` of the next-token distributions at the
            response positions (from the output layer's input hidden states), or None.
        perturbed: what was perturbed: the masked prompt positions ``[batch, prompt]`` (text) or
            the blackened patches ``[images, rows, cols]`` (vision); None for the normal pass.
    """

    logp: Tensor | None
    vocab: VocabView | None
    perturbed: Tensor | None

    def extras(self, suffix: str = "perturbed") -> dict[str, Any]:
        """``{"logp_<suffix>": logp, "vocab_<suffix>": vocab}`` (the parts present), for
        ``extras`` of a batch: the perception terms read ``logp_perturbed`` / ``vocab_perturbed``."""
        out: dict[str, Any] = {}
        if self.logp is not None:
            out[f"logp_{suffix}"] = self.logp
        if self.vocab is not None:
            out[f"vocab_{suffix}"] = self.vocab
        return out


def _mask_id(model, spec: PromptSpanMask) -> int:
    if spec.mask_id is not None:
        return spec.mask_id
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(config, "text_config", None), "pad_token_id", None)
    if pad is None:
        raise RlobjInputError(
            "PromptSpanMask.mask_id: the model config has no pad_token_id; pass mask_id= "
            "(the token id written into masked prompt positions)")
    return int(pad)


@typechecked
def perception_forward(
    model,
    prompt_ids: Int[Tensor, "batch prompt"],
    prompt_mask: Bool[Tensor, "batch prompt"],
    response_ids: Int[Tensor, "batch seq"],
    response_mask: Bool[Tensor, "batch seq"],
    perturbation: PatchBlackening | PromptSpanMask | None = None,
    *,
    pixel_values: Tensor | None = None,
    model_inputs: dict | None = None,
    temperature: float | int = 1.0,
    step: int = 0,
    row_keys: Tensor | None = None,
    with_logp: bool = True,
    with_vocab: bool = False,
    position_ids: bool = True,
) -> PerceptionView:
    r"""Forward ``model`` on a perturbed context; the response tokens' log-probs and/or vocab view.

    $$ \log\tilde\pi(y_t) = \log\pi(y_t \mid \tilde x, y_{<t}), \qquad
       \tilde\pi(\cdot \mid \tilde x, y_{<t}) = \mathrm{softmax}(h_t W^\top / T) $$
    where $\tilde x$ is the prompt (and image) after ``perturbation``. Log-probs are computed
    exactly as :func:`~rlobj.rollout.sequence_logprobs` computes them (same inputs, positions from
    the attention mask, ``logits_to_keep``, float32 log-softmax), so with ``perturbation=None`` or
    a ratio of 0 the result equals the trainer's log-probs bit for bit. The vocab view is built
    from the hidden states entering the output layer (captured by a forward hook on
    ``model.get_output_embeddings()``) and its weight and bias, with the config's
    ``final_logit_softcapping`` if any: every full-vocabulary term then reads it chunk by chunk.

    Gradients follow the caller's grad mode: call under ``torch.no_grad()`` for the detached
    old-policy branch of PAPO / VPPO (their reference default), or with grad to recompute it with
    the current policy.

    Args:
        model: a ``transformers`` causal LM or vision-language model (text + ``pixel_values``).
        prompt_ids, prompt_mask: left-padded prompts and their real-token mask.
        response_ids, response_mask: right-padded responses and their mask.
        perturbation: :class:`PromptSpanMask`, :class:`PatchBlackening`, or None (normal pass).
        pixel_values: images for a vision-language model (required with
            :class:`PatchBlackening`; passed unperturbed otherwise).
        model_inputs: further keyword arguments of the model call (``image_sizes``,
            ``image_grid_thw``, ...).
        temperature: sampling temperature $T > 0$ of the engine. Default 1.
        step: training step: the perturbation's draw depends on ``(seed, step)``.
        row_keys: optional ``[batch]`` non-negative integer keys, one per row (e.g. each row's
            index in the rollout batch): each row then draws its perturbation from
            ``(seed, step, key)`` alone, so computing the rows in any chunking (micro-batches)
            gives the same perturbed log-probs. Without it the draw depends on the rows of
            the call and their padding.
        with_logp: compute the response log-probs. Default True.
        with_vocab: build the vocab view. Default False.
        position_ids: pass positions derived from the attention mask (as the engines and
            :func:`~rlobj.rollout.sequence_logprobs` do). Set False for models that compute
            their own (e.g. Qwen2-VL's multimodal rotary positions).

    Returns:
        A :class:`PerceptionView`; ``view.extras()`` gives ``{"logp_perturbed": ...,
        "vocab_perturbed": ...}``.
    """
    if not temperature > 0:
        raise RlobjInputError(f"temperature: expected > 0, got {temperature!r}")
    if not (with_logp or with_vocab):
        raise RlobjInputError("perception_forward: with_logp and with_vocab are both False; ask for one")
    if prompt_ids.shape != prompt_mask.shape:
        raise RlobjInputError(
            f"prompt_mask: expected the shape of prompt_ids {tuple(prompt_ids.shape)}, got {tuple(prompt_mask.shape)}")
    if response_ids.shape != response_mask.shape:
        raise RlobjInputError(
            f"response_mask: expected the shape of response_ids {tuple(response_ids.shape)}, got "
            f"{tuple(response_mask.shape)}")
    if prompt_ids.shape[0] != response_ids.shape[0]:
        raise RlobjInputError(
            f"response_ids: expected batch {prompt_ids.shape[0]} (the prompts'), got {response_ids.shape[0]}")
    if prompt_ids.shape[1] == 0 or not bool(prompt_mask.any(-1).all()):
        raise RlobjInputError("prompt_mask: every prompt needs at least one real token")
    if isinstance(perturbation, PatchBlackening) and pixel_values is None:
        raise RlobjInputError("pixel_values: PatchBlackening perturbs images, but none were given")

    length = response_ids.shape[1]
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, response_mask], dim=1).bool()
    kwargs: dict[str, Any] = dict(model_inputs or {})
    perturbed = None
    if isinstance(perturbation, PromptSpanMask):
        perturbed = prompt_span_mask(prompt_mask, perturbation, step, row_keys)
        where = torch.cat([perturbed, torch.zeros_like(response_mask)], dim=1)
        if perturbation.mode == "token":
            input_ids = torch.where(where, torch.full_like(input_ids, _mask_id(model, perturbation)), input_ids)
        else:
            embeddings = model.get_input_embeddings()(input_ids)
            kwargs["inputs_embeds"] = torch.where(where[..., None], torch.zeros((), dtype=embeddings.dtype,
                                                  device=embeddings.device), embeddings)
    if pixel_values is not None:
        if isinstance(perturbation, PatchBlackening):
            pixel_values, perturbed = blacken_patches(pixel_values, perturbation, step, row_keys)
        kwargs["pixel_values"] = pixel_values
    if "inputs_embeds" not in kwargs:
        kwargs["input_ids"] = input_ids
    if position_ids:
        kwargs["position_ids"] = positions_from_mask(attention_mask)
    keep_name = _logits_to_keep_kwarg(model)
    if keep_name is not None:
        kwargs[keep_name] = length + 1

    head = model.get_output_embeddings()
    captured: list[Tensor] = []
    hook = head.register_forward_hook(lambda module, args, output: captured.append(args[0])) if with_vocab else None
    try:
        output = model(attention_mask=attention_mask.long(), use_cache=False, **kwargs)
    finally:
        if hook is not None:
            hook.remove()

    logp = None
    if with_logp:
        # logits[:, i] predicts token i + 1: keep the positions that predict the response tokens
        logits = output.logits[:, -(length + 1):-1]
        logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
        logp = logp_all.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
        logp = logp.masked_fill(~response_mask, 0.0)
    vocab = None
    if with_vocab:
        hidden = captured[-1][:, -(length + 1):-1]
        config = getattr(model, "config", None)
        softcap = getattr(config, "final_logit_softcapping", None)
        vocab = VocabView.from_hidden(hidden, head.weight, getattr(head, "bias", None),
                                      temperature=float(temperature), softcap=softcap)
        if not torch.is_grad_enabled():  # the output layer's weight requires grad even under no_grad
            vocab = vocab.detach()
    return PerceptionView(logp=logp, vocab=vocab, perturbed=perturbed)


def annealed_branch_probability(step: int, total_steps: int, start: float, end: float = 0.0,
                                schedule: str = "linear") -> float:
    r"""VOGUE's annealed probability $p_s$ of routing a rollout through the noisy branch.

    $$ p_s = p_\text{end} + (p_\text{start} - p_\text{end})\,g(\min(s / S, 1)), \qquad
       g_\text{linear}(u) = 1 - u, \quad g_\text{cosine}(u) = \tfrac12(1 + \cos\pi u) $$
    with $S$ = ``total_steps``: from ``start`` at step 0 to ``end`` at step $S$ and after
    (exploration first, exploitation later).

    **Unverified** (spec §7.1): VOGUE (Liu et al., arXiv 2510.01444) anneals this probability over
    training, but neither its schedule nor its constants could be checked (no reference code);
    both are options without paper defaults.

    Args:
        step: the current training step $s \ge 0$.
        total_steps: $S \ge 1$, steps to reach ``end``.
        start, end: probabilities in $[0, 1]$ (``end <= start`` for a decay).
        schedule: ``"linear"`` or ``"cosine"``.

    Example:
        >>> annealed_branch_probability(5, 10, start=0.5)
        0.25
    """
    if not isinstance(step, int) or step < 0:
        raise RlobjInputError(f"step: expected a non-negative int, got {step!r}")
    if not isinstance(total_steps, int) or total_steps < 1:
        raise RlobjInputError(f"total_steps: expected a positive int, got {total_steps!r}")
    for name, value in (("start", start), ("end", end)):
        if not 0.0 <= value <= 1.0:
            raise RlobjInputError(f"{name}: expected a probability in [0, 1], got {value!r}")
    if schedule not in SCHEDULES:
        raise RlobjInputError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    progress = min(step / total_steps, 1.0)
    weight = 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return float(end + (start - end) * weight)


def noisy_branch_rows(batch: int, probability: float, seed: int = 0, step: int = 0) -> Tensor:
    r"""Which of ``batch`` rollouts go through VOGUE's noisy branch: i.i.d. $\mathrm{Bernoulli}(p_s)$
    draws (bool ``[batch]``) for ``extras["noisy_branch"]``, reproducible from ``(seed, step)``.

    Example:
        >>> noisy_branch_rows(3, 0.0).tolist(), noisy_branch_rows(3, 1.0).tolist()
        ([False, False, False], [True, True, True])
    """
    if not isinstance(batch, int) or batch < 0:
        raise RlobjInputError(f"batch: expected a non-negative int, got {batch!r}")
    if not 0.0 <= probability <= 1.0:
        raise RlobjInputError(f"probability: expected a value in [0, 1], got {probability!r}")
    return torch.rand(batch, generator=_generator(seed, step, None)) < probability
