"""Shared test data: random rollout batches (Hypothesis strategies and plain builders)."""

import torch
from hypothesis import strategies as st


def make_batch(group_sizes, lengths, width=None, seed=0, dtype=torch.float32, binary=True, vocab=False):
    """A complete rollout batch (every field any term reads) with right padding.

    Padding positions hold garbage (large values) so tests notice if they leak. ``vocab=True``
    also attaches ``VocabView.from_logits`` views over a 5-token vocabulary (sampled token 0)
    whose sampled-token log-probs equal ``logp`` / ``logp_old`` / ``logp_ref`` / ``logp_init``:
    ``vocab`` (current), ``extras["vocab_old"]``, ``["vocab_ref"]``, ``["vocab_init"]``, and
    ``extras["tokens"]``.
    """
    generator = torch.Generator().manual_seed(seed)
    batch = sum(group_sizes)
    width = width or max(max(lengths), 1)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    vocab_logits = torch.randn(batch, width, 5, generator=generator)
    logp_old = torch.log_softmax(vocab_logits, -1)[..., 0]
    logp = (logp_old + 0.3 * torch.randn(batch, width, generator=generator)).clamp(max=-1e-3)
    logp_ref = (logp_old + 0.2 * torch.randn(batch, width, generator=generator)).clamp(max=-1e-3)
    logp_rollout = (logp_old + 0.05 * torch.randn(batch, width, generator=generator)).clamp(max=-1e-3)
    entropy = torch.rand(batch, width, generator=generator) * 2
    group_ids = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    if binary:
        rewards = torch.randint(0, 2, (batch,), generator=generator).float()
    else:
        rewards = torch.randn(batch, generator=generator)
    garbage = torch.full((batch, width), 1e4)
    fields = dict(
        logp=torch.where(mask, logp, garbage).to(dtype),
        logp_old=torch.where(mask, logp_old, garbage).to(dtype),
        logp_ref=torch.where(mask, logp_ref, garbage).to(dtype),
        entropy=torch.where(mask, entropy, garbage).to(dtype),
        mask=mask,
        rewards=rewards,
        group_ids=group_ids,
        extras={
            "logp_rollout": torch.where(mask, logp_rollout, garbage).to(dtype),
            "logp_init": torch.where(mask, logp_ref, garbage).to(dtype),
            "truncated": torch.rand(batch, generator=generator) < 0.2,
            "accuracy": (rewards > 0.5).to(dtype),
            "reward_components": torch.stack([rewards, torch.rand(batch, generator=generator)], -1),
            "appeal_flipped": (rewards == 0) & (torch.rand(batch, generator=generator) < 0.5),
            "self_reward_logp": torch.log_softmax(torch.randn(batch, 5, generator=generator), -1)[:, 0].to(dtype),
            # seed methods I (continued): advantage estimators and reward models
            "pairwise_reference": torch.cat([torch.arange(n) == seed % n for n in group_sizes]),
            "pairwise_wins": torch.rand(batch, 2, generator=generator) < 0.5,
            "step_ends": ((torch.rand(batch, width, generator=generator) < 0.3) | (
                torch.arange(width)[None, :] == torch.tensor(lengths)[:, None] - 1)) & mask,
            "process_rewards": torch.rand(batch, width, generator=generator).to(dtype),
            "step_accuracy": torch.randint(0, 5, (batch, width), generator=generator).to(dtype) / 4,
            "start_accuracy": torch.randint(0, 5, (batch,), generator=generator).to(dtype) / 4,
            "logp_unconditioned": torch.where(mask, logp_ref - 0.3, garbage).to(dtype),
            "answer_logp": torch.log_softmax(torch.randn(batch, 3, 5, generator=generator), -1)[..., 0].to(dtype),
            "answer_mask": torch.arange(3)[None, :] < torch.randint(1, 4, (batch, 1), generator=generator),
            "answer_prior": (0.2 * torch.rand(batch, generator=generator)).to(dtype),
            "answer_ids": torch.randint(-1, 3, (batch,), generator=generator),
            "partner_group": torch.where((group_ids ^ 1) < len(group_sizes), group_ids ^ 1, group_ids),
            "conciseness": (0.1 + 0.9 * torch.rand(batch, generator=generator)).to(dtype),
            "candidate_count": torch.randint(1, 5, (batch,), generator=generator),
            "first_hit_rank": torch.randint(0, 2, (batch,), generator=generator),
            "format_valid": torch.rand(batch, generator=generator) < 0.9,
            "uses_aux": torch.rand(batch, generator=generator) < 0.5,
            # perception terms (PAPO, VPPO, VOGUE): the perturbed pass, drawn from its own generator
            "logp_perturbed": torch.where(mask, (logp_old - 0.5 * torch.rand(
                batch, width, generator=torch.Generator().manual_seed(seed + 7919))).clamp(max=-1e-3),
                garbage).to(dtype),
            "noisy_branch": torch.arange(batch) % 2 == 0,
            # seed methods I (remaining): Guide, RL-PLUS, CAPO, THR, VPPO (own generator: earlier draws unchanged)
            **_remaining_extras(batch, width, mask, logp_old, garbage, dtype, seed),
            **_turn_extras(batch, width, mask, dtype, seed),
        },
    )
    # Lp-Reg proxy log-prob (the old log-prob renormalised by a kept mass Z in (0.5, 1]) and
    # DPH-RL's "perfect" rows
    kept_mass = 0.5 + 0.5 * torch.rand(batch, width, generator=generator)
    fields["extras"].update(
        logp_proxy=torch.where(mask, (logp_old - kept_mass.log()).clamp(max=0.0), garbage).to(dtype),
        dph_rows=torch.rand(batch, generator=generator) < 0.5,
    )
    if vocab:
        from rlobj.ops.vocab import VocabView

        others = torch.randn(batch, width, 4, generator=generator)

        def view(token_logp):
            # logits whose token-0 log-prob is token_logp: z0 = l + logsumexp(others) - log(1 - e^l)
            target = torch.where(mask, token_logp.float(), torch.full_like(token_logp.float(), -1.0))
            first = target + torch.logsumexp(others, -1) - torch.log(-torch.expm1(target))
            return VocabView.from_logits(torch.cat([first[..., None], others], -1).to(dtype))

        fields["vocab"] = view(logp)
        fields["extras"].update(vocab_old=view(logp_old), vocab_ref=view(logp_ref),
                                vocab_init=view(logp_ref), tokens=torch.zeros(batch, width, dtype=torch.long),
                                vocab_perturbed=view(fields["extras"]["logp_perturbed"].float()))
    return fields


def _remaining_extras(batch, width, mask, logp_old, garbage, dtype, seed):
    """Extras of the seed-method terms added last (hint log-probs, external tokens, step votes, scores)."""
    generator = torch.Generator().manual_seed(seed + 104729)
    return dict(
        guided=torch.rand(batch, generator=generator) < 0.5,
        logp_old_hint=torch.where(mask, (logp_old + 0.3 * torch.randn(batch, width, generator=generator)).clamp(max=-1e-3),
                                  garbage).to(dtype),
        off_policy=(torch.rand(batch, 1, generator=generator) < 0.3).expand(batch, width) & mask,
        step_wrong_votes=(torch.randint(0, 5, (batch, width), generator=generator) / 4).to(dtype),
        token_influence=torch.where(mask, torch.randn(batch, width, generator=generator), garbage).to(dtype),
        visual_dependency=torch.where(mask, torch.rand(batch, width, generator=generator) * 2, garbage).to(dtype),
        node_values=torch.where(mask, 2 * torch.rand(batch, width, generator=generator) - 1, garbage).to(dtype),
    )


@st.composite
def batches(draw, min_groups=1, max_groups=4, min_group=2, max_group=5, max_len=7, min_len=1):
    groups = draw(st.lists(st.integers(min_group, max_group), min_size=min_groups, max_size=max_groups))
    lengths = draw(st.lists(st.integers(min_len, max_len), min_size=sum(groups), max_size=sum(groups)))
    seed = draw(st.integers(0, 10_000))
    return make_batch(groups, lengths, seed=seed)


def leaf(fields):
    """Copy of a batch whose logp is a fresh leaf requiring grad."""
    out = dict(fields)
    out["logp"] = fields["logp"].detach().clone().requires_grad_(True)
    return out


def _turn_extras(batch, width, mask, dtype, seed):
    """Multi-turn extras (own generator): up to 3 turns per row, rewards on each turn's last token."""
    generator = torch.Generator().manual_seed(seed + 130363)
    lengths = mask.sum(-1, keepdim=True).clamp(min=1)
    turns = torch.randint(1, 4, (batch, 1), generator=generator)
    turn_ids = torch.where(mask, torch.arange(width)[None, :] * turns // lengths, torch.full((), -1))
    last = mask & (torch.cat([turn_ids[:, 1:], torch.full((batch, 1), -1)], 1) != turn_ids)
    rewards = torch.where(last, torch.randint(0, 3, (batch, width), generator=generator).float(), torch.zeros(()))
    return {"turn_ids": turn_ids, "turn_rewards": rewards.to(dtype)}


# --------------------------------------------------------------------------- shared small helpers
F64 = torch.float64
PRESET_IDS = ["grpo", "dr_grpo", "dapo"]


def t(rows, dtype=F64):
    """A float64 (by default) tensor from nested lists: hand-written cases."""
    return torch.tensor(rows, dtype=dtype)


def presets():
    """``pytest.mark.parametrize`` over the three base recipes (``grpo``, ``dr_grpo``, ``dapo``)."""
    import pytest

    from rlobj import dapo, dr_grpo, grpo

    return pytest.mark.parametrize("preset", [grpo, dr_grpo, dapo], ids=PRESET_IDS)


def assert_trains(recipe, seed=3):
    """Run ``recipe`` on a two-group batch with ragged lengths: a finite loss whose gradient
    reaches ``logp`` finite. Returns the objective's output."""
    from rlobj import Objective

    batch = leaf(make_batch([4, 4], [4, 2, 5, 3, 1, 4, 6, 2], seed=seed))
    out = Objective(recipe)(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(batch["logp"].grad).all()
    return out


def right_pad(responses, pad):
    """Right-padded ``[rows, width]`` ids and their bool mask: :func:`rlobj.rollout.right_pad_responses`."""
    from rlobj.rollout import right_pad_responses

    return right_pad_responses(responses, pad)


def padded_start(draw, max_rows, max_len, keep=0.75, min_rows=1):
    """The start every padded random-batch strategy shares: a seeded generator and a
    ``[rows, length]`` mask with about ``keep`` real tokens (row 0 always has its first token)."""
    b = draw(st.integers(min_rows, max_rows))
    n = draw(st.integers(1, max_len))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    mask = torch.rand(b, n, generator=g) < keep
    mask[0, 0] = True
    return g, mask


@st.composite
def shuffled_group_ids(draw, min_size=1, max_size=4, max_groups=5):
    """Group ids of 1 to ``max_groups`` groups of ``min_size``..``max_size`` rows, shuffled (groups interleave)."""
    sizes = draw(st.lists(st.integers(min_size, max_size), min_size=1, max_size=max_groups))
    return list(draw(st.permutations([g for g, n in enumerate(sizes) for _ in range(n)])))


def replace_advantage(preset, term):
    """``preset`` with its advantage term (``group_zscore``, else its first term) replaced by ``term``."""
    from rlobj import group_zscore

    base = group_zscore if any(isinstance(t, group_zscore) for t in preset.terms) else type(preset.terms[0])
    return preset.replace(base, term)


def assert_response_row(batch, row, eos, max_new_tokens):
    """Row ``row`` of a generated batch: its response mask is a non-empty prefix, EOS appears only as
    its last real token, and it is truncated ('length', exactly ``max_new_tokens`` tokens) iff it has
    no EOS, else finished ('stop'). Returns the row's length."""
    length = int(batch.response_mask[row].sum())
    assert length >= 1 and batch.response_mask[row, :length].all()
    assert not batch.response_mask[row, length:].any()
    real = batch.response_ids[row, :length].tolist()
    assert eos not in real[:-1]
    assert bool(batch.truncated[row]) == (real[-1] != eos)
    assert batch.finish_reasons[row] == ("length" if batch.truncated[row] else "stop")
    assert not batch.truncated[row] or length == max_new_tokens
    return length


def assert_refused_without(term, message, width=1, **fields):
    """``term`` called on a two-row state of ``fields`` (one field it reads left out) raises an
    ``RlobjInputError`` matching ``message``."""
    import pytest

    from rlobj.algebra.state import State
    from rlobj.ops.errors import RlobjInputError

    state = State.from_batch(logp=torch.zeros(2, width), mask=torch.ones(2, width, dtype=torch.bool), **fields)
    with pytest.raises(RlobjInputError, match=message):
        term(state)
