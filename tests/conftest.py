"""Fixtures shared by every test folder: the TensorRT/CUDA stand-ins of tests/support (put on sys.path here only)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

import trt_standin  # noqa: E402


def _clear_cuda_caches() -> None:
    from runtime import cuda_util, upsample_cuda

    cuda_util.cuda_modules.cache_clear()
    cuda_util.gpu_count.cache_clear()
    upsample_cuda.reset_default_upsamplers()


@pytest.fixture(scope="session")
def api_surfaces():
    """{release: Surface} for every release under ../shared/tensorrt-api (skips when it is absent)."""
    found = trt_standin.available_versions()
    if not found:
        pytest.skip(f"TensorRT binding sources not found at {trt_standin.api_root()} (../shared/tensorrt-api)")
    return {v: trt_standin.surface(v) for v in found}


@pytest.fixture
def trt_standin_for(monkeypatch):
    """``trt_standin_for(release, devices=1)``: install that release's tensorrt stand-in and the cuda.bindings
    stand-in for this test; returns the tensorrt module. Skips when ../shared/tensorrt-api is absent."""
    def install(version: str, devices: int = 1):
        if version not in trt_standin.available_versions():
            pytest.skip(f"TensorRT {version} binding sources not found under {trt_standin.api_root()}")
        _clear_cuda_caches()
        return trt_standin.install(monkeypatch, version, devices)

    yield install
    monkeypatch.undo()
    _clear_cuda_caches()
