"""Atomic artifact writes (models, engines, sidecars, videos, masks, JSON): a temporary file in the target's directory, renamed over the target only on success.

After an error or Ctrl-C nothing is left behind: neither a half-written target nor the temporary file.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def make_dirs(directory: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Path:
    """``mkdir -p directory``; when the directory or one of its parents is a file, one line naming it and what was to
    be written (``target``, default the directory itself), instead of ``[Errno 17] File exists``."""
    d = Path(directory)
    for p in (d, *d.parents):
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(f"cannot write {target if target is not None else d}: "
                                         f"{p} is a file, not a directory")
            break
    d.mkdir(parents=True, exist_ok=True)
    return d


def temp_beside(path: str | os.PathLike[str]) -> Path:
    """A new empty temporary file next to ``path`` (same suffix, so writers that pick a format from it still work),
    with the usual permissions; the caller renames it over ``path`` with ``os.replace`` or deletes it."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: directory {target.parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp creates 0600
    return Path(tmp_name)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path`` atomically, on any exception
    (KeyboardInterrupt included) it is deleted."""
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
