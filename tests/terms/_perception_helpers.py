"""Slow references written from the formulas (plain loops, float64) and the batch builders shared
by the perception terms' test modules
(tests/terms/{rewards,divergences,regularizers,advantages}/test_perception.py)."""

import math

import torch

from rlobj import Objective, token_mean


def k3_loop(logp, logp_other, mask):
    """verl's clamped k3 with d = other - logp, one token at a time."""
    out = torch.zeros(logp.shape, dtype=torch.float64)
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t]:
                d = min(max(float(logp_other[i, t]) - float(logp[i, t]), -20.0), 20.0)
                out[i, t] = min(max(math.exp(d) - d - 1.0, -10.0), 10.0)
    return out


def sym_kl_loop(logits_p, logits_q, mask, scale=0.5):
    out = torch.zeros(mask.shape, dtype=torch.float64)
    for i in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if not mask[i, t]:
                continue
            p = torch.softmax(logits_p[i, t].double(), -1).tolist()
            q = torch.softmax(logits_q[i, t].double(), -1).tolist()
            forward = sum(pv * math.log(pv / qv) for pv, qv in zip(p, q))
            reverse = sum(qv * math.log(qv / pv) for pv, qv in zip(p, q))
            out[i, t] = scale * (forward + reverse)
    return out


def fields(batch_size=2, length=3, seed=0, vocab=5):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch_size, length, vocab, generator=generator)
    logits_perturbed = logits + 0.7 * torch.randn(batch_size, length, vocab, generator=generator)
    tokens = torch.randint(0, vocab, (batch_size, length), generator=generator)
    logp = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
    logp_perturbed = torch.log_softmax(logits_perturbed, -1).gather(-1, tokens[..., None])[..., 0]
    mask = torch.ones(batch_size, length, dtype=torch.bool)
    mask[-1, -1] = False
    return dict(logits=logits, logits_perturbed=logits_perturbed, logp=logp,
                logp_perturbed=logp_perturbed, mask=mask, tokens=tokens)


def run(term, logp, mask, **extras_and_fields):
    vocab = extras_and_fields.pop("vocab", None)
    rest = {k: extras_and_fields.pop(k) for k in ("advantages", "logp_old", "entropy")
            if k in extras_and_fields}
    return Objective(term >> token_mean())(logp=logp, mask=mask, vocab=vocab, extras=extras_and_fields, **rest)
