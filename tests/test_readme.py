"""The README's code runs as written, and its option table matches the code's defaults."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpc_grasp.planners import PLANNERS

README = Path(__file__).resolve().parents[1] / "README.md"
RUNNABLE = re.compile(r"<!-- test: run -->\s*```python\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[str]:
    return RUNNABLE.findall(README.read_text())


def test_the_readme_has_a_quickstart_and_a_bring_your_own_model_example() -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 2
    assert any("train_world_model" in block and "GraspMPC" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_code_runs_as_written(index: int, tmp_path: Path) -> None:
    """Each tagged block, verbatim, in a fresh interpreter (no state shared with the tests)."""
    code = runnable_blocks()[index]
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::DeprecationWarning:mpc_grasp"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    if "reached the goal" in code:
        assert "reached the goal: True" in completed.stdout, completed.stdout


def test_the_option_table_matches_the_planner_configs() -> None:
    text = README.read_text()
    table = text[text.index("| option | grasp | cem | mppi | gd |"):]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", table, re.MULTILINE)
    assert {name for name, *_ in rows} >= {"iterations", "warm_iterations", "num_candidates", "action_noise", "lr_actions"}
    for name, *cells in rows:
        for planner, cell in zip(("grasp", "cem", "mppi", "gd"), cells):
            defaults = {item.name: item.default for item in dataclasses.fields(PLANNERS[planner].config_class)}
            if cell.strip() == "–":
                assert name not in defaults, (planner, name)
            else:
                assert name in defaults, (planner, name)
                assert str(defaults[name]) == cell.strip(), (planner, name, defaults[name], cell)
