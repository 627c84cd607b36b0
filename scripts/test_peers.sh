#!/usr/bin/env bash
# Separate CI step: rlobj inside the peer trainers, with the real packages on the CPU:
# TRL (trl==1.16.0, GRPOTrainer) and verl (verl==0.9.1, core_algos registries).
#
# Creates (if missing) its own virtual environment .venv-peers in the repository root, because
# verl pins transformers<5.11 and depends on packages the main venv does not want (ray, wandb,
# peft, torchdata, ...). torch is the local CPU wheel (torch==2.13.0, as scripts/setup.sh), held by
# a constraint. transformers is pinned to verl's range (>=5.5.3,<5.11,!=5.6.0), which TRL 1.16
# accepts (>=4.56.2). verl is installed with --no-deps plus what `verl.trainer.ppo.core_algos`
# imports (ray, tensordict, omegaconf, hydra-core, codetiming, orjson); the tests call verl's own
# functions and registries, not its Ray trainer. rlobj itself comes from the checkout (PYTHONPATH).
# lightning: benchmarks/train_step.py runs rlobj's trainer beside TRL's in this environment.
# The step FAILS if trl or verl cannot be imported (RLOBJ_REQUIRE_PEERS=1: tests/integrations/conftest.py
# imports both; elsewhere the tests skip when they are absent).
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
    constraints="$(mktemp)"
    echo "torch==2.13.0" > "$constraints"
    # one resolver pass for everything but verl (fewer passes: this step has a time budget)
    "$venv_dir/bin/pip" install -q -c "$constraints" torch==2.13.0 "trl==1.16.0" "transformers>=5.5.3,<5.11,!=5.6.0" \
        datasets tokenizers \
        einops jaxtyping beartype pytest hypothesis lightning \
        ray "tensordict>=0.8,<=0.10.0,!=0.9.0" omegaconf hydra-core codetiming orjson
    "$venv_dir/bin/pip" install -q --no-deps "verl==0.9.1"
    rm -f "$constraints"
    touch "$stamp"
else
    echo "[test_peers] reusing $venv_dir"
fi
install_end=$(date +%s)
echo "[test_peers] environment ready in $((install_end - step_start)) s"

"$venv_dir/bin/python" -c "from importlib.metadata import version as v; print('[test_peers] trl', v('trl'), 'verl', v('verl'), 'torch', v('torch'), 'transformers', v('transformers'))"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RLOBJ_TYPECHECK=1 PYTHONHASHSEED=0 RLOBJ_REQUIRE_PEERS=1
# rlobj from this checkout (not installed into the venv: no build step, always the current tree)
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
# pythonpath=tests/integrations only: with tests/ on the path, tests/vllm would pass for a `vllm`
# package and TRL's version probe breaks.
"$venv_dir/bin/python" -m pytest tests/integrations -p no:cacheprovider -o pythonpath=tests/integrations -rs "$@"
test_end=$(date +%s)
echo "[test_peers] tests took $((test_end - install_end)) s; whole step $((test_end - step_start)) s"
