#!/usr/bin/env bash
# Create .venv and install mpc_grasp with its dependencies (CPU torch 2.13 via constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${EXTRAS:-test}]"
