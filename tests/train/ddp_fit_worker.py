"""Script run by test_ddp_data_loop.py: ``rlobj fit`` with a data strategy on 2 gloo ranks (Lightning DDP).

``python ddp_fit_worker.py CONFIG OUT_DIR``: Lightning's launcher starts the second rank by running
this script again; each rank writes ``OUT_DIR/rank<r>.pt`` with its data-loop state, the global
selection of each RL step and the prompt ids it trained on in the last step.
"""

import os
import sys

import torch


def main(config: str, out_dir: str) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [os.path.dirname(here), here]
    torch.set_num_threads(1)
    from rlobj.train.cli import run

    cli = run(["fit", "--config", config])
    recorder = next(c for c in cli.trainer.callbacks if type(c).__name__ == "Recorder")
    module = cli.model
    torch.save({"rank": cli.trainer.global_rank, "world": cli.trainer.world_size,
                "state": module.data_loop.state_dict(), "selections": recorder.selections,
                "trained": [r["prompt_id"] for r in module.last_batch[0].records]},
               os.path.join(out_dir, f"rank{cli.trainer.global_rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
