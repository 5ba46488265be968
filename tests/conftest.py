"""Fixtures shared by every test package, including the TensorRT/CUDA stand-ins of tests/support (put on sys.path
here only; see docs/standin.md)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pytest

from runtime import cuda_util, upsample_cuda

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

import trt_standin  # noqa: E402 - found through the path entry above
from shared_data import TENSORRT_API, missing_in_ci, require  # noqa: E402 - likewise

# A shell starts background jobs (`cmd &`, nohup) with SIGINT ignored, and exec keeps an ignored signal ignored: the
# CLIs that the Ctrl-C tests interrupt would then run on to the end. A handler is reset to the default across exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Imported at interpreter start-up through PYTHONPATH: the modules listed in DEEPLAB_TEST_BLOCK look uninstalled.
_BLOCKER = """
import os
import sys


class _Blocker:
    blocked = set(os.environ["DEEPLAB_TEST_BLOCK"].split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
"""


@pytest.fixture
def run_without(tmp_path_factory) -> Callable[..., subprocess.CompletedProcess]:
    """``run_without("torch,onnx", ["-m", "export", ...], cwd)``: run Python in a subprocess in which the named
    top-level modules cannot be imported, as on a machine without them."""
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(_BLOCKER)

    def run(modules: str, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(site), "DEEPLAB_TEST_BLOCK": modules}
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return run


def _clear_cuda_caches() -> None:
    cuda_util.cuda_modules.cache_clear()
    cuda_util.gpu_count.cache_clear()
    upsample_cuda.reset_default_upsamplers()


@pytest.fixture(scope="session")
def api_surfaces():
    """{release: Surface} for every release under ../shared/tensorrt-api (skips when it is absent; fails under CI)."""
    require(TENSORRT_API, "TensorRT binding sources")
    found = trt_standin.available_versions()
    return {v: trt_standin.surface(v) for v in found}


@pytest.fixture
def trt_standin_for(monkeypatch):
    """``trt_standin_for(release, devices=1)``: install that release's tensorrt stand-in and the cuda.bindings
    stand-in for this test; returns the tensorrt module. Skips when ../shared/tensorrt-api is absent (fails under CI)."""
    def install(version: str, devices: int = 1):
        require(TENSORRT_API / version, f"TensorRT {version} binding sources")
        _clear_cuda_caches()
        return trt_standin.install(monkeypatch, version, devices)

    yield install
    monkeypatch.undo()
    _clear_cuda_caches()


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A directory in which no file can be created, also for root (which ignores permission bits): a chmod 555
    directory for other users; for root /sys, where creating a file is refused."""
    d = tmp_path / "read_only"
    d.mkdir()
    d.chmod(0o555)
    for candidate in (d, Path("/sys")):
        try:
            fd, name = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(name)
    pytest.skip("no directory here refuses new files (root, and /sys accepts them)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A CI run without ../shared would skip every test that reads it and still pass: refuse to start."""
    if missing := missing_in_ci():
        raise pytest.UsageError("CI is set but ../shared is incomplete: " + ", ".join(map(str, missing)))
