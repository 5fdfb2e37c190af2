#!/usr/bin/env bash
# Set up (if needed) and run the test suite: lint, format check, type check, then pytest on both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# the Ray tests, the paper-task envs (Point-Maze, Push-T), Minari datasets and the speed suite's peer (pytorch_mppi)
# run too; all stay optional for users (their tests skip without them)
EXTRAS="${EXTRAS:-test,ray,robotics,pusht,minari,peers}" bash scripts/setup.sh
.venv/bin/ruff check mpc_grasp envs tests experiments  # unused/undefined names, import order
.venv/bin/ruff format --check mpc_grasp envs tests experiments
.venv/bin/mypy  # files and settings: [tool.mypy] in pyproject.toml
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"  # both cores
