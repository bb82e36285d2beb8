#!/usr/bin/env bash
# The main job on a fresh machine: set up, then a one-minute demo on built-in synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/unseen demo "$@"
