"""GHPO's guided resampling and ViSurf's ground-truth rows on a scripted policy whose success
depends on the hint it is given, then both trained from YAML with the SFT term."""

import math

import pytest
import torch
import yaml

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout._batching import batch_from_rows
from rlobj.train.cli import run
from rlobj.train.stages import Batch, Score, StepContext
from rlobj.train.transforms import GroundTruthRows, GuidedResample
from rlobj.train.transforms.guidance import hinted_record

RIGHT, WRONG = 5, 6


class HintPolicy:
    """Record ``r`` is answered right iff its prompt carries a hint of at least ``r["needs"]`` of the
    solution (``hint_fraction``); each prompt gets ``group`` rows; calls are logged."""

    def __init__(self, group=2):
        self.group, self.calls = group, []

    def sample(self, records, n=None, salt=0, **changes):
        self.calls.append(([r["id"] for r in records], [r.get("hint_fraction", 0.0) for r in records], salt))
        rows, responses, groups = [], [], []
        for j, record in enumerate(records):
            right = record.get("hint_fraction", 0.0) >= record["needs"]
            for _ in range(n or self.group):
                rows.append(record)
                responses.append([RIGHT if right else WRONG, 7])
                groups.append(j)
        rollout = batch_from_rows([torch.tensor([10 + r["id"]]) for r in rows], [torch.tensor(t) for t in responses],
                                  [torch.full((2,), -0.5) for _ in rows], groups, [True] * len(rows), pad_token_id=0)
        return Batch(rollout=rollout, records=rows)

    def score(self, batch):
        batch.scores = [Score(float(int(batch.rollout.response_ids[b, 0]) == RIGHT)) for b in range(len(batch))]
        return batch


class Engine:
    eos_token_ids = (1,)


def _ctx(policy):
    return StepContext(step=0, rl_updates=0, seed=0, rank=0, world_size=1, group_size=policy.group, engine=Engine(),
                       models=None, sample=policy.sample, score=policy.score,
                       encode=lambda text: [int(c) + 2 for c in text if c.isdigit()], decode=lambda r: [],
                       pad_token_id=0)


RECORDS = [{"id": 0, "prompt": "a", "completion": "1234", "needs": 0.0},
           {"id": 1, "prompt": "b", "completion": "1234", "needs": 0.5},
           {"id": 2, "prompt": "c", "completion": "1234", "needs": 1.0},
           {"id": 3, "prompt": "d", "completion": "1234", "needs": 0.25}]


def test_hinted_record_cuts_the_solution_by_characters():
    record = hinted_record(RECORDS[1], 0.5, "completion", "{prompt}|{hint}")
    assert record["prompt"] == "b|12" and record["hint_fraction"] == 0.5
    with pytest.raises(RlobjInputError, match="'proof'"):
        hinted_record(RECORDS[1], 0.5, "proof", "{prompt}{hint}")


def test_guided_resample_raises_the_hint_until_the_group_is_solved():
    policy = HintPolicy()
    batch = policy.score(policy.sample(RECORDS))
    policy.calls.clear()
    out = GuidedResample(template="{prompt}|{hint}", salt=100)(_ctx(policy), batch)
    # round 1 (25%): prompts 1, 2, 3 all wrong; 3 is solved at 25%. round 2 (50%): 1 solved.
    # round 3 (75%): 2 still wrong (needs the whole solution)
    assert policy.calls == [([1, 2, 3], [0.25, 0.25, 0.25], 100), ([1, 2], [0.5, 0.5], 101), ([2], [0.75], 102)]
    assert [r["id"] for r in out.records] == [0, 0, 1, 1, 2, 2, 3, 3]  # groups stay in order, contiguous
    assert out.rollout.group_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [r.get("hint_fraction", 0.0) for r in out.records[::2]] == [0.0, 0.5, 0.75, 0.25]
    assert [r["prompt"] for r in out.records[::2]] == ["a", "b|12", "c|123", "d|1"]
    assert out.rewards.tolist() == [1, 1, 1, 1, 0, 0, 1, 1]
    assert out.metrics == {"ghpo/guided_groups": 3.0, "ghpo/still_wrong": 1.0,
                           "ghpo/hint_ratio_mean": pytest.approx((0.5 + 0.75 + 0.25) / 3)}


def test_guided_resample_leaves_solved_batches_alone_and_checks_its_arguments():
    policy = HintPolicy()
    batch = policy.score(policy.sample([RECORDS[0]]))
    out = GuidedResample()(_ctx(policy), batch)
    assert len(policy.calls) == 1 and out.records == batch.records
    with pytest.raises(RlobjInputError, match="ratios"):
        GuidedResample(ratios=[0.5, 0.25])
    with pytest.raises(RlobjInputError, match="template"):
        GuidedResample(template="{prompt}")


def test_ground_truth_rows_join_every_group_and_are_marked():
    policy = HintPolicy()
    batch = policy.score(policy.sample(RECORDS[:2]))
    out = GroundTruthRows()(_ctx(policy), batch)
    assert [r["id"] for r in out.records] == [0, 0, 0, 1, 1, 1]
    assert out.rollout.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    # the injected response is encode("1234") + eos = [3, 4, 5, 6, 1]
    assert out.rollout.response_ids[2].tolist() == [3, 4, 5, 6, 1]
    assert out.extras["ground_truth"].tolist()[2] == [True] * 5
    assert out.extras["ground_truth"][[0, 1, 3, 4]].any().item() is False
    # scored by the scorer: "1234" does not start with the RIGHT token 5, so 0
    assert out.rewards.tolist() == [1, 1, 0, 0, 0, 0]
    assert out.on_policy is False and out.metrics["visurf/injected"] == 2.0


def test_ground_truth_rows_fixed_reward_only_for_failed_groups():
    policy = HintPolicy()
    batch = policy.score(policy.sample(RECORDS[:2]))
    out = GroundTruthRows(reward=1.0, only_failed=True)(_ctx(policy), batch)
    assert [r["id"] for r in out.records] == [0, 0, 1, 1, 1]
    assert out.rewards.tolist() == [1, 1, 0, 0, 1]
    with pytest.raises(RlobjInputError, match="'proof'"):
        GroundTruthRows(solution_key="proof")(_ctx(policy), batch)


MODEL = {"policy": {"tiny_model": {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}},
         "rollout": {"group_size": 4, "max_new_tokens": 4}, "warmup": {"steps": 0, "eval_at_end": False},
         "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3, "weight_decay": 0.0}},
         "seed": 0}


@pytest.mark.parametrize("transform, objective", [
    ({"guided_resample": {"template": "{hint} {prompt}"}}, "grpo"),
    ({"ground_truth_rows": {}}, ["group_zscore", "clip_ratio", {"sft": {"coef": 0.1, "mask_key": "ground_truth"}},
                                "token_mean"]),
])
def test_guidance_trains_from_yaml(transform, objective, tmp_path):
    config = {"seed_everything": 0,
              "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0, "logger": False,
                          "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
                          "default_root_dir": str(tmp_path)},
              "model": {**MODEL, "objective": objective, "transforms": [transform]},
              "data": {"train": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 1}},
                       "eval": {"class_path": "rlobj.train.AdditionTask", "init_args": {"seed": 2}},
                       "prompts_per_step": 3, "eval_size": 4}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    metrics = run(["fit", "--config", str(path)]).model.last_metrics
    assert math.isfinite(metrics["loss"]) and metrics["rl_updates" if "rl_updates" in metrics else "phase"] == 1.0
    if "ground_truth_rows" in transform:
        assert metrics["visurf/injected"] == 3.0 and math.isfinite(metrics["sft/nll"]) and metrics["sft/nll"] > 0
    else:
        assert "ghpo/guided_groups" in metrics


def test_ground_truth_mask_without_the_transform_names_the_fix():
    from rlobj.train.transforms.guidance import GroundTruthMask

    with pytest.raises(RlobjInputError, match="ground_truth_rows"):
        GroundTruthMask().batch(None, None, {})
