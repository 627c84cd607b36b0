#!/usr/bin/env bash
# The whole test suite. Sets up .venv by itself on a fresh machine.
set -uo pipefail
cd "$(dirname "$0")/.."
# Disk: the three environments (.venv, .venv-vllm, .venv-peers) take about 8 GB; pip's cache would
# add more and a run from nothing never reuses it. A CI run once failed with "No space left on
# device" inside pip: say how much was free, so such a failure reads as what it is.
export PIP_NO_CACHE_DIR=1
free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
echo "=== disk: $((free_kb / 1048576)) GiB free in $(pwd) (the environments need about 8 GiB)"
if [ "$free_kb" -lt $((10 * 1048576)) ]; then
  echo "=== WARNING: less than 10 GiB free; the environment steps may fail with 'No space left on device'"
fi
bash scripts/setup.sh || exit 1
export HF_HUB_OFFLINE=1 RLOBJ_TYPECHECK=1 PYTHONHASHSEED=0 HYPOTHESIS_PROFILE=ci  # conftest.py: the thorough profile
status=0

step() {  # step NAME COMMAND...: run one step, remember failure; pytest's 5 (no tests) is a failure
  local name=$1; shift
  echo "=== $name"
  "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "=== $name FAILED (exit $rc)"
    status=1
  fi
}

step "browser for the docs test (Debian chromium + playwright, no download of browsers)" bash scripts/install_browser.sh
step "unit and property tests, doctests" .venv/bin/python -m pytest tests rlobj -p no:cacheprovider
step "lint" .venv/bin/ruff check rlobj tests examples benchmarks
if [ -f mkdocs.yml ]; then
  step "docs build (strict)" .venv/bin/mkdocs build --strict --quiet --site-dir build/site
fi
if [ -f scripts/test_vllm.sh ] && [ "${RLOBJ_SKIP_VLLM:-0}" != "1" ]; then
  step "real vLLM (CPU build)" bash scripts/test_vllm.sh
fi
if [ -f scripts/test_peers.sh ] && [ "${RLOBJ_SKIP_PEERS:-0}" != "1" ]; then
  step "rlobj inside TRL and verl (real peers, CPU)" bash scripts/test_peers.sh
fi
exit $status
