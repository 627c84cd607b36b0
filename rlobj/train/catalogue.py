r"""ReRe (Reinforced Preference Optimization for Recommendation): constrained beam search over a
catalogue of items, and a ranking reward.

* :class:`CatalogueBeamSampler` (a :class:`~rlobj.train.stages.Sampler`): for each prompt, beam
  search over the token trie of the catalogue, so every response is a valid, distinct item; the
  ``n`` beams are the group, in rank order (best first);
* :class:`RankingScorer` (a :class:`~rlobj.train.stages.Scorer`): the rule-based accuracy reward
  plus a ranking penalty on wrong items that the beam ranked high,
  $r_k = \mathbb{1}[y_k = y^\star] - \lambda\,\mathbb{1}[y_k \ne y^\star] / \log_2(k + 1)$ for the
  item at beam rank $k$ (1 = best).

Warning:
    The form of the ranking penalty (a DCG-style discount of the wrong items by their rank) is our
    reading of the abstract ("auxiliary ranking rewards for finer-grained supervision"); we found no
    public code. Beam search runs full forwards of the policy (no cache): meant for short item
    names and modest catalogues.
"""

from __future__ import annotations

import math

import torch

from rlobj.ops.errors import RlobjInputError
from rlobj.rollout import RolloutBatch
from rlobj.rollout._batching import batch_from_rows
from rlobj.rollout.logprobs import next_token_logits
from rlobj.train.stages import Batch, Sampler, Score, Scorer, StepContext

__all__ = ["CatalogueBeamSampler", "RankingScorer", "build_trie"]


def build_trie(sequences: list[list[int]]) -> dict:
    """Nested ``{token: subtrie}``; a complete sequence ends at a node holding ``None: True``."""
    root: dict = {}
    for tokens in sequences:
        node = root
        for token in tokens:
            node = node.setdefault(int(token), {})
        node[None] = True
    return root


def _next_logprobs(model, prompt: list[int], prefixes: list[list[int]]) -> torch.Tensor:
    """Log-probs of the next token after ``prompt + prefix`` for each prefix (one padded forward)."""
    logits = next_token_logits(model, [prompt + p for p in prefixes])
    return torch.log_softmax(logits, dim=-1).cpu()


class CatalogueBeamSampler(Sampler):
    r"""ReRe's constrained beam search: ``n`` distinct catalogue items per prompt, best first.

    The catalogue's items are tokenised (``ctx.encode(item) + [eos]``) into a trie; beams extend
    only along the trie, ranked by the policy's summed log-probability; a beam that completes an
    item is finished. The group of a prompt is its ``n`` best items (fewer if the catalogue has
    fewer), and ``rollout.logp_rollout`` holds each item's token log-probs under the policy.
    Beam search does not sample from the policy: the batch is ``on_policy=False`` (the trainer
    recomputes ``logp_old``).

    Args:
        catalogue: the item names.
        eos_token_id: the id that ends an item (None: the engine's first EOS id).
    """

    def __init__(self, catalogue: list[str], eos_token_id: int | None = None):
        if not isinstance(catalogue, (list, tuple)) or not catalogue or not all(isinstance(c, str) and c
                                                                                for c in catalogue):
            raise RlobjInputError(f"CatalogueBeamSampler.catalogue: expected a non-empty list of item names, "
                                  f"got {catalogue!r}")
        if len(set(catalogue)) != len(catalogue):
            raise RlobjInputError("CatalogueBeamSampler.catalogue: items must be distinct")
        self.catalogue, self.eos_token_id = list(catalogue), eos_token_id

    def _trie(self, ctx: StepContext) -> dict:
        eos = self.eos_token_id
        if eos is None:
            eos = (list(getattr(ctx.engine, "eos_token_ids", ())) or [None])[0]
        if eos is None:
            raise RlobjInputError("CatalogueBeamSampler: no eos_token_id (give one, or use an engine with eos ids)")
        return build_trie([ctx.encode(item) + [int(eos)] for item in self.catalogue])

    def beams(self, model, prompt: list[int], trie: dict, width: int) -> list[tuple[list[int], list[float]]]:
        """The ``width`` best complete items after ``prompt``: (tokens, token log-probs), best first."""
        live: list[tuple[list[int], list[float], dict]] = [([], [], trie)]
        done: list[tuple[list[int], list[float]]] = []
        while live:
            logp = _next_logprobs(model, prompt, [tokens for tokens, _, _ in live])
            grown = []
            for (tokens, scores, node), row in zip(live, logp):
                for token in sorted(k for k in node if k is not None):
                    grown.append((tokens + [token], scores + [float(row[token])], node[token]))
            grown.sort(key=lambda b: (-sum(b[1]), b[0]))
            live = []
            for tokens, scores, node in grown[:width]:
                if None in node:
                    done.append((tokens, scores))
                children = {k: v for k, v in node.items() if k is not None}
                if children:
                    live.append((tokens, scores, children))
            done.sort(key=lambda b: (-sum(b[1]), b[0]))
            best_live = max((sum(s) for _, s, _ in live), default=-math.inf)
            if len(done) >= width and sum(done[width - 1][1]) >= best_live:
                break  # log-probs only fall as a beam grows: no live beam can overtake
        return done[:width]

    def sample(self, ctx, records, n, salt=0, **changes) -> Batch:
        trie = self._trie(ctx)
        model = ctx.models.policy
        prompts, responses, logps, groups, rows, ranks = [], [], [], [], [], []
        for g, record in enumerate(records):
            prompt = ctx.encode(record["prompt"])
            for rank, (tokens, scores) in enumerate(self.beams(model, prompt, trie, n), start=1):
                prompts.append(torch.tensor(prompt, dtype=torch.long))
                responses.append(torch.tensor(tokens, dtype=torch.long))
                logps.append(torch.tensor(scores))
                groups.append(g)
                rows.append(record)
                ranks.append(rank)
        rollout: RolloutBatch = batch_from_rows(prompts, responses, logps, groups, [True] * len(rows),
                                                ctx.pad_token_id, device=next(model.parameters()).device)
        return Batch(rollout=rollout, records=rows, on_policy=False,
                     extras={"beam_rank": torch.tensor(ranks, dtype=torch.float32, device=rollout.response_ids.device)})


class RankingScorer(Scorer):
    r"""ReRe's reward: accuracy plus a rank-discounted penalty on wrong items.

    $$ r_k = \mathbb{1}[y_k = y^\star] - \lambda\, \frac{\mathbb{1}[y_k \ne y^\star]}{\log_2(k+1)} $$

    with $k$ the row's beam rank (``extras["beam_rank"]`` from :class:`CatalogueBeamSampler`, or
    the row's position in its group) and $y^\star$ = ``record[target_key]``.

    Args:
        weight: $\lambda \ge 0$.
        target_key: record field holding the target item.
    """

    def __init__(self, weight: float = 0.5, target_key: str = "answer"):
        if not weight >= 0:
            raise RlobjInputError(f"RankingScorer.weight: expected a value >= 0, got {weight!r}")
        self.weight, self.target_key = float(weight), target_key

    def __call__(self, ctx: StepContext, batch: Batch) -> list[Score]:
        texts = ctx.decode(batch.rollout)
        if "beam_rank" in batch.extras:
            ranks = [int(r) for r in batch.extras["beam_rank"].tolist()]
        else:
            seen: dict[int, int] = {}
            ranks = []
            for g in batch.rollout.group_ids.tolist():
                seen[g] = seen.get(g, 0) + 1
                ranks.append(seen[g])
        scores = []
        for text, record, rank in zip(texts, batch.records, ranks):
            if self.target_key not in record:
                raise RlobjInputError(f"RankingScorer: record has no {self.target_key!r} (the target item)")
            hit = text.strip() == str(record[self.target_key]).strip()
            reward = 1.0 if hit else -self.weight / math.log2(rank + 1)
            scores.append(Score(reward, fields={"accuracy": float(hit), "rank": float(rank)}))
        return scores
