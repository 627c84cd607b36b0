r"""UloRL segment rollouts: decode ultra-long outputs a segment per training step.

Du et al., "UloRL: An Ultra-Long Output Reinforcement Learning Approach for Advancing Large
Language Models' Reasoning Abilities", arXiv 2507.19766 (segment rollout, Sec. 3.1). A response
budget of $L$ tokens (``SamplingConfig.max_new_tokens``; the paper: 128k) is decoded in
segments of $S$ tokens (``segment_tokens``; the paper: 8 x 16k). Each call of
:meth:`SegmentRollout.generate` admits the new prompts, advances **every** pending sample by at
most one segment, and returns the samples that are complete; the unfinished ones keep their
prefix and continue at the next call (after the trainer's optimizer step, i.e. under newer
weights). Long-tail samples no longer stall a step. Reference settings: temperature 0.85, 8
samples per prompt.

Bookkeeping:

* a sample is **finished** when it produced an EOS token (``"stop"``) or its length reached $L$
  (``"length"``, truncated);
* ``release="group"`` (default) returns a prompt's samples only when all ``n`` of them are
  finished, so group statistics (GRPO) see complete groups; ``release="sample"`` returns each
  sample as soon as it is finished ([UNVERIFIED] which of the two UloRL uses; it trains on
  "finished samples");
* ``group_ids`` of returned rows are serial numbers of the admitted prompts, unique across
  calls (0, 1, 2, ... in admission order); :attr:`SegmentRollout.last_keys` maps each returned row
  to the key passed with its prompt (default: the serial number);
* ``logp_rollout`` holds, for each token, the log-prob under the distribution it was sampled
  from, i.e. under the weights of the call that sampled it; :attr:`SegmentRollout.last_segments`
  ``[batch, seq]`` gives that call's index (0 = the oldest). UloRL's pseudo-on-policy importance
  sampling sets the ratio to 1 by using the latest policy as "old" policy: recompute ``logp_old``
  with the current weights (what rlobj's trainer does).

With unchanged weights, a continued sample is the same random process as one long decode: the
prefix is re-read (prompt + prefix as one left-padded context), the schedule position continues
(``offsets``), and one ``torch.Generator`` (seeded once from ``sampling.seed``) is kept across
calls.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from rlobj.rollout._batching import batch_from_rows
from rlobj.rollout.engine import (
    RolloutBatch,
    SamplingConfig,
    left_pad_prompts,
    validate_generate_args,
)

__all__ = ["SegmentRollout"]


@dataclass
class _Sample:
    serial: int
    key: object
    prompt: Tensor
    tokens: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    stopped: bool = False
    finished: bool = False


class SegmentRollout:
    r"""Segment-wise decoding of long responses across training steps (UloRL, arXiv 2507.19766).

    Args:
        engine: an :class:`~rlobj.rollout.hf_engine.HFEngine` (anything with ``decode_rows``,
            ``pad_token_id``, ``eos_token_ids`` and ``model``).
        segment_tokens: tokens decoded per call and sample, $S \ge 1$ (paper: 16k).
        release: ``"group"`` (default) or ``"sample"``; see the module notes.

    ``generate(prompts, n, sampling)`` follows the engine interface; ``sampling.max_new_tokens``
    is the whole response budget $L$. ``prompts`` may be empty once samples are pending (a call
    that only continues them). :attr:`pending` counts unreturned samples; :meth:`reset` drops them.
    """

    supports_sleep = False

    def __init__(self, engine, segment_tokens: int, release: str = "group") -> None:
        if isinstance(segment_tokens, bool) or not isinstance(segment_tokens, int) \
                or segment_tokens < 1:
            raise ValueError(
                f"SegmentRollout: segment_tokens must be an int >= 1, got {segment_tokens!r}")
        if release not in ("group", "sample"):
            raise ValueError(f"SegmentRollout: release must be 'group' or 'sample', got {release!r}")
        if not hasattr(engine, "decode_rows"):
            raise TypeError(
                f"SegmentRollout: engine must provide decode_rows (HFEngine), got "
                f"{type(engine).__name__}")
        self.engine = engine
        self.segment_tokens = segment_tokens
        self.release = release
        self.reset()

    def reset(self) -> None:
        """Forget every pending sample and the random stream."""
        self._samples: list[_Sample] = []
        self._serial = 0
        self._calls = 0
        self._generator: torch.Generator | None = None
        self._sampling: SamplingConfig | None = None
        self.last_keys: list = []
        self.last_segments: Tensor | None = None

    @property
    def pending(self) -> int:
        """Number of admitted samples not yet returned."""
        return len(self._samples)

    def generate(self, prompts: Sequence[Sequence[int] | Tensor], n: int,
                 sampling: SamplingConfig, keys: Sequence | None = None) -> RolloutBatch:
        r"""Admit ``prompts`` (``n`` samples each), decode one segment, return finished samples.

        Args:
            prompts: new prompts (may be empty when samples are pending).
            n: samples per new prompt.
            sampling: settings; ``max_new_tokens`` is the full budget $L$. The seed of the first
                call seeds the generator kept across calls; later calls must use the same
                ``max_new_tokens``; the other settings apply to the segment decoded now.
            keys: optional per-prompt keys reported in :attr:`last_keys`.

        Returns:
            The finished samples (possibly 0 rows), on the model's device.
        """
        if len(prompts) > 0 or not self._samples:
            validate_generate_args(prompts, n, sampling)
        if keys is not None and len(keys) != len(prompts):
            raise ValueError(
                f"SegmentRollout.generate: keys must have one entry per prompt ({len(prompts)}), "
                f"got {len(keys)}")
        if self._sampling is not None and self._sampling.max_new_tokens != sampling.max_new_tokens:
            raise ValueError(
                "SegmentRollout.generate: sampling.max_new_tokens (the response budget) changed "
                f"while samples are pending: {self._sampling.max_new_tokens} -> "
                f"{sampling.max_new_tokens}")
        device = next(self.engine.model.parameters()).device
        if self._generator is None and sampling.seed is not None:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(sampling.seed)
        self._sampling = sampling
        if len(prompts):
            left_pad_prompts(prompts, self.engine.pad_token_id, self.engine.vocab_size)  # checks
        for index, prompt in enumerate(prompts):
            row = torch.as_tensor(list(prompt) if not isinstance(prompt, Tensor) else prompt,
                                  dtype=torch.long).cpu()
            key = self._serial if keys is None else keys[index]
            for _ in range(n):
                self._samples.append(_Sample(serial=self._serial, key=key, prompt=row))
            self._serial += 1
        self._advance(sampling, device)
        self._calls += 1
        return self._release(device)

    def _advance(self, sampling: SamplingConfig, device) -> None:
        active = [s for s in self._samples if not s.finished]
        if not active:
            return
        budget = sampling.max_new_tokens
        steps = min(self.segment_tokens, max(budget - len(s.tokens) for s in active))
        contexts = [torch.cat([s.prompt, torch.tensor(s.tokens, dtype=torch.long)]) for s in active]
        prompt_ids, prompt_mask = left_pad_prompts(contexts, self.engine.pad_token_id)
        offsets = torch.tensor([len(s.tokens) for s in active], dtype=torch.long, device=device)
        ids, mask, logp, _ = self.engine.decode_rows(
            prompt_ids.to(device), prompt_mask.to(device),
            replace(sampling, max_new_tokens=steps), self._generator, offsets)
        eos = set(self.engine.eos_token_ids)
        for row, sample in enumerate(active):
            new = ids[row][mask[row]].tolist()[:budget - len(sample.tokens)]
            sample.tokens += new
            sample.logps += logp[row][mask[row]].tolist()[:len(new)]
            sample.segments += [self._calls] * len(new)
            sample.stopped = bool(new) and new[-1] in eos
            sample.finished = sample.stopped or len(sample.tokens) >= budget

    def _release(self, device) -> RolloutBatch:
        if self.release == "sample":
            out = [s for s in self._samples if s.finished]
        else:
            open_groups = {s.serial for s in self._samples if not s.finished}
            out = [s for s in self._samples if s.serial not in open_groups]
        chosen = {id(s) for s in out}
        self._samples = [s for s in self._samples if id(s) not in chosen]
        if not self._samples:
            self._sampling = None
        self.last_keys = [s.key for s in out]
        width = max([1] + [len(s.tokens) for s in out])
        segments = torch.full((len(out), width), -1, dtype=torch.long)
        for row, sample in enumerate(out):
            segments[row, :len(sample.segments)] = torch.tensor(sample.segments, dtype=torch.long)
        self.last_segments = segments.to(device)
        return batch_from_rows(
            [s.prompt for s in out], [torch.tensor(s.tokens, dtype=torch.long) for s in out],
            [torch.tensor(s.logps, dtype=torch.float32) for s in out], [s.serial for s in out],
            [s.stopped for s in out], self.engine.pad_token_id, device)

    def update_weights(self, named_params) -> None:
        """Forwarded to the wrapped engine."""
        self.engine.update_weights(named_params)

    def sleep(self) -> None:
        """No-op (the wrapped HFEngine keeps no memory between calls)."""

    def wake(self) -> None:
        """No-op; see :meth:`sleep`."""
