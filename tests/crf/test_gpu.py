"""The GPU CRF (crf.refine(device="cuda")): parity with the CPU CRF on the reference photos, the same bits on every
run, frames that stay on the GPU, and the CPU fallback where it cannot run. The GPU tests skip with a reason where
the package has no GPU CRF or no GPU runs it (the host build of the same source is CTest's crf.gpu_host_parity)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import crf
from crf.gpu import cuda_status, resolve_device

PHOTOS = ["aero1.jpg", "baboon.jpg", "building.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "messi5.jpg",
          "squirrel_cls.jpg"]
PRESETS = {"voc": {}, "pydensecrf": {"preset": "pydensecrf"},
           "video": {"iterations": crf.VIDEO_ITERATIONS, "scale": crf.VIDEO_SCALE}}


def _need_cuda() -> None:
    ok, why = cuda_status()
    if not ok:
        pytest.skip(f"GPU CRF unavailable: {why}")


def test_cuda_falls_back_to_the_cpu_with_one_warning(caplog):
    if cuda_status()[0]:
        pytest.skip("the GPU CRF runs here: nothing falls back")
    image = np.zeros((20, 30, 3), np.uint8)
    probs = crf.utils.synthetic_probabilities(20, 30, 3)
    with caplog.at_level(logging.WARNING, logger="crf.gpu"):
        out = crf.refine(image, probs, device="cuda", iterations=2)
        crf.refine(image, probs, device="cuda", iterations=2)
    np.testing.assert_array_equal(out, crf.refine(image, probs, iterations=2))
    assert len([r for r in caplog.records if "runs on the CPU" in r.getMessage()]) <= 1
    assert resolve_device("cuda")[0] == "cpu" and resolve_device("auto") == ("cpu", "")


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="unknown CRF device"):
        crf.refine(np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.5, np.float32), device="tpu")


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("photo", PHOTOS)
def test_cuda_matches_the_cpu(load_photo, photo, preset):
    _need_cuda()
    image = load_photo(photo, (500, 375))
    probs = crf.utils.synthetic_probabilities(375, 500, 21, seed=PHOTOS.index(photo))
    cpu = crf.refine(image, probs, lattice_cache=None, **PRESETS[preset])
    gpu = crf.refine(image, probs, device="cuda", **PRESETS[preset])
    assert (cpu.argmax(0) == gpu.argmax(0)).mean() >= 0.999
    assert np.abs(cpu - gpu).max() <= 1e-3


@pytest.mark.gpu
def test_cuda_gives_the_same_bits_on_every_run(load_photo):
    _need_cuda()
    image = load_photo("fruits.jpg", (500, 375))
    probs = crf.utils.synthetic_probabilities(375, 500, 21)
    first = crf.refine(image, probs, device="cuda")
    for _ in range(3):
        np.testing.assert_array_equal(crf.refine(image, probs, device="cuda"), first)


@pytest.mark.gpu
def test_frames_on_the_gpu_stay_there(load_photo):
    """CUDA tensors in, a CUDA array out (DLPack): no copy through the host, the same result as host arrays."""
    _need_cuda()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    image = load_photo("home.jpg", (500, 375))
    probs = crf.utils.synthetic_probabilities(375, 500, 21)
    out = crf.refine(torch.from_numpy(image).cuda(), torch.from_numpy(probs).cuda(), device="cuda")
    on_gpu = torch.from_dlpack(out)
    assert on_gpu.is_cuda
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), crf.refine(image, probs, device="cuda"))
