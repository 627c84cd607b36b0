"""Small text batches on the tiny module and one training update through a chain, shared by the
providers' test modules (tests/train/providers/test_*.py)."""

import math

import torch

from rlobj.rollout import RolloutBatch, left_pad_prompts
from rlobj.train.forward import token_logprobs
from rlobj.train.stages import Batch, Score


def text_rollout(module, prompts: list[str], responses: list[str], group_size: int) -> RolloutBatch:
    """A rollout of the given response texts (EOS appended), ``group_size`` rows per group."""
    tok = module.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    prompt_ids, prompt_mask = left_pad_prompts([module.encode(p) for p in prompts], pad)
    ids = [module.encode(r) + [eos] for r in responses]
    width = max(len(i) for i in ids)
    response_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    response_mask = torch.zeros(len(ids), width, dtype=torch.bool)
    for row, seq in enumerate(ids):
        response_ids[row, :len(seq)] = torch.tensor(seq)
        response_mask[row, :len(seq)] = True
    with torch.no_grad():
        logp, _ = token_logprobs(module.policy, prompt_ids, prompt_mask, response_ids, response_mask)
    rows = len(ids)
    return RolloutBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                        response_mask=response_mask, logp_rollout=logp,
                        group_ids=torch.arange(rows) // group_size, truncated=torch.zeros(rows, dtype=torch.bool),
                        finish_reasons=("stop",) * rows)


def text_batch(module, responses, records, rewards=None, fields=None, group_size=4) -> Batch:
    """A scored Batch: ``records[g]`` for group g; rewards default to ExactAnswer on the texts."""
    rows = [records[row // group_size] for row in range(len(responses))]
    if rewards is None:
        rewards = [float(r.strip() == rec["answer"]) for r, rec in zip(responses, rows)]
    fields = fields or [{}] * len(responses)
    rollout = text_rollout(module, [r["prompt"] for r in rows], responses, group_size)
    return Batch(rollout=rollout, records=rows, scores=[Score(float(r), fields=f) for r, f in zip(rewards, fields)])


def weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


def trains(module, batch, metric: str) -> dict:
    """One update through ``update_on_batch``: finite metrics, the term's metric present, weights moved."""
    before = weights(module)
    metrics = module.update_on_batch(batch, module.context(0))
    assert metric in metrics, sorted(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values()), metrics
    assert float((weights(module) - before).abs().max()) > 0
    return metrics


def run(provider, module, batch, terms=()):
    provider.setup(tuple(terms))
    return provider.batch(module.context(0), batch, {"rewards": batch.rewards})


ADD = [{"prompt": "2+3=", "answer": "5", "completion": "5"}, {"prompt": "4+4=", "answer": "8", "completion": "8"},
       {"prompt": "1+2=", "answer": "3", "completion": "3"}, {"prompt": "6+1=", "answer": "7", "completion": "7"}]
