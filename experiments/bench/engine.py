"""The benchmark engine: every benchmark and study is a list of work units run by one runner.

A :class:`WorkUnit` names its place in a suite (``key``), everything its result depends on besides the
code (``settings``) and what the worker needs (``task``). :func:`run_units` reuses units finished by an
earlier run from the :class:`ResumeLog` (same key, same fingerprint of settings + code), runs the rest
in-process or as Ray tasks (:mod:`mpc_grasp.parallel`), and logs each result the moment it
arrives, so a killed run continues where it stopped. Reports are written by :mod:`bench.report`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_grasp.parallel import ParallelOptions

__all__ = ["REPO_ROOT", "ResumeLog", "WorkUnit", "code_fingerprint", "file_hashes", "fingerprint", "run_units"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The source checkout: the harness lives in ``experiments/`` and is never installed."""

_CODE_DIRS = ("mpc_grasp", "envs", "experiments/bench")
_PRESENTATION = ("experiments/bench/report.py", "mpc_grasp/cli/", "mpc_grasp/control/media.py", "mpc_grasp/plotting.py")
"""Code that only formats or draws results: editing it does not invalidate logged work."""


def file_hashes(paths: Sequence[str | Path], root: str | Path = REPO_ROOT) -> dict[str, str]:
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


def code_fingerprint(extra_files: Sequence[str | Path] = ()) -> dict[str, str]:
    """SHA-256 of the package's computing code (``mpc_grasp/``, ``envs/``; report, CLI and drawing code
    excluded) plus ``extra_files`` (e.g. the experiment script itself)."""
    files = [path for name in _CODE_DIRS for path in sorted((REPO_ROOT / name).rglob("*.py"))]
    hashes = file_hashes([*files, *extra_files])
    return {name: digest for name, digest in hashes.items() if not name.startswith(_PRESENTATION)}


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


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of a suite: its identity, what its result depends on, and the worker's input."""

    key: Mapping[str, Any]
    """Where the unit sits in the suite (e.g. problem, planner, horizon, first pair): the resume-log key."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Everything besides code that the result depends on (budgets, seeds, task list): fingerprinted."""
    task: Any = None
    """What the worker function receives (must be picklable for Ray); defaults to ``key`` merged with ``settings``."""

    def worker_input(self) -> Any:
        return {**self.key, **self.settings} if self.task is None else self.task


def run_units(
    function: Callable[[Any], Any],
    units: Sequence[WorkUnit],
    *,
    log: ResumeLog | None = None,
    sources: Mapping[str, str] | None = None,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
    desc: str = "work units",
) -> list[Any]:
    """``[function(unit.worker_input()) for unit in units]``, reusing logged results; results in unit order.

    A unit whose key and fingerprint (``settings`` + ``sources``, by default :func:`code_fingerprint`)
    are in ``log`` is not run again. The rest run in-process or on Ray as ``parallel`` says, and each
    result is appended to ``log`` as soon as it arrives. Results must be JSON-serialisable when logged.
    """
    units = list(units)
    keys = [ResumeLog.make_key(unit.key) for unit in units]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"work units must have distinct keys; repeated: {duplicated[:3]}")
    code = dict(code_fingerprint() if sources is None else sources)
    prints = [fingerprint({"settings": dict(unit.settings), "code": code}) for unit in units]
    results: list[Any] = [None] * len(units)
    pending: list[int] = []
    for index in range(len(units)):
        stored = log.get(keys[index], prints[index]) if log is not None else None
        if stored is None:
            pending.append(index)
        else:
            results[index] = stored

    def record(position: int, result: Any) -> None:
        index = pending[position]
        results[index] = result
        if log is not None:
            log.put(keys[index], prints[index], result)

    options = parallel or ParallelOptions()
    if pending:
        options.run(
            function, [units[index].worker_input() for index in pending], progress=progress, desc=desc, on_result=record
        )
    return results
