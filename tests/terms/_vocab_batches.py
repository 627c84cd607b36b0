"""Helpers shared by the full-vocabulary terms' test modules: a softmax over one row of logits in
plain Python, and the two-group batch (optionally with vocab views) the regularisers and divergences
are run on."""

import math


def softmax_row(z):
    top = max(float(v) for v in z)
    exps = [math.exp(float(v) - top) for v in z]
    total = sum(exps)
    return [e / total for e in exps]


def _lp_batch(seed=0, vocab=False, groups=(4, 4), lengths=(6, 5, 7, 4, 6, 7, 3, 5)):
    from batches import leaf, make_batch

    return leaf(make_batch(list(groups), list(lengths), seed=seed, vocab=vocab))


def loop_top_p_entropy(logits_row, p):
    """SIREN's renormalised nucleus entropy of one row, float64, token by token (nucleus: the
    prefix of the sorted probabilities whose running sum stays strictly below ``p``)."""
    probs = sorted(softmax_row(logits_row.double()), reverse=True)
    nucleus, total = [], 0.0
    for q in probs:
        if total + q < p:
            nucleus.append(q)
            total += q
        else:
            break
    if not nucleus:
        return 0.0
    mass = sum(nucleus)
    return -sum((q / mass) * math.log(q / mass) for q in nucleus)
