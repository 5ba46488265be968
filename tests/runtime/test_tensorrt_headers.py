"""The C++ TensorRT runner (runtime/cpp/src/engine_tensorrt.cpp) compiles against the headers of every TensorRT
release deployments run, from 8.5 (JetPack 5) to 11: ``g++ -fsyntax-only`` with ``../shared/tensorrt-api/<release>/
include`` and CUDA's include directory. No TensorRT library or GPU is needed. Before 10.16 the folders hold no
``NvOnnxParser.h``: the runtime only deserializes engines, so it must not need the parser."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from shared_data import TENSORRT_API, require

pytestmark = pytest.mark.slow  # compiles against six TensorRT releases

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "runtime" / "cpp" / "src" / "engine_tensorrt.cpp"
# JetPack 5.1 (8.5), JetPack 6.0 (8.6), JetPack 6.1/6.2 (10.3), JetPack 7.0 (10.13), latest 10.x (10.16), 11.x.
RELEASES = ["8.5.3", "8.6.1", "10.3.0", "10.13.3", "10.16", "11.1"]


def cuda_include() -> Path | None:
    """CUDA's include directory (cuda_runtime_api.h): $CUDA_HOME or $CUDA_PATH, nvcc's toolkit, /usr/local/cuda."""
    candidates = [Path(os.environ[v]) / "include" for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    if nvcc := shutil.which("nvcc"):
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    candidates.append(Path("/usr/local/cuda/include"))
    return next((d for d in candidates if (d / "cuda_runtime_api.h").is_file()), None)


def releases() -> list[str]:
    """The releases above plus any other folder ../shared/tensorrt-api holds."""
    found = {d.name for d in TENSORRT_API.iterdir() if (d / "include").is_dir()} if TENSORRT_API.is_dir() else set()
    return RELEASES + sorted(found - set(RELEASES))


@pytest.mark.parametrize("release", releases())
def test_engine_runner_compiles_against_release_headers(release: str) -> None:
    include = require(TENSORRT_API / release / "include", f"TensorRT {release} headers")
    cuda = cuda_include()
    if cuda is None:
        pytest.skip("CUDA's headers (cuda_runtime_api.h) not found: set CUDA_HOME or put nvcc on PATH")
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++) on PATH")
    # -isystem: warnings are ours only (the headers deprecate their own plugin APIs); -Werror makes an API this
    # release deprecates a failure here.
    cmd = [compiler, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-isystem", str(include),
           "-isystem", str(cuda), "-I", str(ROOT / "runtime/cpp/include"), "-I", str(ROOT / "runtime/cpp/src"),
           str(SOURCE)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"engine_tensorrt.cpp against TensorRT {release}:\n{result.stderr[-4000:]}"
    # The folder holds the release it is named for (NV_TENSORRT_MAJOR/MINOR as the compiler sees them).
    probe = subprocess.run([compiler, "-E", "-P", "-x", "c++", "-isystem", str(include), "-"],
                           input="#include <NvInferVersion.h>\nNV_TENSORRT_MAJOR.NV_TENSORRT_MINOR\n",
                           capture_output=True, text=True, check=True)
    found = probe.stdout.strip().splitlines()[-1].replace(" ", "")
    assert f"{release}.".startswith(f"{found}."), f"{include} holds the headers of TensorRT {found}"
