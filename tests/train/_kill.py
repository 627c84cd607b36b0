"""A callback that kills a run at a given step (test_resume.py, test_data_loops_fit.py)."""

import lightning as L


class Kill(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if int(batch["step"]) == self.at_step:
            raise KeyboardInterrupt("simulated kill")
