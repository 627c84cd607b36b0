"""The stage protocols' Batch (rlobj/train/stages.py): one record and score per row, rewards and score
fields as tensors, the action mask without observation tokens, token rewards per response token,
select and concat (groups renumbered, extras re-padded), each misuse named."""

import pytest
import torch
from train.transforms._scripted import make_batch

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score


def _scored(responses=([5, 7], [6], [5, 7, 7]), groups=(0, 0, 3)):
    batch = make_batch([{"id": i} for i in range(len(responses))], [list(r) for r in responses], list(groups))
    scores = [Score(reward=float(i), fields={"acc": i % 2, "pair": [i, -i]}) for i in range(len(responses))]
    return Batch(rollout=batch.rollout, records=batch.records, scores=scores, extras=batch.extras)


def test_one_record_and_one_score_per_row():
    batch = _scored()
    with pytest.raises(RlobjInputError, match=r"Batch.records: expected one record per row \(3\)"):
        Batch(rollout=batch.rollout, records=batch.records[:2])
    with pytest.raises(RlobjInputError, match=r"Batch.scores: expected one Score per row \(3\)"):
        Batch(rollout=batch.rollout, records=batch.records, scores=batch.scores[:1])


def test_rewards_and_score_fields():
    batch = _scored()
    assert batch.rewards.tolist() == [0.0, 1.0, 2.0] and batch.rewards.dtype == torch.float32
    assert batch.score_field("acc").tolist() == [0, 1, 0]
    assert batch.score_field("pair").tolist() == [[0, 0], [1, -1], [2, -2]]
    with pytest.raises(RlobjInputError, match=r"score field 'nope': the scorer gave no such field for rows \[0, 1, 2\]"):
        batch.score_field("nope")
    unscored = Batch(rollout=batch.rollout, records=batch.records)
    with pytest.raises(RlobjInputError, match="Batch.rewards: the batch has not been scored yet"):
        unscored.rewards  # noqa: B018
    with pytest.raises(RlobjInputError, match="score field 'acc': the batch has not been scored yet"):
        unscored.score_field("acc")


def test_action_mask_drops_observation_tokens():
    batch = _scored()
    mask = batch.rollout.response_mask
    assert torch.equal(batch.action_mask(), mask)
    observation = torch.zeros_like(mask)
    observation[2, 1] = True
    marked = Batch(rollout=batch.rollout, records=batch.records, extras={"observation_mask": observation})
    assert marked.action_mask().tolist() == (mask & ~observation).tolist()
    bad = Batch(rollout=batch.rollout, records=batch.records, extras={"observation_mask": observation.float()})
    with pytest.raises(RlobjInputError, match=r"Batch.extras\['observation_mask'\]: expected a bool tensor"):
        bad.action_mask()


def test_token_rewards_per_response_token():
    batch = _scored()
    assert batch.token_rewards() is None
    batch.scores[0] = Score(reward=0.0, token_rewards=[0.5, 0.25])
    out = batch.token_rewards()
    assert out.tolist() == [[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    batch.scores[2] = Score(reward=0.0, token_rewards=[1.0])
    with pytest.raises(RlobjInputError, match=r"Score.token_rewards of row 2: expected 3 values"):
        batch.token_rewards()


def test_select_and_concat():
    batch = _scored()
    picked = batch.select([2, 0])
    assert [r["id"] for r in picked.records] == [2, 0] and picked.rewards.tolist() == [2.0, 0.0]
    joined = Batch.concat([batch, picked], pad_token_id=0)
    assert len(joined) == 5 and joined.rewards.tolist() == [0.0, 1.0, 2.0, 2.0, 0.0]
    # each batch's ids renumbered in sorted order (0, 3 -> 0, 1), then offset past the previous batch's
    assert joined.rollout.group_ids.tolist() == [0, 0, 1, 3, 2]
    assert Batch.concat([batch], pad_token_id=0) is batch
    with pytest.raises(RlobjInputError, match="Batch.concat: no rows to concatenate"):
        Batch.concat([], pad_token_id=0)
    unscored = Batch(rollout=batch.rollout, records=batch.records, extras=batch.extras)
    with pytest.raises(RlobjInputError, match="Batch.concat: some batches are scored and some are not"):
        Batch.concat([batch, unscored], pad_token_id=0)
    with pytest.raises(RlobjInputError, match="Batch.concat: the batches carry different extras"):
        flagged = Batch(rollout=batch.rollout, records=batch.records, scores=batch.scores,
                        extras={"off_policy": torch.zeros(3, dtype=torch.bool)})
        Batch.concat([batch, flagged], pad_token_id=0)
