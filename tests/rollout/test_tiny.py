"""build_tiny_qwen2 and save_model_directory."""

import pytest
import torch

from rlobj.rollout import build_tiny_qwen2, save_model_directory


def test_config_and_head_dim():
    model = build_tiny_qwen2(vocab_size=20, eos_token_id=1, pad_token_id=0)
    config = model.config
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (128, 2, 2)
    assert config.hidden_size // config.num_attention_heads == 64
    assert config.num_key_value_heads == 2 and config.intermediate_size == 512
    assert config.tie_word_embeddings is False
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert model.lm_head.weight.shape == (20, 128)
    assert config.eos_token_id == 1 and config.pad_token_id == 0
    assert not model.training
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())


def test_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(99)
    expected_draw = torch.rand(3)
    torch.manual_seed(99)
    first = build_tiny_qwen2(vocab_size=12, seed=4)
    draw_after_build = torch.rand(3)
    second = build_tiny_qwen2(vocab_size=12, seed=4)
    third = build_tiny_qwen2(vocab_size=12, seed=5)
    assert torch.equal(expected_draw, draw_after_build)
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(first.lm_head.weight, third.lm_head.weight)


def test_grouped_query_and_tied_variants():
    model = build_tiny_qwen2(vocab_size=10, hidden_size=256, heads=4, kv_heads=2,
                             tie_word_embeddings=True)
    assert model.config.num_key_value_heads == 2
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vocab_size=0), "vocab_size"),
        (dict(vocab_size=10, hidden_size=130, heads=4), "divisible"),
        (dict(vocab_size=10, hidden_size=6, heads=2), "even"),
        (dict(vocab_size=10, heads=2, kv_heads=3), "kv_heads"),
        (dict(vocab_size=10, eos_token_id=10), "eos_token_id"),
        (dict(vocab_size=10, layers=0), "layers"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_tiny_qwen2(**kwargs)


def test_save_model_directory_round_trip(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    alphabet = list("0123456789+=")
    vocab = {"<pad>": 0, "<eos>": 1, **{char: index + 2 for index, char in enumerate(alphabet)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        eos_token="<eos>")
    model = build_tiny_qwen2(vocab_size=len(vocab), eos_token_id=1, pad_token_id=0)
    path = save_model_directory(model, tokenizer, tmp_path / "tiny")
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(path)
    ids = torch.tensor([tokenizer("12+3=")["input_ids"]])
    assert ids.tolist() == [[3, 4, 12, 5, 13]]
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
