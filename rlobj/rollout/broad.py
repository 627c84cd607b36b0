r"""BroRL: hundreds of rollouts per prompt, with the objective run over memory-bounded micro-batches.

Hu et al. (NVIDIA), "BroRL: Scaling Reinforcement Learning via Broadened Exploration",
arXiv 2510.01180. BroRL raises the number of rollouts per prompt $N$ from the usual 8-16 to
hundreds (the paper scales $N = 16 \to 512$) and keeps the GRPO-style objective unchanged: its
mass-balance analysis shows that with large $N$ the unsampled-token terms vanish and the
correct-token mass grows. What changes is engineering: $N \gg G$ rollouts do not fit one engine
call or one backward pass. This module samples them: :func:`generate_broad` draws $N$ rollouts
per prompt in engine-sized calls of at most ``chunk_size`` sequences and returns one
:class:`~rlobj.rollout.engine.RolloutBatch` whose groups are complete and contiguous (group id =
prompt index). The trainer's ``broad`` sampler (:class:`rlobj.train.samplers.BroadSampler`) calls
it; the update stage (:func:`rlobj.train.update.run_update`) then runs the objective over
micro-batches with one global normaliser, so the micro-batch size bounds memory and changes no
gradient.
"""

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from rlobj.rollout._batching import concat_rollouts, take
from rlobj.rollout.engine import RolloutBatch, SamplingConfig, validate_generate_args

__all__ = ["generate_broad"]


def _check_positive(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")


def generate_broad(engine, prompts: Sequence[Sequence[int] | Tensor], n: int,
                   sampling: SamplingConfig, chunk_size: int) -> RolloutBatch:
    r"""Sample ``n`` rollouts per prompt (BroRL: $N$ in the hundreds) in calls of <= ``chunk_size``.

    Each engine call samples ``k = max(1, chunk_size // len(prompts))`` responses for each of at
    most ``chunk_size`` prompts; calls are seeded ``seed + 1_000_003 * call`` (distinct streams,
    reproducible) when ``sampling.seed`` is set. Rows are then reordered so that response ``b``
    answers prompt ``b // n`` (contiguous groups, group id = prompt index), as from one call.

    Args:
        engine: any :class:`~rlobj.rollout.engine.Engine` with a ``pad_token_id`` attribute.
        prompts: token id sequences.
        n: rollouts per prompt $N \ge 1$ (BroRL: 512).
        sampling: the sampling settings of every call.
        chunk_size: largest number of sequences per engine call (the engine's memory bound).

    Returns:
        A batch of ``len(prompts) * n`` rows.
    """
    validate_generate_args(prompts, n, sampling)
    _check_positive("generate_broad", "chunk_size", chunk_size)
    prompts = list(prompts)
    prompt_chunk = min(len(prompts), chunk_size)
    per_call = max(1, chunk_size // prompt_chunk)
    batches, offsets, call = [], [], 0
    for p0 in range(0, len(prompts), prompt_chunk):
        chunk_prompts = prompts[p0:p0 + prompt_chunk]
        done = 0
        while done < n:
            k = min(per_call, n - done)
            seed = None if sampling.seed is None else sampling.seed + 1_000_003 * call
            batches.append(engine.generate(chunk_prompts, n=k, sampling=replace(sampling, seed=seed)))
            offsets.append(p0)
            done += k
            call += 1
    merged = concat_rollouts(batches, engine.pad_token_id, offsets)
    order = torch.sort(merged.group_ids.cpu(), stable=True).indices
    return take(merged, order)
