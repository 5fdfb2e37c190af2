"""Reproducibility helpers shared by the experiment scripts: git commit, source fingerprints, a
resumable JSON-lines log of finished work (a killed run continues where it stopped), and the one
report writer (JSON + Markdown + plot, each naming the command and commit)."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "ResumeLog", "command_line", "file_hashes", "fingerprint", "git_commit", "write_report"]

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The source checkout (the package is installed in editable mode)."""


def git_commit(repo: str | Path = REPO_ROOT, mark_dirty: bool = False) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (None outside a git checkout or without git); with ``mark_dirty``,
    ``+dirty`` is appended when tracked files have uncommitted changes."""
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if completed.returncode != 0 or not completed.stdout.strip():
            return None
        head = completed.stdout.strip()
        if mark_dirty:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10)
            head += "+dirty" if status.stdout.strip() else ""
        return head
    except (OSError, subprocess.SubprocessError):
        return None


def file_hashes(paths: Iterable[str | Path], root: str | Path = REPO_ROOT) -> dict[str, str]:
    """SHA-256 of every existing file in ``paths``, keyed by its path relative to ``root``."""
    root = Path(root)
    out = {}
    for path in sorted(Path(p).resolve() for p in paths):
        if path.is_file():
            try:
                key = str(path.relative_to(root))
            except ValueError:
                key = str(path)
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fingerprint(value: Any) -> str:
    """Short SHA-256 of the canonical JSON of ``value`` (settings + source hashes of one unit of work)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResumeLog:
    """Append-only JSON-lines log of finished work items, each stored with a key and a fingerprint.

    With ``resume=True`` an existing file is read and an item is reused by :meth:`get` only if both its
    key and its fingerprint (settings + code) match; otherwise the file is started afresh. Lines cut off
    by a kill are skipped. Items of other keys are kept, so runs over different subsets accumulate.
    """

    def __init__(self, path: str | Path, resume: bool) -> None:
        self.path = Path(path)
        self._items: dict[str, dict[str, Any]] = {}
        if resume and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by the kill
                    continue
                if isinstance(item, dict) and "key" in item and "fingerprint" in item:
                    self._items[item["key"]] = item
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w") as handle:  # rewrite: only complete lines survive
            for item in self._items.values():
                handle.write(json.dumps(item) + "\n")
        self.reused = 0

    @staticmethod
    def make_key(parts: Mapping[str, Any]) -> str:
        return json.dumps(dict(parts), sort_keys=True)

    def get(self, key: str, fingerprint_: str) -> Any | None:
        """The stored payload of ``key`` if its fingerprint matches, else None."""
        item = self._items.get(key)
        if item is None or item["fingerprint"] != fingerprint_:
            return None
        self.reused += 1
        return item["payload"]

    def put(self, key: str, fingerprint_: str, payload: Any) -> None:
        """Record a finished item (flushed to disk at once)."""
        item = {"key": key, "fingerprint": fingerprint_, "payload": payload}
        self._items[key] = item
        with self.path.open("a") as handle:
            handle.write(json.dumps(item) + "\n")


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The shell command that reproduces this run: ``python SCRIPT ARGS`` (``argv`` None = ``sys.argv[1:]``)."""
    return shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])


def write_report(
    out_dir: str | Path,
    stem: str,
    report: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], Path] | None = None,
) -> dict[str, Path]:
    """Write ``stem.json``, ``stem.md`` and (with ``plot``) ``stem.png`` under ``out_dir``.

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
    if plot is not None:
        paths["png"] = plot(report, out / f"{stem}.png")
    return paths
