#!/usr/bin/env bash
# Set up a development machine: Korean fonts (synthetic plates), a virtualenv with Gotcha and its
# dev extras. Re-runnable. Usage: scripts/setup.sh [--with-train]
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && ! fc-list 2>/dev/null | grep -qi nanum; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends fonts-nanum fonts-noto-cjk fonts-unfonts-core
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
if [ "${1:-}" = "--with-train" ]; then
  .venv/bin/python -m pip install -q torch==2.13.0 pillow
fi
echo "Gotcha is set up: source .venv/bin/activate"
