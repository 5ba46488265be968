"""TensorRT + cuda.bindings stand-ins for running the engine path without a GPU (tests only; see docs/standin.md).

In-process: :func:`install` puts one release's ``tensorrt`` and the stand-in ``cuda.bindings`` into ``sys.modules``.
Subprocesses: :func:`subprocess_env` puts ``tests/support/shims`` first on PYTHONPATH, whose ``tensorrt`` and
``cuda.bindings`` packages load the same stand-ins for the release named by ``TRT_STANDIN_VERSION``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from trt_standin import cuda
from trt_standin.tensorrt import api_root, inject_fault, make_module, surface
from trt_standin.surface import versions

SUPPORT = Path(__file__).resolve().parent.parent
SHIMS = SUPPORT / "shims"
CUDA_MODULES = ("cuda.bindings", "cuda.bindings.runtime", "cuda.bindings.driver")


def available_versions() -> list[str]:
    """Release folders with binding sources, or [] when ``../shared/tensorrt-api`` is absent."""
    root = api_root()
    return versions(root) if root.is_dir() else []


def install(monkeypatch: Any, version: str, devices: int = 1) -> ModuleType:
    """Make ``import tensorrt`` and ``from cuda.bindings import runtime, driver, nvrtc`` load the stand-ins for the
    rest of a test (``monkeypatch`` undoes it), with ``devices`` fresh stand-in GPUs. Returns the tensorrt module.
    The caller clears ``runtime.cuda_util``'s caches before and after (the ``trt_standin`` fixture does)."""
    from cuda.bindings import nvrtc  # noqa: F401 - cuda-python's own NVRTC, imported before the package is replaced

    cuda.reset(devices)
    trt = make_module(version)
    bindings = cuda.make_bindings()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", bindings.runtime)
    monkeypatch.setitem(sys.modules, "cuda.bindings.driver", bindings.driver)
    return trt


def subprocess_env(version: str, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that should see the stand-ins of ``version``."""
    env = dict(os.environ)
    path = [str(SHIMS), str(SUPPORT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(path), TRT_STANDIN_VERSION=version, **extra)
    return env


__all__ = ["available_versions", "cuda", "inject_fault", "install", "make_module", "subprocess_env", "surface"]
