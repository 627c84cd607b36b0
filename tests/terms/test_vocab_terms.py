"""The allocation trace of every full-vocabulary term (issue 4, Must show): no ``tokens x vocab``
float tensor during forward + backward of any full-vocabulary term built from hidden states (the
divergences, DPH-RL, Lp-Reg, SIREN, the entropy bonus), and the trace catching a naive KL.
Cross-cutting: the terms' own tests are in tests/terms/divergences/ and tests/terms/regularizers/.
"""

import pytest
import torch
from ops._allocation_tracer import AllocationTracer

from rlobj import (
    Objective,
    dph_divergence,
    entropy_bonus,
    f_divergence,
    forward_kl,
    grpo,
    js_divergence,
    lp_reg,
    reverse_kl,
    siren,
)
from rlobj.ops.vocab import VocabView

BATCH, SEQ, HIDDEN, VOCAB = 4, 16, 8, 96
TOKENS = BATCH * SEQ


def hidden_state_batch(seed=0):
    """A rollout batch whose every policy is a VocabView built from hidden states."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(VOCAB, HIDDEN, generator=g, requires_grad=True)
    hidden = torch.randn(BATCH, SEQ, HIDDEN, generator=g, requires_grad=True)
    old_hidden, ref_hidden = (hidden.detach() + 0.1 * torch.randn(BATCH, SEQ, HIDDEN, generator=g) for _ in range(2))
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    mask = torch.rand(BATCH, SEQ, generator=g) < 0.9
    chunks = {"chunk_size": 12}
    view = VocabView.from_hidden(hidden, weight, **chunks)
    old = VocabView.from_hidden(old_hidden, weight.detach(), **chunks)
    ref = VocabView.from_hidden(ref_hidden, weight.detach(), **chunks)
    extras = {"vocab_old": old, "vocab_ref": ref, "vocab_init": ref, "tokens": tokens,
              "logp_init": ref.logp(tokens, mask=mask), "dph_rows": torch.tensor([True, False, True, False])}
    logp_old = old.logp(tokens, mask=mask)
    return {"view": view, "mask": mask, "tokens": tokens, "logp_old": logp_old,
            "logp_ref": extras["logp_init"], "extras": extras,
            "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0]), "group_ids": torch.tensor([0, 0, 1, 1]),
            "hidden": hidden, "weight": weight}


FULL_VOCAB_OBJECTIVES = {
    "forward_kl": lambda: grpo >> forward_kl(0.1),
    "reverse_kl": lambda: grpo >> reverse_kl(0.1),
    "js_divergence": lambda: grpo >> js_divergence(0.1),
    "f_divergence_js": lambda: grpo >> f_divergence("js", 0.1),
    "f_divergence_alpha": lambda: grpo >> f_divergence("alpha:0.2", 0.1),
    "lp_reg_from_vocab_old": lambda: grpo >> lp_reg(0.02, rho=0.5, strict_reference_quirk=False),
    "siren": lambda: grpo >> siren(anchor=0.5),
    "entropy_bonus": lambda: grpo >> entropy_bonus(0.01),
    "dph_divergence": lambda: grpo >> dph_divergence("js"),
    "design_card": lambda: grpo >> lp_reg(0.02) >> forward_kl(0.01),
}


@pytest.mark.parametrize("name", sorted(FULL_VOCAB_OBJECTIVES))
def test_no_tokens_by_vocab_float_tensor_in_forward_and_backward(name):
    data = hidden_state_batch()
    objective = Objective(FULL_VOCAB_OBJECTIVES[name]())
    with AllocationTracer() as tracer:
        logp = data["view"].logp(data["tokens"], mask=data["mask"])
        out = objective(logp=logp, logp_old=data["logp_old"], logp_ref=data["logp_ref"], mask=data["mask"],
                        rewards=data["rewards"], group_ids=data["group_ids"], vocab=data["view"],
                        extras=data["extras"])
        out.loss.backward()
    assert torch.isfinite(out.loss)
    assert data["weight"].grad is not None and data["hidden"].grad is not None
    assert tracer.records, "the tracer saw nothing"
    flagged = [r for r in tracer.records if r[2].is_floating_point and r[3] >= TOKENS * VOCAB]
    assert flagged == [], f"{name} allocated tokens x vocab float tensors: {flagged[:3]}"


def test_the_trace_fails_for_a_naive_full_vocab_kl():
    data = hidden_state_batch()
    ref_hidden = data["extras"]["vocab_ref"]._tensors[0]
    with AllocationTracer() as tracer:
        log_pi = torch.log_softmax(data["hidden"] @ data["weight"].T, -1)
        log_ref = torch.log_softmax(ref_hidden @ data["weight"].detach().T, -1)
        kl = (log_ref.exp() * (log_ref - log_pi)).sum(-1)
        kl[data["mask"]].mean().backward()
    flagged = [r for r in tracer.records if r[2].is_floating_point and r[3] >= TOKENS * VOCAB]
    assert any(r[1] == (BATCH, SEQ, VOCAB) for r in flagged)
