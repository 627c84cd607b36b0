r"""The LightningModule: it orchestrates the pipeline stages of DESIGN.md section 6.

One ``training_step`` consumes one batch of prompts from the DataModule (``{"step": k,
"records": [...]}``). During the supervised warm-up (the first ``warmup_sft_steps`` batches) the
demonstrations are scored under the policy and ``sft_objective`` takes one optimizer step.
Afterwards each step runs the RL pipeline:

1. **sampler** (:mod:`rlobj.train.samplers`): records -> :class:`~rlobj.train.stages.Batch`;
2. **scorer** (:mod:`rlobj.train.scorers`): one :class:`~rlobj.train.stages.Score` per row;
3. **transforms** (:mod:`rlobj.train.transforms`): filters and refills, in the configured order;
4. **providers** (:mod:`rlobj.train.providers`): every input the objective's terms read;
5. the objective's batch stage (``Objective.prepare``) on the global batch (gathered across
   data-parallel ranks when distributed), then the **update** (:func:`rlobj.train.update.run_update`);
6. **sync** (:func:`rlobj.train.sync.push_weights`) of the new weights into the engine.

The module holds no loss math and no paper's branch: a new method adds a sampler, a transform,
a scorer or a provider.
"""

import dataclasses
import math
import time
from typing import Any

import lightning as L
import torch
from torch import Tensor

from rlobj.algebra import Objective
from rlobj.algebra.objective import ROW_FIELDS
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.registry import build_objective
from rlobj.rollout import HFEngine, RolloutBatch, SamplingConfig
from rlobj.train.distributed import gather_rows, local_rows, row_offset
from rlobj.train.metrics import batch_metrics
from rlobj.train.models import Models
from rlobj.train.providers import build_providers, resolve_providers
from rlobj.train.run_state import rng_state, set_rng_state
from rlobj.train.samplers import build_sampler
from rlobj.train.scorers import VerifierScorer, score_completions
from rlobj.train.stages import Batch, Score, Scorer, StepContext
from rlobj.train.sync import push_weights
from rlobj.train.tasks import ARITHMETIC_CHARS, build_char_tokenizer
from rlobj.train.update import UpdatePlan, run_update

__all__ = ["RLModule", "build_train_objective", "score_completions"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "float64": torch.float64}  # float64: the law checks


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


def _plain(spec):
    """A config value as plain data for hparams (checkpoints load with weights_only=True)."""
    if spec is None or isinstance(spec, (str, int, float, bool)):
        return spec
    if isinstance(spec, (list, tuple)):
        return [_plain(s) for s in spec]
    if isinstance(spec, dict):
        return {str(k): _plain(v) for k, v in spec.items()}
    return repr(spec)


class RLModule(L.LightningModule):
    r"""Train a causal LM with any objective of the algebra through the pipeline stages.

    Args:
        objective: the RL objective: a registry name (``"grpo"``), a YAML list of terms
            (``[group_zscore, {clip_ratio: {eps_high: 0.28}}, token_mean]``; a user's term by
            dotted path: ``{mypkg.terms.length_cost: {coef: 0.01}}``), or a term / chain.
        sft_objective: objective of the supervised warm-up phase. Default ``"sft"``.
        model_path: a local Hugging Face model directory; None builds the tiny Qwen2 of
            :func:`rlobj.rollout.build_tiny_qwen2` from ``tiny_model`` and the character tokenizer.
        tiny_model: keyword arguments of ``build_tiny_qwen2`` (hidden_size, layers, heads, seed).
        tokenizer_chars: characters of the character tokenizer (tiny model only).
        dtype: parameter dtype (``float32``, ``bfloat16``, ``float16``).
        group_size: responses sampled per prompt ($G$). Default 8.
        max_new_tokens: response budget; with ``temperature``, ``top_p`` and ``top_k`` the
            sampling settings (``SamplingConfig``).
        engine: ``"hf"`` (default, shares the policy module) or ``"vllm"``.
        engine_args: keyword arguments of the engine.
        sampler: the sampler stage (:mod:`rlobj.train.samplers`): ``plain`` (default), ``{ead:
            {schedule: ...}}``, ``{latr: {config: ...}}``, ``{segments: {segment_tokens: S}}``,
            ``{broad: {chunk_size: C}}``, or a user's class by dotted path.
        scorer: the scorer stage; default :class:`~rlobj.train.scorers.VerifierScorer` of
            ``verifier`` (default :class:`~rlobj.train.tasks.ExactAnswer`) with
            ``verifier_workers`` processes and ``verifier_timeout`` seconds per item.
        transforms: batch transforms applied in order after scoring (:mod:`rlobj.train.transforms`):
            names, ``{name: {args}}``, dotted paths or instances.
        providers: providers that replace the defaults or supply a user term's input
            (:mod:`rlobj.train.providers`).
        warmup_sft_steps: number of leading batches trained with ``sft_objective``.
        optimizer: ``adamw`` or ``sgd``; with ``lr``, ``sft_lr``, ``weight_decay``, ``betas``,
            ``grad_clip``, ``lr_warmup_steps``, ``lr_schedule`` and ``total_rl_updates`` it sets
            the optimizer and its schedule.
        ppo_epochs: passes over each rollout batch; with ``mini_batch_size``,
            ``micro_batch_size`` and ``shuffle_minibatches`` it forms the update plan
            (:class:`~rlobj.train.update.UpdatePlan`).
        eval_samples: samples per evaluation record; ``eval_k``, ``eval_temperature``,
            ``eval_max_new_tokens``, ``eval_at_warmup_end`` and ``pass_threshold`` set the
            pass@k / maj@k evaluation.
        track_ref_kl: log ``kl/ref_k3`` (KL to the policy at the first RL step) even when the
            objective does not read ``logp_ref``.
        seed: seed of sampling and shuffling (combined with the step index and rank).
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
        sampler: Any = None,
        scorer: Any = None,
        transforms: list[Any] | None = None,
        providers: list[Any] | None = None,
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
        seed: int = 0,
    ):
        super().__init__()
        self.automatic_optimization = False
        stages = ("verifier", "objective", "sft_objective", "sampler", "scorer", "transforms", "providers")
        self.save_hyperparameters(ignore=list(stages))
        for name, spec in (("objective", objective), ("sft_objective", sft_objective), ("sampler", sampler),
                           ("transforms", transforms), ("providers", providers)):
            self.hparams[name] = _plain(spec)
        # --- validate everything cheap before any model is built -------------------------
        self.objective = _objective(objective, "objective")
        self.sft_objective = _objective(sft_objective, "sft_objective")
        if dtype not in _DTYPES:
            raise RlobjInputError(f"dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
        if engine not in ("hf", "vllm"):
            raise RlobjInputError(f"engine: expected 'hf' or 'vllm', got {engine!r}")
        if optimizer not in ("adamw", "sgd"):
            raise RlobjInputError(f"optimizer: expected 'adamw' or 'sgd', got {optimizer!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise RlobjInputError(f"lr_schedule: expected 'constant' or 'cosine', got {lr_schedule!r}")
        if lr_schedule == "cosine" and not total_rl_updates:
            raise RlobjInputError("total_rl_updates: required (> 0) with lr_schedule='cosine'")
        for name in ("group_size", "max_new_tokens", "eval_samples"):
            value = getattr(self.hparams, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlobjInputError(f"{name}: expected an int >= 1, got {value!r}")
        self.plan = UpdatePlan(ppo_epochs=ppo_epochs, mini_batch_size=mini_batch_size,
                               micro_batch_size=micro_batch_size, shuffle=shuffle_minibatches, seed=seed)
        for k in eval_k:
            if not 1 <= int(k) <= eval_samples:
                raise RlobjInputError(f"eval_k: every k must lie in [1, eval_samples={eval_samples}], got {k}")
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                       top_p=top_p, top_k=top_k)
        # --- the stages ----------------------------------------------------------------------
        self.sampler = build_sampler(sampler)
        if scorer is not None and verifier is not None:
            raise RlobjInputError("scorer and verifier: give one (a verifier is the default scorer's reward function)")
        if scorer is not None and not isinstance(scorer, Scorer):
            raise RlobjInputError(f"scorer: expected a rlobj.train.stages.Scorer, got {scorer!r}")
        self.scorer = scorer or VerifierScorer(verifier, workers=verifier_workers, timeout=verifier_timeout)
        from rlobj.train.transforms import build_transforms

        self.transforms = build_transforms(transforms or [])
        also = ("logp_ref",) if track_ref_kl else ()
        self.providers = resolve_providers(self.objective.chain.terms, build_providers(providers), also=also)
        terms = self.objective.chain.terms
        self.loss_reads = frozenset().union(*(t.slots_read() for t in terms if t.stage == "loss"))
        self.batch_reads = frozenset().union(*(t.slots_read() for t in terms if t.stage == "batch"))
        # --- run state (checkpointed) --------------------------------------------------------
        self.term_state: dict[str, Any] = {}
        self.data_position = 0  # index of the next batch of the data stream
        self.rl_updates = 0
        self.eval_history: list[tuple[str, int, dict[str, float]]] = []
        self.policy = None
        self.tokenizer = None
        self.engine = None
        self.models: Models | None = None

    @property
    def verifier(self):
        return getattr(self.scorer, "verifier", None)

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        """Load or build the policy and tokenizer (idempotent; called by ``configure_model``)."""
        if self.policy is not None:
            return
        hp = self.hparams
        dtype = _DTYPES[hp.dtype]
        if hp.model_path is None:
            from rlobj.rollout import build_tiny_qwen2

            self.tokenizer = build_char_tokenizer(hp.tokenizer_chars)
            self.policy = build_tiny_qwen2(
                vocab_size=len(self.tokenizer), eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id, dtype=dtype, **dict(hp.tiny_model or {}))
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(hp.model_path)
            self.policy = AutoModelForCausalLM.from_pretrained(hp.model_path, dtype=dtype)
        self.policy.train()
        self.models = Models(self.policy, temperature=hp.temperature, micro_batch_size=hp.micro_batch_size)

    def configure_model(self) -> None:
        self.build()

    @property
    def reference(self):
        """The frozen reference policy, or None before anything needed it."""
        return self.models.reference if self.models is not None and self.models.has_reference else None

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
        return self.scorer.pool() if hasattr(self.scorer, "pool") else None

    def teardown(self, stage: str) -> None:
        self.scorer.close()

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

    def context(self, step: int) -> StepContext:
        """The :class:`~rlobj.train.stages.StepContext` of data step ``step``."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ctx = StepContext(step=step, rl_updates=self.rl_updates, seed=self.hparams.seed, rank=self.rank,
                          world_size=self.world_size, group_size=self.hparams.group_size,
                          engine=self._ensure_engine(), models=self.models, sample=None, score=None,
                          encode=self.encode, decode=self.decode_responses, pad_token_id=pad,
                          sampling=self._sampling(step))

        def sample(records, n=None, salt=0, **changes):
            return self.sampler.sample(ctx, list(records), n or self.hparams.group_size, salt, **changes)

        def score(batch):
            batch.scores = self.scorer(ctx, batch)
            return batch

        ctx.sample, ctx.score = sample, score
        return ctx

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
        values = {k: float(v) for k, v in metrics.items()}
        # callback_metrics only: Lightning's logged rows keep every key logged earlier in the
        # epoch (an RL row repeated the last SFT loss), so the loggers get this step's values
        self.log_dict(values, on_step=True, prog_bar=False, batch_size=len(records), sync_dist=False,
                      logger=False)
        self._log_step_row(values)
        self.last_metrics = metrics

    def _log_step_row(self, values: dict[str, float]) -> None:
        """Send exactly this step's metrics to every logger (one row per step in metrics.csv)."""
        trainer = self._trainer
        if trainer is None or not trainer.loggers or trainer.global_rank != 0:
            return
        if not getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True):
            return  # honour log_every_n_steps as Lightning's own logging does
        loop = getattr(trainer.fit_loop, "epoch_loop", None)
        step = getattr(loop, "_batches_that_stepped", trainer.global_step)
        for logger in trainer.loggers:
            logger.log_metrics({**values, "epoch": float(trainer.current_epoch)}, step=step)

    def sft_update(self, records: list[dict]) -> dict[str, float]:
        """One optimizer step of ``sft_objective`` on the records' demonstrations
        (:func:`rlobj.train.supervised.sft_step`)."""
        from rlobj.train.supervised import sft_step

        return sft_step(self, records)

    def device_of_policy(self) -> torch.device:
        return next(self.policy.parameters()).device

    def rl_update(self, records: list[dict], step: int) -> dict[str, float]:
        """One RL step: sample, score, transform, then :meth:`update_on_batch`; returns its metrics."""
        start = time.perf_counter()
        ctx = self.context(step)
        batch = ctx.sample(records)
        generate_seconds = time.perf_counter() - start
        metrics = {"time/generate_s": generate_seconds,
                   "throughput/generate_tokens_per_s": float(batch.rollout.response_mask.sum()) / max(generate_seconds, 1e-9)}
        if len(batch):
            batch = ctx.score(batch)
            for transform in self.transforms:
                batch = transform(ctx, batch)
                if not isinstance(batch, Batch):
                    raise RlobjInputError(f"transform {transform!r} returned {type(batch).__name__}, expected a Batch")
        if len(batch) == 0:  # segments still pending, or a filter kept nothing: no update this step
            return {**batch.metrics, **metrics}
        metrics.update(self.update_on_batch(batch, ctx))
        return metrics

    def update_on_rollout(self, rollout: RolloutBatch, rewards: Tensor, extras: dict | None = None,
                          step: int | None = None) -> dict[str, float]:
        """The optimisation part of an RL step on a given rollout and its rewards (tests, scripts).

        ``extras`` are per-row tensors that reach the objective as ``extras`` (they take
        precedence over providers).
        """
        records = [{"prompt": ""}] * len(rollout)
        batch = Batch(rollout=rollout, records=records, scores=[Score(float(r)) for r in rewards.tolist()],
                      extras=dict(extras or {}))
        return self.update_on_batch(batch, self.context(self.data_position if step is None else step))

    def update_on_batch(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """Providers, the batch stage on the global batch, the update, the sync; returns metrics."""
        start = time.perf_counter()
        rollout = batch.rollout.to(self.device_of_policy())
        batch = dataclasses.replace(batch, rollout=rollout)
        mask = rollout.response_mask
        self.policy.train()
        reuse = (self.plan.reuses_rollout_logprobs(len(rollout)) and batch.on_policy
                 and not self.batch_reads & {"logp", "logp_old", "entropy", "vocab"})
        entropy_old = None
        if reuse:
            logp_old = rollout.logp_rollout
        else:
            logp_old, entropy_old = self.models.no_grad_logprobs(rollout, with_entropy="entropy" in self.batch_reads)
        fields: dict[str, Any] = dict(logp=logp_old, logp_old=logp_old, mask=mask, rewards=batch.rewards.to(mask.device),
                                      group_ids=rollout.group_ids, extras=dict(batch.extras))
        if entropy_old is not None:
            fields["entropy"] = entropy_old
        ctx.row_offset = row_offset(len(rollout))
        for provider in self.providers:
            if provider.needed and all(s.removeprefix("extras:") in batch.extras for s in provider.needed):
                continue  # the sampler, a transform or the caller already supplied everything it gives
            for slot, value in provider.batch(ctx, batch, fields).items():
                if slot.startswith("extras:"):
                    fields["extras"].setdefault(slot.removeprefix("extras:"), value)
                else:
                    fields[slot] = value
        prepared = self._prepare(fields)
        result = run_update(
            self.objective, prepared, self.plan,
            forward=lambda rows, vocab: self._policy_forward(rollout, rows, vocab),
            micro_inputs=lambda rows: self._micro_inputs(ctx, batch, rows, fields),
            backward=self._backward, step=self._next_step,
            term_state=prepared.term_state, first_update=self.rl_updates,
            entropy_grad="entropy" in self.loss_reads, with_vocab="vocab" in self.loss_reads)
        self.term_state = dict(result.term_state)
        push_weights(self.policy, self.engine)
        return self._step_metrics(batch, fields, prepared, result, reuse, time.perf_counter() - start)

    def _prepare(self, fields: dict):
        """``Objective.prepare`` on the global batch (all ranks' rows), then this rank's rows."""
        gathered, where = gather_rows(fields)
        prepared = self.objective.prepare(**gathered, term_state=dict(self.term_state))
        if where[2] is None:
            return prepared
        cut = {name: local_rows(getattr(prepared, name), where, name) for name in ROW_FIELDS}
        cut["extras"] = {k: local_rows(v, where, "extras", k) for k, v in prepared.extras.items()}
        return prepared.update(**cut, cache={})

    def _policy_forward(self, rollout: RolloutBatch, rows: Tensor, vocab: bool):
        if vocab:
            return self.models.view_logprobs(rollout, rows)
        logp, entropy = self.models.forward(rollout, rows, with_entropy=True)
        return logp, entropy, None

    def _micro_inputs(self, ctx, batch, rows, fields) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for provider in self.providers:
            out.update({slot: value for slot, value in provider.micro(ctx, batch, rows, fields).items()
                        if slot.removeprefix("extras:") not in batch.extras})
        return out

    def _next_step(self) -> float:
        norm = self._step(self.rl_lr(self.rl_updates))
        self.rl_updates += 1
        return norm

    def _step_metrics(self, batch, fields, prepared, result, reuse, seconds) -> dict[str, float]:
        rollout, hp = batch.rollout, self.hparams
        mask, rewards = rollout.response_mask, fields["rewards"]
        n_valid = max(float(mask.sum()), 1.0)
        logp_old = result.logp_new if reuse else fields["logp_old"]
        metrics = dict(batch.metrics)
        metrics.update(result.metrics)
        metrics.update(batch_metrics(rollout, rewards, logp_old, hp.pass_threshold))
        metrics.update({"lr": self.rl_lr(max(self.rl_updates - 1, 0)), "time/update_s": seconds,
                        "throughput/update_tokens_per_s": n_valid * hp.ppo_epochs / max(seconds, 1e-9)})
        if "logp_ref" in fields:
            log_ratio = (fields["logp_ref"] - prepared.logp_old)[mask]
            metrics["kl/ref_k3"] = float((torch.expm1(log_ratio) - log_ratio).mean())
        return metrics

    def push_weights(self) -> None:
        """Load the policy's current weights into the engine (see :func:`rlobj.train.sync.push_weights`)."""
        push_weights(self.policy, self.engine)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, records: list[dict], samples_out: list | None = None) -> dict[str, float]:
        """pass@k / maj@k of ``eval_samples`` samples per record (:func:`rlobj.train.evaluation.evaluate_records`)."""
        from rlobj.train.evaluation import evaluate_records

        return evaluate_records(self, records, samples_out)

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
        reference = self.reference
        checkpoint["rlobj"] = {
            "term_state": self.term_state,
            "data_position": self.data_position,
            "rl_updates": self.rl_updates,
            "eval_history": self.eval_history,
            "rng": rng_state(),
            "reference": None if reference is None else reference.state_dict(),
            "sampler": self.sampler.state_dict(),
            "transforms": [t.state_dict() if hasattr(t, "state_dict") else {} for t in self.transforms],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        import copy

        saved = checkpoint.get("rlobj")
        if saved is None:
            return
        self.build()
        self.term_state = dict(saved["term_state"])
        self.data_position = int(saved["data_position"])
        self.rl_updates = int(saved["rl_updates"])
        self.eval_history = list(saved["eval_history"])
        if saved.get("reference") is not None:
            reference = copy.deepcopy(self.policy).requires_grad_(False)
            reference.load_state_dict(saved["reference"])
            self.models.set_reference(reference)
        self.sampler.load_state_dict(saved.get("sampler") or {})
        for transform, state in zip(self.transforms, saved.get("transforms") or []):
            if hasattr(transform, "load_state_dict"):
                transform.load_state_dict(state)
        set_rng_state(saved["rng"])
