"""The README's and docs' code runs as written, and the option table matches the code's defaults.

Tagged blocks (```python preceded by ``<!-- test: run -->``) are collected from README.md and every
``docs/*.md`` page; each runs verbatim in a fresh interpreter.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpc_grasp.planners import PLANNERS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUNNABLE = re.compile(r"<!-- test: run -->\s*```python\n(.*?)```", re.DOTALL)
OPTION_TABLE = "| option | grasp | cem | icem | mppi | gd |"


def documentation_pages() -> list[Path]:
    """README.md first, then docs/*.md in name order."""
    return [README, *sorted(DOCS.glob("*.md"))]


def tagged_blocks() -> list[tuple[str, str]]:
    """(page relative to the repository root, code) for every tagged block, in page order."""
    return [
        (str(page.relative_to(ROOT)), code)
        for page in documentation_pages()
        for code in RUNNABLE.findall(page.read_text())
    ]


def runnable_blocks() -> list[str]:
    return [code for _, code in tagged_blocks()]


def test_the_readme_has_a_quickstart_and_a_bring_your_own_model_example() -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 2
    assert any("train_world_model" in block and "GraspMPC" in block for block in blocks)
    readme_blocks = RUNNABLE.findall(README.read_text())
    assert any("train_world_model" in block and "GraspMPC" in block for block in readme_blocks), (
        "the README's quickstart must stay a tagged, runnable block"
    )


def test_a_bring_your_own_model_block_plans_with_every_planner_and_drives_an_env() -> None:
    """A user's nn.Module with state_dim/action_dim/forward, planned with every planner, run by GraspMPC in gym."""
    byo = [
        code
        for code in runnable_blocks()
        if "torch.nn.Module" in code and "state_dim" in code and "action_dim" in code and "def forward" in code
    ]
    assert byo, "no tagged block defines its own world model (torch.nn.Module with state_dim, action_dim, forward)"
    assert any(
        "make_planner" in code
        and all(f'"{name}"' in code for name in PLANNERS)
        and "GraspMPC" in code
        and "gym.make(" in code
        and "env.step(" in code
        for code in byo
    ), "the bring-your-own-model block must plan with every planner and drive GraspMPC in a Gymnasium loop"


@pytest.mark.parametrize(
    "index", range(len(tagged_blocks())), ids=[f"{page}-{i}" for i, (page, _) in enumerate(tagged_blocks())]
)
def test_readme_code_runs_as_written(index: int, tmp_path: Path) -> None:
    """Each tagged block, verbatim, in a fresh interpreter (no state shared with the tests)."""
    code = runnable_blocks()[index]
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::DeprecationWarning:mpc_grasp"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    if "reached the goal" in code:
        assert "reached the goal: True" in completed.stdout, completed.stdout


def option_tables() -> list[tuple[str, str]]:
    """(page, text from the table's header on) for every page with the options table."""
    return [
        (str(page.relative_to(ROOT)), text[text.index(OPTION_TABLE) :])
        for page in documentation_pages()
        if OPTION_TABLE in (text := page.read_text())
    ]


def test_the_option_table_matches_the_planner_configs() -> None:
    tables = option_tables()
    assert tables, f"no page in README.md or docs/ has the options table ({OPTION_TABLE})"
    for page, table in tables:
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", table, re.MULTILINE)
        assert {name for name, *_ in rows} >= {
            "iterations",
            "warm_iterations",
            "num_candidates",
            "action_noise",
            "lr_actions",
        }, page
        for name, *cells in rows:
            for planner, cell in zip(("grasp", "cem", "icem", "mppi", "gd"), cells):
                defaults = {item.name: item.default for item in dataclasses.fields(PLANNERS[planner].config_class)}
                if cell.strip() == "–":
                    assert name not in defaults, (page, planner, name)
                else:
                    assert name in defaults, (page, planner, name)
                    assert str(defaults[name]) == cell.strip(), (page, planner, name, defaults[name], cell)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids of a Markdown page (lower case, punctuation dropped, spaces to hyphens)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    }


def test_relative_links_in_the_readme_and_docs_resolve() -> None:
    """Every relative Markdown link (README -> docs/, docs -> ../results/) points at an existing file and heading."""
    broken = []
    for page in documentation_pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path, _, anchor = target.partition("#")
            if "://" in path or path.startswith("mailto:"):
                continue
            resolved = (page.parent / path) if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_docstring_links_to_the_decisions_page_resolve() -> None:
    """Every ``docs/decisions.md#anchor`` in the package's source names a heading of that page."""
    known = anchors(DOCS / "decisions.md")
    links = [
        (str(path.relative_to(ROOT)), anchor)
        for path in sorted((ROOT / "mpc_grasp").rglob("*.py"))
        for anchor in re.findall(r"docs/decisions\.md#([\w-]+)", path.read_text())
    ]
    assert links, "no docstring links to docs/decisions.md"
    broken = [f"{path}: #{anchor}" for path, anchor in links if anchor not in known]
    assert not broken, broken


def test_package_docstrings_carry_no_lab_notes() -> None:
    """Run results, rename history and references to issues or design sections live in docs/decisions.md."""
    lab_note = re.compile(r"Measured|DESIGN\.md|§|\bissue \d+|\bwas ``\w+``")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "mpc_grasp").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if lab_note.search(line)
    ]
    assert not found, found
