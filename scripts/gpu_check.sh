#!/usr/bin/env bash
# The GPU check (issue "Scale"): one script, at most ~8 minutes on one H100/H200, nothing downloaded.
#
# The device machine has torch with CUDA, lightning, transformers, hypothesis, jaxtyping and no
# network (see ../shared/ENVIRONMENT.md). Wheels it lacks (peft, accelerate for LoRA) travel with
# the working tree: run `bash scripts/gpu_check.sh --prepare` here first (downloads them into
# .gpu_wheels/, git-ignored), then on the device: `bash scripts/gpu_check.sh` with .gpu_wheels carried.
#
# It prints:
#   1. the GPU and torch;
#   2. a few RL steps of a random-init 0.5B Qwen2-shaped model (float32 master weights, bf16
#      autocast, HF engine, V = 151,936): generation and update tokens/s, peak GPU memory
#      (benchmarks/rl_steps.py);
#   3. one RL update at V = 151,936, chunked log-probs vs full logits: peak memory and time
#      (benchmarks/train_step.py --device cuda);
#   4. the full-vocabulary terms, naive logits vs the vocab view (benchmarks/vocab_terms.py --device cuda);
#   5. the micro-batch law through the trainer for every registered entry on the GPU
#      (benchmarks/trainer_laws.py --device cuda);
#   6. the CUDA test modules (tests/cuda: vocab view, masks, trainer update equal the CPU's).
# It fails loudly (exit 1) when CUDA is missing; every step's failure is reported at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .gpu_wheels
  python3 -m pip download -q --no-deps -d .gpu_wheels "peft==0.21.2" "accelerate==1.16.0" "psutil"
  ls -la .gpu_wheels
  exit 0
fi
export HF_HUB_OFFLINE=1 PYTHONPATH=. PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" || {
  echo "gpu_check: FAILED: CUDA is not available"; exit 1; }
if [ -d .gpu_wheels ]; then
  python -m pip install -q --no-index --no-deps .gpu_wheels/*.whl || echo "gpu_check: could not install .gpu_wheels"
fi
status=0
step() {  # step NAME TIMEOUT COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc, $((SECONDS - start)) s"
  [ $rc -eq 0 ] || { status=1; failed="${failed:-} [$name]"; }
}
step "RL steps, 0.5B Qwen2-shaped, bf16 autocast" 120 python benchmarks/rl_steps.py --device cuda --steps 3
step "one RL update at V=151936: chunked vs full" 60 python benchmarks/train_step.py --device cuda \
  --rows 16 --prompt 128 --response 1024 --hidden 896 --layers 4 --repeats 3
step "full-vocabulary terms: naive vs vocab view" 90 python benchmarks/vocab_terms.py --device cuda \
  --tokens 8192 --vocab 151936 --repeats 2
step "micro-batch law through the trainer on cuda" 120 python benchmarks/trainer_laws.py --device cuda
step "CUDA tests" 60 python -m pytest tests/cuda -q -p no:cacheprovider -W ignore
echo "gpu_check: done${failed:+, FAILED:$failed}"
exit $status
