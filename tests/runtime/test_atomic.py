"""runtime.atomic: the target appears complete or not at all."""
from __future__ import annotations

import os
import stat

import pytest

from runtime.atomic import atomic_path, atomic_write_bytes, atomic_write_text, check_writable, make_dirs


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


def test_check_writable_says_it_in_the_users_terms(tmp_path, read_only_dir):
    (tmp_path / "model.pt").write_text("a file")
    with pytest.raises(OSError, match=f"^cannot write {tmp_path}/model.pt/x.onnx: {tmp_path}/model.pt is a file, "
                                      "not a directory$"):
        check_writable(tmp_path / "model.pt" / "x.onnx")
    with pytest.raises(OSError, match=f"^cannot write {tmp_path}/model.pt: it is a file, not a directory$"):
        check_writable(tmp_path / "model.pt", directory=True)
    with pytest.raises(OSError, match=f"^cannot write {tmp_path}: it is a directory$"):
        check_writable(tmp_path)
    with pytest.raises(OSError, match=f"^cannot write {read_only_dir}/a/b.mp4: {read_only_dir} is not writable "
                                      r"\([a-z -]+\)$"):
        check_writable(read_only_dir / "a" / "b.mp4")
    check_writable(tmp_path / "new" / "deeper" / "x.json")  # a directory still to be made is fine...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "read_only"]  # ...and nothing was created


def test_failed_writes_name_the_target_not_the_temporary(read_only_dir):
    with pytest.raises(OSError) as e:
        atomic_write_bytes(read_only_dir / "x.bin", b"x")
    assert str(e.value).startswith(f"cannot write {read_only_dir / 'x.bin'}: ") and ".tmp" not in str(e.value)
    with pytest.raises(OSError, match=f"^cannot write {read_only_dir}/m: cannot create {read_only_dir}/m"):
        make_dirs(read_only_dir / "m")
