"""Providers of rlobj/train/providers/steps.py (ReasoningSteps, TokenInfluence): hand-checked values
on small text batches, one training update through each consuming term, the prefix-decoding
fallback of split_steps."""

import dataclasses

import pytest
import torch
from train._helpers import tiny_module
from train.providers._text_batches import ADD, run, text_batch, trains

from rlobj import (
    batch_whiten,
    critique_token_advantage,
    group_zscore,
    grpo,
    ppr_renorm,
    token_hidden_reward,
    vsrm_step_reward,
)
from rlobj.rollout import RolloutBatch
from rlobj.train.providers import ReasoningSteps, TokenInfluence
from rlobj.train.providers.steps import check_equations, split_steps
from rlobj.train.stages import Batch


# --------------------------------------------------------------------------- steps
def test_split_steps_maps_delimiters_to_tokens(module):
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "12", "4 4"], ADD[:1])
    ends, steps, texts = split_steps(module.context(0), batch.rollout, " ")
    assert texts[0] == "1+2=3 3*2=7"
    assert ends[0].nonzero().flatten().tolist() == [5, 11]  # the space, then EOS
    assert [s.text for s in steps[0]] == ["1+2=3 ", "3*2=7"]
    assert ends[1].nonzero().flatten().tolist() == [2]  # a trailing delimiter ends no separate step
    assert ends[2].nonzero().flatten().tolist() == [2] and ends[3].nonzero().flatten().tolist() == [1, 3]
    assert check_equations("1+2*3=7 and 2-5=-3") == 1.0 and check_equations("9=8") == 0.0


def test_process_rewards_and_critic_votes(module):
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "12", "4 5"], [{**ADD[0], "completion": "4 5"}])
    out = run(ReasoningSteps(delimiter=" ", critic_noise=0.0, critics=3), module, batch)
    process, votes = out["extras:process_rewards"], out["extras:step_wrong_votes"]
    assert process[0, [5, 11]].tolist() == [1.0, 0.0] and votes[0, [5, 11]].tolist() == [0.0, 1.0]
    assert process[1, 2] == 0.5 and float(votes[1, 2] * 3) == pytest.approx(round(float(votes[1, 2] * 3)))
    assert float(process[~out["extras:step_ends"]].abs().sum()) == 0
    prefix = run(ReasoningSteps(delimiter=" ", checker="reference_prefix"), module, batch)["extras:process_rewards"]
    assert prefix[3, [1, 3]].tolist() == [1.0, 1.0] and prefix[2, 2] == 0.0 and prefix[0, 5] == 0.0
    given = text_batch(module, ["1+2=3 3*2=7"] * 4, ADD[:1], fields=[{"process_rewards": [0.25, 0.75]}] * 4)
    assert run(ReasoningSteps(delimiter=" "), module, given)["extras:process_rewards"][0, [5, 11]].tolist() == [0.25, 0.75]


def test_step_accuracy_scores_prefix_plus_continuation(module):
    """A scripted sampler that always continues with "6": prefix "4" of answer "46" becomes correct."""
    eos = module.tokenizer.eos_token_id
    seen = []

    def sample(records, n=None, salt=0, **changes):
        seen.append(([r["prompt"] for r in records], changes["seed"]))
        rows = len(records) * n
        ids = torch.tensor([[module.encode("6")[0], eos]] * rows)
        rollout = RolloutBatch(prompt_ids=torch.ones(rows, 1, dtype=torch.long),
                               prompt_mask=torch.ones(rows, 1, dtype=torch.bool), response_ids=ids,
                               response_mask=torch.ones(rows, 2, dtype=torch.bool), logp_rollout=torch.zeros(rows, 2),
                               group_ids=torch.arange(len(records)).repeat_interleave(n),
                               truncated=torch.zeros(rows, dtype=torch.bool), finish_reasons=("stop",) * rows)
        return Batch(rollout=rollout, records=[records[i] for i in rollout.group_ids.tolist()])

    ctx = module.context(0)
    ctx = dataclasses.replace(ctx, sample=sample)
    records = [{"prompt": "40+6=", "answer": "46", "completion": "46"}]
    batch = text_batch(module, ["4 6", "46", "4", "5"], records)
    provider = ReasoningSteps(delimiter=" ", samples=2)
    out = provider.batch(ctx, batch, {"rewards": batch.rewards})
    # one call per prefix, each seeded from its row's content and the prefix (rank-independent)
    assert [p for prompts, _ in seen for p in prompts] == ["40+6=", "40+6=4 ", "40+6=4 6", "40+6=46", "40+6=4", "40+6=5"]
    assert all(len(prompts) == 1 for prompts, _ in seen) and len({seed for _, seed in seen}) == len(seen)
    first = list(seen)
    seen.clear()
    provider.batch(ctx, batch, {"rewards": batch.rewards})
    assert seen == first
    # continuations: "6" | "4 6"->"4 66" | "4 6 6"... : only "4"+"6" = "46" is right
    assert out["extras:start_accuracy"].tolist() == [0.0] * 4
    step = out["extras:step_accuracy"]
    assert step[0, [1, 3]].tolist() == [0.0, 0.0] and step[1, 2] == 0.0 and step[2, 1] == 1.0 and step[3, 1] == 0.0


def test_ppr_renorm_trains_from_steps():
    module = tiny_module(objective=ppr_renorm() >> grpo.replace(group_zscore, batch_whiten()), update=dict(micro_batch_size=4),
                         providers=[{"ReasoningSteps": {"delimiter": " "}}])
    texts = ["2+3=5 5", "5", "2+3=6 6", "1", "4+4=8", "8", "8 8", "3", "3", "1+2=3", "1+2=4 4", "0",
             "7", "6+1=7 7", "6", "7 7"]
    metrics = trains(module, text_batch(module, texts, ADD), "ppr/steps")
    assert metrics["ppr/steps"] > 0  # judged turns: every step but the answer (the last)


def test_critique_token_advantage_trains_from_votes():
    objective = grpo.replace(group_zscore, group_zscore() >> critique_token_advantage())
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4), providers=[{"ReasoningSteps": {"delimiter": " "}}])
    texts = ["2+3=5 5", "5", "2+3=6 6", "1", "4+4=8", "8", "4+4=9 8", "3", "3", "1+2=3", "1+2=4 4", "0",
             "7", "6+1=7 7", "6", "6+1=8 7"]
    trains(module, text_batch(module, texts, ADD), "capo/wrong_token_frac")


def test_vsrm_trains_with_sampled_prefix_accuracy():
    module = tiny_module(objective=vsrm_step_reward() >> grpo.replace(group_zscore, batch_whiten()),
                         update=dict(micro_batch_size=4), rollout=dict(max_new_tokens=3),
                         providers=[{"ReasoningSteps": {"delimiter": " ", "samples": 2}}])
    texts = ["2 5", "5", "1 1", "55", "8", "4 8", "8 8", "3", "3", "1 3", "3", "0", "7", "6 1", "7 7", "71"]
    batch = text_batch(module, texts, ADD)
    out = module.providers[0].batch(module.context(0), batch, {"rewards": batch.rewards})
    accuracy = out["extras:step_accuracy"][out["extras:step_ends"]]
    assert set((accuracy * 2).tolist()) <= {0.0, 1.0, 2.0}
    start = out["extras:start_accuracy"]
    assert all(len(set(start[4 * g:4 * g + 4].tolist())) == 1 for g in range(4))
    trains(module, batch, "vsrm/steps")


# --------------------------------------------------------------------------- token influence
def _influence_loop(module, batch, threshold=0.5):
    """NTHR influence with explicit prediction-error vectors and hidden states (HF hidden_states)."""
    from rlobj.rollout.logprobs import joined_inputs

    rollout, policy = batch.rollout, module.policy
    with torch.no_grad():
        out = policy(**joined_inputs(rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                                     rollout.response_mask), output_hidden_states=True)
    seq = rollout.response_ids.shape[1]
    hidden = out.hidden_states[-1][:, -(seq + 1):-1].double()
    probs = torch.softmax(out.logits[:, -(seq + 1):-1].double(), -1)
    errors = torch.nn.functional.one_hot(rollout.response_ids, probs.shape[-1]).double() - probs
    rewards, groups, mask = batch.rewards, rollout.group_ids, rollout.response_mask
    result = torch.zeros(mask.shape, dtype=torch.float64)
    for i in range(len(rewards)):
        for k in range(seq):
            if not mask[i, k]:
                continue
            for j in range(len(rewards)):
                if groups[j] != groups[i] or not rewards[j] > threshold:
                    continue
                for m in range(seq):
                    if mask[j, m]:
                        result[i, k] += (errors[j, m] @ errors[i, k]) * (hidden[j, m] @ hidden[i, k])
    return result


def test_token_influence_matches_the_gradient_inner_product_loop():
    module = tiny_module(update=dict(micro_batch_size=3))
    texts = ["5", "55", "6", "1+4", "8", "88", "9", "0"]
    batch = text_batch(module, texts, ADD)
    out = run(TokenInfluence(), module, batch)["extras:token_influence"]
    assert torch.allclose(out.double(), _influence_loop(module, batch), rtol=1e-4, atol=1e-4)
    whole = tiny_module()
    assert torch.allclose(run(TokenInfluence(), whole, batch)["extras:token_influence"], out, atol=1e-5)
    provider = TokenInfluence()
    provider.setup((token_hidden_reward(threshold=0.2),))
    assert provider.threshold == 0.2


def test_token_hidden_reward_trains_from_influence():
    objective = grpo.replace(group_zscore, group_zscore() >> token_hidden_reward(p=0.2))
    module = tiny_module(objective=objective, update=dict(micro_batch_size=4))
    texts = ["5", "55", "6", "1", "8", "88", "9", "8", "3", "1", "3", "33", "7", "", "7", "71"]
    trains(module, text_batch(module, texts, ADD), "thr/reweighted_frac")


def test_split_steps_falls_back_to_prefix_decoding(module):
    """Where single-token pieces do not add up to the decoded text, every prefix is decoded instead."""
    batch = text_batch(module, ["1+2=3 3*2=7", "5 ", "4 4", "12"], ADD[:1])
    ctx = module.context(0)
    plain = split_steps(ctx, batch.rollout, " ")

    def decode(rollout):  # single tokens decode with a marker, as a byte-level BPE may for partial characters
        texts = module.decode_responses(rollout)
        return [t + "#" for t in texts] if rollout.response_ids.shape[1] == 1 else texts

    fallback = split_steps(dataclasses.replace(ctx, decode=decode), batch.rollout, " ")
    assert torch.equal(plain[0], fallback[0]) and plain[1] == fallback[1]
