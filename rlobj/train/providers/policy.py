r"""Providers that run the policy or the reference: reference log-probs and views, Lp-Reg's proxy,
perturbed-context forwards, and the fields the rollout itself carries."""

from typing import Any, ClassVar

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.terms.regularizers import proxy_logp
from rlobj.train.providers.base import Provider, register_provider

__all__ = ["RolloutFields", "TokenRewards", "ReferenceLogprobs", "ReferenceViews", "LpRegProxy",
           "PerturbedContext"]


@register_provider
class RolloutFields(Provider):
    """``extras:logp_rollout`` (log-probs of the distribution actually sampled) and
    ``extras:truncated`` (no EOS within the budget), straight from the sampler's batch."""

    provides: ClassVar[tuple[str, ...]] = ("extras:logp_rollout", "extras:truncated")

    def batch(self, ctx, batch, inputs):
        return {"extras:logp_rollout": batch.rollout.logp_rollout, "extras:truncated": batch.rollout.truncated}


@register_provider
class TokenRewards(Provider):
    """``token_rewards`` from the scorer's :attr:`Score.token_rewards <rlobj.train.stages.Score>`
    (absent when no score has them)."""

    provides: ClassVar[tuple[str, ...]] = ("token_rewards",)

    def batch(self, ctx, batch, inputs):
        values = batch.token_rewards()
        return {} if values is None else {"token_rewards": values}


@register_provider
class ReferenceLogprobs(Provider):
    r"""``logp_ref``: $\log\pi_\text{ref}(y_t)$ of the frozen reference (the policy at the first RL
    step unless the module was given one), no grad, in micro-batch chunks."""

    provides: ClassVar[tuple[str, ...]] = ("logp_ref",)

    def batch(self, ctx, batch, inputs):
        logp, _ = ctx.models.no_grad_logprobs(batch.rollout, ctx.models.reference)
        return {"logp_ref": logp}


@register_provider
class ReferenceViews(Provider):
    r"""``extras:vocab_ref`` / ``extras:vocab_init``: the reference's lazy
    :class:`~rlobj.ops.vocab.VocabView` of each micro-batch (no grad), for full-vocabulary
    divergences (``forward_kl``, ``js_divergence``, ...)."""

    provides: ClassVar[tuple[str, ...]] = ("extras:vocab_ref", "extras:vocab_init")

    def micro(self, ctx, batch, rows, inputs):
        with torch.no_grad():
            view = ctx.models.view(batch.rollout, rows, ctx.models.reference)
        return {"extras:vocab_ref": view, "extras:vocab_init": view}


@register_provider
class LpRegProxy(Provider):
    r"""``extras:logp_proxy`` (Lp-Reg, arXiv 2510.03222): $\log\pi_\text{proxy}(y_t)$ of the old policy.

    Computed once per rollout batch, no grad, from the vocab view (no ``[tokens, vocab]``
    logits): :func:`~rlobj.terms.regularizers.lp_reg_proxy.proxy_logp` of the sampled
    tokens with the consuming term's ``tau`` and ``mode``. As in the reference (Lp-Reg-dev
    ``dp_actor.py``: ``apply_min_p`` on the raw logits, then division by the rollout
    temperature), the kept set is decided at temperature 1 and the proxy is renormalised at
    ``temperature``: the run's sampling temperature unless given.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:logp_proxy",)

    def __init__(self, tau: float | None = None, mode: str | None = None, temperature: float | None = None):
        self.tau, self.mode, self.temperature = tau, mode, temperature

    def setup(self, terms):
        found = {(float(t.tau), str(t.mode)) for t in terms
                 if "extras:logp_proxy" in t.slots_read() and hasattr(t, "tau") and hasattr(t, "mode")}
        if len(found) > 1:
            raise RlobjInputError(f"objective: terms reading extras['logp_proxy'] disagree on (tau, mode): "
                                  f"{sorted(found)}; one proxy is computed per rollout batch")
        if found:
            tau, mode = found.pop()
            self.tau = tau if self.tau is None else self.tau
            self.mode = mode if self.mode is None else self.mode
        if self.tau is None or self.mode is None:
            raise RlobjInputError("LpRegProxy: no term gives tau / mode; pass them as the provider's arguments")

    def batch(self, ctx, batch, inputs):
        if "logp_proxy" in batch.extras:  # given with the batch: it wins, nothing to compute
            return {}
        rollout = batch.rollout
        temperature = ctx.models.temperature if self.temperature is None else float(self.temperature)
        pieces = []
        with torch.no_grad():
            for rows in ctx.models.chunks(len(rollout)):
                mask = rollout.response_mask[rows].bool()
                view = ctx.models.view(rollout, rows, temperature=1.0)
                tokens = torch.where(mask, rollout.response_ids[rows], 0)
                proxy = proxy_logp(view, tokens, self.tau, self.mode, mask=mask, temperature=temperature)
                pieces.append(torch.where(mask, proxy, torch.zeros((), dtype=proxy.dtype)).float())
        return {"extras:logp_proxy": torch.cat(pieces)}


@register_provider
class PerturbedContext(Provider):
    r"""``extras:logp_perturbed`` / ``extras:vocab_perturbed``: the old policy on a perturbed prompt.

    :func:`~rlobj.rollout.perception.perception_forward` under ``perturbation``, no grad:
    log-probs once per rollout batch, vocab views per micro-batch. On a batch whose rows carry
    images (``rollout.vision``) the images are perturbed: random ``patch_size``-pixel patches
    blackened (:class:`~rlobj.rollout.perception.PatchBlackening`, PAPO's 14 px and ratio 0.6
    by default); on text rows, prompt spans are masked
    (:class:`~rlobj.rollout.perception.PromptSpanMask`, ratio 0.6). Each row's draw depends only
    on (perturbation seed, data step, the row's index in the global batch: ``ctx.row_offset`` +
    its index on this rank), so neither micro-batching nor the number of ranks changes it.

    Args:
        perturbation: arguments of ``PromptSpanMask`` (``ratio``, ``span``, ``seed``, ``mode``,
            ``mask_id``), or ``{patches: {ratio, patch_size, seed, fill}}`` for
            ``PatchBlackening`` (the default on images), or a built perturbation. Patch
            blackening acts on the processor's ``pixel_values`` (``fill`` 0 is the mean
            colour after its normalisation).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:logp_perturbed", "extras:vocab_perturbed")

    def __init__(self, perturbation: dict[str, Any] | None = None):
        from rlobj.rollout.perception import PatchBlackening, PromptSpanMask

        self.given = perturbation is not None
        if isinstance(perturbation, (PromptSpanMask, PatchBlackening)):
            self.perturbation = perturbation
            return
        if perturbation is not None and not isinstance(perturbation, dict):
            raise RlobjInputError(f"PerturbedContext.perturbation: expected a mapping of PromptSpanMask "
                                  f"arguments or {{patches: {{...}}}}, got {perturbation!r}")
        args = dict(perturbation or {})
        try:
            if "patches" in args:
                if set(args) != {"patches"}:
                    raise TypeError(f"{{patches: ...}} takes no other keys, got {sorted(args)}")
                self.perturbation = PatchBlackening(**dict(args["patches"] or {}))
            else:
                self.perturbation = PromptSpanMask(**args)
        except (TypeError, ValueError) as error:  # unknown keys, and the specs' own checks
            raise RlobjInputError(f"PerturbedContext.perturbation: {error}") from error

    def _spec(self, rollout):
        from rlobj.rollout.perception import PatchBlackening

        if getattr(rollout, "vision", None) is None:
            if isinstance(self.perturbation, PatchBlackening):
                raise RlobjInputError("PerturbedContext: perturbation {patches: ...} blackens images, but the "
                                      "batch's rows carry none (text rows take PromptSpanMask arguments)")
            return self.perturbation
        if isinstance(self.perturbation, PatchBlackening):
            return self.perturbation
        if self.given:
            raise RlobjInputError("PerturbedContext: the batch's rows carry images; prompt-span masking would "
                                  "mask image placeholder tokens. Give perturbation: {patches: {...}}")
        return PatchBlackening()

    def _run(self, ctx, rollout, rows: Tensor, with_vocab: bool):
        from rlobj.rollout.perception import perception_forward
        from rlobj.rollout.vision import own_positions

        kwargs = dict(temperature=ctx.models.temperature, step=ctx.step, with_logp=not with_vocab,
                      with_vocab=with_vocab)
        spec = self._spec(rollout)
        if rollout.vision is not None:
            policy = ctx.models.policy
            inputs = rollout.vision.select(rows).model_inputs(next(policy.parameters()).dtype)
            pixels = inputs.pop("pixel_values")
            images = pixels.shape[0] // len(rows) if pixels.dim() == 4 and pixels.shape[0] % len(rows) == 0 else 0
            if images == 0:
                raise RlobjInputError(f"PerturbedContext: patch blackening needs image pixel_values of shape "
                                      f"[images, channels, height, width] with the same number of images per "
                                      f"row; got {tuple(pixels.shape)} for {len(rows)} rows")
            pixels = pixels.reshape(len(rows), images, *pixels.shape[1:])  # one key per row: [rows, images, ...]
            kwargs.update(pixel_values=pixels, model_inputs=inputs, position_ids=not own_positions(policy))
            view = _blackened_forward(policy, rollout, rows, spec, row_keys=rows + ctx.row_offset, **kwargs)
            return view
        return perception_forward(ctx.models.policy, rollout.prompt_ids[rows], rollout.prompt_mask[rows],
                                  rollout.response_ids[rows], rollout.response_mask[rows], spec,
                                  row_keys=rows + ctx.row_offset, **kwargs)

    def batch(self, ctx, batch, inputs):
        if "extras:logp_perturbed" not in self.needed or "logp_perturbed" in batch.extras:
            return {}
        rollout = batch.rollout
        index = torch.arange(len(rollout), device=rollout.response_ids.device)
        with torch.no_grad():
            pieces = [self._run(ctx, rollout, index[part], False).logp.float()
                      for part in ctx.models.chunks(len(rollout))]
        return {"extras:logp_perturbed": torch.cat(pieces)}

    def micro(self, ctx, batch, rows, inputs):
        if "extras:vocab_perturbed" not in self.needed:
            return {}
        with torch.no_grad():
            return {"extras:vocab_perturbed": self._run(ctx, batch.rollout, rows, True).vocab}


def _blackened_forward(policy, rollout, rows, spec, *, pixel_values, row_keys, **kwargs):
    """:func:`perception_forward` with ``[rows, images, C, H, W]`` pixels: the patches are drawn
    per row (``row_keys``), then the images are flattened back for the model."""
    from rlobj.rollout.perception import PerceptionView, blacken_patches, perception_forward

    perturbed, blackened = blacken_patches(pixel_values, spec, kwargs["step"], row_keys)
    flat = perturbed.reshape(-1, *perturbed.shape[2:])
    view = perception_forward(policy, rollout.prompt_ids[rows], rollout.prompt_mask[rows], rollout.response_ids[rows],
                              rollout.response_mask[rows], None, pixel_values=flat, **kwargs)
    return PerceptionView(logp=view.logp, vocab=view.vocab, perturbed=blackened)
