"""The tiny vision-language model builder (rlobj/rollout/tiny_vlm.py): its arguments checked."""

import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout.tiny_vlm import build_tiny_vlm


def test_tiny_vlm_arguments_are_checked():
    with pytest.raises(RlobjInputError, match="tiny_vlm.kind"):
        build_tiny_vlm("qwen2_vl")
    with pytest.raises(RlobjInputError, match="multiples of heads"):
        build_tiny_vlm(hidden_size=33)
