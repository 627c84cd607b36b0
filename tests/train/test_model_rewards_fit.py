"""Every model-backed scorer trains 2 RL steps from YAML through ``rlobj fit`` (tiny local judges)."""

import math

import pytest

from rlobj import brpo_advantage, group_zscore
from rlobj.presets import grpo
from rlobj.registry import to_config

from ._helpers import TINY
from ._yaml_fit import fit_yaml

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
    metrics = fit_yaml(tmp_path, {"class_path": f"rlobj.train.{name}", "init_args": {"model": tiny_judges[kind], **args}})
    assert metrics["phase"] == 1.0 and metrics["data_position"] == 2.0
    assert f"{prefix}/failed_fraction" in metrics and math.isfinite(metrics["loss"]), metrics


@pytest.mark.parametrize("scorer, metric", [
    ({"class_path": "rlobj.train.paper_rewards.R3Reward", "init_args": {"answer_prefix": "="}}, "r3/mean"),
    ({"class_path": "rlobj.train.paper_rewards.R3Reward", "init_args": {"answer_prefix": "=", "masked_baseline": True}},
     "r3/mean"),
])
def test_policy_backed_reward_trains_from_yaml(scorer, metric, tmp_path):
    metrics = fit_yaml(tmp_path, scorer)
    assert metrics["phase"] == 1.0 and math.isfinite(metrics[metric]) and math.isfinite(metrics["loss"])
    assert metrics["reward/std"] > 0.0  # a dense, informative reward


def test_writing_zero_pairwise_judge_drives_brpo_from_yaml(tiny_judges, tmp_path):
    objective = to_config(grpo.replace(group_zscore, brpo_advantage(filter_threshold=None)))
    scorer = {"class_path": "rlobj.train.paper_rewards.WritingZeroJudge", "init_args": {"model": tiny_judges["raw"]}}
    metrics = fit_yaml(tmp_path, scorer, objective=objective)
    assert "brpo/win_frac" in metrics and metrics["writing_zero/failed_fraction"] == 0.0
    assert math.isfinite(metrics["loss"])


def test_weighted_judge_and_function_compose_from_yaml(tiny_judges, tmp_path):
    scorer = {"class_path": "rlobj.train.RewardFunctions", "init_args": {
        "funcs": [{"class_path": "rlobj.train.judges.PointwiseJudge", "init_args": {"model": tiny_judges["seven"]}},
                  {"class_path": "rlobj.train.model_scorers.SequenceClassifierRM",
                   "init_args": {"model": tiny_judges["rm"], "dtype": "float32"}}],
        "weights": [1.0, 0.5]}}
    metrics = fit_yaml(tmp_path, scorer)
    assert metrics["reward_funcs/judge/mean"] == pytest.approx(0.7)
    assert {"reward_funcs/reward_model/mean", "reward_funcs/reward_model/std"} <= set(metrics)


def test_rm_r1_preference_task_trains_the_policy_as_a_reward_model_from_yaml(tmp_path):
    from rlobj.train.tiny_judges import JUDGE_CHARS

    rows = [{"question": f"{a}+{a}?", "chosen": str(2 * a), "rejected": str(2 * a + 1)} for a in range(6)]
    task = {"class_path": "rlobj.train.reward_model_tasks.PreferenceTask", "init_args": {"rows": rows}}
    metrics = fit_yaml(tmp_path, None, data={"train": task, "eval": task, "prompts_per_step": 2, "eval_size": 2},
                   verifier={"class_path": "rlobj.train.reward_model_tasks.PreferenceVerdict"},
                   policy={"tiny_model": TINY, "tokenizer_chars": JUDGE_CHARS})
    assert metrics["phase"] == 1.0 and math.isfinite(metrics["loss"]) and "verifier/failed_fraction" in metrics
