"""Scorers: verifier returns (number, Score, mapping with fields) and the process scorer's step scores."""

import math

import pytest
import torch

from rlobj.rollout._batching import batch_from_rows
from rlobj.train.scorers import ProcessScorer, VerifierScorer, as_score
from rlobj.train.stages import Batch, Score

from ._helpers import tiny_module


def test_as_score_accepts_numbers_scores_and_mappings():
    assert as_score(1) == Score(1.0)
    assert as_score(Score(0.5, fields={"a": 1})).fields == {"a": 1}
    score = as_score({"reward": 0.25, "answer": "12", "token_rewards": [0.1, 0.2]})
    assert score.reward == 0.25 and score.fields == {"answer": "12"} and list(score.token_rewards) == [0.1, 0.2]
    for bad in ({"answer": "12"}, float("nan"), "x"):
        with pytest.raises(ValueError):
            as_score(bad)


def _batch(module, texts, records):
    ids = [torch.tensor(module.encode(t)) for t in texts]
    rollout = batch_from_rows([torch.tensor(module.encode("1+1="))] * len(ids), ids,
                              [torch.zeros(len(i)) for i in ids], list(range(len(ids))), [True] * len(ids),
                              module.tokenizer.pad_token_id)
    return Batch(rollout=rollout, records=records)


def test_verifier_fields_reach_the_batch_and_failures_score_zero():
    module = tiny_module()

    def verifier(completion, record):
        if completion == "9":
            raise RuntimeError("broken")
        return {"reward": float(completion == record["answer"]), "answer": completion}

    scorer = VerifierScorer(verifier)
    batch = _batch(module, ["12", "9", "3"], [{"answer": "12"}] * 3)
    batch.scores = scorer(module.context(0), batch)
    assert batch.rewards.tolist() == [1.0, 0.0, 0.0]
    assert batch.scores[0].fields == {"answer": "12"} and batch.scores[1].fields == {}
    assert math.isclose(batch.metrics["verifier/failed_fraction"], 1 / 3)


def test_process_scorer_scores_each_step_by_hand():
    module = tiny_module()
    scorer = ProcessScorer(lambda completion, record: 1.0, delimiter=" ")
    batch = _batch(module, ["1+2=3 4+4=9 8", "2*3=6"], [{"answer": "8"}, {"answer": "6"}])
    scores = scorer(module.context(0), batch)
    assert [s.reward for s in scores] == [1.0, 1.0]
    # steps "1+2=3" (holds), "4+4=9" (does not), "8" (no equation: neutral 0.5); "2*3=6" holds
    assert scores[0].fields["step_scores"] == [1.0, 0.0, 0.5] and scores[1].fields["step_scores"] == [1.0]
