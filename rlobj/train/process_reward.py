r"""A process reward model trained on search-tree step labels (PROPA), and its scorer.

PROPA (Jiang et al.; reference code github.com/YanbeiJiang/PROPA @ 8b9d77c) labels the nodes of
its MCTS trees with :func:`~rlobj.rollout.mcts_labels.log_boost` of their value
(:func:`~rlobj.rollout.mcts_labels.step_labels`) and trains a process reward model on
(question + partial response, label) pairs: ``rm_train.sh`` runs ``swift sft --task_type seq_cls
--num_labels 1 --problem_type regression`` (a causal LM with a one-output head read at the last
token, mean squared error, 5 epochs, lr 1e-4). :class:`ProcessRewardModel` is that model at
toy size: a tiny Qwen2 decoder (:func:`rlobj.rollout.build_tiny_qwen2`) whose last hidden state
at the end of a sequence goes through a linear head to one number.

Differences from the reference, on purpose: the prediction is $\sigma(\text{head})$ so it stays
in $[0, 1]$ like the labels (the reference regresses the raw head output); ``loss="bce"``
(binary cross-entropy on the soft labels) is offered next to the reference's ``"mse"``. No
LoRA: the toy model trains all weights.

:class:`PRMScorer` puts the model in the pipeline: each response is cut into steps (the
sampler's ``extras['step_ends']`` when an MCTS sampler made the batch, else the ``delimiter``
split of :func:`rlobj.train.providers.steps.split_steps`), every step end is scored, and the row
gets ``fields['step_scores']`` (what PROF's filter reads), optionally ``token_rewards`` (the
step's score on its last token) and an outcome ``reward`` from the verifier or from the model's
score of the whole response. With ``train`` it also learns online from the step labels an MCTS
sampler attaches (``extras['step_labels']``, sampler option ``labels: true``; -1 = no label).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rlobj.ops.errors import RlobjInputError
from rlobj.train.stages import Batch, Score, Scorer

__all__ = ["PRMExample", "ProcessRewardModel", "PRMScorer", "prm_examples"]


@dataclass(frozen=True)
class PRMExample:
    """One training pair: the token ids of prompt + partial response (ending at a step end) and
    its label in [0, 1]."""

    ids: tuple[int, ...]
    label: float


def prm_examples(tree, prompt_ids: Sequence[int], a: float = 10.0) -> list[PRMExample]:
    """The PROPA training pairs of one search tree (:func:`~rlobj.rollout.mcts_labels.step_labels`)."""
    from rlobj.rollout.mcts_labels import step_labels

    return [PRMExample(tuple(prompt_ids) + s.prefix, s.label) for s in step_labels(tree, a)]


class ProcessRewardModel(nn.Module):
    r"""A tiny causal LM with a scalar head: $v(x) = \sigma(w^\top h_{|x|}(x) + b)$, $h_{|x|}$ the
    last token's final hidden state.

    Args:
        vocab_size: token ids of the tokenizer.
        hidden_size, layers, heads, seed: the decoder (:func:`rlobj.rollout.build_tiny_qwen2`).
        pad_token_id: id used to right-pad batches (masked out).

    Example:
        >>> prm = ProcessRewardModel(vocab_size=8, hidden_size=64, layers=1, seed=0)
        >>> tuple(prm.predict([[3, 4], [5]]).shape)
        (2,)
    """

    def __init__(self, vocab_size: int, hidden_size: int = 64, layers: int = 1, heads: int = 1,
                 seed: int = 0, pad_token_id: int = 0):
        super().__init__()
        from rlobj.rollout import build_tiny_qwen2

        self.settings = dict(vocab_size=vocab_size, hidden_size=hidden_size, layers=layers, heads=heads,
                             seed=seed, pad_token_id=pad_token_id)
        self.decoder = build_tiny_qwen2(vocab_size, hidden_size=hidden_size, layers=layers, heads=heads,
                                        seed=seed).model
        generator = torch.Generator().manual_seed(seed + 1)
        self.head = nn.Linear(hidden_size, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator) * 0.02)
            self.head.bias.zero_()
        self.pad_token_id = pad_token_id

    def logits(self, sequences: Sequence[Sequence[int]]) -> Tensor:
        """``[len(sequences)]`` head outputs (before the sigmoid) at each sequence's last token."""
        if not sequences or any(len(s) == 0 for s in sequences):
            raise RlobjInputError("ProcessRewardModel: expected a non-empty list of non-empty token sequences")
        device = self.head.weight.device
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(sequences), width), dtype=torch.long, device=device)
        for row, seq in enumerate(sequences):
            ids[row, :len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, :len(seq)] = 1
        hidden = self.decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        last = mask.sum(1) - 1
        return self.head(hidden[torch.arange(len(sequences), device=device), last]).squeeze(-1)

    @torch.no_grad()
    def predict(self, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> Tensor:
        """``[len(sequences)]`` scores in (0, 1), no gradient."""
        was = self.training
        self.eval()
        out = torch.cat([torch.sigmoid(self.logits(sequences[i:i + batch_size]))
                         for i in range(0, len(sequences), batch_size)])
        self.train(was)
        return out.cpu()

    def fit(self, examples: Sequence[PRMExample], epochs: int = 5, lr: float = 1e-3, batch_size: int = 16,
            loss: str = "mse", seed: int = 0) -> list[float]:
        """Train on ``examples`` (shuffled each epoch, seeded); returns the mean loss of each epoch.

        ``loss``: ``"mse"`` (the reference's regression) or ``"bce"`` on the soft labels.
        """
        if loss not in ("mse", "bce"):
            raise RlobjInputError(f"ProcessRewardModel.fit: loss must be 'mse' or 'bce', got {loss!r}")
        if not examples:
            raise RlobjInputError("ProcessRewardModel.fit: no examples")
        bad = [e.label for e in examples if not 0.0 <= e.label <= 1.0]
        if bad:
            raise RlobjInputError(f"ProcessRewardModel.fit: labels must lie in [0, 1], got {bad[:4]}")
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)
        order = list(range(len(examples)))
        rng = random.Random(seed)
        history = []
        self.train()
        for _ in range(epochs):
            rng.shuffle(order)
            total = 0.0
            for start in range(0, len(order), batch_size):
                chunk = [examples[i] for i in order[start:start + batch_size]]
                logits = self.logits([e.ids for e in chunk])
                target = torch.tensor([e.label for e in chunk], dtype=logits.dtype, device=logits.device)
                value = (nn.functional.mse_loss(torch.sigmoid(logits), target) if loss == "mse"
                         else nn.functional.binary_cross_entropy_with_logits(logits, target))
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                total += float(value.detach()) * len(chunk)
            history.append(total / len(order))
        self.eval()
        return history

    def save(self, directory: str) -> None:
        """Weights (``prm.pt``) and settings (``prm.json``) in ``directory``."""
        os.makedirs(directory, exist_ok=True)
        torch.save(self.state_dict(), os.path.join(directory, "prm.pt"))
        with open(os.path.join(directory, "prm.json"), "w") as handle:
            json.dump(self.settings, handle)

    @classmethod
    def load(cls, directory: str) -> ProcessRewardModel:
        """A model saved by :meth:`save`."""
        for name in ("prm.json", "prm.pt"):
            if not os.path.exists(os.path.join(directory, name)):
                raise RlobjInputError(f"ProcessRewardModel.load: {directory!r} has no {name} (saved by .save())")
        with open(os.path.join(directory, "prm.json")) as handle:
            model = cls(**json.load(handle))
        model.load_state_dict(torch.load(os.path.join(directory, "prm.pt"), weights_only=True))
        return model.eval()


class PRMScorer(Scorer):
    r"""Step and outcome rewards from a :class:`ProcessRewardModel` (PROPA's reward model as a scorer).

    For each row, with $e_1 < \dots < e_K$ its step ends, $s_k = v(\text{prompt} + y_{\le e_k})$:

    * ``fields['step_scores'] = [s_1, ..., s_K]``;
    * ``token_rewards`` (with ``token_rewards: true``): $s_k$ on token $e_k$, 0 elsewhere;
    * ``reward``: the verifier's reward (``outcome: verifier``, default), $s_K$
      (``outcome: prm``), or their sum (``outcome: sum``).

    A batch the sampler already scored (``batch.scores`` set: the MCTS sampler verified its
    terminal paths with this scorer) keeps its verifier rewards; the model's step scores are
    added (see :func:`rlobj.train.scorers.reuse_scores`).

    Args:
        prm: a :class:`ProcessRewardModel`, a directory saved by :meth:`ProcessRewardModel.save`,
            or a mapping of its constructor arguments (a fresh model, for ``train``; the
            vocabulary size may be left out: the run's tokenizer gives it).
        verifier: the outcome reward function (default :class:`~rlobj.data.tasks.ExactAnswer`).
        outcome: ``verifier``, ``prm`` or ``sum``.
        token_rewards: put step scores on the step-end tokens.
        delimiter: step split when the batch has no ``step_ends`` (None: the whole response is one step).
        train: None, or ``{every: 1, epochs: 2, lr: 1e-3, loss: mse, max_examples: 2048}``: keep the
            step labels an MCTS sampler attaches (``extras['step_labels']``) and refit the model
            every ``every`` scored batches that carry labels.
    """

    def __init__(self, prm: Any = None, verifier: Any = None, outcome: str = "verifier",
                 token_rewards: bool = False, delimiter: str | None = "\n", train: dict | None = None):
        from rlobj.train.scorers import VerifierScorer

        if outcome not in ("verifier", "prm", "sum"):
            raise RlobjInputError(f"PRMScorer.outcome: expected 'verifier', 'prm' or 'sum', got {outcome!r}")
        self.outcome, self.token_rewards, self.delimiter = outcome, bool(token_rewards), delimiter
        self.verifier_scorer = VerifierScorer(verifier)
        self.verifier = self.verifier_scorer.verifier
        if isinstance(prm, str):
            prm = ProcessRewardModel.load(prm)
        elif prm is None or isinstance(prm, dict):
            prm = dict(prm or {})
        elif not isinstance(prm, ProcessRewardModel):
            raise RlobjInputError(f"PRMScorer.prm: expected a ProcessRewardModel, a directory or a mapping, got {prm!r}")
        self.prm = prm
        self.train = None
        if train is not None:
            allowed = {"every": 1, "epochs": 2, "lr": 1e-3, "loss": "mse", "max_examples": 2048, "batch_size": 16}
            unknown = set(train) - set(allowed)
            if unknown:
                raise RlobjInputError(f"PRMScorer.train: unknown key(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
            self.train = {**allowed, **train}
            if not (isinstance(self.train["every"], int) and self.train["every"] >= 1):
                raise RlobjInputError(f"PRMScorer.train.every: expected an int >= 1, got {self.train['every']!r}")
        self.examples: list[PRMExample] = []
        self.fits, self._labelled_batches, self.last_losses = 0, 0, []

    def model(self, ctx) -> ProcessRewardModel:
        if isinstance(self.prm, dict):
            config = getattr(getattr(ctx.models, "policy", None), "config", None)
            settings = {"vocab_size": getattr(config, "vocab_size", None), "pad_token_id": ctx.pad_token_id, **self.prm}
            if settings["vocab_size"] is None:
                raise RlobjInputError("PRMScorer.prm.vocab_size: give it (the policy has no config.vocab_size)")
            self.prm = ProcessRewardModel(**settings)
        return self.prm

    def _learn(self, batch: Batch, ends: Tensor) -> None:
        labels = batch.extras.get("step_labels")
        if self.train is None or labels is None:
            return
        rollout = batch.rollout
        for row in range(len(batch)):
            prompt = rollout.prompt_ids[row][rollout.prompt_mask[row]].tolist()
            response = rollout.response_ids[row].tolist()
            for position in torch.nonzero(ends[row] & (labels[row].cpu() >= 0)).flatten().tolist():
                self.examples.append(PRMExample(tuple(prompt + response[:position + 1]), float(labels[row, position])))
        self.examples = list({e.ids: e for e in self.examples}.values())[-self.train["max_examples"]:]
        self._labelled_batches += 1
        if self._labelled_batches % self.train["every"] == 0 and self.examples:
            self.last_losses = self.prm.fit(self.examples, epochs=self.train["epochs"], lr=self.train["lr"],
                                            batch_size=self.train["batch_size"], loss=self.train["loss"],
                                            seed=self.fits)
            self.fits += 1
            batch.metrics["prm/fit_loss_first"] = self.last_losses[0]
            batch.metrics["prm/fit_loss_last"] = self.last_losses[-1]
        batch.metrics["prm/examples"] = float(len(self.examples))

    def step_ends(self, ctx, batch: Batch) -> Tensor:
        """``[batch, seq]`` bool: the last token of each step of each row (cpu)."""
        mask = batch.rollout.response_mask.cpu()
        given = batch.extras.get("step_ends")
        if given is not None:
            ends = given.cpu().bool() & mask
        elif self.delimiter is not None:
            from rlobj.train.providers.steps import split_steps

            ends = split_steps(ctx, batch.rollout, self.delimiter)[0].cpu() & mask
        else:
            ends = torch.zeros_like(mask)
        last = mask & ~nn.functional.pad(mask[:, 1:], (0, 1))  # the response's last token ends a step
        return ends | last

    def __call__(self, ctx, batch: Batch) -> list[Score]:
        from rlobj.train.scorers import reuse_scores

        prm = self.model(ctx)
        ends = self.step_ends(ctx, batch)
        self._learn(batch, ends)
        outcomes = reuse_scores(batch)
        if outcomes is None:
            outcomes = self.verifier_scorer(ctx, batch) if self.outcome != "prm" else [Score(0.0)] * len(batch)
        rollout = batch.rollout
        sequences, where = [], []
        for row in range(len(batch)):
            prompt = rollout.prompt_ids[row][rollout.prompt_mask[row]].tolist()
            response = rollout.response_ids[row].tolist()
            for position in torch.nonzero(ends[row]).flatten().tolist():
                sequences.append(prompt + response[:position + 1])
                where.append((row, position))
        values = prm.predict(sequences).tolist() if sequences else []
        per_row: list[list[tuple[int, float]]] = [[] for _ in range(len(batch))]
        for (row, position), value in zip(where, values):
            per_row[row].append((position, value))
        out = []
        for row, score in enumerate(outcomes):
            steps = per_row[row]
            final = steps[-1][1] if steps else 0.0
            reward = {"verifier": score.reward, "prm": final, "sum": score.reward + final}[self.outcome]
            tokens = None
            if self.token_rewards:
                tokens = [0.0] * int(rollout.response_mask[row].sum())
                for position, value in steps:
                    tokens[position] = value
            if not math.isfinite(reward):
                reward = 0.0
            out.append(Score(reward=reward, token_rewards=tokens,
                             fields={**score.fields, "step_scores": [v for _, v in steps]}))
        batch.metrics["prm/step_score_mean"] = sum(values) / len(values) if values else math.nan
        return out

    def state_dict(self) -> dict:
        """The model (settings and weights, once built), the kept examples and the fit counters
        (saved in checkpoints by the trainer)."""
        model = None if isinstance(self.prm, dict) else {
            "settings": dict(self.prm.settings), "weights": {k: v.detach().cpu() for k, v in self.prm.state_dict().items()}}
        return {"model": model, "examples": [[list(e.ids), e.label] for e in self.examples],
                "fits": self.fits, "labelled_batches": self._labelled_batches}

    def load_state_dict(self, state: dict) -> None:
        if state.get("model") is not None:
            self.prm = ProcessRewardModel(**state["model"]["settings"])
            self.prm.load_state_dict(state["model"]["weights"])
            self.prm.eval()
        self.examples = [PRMExample(tuple(int(i) for i in ids), float(label)) for ids, label in state.get("examples", [])]
        self.fits, self._labelled_batches = int(state.get("fits", 0)), int(state.get("labelled_batches", 0))

    def close(self) -> None:
        self.verifier_scorer.close()
