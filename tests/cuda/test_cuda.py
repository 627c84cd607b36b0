"""Checks that need a CUDA device (run by scripts/gpu_check.sh; skipped without CUDA).

The vocab view, a mask term, one trainer update and a packed update on the GPU equal the same computation on the
CPU (float64 where the law checks need it, float32 within a float32 tolerance).
"""

import pytest
import torch

from rlobj.ops.vocab import Entropy, LogProb, VocabView

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (scripts/gpu_check.sh)")]


def test_vocab_view_on_cuda_equals_cpu():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 17, 64, generator=generator, dtype=torch.float64)
    weight = torch.randn(5000, 64, generator=generator, dtype=torch.float64) * 0.1
    tokens = torch.randint(0, 5000, (3, 17), generator=generator)
    results = {}
    for device in ("cpu", "cuda"):
        h = hidden.to(device).requires_grad_(True)
        w = weight.to(device).requires_grad_(True)
        view = VocabView.from_hidden(h, w, None, temperature=0.8, chunk_size=7)
        logp, entropy = view.evaluate(LogProb(tokens.to(device)), Entropy())
        (logp.sum() + 0.1 * entropy.sum()).backward()
        results[device] = [t.detach().cpu() for t in (logp, entropy, h.grad, w.grad)]
    for a, b in zip(results["cpu"], results["cuda"], strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_top_entropy_mask_on_cuda_equals_cpu():
    from rlobj.terms import reinforce, top_entropy_mask

    generator = torch.Generator().manual_seed(1)
    entropy = torch.rand(6, 9, generator=generator, dtype=torch.float64)
    mask = torch.rand(6, 9, generator=generator) > 0.2
    logp = -torch.rand(6, 9, generator=generator, dtype=torch.float64)
    advantages = torch.randn(6, 1, generator=generator, dtype=torch.float64).expand(6, 9)
    outs = {}
    for device in ("cpu", "cuda"):
        x = logp.to(device).requires_grad_(True)
        out = (reinforce() >> top_entropy_mask(rho=0.2)).loss(
            logp=x, mask=mask.to(device), advantages=advantages.to(device), entropy=entropy.to(device))
        out.loss.backward()
        outs[device] = (out.state.parts["policy"].mask.cpu(), float(out.loss), x.grad.cpu())
    assert torch.equal(outs["cpu"][0], outs["cuda"][0]) and outs["cpu"][1] == pytest.approx(outs["cuda"][1], abs=1e-12)
    assert torch.allclose(outs["cpu"][2], outs["cuda"][2], atol=1e-12, rtol=0)


def test_trainer_update_on_cuda_equals_cpu():
    from train._helpers import synthetic_rewards, synthetic_rollout, tiny_module

    weights = {}
    for device in ("cpu", "cuda"):
        module = tiny_module(objective=["grpo", {"forward_kl": {"beta": 0.01}}], policy={"dtype": "float64"},
                             update={"micro_batch_size": 5})
        rollout = synthetic_rollout(module)  # on the CPU (its log-probs come from the CPU policy)
        module.policy.to(device)  # update_on_rollout moves the rollout to the policy's device
        module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        weights[device] = torch.cat([p.detach().cpu().flatten() for p in module.policy.parameters()])
    assert torch.allclose(weights["cpu"], weights["cuda"], atol=1e-9, rtol=0)


def test_packed_update_on_cuda_equals_padded():
    """update.packing on the GPU's attention (block-diagonal mask from the position ids): same
    weights after one update as the padded micro-batches, float64."""
    from train._helpers import synthetic_rewards, synthetic_rollout, tiny_module

    weights = {}
    for packing in (False, True):
        module = tiny_module(objective=["grpo", {"k3_kl": {"beta": 0.1}}], policy={"dtype": "float64"},
                             update={"micro_batch_size": 5, "packing": packing})
        rollout = synthetic_rollout(module)
        module.policy.to("cuda")
        module.update_on_rollout(rollout, synthetic_rewards(len(rollout)))
        weights[packing] = torch.cat([p.detach().cpu().flatten() for p in module.policy.parameters()])
    assert torch.allclose(weights[False], weights[True], atol=1e-10, rtol=0)
