"""Atomic file writes: a file is either its old self or completely written, never half-written.

Every file the package writes (checkpoints, datasets, figures, GIFs, JSON reports) goes through
:func:`atomic_path`: the writer fills a temporary file in the same folder, which then replaces the
target with ``os.replace`` (atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write; on success it replaces ``path``.

    The parent folder is created. The temporary name is hidden (leading dot) and keeps ``path``'s
    suffix, so writers that pick a format from the extension (matplotlib, Pillow) behave as for
    ``path``. If the block raises (an exception or ``KeyboardInterrupt``), the temporary file is
    removed and ``path`` keeps its previous content (or stays absent). Guards against an
    interrupted process, not against power loss (no fsync).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
