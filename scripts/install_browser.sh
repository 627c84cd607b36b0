#!/usr/bin/env bash
# Install what the docs browser test needs: Debian's chromium (if /usr/bin/chromium is missing)
# and the playwright Python package into .venv. Never runs `playwright install` (no browser
# download: playwright drives /usr/bin/chromium). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else
    echo "install_browser: /usr/bin/chromium missing and not root (no sudo): cannot install" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
if ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  .venv/bin/python -m pip install -q "playwright>=1.40"
fi
/usr/bin/chromium --version
