#!/usr/bin/env bash
# What issue 11 (the trainer pipeline) needs measured on CUDA, in one run (device machine: torch
# with CUDA, lightning, transformers, jaxtyping, hypothesis; no vLLM):
#   1. the micro-batch law through the trainer for every registered entry on the GPU (float64,
#      K = 1, 2, 4 micro-batches, ppo_epochs 1 and 2): the table of benchmarks/trainer_laws.py;
#   2. the default run (sft warm-up + GRPO) on one GPU through `rlobj fit`: its pass@k table.
# Usage: bash scripts/gpu_pipeline_check.sh   (about 5 minutes on an H100/H200)
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONPATH=.
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" || exit 1
echo "=== micro-batch law on cuda"
python benchmarks/trainer_laws.py --device cuda | tail -n 25
echo "=== default run on one GPU"
python -m rlobj.train.cli fit --config examples/configs/default.yaml --trainer.accelerator=gpu \
  --trainer.devices=1 --trainer.default_root_dir=runs/gpu_default 2>&1 | tail -n 8
