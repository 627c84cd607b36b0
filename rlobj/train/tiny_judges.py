r"""Tiny judges and reward models built here (nothing downloaded): for tests, examples, benchmarks.

:func:`save_tiny_judge` writes a randomly initialised Qwen2-architecture model and a character
tokenizer to a directory that the model-backed scorers load like any Hugging Face model:
a causal LM (a judge) or a sequence-classification head with one label (a reward model). With
``reply`` the causal judge is first fitted for a few steps to answer every prompt with that text,
so its real, generated verdicts are readable (an untrained one writes garbage).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

__all__ = ["JUDGE_CHARS", "save_tiny_judge"]

#: Characters of the tiny judges' tokenizer: printable ASCII (letters, digits, punctuation, space, newline).
JUDGE_CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


def save_tiny_judge(directory: str | Path, kind: str = "causal", hidden_size: int = 64, layers: int = 1,
                    heads: int = 1, seed: int = 0, reply: str | None = None, fit_steps: int = 60,
                    chars: str = JUDGE_CHARS) -> Path:
    """Write a tiny judge (``kind="causal"``) or reward model (``kind="classifier"``) to ``directory``.

    Args:
        directory: target folder (created).
        kind: ``"causal"`` (``Qwen2ForCausalLM``) or ``"classifier"`` (``Qwen2ForSequenceClassification``,
            one label).
        hidden_size, layers, heads, seed: the architecture and its initialisation.
        reply: fit the causal judge (Adam, ``fit_steps`` steps) to answer any prompt with ``reply``
            followed by the end-of-sequence token.
        fit_steps: fitting steps for ``reply``.
        chars: the tokenizer's characters.

    Returns:
        The directory.
    """
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from rlobj.ops.tokenizer import build_char_tokenizer
    from rlobj.rollout import build_tiny_qwen2, save_model_directory

    if kind not in ("causal", "classifier"):
        raise ValueError(f"save_tiny_judge: kind must be 'causal' or 'classifier', got {kind!r}")
    tokenizer = build_char_tokenizer(chars)
    vocab = len(tokenizer)
    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if kind == "classifier":
        config = Qwen2Config(vocab_size=vocab, hidden_size=hidden_size, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=heads,
                             intermediate_size=4 * hidden_size, max_position_embeddings=1024, num_labels=1, **ids)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = Qwen2ForSequenceClassification(config).eval()
    else:
        model = build_tiny_qwen2(vocab, hidden_size=hidden_size, layers=layers, heads=heads, seed=seed,
                                 max_position_embeddings=1024, **ids)
        if reply is not None:
            _fit_reply(model, tokenizer, reply, fit_steps, seed)
    return save_model_directory(model, tokenizer, directory)


def _fit_reply(model, tokenizer, reply: str, steps: int, seed: int) -> None:
    """A few Adam steps on random prompts so the model answers each with ``reply`` + EOS."""
    generator = torch.Generator().manual_seed(seed)
    target = tokenizer.encode(reply, add_special_tokens=False) + [tokenizer.eos_token_id]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = []
        for _ in range(8):
            length = int(torch.randint(4, 40, (1,), generator=generator))
            rows.append(torch.randint(3, len(tokenizer), (length,), generator=generator).tolist())
        width = max(len(r) for r in rows) + len(target)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for b, prompt in enumerate(rows):  # left padded, as the engines feed prompts
            seq = prompt + target
            input_ids[b, width - len(seq):] = torch.tensor(seq)
            mask[b, width - len(seq):] = 1
            labels[b, width - len(target):] = torch.tensor(target)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        loss = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
