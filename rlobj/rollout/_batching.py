"""Assembling RolloutBatches from rows (shared by the rollout strategies; not public API)."""

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from rlobj.ops.rows import take_rows_of
from rlobj.rollout.engine import RolloutBatch
from rlobj.rollout.vision import VisionInputs


def batch_from_rows(prompts: Sequence[Tensor], responses: Sequence[Tensor],
                    logps: Sequence[Tensor], group_ids: Sequence[int], finished: Sequence[bool],
                    pad_token_id: int, device: torch.device | str = "cpu") -> RolloutBatch:
    """One RolloutBatch from per-row 1-D prompt ids, response ids, log-probs and flags.

    Prompts are left padded, responses right padded (width at least 1, as the engines do).
    ``finished[b]`` False means truncated (``finish_reasons`` "length").
    """
    rows = len(prompts)
    if not (len(responses) == len(logps) == len(group_ids) == len(finished) == rows):
        raise ValueError("batch_from_rows: every per-row list must have the same length")
    prompt_width = max((int(p.numel()) for p in prompts), default=1)
    width = max([1] + [int(r.numel()) for r in responses])
    prompt_ids = torch.full((rows, prompt_width), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((rows, prompt_width), dtype=torch.bool)
    response_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((rows, width), dtype=torch.bool)
    logp_rollout = torch.zeros((rows, width), dtype=torch.float32)
    for row in range(rows):
        prompt, response = prompts[row].cpu(), responses[row].cpu()
        if prompt.numel():
            prompt_ids[row, prompt_width - prompt.numel():] = prompt
            prompt_mask[row, prompt_width - prompt.numel():] = True
        response_ids[row, :response.numel()] = response
        response_mask[row, :response.numel()] = True
        logp_rollout[row, :response.numel()] = logps[row].cpu().float()
    truncated = torch.tensor([not flag for flag in finished], dtype=torch.bool)
    return RolloutBatch(
        prompt_ids=prompt_ids.to(device), prompt_mask=prompt_mask.to(device),
        response_ids=response_ids.to(device), response_mask=response_mask.to(device),
        logp_rollout=logp_rollout.to(device),
        group_ids=torch.tensor(list(group_ids), dtype=torch.long).to(device),
        truncated=truncated.to(device),
        finish_reasons=tuple("length" if flag else "stop" for flag in truncated.tolist()),
    )


def rows_of(batch: RolloutBatch) -> list[tuple[Tensor, Tensor, Tensor, int, bool]]:
    """Split a batch into (prompt ids, response ids, log-probs, group id, finished) per row."""
    out = []
    for row in range(len(batch)):
        response_mask = batch.response_mask[row]
        out.append((batch.prompt_ids[row][batch.prompt_mask[row]],
                    batch.response_ids[row][response_mask],
                    batch.logp_rollout[row][response_mask],
                    int(batch.group_ids[row]), not bool(batch.truncated[row])))
    return out


def concat_rollouts(batches: Sequence[RolloutBatch], pad_token_id: int,
                    group_offsets: Sequence[int] | None = None) -> RolloutBatch:
    """Concatenate batches row-wise (re-padding), optionally adding an offset to group ids."""
    if not batches:
        raise ValueError("concat_rollouts: batches must not be empty")
    rows = []
    for index, batch in enumerate(batches):
        offset = 0 if group_offsets is None else group_offsets[index]
        rows += [(p, r, lp, g + offset, f) for p, r, lp, g, f in rows_of(batch)]
    device = batches[0].prompt_ids.device
    joined = batch_from_rows([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             [r[3] for r in rows], [r[4] for r in rows], pad_token_id, device)
    vision = VisionInputs.concat([b.vision for b in batches], [len(b) for b in batches])
    return joined if vision is None else dataclasses.replace(joined, vision=vision)


def take(batch: RolloutBatch, index: Tensor) -> RolloutBatch:
    """Rows ``index`` of a batch (same padding widths; vision inputs too): :func:`rlobj.ops.rows.take_rows_of`."""
    return take_rows_of(batch, index, len(batch))
