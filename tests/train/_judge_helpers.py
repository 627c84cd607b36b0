"""Shared by the model-backed scorers' tests (test_model_scorers.py, test_judges.py, test_paper_rewards.py,
test_reward_model_tasks.py): three addition records and a loader of the tiny judge models."""

RECORDS = [{"prompt": "1+1=", "answer": "2", "completion": "2"}, {"prompt": "2+2=", "answer": "4", "completion": "4"},
           {"prompt": "3+3=", "answer": "6", "completion": "6"}]


def load_judge(path, kind="causal"):
    """The tiny judge model at ``path`` (causal LM, or ``kind="classifier"``) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    cls = AutoModelForSequenceClassification if kind == "classifier" else AutoModelForCausalLM
    return cls.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
