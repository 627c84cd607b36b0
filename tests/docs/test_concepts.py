"""The error messages and numbers quoted on docs/concepts.md are what the code produces now."""

from pathlib import Path

import pytest
import torch

from rlobj import (
    Normalizer,
    Objective,
    clip_ratio,
    group_zscore,
    grpo,
    k3_kl,
    kl_penalty,
    reinforce,
    token_mean,
    top_entropy_mask,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"


def _batch(**overrides):
    batch = dict(logp=torch.zeros(4, 3), logp_old=torch.zeros(4, 3), mask=torch.ones(4, 3, dtype=torch.bool),
                 rewards=torch.tensor([1.0, 0.0, 0.0, 1.0]), group_ids=torch.tensor([0, 0, 1, 1]))
    return {**batch, **overrides}


CASES = {
    "advantages after surrogate": lambda: clip_ratio() >> group_zscore(),
    "two aggregations": lambda: grpo >> token_mean(),
    "two surrogates": lambda: grpo >> reinforce(),
    "mask before surrogate": lambda: top_entropy_mask() >> grpo,
    "kl in reward and loss": lambda: kl_penalty(beta=0.01, estimator="k1", placement="reward") >> grpo >> k3_kl(0.04),
    "missing logp_ref": lambda: Objective(grpo >> k3_kl(0.04))(**_batch()),
    "singleton group": lambda: Objective(grpo)(**_batch(group_ids=torch.tensor([0, 0, 1, 2]))),
    "nan reward": lambda: Objective(grpo)(**_batch(rewards=torch.tensor([1.0, float("nan"), 0.0, 1.0]))),
    "bad eps": lambda: group_zscore(eps=-1.0),
    "bad type": lambda: clip_ratio(eps_low="0.2"),
}


def _page_term():
    """The term the section "Writing a term" declares, built from the page's code block."""
    block = PAGE.read_text(encoding="utf-8").split("## Writing a term", 1)[1].split("```python\n", 1)[1]
    namespace: dict = {}
    exec(block.split("```", 1)[0], namespace)
    return namespace["clip_advantages"]


WRITING_CASES = {
    "range": lambda term: term(limit=0.0),
    "type": lambda term: term(limit="2"),
    "missing slot": lambda term: Objective(term() >> clip_ratio() >> token_mean())(
        **{k: v for k, v in _batch().items() if k != "group_ids"}),
}


@pytest.mark.parametrize("case", WRITING_CASES)
def test_the_declared_term_on_the_page_runs_and_its_errors_are_current(case):
    term = _page_term()
    assert term(1.5).limit == 1.5 and term.stage == "batch" and term().slots_written() == {"advantages"}
    with pytest.raises(Exception) as raised:
        WRITING_CASES[case](term)
    quoted = f"{type(raised.value).__name__}: {raised.value}"
    assert quoted in PAGE.read_text(encoding="utf-8"), f"docs/concepts.md: the {case!r} message is now:\n{quoted}"


@pytest.mark.parametrize("case", CASES)
def test_quoted_error_message_is_current(case):
    with pytest.raises(Exception) as raised:
        CASES[case]()
    quoted = f"{type(raised.value).__name__}: {raised.value}"
    assert quoted in PAGE.read_text(encoding="utf-8"), (
        f"docs/concepts.md no longer quotes the current message for {case!r}; it is now:\n{quoted}")


def test_micro_batch_example_matches_the_page():
    torch.manual_seed(0)
    B, T = 8, 6
    mask = torch.arange(T)[None, :] < torch.randint(2, T + 1, (B,))[:, None]
    batch = dict(logp=torch.randn(B, T).clamp(max=0), logp_old=torch.randn(B, T).clamp(max=0), mask=mask,
                 rewards=torch.tensor([1.0, 0, 1, 1, 0, 0, 1, 0]), group_ids=torch.arange(4).repeat_interleave(2))
    objective = Objective(grpo)
    whole = objective(**batch).loss
    micro = objective.split(objective.prepare(**batch), [3, 5])
    normalizer = Normalizer.from_masks([m.mask for m in micro])
    total = sum(objective.loss(m, normalizer=normalizer).loss for m in micro)
    torch.testing.assert_close(total, whole)
    assert f"{float(whole):.6f}" in PAGE.read_text(encoding="utf-8")
