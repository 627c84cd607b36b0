"""Batch statistics providers (rlobj/train/providers/batch_statistics.py): accuracy from the scorer's
field or its reward, and the checks SIREN's anchor makes of the terms that read it. (The anchor's
value against the authors' code is in tests/train/test_reference_providers.py.)"""

import pytest
from train.transforms._scripted import make_batch

from rlobj.ops.errors import RlobjInputError
from rlobj.terms.regularizers.selective_entropy import siren
from rlobj.terms.surrogates import clip_ratio
from rlobj.train.providers.batch_statistics import Accuracy, SirenAnchor
from rlobj.train.stages import Batch, Score


def _batch(scores):
    plain = make_batch([{"id": i} for i in range(len(scores))], [[5]] * len(scores), [0] * len(scores))
    return Batch(rollout=plain.rollout, records=plain.records, scores=scores)


def test_accuracy_is_the_scorers_field_else_its_reward():
    with_field = _batch([Score(reward=0.8, fields={"accuracy": 1.0}), Score(reward=0.3, fields={"accuracy": 0.0})])
    assert Accuracy().batch(None, with_field, {})["extras:accuracy"].tolist() == [1.0, 0.0]
    partial = _batch([Score(reward=0.8, fields={"accuracy": 1.0}), Score(reward=0.3)])
    assert Accuracy().batch(None, partial, {})["extras:accuracy"].tolist() == pytest.approx([0.8, 0.3])
    named = _batch([Score(reward=0.0, fields={"acc": 1}), Score(reward=1.0, fields={"acc": 0})])
    assert Accuracy(field="acc").batch(None, named, {})["extras:accuracy"].tolist() == [1.0, 0.0]
    unscored = make_batch([{"id": 0}], [[5]], [0])
    with pytest.raises(RlobjInputError, match="Batch.rewards: the batch has not been scored yet"):
        Accuracy().batch(None, unscored, {})


def test_siren_anchor_needs_one_agreeing_siren_term():
    anchor = SirenAnchor()
    anchor.setup((clip_ratio(), siren()))
    with pytest.raises(RlobjInputError, match=r"^SirenAnchor: no siren term reads extras\['siren_anchor'\]"):
        SirenAnchor().setup((clip_ratio(),))
    with pytest.raises(RlobjInputError, match=r"^objective: siren terms disagree on \(p, quantile, top_k\)"):
        SirenAnchor().setup((siren(p=0.8), siren(p=0.9)))
