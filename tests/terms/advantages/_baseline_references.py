"""The advantage terms' test inputs and plain-loop references (tests/terms/advantages/test_baselines.py):
Hypothesis batches as plain lists, their State, and one float64 loop per term, written from the
formulas of the specs, not from the terms' code; ``CASES`` pairs each configured term with its loop."""

import itertools
import math

import torch
from hypothesis import strategies as st

from rlobj.algebra.state import State
from rlobj.terms import advantages as A

F64 = torch.float64
NAN = float("nan")


# ----------------------------------------------------------------------------- inputs
GRID = st.integers(-8, 8).map(lambda k: k / 4)  # exact binary fractions: shifts/sums are exact
REWARDS = st.one_of(st.sampled_from([0.0, 1.0, 0.5, -1.0, 0.7, 0.1]), GRID,
                    st.floats(-3, 3, allow_nan=False, allow_subnormal=False))


@st.composite
def batches(draw, min_size=1, max_size=6, max_groups=4, binary=False, grid=False,
            token_rewards=None, equal_lengths=False, constant_groups=False, n_components=2):
    """A rollout batch as plain lists: interleaved groups with arbitrary ids, left or right
    padding (NaN in padded token rewards), ties, optional token rewards and reward components."""
    n_groups = draw(st.integers(1, max_groups))
    sizes = draw(st.lists(st.integers(min_size, max_size), min_size=n_groups, max_size=n_groups))
    ids = draw(st.lists(st.integers(-3, 40), min_size=n_groups, max_size=n_groups, unique=True))
    group_ids = [g for g, n in zip(ids, sizes, strict=False) for _ in range(n)]
    order = draw(st.permutations(range(len(group_ids))))
    group_ids = [group_ids[i] for i in order]
    batch = len(group_ids)
    seq = draw(st.integers(1, 5))
    if equal_lengths:
        lengths = [draw(st.integers(1, seq))] * batch
    else:
        lengths = draw(st.lists(st.integers(1, seq), min_size=batch, max_size=batch))
    left = draw(st.booleans())
    mask = [[(t >= seq - n) if left else (t < n) for t in range(seq)] for n in lengths]
    values = st.sampled_from([0.0, 1.0]) if binary else (GRID if grid else REWARDS)
    if constant_groups:
        per_group = {g: draw(st.sampled_from([0.0, 1.0] if binary else [0.1, 0.7, 0.3, 1 / 3, 0.2, -2.5]))
                     for g in ids}
        rewards = [per_group[g] for g in group_ids]
    else:
        rewards = draw(st.lists(values, min_size=batch, max_size=batch))
    use_tokens = draw(st.booleans()) if token_rewards is None else token_rewards
    tokens = None
    if use_tokens:
        token_values = GRID if grid else st.floats(-1, 1, allow_nan=False, allow_subnormal=False)
        tokens = [[draw(token_values) if m else NAN for m in row] for row in mask]
        if draw(st.booleans()):
            rewards = None  # token-level rewards only
    comps = [[draw(GRID) for _ in range(n_components)] for _ in range(batch)]
    return {"rewards": rewards, "group_ids": group_ids, "mask": mask, "token_rewards": tokens,
            "components": comps}


def make_state(b, dtype=F64, requires_grad=False):
    mask = torch.tensor(b["mask"])
    fields = {"logp": torch.full(mask.shape, -0.5, dtype=dtype), "mask": mask,
              "group_ids": torch.tensor(b["group_ids"]),
              "extras": {"reward_components": torch.tensor(b["components"], dtype=dtype,
                                                           requires_grad=requires_grad)}}
    if b["rewards"] is not None:
        fields["rewards"] = torch.tensor(b["rewards"], dtype=dtype, requires_grad=requires_grad)
    if b["token_rewards"] is not None:
        fields["token_rewards"] = torch.tensor(b["token_rewards"], dtype=dtype, requires_grad=requires_grad)
    return State.from_batch(**fields)


def permute(b, order):
    out = dict(b)
    for key in ("group_ids", "mask", "components"):
        out[key] = [b[key][i] for i in order]
    for key in ("rewards", "token_rewards"):
        out[key] = None if b[key] is None else [b[key][i] for i in order]
    return out


# ----------------------------------------------------------------------------- loop references
def seq_rewards(b):
    r = []
    for i, row in enumerate(b["mask"]):
        total = b["rewards"][i] if b["rewards"] is not None else 0.0
        if b["token_rewards"] is not None:
            total += math.fsum(v for v, m in zip(b["token_rewards"][i], row, strict=False) if m)
        r.append(total)
    return r


def groups(b):
    out = {}
    for i, g in enumerate(b["group_ids"]):
        out.setdefault(g, []).append(i)
    return out


def lengths_of(b):
    return [sum(row) for row in b["mask"]]


def to_tokens(per_seq, b):
    return [[per_seq[i] if m else 0.0 for m in row] for i, row in enumerate(b["mask"])]


def mean(xs):
    return math.fsum(xs) / len(xs)


def std(xs, unbiased=True):
    if max(xs) == min(xs):
        return 0.0  # all equal: exactly 0 (the formula), whatever rounding the mean has
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1 if unbiased else len(xs)))


def ref_group_mean_baseline(b):
    r, g = seq_rewards(b), groups(b)
    out = [0.0] * len(r)
    for members in g.values():
        vals = [r[j] for j in members]
        for j in members:
            out[j] = 0.0 if max(vals) == min(vals) else r[j] - mean(vals)
    return to_tokens(out, b)


def ref_group_zscore(b, eps=1e-6, unbiased=True, singleton="error"):
    r, g = seq_rewards(b), groups(b)
    out = [0.0] * len(r)
    for members in g.values():
        vals = [r[j] for j in members]
        for j in members:
            if len(vals) == 1:
                out[j] = r[j] / (1 + eps) if singleton == "verl" else 0.0
            else:
                s = std(vals, unbiased)
                out[j] = 0.0 if s == 0 else (r[j] - mean(vals)) / (s + eps)
    return to_tokens(out, b)


def ref_group_mean_batch_std(b, eps=1e-6):
    r, g = seq_rewards(b), groups(b)
    s = std(r) if len(r) > 1 else 0.0
    out = [0.0] * len(r)
    for members in g.values():
        vals = [r[j] for j in members]
        for j in members:
            out[j] = 0.0 if (s == 0 or max(vals) == min(vals)) else (r[j] - mean(vals)) / (s + eps)
    return to_tokens(out, b)


def ref_leave_one_out(b):
    r, g = seq_rewards(b), groups(b)
    out = [0.0] * len(r)
    for members in g.values():
        for j in members:
            others = [r[k] for k in members if k != j]
            out[j] = r[j] - mean(others)
    return to_tokens(out, b)


def ref_returns(b, gamma):
    """Per token: token reward (+ outcome reward on the last valid token), summed to go."""
    out = []
    for i, row in enumerate(b["mask"]):
        valid = [t for t, m in enumerate(row) if m]
        step = {t: (b["token_rewards"][i][t] if b["token_rewards"] is not None else 0.0) for t in valid}
        if b["rewards"] is not None:
            step[valid[-1]] += b["rewards"][i]
        out.append({t: math.fsum(gamma ** (u - t) * step[u] for u in valid if u >= t) for t in valid})
    return out


def ref_whiten(per_token, b, eps):
    values = [v for row in per_token for v in row.values()]
    m = mean(values)
    var = math.fsum((v - m) ** 2 for v in values) / len(values)
    return [[(per_token[i][t] - m) / math.sqrt(var + eps) if mk else 0.0 for t, mk in enumerate(row)]
            for i, row in enumerate(b["mask"])]


def ref_batch_whiten(b, gamma=1.0, eps=1e-8):
    return ref_whiten(ref_returns(b, gamma), b, eps)


def ref_group_baseline_whiten(b, eps=1e-8):
    centred = [row[0] if any(m) else 0.0 for row, m in
               zip([[v for v, mk in zip(r, m, strict=False) if mk] for r, m in zip(ref_group_mean_baseline(b), b["mask"], strict=False)],
                   b["mask"], strict=False)]
    per_token = [{t: centred[i] for t, m in enumerate(row) if m} for i, row in enumerate(b["mask"])]
    return ref_whiten(per_token, b, eps)


def ref_length_weighted(b):
    r, g, lens = seq_rewards(b), groups(b), lengths_of(b)
    out = [0.0] * len(r)
    for members in g.values():
        baseline = math.fsum(lens[j] * r[j] for j in members) / math.fsum(lens[j] for j in members)
        for j in members:
            out[j] = r[j] - baseline
    return to_tokens(out, b)


def ref_gpg(b, norm=1.0):
    r, g = seq_rewards(b), groups(b)
    flat = sum(len(m) for m in g.values() if max(r[j] for j in m) == min(r[j] for j in m))
    alpha = len(r) / (len(r) - flat) if len(r) > flat else 1.0
    base = [row for row in ref_group_mean_baseline(b)]
    return [[alpha * v / norm for v in row] for row in base]


def ref_passk(b, k):
    """Brute force: every k-subset S of the group gets R(S) = max_{j in S} r_j; the response's
    advantage is the mean over subsets containing it of (R(S) - mean R) / std R (population)."""
    r, g = seq_rewards(b), groups(b)
    out = [0.0] * len(r)
    for members in g.values():
        subsets = list(itertools.combinations(members, k))
        scores = {s: max(r[j] for j in s) for s in subsets}
        mu = mean(list(scores.values()))
        sigma = math.sqrt(mean([(v - mu) ** 2 for v in scores.values()]))
        for j in members:
            mine = [v for s, v in scores.items() if j in s]
            out[j] = 0.0 if sigma == 0 else (mean(mine) - mu) / sigma
    return to_tokens(out, b)


def ref_multi_reward(b, weights, mode="decoupled", eps=1e-6):
    comps, g = b["components"], groups(b)
    n = len(comps)

    def zscore(values):
        out = [0.0] * n
        for members in g.values():
            vals = [values[j] for j in members]
            s = std(vals)
            for j in members:
                out[j] = 0.0 if s == 0 else (values[j] - mean(vals)) / (s + eps)
        return out

    if mode == "summed":
        return to_tokens(zscore([math.fsum(w * c[k] for k, w in enumerate(weights)) for c in comps]), b)
    z = [zscore([c[k] for c in comps]) for k in range(len(weights))]
    combined = [math.fsum(w * z[k][i] for k, w in enumerate(weights)) for i in range(n)]
    s = std(combined) if n > 1 else 0.0
    m = mean(combined)
    return to_tokens([0.0 if s == 0 else (c - m) / (s + eps) for c in combined], b)


# name -> (term, reference, batches kwargs)
CASES = {
    "group_mean_baseline": (A.group_mean_baseline(), ref_group_mean_baseline, {}),
    "group_zscore": (A.group_zscore(), ref_group_zscore, {"min_size": 2}),
    "group_zscore_trl_pop": (A.group_zscore(eps=1e-4, unbiased=False),
                             lambda b: ref_group_zscore(b, 1e-4, False), {"min_size": 2}),
    "group_zscore_verl_singleton": (A.group_zscore(singleton="verl"),
                                    lambda b: ref_group_zscore(b, singleton="verl"), {}),
    "group_zscore_zero_singleton": (A.group_zscore(eps=1e-9, singleton="zero"),
                                    lambda b: ref_group_zscore(b, 1e-9, singleton="zero"), {}),
    "group_mean_batch_std": (A.group_mean_batch_std(), ref_group_mean_batch_std, {}),
    "leave_one_out": (A.leave_one_out(), ref_leave_one_out, {"min_size": 2}),
    "batch_whiten": (A.batch_whiten(), ref_batch_whiten, {}),
    "batch_whiten_gamma": (A.batch_whiten(gamma=0.7, eps=1e-6), lambda b: ref_batch_whiten(b, 0.7, 1e-6), {}),
    "group_baseline_whiten": (A.group_baseline_whiten(), ref_group_baseline_whiten, {}),
    "length_weighted_baseline": (A.length_weighted_baseline(), ref_length_weighted, {}),
    "gpg_scale": (A.gpg_scale(), ref_gpg, {}),
    "gpg_scale_norm": (A.gpg_scale(norm=3.0), lambda b: ref_gpg(b, 3.0), {}),
    "passk_k1": (A.passk_advantage(k=1), lambda b: ref_passk(b, 1), {"binary": True}),
    "passk_k2": (A.passk_advantage(k=2), lambda b: ref_passk(b, 2), {"min_size": 2, "binary": True}),
    "passk_k3": (A.passk_advantage(k=3), lambda b: ref_passk(b, 3), {"min_size": 3, "binary": True}),
    "gdpo": (A.multi_reward_advantage(weights=(1.0, 0.5)),
             lambda b: ref_multi_reward(b, (1.0, 0.5)), {"min_size": 2}),
    "summed": (A.multi_reward_advantage(weights=(1.0, 0.5), mode="summed"),
               lambda b: ref_multi_reward(b, (1.0, 0.5), "summed"), {"min_size": 2}),
}
OUTCOME_LEVEL = [n for n in CASES if not n.startswith("batch_whiten") and n != "group_baseline_whiten"]


def per_sequence(advantages, mask):
    """The value on each row's first valid token (outcome-level advantages are constant)."""
    first = mask.float().argmax(dim=-1)
    return advantages[torch.arange(mask.shape[0]), first]


def scaled(b, a):
    """The batch with every reward, token reward and reward component multiplied by ``a``."""
    out = dict(b)
    out["rewards"] = None if b["rewards"] is None else [a * r for r in b["rewards"]]
    out["token_rewards"] = None if b["token_rewards"] is None else [[a * v for v in row] for row in b["token_rewards"]]
    out["components"] = [[a * v for v in row] for row in b["components"]]
    return out


def assert_group_zero_sum(advantages, mask, group_ids, weights=None, atol=1e-9):
    """G1: sum over each group of the per-sequence advantage (optionally weighted) is 0."""
    values = per_sequence(advantages, mask)
    if weights is not None:
        values = values * weights
    for g in torch.unique(group_ids):
        members = values[group_ids == g]
        total = float(members.sum())
        assert abs(total) <= atol * (1 + float(members.abs().sum())), (
            f"group {int(g)}: advantages {members.tolist()} sum to {total}, expected 0")
