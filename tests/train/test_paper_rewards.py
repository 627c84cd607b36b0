"""Paper rewards (rlobj/train/paper_rewards.py): RLMT's answer after thinking, the perception and
next-segment judges' record fields, the caption utility, and R3's rewards by hand and against a plain
float64 transcription of the paper."""

import math

import pytest
import torch
from train._judge_helpers import RECORDS

from rlobj.ops.errors import RlobjInputError
from rlobj.train.model_scorers import SequenceClassifierRM, strip_thinking
from rlobj.train.paper_rewards import (
    CaptionUtility,
    NextSegmentJudge,
    PerceptionJudge,
    RLMTReward,
    r3_rewards,
)


def test_rlmt_scores_only_the_answer_after_thinking(tiny_judges):
    rlmt = RLMTReward(tiny_judges["rm"], dtype="float32")
    plain = SequenceClassifierRM(tiny_judges["rm"], dtype="float32")
    scores, metrics = rlmt.score_texts(["<think>x</think>2", "no marker"], RECORDS[:2])
    assert scores[0].reward == pytest.approx(plain.score_texts(["2"], RECORDS[:1])[0][0].reward, abs=1e-6)
    assert scores[1].reward == 0.0 and scores[1].fields["scored"] == 0.0 and metrics["rlmt/invalid"] == 1.0
    assert strip_thinking("a</think>b</think>c", "</think>") == "c"


def test_perception_and_next_segment_judges_read_their_record_fields(tiny_judges):
    record = {"prompt": "what is shown", "visual_annotations": ["a red ball", "two cats"], "completion": "cats"}
    perception = PerceptionJudge(tiny_judges["raw"])
    scores, _ = perception.score_texts(["a ball"], [record])
    assert len(perception.last_judgements[0]) == 2 and scores[0].reward in (0.0, 0.5, 1.0)
    segment = NextSegmentJudge(tiny_judges["raw"], binary=False)
    scores, _ = segment.score_texts(["cats"], [record])
    assert 0.0 < scores[0].reward < 1.0
    with pytest.raises(RlobjInputError, match=r"record\['visual_annotations'\] is None"):
        perception.score_rows(["p"], ["y"], [{"prompt": "p"}])


def test_caption_utility_is_the_accuracy_of_the_second_stage(tiny_judges):
    questions = [{"question": "color?", "options": ["red", "blue"], "answer": 0},
                 {"question": "count?", "options": ["one", "two", "three"], "answer": 2}]
    utility = CaptionUtility(tiny_judges["raw"])
    scores, _ = utility.score_texts(["a red ball"], [{"prompt": "describe", "questions": questions}])
    chosen = utility.last_choices[0]
    assert scores[0].reward == ((chosen[0] == 0) + (chosen[1] == 2)) / 2


# ------------------------------------------------------------------ hand-computed paper rewards
def test_r3_weights_reference_tokens_by_their_spread_over_the_group():
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -4.0, 0.0], [-0.5, -0.5, -3.0], [-1.5, -0.5, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    groups = torch.tensor([0, 0, 1, 1])
    # group 0: sigma = (0, 1) -> w = (0, 1): R3 = (-2, -4)
    # group 1: sigma = (0.5, 0, 1) -> w = (1/3, 0, 2/3): R3 = (-0.5/3 - 6/3, -1.5/3 - 2/3)
    expected = torch.tensor([-2.0, -4.0, -6.5 / 3, -3.5 / 3])
    assert torch.allclose(r3_rewards(logp, mask, groups), expected)
    flat = r3_rewards(torch.tensor([[-1.0, -3.0], [-1.0, -3.0]]), torch.ones(2, 2, dtype=torch.bool),
                      torch.tensor([0, 0]))
    assert torch.allclose(flat, torch.tensor([-2.0, -2.0]))  # no spread: plain mean


def test_r3_masked_baseline_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -4.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    groups = torch.tensor([0, 0])
    # sigma = (0, 1) from logp -> w = (0, 1); R3_i = w . (logp_i - b_i)
    shared = torch.tensor([[-0.5, -1.0], [-0.5, -1.0]])
    assert torch.allclose(r3_rewards(logp, mask, groups, baseline_logp=shared), torch.tensor([-1.0, -3.0]))
    per_row = torch.tensor([[-0.5, -1.0], [-0.5, -3.0]])
    assert torch.allclose(r3_rewards(logp, mask, groups, baseline_logp=per_row), torch.tensor([-1.0, -1.0]))
    with pytest.raises(RlobjInputError, match="baseline_logp has shape"):
        r3_rewards(logp, mask, groups, baseline_logp=torch.zeros(2, 3))


def test_r3_group_shared_baseline_leaves_group_advantages_unchanged():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(6, 4, generator=gen, dtype=torch.float64) * 3
    mask = torch.ones(6, 4, dtype=torch.bool)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    base = -torch.rand(2, 4, generator=gen, dtype=torch.float64)[groups]  # one baseline per prompt
    plain, corrected = r3_rewards(logp, mask, groups), r3_rewards(logp, mask, groups, baseline_logp=base)
    shift = plain - corrected
    assert torch.allclose(shift[:3], shift[0].expand(3)) and torch.allclose(shift[3:], shift[3].expand(3))
    assert not torch.allclose(shift[0], shift[3])  # the level differs between prompts

    def zscore(r):
        return torch.cat([(r[g] - r[g].mean()) / r[g].std() for g in (slice(0, 3), slice(3, 6))])
    assert torch.allclose(zscore(plain), zscore(corrected))


def _r3_transcribed(logp, lengths, groups, baseline=None):
    """DRO v1 section 4.1.3, term by term in Python floats: sigma_j population std over the group,
    w_j = sigma_j / sum_k sigma_k (uniform if all zero), R3_i = sum_j w_j (l_ij - b_ij)."""
    out = [0.0] * len(logp)
    for g in sorted(set(groups)):
        rows = [i for i, gi in enumerate(groups) if gi == g]
        n_tok = lengths[rows[0]]
        sigma = []
        for j in range(n_tok):
            col = [logp[i][j] for i in rows]
            mu = sum(col) / len(col)
            sigma.append(math.sqrt(sum((x - mu) ** 2 for x in col) / len(col)))
        total = sum(sigma)
        w = [s / total for s in sigma] if total > 0 else [1.0 / n_tok] * n_tok
        for i in rows:
            out[i] = sum(w[j] * (logp[i][j] - (baseline[i][j] if baseline else 0.0)) for j in range(n_tok))
    return out


@pytest.mark.slow
def test_r3_matches_a_plain_transcription_of_the_paper_float64():
    gen = torch.Generator().manual_seed(3)
    for trial in range(20):
        sizes = [int(s) for s in torch.randint(1, 6, (4,), generator=gen)]
        lengths_per_group = [int(n) for n in torch.randint(1, 9, (4,), generator=gen)]
        groups = [g for g, size in enumerate(sizes) for _ in range(size)]
        lengths = [lengths_per_group[g] for g in groups]
        width = max(lengths)
        logp = -torch.rand(len(groups), width, generator=gen, dtype=torch.float64) * 5
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for i, n in enumerate(lengths):
            mask[i, :n] = True
        logp = logp * mask
        if trial % 5 == 0:  # a group with no spread: uniform weights
            # dyadic values, so the mean over the group is exact and sigma is exactly 0 in both
            logp[torch.tensor(groups) == 0] = torch.round(logp[torch.tensor(groups) == 0][0] * 4) / 4
        base = -torch.rand(len(groups), width, generator=gen, dtype=torch.float64) * mask
        for b in (None, base):
            got = r3_rewards(logp, mask, torch.tensor(groups), baseline_logp=b)
            want = _r3_transcribed(logp.tolist(), lengths, groups, None if b is None else b.tolist())
            assert got.dtype == torch.float64
            assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12), trial
