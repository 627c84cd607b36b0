"""A tiny local causal LM, a character tokenizer and a prompt dataset for the peer trainers."""

import torch

from rlobj.data import build_char_tokenizer

PROMPTS = ["12+34=", "5+7=", "40+2=", "9+9=", "3+14=", "60+6=", "1+1=", "22+8="]


def tiny_model(tokenizer, dtype=torch.float32, seed: int = 0):
    """A 2-layer Qwen2-architecture model (hidden 32, untied embeddings) built from a config."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    return Qwen2ForCausalLM(config).to(dtype)


def tokenizer_and_dataset():
    """The character tokenizer and a ``datasets.Dataset`` of addition prompts."""
    from datasets import Dataset

    return build_char_tokenizer(padding_side="left"), Dataset.from_dict({"prompt": PROMPTS})


def digit_reward(completions, **kwargs):
    """A reward with spread inside each group: the number of digits '1' in the completion."""
    return [float(text.count("1")) + 0.5 * float(text.count("2")) for text in completions]
