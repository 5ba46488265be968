"""Named files: words that stand for a file wherever a path is taken (``--model demo``, ``--source demo``,
``Segmenter("demo")``, ``python -m export onnx demo``).

A package names its files through an entry point in the ``deeplab.named`` group: the entry point's name is the word,
its object a function returning ``{kind: path}`` for the kinds in :data:`KINDS` it provides. The bundled demo declares
``demo`` this way (``pyproject.toml``), so ``runtime`` and ``export`` resolve the word without importing ``demo`` and
work where it is absent. Entry points are read from the installed package's metadata: a new one takes effect after
``pip install -e .``.
"""
from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path

GROUP = "deeplab.named"
KINDS = ("model", "checkpoint", "video")


class NamedFileError(RuntimeError):
    """A name is declared but its file cannot be had: the package that declares it is gone, or the file is."""


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def is_name(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` is a declared name rather than a path (nothing is imported to answer)."""
    return str(spec) in _entry_points()


def resolve(spec: str | os.PathLike[str], kind: str,
            error: type[Exception] = NamedFileError) -> str | os.PathLike[str]:
    """The file of ``kind`` that the name ``spec`` stands for; any other ``spec`` unchanged. A name whose file cannot
    be had raises ``error`` with a one-line message."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    entry = _entry_points().get(str(spec))
    if entry is None:
        return spec
    try:
        files = entry.load()()
    except (ImportError, AttributeError) as e:
        raise error(f"the bundled {spec} {kind} is not available ({entry.value}: {e})") from None
    if kind not in files:
        raise error(f"{spec!r} names no {kind} (it names: {', '.join(sorted(files))})")
    path = Path(files[kind])
    if not path.is_file():
        raise error(f"the bundled {spec} {kind} is missing ({path})")
    return path
