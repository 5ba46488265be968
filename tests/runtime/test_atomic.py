"""runtime.atomic: the target appears complete or not at all."""
from __future__ import annotations

import os
import stat

import pytest

from runtime.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_leaves_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".onnx"
            tmp.write_bytes(b"half")
            raise error
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_bad_targets(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "x.bin", b"x")
    assert list(tmp_path.iterdir()) == []
