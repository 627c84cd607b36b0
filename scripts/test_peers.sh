#!/usr/bin/env bash
# Separate CI step: rlobj inside the peer trainers, with the real packages on the CPU:
# TRL (trl==1.16.0, GRPOTrainer) and verl (verl==0.9.1, core_algos registries).
#
# Creates (if missing) its own virtual environment .venv-peers in the repository root: verl pins
# transformers<5.11 and pulls GPU-oriented dependencies (vllm, flash-attn extras, wandb, ...) that
# must not enter the main venv. torch is the local CPU wheel (torch==2.13.0, as scripts/setup.sh);
# verl is installed with --no-deps plus the few modules `verl.trainer.ppo.core_algos` imports
# (ray, tensordict, omegaconf, hydra-core, codetiming, orjson), under a constraint that keeps torch.
# pip reports verl's unmet transformers pin (trl 1.16 brings transformers 5.25); core_algos does
# not use transformers, and the parity tests call verl's own functions.
# The step FAILS if trl or verl cannot be imported (the tests only skip when they are absent).
#
# Usage: scripts/test_peers.sh [extra pytest args]
# Environment: PYTHON (interpreter for the venv, default python3), PEERS_VENV (default .venv-peers).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
venv_dir="${PEERS_VENV:-$repo_root/.venv-peers}"
python_bin="${PYTHON:-python3}"
step_start=$(date +%s)
stamp="$venv_dir/.rlobj-peers-installed"

if [ ! -f "$stamp" ]; then
    echo "[test_peers] creating $venv_dir"
    "$python_bin" -m venv "$venv_dir"
    "$venv_dir/bin/pip" install -q --upgrade pip
    constraints="$(mktemp)"
    echo "torch==2.13.0" > "$constraints"
    "$venv_dir/bin/pip" install -q -c "$constraints" torch==2.13.0 "trl==1.16.0" datasets tokenizers \
        einops jaxtyping beartype pytest hypothesis
    "$venv_dir/bin/pip" install -q --no-deps "verl==0.9.1"
    "$venv_dir/bin/pip" install -q -c "$constraints" ray "tensordict>=0.8,<=0.10.0,!=0.9.0" omegaconf \
        hydra-core codetiming orjson
    rm -f "$constraints"
    "$venv_dir/bin/pip" install -q --no-deps -e "$repo_root"
    touch "$stamp"
else
    echo "[test_peers] reusing $venv_dir"
fi
install_end=$(date +%s)
echo "[test_peers] environment ready in $((install_end - step_start)) s"

"$venv_dir/bin/python" -c "import torch, trl, verl.trainer.ppo.core_algos, transformers; print('[test_peers] trl', trl.__version__, 'verl', verl.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RLOBJ_TYPECHECK=1 PYTHONHASHSEED=0
# pythonpath=tests/integrations only: with tests/ on the path, tests/vllm would pass for a `vllm`
# package and TRL's version probe breaks.
"$venv_dir/bin/python" -m pytest tests/integrations -p no:cacheprovider -o pythonpath=tests/integrations -rs "$@"
test_end=$(date +%s)
echo "[test_peers] tests took $((test_end - install_end)) s; whole step $((test_end - step_start)) s"
