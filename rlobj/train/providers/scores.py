r"""Providers of per-response facts that reward-model terms read: extracted answers, appeals,
candidate lists, conciseness, auxiliary constructions, reward components and pairwise verdicts.

Each provider computes its slots from the batch itself: the decoded responses (``ctx.decode``),
the dataset records (``batch.records``), the rewards and the group ids. Where the paper's input
comes from a model rlobj does not have (a conciseness reward model, a pairwise LLM judge, a
second LLM verifier), the provider uses a small **scripted rule** stated in its docstring. To plug
in the real one, let the scorer report a :attr:`Score.fields <rlobj.train.stages.Score>` entry of
the slot's name (the scorer's value wins over the rule), or attach the tensor to
``batch.extras`` in a sampler / transform (it then wins over any provider), or pass your own
provider in the config's ``providers:`` list.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlobj.ops.errors import RlobjInputError
from rlobj.train.providers.base import Provider, register_provider
from rlobj.train.transforms._common import group_rows
from rlobj.verifiers.extract import EXTRACT_MODES, extract_answer
from rlobj.verifiers.match import normalize_answer, parse_number

__all__ = ["AnswerIds", "AppealCheck", "AepoCandidates", "ConcisenessScore", "AuxConstruction",
           "RewardComponents", "PairwiseJudge", "answer_key", "row_generator", "row_keys", "scorer_field"]


# --------------------------------------------------------------------------- helpers
def scorer_field(batch, name: str) -> Tensor | None:
    """``batch.score_field(name)`` when every row's score has the field, else None."""
    if batch.scores is None or not batch.scores or any(name not in s.fields for s in batch.scores):
        return None
    return batch.score_field(name)


def row_generator(*keys: Any) -> torch.Generator:
    """A CPU generator seeded from ``keys`` (e.g. (seed, run seed, step, row key)) via BLAKE2b."""
    digest = hashlib.blake2b(repr(tuple(keys)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "big") % (2**63))


def row_keys(rollout) -> list[str]:
    """A key per row from its content: the prompt and response tokens, and the count of identical
    rows before it. Draws seeded by it do not depend on micro-batching, on the row's position in
    the batch or on which data-parallel rank holds it."""
    prompts, prompt_mask = rollout.prompt_ids.cpu(), rollout.prompt_mask.cpu().bool()
    responses, response_mask = rollout.response_ids.cpu(), rollout.response_mask.cpu().bool()
    keys, seen = [], {}
    for row in range(prompts.shape[0]):
        content = (tuple(prompts[row][prompt_mask[row]].tolist()), tuple(responses[row][response_mask[row]].tolist()))
        digest = hashlib.blake2b(repr(content).encode(), digest_size=12).hexdigest()
        seen[digest] = seen.get(digest, -1) + 1
        keys.append(f"{digest}:{seen[digest]}")
    return keys


def _canonical(span: str | None) -> str | None:
    """A canonical answer string: numbers by value (``46`` = ``46.0``), other text normalised."""
    if span is None or not span.strip():
        return None
    value = parse_number(span)
    if value is not None:
        return "num:" + format(value, ".12g")
    return "text:" + normalize_answer(span)


def answer_key(span: str | None) -> int:
    """A stable non-negative id of a canonical answer (BLAKE2b, 56 bits), -1 for none.

    Hash ids are the same on every rank and in every batch, so answers of partner groups
    compare equal wherever the rows were sampled.
    """
    canonical = _canonical(span)
    if canonical is None:
        return -1
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=7).digest(), "big")


def _same_answer(span: str | None, gold: str, rel_tol: float, abs_tol: float) -> bool:
    """Numeric equivalence when both parse as numbers, else normalised string equality."""
    if span is None:
        return False
    predicted, target = parse_number(span), parse_number(gold)
    if predicted is not None and target is not None:
        return math.isclose(predicted, target, rel_tol=rel_tol, abs_tol=abs_tol)
    return normalize_answer(span) == normalize_answer(gold)


def _check_extract(owner: str, mode: str) -> None:
    if mode not in EXTRACT_MODES:
        raise RlobjInputError(f"{owner}.extract: expected one of {EXTRACT_MODES}, got {mode!r}")


def _gold(owner: str, record: dict, key: str, row: int) -> str:
    if key not in record:
        raise RlobjInputError(f"{owner}: records[{row}] has no field {key!r} (fields: {sorted(record)})")
    return str(record[key])


def _lengths(batch) -> Tensor:
    return batch.rollout.response_mask.sum(-1)


# --------------------------------------------------------------------------- Co-rewarding
@register_provider
class AnswerIds(Provider):
    r"""``extras:answer_ids`` and ``extras:partner_group`` for :class:`~rlobj.terms.rewards.outcome.co_reward`
    (Co-rewarding-I, arXiv 2508.00410).

    * ``answer_ids`` (int64 ``" batch"``): the final answer of each decoded response
      (:func:`~rlobj.verifiers.extract.extract_answer` with ``extract``; the scorer's ``answer``
      field when it gives one) mapped to an id: a stable hash of its canonical form (numbers by
      value, text by :func:`~rlobj.verifiers.match.normalize_answer`), -1 when no answer. Equal
      answers get equal ids in every group (the term compares a group's answers with its
      partner group's vote, so ids must agree across groups, not only within one).
    * ``partner_group`` (int64 ``" batch"``): the groups whose records share the value of
      ``records[b][pair_key]`` (the original question and its rephrasing) are partners, paired
      in group-id order cyclically (two views: each other's partner); a group with no such
      field or no other view is its own partner (plain self-consistency voting, as the term
      allows).

    A scorer field ``answer_ids`` / ``partner_group`` (in this batch's group ids) wins over these
    rules. Under data parallelism the partner ids are shifted to the global group ids that
    :func:`~rlobj.train.distributed.gather_rows` gives the gathered batch (each rank's groups
    after the previous ranks'); the two views must be sampled on the same rank.

    Args:
        extract: answer extraction mode (default ``"last_number"``).
        pair_key: record field naming the question a view belongs to.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:answer_ids", "extras:partner_group")

    def __init__(self, extract: str = "last_number", pair_key: str = "question_id"):
        _check_extract("AnswerIds", extract)
        self.extract, self.pair_key = extract, pair_key

    def answer_ids(self, ctx, batch) -> Tensor:
        given = scorer_field(batch, "answer_ids")
        if given is not None:
            return given.long()
        if batch.scores is not None and batch.scores and all("answer" in s.fields for s in batch.scores):
            spans = [None if s.fields["answer"] is None else str(s.fields["answer"]) for s in batch.scores]
        else:
            spans = [extract_answer(text, self.extract) for text in ctx.decode(batch.rollout)]
        return torch.tensor([answer_key(span) for span in spans], dtype=torch.long)

    def partner_group(self, batch) -> Tensor:
        given = scorer_field(batch, "partner_group")
        if given is not None:
            return given.long()
        group_ids = batch.rollout.group_ids.cpu()
        rows_of = group_rows(group_ids)
        views: dict[Any, list[int]] = {}
        for gid in sorted(rows_of):
            key = batch.records[rows_of[gid][0]].get(self.pair_key)
            if key is not None:
                views.setdefault(repr(key), []).append(gid)
        partner = {gid: gid for gid in rows_of}
        for gids in views.values():
            for index, gid in enumerate(gids):
                partner[gid] = gids[(index + 1) % len(gids)]
        return torch.tensor([partner[int(g)] for g in group_ids.tolist()], dtype=torch.long)

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        out = {}
        if "extras:answer_ids" in self.needed or not self.needed:
            out["extras:answer_ids"] = self.answer_ids(ctx, batch).to(device)
        if "extras:partner_group" in self.needed or not self.needed:
            # in this rank's group ids; gather_rows shifts them with the group ids across ranks
            out["extras:partner_group"] = self.partner_group(batch).to(device)
        return out


# --------------------------------------------------------------------------- appeals (noisy verifiers)
@register_provider
class AppealCheck(Provider):
    r"""``extras:appeal_flipped`` (bool ``" batch"``) for
    :class:`~rlobj.terms.rewards.noisy_verifier.fn_rate_from_appeals` (Cai et al., arXiv 2510.00915).

    Each rule negative (reward < 0.5) is appealed with probability $q$ (the consuming term's
    ``q``, so its Horvitz-Thompson count $|P_L|/q$ is unbiased); the draw of row $b$ comes from a
    generator seeded by (``seed``, run seed, step, the row's content key :func:`row_keys`), so
    micro-batching, row order and data-parallel splits change nothing.
    The appeal is a second, more lenient scripted check standing in for the paper's LLM
    verifier: the answer extracted with ``extract`` (default the last number) is compared with
    ``records[b][answer_key]`` by numeric equivalence (``math.isclose`` with ``rel_tol`` /
    ``abs_tol``; normalised text equality when either side is not a number). A row is flipped
    when it was appealed and the lenient check accepts it. Rule positives are never flipped.

    A scorer field ``appeal_flipped`` (the real second verifier's verdict) wins.

    Args:
        q: appeal probability in (0, 1] (None: the term's ``q``, or 1 without such a term).
        extract, answer_key, rel_tol, abs_tol: the lenient check.
        seed: salt of the appeal draws.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:appeal_flipped",)

    def __init__(self, q: float | None = None, extract: str = "last_number", answer_key: str = "answer",
                 rel_tol: float = 1e-6, abs_tol: float = 1e-6, seed: int = 0):
        _check_extract("AppealCheck", extract)
        if q is not None and not 0.0 < q <= 1.0:
            raise RlobjInputError(f"AppealCheck.q: expected a probability in (0, 1], got {q}")
        self.q, self.extract, self.answer_key = q, extract, answer_key
        self.rel_tol, self.abs_tol, self.seed = rel_tol, abs_tol, seed

    def setup(self, terms):
        found = {float(t.q) for t in terms if "extras:appeal_flipped" in t.slots_read() and hasattr(t, "q")}
        if len(found) > 1:
            raise RlobjInputError(f"objective: terms reading extras['appeal_flipped'] disagree on q: {sorted(found)}")
        if self.q is None:
            self.q = found.pop() if found else 1.0

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        given = scorer_field(batch, "appeal_flipped")
        if given is not None:
            return {"extras:appeal_flipped": given.bool().to(device)}
        rewards = inputs["rewards"].detach().cpu()
        texts, keys = ctx.decode(batch.rollout), row_keys(batch.rollout)
        flipped = torch.zeros(len(texts), dtype=torch.bool)
        for row, text in enumerate(texts):
            if float(rewards[row]) >= 0.5:
                continue
            draw = torch.rand((), generator=row_generator(self.seed, ctx.seed, ctx.step, keys[row]))
            if float(draw) >= self.q:
                continue
            gold = _gold("AppealCheck", batch.records[row], self.answer_key, row)
            flipped[row] = _same_answer(extract_answer(text, self.extract), gold, self.rel_tol, self.abs_tol)
        return {"extras:appeal_flipped": flipped.to(device)}


# --------------------------------------------------------------------------- AEPO
@register_provider
class AepoCandidates(Provider):
    r"""``extras:candidate_count``, ``extras:first_hit_rank`` and ``extras:format_valid`` for
    :class:`~rlobj.terms.rewards.outcome.aepo_reward` (AEPO, arXiv 2508.05731).

    The paper's responses list $N$ candidate click points; for text tasks the candidates are the
    items of the decoded response split at ``separator`` (default whitespace, commas,
    semicolons). ``format_valid``: $1 \le N \le$ ``max_candidates`` and every item parses as a
    number (``numeric=True``) or is non-empty. A candidate hits when it equals
    ``records[b][answer_key]`` (numeric equivalence, else normalised text);
    ``first_hit_rank`` is the 1-based position of the first hit
    (:func:`~rlobj.terms.rewards.outcome.first_hit_rank`), 0 for none; ``candidate_count`` is $N$
    (int64). Scorer fields of these names (e.g. from a GUI grounding checker) win.

    Args:
        answer_key: record field with the target.
        separator: regular expression between candidates.
        max_candidates: the most candidates a valid response may give.
        numeric: candidates must be numbers to be valid.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:candidate_count", "extras:first_hit_rank", "extras:format_valid")

    def __init__(self, answer_key: str = "answer", separator: str = r"[\s,;]+", max_candidates: int = 8,
                 numeric: bool = True, rel_tol: float = 1e-6, abs_tol: float = 1e-6):
        if max_candidates < 1:
            raise RlobjInputError(f"AepoCandidates.max_candidates: expected >= 1, got {max_candidates}")
        self.answer_key, self.separator, self.max_candidates = answer_key, separator, max_candidates
        self.numeric, self.rel_tol, self.abs_tol = numeric, rel_tol, abs_tol
        self._split = re.compile(separator)

    def candidates(self, text: str) -> list[str]:
        return [item for item in self._split.split(text.strip()) if item]

    def batch(self, ctx, batch, inputs):
        from rlobj.terms.rewards import first_hit_rank

        device = batch.rollout.response_ids.device
        texts = ctx.decode(batch.rollout)
        lists = [self.candidates(text) for text in texts]
        counts = torch.tensor([len(items) for items in lists], dtype=torch.long)
        width = max(1, int(counts.max()) if len(lists) else 1)
        hits = torch.zeros(len(lists), width, dtype=torch.bool)
        valid = torch.zeros(len(lists), dtype=torch.bool)
        for row, items in enumerate(lists):
            gold = _gold("AepoCandidates", batch.records[row], self.answer_key, row)
            for index, item in enumerate(items):
                hits[row, index] = _same_answer(item, gold, self.rel_tol, self.abs_tol)
            well_formed = all(parse_number(item) is not None for item in items) if self.numeric else True
            valid[row] = 1 <= len(items) <= self.max_candidates and well_formed
        ranks = first_hit_rank(hits, counts)
        computed = {"candidate_count": counts, "first_hit_rank": ranks, "format_valid": valid}
        out = {}
        for name, value in computed.items():
            given = scorer_field(batch, name)
            if given is not None:
                value = given.bool() if name == "format_valid" else given.long()
            out[f"extras:{name}"] = value.to(device)
        return out


# --------------------------------------------------------------------------- CRF
@register_provider
class ConcisenessScore(Provider):
    r"""``extras:conciseness`` (float ``" batch"`` in [``floor``, 1]) for
    :class:`~rlobj.terms.rewards.outcome.conciseness_reward` (CRF, arXiv 2511.09158).

    The paper scores conciseness with a trained 3B conciseness reward model (values in
    [0.1, 1]); rlobj has none, so this is a scripted rule on response lengths $L$ (response
    tokens, EOS included): $c_i = f + (1 - f)\,\min_{j \in g} L_j / L_i$ within the group $g$
    (the shortest response of its group scores 1, one twice as long $f + (1-f)/2$; an empty
    response scores 1). A scorer field ``conciseness`` (the real CRM's score) wins.

    Args:
        floor: $f \in [0, 1)$, the lowest score (0.1, the CRM's range).
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:conciseness",)

    def __init__(self, floor: float = 0.1):
        if not 0.0 <= floor < 1.0:
            raise RlobjInputError(f"ConcisenessScore.floor: expected in [0, 1), got {floor}")
        self.floor = floor

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        given = scorer_field(batch, "conciseness")
        if given is not None:
            return {"extras:conciseness": given.float().to(device)}
        lengths = _lengths(batch).cpu().double()
        scores = torch.ones_like(lengths)
        for rows in group_rows(batch.rollout.group_ids.cpu()).values():
            shortest = lengths[rows].min()
            for row in rows:
                if lengths[row] > 0:
                    scores[row] = self.floor + (1 - self.floor) * shortest / lengths[row]
        return {"extras:conciseness": scores.float().to(device)}


# --------------------------------------------------------------------------- GCPO
_AUX_PATTERNS = (r"\bauxiliary\b", r"\bconstruct(?:ed|ing)?\b", r"\bdraw\b", r"\bextend\b", r"\bmidpoint\b",
                 r"\bperpendicular\b", r"\bparallel (?:line|to)\b", r"\blet [A-Z] be\b")


@register_provider
class AuxConstruction(Provider):
    r"""``extras:uses_aux`` (bool ``" batch"``) for :class:`~rlobj.terms.rewards.outcome.gcpo_reward`
    (GCPO / GeometryZero, arXiv 2506.07160).

    True when the decoded response matches any of ``patterns`` (regular expressions, searched
    case-insensitively unless ``case_sensitive``); the default patterns are cue phrases of an
    auxiliary construction in geometry ("auxiliary", "construct", "draw", "extend", "midpoint",
    "perpendicular", "let X be", ...), a scripted stand-in for the paper's detection. A scorer
    field ``uses_aux`` wins.

    Args:
        patterns: regular expressions; any match marks the response.
        case_sensitive: match case.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:uses_aux",)

    def __init__(self, patterns: list[str] | None = None, case_sensitive: bool = False):
        self.patterns = list(_AUX_PATTERNS if patterns is None else patterns)
        if not self.patterns:
            raise RlobjInputError("AuxConstruction.patterns: expected at least one pattern")
        self.case_sensitive = case_sensitive
        flags = 0 if case_sensitive else re.IGNORECASE
        self._compiled = [re.compile(p, flags) for p in self.patterns]

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        given = scorer_field(batch, "uses_aux")
        if given is not None:
            return {"extras:uses_aux": given.bool().to(device)}
        texts = ctx.decode(batch.rollout)
        uses = torch.tensor([any(p.search(t) for p in self._compiled) for t in texts], dtype=torch.bool)
        return {"extras:uses_aux": uses.to(device)}


# --------------------------------------------------------------------------- multi-reward
@register_provider
class RewardComponents(Provider):
    r"""``extras:reward_components`` (float32 ``"batch k"``) for
    :class:`~rlobj.terms.advantages.baselines.multi_reward_advantage` (GDPO, arXiv 2601.05242).

    One column per name in ``components``, in order:

    * ``"verifier"``: the scorer's reward (``batch.rewards``);
    * ``"format"``: 1 when the decoded response, whole, matches ``format_pattern``
      (``re.fullmatch``; default: one number, the tiny arithmetic task's format), else 0;
    * ``"length"``: $1 - L / L_\text{max}$, $L$ the response tokens and $L_\text{max}$ the
      sampling budget ``max_new_tokens`` (the batch width when unknown), clipped to [0, 1];
    * any other name: the scorer's field of that name (required).

    A scorer field named like a component wins over the rule for that column. The number of
    components must match the term's ``weights`` when it gives them (checked at setup).

    Args:
        components: column names.
        format_pattern: the format rule's regular expression.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:reward_components",)
    BUILTIN: ClassVar[tuple[str, ...]] = ("verifier", "format", "length")

    def __init__(self, components: list[str] | None = None, format_pattern: str = r"\s*[-+]?\d+(?:\.\d+)?\s*"):
        self.components = list(self.BUILTIN if components is None else components)
        if not self.components or len(set(self.components)) != len(self.components):
            raise RlobjInputError(f"RewardComponents.components: expected distinct names, got {self.components!r}")
        self.format_pattern = format_pattern
        self._format = re.compile(format_pattern)

    def setup(self, terms):
        for term in terms:
            weights = getattr(term, "weights", None)
            if "extras:reward_components" in term.slots_read() and weights is not None \
                    and len(weights) != len(self.components):
                raise RlobjInputError(f"RewardComponents: {type(term).__name__} has {len(weights)} weights but the "
                                      f"provider gives {len(self.components)} components {self.components}; pass "
                                      "components: [...] of that length")

    def column(self, ctx, batch, name: str, texts: list[str] | None) -> Tensor:
        given = scorer_field(batch, name)
        if given is not None:
            return given.float().cpu()
        if name == "verifier":
            return batch.rewards.float().cpu()
        if name == "format":
            return torch.tensor([float(self._format.fullmatch(t) is not None) for t in texts])
        if name == "length":
            budget = getattr(getattr(ctx, "sampling", None), "max_new_tokens", None) or batch.rollout.response_ids.shape[1]
            return (1.0 - _lengths(batch).cpu().float() / max(int(budget), 1)).clamp(0.0, 1.0)
        return batch.score_field(name).float().cpu()  # raises naming the missing field

    def batch(self, ctx, batch, inputs):
        texts = ctx.decode(batch.rollout) if "format" in self.components else None
        columns = [self.column(ctx, batch, name, texts) for name in self.components]
        return {"extras:reward_components": torch.stack(columns, -1).to(batch.rollout.response_ids.device)}


# --------------------------------------------------------------------------- BRPO
@register_provider
class PairwiseJudge(Provider):
    r"""``extras:pairwise_reference`` (bool ``" batch"``) and ``extras:pairwise_wins`` (bool
    ``"batch V"``) for :class:`~rlobj.terms.advantages.comparisons.brpo_advantage` (BRPO,
    Writing-Zero, arXiv 2506.00103).

    The reference of each group is drawn uniformly (as
    :func:`~rlobj.terms.advantages.comparisons.pick_references`) from a generator seeded by
    (``seed``, run seed, step, the sorted content keys of the group's rows, :func:`row_keys`). The judge is a **scripted stand-in for the
    paper's pairwise LLM judge**: of two responses the one with the higher reward wins, on
    equal rewards the shorter one (response tokens), and on a full tie the one presented first
    (a position bias). With ``views=2`` each response is judged in both presentation orders
    (itself first, then the reference first), so full ties give mixed verdicts (the term's
    $\kappa$); ``views=1`` uses the first order only. The reference's own row is all False
    (the term ignores it). Scorer fields of these names (a real judge's verdicts) win.

    Args:
        views: presentation orders $V \in \{1, 2\}$.
        seed: salt of the reference draws.
    """

    provides: ClassVar[tuple[str, ...]] = ("extras:pairwise_reference", "extras:pairwise_wins")

    def __init__(self, views: int = 2, seed: int = 0):
        if views not in (1, 2):
            raise RlobjInputError(f"PairwiseJudge.views: expected 1 or 2, got {views}")
        self.views, self.seed = views, seed

    @staticmethod
    def first_wins(reward_a: float, length_a: int, reward_b: float, length_b: int) -> bool:
        """The scripted judge: does the first-presented response win?"""
        if reward_a != reward_b:
            return reward_a > reward_b
        if length_a != length_b:
            return length_a < length_b
        return True

    def batch(self, ctx, batch, inputs):
        device = batch.rollout.response_ids.device
        rewards = inputs["rewards"].detach().cpu().tolist()
        lengths = _lengths(batch).cpu().tolist()
        reference = torch.zeros(len(rewards), dtype=torch.bool)
        wins = torch.zeros(len(rewards), self.views, dtype=torch.bool)
        keys = row_keys(batch.rollout)
        for rows in group_rows(batch.rollout.group_ids.cpu()).values():
            ordered = sorted(rows, key=lambda r: keys[r])  # by content: row order does not matter
            draw = row_generator(self.seed, ctx.seed, ctx.step, "group", *[keys[r] for r in ordered])
            ref = ordered[int(torch.randint(len(rows), (1,), generator=draw))]
            reference[ref] = True
            for row in rows:
                if row == ref:
                    continue
                wins[row, 0] = self.first_wins(rewards[row], lengths[row], rewards[ref], lengths[ref])
                if self.views == 2:
                    wins[row, 1] = not self.first_wins(rewards[ref], lengths[ref], rewards[row], lengths[row])
        given_ref, given_wins = scorer_field(batch, "pairwise_reference"), scorer_field(batch, "pairwise_wins")
        if given_ref is not None:
            reference = given_ref.bool()
        if given_wins is not None:
            wins = given_wins.bool()
        return {"extras:pairwise_reference": reference.to(device), "extras:pairwise_wins": wins.to(device)}
