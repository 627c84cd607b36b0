#!/usr/bin/env bash
# The GPU check (issue "Scale"): one script, at most ~8 minutes on one H100/H200, nothing downloaded.
#
# The device machine has torch with CUDA, lightning, transformers, hypothesis, jaxtyping, einops
# and no network (see ../shared/ENVIRONMENT.md). rlobj also imports beartype, and LoRA needs peft
# and accelerate: their wheels travel with the working tree. Run here first
#     bash scripts/gpu_check.sh --prepare        # downloads them into .gpu_wheels/ (git-ignored)
# then on the device, with .gpu_wheels carried:
#     bash scripts/gpu_check.sh
# Without CUDA it fails loudly (exit 1) before anything else. On a CPU machine
#     bash scripts/gpu_check.sh --cpu-dry-run
# runs every step at tiny sizes on the CPU (same commands and arguments, --device cpu) to catch a
# broken command before device time is spent; it measures nothing.
#
# It prints:
#   1. the GPU, torch and the versions of the packages the steps use;
#   2. a few RL steps of a random-init 0.5B Qwen2-shaped model (float32 master weights, bf16
#      autocast, HF engine, V = 151,936): generation and update tokens/s, peak GPU memory
#      (benchmarks/rl_steps.py);
#   3. one RL update at V = 151,936: (a) rlobj chunked, (b) full logits, (d) chunked + packed
#      micro-batches, and (c) TRL's GRPOTrainer loss when trl imports on the device (its wheels
#      cannot travel: datasets needs pyarrow, 55 MB, beyond the 64 MiB carried with the tree; the
#      script then says row (c) was not measured) (benchmarks/train_step.py --device cuda);
#   4. the full-vocabulary terms, naive logits vs the vocab view (benchmarks/vocab_terms.py --device cuda);
#   5. the micro-batch law through the trainer on the GPU for four registry entries (grpo, dapo,
#      gspo, k3_kl: benchmarks/trainer_laws.py --device cuda --entries ...; one entry took 82 s on
#      the loaded 2-core CPU, so all 105 would not fit);
#   6. the CUDA test modules (tests/cuda: vocab view, masks, trainer update and packed update
#      equal the CPU's).
# Each step has its own time limit (their sum is 7.5 minutes); every step's failure is reported
# at the end and makes the exit status 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3 || command -v python)}"
WHEELS="peft==0.21.2 accelerate==1.16.0 psutil beartype math-verify latex2sympy2_extended antlr4-python3-runtime==4.13.2 pytest pluggy iniconfig pygments"
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .gpu_wheels
  # pure-Python wheels (psutil: abi3), so they install on the device's Python whatever its version
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps -d .gpu_wheels $WHEELS || { echo "gpu_check --prepare: FAILED"; exit 1; }
  ls -la .gpu_wheels; du -sh .gpu_wheels
  exit 0
fi
dry=0
[ "${1:-}" = "--cpu-dry-run" ] && dry=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
if [ $dry -eq 0 ]; then
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" || {
    echo "gpu_check: FAILED: CUDA is not available (torch.cuda.is_available() is False or torch is missing)"; exit 1; }
  if [ -d .gpu_wheels ]; then
    # installs only what is missing (requirements already satisfied are left alone)
    "$PY" -m pip install -q --no-index --find-links .gpu_wheels peft accelerate beartype math-verify pytest \
      || echo "gpu_check: WARNING: installing .gpu_wheels failed (see above)"
  else
    echo "gpu_check: WARNING: no .gpu_wheels/ (run 'bash scripts/gpu_check.sh --prepare' before the device call)"
  fi
  device=cuda
else
  echo "gpu_check: CPU dry run (tiny sizes, nothing measured)"
  device=cpu
fi
"$PY" -c "import rlobj.train" || { echo "gpu_check: FAILED: rlobj.train does not import (missing wheels?)"; exit 1; }
"$PY" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version
names = ["torch", "lightning", "transformers", "peft", "accelerate", "beartype", "pytest", "trl", "datasets"]
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"
print("packages: " + ", ".join(f"{name} {v(name)}" for name in names))
EOF
status=0
failed=""
step() {  # step NAME TIMEOUT COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc, $((SECONDS - start)) s"
  [ $rc -eq 0 ] || { status=1; failed="$failed [$name]"; }
}
if [ $dry -eq 0 ]; then
  rl_args=(--steps 3)
  ts_args=(--rows 16 --prompt 128 --response 1024 --hidden 896 --layers 4 --repeats 3)
  vt_args=(--tokens 8192 --vocab 151936 --repeats 2)
else
  rl_args=(--steps 1 --hidden 64 --layers 2 --heads 2 --kv-heads 2 --intermediate 128 --prompts 2 --group 2
           --max-new-tokens 8 --micro-batch 4)
  ts_args=(--rows 4 --prompt 8 --response 16 --hidden 64 --layers 2 --repeats 1)
  vt_args=(--tokens 64 --vocab 4096 --hidden 64 --repeats 1 --check-tokens 16)
fi
step "RL steps, 0.5B Qwen2-shaped, bf16 autocast" 110 "$PY" benchmarks/rl_steps.py --device $device "${rl_args[@]}"
step "one RL update at V=151936: rlobj chunked, full, packed vs TRL" 100 "$PY" benchmarks/train_step.py \
  --device $device "${ts_args[@]}"
step "full-vocabulary terms: naive vs vocab view" 80 "$PY" benchmarks/vocab_terms.py --device $device "${vt_args[@]}"
if [ $dry -eq 0 ]; then
  step "micro-batch law through the trainer on cuda" 70 "$PY" benchmarks/trainer_laws.py --device cuda \
    --entries grpo,dapo,gspo,k3_kl
else
  step "micro-batch law through the trainer (dry run: one entry)" 300 "$PY" benchmarks/trainer_laws.py --device cpu \
    --entries grpo
fi
step "CUDA tests" 90 "$PY" -m pytest tests/cuda -q -p no:cacheprovider -W ignore -rs
echo "gpu_check: done${failed:+, FAILED:$failed}"
exit $status
