"""A short fit with the completions table and a given logger (test_completions_table.py, test_loggers.py)."""

import lightning as L

from rlobj.train import CompletionsTable, ProgressPrinter, RLDataModule

from ._helpers import StartsWithDigit, tiny_module


def fit_with_table(tmp_path, logger, every=2, steps=4):
    module = tiny_module(verifier=StartsWithDigit(), rollout={"max_new_tokens": 3}, warmup={"steps": 1})
    table = CompletionsTable(every=every, rows=3)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=logger, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                        log_every_n_steps=1, default_root_dir=str(tmp_path),
                        callbacks=[table, ProgressPrinter(every=1)])
    trainer.fit(module, datamodule=RLDataModule(prompts_per_step=2, eval_size=2))
    return module, table
