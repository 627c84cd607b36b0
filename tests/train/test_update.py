"""The update stage (rlobj/train/update.py) without a model: the plan's cuts and checks, and
run_update on a prepared batch whose "policy" is one leaf of per-token log-prob offsets, so the
micro-batch law can be checked exactly: the summed micro-batch gradients of one optimizer step equal
the whole mini-batch's gradient, whatever the micro-batch size."""

import pytest
import torch
from batches import make_batch

from rlobj import Objective, dapo, grpo
from rlobj.ops.errors import RlobjInputError
from rlobj.train.update import UpdatePlan, run_update


def test_plan_cuts_and_reuse():
    plan = UpdatePlan(mini_batch_size=3, micro_batch_size=2)
    assert [m.tolist() for m in plan.mini_batches(7, epoch=0, first_update=0)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [m.tolist() for m in plan.micro_batches(torch.tensor([3, 4, 5]))] == [[3, 4], [5]]
    shuffled = UpdatePlan(mini_batch_size=4, shuffle=True, seed=1)
    first = torch.cat(shuffled.mini_batches(8, 0, 0))
    assert sorted(first.tolist()) == list(range(8)) and first.tolist() != list(range(8))
    assert torch.equal(first, torch.cat(shuffled.mini_batches(8, 0, 0)))  # seeded
    assert not torch.equal(first, torch.cat(shuffled.mini_batches(8, 1, 0)))  # a new order each epoch
    assert UpdatePlan().reuses_rollout_logprobs(8) and UpdatePlan(mini_batch_size=8).reuses_rollout_logprobs(8)
    assert not UpdatePlan(ppo_epochs=2).reuses_rollout_logprobs(8)
    assert not UpdatePlan(mini_batch_size=4).reuses_rollout_logprobs(8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ppo_epochs": 0}, "ppo_epochs: expected an int >= 1, got 0"),
    ({"ppo_epochs": True}, "ppo_epochs: expected an int >= 1, got True"),
    ({"mini_batch_size": 0}, "mini_batch_size: expected an int >= 1 or null, got 0"),
    ({"micro_batch_size": 2.5}, "micro_batch_size: expected an int >= 1 or null, got 2.5"),
])
def test_plan_errors_name_the_field(kwargs, message):
    with pytest.raises(RlobjInputError, match=message.replace("(", r"\(")):
        UpdatePlan(**kwargs)


def _run(objective, micro, mini=None, epochs=1):
    fields = make_batch([4, 4], [3, 1, 4, 2, 2, 4, 1, 3], seed=7, dtype=torch.float64)
    prepared = objective.prepare(**fields)
    offsets = torch.zeros_like(fields["logp"], requires_grad=True)
    base = fields["logp"].detach()
    grads, steps = [], []

    def forward(rows, with_vocab):
        return base[rows] + offsets[rows], torch.zeros_like(base[rows]), None

    def backward(loss):
        loss.backward()

    def step():
        grads.append(offsets.grad.clone())
        offsets.grad = None
        steps.append(1)
        return 0.0

    result = run_update(objective, prepared, UpdatePlan(ppo_epochs=epochs, mini_batch_size=mini, micro_batch_size=micro),
                        forward=forward, micro_inputs=lambda rows: {}, backward=backward, step=step, term_state={})
    return result, grads


@pytest.mark.parametrize("objective", [grpo, dapo], ids=["grpo", "dapo"])
def test_micro_batches_change_no_gradient(objective):
    objective = Objective(objective)
    (whole, whole_grads), (cut, cut_grads) = _run(objective, None), _run(objective, 3)
    assert whole.updates == cut.updates == 1
    torch.testing.assert_close(cut_grads[0], whole_grads[0], rtol=1e-12, atol=1e-15)
    assert whole_grads[0].abs().sum() > 0
    assert whole.logp_new is not None and cut.logp_new is not None  # one epoch, one mini-batch: reused


def test_mini_batches_and_epochs_count_optimizer_steps():
    result, grads = _run(Objective(grpo), micro=2, mini=4, epochs=2)
    assert result.updates == 4 and len(grads) == 4 and result.logp_new is None
    assert set(result.metrics) >= {"loss", "kl/old_k3", "entropy", "grad_norm"}
