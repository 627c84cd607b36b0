"""TRL-style reward functions on the scorer stage, DatasetTask formats, and the guard rails."""

import json
import math

import pandas as pd
import pytest
import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.train import DatasetTask, RewardFunctions, RLDataModule, build_char_tokenizer

from ._helpers import tiny_module


def length_bonus(completions, **kwargs):
    return [0.1 * len(c) for c in completions]


def exact(prompts, completions, answer, **kwargs):
    return [float(c.strip() == a) for c, a in zip(completions, answer)]


def only_math(completions, kind, **kwargs):
    return [float(c.isdigit()) if k == "math" else None for c, k in zip(completions, kind)]


RECORDS = [{"prompt": "1+1=", "answer": "2", "kind": "math", "completion": "2"},
           {"prompt": "say hi", "answer": "hi", "kind": "word", "completion": "hi"},
           {"prompt": "2+2=", "answer": "4", "kind": "math", "completion": "4"}]


def test_weighted_sum_over_applicable_functions_and_per_function_metrics():
    scorer = RewardFunctions([exact, only_math, length_bonus], weights=[1.0, 0.5, 1.0])
    scores, metrics = scorer.score_texts(["2", "hi", "x"], RECORDS)
    # row 0: exact 1 + 0.5 * digits 1 + 0.1; row 1: exact 1 + (None) + 0.2; row 2: 0 + 0 + 0.1
    assert [s.reward for s in scores] == pytest.approx([1.6, 1.2, 0.1])
    assert metrics["reward_funcs/exact/mean"] == pytest.approx(2 / 3)
    assert metrics["reward_funcs/only_math/mean"] == pytest.approx(0.5)  # over the 2 math rows
    assert metrics["reward_funcs/only_math/none_fraction"] == pytest.approx(1 / 3)
    assert metrics["reward_funcs/all_none_fraction"] == 0.0
    assert math.isnan(scores[1].fields["reward_funcs/only_math"]) and scores[0].fields["reward_funcs/exact"] == 1.0


def test_all_none_row_gets_zero_and_is_counted():
    scores, metrics = RewardFunctions([only_math]).score_texts(["2", "hi", "x"], RECORDS)
    assert [s.reward for s in scores] == [1.0, 0.0, 0.0]
    assert metrics["reward_funcs/all_none_fraction"] == pytest.approx(1 / 3)


def test_trl_calling_convention_columns_and_conversational_completions():
    seen = {}

    def spy(prompts, completions, completion_ids, **columns):
        seen.update(prompts=prompts, completions=completions, ids=completion_ids, columns=columns)
        return [0.0] * len(completions)

    messages = [{"role": "user", "content": "1+1"}]
    records = [{**RECORDS[0], "prompt_messages": messages}, RECORDS[1]]
    RewardFunctions([spy]).score_texts(["2", "hi"], records, [[5, 1], [7]])
    assert seen["prompts"] == [messages, "say hi"]
    assert seen["completions"] == [[{"role": "assistant", "content": "2"}], "hi"]
    assert seen["ids"] == [[5, 1], [7]]
    assert seen["columns"] == {"answer": ["2", "hi"], "kind": ["math", "word"]}  # no prompt/completion


@pytest.mark.parametrize("func, message", [
    (lambda completions, **kw: [1.0], "returned 1 values for 3 completions"),
    (lambda completions, **kw: [1.0, "x", 0.0], "value 1 is 'x'"),
    (lambda completions, **kw: [1.0, float("nan"), 0.0], "value 1 is nan"),
    (lambda completions, **kw: 1 / 0, "raised ZeroDivisionError"),
])
def test_bad_reward_function_output_names_the_function(func, message):
    with pytest.raises(RlobjInputError, match=message):
        RewardFunctions([func]).score_texts(["2", "hi", "x"], RECORDS)


@pytest.fixture
def rewards_module(tmp_path, monkeypatch):
    """A user's module of reward functions, importable by dotted path."""
    (tmp_path / "user_rewards.py").write_text(
        "def only_math(completions, kind, **kwargs):\n"
        "    return [float(c.isdigit()) if k == 'math' else None for c, k in zip(completions, kind)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_rewards"


def test_config_errors_of_reward_functions(rewards_module):
    with pytest.raises(RlobjInputError, match="weights: 1 weights for 2 reward functions"):
        RewardFunctions([exact, only_math], weights=[1.0])
    with pytest.raises(RlobjInputError, match=r"funcs\[0\]: cannot import 'tests_nowhere.f'"):
        RewardFunctions(["tests_nowhere.f"])
    assert RewardFunctions([f"{rewards_module}.only_math"]).names == ["only_math"]


def test_reward_functions_drive_an_rl_step(rewards_module):
    module = tiny_module(scorer=RewardFunctions([length_bonus, f"{rewards_module}.only_math"]),
                         rollout={"max_new_tokens": 3})
    records = [{"prompt": "1+1=", "answer": "2", "kind": "math"}, {"prompt": "2+2=", "answer": "4", "kind": "sum"}]
    metrics = module.rl_update(records, step=0)
    assert "reward_funcs/length_bonus/mean" in metrics and metrics["reward_funcs/only_math/none_fraction"] == 0.5
    assert math.isfinite(metrics["loss"])


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_dataset_task_reads_every_format(suffix, tmp_path):
    rows = [{"question": f"{i}+1", "answer": str(i + 1), "source": "mine"} for i in range(5)]
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    task = DatasetTask(str(path), shuffle=False, cache_dir=str(tmp_path / "c"))
    assert len(task) == 5 and task.record(2) == {**rows[2], "prompt": "2+1", "answer": "3", "completion": "3"}
    head = DatasetTask(str(path), split="train[:60%]", cache_dir=str(tmp_path / "c"))
    tail = DatasetTask(str(path), split="train[60%:]", shuffle=False, cache_dir=str(tmp_path / "c"))
    assert len(head) == 3 and [tail.record(i)["question"] for i in range(2)] == ["3+1", "4+1"]


def test_dataset_task_order_is_seeded_and_resumable(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "answer": str(i)}) + "\n" for i in range(4)))
    task = DatasetTask(str(path), seed=3, cache_dir=str(tmp_path / "c"))
    first = [task.record(i)["answer"] for i in range(8)]
    assert sorted(first[:4]) == sorted(first[4:]) == ["0", "1", "2", "3"]
    again = DatasetTask(str(path), seed=3, cache_dir=str(tmp_path / "c"))
    assert [again.record(i)["answer"] for i in range(7, -1, -1)] == first[::-1]


def test_conversation_without_tokenizer_or_template_is_an_error(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}], "answer": "x"}) + "\n")
    task = DatasetTask(str(path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(RlobjInputError, match="needs the policy's tokenizer"):
        task.record(0)
    task.bind_tokenizer(build_char_tokenizer("hi"))
    with pytest.raises(RlobjInputError, match="has no chat_template"):
        task.record(0)


def test_unknown_characters_are_an_error_naming_them(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "rev 38215=", "answer": "51283"}) + "\n")
    data = RLDataModule(train=DatasetTask(str(path), cache_dir=str(tmp_path / "c")), prompts_per_step=1, eval_size=2)
    stream = data.train_dataloader()
    assert stream.batch(0)["records"][0]["prompt"] == "rev 38215="  # no tokenizer bound: nothing to check
    data.bind_tokenizer(build_char_tokenizer())
    with pytest.raises(RlobjInputError, match=r"tokenizer_chars: 'rev' in the prompt 'rev 38215=' are not characters"):
        data.train_dataloader().batch(0)
    data.bind_tokenizer(build_char_tokenizer("0123456789= rev"))
    assert data.train_dataloader().batch(0)["records"][0]["answer"] == "51283"


def test_eval_size_larger_than_the_file_is_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "answer": str(i)}) + "\n" for i in range(3)))
    task = DatasetTask(str(path), cache_dir=str(tmp_path / "c"))
    assert len(RLDataModule(eval=task, eval_size=3).eval_records()) == 3
    with pytest.raises(RlobjInputError, match=r"eval_size: 4 is larger than the evaluation data \(3 rows"):
        RLDataModule(eval=task, eval_size=4)


def test_max_new_tokens_counts_the_eos_token():
    module = tiny_module(rollout={"max_new_tokens": 2})
    ctx = module.context(0)
    batch = ctx.sample([{"prompt": "1+1=", "answer": "2"}] * 8)
    lengths = batch.rollout.response_mask.sum(-1)
    assert int(lengths.max()) <= 2
    eos = module.tokenizer.eos_token_id
    for ids, n in zip(batch.rollout.response_ids.tolist(), lengths.tolist()):
        assert eos not in ids[:n - 1]  # EOS, if any, is the last of the <= 2 counted tokens
    assert torch.is_tensor(batch.rollout.truncated)


def test_gsm8k_and_math_answer_formats(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "3 + 4 = 7\n#### 1,007"}) + "\n"
                    + json.dumps({"question": "r", "answer": "no marker"}) + "\n")
    task = DatasetTask(str(path), answer_format="gsm8k", shuffle=False, cache_dir=str(tmp_path / "c"))
    assert task.record(0)["answer"] == "1007" and task.record(0)["completion"] == "3 + 4 = 7\n#### 1,007"
    with pytest.raises(RlobjInputError, match="row 1: the 'answer' value has no final answer for answer_format 'gsm8k'"):
        task.record(1)
    math_path = tmp_path / "m.jsonl"
    math_path.write_text(json.dumps({"problem": "p", "solution": "so $\\boxed{\\frac{1}{2}}$"}) + "\n")
    math = DatasetTask(str(math_path), answer_format="math", cache_dir=str(tmp_path / "c"))
    assert math.record(0)["answer"] == "\\frac{1}{2}"
    with pytest.raises(RlobjInputError, match="answer_format: expected one of"):
        DatasetTask(str(path), answer_format="boxed")
