"""The supervised warm-up step (rlobj/train/supervised.py): demonstrations as a batch (prompt,
completion + EOS, one group per record) and SFT steps that lower the NLL."""

import functools

import torch

from ._helpers import tiny_module


def test_sft_update_lowers_the_nll():
    module = tiny_module(optimizer=functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.0))
    records = [{"prompt": "1+2=", "completion": "3"}, {"prompt": "10+5=", "completion": "15"}]
    first = module.sft_update(records)["sft/nll"]
    for _ in range(20):
        last = module.sft_update(records)["sft/nll"]
    assert last < first * 0.5


def test_demonstrations_are_prompt_then_completion_and_eos():
    from rlobj.train.supervised import demonstrations

    module = tiny_module()
    records = [{"prompt": "1+2=", "completion": "3"}, {"prompt": "10+5=", "completion": "15"}]
    batch = demonstrations(module, records)
    eos = module.tokenizer.eos_token_id
    assert batch.group_ids.tolist() == [0, 1] and not batch.truncated.any()
    for row, record in enumerate(records):
        response = batch.response_ids[row][batch.response_mask[row]].tolist()
        prompt = batch.prompt_ids[row][batch.prompt_mask[row]].tolist()
        assert response == module.encode(record["completion"]) + [eos]
        assert prompt == module.encode(record["prompt"])
    assert batch.prompt_mask[0, 0].item() is False  # prompts are left-padded (the shorter one)
    assert batch.response_mask[0, -1].item() is False  # responses are right-padded
