"""Padding-free packed micro-batches (``update.packing``): same log-probs, loss and gradients as padded."""

import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.config import UpdateConfig
from rlobj.train.forward import chunked_logprobs, token_logprobs
from rlobj.train.packing import pack_rows

from ._helpers import synthetic_rewards, synthetic_rollout, tiny_module

OBJECTIVE = ["grpo", {"k3_kl": {"beta": 0.1}}]  # the KL reads the reference: its forward is packed too


def test_pack_rows_layout():
    prompt_ids = torch.tensor([[0, 5, 6], [7, 8, 9]])
    prompt_mask = torch.tensor([[False, True, True], [True, True, True]])
    response_ids = torch.tensor([[10, 11, 0], [12, 0, 0]])
    response_mask = torch.tensor([[True, True, False], [True, False, False]])
    packed = pack_rows(prompt_ids, prompt_mask, response_ids, response_mask)
    assert packed.input_ids.tolist() == [[5, 6, 10, 11, 7, 8, 9, 12]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]]
    # token 10 is predicted from 6 (packed index 1), 11 from 10 (2), 12 from 9 (6)
    assert packed.predict_index.tolist() == [1, 2, 6]
    assert (packed.tokens, packed.padded_tokens) == (8, 12)
    values = torch.tensor([1.0, 2.0, 3.0])
    assert packed.unpack(values).tolist() == [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]


def _llama(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).double()


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("compute", [token_logprobs, chunked_logprobs], ids=["full", "chunked"])
def test_packed_forward_equals_padded_float64(arch, compute):
    module = tiny_module(policy={"dtype": "float64"})
    rollout = synthetic_rollout(module, groups=3, group_size=4)
    model = module.policy if arch == "qwen2" else _llama(len(module.tokenizer))
    args = (rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask)
    results = {}
    for packed in (False, True):
        model.zero_grad(set_to_none=True)
        logp, entropy = compute(model, *args, temperature=0.7, with_entropy=True, packed=packed)
        (logp.sum() + 0.1 * entropy.sum()).backward()
        results[packed] = logp.detach(), entropy.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}
    (logp0, ent0, grads0), (logp1, ent1, grads1) = results[False], results[True]
    assert logp0.dtype == logp1.dtype == torch.float64
    assert torch.equal(logp1[~rollout.response_mask], torch.zeros_like(logp1[~rollout.response_mask]))
    assert (logp0 - logp1).abs().max() < 1e-12
    assert (ent0 - ent1).abs().max() < 1e-12
    for name, grad in grads0.items():
        assert (grad - grads1[name]).abs().max() < 1e-12, name


def test_packed_rows_do_not_attend_to_each_other():
    module = tiny_module(policy={"dtype": "float64"})
    rollout = synthetic_rollout(module, groups=2, group_size=2)
    args = [rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask]
    with torch.no_grad():
        before, _ = token_logprobs(module.policy, *args, packed=True)
        changed = rollout.prompt_ids.clone()
        changed[1:] = torch.where(rollout.prompt_mask[1:], (changed[1:] + 1) % len(module.tokenizer), changed[1:])
        after, _ = token_logprobs(module.policy, changed, *args[1:], packed=True)
    assert torch.equal(before[0], after[0])  # row 0 precedes the changed rows in the packed sequence
    assert not torch.equal(before[1:], after[1:])
    # the same packed tokens as one plain sequence (positions not restarting): rows 1.. then see
    # the rows before them, and their log-probs change; restarting positions are what separates rows
    packed = pack_rows(*args)
    with torch.no_grad():
        joined = module.policy(input_ids=packed.input_ids, use_cache=False).logits[0, packed.predict_index]
        separate = module.policy(input_ids=packed.input_ids, position_ids=packed.position_ids,
                                 use_cache=False).logits[0, packed.predict_index]
    first = int(rollout.response_mask[0].sum())
    assert torch.allclose(joined[:first], separate[:first], atol=1e-12)
    assert (joined[first:] - separate[first:]).abs().max() > 1e-3


VOCAB_KL = ["grpo", {"forward_kl": {"beta": 0.1}}]  # reads the policy's and the reference's vocab views


@pytest.mark.parametrize("logits, objective", [("chunked", OBJECTIVE), ("full", OBJECTIVE), ("chunked", VOCAB_KL)],
                         ids=["chunked-k3_kl", "full-k3_kl", "chunked-forward_kl"])
def test_trainer_update_packed_equals_padded(logits, objective):
    """Through RLModule.update_on_rollout: 2 epochs x 2 mini-batches x micro-batches of 3 rows (old
    log-probs, reference and training forwards and vocab views all packed); same metrics and
    weights (SGD lr 1: the weight change is the gradient) in float64."""
    outcomes, positions = {}, {}
    for packing in (False, True):
        module = tiny_module(objective=objective, policy={"dtype": "float64", "logits": logits},
                             update={"packing": packing, "ppo_epochs": 2, "mini_batch_size": 8,
                                     "micro_batch_size": 3})
        assert module.models.packing is packing
        rollout = synthetic_rollout(module, groups=4, group_size=4)
        shapes = []
        hook = module.policy.get_input_embeddings().register_forward_hook(
            lambda _module, inputs, _output, shapes=shapes: shapes.append(tuple(inputs[0].shape)))
        metrics = module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        hook.remove()
        # packed: every forward (old log-probs, reference, training) sees one row of real tokens
        assert all(shape[0] == 1 if packing else shape[1] == 5 + 6 for shape in shapes), shapes
        positions[packing] = sum(shape[0] * shape[1] for shape in shapes)
        outcomes[packing] = metrics, {n: p.detach().clone() for n, p in module.policy.named_parameters()}
    assert positions[True] < positions[False]
    (metrics0, weights0), (metrics1, weights1) = outcomes[False], outcomes[True]
    for key in ("loss", "grad_norm", "entropy", "kl/old_k3", "clip_frac"):
        assert abs(metrics0[key] - metrics1[key]) < 1e-10, key
    assert metrics0["loss"] != 0.0 and metrics0["kl/old_k3"] > 0  # a real update with ratios away from 1
    for name, weight in weights0.items():
        assert (weight - weights1[name]).abs().max() < 1e-10, name


def test_packing_saves_positions_on_uneven_rows():
    module = tiny_module()
    rollout = synthetic_rollout(module, groups=4, group_size=4)
    packed = pack_rows(rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask)
    real = int(rollout.prompt_mask.sum() + rollout.response_mask.sum())
    assert packed.tokens == real < packed.padded_tokens == len(rollout) * (5 + 6)


def test_bad_packing_inputs_name_what_is_wrong():
    with pytest.raises(RlobjInputError, match="update.packing: expected true or false"):
        UpdateConfig(packing="yes")
    with pytest.raises(RlobjInputError, match="update.packing"):
        tiny_module(update={"packing": 1})
    ids = torch.tensor([[5, 6]])
    with pytest.raises(RlobjInputError, match="left-padded"):
        pack_rows(ids, torch.tensor([[True, False]]), ids, torch.tensor([[True, True]]))
    with pytest.raises(RlobjInputError, match="without holes"):
        pack_rows(ids, torch.tensor([[True, True]]), ids, torch.tensor([[False, True]]))
