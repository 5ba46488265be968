"""Atomic artifact writes (models, engines, sidecars, videos, masks, JSON): a temporary file in the target's directory, renamed over the target only on success.

After an error or Ctrl-C nothing is left behind: neither a half-written target nor the temporary file.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _reason(error: OSError) -> str:
    """``read-only file system``, ``permission denied``...: the system's words for an errno, without the file name."""
    return (error.strerror or os.strerror(error.errno or 0) or str(error)).lower() if error.errno else str(error)


def _existing_dir(d: Path, target: str | os.PathLike[str]) -> Path:
    """The nearest of ``d`` and its parents that exists; NotADirectoryError (in one line) when that is a file."""
    for p in (d, *d.parents):
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(f"cannot write {target}: {p} is a file, not a directory")
            return p
    return Path(".")


def make_dirs(directory: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Path:
    """``mkdir -p directory``; when the directory or one of its parents is a file, or cannot be created, one line
    naming it and what was to be written (``target``, default the directory itself), instead of an errno."""
    d = Path(directory)
    what = target if target is not None else d
    _existing_dir(d, what)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot write {what}: cannot create {d} ({_reason(e)})") from None
    return d


def check_writable(target: str | os.PathLike[str], directory: bool = False) -> None:
    """Fail now, before any work, when ``target`` (a file, or with ``directory`` a directory of outputs) could not be
    written: a parent that is a file, an existing target of the other kind, or a place where no file can be created
    (read-only, no permission: found by creating and removing an empty file, which also holds for root). Nothing is
    created; the message names ``target`` and the reason."""
    t = Path(target)
    if t.exists() and t.is_dir() != directory:
        raise OSError(f"cannot write {t}: it is a directory" if not directory
                      else f"cannot write {t}: it is a file, not a directory")
    place = _existing_dir(t if directory else t.parent, t)
    try:
        fd, probe = tempfile.mkstemp(dir=place, prefix=".write-check.")
    except OSError as e:
        raise OSError(f"cannot write {t}: {place} is not writable ({_reason(e)})") from None
    os.close(fd)
    os.unlink(probe)


def temp_beside(path: str | os.PathLike[str]) -> Path:
    """A new empty temporary file next to ``path`` (same suffix, so writers that pick a format from it still work),
    with the usual permissions; the caller renames it over ``path`` with ``os.replace`` or deletes it."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory")
    if not target.parent.is_dir():
        _existing_dir(target.parent, target)
        raise FileNotFoundError(f"cannot write {target}: directory {target.parent} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    except OSError as e:  # the temporary file's name means nothing to the user: say it of the target
        raise OSError(f"cannot write {target}: {_reason(e)}") from None
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
