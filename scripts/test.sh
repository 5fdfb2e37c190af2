#!/usr/bin/env bash
# Set up (if needed) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-test,ray}" bash scripts/setup.sh  # the Ray tests run too (Ray stays optional for users)
.venv/bin/ruff check mpc_grasp envs tests experiments  # unused/undefined names fail fast
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"  # both cores
