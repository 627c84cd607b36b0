"""UloRL segment rollouts (arXiv 2507.19766): continuation equals one long decode; bookkeeping."""

import pytest
import torch

from rlobj.rollout import HFEngine, SamplingConfig, sequence_logprobs
from rlobj.rollout.schedules import EADSchedule
from rlobj.rollout.segments import SegmentRollout

from .conftest import EOS


@pytest.mark.parametrize("schedule", [None, EADSchedule(warmup=3, d0=1.0, d_scale=6.0,
                                                        tau_min=0.4)])
def test_segments_equal_one_long_decode(tiny_model, prompts, schedule):
    """Without EOS no sample finishes early, so segments 5 + 5 + 2 replay one 12-token decode."""
    engine = HFEngine(tiny_model, eos_token_id=[])
    sampling = SamplingConfig(max_new_tokens=12, seed=9, temperature=0.9,
                              temperature_schedule=schedule)
    long = engine.generate(prompts[:2], n=3, sampling=sampling)
    segmented = SegmentRollout(engine, segment_tokens=5)
    first = segmented.generate(prompts[:2], n=3, sampling=sampling)
    assert len(first) == 0 and segmented.pending == 6
    second = segmented.generate([], n=3, sampling=sampling)
    assert len(second) == 0 and segmented.pending == 6
    third = segmented.generate([], n=3, sampling=sampling)
    assert segmented.pending == 0 and len(third) == 6
    assert torch.equal(third.response_ids, long.response_ids)
    assert torch.equal(third.response_mask, long.response_mask)
    assert torch.allclose(third.logp_rollout, long.logp_rollout, atol=2e-5)
    assert third.group_ids.tolist() == long.group_ids.tolist()
    assert third.truncated.all() and set(third.finish_reasons) == {"length"}
    assert segmented.last_segments[0].tolist() == [0] * 5 + [1] * 5 + [2] * 2


@pytest.mark.parametrize("release", ["group", "sample"])
def test_finished_unfinished_bookkeeping(tiny_model, prompts, release):
    engine = HFEngine(tiny_model)  # EOS = 1 ends samples at random lengths
    budget, segment, n = 9, 2, 4
    sampling = SamplingConfig(max_new_tokens=budget, seed=3, temperature=1.3)
    rollout = SegmentRollout(engine, segment_tokens=segment, release=release)
    returned, calls = [], 0
    batch = rollout.generate(prompts[:2], n=n, sampling=sampling, keys=["a", "b"])
    while True:
        calls += 1
        returned.append((batch, list(rollout.last_keys), rollout.last_segments.clone()))
        if calls == 2:  # a new prompt joins later
            batch = rollout.generate([prompts[2]], n=n, sampling=sampling, keys=["c"])
        elif rollout.pending:
            batch = rollout.generate([], n=n, sampling=sampling)
        else:
            break
        if release == "sample":  # nothing finished is held back
            assert all(not s.finished for s in rollout._samples)
    rows = sum(len(b) for b, _, _ in returned)
    assert rows == 3 * n
    seen_groups = []
    for batch, keys, segments in returned:
        if len(batch) == 0:
            continue
        assert keys == [{0: "a", 1: "b", 2: "c"}[g] for g in batch.group_ids.tolist()]
        lengths = batch.response_lengths
        for row in range(len(batch)):
            tokens = batch.response_ids[row][: int(lengths[row])].tolist()
            assert EOS not in tokens[:-1]
            if batch.finish_reasons[row] == "stop":
                assert tokens[-1] == EOS and not batch.truncated[row]
            else:
                assert len(tokens) == budget and batch.truncated[row]
            seg = segments[row][: len(tokens)].tolist()
            assert seg == sorted(seg)  # segments in call order
            assert all(seg.count(c) <= segment for c in set(seg))
            assert (segments[row][len(tokens):] == -1).all()
        prompt_of = {0: prompts[0], 1: prompts[1], 2: prompts[2]}
        for row in range(len(batch)):
            got = batch.prompt_ids[row][batch.prompt_mask[row]].tolist()
            assert got == prompt_of[int(batch.group_ids[row])]
        with torch.no_grad():  # same weights throughout: log-probs are the policy's
            want = sequence_logprobs(tiny_model, batch.prompt_ids, batch.prompt_mask,
                                     batch.response_ids, batch.response_mask, temperature=1.3)
        assert torch.allclose(batch.logp_rollout, want, atol=2e-5)
        if release == "group":  # complete, contiguous groups
            ids = batch.group_ids.tolist()
            for g in set(ids):
                assert ids.count(g) == n
            assert ids == sorted(ids)
        seen_groups += batch.group_ids.tolist()
    assert sorted(seen_groups) == [g for g in range(3) for _ in range(n)]
    assert calls <= -(-budget // segment) + 2  # every sample ends within ceil(L/S) segments


def test_segment_errors(tiny_model, prompts):
    engine = HFEngine(tiny_model)
    with pytest.raises(ValueError, match="segment_tokens must be an int >= 1"):
        SegmentRollout(engine, 0)
    with pytest.raises(ValueError, match="release must be 'group' or 'sample'"):
        SegmentRollout(engine, 2, release="batch")
    with pytest.raises(TypeError, match="decode_rows"):
        SegmentRollout(object(), 2)
    rollout = SegmentRollout(HFEngine(tiny_model, eos_token_id=[]), 2)
    rollout.generate(prompts[:1], 2, SamplingConfig(max_new_tokens=6, seed=0))
    with pytest.raises(ValueError, match="max_new_tokens .* changed"):
        rollout.generate([], 2, SamplingConfig(max_new_tokens=8, seed=0))
    with pytest.raises(ValueError, match="keys must have one entry per prompt"):
        rollout.generate(prompts[:1], 2, SamplingConfig(max_new_tokens=6), keys=[1, 2])
    with pytest.raises(ValueError, match="at least one prompt"):
        SegmentRollout(engine, 2).generate([], 2, SamplingConfig(max_new_tokens=6))
    rollout.reset()
    assert rollout.pending == 0
