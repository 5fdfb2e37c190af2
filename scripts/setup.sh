#!/usr/bin/env bash
# Create .venv and install mpc_grasp with its dependencies (CPU torch 2.13 via constraints.txt).
# EXTRAS (default "test") picks the optional extras, e.g. EXTRAS=test,ray,robotics,pusht,peers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-test}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${EXTRAS}]"
case ",${EXTRAS}," in
  *,pusht,*)
    # The pusht extra holds gym-pusht's dependencies; gym-pusht itself goes in without them: it
    # requires pygame, whose files would overwrite the pygame-ce that gymnasium[classic-control]
    # renders with (pygame-ce provides everything gym-pusht calls; docs/paper_tasks.md).
    if .venv/bin/python -m pip show --quiet pygame >/dev/null 2>&1; then
      # an earlier plain `pip install gym-pusht` brought pygame: remove it and restore pygame-ce's files
      .venv/bin/python -m pip uninstall --quiet --yes pygame
      .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$(.venv/bin/python -m pip show pygame-ce | sed -n 's/^Version: /pygame-ce==/p')"
    fi
    .venv/bin/python -m pip install --quiet --no-deps "gym-pusht>=0.1.5,<0.2"
    ;;
esac
