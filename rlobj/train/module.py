r"""The LightningModule: it orchestrates the pipeline stages of DESIGN.md section 6.

One ``training_step`` consumes one batch of prompts from the DataModule (``{"step": k,
"records": [...]}``). During the supervised warm-up (the first ``warmup.steps`` batches) the
demonstrations are scored under the policy and ``warmup.objective`` takes one optimizer step.
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
import time
from types import SimpleNamespace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from rlobj.algebra import Objective
from rlobj.algebra.objective import ROW_FIELDS
from rlobj.algebra.term import Term
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.kl import k3_estimate
from rlobj.registry import build_objective
from rlobj.rollout import RolloutBatch, SamplingConfig
from rlobj.train.config import (
    EvalConfig,
    PolicyConfig,
    RolloutConfig,
    UpdateConfig,
    WarmupConfig,
    as_config,
    default_optimizer,
)
from rlobj.train.distributed import gather_rows, local_rows, row_offset
from rlobj.train.metrics import batch_metrics, log_step_row
from rlobj.train.models import Models
from rlobj.train.providers import build_providers, resolve_providers
from rlobj.train.run_state import load_run_state, save_run_state
from rlobj.train.samplers import build_sampler
from rlobj.train.scorers import VerifierScorer, score_completions
from rlobj.train.stages import Batch, Score, Scorer, StepContext
from rlobj.train.sync import push_weights
from rlobj.train.update import UpdatePlan, run_update

__all__ = ["RLModule", "build_train_objective", "score_completions"]

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
        policy: the network and tokenizer (:class:`~rlobj.train.config.PolicyConfig`: model_path,
            tiny_model, tokenizer_chars, dtype).
        rollout: sampling settings and engine (:class:`~rlobj.train.config.RolloutConfig`:
            group_size, max_new_tokens, temperature, top_p, top_k, engine, engine_args).
        sampler: the sampler stage (:mod:`rlobj.train.samplers`): ``plain`` (default), ``{ead:
            {schedule: ...}}``, ``{latr: {config: ...}}``, ``{segments: {segment_tokens: S}}``,
            ``{broad: {chunk_size: C}}``, or a user's class by dotted path.
        scorer: the scorer stage (a :class:`~rlobj.train.stages.Scorer`); default
            :class:`~rlobj.train.scorers.VerifierScorer` of ``verifier``.
        verifier: the reward function of the default scorer (default
            :class:`~rlobj.data.tasks.ExactAnswer`); give ``scorer`` for workers and timeouts.
        transforms: batch transforms applied in order after scoring (:mod:`rlobj.train.transforms`):
            names, ``{name: {args}}``, dotted paths or instances.
        providers: providers that replace the defaults or supply a user term's input
            (:mod:`rlobj.train.providers`).
        update: the update plan (:class:`~rlobj.train.config.UpdateConfig`: ppo_epochs,
            mini_batch_size, micro_batch_size, shuffle_minibatches, grad_clip, packing).
        optimizer: a callable ``params -> torch.optim.Optimizer`` (LightningCLI's
            ``OptimizerCallable``; YAML ``{class_path: torch.optim.AdamW, init_args: {lr: 3e-4}}``);
            default :func:`~rlobj.train.config.default_optimizer`.
        lr_scheduler: a callable ``optimizer -> LRScheduler`` stepped once per RL optimizer step
            (e.g. :class:`~rlobj.train.config.WarmupSchedule`); None keeps the optimizer's lr.
        warmup: the supervised warm-up (:class:`~rlobj.train.config.WarmupConfig`: steps,
            objective, lr, eval_at_end).
        evaluation: pass@k / maj@k settings (:class:`~rlobj.train.config.EvalConfig`: samples,
            k, temperature, max_new_tokens, pass_threshold).
        track_ref_kl: log ``kl/ref_k3`` (KL to the policy at the first RL step) even when the
            objective does not read ``logp_ref``.
        seed: seed of sampling and shuffling (combined with the step index and rank).

    The groups are also accepted as plain mappings (``RLModule(rollout={"group_size": 4})``).
    """

    def __init__(
        self,
        objective: list[Any] | str = "grpo",
        policy: PolicyConfig = PolicyConfig(),  # noqa: B008 - frozen; jsonargparse reads the default
        rollout: RolloutConfig = RolloutConfig(),  # noqa: B008
        sampler: Any = None,
        scorer: Any = None,
        verifier: Any = None,
        transforms: list[Any] | None = None,
        providers: list[Any] | None = None,
        update: UpdateConfig = UpdateConfig(),  # noqa: B008
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        warmup: WarmupConfig = WarmupConfig(),  # noqa: B008
        evaluation: EvalConfig = EvalConfig(),  # noqa: B008
        track_ref_kl: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.cfg = SimpleNamespace(
            policy=as_config(PolicyConfig, policy, "policy"), rollout=as_config(RolloutConfig, rollout, "rollout"),
            update=as_config(UpdateConfig, update, "update"), warmup=as_config(WarmupConfig, warmup, "warmup"),
            evaluation=as_config(EvalConfig, evaluation, "evaluation"))
        if not callable(optimizer):
            raise RlobjInputError(f"optimizer: expected a callable params -> Optimizer (YAML: class_path: "
                                  f"torch.optim.AdamW, init_args: {{lr: ...}}), got {optimizer!r}")
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise RlobjInputError(f"lr_scheduler: expected a callable optimizer -> LRScheduler, got {lr_scheduler!r}")
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.save_hyperparameters(ignore=["objective", "policy", "rollout", "sampler", "scorer", "verifier",
                                          "transforms", "providers", "update", "optimizer", "lr_scheduler",
                                          "warmup", "evaluation"])
        for name, spec in (("objective", objective), ("sampler", sampler), ("transforms", transforms),
                           ("providers", providers)):
            self.hparams[name] = _plain(spec)
        for name, group in vars(self.cfg).items():
            self.hparams[name] = _plain(dataclasses.asdict(group))
        # --- validate everything cheap before any model is built -------------------------
        self.objective = _objective(objective, "objective")
        self.sft_objective = _objective(self.cfg.warmup.objective, "warmup.objective")
        if self.cfg.evaluation.k and max(self.cfg.evaluation.k) > self.cfg.evaluation.samples:
            raise RlobjInputError("evaluation.k: every k must lie in [1, evaluation.samples]")
        update_cfg = self.cfg.update
        self.plan = UpdatePlan(ppo_epochs=update_cfg.ppo_epochs, mini_batch_size=update_cfg.mini_batch_size,
                               micro_batch_size=update_cfg.micro_batch_size, shuffle=update_cfg.shuffle_minibatches,
                               seed=seed)
        r = self.cfg.rollout
        self.sampling = SamplingConfig(max_new_tokens=r.max_new_tokens, temperature=r.temperature,
                                       top_p=r.top_p, top_k=r.top_k)
        # --- the stages ----------------------------------------------------------------------
        self.sampler = build_sampler(sampler)
        if scorer is not None and verifier is not None:
            raise RlobjInputError("scorer and verifier: give one (a verifier is the default scorer's reward function)")
        if scorer is not None and not isinstance(scorer, Scorer):
            raise RlobjInputError(f"scorer: expected a rlobj.train.stages.Scorer, got {scorer!r}")
        self.scorer = scorer or VerifierScorer(verifier)
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
        self.data_loop, self._pending_data_loop = None, None  # set by the DataModule's stream
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
        hp = self.cfg.policy
        from rlobj.train.policies import load_policy  # model_path, tiny_vlm or the tiny Qwen2

        self.tokenizer, self.policy = load_policy(hp)
        if hp.lora is not None:
            from rlobj.train.adapters import apply_lora

            self.policy = apply_lora(self.policy, dict(hp.lora))
            self.strict_loading = False  # checkpoints hold the adapters; the base comes from model_path
        if hp.gradient_checkpointing:
            from rlobj.train.adapters import enable_checkpointing

            enable_checkpointing(self.policy)
        self.policy.train()
        try:
            self.models = Models(self.policy, temperature=self.cfg.rollout.temperature,
                                 micro_batch_size=self.cfg.update.micro_batch_size, logits=hp.logits,
                                 packing=self.cfg.update.packing,
                                 reference_factory=self._adapters_off if hp.lora is not None else None)
        except ValueError as error:
            raise RlobjInputError(f"policy.{error}") from error

    def configure_model(self) -> None:
        """Build the policy; under ModelParallelStrategy shard it with FSDP2 (:mod:`rlobj.train.sharding`)."""
        self.build()
        if self.device_mesh is not None and not getattr(self, "_sharded", False):
            from rlobj.train.sharding import shard_module

            shard_module(self, self.device_mesh)
            self._sharded = True

    def _adapters_off(self):
        from rlobj.train.adapters import AdaptersOff

        return AdaptersOff(self.policy)

    @property
    def reference(self):
        """The frozen reference policy, or None before anything needed it (or with LoRA, where it
        is the policy with its adapters off and holds no weights of its own)."""
        if self.models is None or not self.models.has_reference or self.cfg.policy.lora is not None:
            return None
        return self.models.reference

    def _ensure_engine(self):
        if self.engine is None:
            from rlobj.train.engines import build_engine

            self.engine = build_engine(self)
        return self.engine

    def _ensure_pool(self):
        return self.scorer.pool() if hasattr(self.scorer, "pool") else None

    def teardown(self, stage: str) -> None:
        self.scorer.close()

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.policy.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise RlobjInputError(f"optimizer: the callable returned {type(optimizer).__name__}, expected a "
                                  "torch.optim.Optimizer")
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]  # before a scheduler scales them
        if self.scheduler_factory is None:
            return optimizer
        # stepped by the module once per RL optimizer step (manual optimization); saved by Lightning
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer),
                                                         "interval": "step"}}

    def _scheduler(self):
        if self._trainer is not None:
            schedulers = self.lr_schedulers()
            return schedulers[0] if isinstance(schedulers, list) else schedulers
        self._optimizer()
        return getattr(self, "_standalone_scheduler", None)

    def rl_lr(self) -> list[float]:
        """The learning rates of the next RL optimizer step (the scheduler's, else the optimizer's own)."""
        scheduler = self._scheduler()
        if scheduler is not None:
            return list(scheduler.get_last_lr())
        self._optimizer()
        return list(self.base_lrs)

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
            configured = self.configure_optimizers()
            if isinstance(configured, dict):
                self._standalone_optimizer = configured["optimizer"]
                self._standalone_scheduler = configured["lr_scheduler"]["scheduler"]
            else:
                self._standalone_optimizer, self._standalone_scheduler = configured, None
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

    def _step(self, lrs: list[float]) -> float:
        """Clip, one optimizer step at learning rates ``lrs`` (one per parameter group); the norm."""
        optimizer = self._optimizer()
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        limit = self.cfg.update.grad_clip if self.cfg.update.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), limit)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP2: a DTensor
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
                          world_size=self.world_size, group_size=self.cfg.rollout.group_size,
                          engine=self._ensure_engine(), models=self.models, sample=None, score=None,
                          encode=self.encode, decode=self.decode_responses, pad_token_id=pad,
                          sampling=self._sampling(step),
                          special_token_ids=tuple(getattr(self.tokenizer, "all_special_ids", ()) or ()))

        def sample(records, n=None, salt=0, **changes):
            ctx.engine.wake()  # an engine that slept through the last update gets its memory back
            return self.sampler.sample(ctx, list(records), n or self.cfg.rollout.group_size, salt, **changes)

        def score(batch):
            batch.scores = self.scorer(ctx, batch)
            return batch

        ctx.sample, ctx.score = sample, score
        return ctx

    # ------------------------------------------------------------------ the steps
    def training_step(self, batch: dict, batch_idx: int) -> None:
        step = int(batch["step"])
        records = batch["records"]
        warmup = self.cfg.warmup
        if batch.get("data_loop") is not None:
            self.attach_data_loop(batch["data_loop"])
        if step < warmup.steps:
            metrics = self.sft_update(records)
            metrics["phase"] = 0.0
        else:
            if (step == warmup.steps and warmup.eval_at_end
                    and not any(label == "before RL" for label, _, _ in self.eval_history)):
                self.run_evaluation("before RL")
            if self.data_loop is not None:  # the data strategy picks the step's prompts now
                records = self.data_loop.records(step, self.rank, self.world_size)
            metrics = self.rl_update(records, step)
            metrics["phase"] = 1.0
        self.data_position = step + 1
        metrics["data_position"] = float(self.data_position)
        values = {k: float(v) for k, v in metrics.items()}
        shown = ("loss", "reward/mean", "sft/nll")  # also on the progress bar (a terminal's rich bar)
        # callback_metrics only: Lightning's logged rows keep every key logged earlier in the
        # epoch (an RL row repeated the last SFT loss), so the loggers get this step's values
        for bar in (False, True):
            self.log_dict({k: v for k, v in values.items() if (k in shown) == bar}, on_step=True, prog_bar=bar,
                          batch_size=len(records), sync_dist=False, logger=False)
        log_step_row(self, values)
        self.last_metrics = metrics

    def attach_data_loop(self, loop) -> None:
        """Use ``loop`` (:class:`~rlobj.train.data_loops.DataLoop`) for the RL steps' prompts; a
        checkpoint's statistics loaded before it was known are handed to it now."""
        if loop is not self.data_loop:
            self.data_loop = loop
            if self._pending_data_loop is not None:
                loop.load_state_dict(self._pending_data_loop)
                self._pending_data_loop = None

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
        if self.data_loop is not None:  # every rank, every step: the statistics are gathered
            scored = batch.scores is not None
            metrics.update(self.data_loop.observe(step, batch.records, batch.rewards.tolist() if scored else []))
        if len(batch):
            for transform in self.transforms:
                batch = transform(ctx, batch)
                if not isinstance(batch, Batch):
                    raise RlobjInputError(f"transform {transform!r} returned {type(batch).__name__}, expected a Batch")
        if len(batch) == 0:  # segments still pending, or a filter kept nothing: no update this step
            return {**batch.metrics, **metrics}
        ctx.engine.sleep()  # vLLM with sleep mode frees its memory for the update; a no-op elsewhere
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
        mask = batch.action_mask()  # response tokens less a multi-turn sampler's observation tokens
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
        self.last_batch = (batch, prepared)  # for CompletionsTable: prompts, rewards, advantages
        result = run_update(
            self.objective, prepared, self.plan,
            forward=lambda rows, vocab: self._policy_forward(rollout, rows, vocab),
            micro_inputs=lambda rows: self._micro_inputs(ctx, batch, rows, fields),
            backward=self._backward, step=self._next_step,
            term_state=prepared.term_state, first_update=self.rl_updates,
            entropy_grad="entropy" in self.loss_reads, with_vocab="vocab" in self.loss_reads)
        self.term_state = dict(result.term_state)
        if self.engine is not None:
            self.engine.wake()  # weights load into an awake engine
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
        lrs = self.rl_lr()
        norm = self._step(lrs)
        self.last_lr = lrs[0]
        scheduler = self._scheduler()
        if scheduler is not None:
            scheduler.step()
        self.rl_updates += 1
        return norm

    def _step_metrics(self, batch, fields, prepared, result, reuse, seconds) -> dict[str, float]:
        rollout = batch.rollout
        mask, rewards = fields["mask"], fields["rewards"]
        n_valid = max(float(mask.sum()), 1.0)
        logp_old = result.logp_new if reuse else fields["logp_old"]
        metrics = dict(batch.metrics)
        metrics.update(result.metrics)
        metrics.update(batch_metrics(rollout, rewards, logp_old, self.cfg.evaluation.pass_threshold, mask))
        metrics.update({"lr": self.last_lr, "time/update_s": seconds,
                        "throughput/update_tokens_per_s": n_valid * self.cfg.update.ppo_epochs / max(seconds, 1e-9)})
        if "logp_ref" in fields:  # k3 of KL(current old policy || policy at the first RL step)
            metrics["kl/ref_k3"] = float(k3_estimate((fields["logp_ref"] - prepared.logp_old)[mask]).mean())
        return metrics

    def push_weights(self) -> None:
        """Load the policy's current weights into the engine (see :func:`rlobj.train.sync.push_weights`)."""
        push_weights(self.policy, self.engine)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, records: list[dict], samples_out: list | None = None) -> dict[str, float]:
        """pass@k / maj@k of ``evaluation.samples`` samples per record (:func:`rlobj.train.evaluation.evaluate_records`)."""
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
        save_run_state(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        load_run_state(self, checkpoint)
