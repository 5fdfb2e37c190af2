"""The library and its research harness stay apart: ``mpc_grasp`` never imports the benchmark harness
(``experiments/bench``), and the installed distribution ships no suite."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
HARNESS = {"bench", "experiments"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_library_module_imports_the_harness() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in _imported_modules(path) if name.split(".")[0] in HARNESS)
        for folder in ("mpc_grasp", "envs")
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert not (ROOT / "mpc_grasp" / "bench").exists()


def test_importing_the_library_and_its_cli_loads_nothing_from_the_harness() -> None:
    code = (
        "import sys, pkgutil, importlib, mpc_grasp\n"
        "for info in pkgutil.walk_packages(mpc_grasp.__path__, 'mpc_grasp.'):\n"
        "    importlib.import_module(info.name)\n"
        "from mpc_grasp.cli.commands import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bench', 'experiments')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_the_distribution_ships_the_library_only() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(name == "mpc_grasp" or name.startswith("mpc_grasp.") for name in setup["packages"])
    assert not any("bench" in name or "experiments" in name for name in setup["packages"])


def _code_lines(path: Path) -> int:
    """Lines that are neither blank, comments nor docstrings (what ``cloc`` calls code)."""
    source = path.read_text()
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        for statement in body if isinstance(body, list) else []:
            is_string = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            if is_string and isinstance(statement.value.value, str) and statement.end_lineno is not None:
                docstring_lines.update(range(statement.lineno, statement.end_lineno + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docstring_lines
    )


def test_the_library_stays_small_enough_to_hold_in_ones_head() -> None:
    """The cap of the library/harness split: at most 8k lines of code in ``mpc_grasp/`` (the envs live in ``envs/``)."""
    assert not (ROOT / "mpc_grasp" / "envs").exists()
    total = sum(_code_lines(path) for path in (ROOT / "mpc_grasp").rglob("*.py"))
    assert 1_000 < total <= 8_000, f"mpc_grasp/ has {total} lines of code"
