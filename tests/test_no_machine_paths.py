"""No shipped file names a development machine's path: every tracked file (assets, models, docs, code) and a Triton
repository exported from the bundled demo model are scanned for absolute home, workspace and user directories.
Provenance is recorded by name (demo.train.provenance); docs say ``../shared/...``."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# An absolute path into a machine's home, workspace or user folders (Linux, macOS, Windows), not part of a URL or of
# a relative path.
MACHINE_PATH = re.compile(rb"(?<![A-Za-z0-9_.~/:-])/(?:work|home|root|Users|mnt|scratch)/[A-Za-z0-9_.-]"
                          rb"|(?<![A-Za-z0-9])[A-Za-z]:\\(?:Users|work)\\", re.IGNORECASE)


def shipped_files() -> list[Path]:
    """The files the repository ships: git's tracked files (every file outside build outputs without git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        files = [REPO / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".ruff_cache"}
        files = [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]
    return [p for p in files if p.is_file() and p != Path(__file__).resolve()]


def machine_paths(path: Path) -> list[str]:
    return sorted({m.group().decode(errors="replace") for m in MACHINE_PATH.finditer(path.read_bytes())})


def test_pattern_finds_machine_paths():
    for text in (b'"data": "/work/data/val5"', b"init /home/alice/runs/B.pt", b"C:\\Users\\bob\\model.pt",
                 b'{"x": "/root/ckpt.pt"}'):
        assert MACHINE_PATH.search(text), text
    for text in (b"../shared/reference", b"https://github.com/home/x", b"runtime/work/x", b"/tmp/tb", b"~/work/x"):
        assert not MACHINE_PATH.search(text), text


def test_no_shipped_file_names_a_machine_path():
    files = shipped_files()
    assert any(p.name == "demo.onnx" for p in files) and any(p.name == "README.md" for p in files)
    found = {str(p.relative_to(REPO)): hits for p in files if (hits := machine_paths(p))}
    assert not found, found


def test_exported_triton_repository_names_no_machine_path(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from export.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["triton", "demo", "-o", "repo"]) == 0
    written = [p for p in (tmp_path / "repo").rglob("*") if p.is_file()]
    assert any(p.name == "config.pbtxt" for p in written)
    found = {str(p.relative_to(tmp_path)): hits for p in written if (hits := machine_paths(p))}
    assert not found, found
