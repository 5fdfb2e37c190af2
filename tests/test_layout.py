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
