"""Tiny judges built here (rlobj/train/tiny_judges.py): a causal judge and a one-label reward model
saved as Hugging Face directories, reproducible from the seed, a fitted judge that replies with its
text, and a bad kind named."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rlobj.train.tiny_judges import JUDGE_CHARS, save_tiny_judge


def test_causal_and_classifier_directories_load_and_are_seeded(tmp_path):
    causal = AutoModelForCausalLM.from_pretrained(save_tiny_judge(tmp_path / "a", seed=3))
    again = AutoModelForCausalLM.from_pretrained(save_tiny_judge(tmp_path / "b", seed=3))
    assert all(torch.equal(p, q) for p, q in zip(causal.parameters(), again.parameters(), strict=True))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    ids = tokenizer("Yes,7.", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == list("Yes,7.")  # one id per character
    assert len(tokenizer) >= len(JUDGE_CHARS)
    rm = AutoModelForSequenceClassification.from_pretrained(save_tiny_judge(tmp_path / "rm", kind="classifier"))
    assert rm.config.num_labels == 1
    ids = torch.tensor([tokenizer("1+1=2", add_special_tokens=False)["input_ids"]])
    assert rm(input_ids=ids).logits.shape == (1, 1)


def test_a_fitted_judge_replies_with_its_text(tmp_path):
    path = save_tiny_judge(tmp_path / "seven", reply="7", fit_steps=60)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    prompt = torch.tensor([tokenizer("Rate: 2+2=4", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        first = int(model(input_ids=prompt).logits[0, -1].argmax())
    assert tokenizer.decode([first]) == "7"


def test_bad_kind_is_named(tmp_path):
    with pytest.raises(ValueError, match="save_tiny_judge: kind must be 'causal' or 'classifier', got 'rm'"):
        save_tiny_judge(tmp_path, kind="rm")


@pytest.mark.xfail(strict=True, reason="bug found here, not fixed: with the model's config.json beside it, "
                   "AutoTokenizer loads the saved character tokenizer as Qwen2Tokenizer (model_type qwen2), "
                   "which drops spaces and newlines; rlobj.rollout.save_model_directory writes every such "
                   "directory (tiny judges, the vLLM engine's model)")
def test_the_saved_tokenizer_keeps_spaces_and_newlines(tmp_path):
    from rlobj.ops.tokenizer import build_char_tokenizer

    built = build_char_tokenizer(JUDGE_CHARS)
    loaded = AutoTokenizer.from_pretrained(save_tiny_judge(tmp_path / "j"))
    text = "Is 2+2=4? Yes\n"
    assert built.convert_ids_to_tokens(built(text, add_special_tokens=False)["input_ids"]) == list(text)
    assert loaded(text, add_special_tokens=False)["input_ids"] == built(text, add_special_tokens=False)["input_ids"]
