#!/usr/bin/env bash
# The main job on a fresh machine: set up, then a short demo on built-in synthetic data
# (about 2-4 min on 2 CPU cores: validation and 3 seeds of f-CLSWGAN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/unseen demo "$@"
