"""TRL set-up shared by tests/integrations/test_trl.py and its two-process worker (_ddp_worker.py):
the GRPOConfig of the tiny CPU runs and a trainer built on the tiny model."""

import pytest
from _tiny import digit_reward

trl = pytest.importorskip("trl")  # this module is collected by --doctest-modules where TRL is absent

MAX_LEN = 8


def grpo_config(tmp_path, **overrides):
    """TRL's GRPOConfig for the tiny CPU runs: 4 generations, completions of at most MAX_LEN tokens."""
    values = dict(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, fp16=False, use_vllm=False,
                  report_to="none", num_generations=4, max_completion_length=MAX_LEN, save_strategy="no",
                  per_device_train_batch_size=8, gradient_accumulation_steps=1, max_steps=2,
                  logging_steps=1, learning_rate=1e-2, seed=0, disable_tqdm=True)
    values.update(overrides)
    return trl.GRPOConfig(**values)


def make_trainer(cls, tmp_path, model, tokenizer, dataset, config=None, **kwargs):
    """A GRPOTrainer (TRL's or rlobj's subclass ``cls``) on the tiny model with the digit reward."""
    config = config or grpo_config(tmp_path)
    trainer = cls(model=model, reward_funcs=digit_reward, args=config, train_dataset=dataset,
                  processing_class=tokenizer, **kwargs)
    # set by Trainer.train(); the parity tests call _compute_loss directly
    trainer.current_gradient_accumulation_steps = config.gradient_accumulation_steps
    return trainer
