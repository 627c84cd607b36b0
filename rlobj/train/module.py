r"""The LightningModule: rollouts -> rewards -> log-probs -> objective -> optimizer steps.

One ``training_step`` consumes one batch of prompts from the DataModule (``{"step": k,
"records": [...]}``) and, depending on the phase,

* **supervised warm-up** (the first ``warmup_sft_steps`` batches): the demonstrations
  (``record["completion"]`` + EOS) are scored under the policy and ``sft_objective`` (default the
  ``sft`` term: token NLL) takes one optimizer step;
* **RL**: the engine samples ``group_size`` responses per prompt, the verifier scores them,
  old log-probs are recomputed by the trainer (and reference log-probs only when the objective
  reads ``logp_ref``), :meth:`Objective.prepare <rlobj.algebra.Objective.prepare>` runs the batch
  stage (rewards, advantages) on the whole rollout batch, then for each of ``ppo_epochs`` epochs
  and each mini-batch of ``mini_batch_size`` sequences: the mini-batch is split into
  micro-batches of ``micro_batch_size``, one global :class:`~rlobj.algebra.Normalizer` is counted
  over them (all-reduced over data-parallel ranks), each micro-batch's loss is back-propagated,
  gradients are clipped, the optimizer steps and the learning rate follows its schedule. Finally
  the new weights are pushed to the engine.

The module holds no loss math: every number that shapes the gradient comes from the objective.
Under data parallelism the global normaliser (all-reduced counts, ``Normalizer.ranks`` = world
size) makes the strategy's gradient average over ranks equal the gradient of one process on the
whole batch (tested with DDP on 2 CPU processes).
"""

import copy
import dataclasses
import math
import random
import time
from collections import defaultdict
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from rlobj.algebra import Normalizer, Objective
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.registry import build_objective
from rlobj.rollout import HFEngine, RolloutBatch, SamplingConfig, left_pad_prompts
from rlobj.train.forward import token_logprobs, view_logprobs, vocab_view
from rlobj.train.strategies import parse_rollout
from rlobj.train.tasks import ARITHMETIC_CHARS, ExactAnswer, build_char_tokenizer

__all__ = ["RLModule", "build_train_objective", "score_completions"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_train_objective(spec) -> Term:
    """The objective of a config: :func:`rlobj.registry.build_objective` (``sft`` included)."""
    return build_objective(spec)


def _objective(spec, key: str) -> Objective:
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, Term):
        return Objective(spec)
    try:
        return Objective(build_train_objective(spec))
    except RlobjInputError as error:
        raise RlobjInputError(f"{key}: {error}") from error


def score_completions(verifier, completions: list[str], samples: list[dict], pool=None) -> tuple[list[float], dict[str, float]]:
    """Rewards of ``completions``; a verifier that raises or returns garbage gives 0 and is counted.

    With a :class:`rlobj.verifiers.VerifierPool` the items run in worker processes with timeouts;
    without one they run in this process (fast, for cheap verifiers such as exact match).
    """
    if pool is not None:
        result = pool.score(verifier, completions, samples)
        return list(result.rewards), result.metrics()
    rewards, failed = [], 0
    for completion, sample in zip(completions, samples):
        try:
            value = float(verifier(completion, sample))
            if not math.isfinite(value):
                raise ValueError("non-finite reward")
        except Exception:  # noqa: BLE001 - a broken verifier must never stop training
            value, failed = 0.0, failed + 1
        rewards.append(value)
    return rewards, {"verifier/failed_fraction": failed / max(len(rewards), 1)}


class RLModule(L.LightningModule):
    r"""Train a causal LM with any objective of the algebra (manual optimisation).

    Args:
        objective: the RL objective: a registry name (``"grpo"``), a YAML list of terms
            (``[group_zscore, {clip_ratio: {eps_high: 0.28}}, token_mean]``), or a term / chain.
        sft_objective: objective of the supervised warm-up phase. Default ``"sft"``.
        model_path: a local Hugging Face model directory (or hub name with a warm local cache);
            None builds the tiny Qwen2 of :func:`rlobj.rollout.build_tiny_qwen2` from
            ``tiny_model`` and the character tokenizer.
        tiny_model: keyword arguments of ``build_tiny_qwen2`` (hidden_size, layers, heads, seed).
        tokenizer_chars: characters of the character tokenizer (tiny model only).
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        group_size: responses sampled per prompt ($G$). Default 8.
        max_new_tokens, temperature, top_p, top_k: sampling settings (see ``SamplingConfig``).
        engine: ``"hf"`` (default, shares the policy module) or ``"vllm"``.
        engine_args: keyword arguments of the engine.
        verifier: reward function ``verifier(completion, record) -> float``; default
            :class:`~rlobj.train.tasks.ExactAnswer`.
        verifier_workers: >0 scores in a :class:`rlobj.verifiers.VerifierPool` of that many
            processes with ``verifier_timeout`` seconds per item; 0 scores in-process.
        warmup_sft_steps: number of leading batches trained with ``sft_objective``.
        lr, sft_lr: peak learning rates of the RL and warm-up phases (``sft_lr`` default ``lr``).
        optimizer: ``"adamw"`` (default) or ``"sgd"`` (plain gradient descent, used by the
            equivalence tests: its update is linear in the gradient).
        weight_decay, betas: AdamW settings.
        grad_clip: max global gradient norm (None: no clipping).
        lr_warmup_steps: linear warm-up of the RL learning rate over that many RL optimizer steps.
        lr_schedule: ``"constant"`` or ``"cosine"`` (to 0 at ``total_rl_updates``).
        total_rl_updates: horizon of the cosine schedule.
        ppo_epochs: passes over each rollout batch. Default 1.
        mini_batch_size: sequences per optimizer step on each rank (None: the whole batch).
        micro_batch_size: sequences per forward/backward (None: the whole mini-batch).
        shuffle_minibatches: permute rows (seeded) before cutting mini-batches.
        eval_samples, eval_k, eval_temperature, eval_max_new_tokens: validation sampling and the
            pass@k / maj@k budgets reported.
        eval_at_warmup_end: evaluate right before the first RL step (the "before" row).
        pass_threshold: a sample "passes" when its reward >= this (pass rate, pass@k).
        track_ref_kl: log ``kl/ref_k3`` (KL to the policy at the first RL step) even when the
            objective does not read ``logp_ref`` (one extra no-grad forward per step).
        perception: arguments of :class:`rlobj.rollout.perception.PromptSpanMask` (``ratio``,
            ``span``, ``seed``, ``mode``, ``mask_id``) for objectives that read
            ``extras["logp_perturbed"]`` / ``extras["vocab_perturbed"]`` (PAPO's ``perception_kl``,
            ``double_entropy``, ...); default ``PromptSpanMask()`` when such a term is present.
        rollout: the sampling strategy of RL steps (:mod:`rlobj.train.strategies`): ``"plain"``
            (default), ``{strategy: ead, schedule: {...EADSchedule fields}}`` (Exploratory Annealed
            Decoding, arXiv 2510.05251: the schedule is stepped with ``rl_updates``, the annealed
            log-probs go to ``extras['logp_rollout']``, ``logp_old`` is recomputed at the plain
            ``temperature``, so ``>> truncated_is(cap)`` is the reference code's correction; HF
            and vLLM engines), ``{strategy: latr, config: {...LATRConfig fields}}`` (LATR tree
            rollouts, arXiv 2510.24302, HF engine; mix ratio read at ``rl_updates``) or
            ``{strategy: segments, segment_tokens: S}`` (UloRL segment rollouts, arXiv
            2507.19766, HF engine: ``max_new_tokens`` is the whole budget, unfinished samples
            continue at the next step, only complete groups are trained on; pending samples are
            not saved in checkpoints). Evaluation always samples plainly.
        seed: seed of sampling and shuffling (combined with the step index and rank).

    Inputs the objective needs are decided from its chain's ``slots_read()``:

    * ``extras:logp_proxy`` (``lp_reg``): computed once per rollout batch from the old policy
      (no grad) as :meth:`VocabView.proxy_logp <rlobj.ops.vocab.VocabView.proxy_logp>` of the
      sampled tokens with the term's ``tau`` / ``mode``, the view built at temperature 1 from the
      final hidden states and the ``lm_head`` weight;
    * ``vocab`` (``forward_kl``, ``siren``, entropy from the vocabulary): the training forward
      builds the current policy's :class:`~rlobj.ops.vocab.VocabView` from the decoder's hidden
      states (no ``[tokens, vocab]`` logits) and takes ``logp`` / ``entropy`` from it;
      ``extras:vocab_ref`` / ``extras:vocab_init``: the reference's view (policy at the first RL
      step) under no grad, per micro-batch;
    * ``extras:logp_perturbed``: :func:`~rlobj.rollout.perception.perception_forward` of the old
      policy (no grad) under ``perception`` right after the rollout; ``extras:vocab_perturbed``:
      its vocab view, per micro-batch (no grad).

    Values the caller passes in ``update_on_rollout(extras=...)`` take precedence.
    """

    def __init__(
        self,
        objective: list[Any] | str = "grpo",
        sft_objective: list[Any] | str = "sft",
        model_path: str | None = None,
        tiny_model: dict[str, Any] | None = None,
        tokenizer_chars: str = ARITHMETIC_CHARS,
        dtype: str = "float32",
        group_size: int = 8,
        max_new_tokens: int = 8,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        engine: str = "hf",
        engine_args: dict[str, Any] | None = None,
        verifier: Any = None,
        verifier_workers: int = 0,
        verifier_timeout: float = 10.0,
        warmup_sft_steps: int = 0,
        optimizer: str = "adamw",
        lr: float = 3e-4,
        sft_lr: float | None = None,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        grad_clip: float | None = 1.0,
        lr_warmup_steps: int = 0,
        lr_schedule: str = "constant",
        total_rl_updates: int | None = None,
        ppo_epochs: int = 1,
        mini_batch_size: int | None = None,
        micro_batch_size: int | None = None,
        shuffle_minibatches: bool = False,
        eval_samples: int = 8,
        eval_k: list[int] = [1, 8],  # noqa: B006 - jsonargparse reads the default
        eval_temperature: float = 1.0,
        eval_max_new_tokens: int | None = None,
        eval_at_warmup_end: bool = True,
        pass_threshold: float = 1.0,
        track_ref_kl: bool = False,
        perception: dict[str, Any] | None = None,
        rollout: str | dict[str, Any] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["verifier", "objective", "sft_objective"])
        # Checkpoints must load with torch.load(weights_only=True): keep hparams plain data.
        for name, spec in (("objective", objective), ("sft_objective", sft_objective)):
            self.hparams[name] = spec if isinstance(spec, (str, list)) else repr(spec)
        # --- validate everything cheap before any model is built -------------------------
        self.objective = _objective(objective, "objective")
        self.sft_objective = _objective(sft_objective, "sft_objective")
        self.needs = frozenset().union(*(t.slots_read() for t in self.objective.chain.terms))
        self._proxy_settings = _proxy_settings(self.objective)
        self.perception = None
        if perception is not None or self.needs & {"extras:logp_perturbed", "extras:vocab_perturbed"}:
            from rlobj.rollout.perception import PromptSpanMask

            if perception is not None and not isinstance(perception, dict):
                raise RlobjInputError(f"perception: expected a mapping of PromptSpanMask arguments, got {perception!r}")
            try:
                self.perception = PromptSpanMask(**(perception or {}))
            except (TypeError, RlobjInputError) as error:
                raise RlobjInputError(f"perception: {error}") from error
        if dtype not in _DTYPES:
            raise RlobjInputError(f"dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
        if engine not in ("hf", "vllm"):
            raise RlobjInputError(f"engine: expected 'hf' or 'vllm', got {engine!r}")
        self.rollout_option = parse_rollout(rollout)
        if self.rollout_option.strategy in ("latr", "segments") and engine != "hf":
            raise RlobjInputError(f"rollout.strategy: {self.rollout_option.strategy!r} wraps the HF engine "
                                  f"(it needs HFEngine.decode_rows); got engine={engine!r}")
        if optimizer not in ("adamw", "sgd"):
            raise RlobjInputError(f"optimizer: expected 'adamw' or 'sgd', got {optimizer!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise RlobjInputError(f"lr_schedule: expected 'constant' or 'cosine', got {lr_schedule!r}")
        if lr_schedule == "cosine" and not total_rl_updates:
            raise RlobjInputError("total_rl_updates: required (> 0) with lr_schedule='cosine'")
        for name in ("group_size", "max_new_tokens", "ppo_epochs", "eval_samples"):
            value = getattr(self.hparams, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlobjInputError(f"{name}: expected an int >= 1, got {value!r}")
        for name in ("mini_batch_size", "micro_batch_size"):
            value = getattr(self.hparams, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise RlobjInputError(f"{name}: expected an int >= 1 or null, got {value!r}")
        for k in eval_k:
            if not 1 <= int(k) <= eval_samples:
                raise RlobjInputError(f"eval_k: every k must lie in [1, eval_samples={eval_samples}], got {k}")
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, top_k=top_k)
        self.verifier = verifier if verifier is not None else ExactAnswer()
        if not callable(self.verifier):
            raise RlobjInputError(f"verifier: expected a callable verifier(completion, record), got {self.verifier!r}")
        # --- run state (checkpointed) --------------------------------------------------------
        self.term_state: dict[str, Any] = {}
        self.data_position = 0  # index of the next batch of the data stream
        self.rl_updates = 0
        self.eval_history: list[tuple[str, int, dict[str, float]]] = []
        self.policy = None
        self.tokenizer = None
        self.engine = None
        self.strategy_engine = None
        self.reference = None
        self._pool = None
        self._restored_rng = None

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        """Load or build the policy, tokenizer and engine (idempotent; called by ``configure_model``)."""
        if self.policy is not None:
            return
        hp = self.hparams
        dtype = _DTYPES[hp.dtype]
        if hp.model_path is None:
            from rlobj.rollout import build_tiny_qwen2

            self.tokenizer = build_char_tokenizer(hp.tokenizer_chars)
            kwargs = dict(hp.tiny_model or {})
            self.policy = build_tiny_qwen2(
                vocab_size=len(self.tokenizer), eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id, dtype=dtype, **kwargs)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(hp.model_path)
            self.policy = AutoModelForCausalLM.from_pretrained(hp.model_path, dtype=dtype)
        self.policy.train()

    def configure_model(self) -> None:
        self.build()

    def _ensure_engine(self):
        if self.engine is not None:
            return self.engine
        hp = self.hparams
        args = dict(hp.engine_args or {})
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        if hp.engine == "hf":
            self.engine = HFEngine(self.policy, eos_token_id=eos, pad_token_id=pad, **args)
        else:
            from rlobj.rollout import VLLMEngine, save_model_directory

            path = hp.model_path
            if path is None:
                root = self.trainer.default_root_dir if self._trainer is not None else "."
                path = str(save_model_directory(self.policy, self.tokenizer, f"{root}/engine_model"))
            self.engine = VLLMEngine(path, eos_token_id=eos, pad_token_id=pad, dtype=hp.dtype, **args)
        return self.engine

    def _ensure_pool(self):
        if self.hparams.verifier_workers > 0 and self._pool is None:
            from rlobj.verifiers import VerifierPool

            self._pool = VerifierPool(workers=self.hparams.verifier_workers,
                                      timeout=self.hparams.verifier_timeout)
        return self._pool

    def teardown(self, stage: str) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(self.policy.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.AdamW(self.policy.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                 betas=tuple(hp.betas))

    def rl_lr(self, update: int) -> float:
        """Learning rate of RL optimizer step ``update`` (0-based): linear warm-up, then constant or cosine."""
        hp = self.hparams
        factor = 1.0
        if hp.lr_warmup_steps > 0 and update < hp.lr_warmup_steps:
            factor = (update + 1) / hp.lr_warmup_steps
        elif hp.lr_schedule == "cosine":
            progress = min(max(update - hp.lr_warmup_steps, 0) / max(hp.total_rl_updates - hp.lr_warmup_steps, 1), 1.0)
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return hp.lr * factor

    @property
    def world_size(self) -> int:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size()
        return 1

    @property
    def rank(self) -> int:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank()
        return 0

    def _optimizer(self):
        if self._trainer is not None:
            return self.optimizers()
        if not hasattr(self, "_standalone_optimizer"):
            self._standalone_optimizer = self.configure_optimizers()
        return self._standalone_optimizer

    def _backward(self, loss: Tensor) -> None:
        if not bool(torch.isfinite(loss.detach())):
            raise RlobjInputError(
                f"loss: got a non-finite value ({float(loss.detach())}) at data position "
                f"{self.data_position}; training stops instead of continuing on NaN")
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _step(self, lr: float) -> float:
        optimizer = self._optimizer()
        for group in optimizer.param_groups:
            group["lr"] = lr
        limit = self.hparams.grad_clip if self.hparams.grad_clip is not None else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), limit))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    # ------------------------------------------------------------------ text <-> ids
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode_responses(self, rollout: RolloutBatch) -> list[str]:
        eos = self.tokenizer.eos_token_id
        texts = []
        for ids, mask in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist()):
            kept = [t for t, m in zip(ids, mask) if m and t != eos]
            texts.append(self.tokenizer.decode(kept, skip_special_tokens=True))
        return texts

    def _sampling(self, step: int, salt: int = 0, **changes) -> SamplingConfig:
        seed = (self.hparams.seed * 1_000_003 + step * 9_973 + salt) * 64 + self.rank
        return SamplingConfig(**{**self.sampling.__dict__, "seed": seed % (2**62), **changes})

    # ------------------------------------------------------------------ the steps
    def training_step(self, batch: dict, batch_idx: int) -> None:
        step = int(batch["step"])
        records = batch["records"]
        if step < self.hparams.warmup_sft_steps:
            metrics = self.sft_update(records)
            metrics["phase"] = 0.0
        else:
            if (step == self.hparams.warmup_sft_steps and self.hparams.eval_at_warmup_end
                    and not any(label == "before RL" for label, _, _ in self.eval_history)):
                self.run_evaluation("before RL")
            metrics = self.rl_update(records, step)
            metrics["phase"] = 1.0
        self.data_position = step + 1
        metrics["data_position"] = float(self.data_position)
        self.log_dict({k: float(v) for k, v in metrics.items()}, on_step=True, prog_bar=False,
                      batch_size=len(records), sync_dist=False)
        self.last_metrics = metrics

    def sft_update(self, records: list[dict]) -> dict[str, float]:
        """One optimizer step of ``sft_objective`` on the records' demonstrations."""
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        prompts = [self.encode(r["prompt"]) for r in records]
        responses = [self.encode(str(r["completion"])) + [eos] for r in records]
        prompt_ids, prompt_mask = left_pad_prompts(prompts, pad)
        width = max(len(r) for r in responses)
        response_ids = torch.full((len(responses), width), pad, dtype=torch.long)
        response_mask = torch.zeros((len(responses), width), dtype=torch.bool)
        for row, ids in enumerate(responses):
            response_ids[row, :len(ids)] = torch.tensor(ids)
            response_mask[row, :len(ids)] = True
        device = self.device_of_policy()
        tensors = [t.to(device) for t in (prompt_ids, prompt_mask, response_ids, response_mask)]
        micro = self.hparams.micro_batch_size or len(records)
        chunks = [slice(i, i + micro) for i in range(0, len(records), micro)]
        normalizer = Normalizer.from_masks([tensors[3][c] for c in chunks])
        sums: dict[str, float] = defaultdict(float)
        self.policy.train()
        for chunk in chunks:
            logp, _ = token_logprobs(self.policy, *(t[chunk] for t in tensors))
            state = self.sft_objective.prepare(logp=logp, mask=tensors[3][chunk])
            out = self.sft_objective.loss(state, normalizer=normalizer)
            self._backward(out.loss)
            for key, value in out.metrics.items():
                sums[key] += float(value) / len(chunks)
        sums["grad_norm"] = self._step(self.hparams.sft_lr or self.hparams.lr)
        sums["lr"] = self.hparams.sft_lr or self.hparams.lr
        return dict(sums)

    def device_of_policy(self) -> torch.device:
        return next(self.policy.parameters()).device

    def rl_update(self, records: list[dict], step: int) -> dict[str, float]:
        """Sample, score and optimise on one batch of prompts; returns the step's metrics."""
        prompts = [self.encode(r["prompt"]) for r in records]
        start = time.perf_counter()
        rollout, samples, strategy_metrics = self._rollout(prompts, records, step)
        rollout = rollout.to(self.device_of_policy())
        generate_seconds = time.perf_counter() - start
        if len(rollout) == 0:  # segments: nothing complete yet; no update this step
            strategy_metrics["time/generate_s"] = generate_seconds
            return strategy_metrics
        completions = self.decode_responses(rollout)
        rewards, verifier_metrics = score_completions(self.verifier, completions, samples, self._ensure_pool())
        rewards = torch.tensor(rewards, dtype=torch.float32, device=rollout.response_ids.device)
        metrics = self.update_on_rollout(rollout, rewards)
        metrics.update(verifier_metrics)
        metrics.update(strategy_metrics)
        generated = float(rollout.response_mask.sum())
        metrics["throughput/generate_tokens_per_s"] = generated / max(generate_seconds, 1e-9)
        metrics["time/generate_s"] = generate_seconds
        return metrics

    def _ensure_strategy_engine(self):
        """The engine RL batches are sampled with: the base engine, or LATR / segments around it."""
        if self.strategy_engine is not None:
            return self.strategy_engine
        base = self._ensure_engine()
        option = self.rollout_option
        if option.strategy == "latr":
            from rlobj.rollout.tree import LATREngine

            self.strategy_engine = LATREngine(base, option.latr)
        elif option.strategy == "segments":
            from rlobj.rollout.segments import SegmentRollout

            self.strategy_engine = SegmentRollout(base, option.segment_tokens, release=option.release)
        else:
            self.strategy_engine = base
        return self.strategy_engine

    def _rollout(self, prompts: list[list[int]], records: list[dict], step: int):
        """Sample one RL batch with the configured strategy.

        Returns ``(rollout, samples, metrics)``: ``samples[b]`` is the record row ``b`` answers.
        Segment rollouts return the groups completed at this step (possibly admitted at earlier
        steps), with group ids renumbered 0..k-1.
        """
        option = self.rollout_option
        engine = self._ensure_strategy_engine()
        sampling = self._sampling(step)
        n = self.hparams.group_size
        metrics: dict[str, float] = {}
        if option.strategy == "ead":
            schedule = option.schedule.at_step(self.rl_updates)
            sampling = SamplingConfig(**{**sampling.__dict__, "temperature_schedule": schedule})
            metrics.update({"rollout/ead_step": float(self.rl_updates), "rollout/ead_decay": schedule.decay})
        if option.strategy == "latr":
            rollout = engine.generate(prompts, n=n, sampling=sampling, step=self.rl_updates)
            info = engine.last_info
            metrics.update({"rollout/latr_eta": float(info.eta),
                            "rollout/latr_tree_fraction": sum(s == "tree" for s in info.source) / max(len(info.source), 1),
                            "rollout/latr_pruned": float(sum(info.pruned)),
                            "rollout/latr_tree_steps": float(info.tree_steps)})
            return rollout, [records[g] for g in rollout.group_ids.tolist()], metrics
        if option.strategy == "segments":
            rollout = engine.generate(prompts, n=n, sampling=sampling, keys=list(records))
            samples = list(engine.last_keys)
            if len(rollout):
                _, inverse = torch.unique(rollout.group_ids, return_inverse=True)
                rollout = dataclasses.replace(rollout, group_ids=inverse.to(rollout.group_ids.dtype))
            metrics.update({"rollout/released_samples": float(len(rollout)),
                            "rollout/released_groups": float(len(rollout) // n),
                            "rollout/pending_samples": float(engine.pending)})
            return rollout, samples, metrics
        rollout = engine.generate(prompts, n=n, sampling=sampling)
        if option.strategy == "ead":
            lengths = rollout.response_mask.sum(-1)
            positions = torch.arange(rollout.response_mask.shape[1])
            tau = schedule.temperatures(positions).float()
            valid = rollout.response_mask.cpu()
            metrics["rollout/ead_tau_mean"] = float((tau.expand_as(valid) * valid).sum() / max(float(lengths.sum()), 1.0))
        return rollout, [records[g] for g in rollout.group_ids.tolist()], metrics

    def _forward(self, rollout: RolloutBatch, rows, with_entropy: bool, model=None):
        model = self.policy if model is None else model
        return token_logprobs(model, rollout.prompt_ids[rows], rollout.prompt_mask[rows],
                              rollout.response_ids[rows], rollout.response_mask[rows],
                              temperature=self.sampling.temperature, with_entropy=with_entropy)

    def _view(self, model, rollout: RolloutBatch, rows, temperature: float):
        return vocab_view(model, rollout.prompt_ids[rows], rollout.prompt_mask[rows],
                          rollout.response_ids[rows], rollout.response_mask[rows], temperature=temperature)

    def _proxy_logprobs(self, rollout: RolloutBatch, tau: float, mode: str) -> Tensor:
        r"""Lp-Reg's $\log\pi_\text{proxy}(y_t)$ under the current (= old) policy at temperature 1, no grad."""
        micro = self.hparams.micro_batch_size or len(rollout)
        pieces = []
        with torch.no_grad():
            for i in range(0, len(rollout), micro):
                rows = slice(i, i + micro)
                mask = rollout.response_mask[rows].bool()
                view = self._view(self.policy, rollout, rows, 1.0)
                tokens = torch.where(mask, rollout.response_ids[rows], 0)
                proxy = view.proxy_logp(tokens, tau, mode, mask=mask)
                pieces.append(torch.where(mask, proxy, torch.zeros((), dtype=proxy.dtype)).float())
        return torch.cat(pieces)

    def _perturbed(self, rollout: RolloutBatch, with_vocab: bool, salt: int, rows=None):
        """``perception_forward`` of the current policy under ``self.perception`` (no grad).

        Without ``rows``: the log-probs of the whole batch (in micro-batch chunks); with ``rows``:
        the vocab view of those rows. Draws depend on (perception seed, data position, ``salt``).
        """
        from rlobj.rollout.perception import perception_forward

        def run(part, step):
            with torch.no_grad():
                return perception_forward(
                    self.policy, rollout.prompt_ids[part], rollout.prompt_mask[part], rollout.response_ids[part],
                    rollout.response_mask[part], self.perception, temperature=self.sampling.temperature,
                    step=step, with_logp=not with_vocab, with_vocab=with_vocab)

        base = self.data_position * 65_536
        if rows is not None:
            return run(rows, base + salt).vocab
        micro = self.hparams.micro_batch_size or len(rollout)
        return torch.cat([run(slice(i, i + micro), base + salt + 4096 + i).logp.float()
                          for i in range(0, len(rollout), micro)])

    def _no_grad_logprobs(self, rollout: RolloutBatch, model) -> Tensor:
        micro = self.hparams.micro_batch_size or len(rollout)
        pieces = []
        with torch.no_grad():
            for i in range(0, len(rollout), micro):
                pieces.append(self._forward(rollout, slice(i, i + micro), False, model)[0])
        return torch.cat(pieces)

    def update_on_rollout(self, rollout: RolloutBatch, rewards: Tensor, extras: dict | None = None) -> dict[str, float]:
        r"""The optimisation part of an RL step, on a given rollout batch and its rewards.

        Recomputes ``logp_old`` (and ``logp_ref`` when the objective reads it), prepares the
        objective on the whole batch, then runs ``ppo_epochs`` x mini-batches x micro-batches
        with one global normaliser per mini-batch. Returns the mean of every objective metric
        over micro-batches plus reward, length, entropy, KL(old||new), mismatch and throughput.
        """
        hp = self.hparams
        start = time.perf_counter()
        mask = rollout.response_mask
        batch = len(rollout)
        mini = hp.mini_batch_size or batch
        micro = hp.micro_batch_size or mini
        self.policy.train()
        # With one epoch and one mini-batch, the weights do not change before the only forward
        # with gradient, so logp_old is that forward's detached value: no extra pass needed,
        # unless a batch-stage term (e.g. a KL folded into the reward) reads it before.
        batch_reads = frozenset().union(*(t.slots_read() for t in self.objective.chain.terms
                                          if t.stage == "batch"))
        # EAD and segment rollouts: logp_rollout is not the current policy at the plain
        # temperature (annealed temperatures / older weights), so logp_old is recomputed.
        reuse = (hp.ppo_epochs == 1 and mini >= batch
                 and self.rollout_option.strategy not in ("ead", "segments")
                 and not batch_reads & {"logp", "logp_old", "entropy", "vocab"})
        logp_old = rollout.logp_rollout if reuse else self._no_grad_logprobs(rollout, self.policy)
        fields = dict(logp=logp_old, logp_old=logp_old, mask=mask, rewards=rewards,
                      group_ids=rollout.group_ids,
                      extras={"logp_rollout": rollout.logp_rollout, "truncated": rollout.truncated,
                              **(extras or {})})
        needs = self.needs
        ref_views = bool(needs & {"extras:vocab_ref", "extras:vocab_init"})
        if "logp_ref" in needs or hp.track_ref_kl or ref_views:
            if self.reference is None:
                self._set_reference(copy.deepcopy(self.policy).requires_grad_(False))
        if "logp_ref" in needs or hp.track_ref_kl:
            fields["logp_ref"] = self._no_grad_logprobs(rollout, self.reference)
        given = fields["extras"]
        if ("extras:logp_proxy" in needs and self._proxy_settings is not None and "logp_proxy" not in given
                and not {"vocab_old", "tokens"} <= given.keys()):
            given["logp_proxy"] = self._proxy_logprobs(rollout, *self._proxy_settings)
        if "extras:logp_perturbed" in needs and "logp_perturbed" not in given:
            given["logp_perturbed"] = self._perturbed(rollout, with_vocab=False, salt=0)
        prepared = self.objective.prepare(**fields)
        entropy_grad = "entropy" in needs
        # A subclass that overrides _forward supplies its own vocab (e.g. examples/reproductions'
        # VocabModule, written before this hook): keep calling its _forward then.
        with_vocab = "vocab" in needs and type(self)._forward is RLModule._forward
        perturbed_views = "extras:vocab_perturbed" in needs and "vocab_perturbed" not in given
        sums: dict[str, float] = defaultdict(float)
        count = 0
        norms = []
        mismatch = torch.zeros((), dtype=torch.float64)
        for epoch in range(hp.ppo_epochs):
            if hp.shuffle_minibatches:
                generator = torch.Generator().manual_seed(hp.seed * 7919 + self.rl_updates * 31 + epoch)
                order = torch.randperm(batch, generator=generator)
            else:
                order = torch.arange(batch)
            for m0 in range(0, batch, mini):
                mini_rows = order[m0:m0 + mini].to(mask.device)
                micro_rows = [mini_rows[i:i + micro] for i in range(0, len(mini_rows), micro)]
                states = [_take(prepared, rows) for rows in micro_rows]
                normalizer = Normalizer.from_masks([s.mask for s in states])
                new_term_state = self.term_state
                for micro_index, (rows, state) in enumerate(zip(micro_rows, states)):
                    view = None
                    if with_vocab:
                        view = self._view(self.policy, rollout, rows, self.sampling.temperature)
                        logp, entropy = view_logprobs(view, rollout.response_ids[rows], rollout.response_mask[rows])
                    else:
                        logp, entropy = self._forward(rollout, rows, True)
                    if not entropy_grad:
                        entropy = entropy.detach()
                    changes = dict(logp=logp, entropy=entropy, cache={})
                    if view is not None:
                        changes["vocab"] = view
                    micro_extras = {}
                    if ref_views:
                        with torch.no_grad():
                            ref = self._view(self.reference, rollout, rows, self.sampling.temperature)
                        micro_extras.update(vocab_ref=ref, vocab_init=ref)
                    if perturbed_views:
                        salt = 1 + (epoch * batch + m0) + micro_index
                        micro_extras["vocab_perturbed"] = self._perturbed(rollout, with_vocab=True, salt=salt,
                                                                          rows=rows)
                    if micro_extras:
                        changes["extras"] = {**state.extras, **{k: v for k, v in micro_extras.items()
                                                                if k not in state.extras}}
                    if reuse:
                        changes["logp_old"] = logp.detach()
                    state = state.update(**changes)
                    out = self.objective.loss(state, normalizer=normalizer, term_state=self.term_state)
                    self._backward(out.loss)
                    new_term_state = out.term_state
                    for key, value in out.metrics.items():
                        sums[key] += float(value)
                    valid = state.mask
                    n_valid = max(float(valid.sum()), 1.0)
                    if reuse:
                        mismatch += float((rollout.logp_rollout[rows] - logp.detach()).abs()[valid].sum())
                    log_ratio = (logp.detach() - state.logp_old)[valid]
                    sums["kl/old_k3"] += float((torch.expm1(-log_ratio) + log_ratio).sum() / n_valid)
                    if "entropy" not in out.metrics:  # a term (entropy_bonus, ...) already reported it
                        sums["entropy"] += float(entropy.detach()[valid].sum() / n_valid)
                    count += 1
                lr = self.rl_lr(self.rl_updates)
                norms.append(self._step(lr))
                self.term_state = dict(new_term_state)
                self.rl_updates += 1
        metrics = {key: value / max(count, 1) for key, value in sums.items()}
        self.push_weights()
        seconds = time.perf_counter() - start
        lengths = mask.sum(-1).float()
        valid = mask
        metrics.update({
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "pass_rate": float((rewards >= hp.pass_threshold).float().mean()),
            "response/length_mean": float(lengths.mean()),
            "response/length_max": float(lengths.max()),
            "response/truncated_fraction": float(rollout.truncated.float().mean()),
            "mismatch/logp_abs": (float(mismatch) if reuse else float((rollout.logp_rollout - logp_old).abs()[valid].sum()))
            / max(float(valid.sum()), 1.0),
            "grad_norm": float(np.mean(norms)) if norms else float("nan"),
            "lr": self.rl_lr(max(self.rl_updates - 1, 0)),
            "throughput/update_tokens_per_s": float(valid.sum()) * hp.ppo_epochs / max(seconds, 1e-9),
            "time/update_s": seconds,
        })
        if "logp_ref" in fields:
            log_ratio = (fields["logp_ref"] - prepared.logp_old)[valid]
            metrics["kl/ref_k3"] = float((torch.expm1(log_ratio) - log_ratio).mean())
        return metrics

    def push_weights(self) -> None:
        """Load the policy's current weights into the engine (Hugging Face parameter names).

        Under FSDP the full parameters are gathered first (``summon_full_params``) and the
        wrapper prefixes are stripped from the names. (The FSDP path is not exercised by the CPU
        test suite.)
        """
        if self.engine is None:
            return
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        except ImportError:  # pragma: no cover - torch without distributed
            FSDP = None
        if FSDP is not None and any(isinstance(m, FSDP) for m in self.policy.modules()):
            with FSDP.summon_full_params(self.policy, writeback=False):
                named = [(name.replace("_fsdp_wrapped_module.", ""), p.detach())
                         for name, p in self.policy.named_parameters()]
                self.engine.update_weights(named)
            return
        self.engine.update_weights(self.policy.named_parameters())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, records: list[dict], samples_out: list | None = None) -> dict[str, float]:
        """Sample ``eval_samples`` answers per record; unbiased pass@k and maj@k for ``eval_k``.

        Counts are summed over data-parallel ranks (each rank evaluates its own records).

        Args:
            records: evaluation records (``prompt``, and what the verifier reads).
            samples_out: if a list, one dict per record is appended to it (this rank's records):
                ``prompt``, ``responses`` (the ``n`` decoded samples), ``correct`` (per sample,
                reward >= ``pass_threshold``), ``n`` and ``c`` (samples, correct samples): what
                per-problem solve-rate tables and CoT-pass@k need.
        """
        from rlobj.eval.passk import maj_at_k, pass_at_k

        hp = self.hparams
        engine = self._ensure_engine()
        n = hp.eval_samples
        sampling = self._sampling(0, salt=1_000_000_007, temperature=hp.eval_temperature,
                                  max_new_tokens=hp.eval_max_new_tokens or hp.max_new_tokens)
        sampling = SamplingConfig(**{**sampling.__dict__, "seed": hp.seed * 17 + 5 + self.rank})
        sums = torch.zeros(2 * len(hp.eval_k) + 2, dtype=torch.float64)
        if records:
            rollout = engine.generate([self.encode(r["prompt"]) for r in records], n=n, sampling=sampling)
            completions = self.decode_responses(rollout)
            samples = [records[g] for g in rollout.group_ids.tolist()]
            rewards, _ = score_completions(self.verifier, completions, samples, self._ensure_pool())
            for index in range(len(records)):
                rows = range(index * n, (index + 1) * n)
                correct = [rewards[r] >= hp.pass_threshold for r in rows]
                answers = [completions[r].strip() or None for r in rows]
                for j, k in enumerate(hp.eval_k):
                    sums[j] += pass_at_k(n, sum(correct), int(k))
                    sums[len(hp.eval_k) + j] += maj_at_k(answers[:k], correct[:k])
                sums[-2] += sum(correct) / n
                if samples_out is not None:
                    samples_out.append({"prompt": records[index]["prompt"],
                                        "responses": [completions[r] for r in rows],
                                        "correct": correct, "n": n, "c": int(sum(correct))})
            sums[-1] = len(records)
        if self.world_size > 1:
            torch.distributed.all_reduce(sums)
        total = max(float(sums[-1]), 1.0)
        result = {f"pass@{k}": float(sums[j]) / total for j, k in enumerate(hp.eval_k)}
        result.update({f"maj@{k}": float(sums[len(hp.eval_k) + j]) / total for j, k in enumerate(hp.eval_k) if k > 1})
        result["mean_reward_rate"] = float(sums[-2]) / total
        return result

    def run_evaluation(self, label: str) -> dict[str, float]:
        """Evaluate on the DataModule's evaluation records and remember the row under ``label``."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "eval_records"):
            return {}
        result = self.evaluate(datamodule.eval_records(self.rank, self.world_size))
        self.eval_history.append((label, self.data_position, result))
        if self._trainer is not None:
            for logger in self.trainer.loggers:
                logger.log_metrics({f"eval/{k}": v for k, v in result.items()}, step=self.trainer.global_step)
        return result

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        result = self.evaluate(batch["records"])
        self.log_dict({f"val/{k}": v for k, v in result.items()}, batch_size=len(batch["records"]))

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rlobj"] = {
            "term_state": self.term_state,
            "data_position": self.data_position,
            "rl_updates": self.rl_updates,
            "eval_history": self.eval_history,
            "rng": _rng_state(),
            "reference": None if self.reference is None else self.reference.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("rlobj")
        if saved is None:
            return
        self.build()
        self.term_state = dict(saved["term_state"])
        self.data_position = int(saved["data_position"])
        self.rl_updates = int(saved["rl_updates"])
        self.eval_history = list(saved["eval_history"])
        if saved.get("reference") is not None:
            self._set_reference(copy.deepcopy(self.policy).requires_grad_(False))
            self.reference.load_state_dict(saved["reference"])
        _set_rng_state(saved["rng"])

    def _set_reference(self, model) -> None:
        # Not a registered submodule: the frozen reference stays out of the optimizer and of
        # state_dict (it is saved separately in on_save_checkpoint).
        object.__setattr__(self, "reference", model)


def _rng_state() -> dict:
    """Torch, Python and NumPy random states as plain tensors / ints (weights_only-loadable)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                      "has_gauss": int(has_gauss), "cached": float(cached)}}


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    python = rng["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))
    numpy = rng["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))


def _proxy_settings(objective: Objective) -> tuple[float, str] | None:
    """``(tau, mode)`` of the objective's term(s) reading ``extras:logp_proxy`` (``lp_reg``), or None."""
    found = {(float(t.tau), str(t.mode)) for t in objective.chain.terms
             if "extras:logp_proxy" in t.slots_read() and hasattr(t, "tau") and hasattr(t, "mode")}
    if len(found) > 1:
        raise RlobjInputError(f"objective: terms reading extras['logp_proxy'] disagree on (tau, mode): {sorted(found)}; "
                              "the trainer computes one proxy per rollout batch")
    return found.pop() if found else None


def _take(state, rows: Tensor):
    """Rows ``rows`` (any order) of a prepared state: a micro-batch."""
    from rlobj.algebra.objective import _slice_state

    if len(rows) and bool((rows[1:] - rows[:-1] == 1).all()):
        return _slice_state(state, slice(int(rows[0]), int(rows[-1]) + 1))
    index = rows.long()
    batch = state.batch_size

    def cut(value):
        if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == batch:
            return value[index]
        return value

    changes = {name: cut(getattr(state, name)) for name in (
        "logp", "mask", "logp_old", "logp_ref", "rewards", "group_ids", "token_rewards",
        "advantages", "entropy")}
    changes["extras"] = {k: cut(v) for k, v in state.extras.items()}
    return state.update(**changes, cache={})
