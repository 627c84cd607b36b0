
import pytest

VOCAB = 16
EOS = 1
PAD = 0


@pytest.fixture(scope="session")
def tiny_model():
    """A 2-layer, hidden-128 Qwen2 over a 16-token vocabulary (EOS=1, PAD=0), float32, eval."""
    from rlobj.rollout import build_tiny_qwen2

    return build_tiny_qwen2(vocab_size=VOCAB, seed=0, eos_token_id=EOS, pad_token_id=PAD)


@pytest.fixture(scope="session")
def prompts():
    """Prompts of different lengths (so left padding happens), ids avoiding EOS/PAD."""
    return [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [2]]
