"""LATR lookahead tree rollouts (arXiv 2510.24302): branches, pruning, mix ratio, log-probs."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlobj.rollout import HFEngine, SamplingConfig, sequence_logprobs
from rlobj.rollout.tree import (
    LATRConfig,
    LATREngine,
    MixSchedule,
    edit_distance_ratio,
    rouge_l,
    suffix_match,
)

from .conftest import EOS

# The tiny random model is nearly uniform over 16 tokens: thresholds low enough to branch.
BRANCHY = dict(tau_abs=0.0, tau_rel=1.0, lookahead=(2, 3))


def make(tiny_model, **kwargs):
    return LATREngine(HFEngine(tiny_model), LATRConfig(**{**BRANCHY, **kwargs}))


def check_tree(batch, info, n, n_prompts, n_kt):
    assert batch.group_ids.tolist() == [g for g in range(n_prompts) for _ in range(n)]
    for g in range(n_prompts):
        rows = [r for r in range(len(batch)) if int(batch.group_ids[r]) == g]
        tree = [r for r in rows if info.source[r] == "tree"]
        assert 1 <= len(tree) <= n_kt  # never empty (roots are never pruned), capacity kept
        assert tree == rows[:len(tree)]  # tree rows first
    for row, parent in enumerate(info.parent):
        if parent < 0:
            continue
        birth = info.birth_step[row]
        child = batch.response_ids[row].tolist()
        mother = batch.response_ids[parent].tolist()
        assert batch.group_ids[row] == batch.group_ids[parent]
        assert child[:birth] == mother[:birth]  # same prefix before the fork
        assert child[birth] != mother[birth]  # differs exactly at the birth token


def test_branch_logprobs_equal_recomputed(tiny_model, prompts):
    latr = make(tiny_model)
    batch = latr.generate(prompts[:2], n=5, sampling=SamplingConfig(
        max_new_tokens=7, temperature=0.9, seed=1))
    info = latr.last_info
    assert info.source.count("tree") > 2  # branching happened
    check_tree(batch, info, 5, 2, 5)
    with torch.no_grad():
        want = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                 batch.response_ids, batch.response_mask, temperature=0.9)
    assert torch.allclose(batch.logp_rollout, want, atol=2e-5)
    assert (batch.logp_rollout[~batch.response_mask] == 0).all()
    for row in range(len(batch)):  # EOS only at the end; truncated rows use the full budget
        tokens = batch.response_ids[row][batch.response_mask[row]].tolist()
        assert EOS not in tokens[:-1]
        assert batch.truncated[row] == (tokens[-1] != EOS)
        if batch.truncated[row]:
            assert len(tokens) == 7


@pytest.mark.parametrize("force_return_step", [0, 3, 100])
def test_pruning_never_empties_a_group(tiny_model, prompts, force_return_step):
    # tau_ed = 2 > any ED ratio: every comparable child is pruned at its first lookahead age
    latr = make(tiny_model, lookahead=(1, 2), tau_ed=2.0, force_return_step=force_return_step)
    batch = latr.generate(prompts[:3], n=4, sampling=SamplingConfig(max_new_tokens=6, seed=2))
    info = latr.last_info
    check_tree(batch, info, 4, 3, 4)
    if force_return_step >= 3:
        assert sum(info.pruned) > 0
    with torch.no_grad():
        want = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                 batch.response_ids, batch.response_mask)
    assert torch.allclose(batch.logp_rollout, want, atol=2e-5)


def test_math_similarity_and_protected_forks(tiny_model, prompts):
    math = LATRConfig(similarity="math")  # suffix > 0.2 or ROUGE-L > 0.5
    assert math.similar([1, 2, 3, 4, 5], [9, 8, 7, 4, 5])  # suffix 2/5 = 0.4
    assert math.similar([1, 2, 3, 4, 5], [1, 9, 3, 8, 5])  # ROUGE-L 3/5 = 0.6 (suffix 0.2)
    assert not math.similar([1, 2, 3, 4, 5], [6, 1, 7, 8, 9])  # suffix 0, ROUGE-L 0.2
    edit = LATRConfig()  # ED / r < 0.4
    assert edit.similar([1, 2, 3, 4, 5], [1, 2, 3, 4, 9]) and not edit.similar(
        [1, 2, 3, 4, 5], [1, 2, 9, 9, 9])
    sampling = SamplingConfig(max_new_tokens=6, seed=2)
    always = make(tiny_model, tau_ed=2.0, lookahead=(1,))
    always.generate(prompts[:2], n=4, sampling=sampling)
    assert sum(always.last_info.pruned) > 0
    protected = make(tiny_model, tau_ed=2.0, lookahead=(1,),
                     protected_fork_tokens=tuple(range(16)))
    protected.generate(prompts[:2], n=4, sampling=sampling)
    assert sum(protected.last_info.pruned) == 0


def test_determinism_and_seed(tiny_model, prompts):
    latr = make(tiny_model, force_return_step=3)  # tree phase, then sampled completion
    sampling = SamplingConfig(max_new_tokens=8, seed=4)
    a = latr.generate(prompts[:2], n=4, sampling=sampling)
    b = latr.generate(prompts[:2], n=4, sampling=sampling)
    assert torch.equal(a.response_ids, b.response_ids)
    assert torch.equal(a.logp_rollout, b.logp_rollout)
    assert latr.last_info.tree_steps == 3
    c = latr.generate(prompts[:2], n=4, sampling=SamplingConfig(max_new_tokens=8, seed=5))
    assert not torch.equal(a.response_ids, c.response_ids)


def test_no_branching_when_thresholds_unreachable(tiny_model, prompts):
    for config in (dict(tau_abs=1.0), dict(max_branch_per_token=1)):
        latr = make(tiny_model, **config)
        batch = latr.generate(prompts[:2], n=3, sampling=SamplingConfig(max_new_tokens=5, seed=0))
        assert latr.last_info.source == ("tree", "sample", "sample") * 2
        greedy = HFEngine(tiny_model).generate(prompts[:2], n=1, sampling=SamplingConfig(
            max_new_tokens=5, greedy=True))
        assert torch.equal(batch.response_ids[::3, :greedy.response_ids.shape[1]],
                           greedy.response_ids)


def test_mix_ratio_schedule(tiny_model, prompts):
    schedule = MixSchedule(((0, 1.0), (10, 0.5), (20, 0.0)))
    assert [schedule(s) for s in (0, 9, 10, 19, 20, 10**6)] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    assert MixSchedule()(250) == 0.5
    latr = make(tiny_model, mix=schedule)
    sampling = SamplingConfig(max_new_tokens=5, seed=3)
    latr.generate(prompts[:2], n=4, sampling=sampling, step=10)
    assert latr.last_info.eta == 0.5
    assert all(latr.last_info.source[g * 4:g * 4 + 4].count("tree") <= 2 for g in range(2))
    latr.step = 25  # eta = 0: exactly the wrapped engine
    plain = latr.generate(prompts[:2], n=4, sampling=sampling)
    assert torch.equal(plain.response_ids,
                       HFEngine(tiny_model).generate(prompts[:2], 4, sampling).response_ids)
    assert set(latr.last_info.source) == {"sample"}
    assert LATRConfig(mix={0: 1.0, 5: 0.25}).mix(7) == 0.25  # a YAML dict works too


def test_similarity_hand_values():
    assert edit_distance_ratio([1, 2, 3], [1, 2, 3]) == 0.0
    assert edit_distance_ratio([1, 2, 3], [4, 5, 6]) == 1.0
    assert edit_distance_ratio([1, 2, 3, 4], [2, 3, 4, 5]) == 0.5  # delete 1, insert 5
    assert suffix_match([1, 2, 3], [1, 2, 3]) == 1.0
    assert suffix_match([5, 6, 7, 8], [7, 8, 1, 2]) == 0.5
    assert suffix_match([1, 2], [3, 4]) == 0.0
    assert rouge_l([1, 2, 3], [1, 2, 3]) == 1.0
    assert rouge_l([1, 2, 3, 4], [4, 3, 2, 1]) == 0.25
    assert rouge_l([1, 2], [3, 4]) == 0.0


def _lcs_brute(a, b):
    from itertools import combinations
    best = 0
    for k in range(len(a), 0, -1):
        for idx in combinations(range(len(a)), k):
            sub = [a[i] for i in idx]
            it = iter(b)
            if all(x in it for x in sub):
                return k
    return best


@given(a=st.lists(st.integers(0, 3), min_size=1, max_size=6),
       b=st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_similarity_ranges_and_reference(a, b):
    for f in (edit_distance_ratio, suffix_match, rouge_l):
        assert 0.0 <= f(a, b) <= 1.0
        assert f(a, b) == pytest.approx(f(b, a))  # symmetric
    lcs = _lcs_brute(a, b)
    want = 0.0 if lcs == 0 else 2 * lcs / (len(a) + len(b))
    assert rouge_l(a, b) == pytest.approx(want)
    assert (edit_distance_ratio(a, b) == 0.0) == (a == b)
    assert edit_distance_ratio(a, a) == 0 and suffix_match(a, a) == 1 and rouge_l(a, a) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_branch_per_token=0), "max_branch_per_token must be an int >= 1"),
    (dict(tau_abs=-0.1), "tau_abs must be a number >= 0"),
    (dict(lookahead=(0,)), "lookahead must hold ints >= 1"),
    (dict(similarity="rouge"), "similarity must be 'edit' or 'math'"),
    (dict(force_return_step=-1), "force_return_step must be an int >= 0"),
    (dict(mix=0.5), "mix must be a MixSchedule or a dict"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LATRConfig(**kwargs)


def test_mix_and_engine_errors(tiny_model, prompts):
    with pytest.raises(ValueError, match="must start at step 0"):
        MixSchedule(((5, 1.0),))
    with pytest.raises(ValueError, match="strictly increasing"):
        MixSchedule(((0, 1.0), (10, 0.5), (10, 0.2)))
    with pytest.raises(ValueError, match=r"ratios must lie in \[0, 1\]"):
        MixSchedule(((0, 1.5),))
    with pytest.raises(TypeError, match="decode_rows"):
        LATREngine(object())
    from rlobj.rollout.schedules import EADSchedule
    with pytest.raises(ValueError, match="temperature_schedule is not supported"):
        make(tiny_model).generate(prompts[:1], 2, SamplingConfig(
            max_new_tokens=3, temperature_schedule=EADSchedule()))
