"""Model-backed scorers (rlobj/train/model_scorers.py) on tiny models built here: the reward model, judge
configuration errors, CoT pass@k with a real judge, weighted composition. Judges, paper rewards and
reward-model tasks have their own test modules."""

import math

import pytest
import torch
from train._judge_helpers import RECORDS, load_judge

from rlobj.eval.cot import EngineCotJudge, cot_pass_at_k_mean
from rlobj.ops.errors import RlobjInputError
from rlobj.train import RewardFunctions
from rlobj.train.judges import PointwiseJudge, PrincipleJudge
from rlobj.train.model_scorers import SequenceClassifierRM, nanstd


# ------------------------------------------------------------------ reward model
def test_reward_model_is_the_first_logit_of_prompt_plus_response_batched(tiny_judges):
    model, tok = load_judge(tiny_judges["rm"], "classifier")
    completions = ["2", "55", "6 is it"]
    expected = []
    with torch.no_grad():
        for record, completion in zip(RECORDS, completions):
            ids = torch.tensor([tok.encode(record["prompt"] + completion, add_special_tokens=False)])
            expected.append(float(model(input_ids=ids).logits[0, 0]))
    for batch_size in (1, 16):  # padding in a batch changes nothing
        scores, metrics = SequenceClassifierRM(tiny_judges["rm"], dtype="float32", batch_size=batch_size).score_texts(
            completions, RECORDS)
        assert [s.reward for s in scores] == pytest.approx(expected, abs=1e-5)
    assert metrics["reward_model/failed_fraction"] == 0.0
    assert metrics["reward_model/std"] == pytest.approx(nanstd(expected))
    bf16 = SequenceClassifierRM(tiny_judges["rm"], dtype="bfloat16").score_texts(completions, RECORDS)[0]
    assert [s.reward for s in bf16] == pytest.approx(expected, abs=0.05)


def test_reward_model_uses_its_chat_template_for_conversations(tiny_judges, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    path = tmp_path / "rm_chat"
    shutil.copytree(tiny_judges["rm"], path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = "{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(path)
    rm = SequenceClassifierRM(str(path), dtype="float32")
    rm.load()
    messages = [{"role": "user", "content": "hi"}]
    assert rm.text(messages, "yo") == "<u>hi<a>yo"
    assert rm.text("plain", "x") == "<u>plain<a>x"  # the template applies to text prompts too
    scores, _ = rm.score_texts(["yo"], [{"prompt": "hi", "prompt_messages": messages}])
    assert math.isfinite(scores[0].reward) and scores[0].fields["scored"] == 1.0


def test_cot_pass_at_k_with_a_real_tiny_judge(tiny_judges):
    from rlobj.rollout import HFEngine, SamplingConfig

    model, tok = load_judge(tiny_judges["cot"])
    judge = EngineCotJudge(HFEngine(model, eos_token_id=tok.eos_token_id), encode=lambda t: tok.encode(t),
                           decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
                           sampling=SamplingConfig(max_new_tokens=24, greedy=True))
    problems = [{"prompt": "1+1", "responses": ["2", "3"], "answer_correct": [True, False]}]
    metrics = cot_pass_at_k_mean(problems, judge, ks=[1])
    assert judge.last_outputs == ["VERDICT: CORRECT"]  # the real tiny judge's text, parsed
    assert metrics["cot_pass@1"] == metrics["pass@1"] == 0.5
    raw_model, raw_tok = load_judge(tiny_judges["raw"])
    garbage = EngineCotJudge(HFEngine(raw_model, eos_token_id=raw_tok.eos_token_id),
                             encode=lambda t: raw_tok.encode(t), decode=lambda ids: raw_tok.decode(ids),
                             sampling=SamplingConfig(max_new_tokens=8, greedy=True))
    assert cot_pass_at_k_mean(problems, garbage, ks=[1])["cot_pass@1"] == 0.0  # no verdict: incorrect


def test_weighted_composition_skips_unscored_rows_and_logs_each(tiny_judges):
    from tests.train._helpers import tiny_module

    def length(completions, **kwargs):
        return [float(len(c)) for c in completions]

    judge = PointwiseJudge(tiny_judges["raw"], name="garbage_judge")  # never readable: always None
    module = tiny_module(scorer=RewardFunctions([length, judge], weights=[1.0, 5.0]), rollout={"max_new_tokens": 3})
    metrics = module.rl_update([{"prompt": "1+1=", "answer": "2"}], step=0)
    assert metrics["garbage_judge/invalid"] == 4.0 and metrics["reward_funcs/garbage_judge/none_fraction"] == 1.0
    assert metrics["reward/mean"] == pytest.approx(metrics["reward_funcs/length/mean"])  # judge left out
    assert "reward_funcs/length/std" in metrics and math.isfinite(metrics["loss"])
    with pytest.raises(RlobjInputError, match="is a scorer: it needs the rollout batch"):
        RewardFunctions([judge]).score_texts(["2"], RECORDS[:1])


def test_bad_judge_configuration_is_an_error_naming_it(tiny_judges):
    with pytest.raises(RlobjInputError, match="exactly one capture group"):
        PointwiseJudge(tiny_judges["raw"], pattern=r"\d+")
    with pytest.raises(RlobjInputError, match="must contain {response}"):
        PointwiseJudge(tiny_judges["raw"], template="no field")
    with pytest.raises(RlobjInputError, match="give exactly one of principles"):
        PrincipleJudge(tiny_judges["raw"])
    with pytest.raises(RlobjInputError, match="dtype: expected one of"):
        SequenceClassifierRM(tiny_judges["rm"], dtype="int8")
    with pytest.raises(RlobjInputError, match="engine: expected 'hf' or 'vllm'"):
        PointwiseJudge(tiny_judges["raw"], engine="tgi")
    with pytest.raises(RlobjInputError, match="field 'missing' is neither"):
        PointwiseJudge(tiny_judges["raw"], template="{response} {missing}").prompts(["p"], ["y"], [{"prompt": "p"}])


