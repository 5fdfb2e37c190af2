"""The one report writer of every benchmark and study (JSON + Markdown + CSV + plots, each naming the
command and commit that produced it) and its table cells; the statistics (rates with Wilson 95%
intervals, medians) are the library's :mod:`mpc_grasp.stats`, re-exported here."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "ci_cell",
    "command_line",
    "git_commit",
    "median",
    "number_cell",
    "pct",
    "success_rate",
    "wilson_interval",
    "write_report",
]

from bench.engine import REPO_ROOT
from mpc_grasp.atomic import atomic_write_text
from mpc_grasp.stats import median, success_rate, wilson_interval


def git_commit(repo: str | Path = REPO_ROOT, mark_dirty: bool = False) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (None outside a git checkout or without git); with ``mark_dirty``,
    ``+dirty`` is appended when tracked files have uncommitted changes."""
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if completed.returncode != 0 or not completed.stdout.strip():
            return None
        head = completed.stdout.strip()
        if mark_dirty:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=repo,
                capture_output=True,
                text=True,
                timeout=10,
            )
            head += "+dirty" if status.stdout.strip() else ""
        return head
    except (OSError, subprocess.SubprocessError):
        return None


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The shell command that reproduces this run: ``python SCRIPT ARGS`` (``argv`` None = ``sys.argv[1:]``)."""
    return shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])


def write_report(
    out_dir: str | Path,
    stem: str,
    report: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], Path] | None = None,
    *,
    csv_rows: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
    plots: Mapping[str, Callable[[dict[str, Any], Path], Path]] | None = None,
) -> dict[str, Path]:
    """Write ``stem.json``, ``stem.md``, with ``csv_rows`` ``stem.csv`` (two ``#`` lines: command, commit), with ``plot`` ``stem.png`` and
    with ``plots`` one ``stem_<name>.png`` per entry, under ``out_dir``.

    ``report`` gets ``commit`` (``git_commit``, ``+dirty`` marked) unless present; it should carry
    ``command`` (see :func:`command_line`). The Markdown ends with the command and commit, so a
    table copied out of it still says where it came from.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.setdefault("commit", git_commit(mark_dirty=True))
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, default=repr) + "\n")
    footer = f"\n\nCommand: `{report.get('command', '?')}` — commit `{report['commit'] or 'unknown'}`.\n"
    atomic_write_text(paths["md"], markdown(report).rstrip() + footer)
    if csv_rows is not None:
        rows = csv_rows(report)
        paths["csv"] = out / f"{stem}.csv"
        with paths["csv"].open("w", newline="") as handle:
            handle.write(f"# command: {report.get('command', '?')}\n# git_commit: {report['commit'] or 'unknown'}\n")
            columns = list(dict.fromkeys(column for row in rows for column in row))
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    if plot is not None:
        paths["png"] = plot(report, out / f"{stem}.png")
    for name, draw in (plots or {}).items():
        paths[f"png_{name}"] = draw(report, out / f"{stem}_{name}.png")
    return paths


# ----------------------------------------------------------------------------- table cells (statistics: mpc_grasp.stats)


def pct(rate: float | None) -> str:
    """A rate as a table cell: ``"42%"``, or ``"–"`` when unknown."""
    return "–" if rate is None else f"{100 * rate:.0f}%"


def number_cell(value: float | None, digits: int = 2) -> str:
    """A number as a table cell with ``digits`` decimals, or ``"–"`` when unknown."""
    return "–" if value is None else f"{value:.{digits}f}"


def ci_cell(rate: float | None, interval: Sequence[float] | None) -> str:
    """``"42% [30–55]"``: a rate with its 95% interval in percent."""
    if rate is None:
        return "–"
    if not interval:
        return pct(rate)
    return f"{pct(rate)} [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]"
