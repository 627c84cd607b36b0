"""Row (c) of benchmarks/train_step.py: TRL's GRPOTrainer loss computation on the same model and batch.

TRL is not a dependency of rlobj: it lives in the peers environment (``scripts/test_peers.sh``
builds ``.venv-peers``). :func:`trl_available` says why the row cannot run when TRL is missing.

The row builds a real ``trl.GRPOTrainer`` around a copy of the benchmark's model (``loss_type``
``grpo``, ``beta`` 0, no generation: its reward function and dataset are never called) and runs
one update as TRL's ``Trainer.training_step`` does after ``_prepare_inputs``: ``compute_loss`` on
the rollout's prompt/completion tensors and advantages (TRL's own forward:
``_get_per_token_logps_and_entropies`` through the fused LM head TRL patches onto the model at
construction, entropy included, ``old_per_token_logps`` taken as the detached log-probs of the
same forward, as TRL does with one iteration per generation), backward, gradient clipping at 1.0
and an AdamW step with the same settings as the rlobj rows.
"""

import copy

import torch

__all__ = ["trl_available", "TRLRow"]


def trl_available() -> str | None:
    """None when TRL's GRPOTrainer imports, else the reason it does not."""
    try:
        import trl  # noqa: F401
        from trl import GRPOConfig, GRPOTrainer  # noqa: F401
    except Exception as error:  # noqa: BLE001 - any import failure means the row cannot run
        return (f"TRL is not importable here ({type(error).__name__}: {error}); row (c) needs the peers "
                f"environment: bash scripts/test_peers.sh, then run this script with .venv-peers/bin/python "
                f"and PYTHONPATH=<repository root>")
    return None


def _advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """TRL's GRPO advantages: (r - group mean) / (group std + 1e-4), std unbiased as torch.std."""
    out = torch.empty_like(rewards)
    for group in group_ids.unique():
        rows = group_ids == group
        values = rewards[rows]
        out[rows] = (values - values.mean()) / (values.std() + 1e-4)
    return out


class TRLRow:
    """One GRPO update through TRL's ``GRPOTrainer.compute_loss`` (see the module docstring)."""

    def __init__(self, base, rollout, rewards, device: str, output_dir: str, lr: float = 1e-4):
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from rlobj.data import build_char_tokenizer

        self.model = copy.deepcopy(base).to(device).train()
        rows, response = rollout.response_ids.shape
        config = GRPOConfig(output_dir=output_dir, use_cpu=device == "cpu", bf16=False, fp16=False,
                            use_vllm=False, report_to="none", loss_type="grpo", beta=0.0,
                            num_generations=int((rollout.group_ids == rollout.group_ids[0]).sum()),
                            per_device_train_batch_size=rows, gradient_accumulation_steps=1,
                            max_completion_length=response, temperature=1.0, save_strategy="no",
                            disable_tqdm=True, seed=0)
        # the tokenizer and dataset are only checked at construction; nothing is generated
        self.trainer = GRPOTrainer(model=self.model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                                   args=config, train_dataset=Dataset.from_dict({"prompt": ["1+1="] * rows}),
                                   processing_class=build_char_tokenizer(padding_side="left"))
        self.trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train()
        self.inputs = {"prompt_ids": rollout.prompt_ids, "prompt_mask": rollout.prompt_mask.long(),
                       "completion_ids": rollout.response_ids, "completion_mask": rollout.response_mask.long(),
                       "advantages": _advantages(rewards.float(), rollout.group_ids).to(device)}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)

    def update(self) -> float:
        """compute_loss, backward, clip at 1.0, AdamW step, gradients freed (as the rlobj rows do);
        returns the gradient norm before clipping."""
        loss = self.trainer.compute_loss(self.model, self.inputs)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

