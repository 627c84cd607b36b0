#!/usr/bin/env bash
# The project's main job. Sets up .venv by itself on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m rlobj.train.default_run "$@"
