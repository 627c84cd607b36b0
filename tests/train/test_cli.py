import glob
import json
import os
from pathlib import Path

import pytest
import yaml

from rlobj.train.cli import RlobjCLI, RlobjTrainer, main
from rlobj.train.datamodule import RLDataModule
from rlobj.train.module import RLModule

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(glob.glob(str(ROOT / "examples" / "configs" / "**" / "*.yaml"), recursive=True))


def _cli(args):
    return RlobjCLI(RLModule, RLDataModule, trainer_class=RlobjTrainer, args=args, run=False,
                    auto_configure_optimizers=False)


def _overrides(config: str, tmp_path) -> list[str]:
    """Point missing local dataset files at a temporary JSONL; run the trainer on this CPU."""
    text = Path(config).read_text()
    extra = []
    if "JsonlTask" in text or "DatasetTask" in text:
        data = tmp_path / "data.jsonl"
        data.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
        for section in ("train", "eval"):
            extra.append(f"--data.{section}.init_args.path={data}")
        extra.append("--data.eval_size=1")
    if "model_path: Qwen/" in text:  # a Hub id: not in this machine's cache (HF_HUB_OFFLINE=1)
        extra.append("--model.policy.model_path=null")
    if "accelerator: gpu" in text or "fsdp" in text.lower():
        extra += ["--trainer.accelerator=cpu", "--trainer.strategy=auto", "--trainer.devices=1",
                  "--trainer.precision=32-true"]
    return extra


def test_every_shipped_config_is_found():
    names = {os.path.basename(c) for c in CONFIGS}
    assert "default.yaml" in names and len(CONFIGS) >= 3
    assert {"ead.yaml", "latr.yaml", "ulorl_segments.yaml"} <= names  # examples/configs/rollout/


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_config_parses_and_instantiates(config, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "user_code"))  # user_code.yaml's package
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", config] + _overrides(config, tmp_path))
    assert isinstance(cli.model, RLModule) and isinstance(cli.datamodule, RLDataModule)
    assert cli.model.policy is None  # nothing loaded at parse/instantiate time
    assert len(cli.model.objective.chain.terms) >= 1
    if "/rollout/" in config.replace(os.sep, "/"):
        from rlobj.train.samplers import EADSampler, LATRSampler, MCTSSampler, SegmentSampler

        expected = {"ead": EADSampler, "latr": LATRSampler, "ulorl_segments": SegmentSampler,
                    "mcts": MCTSSampler, "propa": MCTSSampler}[Path(config).stem]
        assert type(cli.model.sampler) is expected


def test_print_config(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(ROOT / "examples/configs/default.yaml"), "--print_config"])
    assert stop.value.code in (0, None)
    out = capsys.readouterr().out
    assert "objective: grpo" in out and "steps: 600" in out and "class_path: torch.optim.AdamW" in out


@pytest.mark.parametrize("override, expected", [
    ("--model.objective=[group_zscore, {clip_ratoi: {eps_high: 0.3}}, token_mean]", "objective: unknown term 'clip_ratoi'"),
    ("--model.objective=[group_zscore, {clip_ratio: {eps_hgh: 0.3}}, token_mean]", "eps_hgh"),
    ("--model.rollout.group_size=abc", "group_size"),
    ("--model.rollout.group_size=0", "rollout.group_size: expected an int >= 1"),
    ("--data.train.init_args.seed=x", "data.train"),
])
def test_bad_config_fails_naming_the_key(override, expected, capsys, monkeypatch):
    import rlobj.rollout

    def forbidden(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a model was built before the config was validated")

    monkeypatch.setattr(rlobj.rollout, "build_tiny_qwen2", forbidden)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(ROOT / "examples/configs/default.yaml"), override])
    assert stop.value.code != 0
    captured = capsys.readouterr()
    assert expected in captured.err + captured.out


def test_missing_dataset_file_fails_naming_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(
        "model:\n  objective: grpo\n"
        "data:\n  train:\n    class_path: rlobj.train.JsonlTask\n    init_args: {path: /nonexistent/train.jsonl}\n")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(config)])
    assert stop.value.code == 2
    assert "JsonlTask.path: no such file '/nonexistent/train.jsonl'" in capsys.readouterr().err


def test_eval_subcommand_prints_pass_at_k(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["eval", "--config", str(ROOT / "examples/configs/default.yaml"), "--data.eval_size=2",
          "--model.evaluation.samples=2", "--model.evaluation.k=[1, 2]", "--trainer.logger=false"])
    out = capsys.readouterr().out
    assert "pass@1" in out and "pass@2" in out


def test_validate_subcommand_logs_val_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["validate", "--config", str(ROOT / "examples/configs/default.yaml"), "--data.eval_size=4",
          "--data.val_batch_size=2", "--trainer.limit_val_batches=2", "--model.evaluation.samples=2",
          "--model.evaluation.k=[1, 2]"])
    out = capsys.readouterr().out
    assert "val/pass@1" in out


def test_eval_subcommand_from_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(ROOT / "examples/configs/default.yaml"), "--trainer.max_steps=2",
          "--model.warmup.steps=2", "--data.prompts_per_step=2", "--data.eval_size=2",
          "--model.evaluation.samples=2", "--model.evaluation.k=[1, 2]", "--trainer.enable_checkpointing=true",
          "--trainer.callbacks=[]", "--trainer.default_root_dir=ck", "--trainer.logger=false"])
    checkpoints = glob.glob(str(tmp_path / "ck" / "**" / "*.ckpt"), recursive=True)
    assert checkpoints
    main(["eval", "--config", str(ROOT / "examples/configs/default.yaml"), "--data.eval_size=2",
          "--model.evaluation.samples=2", "--model.evaluation.k=[1, 2]", "--trainer.logger=false",
          f"--ckpt_path={checkpoints[0]}"])
    out = capsys.readouterr().out
    assert os.path.basename(checkpoints[0]) in out and "pass@2" in out
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        main(["eval", "--config", str(ROOT / "examples/configs/default.yaml"), "--trainer.logger=false",
              "--ckpt_path=/nonexistent.ckpt"])


def test_flat_keys_of_rlobj_0_1_name_their_new_place(tmp_path, capsys):
    config = yaml.safe_load((ROOT / "examples/configs/default.yaml").read_text())
    config["model"] = {**config["model"], "group_size": 4, "sft_lr": 1e-3, "optimizer": "sgd"}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(path), "--model.micro_batch_size=4"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    for moved in ("model.group_size moved to model.rollout.group_size", "model.sft_lr moved to model.warmup.lr",
                  "model.optimizer moved to model.optimizer (class_path: torch.optim.AdamW",
                  "--model.micro_batch_size moved to --model.update.micro_batch_size"):
        assert moved in err, err
