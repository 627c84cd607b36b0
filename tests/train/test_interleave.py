"""SFT/RL interleaving (rlobj/train/interleave.py): the pair of paths with the shortest common prefix,
the schedule of RL and SFT steps, and an SFT step trained on the correct paths."""

import lightning as L
import pytest

from rlobj.ops.errors import RlobjInputError
from rlobj.train import AdditionTask, RLDataModule
from rlobj.train.interleave import SFTInterleave, pick_pair

from ._helpers import tiny_module
from ._propa_helpers import RECORDS


def test_pick_pair_takes_the_pair_with_the_shortest_common_prefix():
    assert pick_pair([(1, 2, 3), (1, 2, 4), (1, 5)]) == [(1, 2, 3), (1, 5)]
    assert pick_pair([(1, 2), (1, 2)]) == [(1, 2)]
    assert pick_pair([(1,), (2,), (3,)], limit=3) == [(1,), (2,), (3,)]
    with pytest.raises(RlobjInputError, match="SFTInterleave.rl_steps"):
        SFTInterleave(rl_steps=0)
    with pytest.raises(RlobjInputError, match="SFTInterleave.fallback"):
        SFTInterleave(fallback="gold")


def test_interleave_schedule_alternates_rl_and_sft_steps_as_configured(tmp_path):
    # warm-up 1 step, then RL, RL, SFT, RL, RL, SFT (the SFT steps run in the callback: not in max_steps)
    module = tiny_module(warmup={"steps": 1, "eval_at_end": False}, rollout={"max_new_tokens": 4, "group_size": 2})
    interleave = SFTInterleave(rl_steps=2, sft_steps=1, lr=0.5, fallback="demonstration")
    data = RLDataModule(train=AdditionTask(seed=1), eval=AdditionTask(seed=2), prompts_per_step=2, eval_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=5, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        callbacks=[interleave])
    trainer.fit(module, datamodule=data)
    assert interleave.events == [("rl", 1), ("rl", 2), ("sft", 2), ("rl", 3), ("rl", 4), ("sft", 4)]
    assert module.rl_updates == 4 and trainer.global_step == 5


def test_interleave_sft_step_trains_on_the_correct_paths():
    module = tiny_module(rollout={"max_new_tokens": 4, "group_size": 2})
    ctx = module.context(0)
    batch = ctx.score(ctx.sample(RECORDS))
    # make row 0 of the first prompt "correct" and nothing of the second
    from rlobj.train.stages import Score

    batch.scores = [Score(1.0), Score(0.0), Score(0.0), Score(0.0)]
    interleave = SFTInterleave(rl_steps=1, sft_steps=1, fallback="demonstration")
    interleave.collect(module, batch)
    assert len(interleave._paths) == 1 and [d["prompt"] for d in interleave._demos] == ["7+8="]
    rollout = interleave._rollout(module)
    path = batch.rollout.response_ids[0][batch.rollout.response_mask[0]].tolist()
    assert rollout.response_ids[0][rollout.response_mask[0]].tolist() == path
    demo = module.encode("15") + [module.tokenizer.eos_token_id]
    assert rollout.response_ids[1][rollout.response_mask[1]].tolist() == demo
    from rlobj.train.supervised import sft_on_rollout

    first = sft_on_rollout(module, rollout, lr=0.5)["sft/nll"]
    second = sft_on_rollout(module, rollout, lr=0.5)["sft/nll"]
    assert second < first
