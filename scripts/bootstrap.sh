#!/usr/bin/env bash
# Set up a virtual environment in .venv with unseen and its dev tools.
# torch is installed first and pinned, so pip never pulls a multi-GB CUDA build on a CPU-only
# machine where a CPU wheel of that version is available (set UNSEEN_TORCH to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${UNSEEN_TORCH:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "$TORCH_SPEC"
fi
# sweep + dist: the Optuna sweep and the Ray-cluster tests run in CI too; text + extract:
# the text-to-new-class and feature-extraction tests (about 1 min more to install, no cache)
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev,sweep,dist,text,extract]'
