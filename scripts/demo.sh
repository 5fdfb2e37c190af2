#!/usr/bin/env bash
# Set up (if needed) and run the main job: a short closed-loop GraspMPC demo on grid world `wall`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python experiments/demo.py "$@"
