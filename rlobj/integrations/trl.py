r"""Train any rlobj objective inside TRL: :class:`RlobjGRPOTrainer`, a ``GRPOTrainer`` subclass.

TRL keeps everything it owns (generation, vLLM, reward functions, accelerate / DeepSpeed / FSDP,
logging, checkpoints); rlobj replaces exactly two things:

* **advantages**: the chain's batch-stage terms run on TRL's rewards (the weighted sum of the
  reward functions, gathered across processes as TRL gathers them), grouped by prompt
  (``num_generations`` consecutive completions per prompt), on the whole generation batch; each
  process keeps its own rows, as ``[batch, seq]`` float32 advantages. A chain without an
  advantage term keeps TRL's own advantages (``scale_rewards``);
* **loss**: the chain's loss-stage terms run on TRL's micro-batch with the per-token log-probs
  of the current policy (from the same backbone forward TRL runs), TRL's ``old_per_token_logps``
  / ``ref_per_token_logps`` when TRL computes them, and a global
  :class:`~rlobj.algebra.state.Normalizer` built from TRL's own counts (below).

Full-vocabulary terms (``forward_kl``, ``lp_reg``, ``siren``, entropy terms) read a
:class:`~rlobj.ops.vocab.VocabView` built from the model's final hidden states and output layer
(no ``[tokens, vocab]`` logits): ``vocab`` is the current policy; ``extras["vocab_old"]`` the
policy that sampled (on-policy: the same weights, detached); ``extras["vocab_ref"]`` the frozen
reference (TRL's ``ref_model`` when ``beta > 0``, else a frozen copy of the model taken when the
trainer is built). Every metric of the objective goes to TRL's logs as ``rlobj/<name>``.

Normaliser, from TRL's counts (TRL 1.16 ``GRPOTrainer._compute_loss``): with $P$ processes,
gradient-accumulation steps $G$, ``steps_per_generation`` $S$, $B$ local rows per micro-batch and
``num_items_in_batch`` $N$ (valid completion tokens of the generation batch over all processes),
``tokens`` $= N G / S$, ``seqs`` $= B G P$, ``ranks`` $= P$. Then rlobj's ``token_mean`` is
TRL's ``loss_type="dapo"``, ``seq_mean_token_mean`` is ``"grpo"``,
``constant_normalizer(max_completion_length)`` is ``"dr_grpo"`` (all checked in float64 to 1e-12
by ``tests/integrations/test_trl.py``). ``normalizer="micro_batch"`` divides by the micro-batch's
own counts times $G$ (TRL's ``"bnpo"``; breaks the micro-batch law as TRL does).

Warning:
    TRL's ``mask_truncated_completions=True`` zeroes the completion mask of truncated rows, so
    they leave the token normaliser too; rlobj's :class:`~rlobj.terms.masks.token_selection.truncated_mask`
    (reading ``extras["truncated"]``, which this trainer provides) keeps them in it, as verl,
    unless ``normalizer="trl"``.
    Rows for which every reward function returned ``None`` are refused (rlobj never trains on
    NaN rewards). Mini-batch statistics (``top_entropy_mask(scope="batch")``, ...) are taken
    per TRL micro-batch, gathered across processes (what TRL's ``top_entropy_quantile`` does),
    not over the whole accumulated mini-batch.

Example (a tiny model; the docs page "Use rlobj inside TRL or verl" runs it in full)::

    from rlobj import grpo, lp_reg, forward_kl
    from rlobj.integrations.trl import RlobjGRPOTrainer
    trainer = RlobjGRPOTrainer(model=model, objective=grpo >> lp_reg(0.02) >> forward_kl(0.01),
                               reward_funcs=reward, args=GRPOConfig(...), train_dataset=dataset,
                               processing_class=tokenizer)
    trainer.train()
"""

import copy

import torch
from torch import Tensor

from rlobj.algebra.state import Normalizer, State
from rlobj.integrations._shared import (
    as_objective,
    batch_state,
    group_ids_of,
    row_fields,
    slots_read,
)
from rlobj.ops.errors import RlobjInputError
from rlobj.ops.vocab import Entropy, LogProb, VocabView

try:
    from trl import GRPOTrainer
except ImportError as error:  # pragma: no cover - exercised only without TRL
    raise ImportError("rlobj.integrations.trl needs TRL: pip install 'rlobj[trl]'") from error

__all__ = ["RlobjGRPOTrainer", "NORMALIZERS"]

#: ``normalizer`` choices: ``"global"`` (TRL's counts over the optimizer step), ``"micro_batch"`` (bnpo).
NORMALIZERS = ("global", "micro_batch")
_PREFIX = "rlobj:"


def _final_hidden(model, input_ids: Tensor, attention_mask: Tensor, keep: int) -> Tensor:
    """Final (normed) hidden states at the ``keep`` positions predicting the completion tokens,
    from one forward through the (possibly DDP-wrapped) model, as TRL's own forward runs it."""
    output = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                   logits_to_keep=1, use_cache=False)
    return output.hidden_states[-1][:, -(keep + 1):-1]


def _view(model, hidden: Tensor, temperature: float) -> VocabView:
    base = model.module if hasattr(model, "module") else model
    head = base.get_output_embeddings()
    softcap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
    weight, bias = head.weight, getattr(head, "bias", None)
    if not torch.is_grad_enabled() or not hidden.requires_grad:
        weight, bias = weight.detach(), None if bias is None else bias.detach()
    return VocabView.from_hidden(hidden, weight, bias, temperature=temperature, softcap=softcap)


class RlobjGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with advantages and loss from an rlobj objective.

    Args:
        *args: passed to ``trl.GRPOTrainer`` (model, reward_funcs, args, datasets, ...).
        objective: an rlobj term, chain or :class:`~rlobj.algebra.objective.Objective`, e.g.
            ``grpo >> lp_reg(0.02) >> forward_kl(0.01)``. TRL's ``loss_type``, ``epsilon``,
            ``beta``-KL, ``scale_rewards`` and ``top_entropy_quantile`` are then unused: the
            chain decides (``beta > 0`` still makes TRL compute ``ref_per_token_logps``).
        normalizer: ``"global"`` (default) or ``"micro_batch"`` (TRL's ``bnpo``), see the module.
        **kwargs: passed to ``trl.GRPOTrainer``.

    Attributes:
        objective: the :class:`~rlobj.algebra.objective.Objective` trained.
        term_state: states of stateful terms, carried from one loss call to the next.
    """

    def __init__(self, *args, objective, normalizer: str = "global", **kwargs):
        self.objective = as_objective(objective, "RlobjGRPOTrainer")
        if normalizer not in NORMALIZERS:
            raise RlobjInputError(f"RlobjGRPOTrainer.normalizer: expected one of {NORMALIZERS}, got {normalizer!r}")
        self.normalizer_mode = normalizer
        self.term_state: dict = {}
        self._gathered_rewards: Tensor | None = None
        super().__init__(*args, **kwargs)
        self._loss_reads = slots_read(self.objective, "loss")
        self._reference = None
        if {"extras:vocab_ref", "logp_ref"} & self._loss_reads:
            self._reference = self.ref_model
            if self._reference is None:
                self._reference = copy.deepcopy(self.accelerator.unwrap_model(self.model)).eval()
                self._reference.requires_grad_(False)

    # ------------------------------------------------------------------ advantages
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = rewards_per_func  # [all processes' rows, reward functions]
        return rewards_per_func

    def _truncated(self, completion_ids: Tensor, completion_mask: Tensor) -> Tensor:
        eos = torch.tensor(list(self.eos_token_ids), device=completion_ids.device)
        return ~(torch.isin(completion_ids, eos) & completion_mask.bool()).any(-1)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        per_func = self._gathered_rewards
        if torch.isnan(per_func).all(dim=1).any():
            raise RlobjInputError("rewards: every reward function returned None for some completion; "
                                  "rlobj does not train on unscored completions (drop them from the data)")
        rewards = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        truncated = self._truncated(output["completion_ids"], mask)
        gather = self.accelerator
        all_mask = gather.gather(gather.pad_across_processes(mask, dim=1, pad_index=0))
        all_truncated = gather.gather(truncated)
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        state = batch_state(self.objective, mask=all_mask, rewards=rewards,
                            group_ids=group_ids_of(len(rewards), group, rewards.device),
                            extras={"truncated": all_truncated})
        rows = slice(gather.process_index * len(mask), (gather.process_index + 1) * len(mask))
        fields = row_fields(state, rows, mask.shape[1])
        if "advantages" in fields:  # float32, as TRL's own advantages
            output["advantages"] = fields.pop("advantages").float()
        output.update({_PREFIX + name: value for name, value in fields.items()})
        for name, value in state.metrics.items():
            self._metrics[mode][f"rlobj/{name}"].append(float(value))
        return output

    # ------------------------------------------------------------------ loss
    def _normalizer(self, mask: Tensor, num_items: Tensor) -> Normalizer:
        training = self.model.training
        accumulation = self.current_gradient_accumulation_steps if training else 1
        if self.normalizer_mode == "micro_batch":
            return Normalizer(tokens=float(mask.sum()) * accumulation, seqs=float(len(mask)) * accumulation)
        processes = self.accelerator.num_processes
        tokens = float(num_items.clamp(min=1.0))
        if training:
            tokens = tokens * accumulation / self.args.steps_per_generation
        return Normalizer(tokens=tokens, seqs=float(len(mask)) * accumulation * processes, ranks=processes)

    def rlobj_state(self, model, inputs) -> State:
        """The rlobj state of one TRL micro-batch: current log-probs, entropy and vocab view
        from one forward of ``model``, TRL's old / reference log-probs, and the rows' fields."""
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        keep = completion_ids.shape[1]
        mask = inputs["completion_mask"].bool()
        if "tool_mask" in inputs:
            mask = mask & inputs["tool_mask"].bool()
        tokens = torch.where(mask, completion_ids, 0)
        hidden = _final_hidden(model, input_ids, attention_mask, keep)
        view = _view(model, hidden, self.temperature)
        logp, entropy = view.evaluate(LogProb(tokens), Entropy(), mask=mask)
        extras = {"tokens": tokens, "truncated": inputs[_PREFIX + "extras:truncated"]}
        extras.update({name[len(_PREFIX) + len("extras:"):]: value for name, value in inputs.items()
                       if name.startswith(_PREFIX + "extras:")})
        if inputs.get("sampling_per_token_logps") is not None:
            extras["logp_rollout"] = inputs["sampling_per_token_logps"]
        logp_old = inputs.get("old_per_token_logps")
        if "extras:vocab_old" in self._loss_reads or "extras:logp_proxy" in self._loss_reads:
            if logp_old is not None:
                raise RlobjInputError("extras['vocab_old']: TRL keeps old log-probs, not the old policy's "
                                      "distributions; terms that read the old policy's vocabulary (lp_reg) "
                                      "need on-policy steps (num_iterations=1, steps_per_generation = "
                                      "gradient_accumulation_steps)")
            with torch.no_grad():
                extras["vocab_old"] = _view(model, hidden.detach(), 1.0)
        logp_ref = inputs.get("ref_per_token_logps")
        if self._reference is not None:
            with torch.no_grad():
                ref_view = _view(self._reference, _final_hidden(self._reference, input_ids, attention_mask, keep),
                                 self.temperature)
                extras["vocab_ref"] = ref_view
                if logp_ref is None:
                    logp_ref = ref_view.logp(tokens)
        fields = {name[len(_PREFIX):]: value for name, value in inputs.items()
                  if name.startswith(_PREFIX) and not name.startswith(_PREFIX + "extras:")}
        return State.from_batch(
            logp=logp, mask=mask, entropy=entropy, vocab=view, advantages=inputs["advantages"],
            logp_old=logp.detach() if logp_old is None else logp_old, logp_ref=logp_ref, extras=extras,
            **fields)

    def _compute_loss(self, model, inputs):
        state = self.rlobj_state(model, inputs)
        normalizer = self._normalizer(state.mask, inputs["num_items_in_batch"])
        out = self.objective.loss(state, normalizer=normalizer, term_state=self.term_state)
        self.term_state = out.term_state
        self._log_metrics(out.metrics)
        return out.loss

    def _log_metrics(self, metrics: dict) -> None:
        """Average each metric over the processes that report it (one object gather: processes
        whose terms report different metric names cannot deadlock) into TRL's metric log."""
        local = {name: float(value.detach().double().mean()) for name, value in metrics.items()}
        reports = [local]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            reports = gather_object([local])
        mode = "train" if self.model.training else "eval"
        for name in sorted(set().union(*reports)):
            values = [report[name] for report in reports if name in report]
            self._metrics[mode][f"rlobj/{name}"].append(sum(values) / len(values))
