"""The one report writer of every benchmark and study (JSON + Markdown + CSV + plots, each naming the
command and commit that produced it) and the statistics its tables use (rates with Wilson 95%
intervals, medians, percent cells)."""

from __future__ import annotations

import csv
import json
import math
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
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

from mpc_grasp.bench.engine import REPO_ROOT


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
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10
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
    paths["json"].write_text(json.dumps(report, indent=2, default=repr) + "\n")
    footer = f"\n\nCommand: `{report.get('command', '?')}` — commit `{report['commit'] or 'unknown'}`.\n"
    paths["md"].write_text(markdown(report).rstrip() + footer)
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


# ----------------------------------------------------------------------------- statistics of the tables


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sane at 0 and at ``trials`` successes)."""
    if int(trials) != trials or trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if int(successes) != successes or not 0 <= successes <= trials:
        raise ValueError(f"successes must be an integer in [0, trials={trials}], got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n, p = float(trials), successes / trials
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends despite round-off
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


def success_rate(flags: Iterable[bool | None]) -> tuple[float | None, list[float] | None, int]:
    """(rate, Wilson 95% interval, count) over the flags that are not None; (None, None, 0) if there are none."""
    known = [bool(flag) for flag in flags if flag is not None]
    if not known:
        return None, None, 0
    return sum(known) / len(known), list(wilson_interval(sum(known), len(known))), len(known)


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (None if there are none)."""
    known = sorted(float(value) for value in values if value is not None)
    if not known:
        return None
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else 0.5 * (known[middle - 1] + known[middle])


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
