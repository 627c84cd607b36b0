"""CLPO's difficulty-conditioned KL: the ``extras:kl_scale`` provider labels hard rows from the step's
own groups (and rewritten hard problems), ``kl_penalty(scale_key=...)`` scales each row's KL."""

import pytest
import torch

from rlobj import kl_penalty
from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.data_strategies import DifficultyKLScale
from rlobj.train.stages import Batch, Score

from ._yaml_fit import fit_from_yaml


def _batch(accuracies, records):
    rows = [a for group in accuracies for a in group]
    groups = [g for g, group in enumerate(accuracies) for _ in group]
    rollout = batch_from_rows([torch.tensor([3])] * len(rows), [torch.tensor([4])] * len(rows),
                              [torch.zeros(1)] * len(rows), groups, [True] * len(rows), 0)
    return Batch(rollout=rollout, records=[records[g] for g in groups],
                 scores=[Score(2.0 * a - 1.0, fields={"accuracy": float(a)}) for a in rows])


def test_hard_rows_get_the_hard_scale_by_hand():
    # group accuracies 1/4 (hard: <= 0.3), 2/4 (medium), 4/4 but a rewrite of a hard problem (hard)
    batch = _batch([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]],
                   [{"prompt_id": "1"}, {"prompt_id": "2"}, {"prompt_id": "7/simplify", "parent": "7"}])
    scale = DifficultyKLScale().batch(None, batch, {})["extras:kl_scale"]
    assert scale.tolist() == [0.5] * 4 + [1.0] * 4 + [0.5] * 4
    # without an accuracy field: reward > 0 counts as correct (the authors' fallback)
    plain = Batch(rollout=batch.rollout, records=batch.records, scores=[Score(s.reward) for s in batch.scores])
    assert DifficultyKLScale(hard_scale=0.25).batch(None, plain, {})["extras:kl_scale"].tolist()[:5] == [0.25] * 4 + [1.0]
    with pytest.raises(RlobjInputError, match="hard_scale"):
        DifficultyKLScale(hard_scale=-1.0)


def test_kl_penalty_scales_each_rows_kl():
    logp = torch.log(torch.tensor([[0.5, 0.3], [0.5, 0.3]], dtype=torch.float64))
    logp_ref = torch.log(torch.tensor([[0.25, 0.3], [0.25, 0.3]], dtype=torch.float64))
    mask = torch.ones(2, 2, dtype=torch.bool)
    plain = kl_penalty(beta=0.5, estimator="k1").loss(logp=logp, logp_ref=logp_ref, mask=mask)
    scaled = kl_penalty(beta=0.5, estimator="k1", scale_key="kl_scale").loss(
        logp=logp, logp_ref=logp_ref, mask=mask, extras={"kl_scale": torch.tensor([0.5, 1.0], dtype=torch.float64)})
    k1 = 0.6931471805599453  # -log(0.25 / 0.5)
    assert plain.state.parts["kl_ref"].values[:, 0].tolist() == pytest.approx([0.5 * k1, 0.5 * k1])
    assert scaled.state.parts["kl_ref"].values[:, 0].tolist() == pytest.approx([0.25 * k1, 0.5 * k1])
    with pytest.raises(RlobjInputError, match="kl_scale"):
        kl_penalty(scale_key="kl_scale").loss(logp=logp, logp_ref=logp_ref, mask=mask,
                                              extras={"kl_scale": torch.ones(3, dtype=torch.float64)})
    with pytest.raises(RlobjInputError, match="scale_key"):
        kl_penalty(scale_key="")


def test_difficulty_scaled_kl_trains_two_rl_steps_from_yaml(tmp_path):
    model = {"policy": {"tiny_model": {"hidden_size": 64, "layers": 1, "heads": 2, "seed": 0}},
             "rollout": {"group_size": 4, "max_new_tokens": 4}, "warmup": {"steps": 0, "eval_at_end": False},
             "objective": ["group_zscore", "clip_ratio", {"kl_penalty": {"beta": 0.01, "scale_key": "kl_scale"}},
                           "token_mean"],
             "providers": [{"rlobj.train.data_strategies.DifficultyKLScale": {"hard_scale": 0.25}}],
             "verifier": {"class_path": "train._helpers.StartsWithDigit"}, "seed": 0}
    data = {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}},
            "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2}},
            "prompts_per_step": 4, "eval_size": 2,
            "strategy": {"class_path": "rlobj.train.data_strategies.DifficultyCurriculum"}}
    cli = fit_from_yaml(tmp_path, model, data)
    assert cli.model.rl_updates >= 2 and "kl/ref_k3" in cli.model.last_metrics
    assert [p.hard_scale for p in cli.model.providers if isinstance(p, DifficultyKLScale)] == [0.25]
