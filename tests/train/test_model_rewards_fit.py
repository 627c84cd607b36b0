"""Every model-backed scorer trains 2 RL steps from YAML through ``rlobj fit`` (tiny local judges)."""

import json
import math

import pytest
import yaml

from rlobj import brpo_advantage, group_zscore
from rlobj.presets import grpo
from rlobj.registry import to_config
from rlobj.train.cli import run

TINY = {"hidden_size": 128, "layers": 1, "heads": 2, "seed": 0}
QUESTIONS = [{"question": "sum?", "options": ["small", "large"], "answer": 1}]


def _data(tmp_path) -> dict:
    """A JSONL task whose rows carry every field the paper scorers read."""
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": f"{a}+{a}=", "answer": str(2 * a), "completion": str(2 * a),
             "visual_annotations": [f"the number {a}", "a plus sign"], "questions": QUESTIONS,
             "documents": [f"{a} plus {a} is {2 * a}."]} for a in range(1, 9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"class_path": "rlobj.train.DatasetTask", "init_args": {"path": str(path), "cache_dir": str(tmp_path / "c")}}
    return {"train": task, "eval": task, "prompts_per_step": 2, "eval_size": 2}


def _fit(tmp_path, scorer: dict | None, objective="grpo", data: dict | None = None, **model) -> dict:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
                    "default_root_dir": str(tmp_path)},
        "model": {"policy": {"tiny_model": TINY}, "rollout": {"group_size": 4, "max_new_tokens": 4},
                  "warmup": {"steps": 0, "eval_at_end": False}, "objective": objective, "scorer": scorer,
                  "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3}}, "seed": 0, **model},
        "data": data or _data(tmp_path),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run(["fit", "--config", str(path)]).model.last_metrics


#: scorer class -> (judge kind, init args beyond the model, the metric prefix it logs)
CASES = {
    "model_scorers.SequenceClassifierRM": ("rm", {"dtype": "float32"}, "reward_model"),
    "paper_rewards.RLMTReward": ("rm", {"dtype": "float32", "think_marker": "+"}, "rlmt"),
    "judges.PointwiseJudge": ("seven", {}, "judge"),
    "judges.ThinkingJudge": ("seven", {"think_tokens": 4}, "thinking_judge"),
    "judges.PairwiseLLMJudge": ("raw", {"reference": "completion"}, "pairwise_judge"),
    "judges.PrincipleJudge": ("raw", {"principles": ["is correct", "is short"]}, "principle_judge"),
    "paper_rewards.RLBFFJudge": ("raw", {"principles": ["accuracy of information"]}, "rlbff"),
    "paper_rewards.PerceptionJudge": ("raw", {"binary": False}, "perception"),
    "paper_rewards.NextSegmentJudge": ("raw", {"binary": False}, "next_segment"),
    "paper_rewards.CaptionUtility": ("raw", {}, "caption_utility"),
    "reward_model_tasks.SentenceJudge": ("raw", {}, "trm"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_scorer_trains_from_yaml(name, tiny_judges, tmp_path):
    kind, args, prefix = CASES[name]
    metrics = _fit(tmp_path, {"class_path": f"rlobj.train.{name}", "init_args": {"model": tiny_judges[kind], **args}})
    assert metrics["phase"] == 1.0 and metrics["data_position"] == 2.0
    assert f"{prefix}/failed_fraction" in metrics and math.isfinite(metrics["loss"]), metrics


@pytest.mark.parametrize("scorer, metric", [
    ({"class_path": "rlobj.train.paper_rewards.R3Reward", "init_args": {"answer_prefix": "="}}, "r3/mean"),
    ({"class_path": "rlobj.train.paper_rewards.R3Reward", "init_args": {"answer_prefix": "=", "masked_baseline": True}},
     "r3/mean"),
])
def test_policy_backed_reward_trains_from_yaml(scorer, metric, tmp_path):
    metrics = _fit(tmp_path, scorer)
    assert metrics["phase"] == 1.0 and math.isfinite(metrics[metric]) and math.isfinite(metrics["loss"])
    assert metrics["reward/std"] > 0.0  # a dense, informative reward


def test_writing_zero_pairwise_judge_drives_brpo_from_yaml(tiny_judges, tmp_path):
    objective = to_config(grpo.replace(group_zscore, brpo_advantage(filter_threshold=None)))
    scorer = {"class_path": "rlobj.train.paper_rewards.WritingZeroJudge", "init_args": {"model": tiny_judges["raw"]}}
    metrics = _fit(tmp_path, scorer, objective=objective)
    assert "brpo/win_frac" in metrics and metrics["writing_zero/failed_fraction"] == 0.0
    assert math.isfinite(metrics["loss"])


def test_weighted_judge_and_function_compose_from_yaml(tiny_judges, tmp_path):
    scorer = {"class_path": "rlobj.train.RewardFunctions", "init_args": {
        "funcs": [{"class_path": "rlobj.train.judges.PointwiseJudge", "init_args": {"model": tiny_judges["seven"]}},
                  {"class_path": "rlobj.train.model_scorers.SequenceClassifierRM",
                   "init_args": {"model": tiny_judges["rm"], "dtype": "float32"}}],
        "weights": [1.0, 0.5]}}
    metrics = _fit(tmp_path, scorer)
    assert metrics["reward_funcs/judge/mean"] == pytest.approx(0.7)
    assert {"reward_funcs/reward_model/mean", "reward_funcs/reward_model/std"} <= set(metrics)


def test_rm_r1_preference_task_trains_the_policy_as_a_reward_model_from_yaml(tmp_path):
    from rlobj.train.tiny_judges import JUDGE_CHARS

    rows = [{"question": f"{a}+{a}?", "chosen": str(2 * a), "rejected": str(2 * a + 1)} for a in range(6)]
    task = {"class_path": "rlobj.train.reward_model_tasks.PreferenceTask", "init_args": {"rows": rows}}
    metrics = _fit(tmp_path, None, data={"train": task, "eval": task, "prompts_per_step": 2, "eval_size": 2},
                   verifier={"class_path": "rlobj.train.reward_model_tasks.PreferenceVerdict"},
                   policy={"tiny_model": TINY, "tokenizer_chars": JUDGE_CHARS})
    assert metrics["phase"] == 1.0 and math.isfinite(metrics["loss"]) and "verifier/failed_fraction" in metrics
