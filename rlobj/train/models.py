r"""The models a training step reads: the policy, the frozen reference, and their forward passes.

:class:`Models` is what providers and the update loop call instead of touching the module: a
forward of any model over rows of a :class:`~rlobj.rollout.RolloutBatch` (log-probs and
entropy, or a lazy :class:`~rlobj.ops.vocab.VocabView`), in micro-batch chunks when no gradient
is needed. The reference is the policy as it was at the first RL step (a frozen copy made on
first use), unless one is set.
"""

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from rlobj.rollout import RolloutBatch
from rlobj.train.forward import (
    chunked_logprobs,
    supports_chunked,
    token_logprobs,
    view_logprobs,
    vocab_view,
)

__all__ = ["Models"]


def _pixels(rollout: RolloutBatch, rows, model) -> dict:
    """``{"model_inputs": ...}``: the rows' pixel inputs of a multimodal batch (in the model's
    float dtype), or nothing for text."""
    vision = getattr(rollout, "vision", None)
    if vision is None:
        return {}
    dtype = next(model.parameters()).dtype
    return {"model_inputs": vision.select(rows).model_inputs(dtype)}


class Models:
    """Policy + reference and their forwards over rollout rows.

    Args:
        policy: the trained causal LM.
        temperature: the sampling temperature log-probs are computed at.
        micro_batch_size: rows per no-grad forward chunk (None: all rows at once).
        reference_factory: builds the reference on first use (default: a frozen deep copy of
            the policy).
        logits: ``"chunked"`` computes log-probs and entropy from hidden states and the output
            projection chunk by chunk (:func:`~rlobj.train.forward.chunked_logprobs`: no
            ``[tokens, vocab]`` float tensor), ``"full"`` from the model's full logits
            (:func:`~rlobj.train.forward.token_logprobs`), ``"auto"`` chunked when the model
            exposes a decoder and an output projection, else full.
        packing: run every forward on the rows packed into one sequence without padding
            (:mod:`rlobj.train.packing`; same values, fewer positions).
    """

    def __init__(self, policy, temperature: float = 1.0, micro_batch_size: int | None = None,
                 reference_factory: Callable[[], torch.nn.Module] | None = None, logits: str = "auto",
                 packing: bool = False):
        if logits not in ("auto", "chunked", "full"):
            raise ValueError(f"logits: expected 'auto', 'chunked' or 'full', got {logits!r}")
        if logits == "chunked" and not supports_chunked(policy):
            raise ValueError(f"logits: 'chunked' needs a model with get_decoder() and an output projection; "
                             f"{type(policy).__name__} has none (use 'full')")
        self.policy = policy
        self.logits = "chunked" if logits == "auto" and supports_chunked(policy) else ("full" if logits == "auto" else logits)
        self.temperature = float(temperature)
        self.micro_batch_size = micro_batch_size
        if packing:
            from rlobj.train.packing import check_packing_support

            check_packing_support()
        self.packing = bool(packing)
        self._reference = None
        self._reference_factory = reference_factory

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    @property
    def reference(self):
        """The frozen reference policy (built on first use)."""
        if self._reference is None:
            factory = self._reference_factory or (lambda: copy.deepcopy(self.policy).requires_grad_(False))
            self.set_reference(factory())
        return self._reference

    def set_reference(self, model) -> None:
        self._reference = model.requires_grad_(False) if model is not None else None

    def chunks(self, rows: int) -> list[slice]:
        """Slices of at most ``micro_batch_size`` rows covering ``range(rows)``."""
        size = self.micro_batch_size or max(rows, 1)
        return [slice(i, i + size) for i in range(0, rows, size)]

    def forward(self, rollout: RolloutBatch, rows, model=None, with_entropy: bool = False,
                temperature: float | None = None) -> tuple[Tensor, Tensor | None]:
        """``(logp, entropy)`` of ``rows`` under ``model`` (default the policy), in the caller's grad mode."""
        model = self.policy if model is None else model
        compute = chunked_logprobs if self.logits == "chunked" and supports_chunked(model) else token_logprobs
        return compute(model, rollout.prompt_ids[rows], rollout.prompt_mask[rows], rollout.response_ids[rows],
                       rollout.response_mask[rows], temperature=self.temperature if temperature is None else temperature,
                       with_entropy=with_entropy, packed=self.packing, **_pixels(rollout, rows, model))

    def view(self, rollout: RolloutBatch, rows, model=None, temperature: float | None = None):
        """The :class:`~rlobj.ops.vocab.VocabView` of ``rows`` under ``model`` (no ``[tokens, vocab]`` logits)."""
        model = self.policy if model is None else model
        return vocab_view(model, rollout.prompt_ids[rows], rollout.prompt_mask[rows],
                          rollout.response_ids[rows], rollout.response_mask[rows],
                          temperature=self.temperature if temperature is None else temperature, packed=self.packing,
                          **_pixels(rollout, rows, model))

    def view_logprobs(self, rollout: RolloutBatch, rows, model=None):
        """``(logp, entropy, view)`` of ``rows`` from one vocab view."""
        view = self.view(rollout, rows, model)
        logp, entropy = view_logprobs(view, rollout.response_ids[rows], rollout.response_mask[rows])
        return logp, entropy, view

    @torch.no_grad()
    def no_grad_logprobs(self, rollout: RolloutBatch, model=None, with_entropy: bool = False,
                         rows=None) -> tuple[Tensor, Tensor | None]:
        """``(logp, entropy)`` of all rows (or ``rows``) without gradient, in micro-batch chunks."""
        index = torch.arange(len(rollout)) if rows is None else torch.as_tensor(rows)
        index = index.to(rollout.response_ids.device)
        logps, entropies = [], []
        for part in self.chunks(len(index)):
            logp, entropy = self.forward(rollout, index[part], model, with_entropy=with_entropy)
            logps.append(logp)
            entropies.append(entropy)
        logp = torch.cat(logps) if logps else rollout.logp_rollout[:0]
        return logp, (torch.cat(entropies) if with_entropy and entropies else None)
