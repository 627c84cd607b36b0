"""VideoSSR's pretext rows (``images`` = the video's frames) train on the tiny vision-language policy.

The pretext generators (``rlobj.train.video_pretext``) and the image rows of the trainer
(``rlobj.rollout.vision``) were built side by side; this runs them together: 2 RL steps from YAML
with every frame of a row going through the processor, the engine and the update.
"""

import pytest
import torch

from rlobj.rollout.vision import encode_record
from rlobj.train import video_pretext
from rlobj.train.policies import processor_of

from ._yaml_fit import fit_from_yaml

pytestmark = pytest.mark.slow

TINY_VLM = {"kind": "llava", "image_size": 28, "patch_size": 14, "hidden_size": 32, "layers": 1, "heads": 2,
            "vision_hidden_size": 16, "seed": 0,
            "chars": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:;?=+-()[]'"}


@pytest.mark.parametrize("source, init", [
    ("TemporalJigsaw", {"clips": 3, "frames": 6, "height": 28, "width": 28}),
    ("AnomalyGrounding", {"perturbation": "invert", "frames": 16, "height": 28, "width": 28, "fps": 4.0}),
])
def test_videossr_rows_train_two_rl_steps_on_the_tiny_vlm_from_yaml(tmp_path, source, init):
    model = {"objective": "grpo", "seed": 0,
             "verifier": {"class_path": "rlobj.train.video_pretext.VideoSSRReward"},
             "policy": {"tiny_vlm": TINY_VLM},
             "rollout": {"group_size": 2, "max_new_tokens": 4},
             "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1.0e-3}}}
    data = {"train": {"class_path": f"rlobj.train.video_pretext.{source}", "init_args": {"seed": 1, **init}},
            "prompts_per_step": 2}
    cli = fit_from_yaml(tmp_path, model, data)
    module = cli.model
    assert cli.trainer.global_step == 2
    # every frame of a row reaches the model: one image's pixels per frame, image tokens for each
    record = getattr(video_pretext, source)(seed=1, **init).record(0)
    processor = processor_of(module.tokenizer)
    ids, pixels = encode_record(processor, record)
    assert pixels["pixel_values"].shape[0] == len(record["images"]) == init["frames"]
    image_token = module.policy.config.image_token_id
    assert sum(i == image_token for i in ids) == len(record["images"]) * (28 // 14) ** 2
    # the verifier scored every rollout of these rows, and the update ran on them
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert metrics["verifier/failed_fraction"] == 0.0
    assert torch.isfinite(torch.tensor(metrics["entropy"])) and metrics["entropy"] > 0
