"""pyproject.toml's GPU extras: each pins cuda-python, NVRTC and TensorRT of one CUDA major (a mismatch installs
libraries that cannot load together, or CUDA 13 builds on a driver that cannot run them)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Packages whose CUDA major is their own version's major when their name has no -cuNN suffix.
VERSIONED_BY_MAJOR = {"cuda-python", "cuda-bindings", "nvidia-cuda-nvrtc"}
CUDA_PACKAGES = VERSIONED_BY_MAJOR | {"tensorrt"}


def extras() -> dict[str, list[Requirement]]:
    data = tomllib.loads(PYPROJECT.read_text())
    return {name: [Requirement(r) for r in reqs] for name, reqs in data["project"]["optional-dependencies"].items()}


def cuda_major(req: Requirement) -> int | None:
    """The CUDA major a requirement pins, or None when it pins none (a bare name, or a range across majors)."""
    m = re.fullmatch(r"(.+)-cu(\d+)", req.name)
    if m:
        return int(m.group(2))
    if req.name not in VERSIONED_BY_MAJOR:
        return None
    majors = {major for major in range(10, 20) if req.specifier.contains(f"{major}.9", prereleases=True)
              or req.specifier.contains(f"{major}.0", prereleases=True)}
    below = all(not req.specifier.contains(f"{major}.0") and not req.specifier.contains(f"{major}.99")
                for major in range(1, 30) if major not in majors)
    return majors.pop() if len(majors) == 1 and below else None


def cuda_requirements(reqs: list[Requirement]) -> list[Requirement]:
    return [r for r in reqs if re.sub(r"-cu\d+$", "", r.name) in CUDA_PACKAGES]


@pytest.mark.parametrize("extra, major", [("gpu-cu12", 12), ("gpu-cu13", 13)])
def test_gpu_extras_pin_one_cuda_major(extra, major):
    reqs = cuda_requirements(extras()[extra])
    names = {re.sub(r"-cu\d+$", "", r.name) for r in reqs}
    assert names == {"cuda-python", "nvidia-cuda-nvrtc", "tensorrt"}, names
    assert {r.name: cuda_major(r) for r in reqs} == {r.name: major for r in reqs}


def test_gpu_is_the_cuda12_set():
    (req,) = extras()["gpu"]
    assert req.name == "deeplab-deploy" and req.extras == {"gpu-cu12"}


def test_test_extra_nvrtc_matches_its_cuda_python():
    reqs = {r.name: r for r in cuda_requirements(extras()["test"])}
    assert set(reqs) == {"cuda-python", "nvidia-cuda-nvrtc"}
    assert cuda_major(reqs["cuda-python"]) is not None
    assert cuda_major(reqs["cuda-python"]) == cuda_major(reqs["nvidia-cuda-nvrtc"])


def test_no_extra_leaves_the_cuda_major_to_pip():
    """A bare `tensorrt` or `cuda-python>=12` resolves to the newest CUDA major, whatever the driver."""
    for extra, reqs in extras().items():
        for req in cuda_requirements(reqs):
            assert cuda_major(req) is not None, f"[{extra}] {req} leaves the CUDA major open"
