"""Plain references of the policy's forward (test_objective_inputs.py, test_reference_providers.py): a
batch around a rollout and the whole [batch, seq, vocab] logits of the HF forward."""

import torch

from rlobj.train.stages import Batch


def batch_of(rollout) -> Batch:
    return Batch(rollout=rollout, records=[{"prompt": ""}] * len(rollout))


def full_logits(module, rollout, temperature=1.0):
    """Plain reference: the whole [batch, seq, vocab] logits of the HF forward."""
    input_ids = torch.cat([rollout.prompt_ids, rollout.response_ids], 1)
    attention = torch.cat([rollout.prompt_mask, rollout.response_mask], 1)
    from rlobj.rollout.logprobs import positions_from_mask

    with torch.no_grad():
        logits = module.policy(input_ids=input_ids, attention_mask=attention.long(),
                               position_ids=positions_from_mask(attention)).logits
    return logits[:, -(rollout.response_ids.shape[1] + 1):-1].float() / temperature
