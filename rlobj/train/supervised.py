"""The supervised warm-up step: token NLL (``sft_objective``) on the records' demonstrations."""

from collections import defaultdict

import torch

from rlobj.algebra import Normalizer
from rlobj.rollout import RolloutBatch, left_pad_prompts, right_pad_responses

__all__ = ["demonstrations", "sft_step", "sft_on_rollout"]


def demonstrations(module, records: list[dict]) -> RolloutBatch:
    """``prompt`` + ``completion`` + EOS of each record as a batch (one group per record); rows
    with ``images`` keep their pixel inputs (``rollout.vision``)."""
    from rlobj.rollout.vision import encode_records
    from rlobj.train.policies import processor_of

    eos, pad = module.tokenizer.eos_token_id, module.tokenizer.pad_token_id
    prompts, vision = encode_records(records, module.encode, processor_of(module.tokenizer))
    responses = [module.encode(str(r["completion"])) + [eos] for r in records]
    prompt_ids, prompt_mask = left_pad_prompts(prompts, pad)
    response_ids, response_mask = right_pad_responses(responses, pad)
    device = module.device_of_policy()
    return RolloutBatch(prompt_ids=prompt_ids.to(device), prompt_mask=prompt_mask.to(device),
                        response_ids=response_ids.to(device), response_mask=response_mask.to(device),
                        logp_rollout=torch.zeros(response_ids.shape, device=device),
                        group_ids=torch.arange(len(records), device=device),
                        truncated=torch.zeros(len(records), dtype=torch.bool, device=device),
                        finish_reasons=("stop",) * len(records),
                        vision=None if vision is None else vision.to(device))


def sft_step(module, records: list[dict]) -> dict[str, float]:
    """One optimizer step of ``module.sft_objective`` in micro-batches with one global normaliser."""
    return sft_on_rollout(module, demonstrations(module, records), module.cfg.warmup.lr)


def sft_on_rollout(module, rollout: RolloutBatch, lr: float | None = None) -> dict[str, float]:
    """One optimizer step of ``module.sft_objective`` on the responses of ``rollout`` (token ids
    as they are: sampled paths train without a decode/encode round trip) at learning rate ``lr``
    (None: the optimizer's own)."""
    chunks = module.models.chunks(len(rollout))
    normalizer = Normalizer.from_masks([rollout.response_mask[c] for c in chunks])
    sums: dict[str, float] = defaultdict(float)
    module.policy.train()
    for chunk in chunks:
        logp, _ = module.models.forward(rollout, chunk)
        state = module.sft_objective.prepare(logp=logp, mask=rollout.response_mask[chunk])
        out = module.sft_objective.loss(state, normalizer=normalizer)
        module._backward(out.loss)
        for key, value in out.metrics.items():
            sums[key] += float(value) / len(chunks)
    module._optimizer()
    lrs = [lr] * len(module.base_lrs) if lr else list(module.base_lrs)
    sums["grad_norm"] = module._step(lrs)
    sums["lr"] = lrs[0]
    return dict(sums)
