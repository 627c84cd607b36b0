"""Verifiable task generators, local dataset loaders and the character tokenizer.

``datasets`` and ``transformers`` are imported only when a loader or the tokenizer is used.
"""

from rlobj.data.arithmetic import ArithmeticTask
from rlobj.data.countdown import CountdownTask
from rlobj.data.loaders import (
    ChatTemplate,
    PromptTemplate,
    gsm8k_final_answer,
    load_qa_dataset,
    math_final_answer,
)
from rlobj.data.logic import KnightsKnavesTask
from rlobj.data.tasks import TaskGenerator, generate, in_split, stream
from rlobj.data.tokenizer import ADDITION_ALPHABET, build_char_tokenizer

__all__ = [
    "ADDITION_ALPHABET",
    "ArithmeticTask",
    "ChatTemplate",
    "CountdownTask",
    "KnightsKnavesTask",
    "PromptTemplate",
    "TaskGenerator",
    "build_char_tokenizer",
    "generate",
    "gsm8k_final_answer",
    "in_split",
    "load_qa_dataset",
    "math_final_answer",
    "stream",
]
