"""runtime.upsample against torch.nn.functional.interpolate (CPU), C++ against the numpy fallback, and the kernel
source through nvcc / NVRTC where they exist. GPU execution tests are marked gpu."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runtime import upsample

torch = pytest.importorskip("torch")
F = torch.nn.functional

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "runtime" / "kernels" / "bilinear_softmax.cu"

CASES = [  # (N, C, h, w, H, W)
    (1, 21, 41, 41, 321, 321),
    (2, 5, 7, 9, 56, 72),
    (1, 3, 8, 8, 64, 64),
    (1, 4, 5, 6, 5, 6),      # identity
    (1, 2, 1, 1, 9, 7),      # single pixel
    (1, 3, 6, 4, 1, 1),      # downsample to one pixel
    (1, 3, 10, 12, 7, 5),    # downsampling
    (1, 6, 13, 17, 100, 129),
]


def _logits(n, c, h, w, seed=0):
    return (np.random.default_rng(seed).standard_normal((n, c, h, w)) * 4).astype(np.float32)


def _torch(x, size, ac):
    return F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=ac)


@pytest.mark.parametrize("impl", ["c++", "numpy"])
@pytest.mark.parametrize("ac", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_matches_torch(case, ac, impl, monkeypatch):
    if impl == "numpy":
        monkeypatch.setattr(upsample, "_ext", None)
    elif upsample.implementation() != "c++":
        pytest.skip("the C++ extension is not built")
    n, c, h, w, H, W = case
    x = _logits(n, c, h, w)
    ref = _torch(x, (H, W), ac)
    np.testing.assert_allclose(upsample.bilinear(x, (H, W), ac), ref.numpy(), rtol=0, atol=1e-5)
    probs = upsample.bilinear_softmax(x, (H, W), ac)
    np.testing.assert_allclose(probs, torch.softmax(ref, 1).numpy(), rtol=0, atol=1e-5)
    labels = upsample.bilinear_labels(x, (H, W), ac)
    assert labels.dtype == np.uint8 and labels.shape == (n, H, W)
    agree = (labels == ref.argmax(1).numpy()).mean()
    assert agree > 0.999  # exact ties between float32 roundings may differ


@pytest.mark.parametrize("ac", [False, True])
def test_crop_is_the_top_left_of_the_full_result(ac):
    x = _logits(2, 7, 9, 11, seed=1)
    full = upsample.bilinear_softmax(x, (72, 88), ac)
    crop = upsample.bilinear_softmax(x, (72, 88), ac, crop=(65, 83))
    assert crop.shape == (2, 7, 65, 83)
    np.testing.assert_array_equal(crop, full[:, :, :65, :83])
    np.testing.assert_array_equal(upsample.bilinear_labels(x, (72, 88), ac, crop=(65, 83)),
                                  upsample.bilinear_labels(x, (72, 88), ac)[:, :65, :83])


def test_three_dimensional_input_and_many_classes():
    x = _logits(1, 300, 4, 5)[0]
    labels = upsample.bilinear_labels(x, (16, 20))
    assert labels.dtype == np.int32 and labels.shape == (16, 20)
    np.testing.assert_array_equal(labels, _torch(x[None], (16, 20), False)[0].argmax(0).numpy())
    assert upsample.bilinear_softmax(x, (16, 20)).shape == (300, 16, 20)


def test_threads_give_identical_results():
    x = _logits(1, 21, 41, 41)
    upsample.set_num_threads(1)
    one = upsample.bilinear_softmax(x, (321, 321))
    upsample.set_num_threads(0)
    np.testing.assert_array_equal(one, upsample.bilinear_softmax(x, (321, 321)))


@pytest.mark.parametrize("bad", [dict(x=np.zeros((1, 0, 4, 4), np.float32)), dict(x=np.zeros((4, 4), np.float32)),
                                 dict(size=(0, 8)), dict(crop=(9, 8)), dict(device="tpu")])
def test_bad_arguments(bad):
    args = dict(x=np.zeros((1, 2, 4, 4), np.float32), size=(8, 8), crop=None, device="cpu") | bad
    with pytest.raises(ValueError):
        upsample.bilinear_softmax(args["x"], args["size"], crop=args["crop"], device=args["device"])


def test_other_dtypes_and_layouts_are_converted():
    x = _logits(1, 3, 5, 6).astype(np.float64)
    xt = np.asfortranarray(x)
    np.testing.assert_allclose(upsample.bilinear(xt, (10, 12)), _torch(x.astype(np.float32), (10, 12), False).numpy(),
                               atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernel_source_compiles_with_nvcc(tmp_path):
    subprocess.run(["nvcc", "-c", "-arch=sm_80", "-x", "cu", str(KERNEL), "-o", str(tmp_path / "k.o")], check=True)
    wrapper = KERNEL.parent / "upsample_cuda.cu"
    subprocess.run(["nvcc", "-c", "-arch=sm_87", "-DDEEPLAB_WITH_CUDA", "-I",
                    str(ROOT / "runtime" / "cpp" / "upsample" / "include"),
                    str(wrapper), "-o", str(tmp_path / "w.o")], check=True)


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
def test_kernel_semantics_emulated_on_the_cpu(tmp_path):
    """The CUDA kernels compiled as host C++ (CUDA keywords defined away) and run thread by thread must equal the CPU
    implementation, which equals torch: checks the kernels' indexing and arithmetic without a GPU."""
    upsample_dir = ROOT / "runtime" / "cpp" / "upsample"
    exe = tmp_path / "emulate"
    subprocess.run(["c++", "-std=c++17", "-O1", "-pthread", "-I", str(upsample_dir / "include"), "-I", str(KERNEL.parent),
                    str(upsample_dir / "tests" / "test_kernel_emulation.cpp"),
                    str(upsample_dir / "src" / "upsample.cpp"), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kernel_source_compiles_with_nvrtc():
    from runtime import upsample_cuda
    try:
        ptx = upsample_cuda.compile_kernels(KERNEL.read_text(), (8, 7), cubin=False)
    except upsample_cuda.NvrtcUnavailable as e:
        pytest.skip(str(e))
    for name in upsample_cuda.KERNELS.values():
        assert name.encode() in ptx


def test_choose_target():
    from runtime.upsample_cuda import CudaError, choose_target
    assert choose_target((8, 7), [75, 80, 86, 87, 89, 90]) == (87, True)
    assert choose_target((12, 1), [75, 80, 90, 100, 120]) == (120, False)  # newer GPU: PTX, JIT by the driver
    with pytest.raises(CudaError, match="not the GPU's sm_72"):
        choose_target((7, 2), [75, 80])


def test_kernel_cache(tmp_path, monkeypatch):
    from runtime import upsample_cuda
    monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path))
    try:
        first = upsample_cuda.cached_kernels((8, 0))
    except upsample_cuda.NvrtcUnavailable as e:
        pytest.skip(str(e))
    (cached,) = (tmp_path / "kernels").iterdir()
    assert cached.name.endswith("-sm_80.bin") and cached.read_bytes() == first
    cached.write_bytes(b"marker")  # the second call reads the file instead of compiling
    assert upsample_cuda.cached_kernels((8, 0)) == b"marker"


@pytest.mark.gpu
@pytest.mark.parametrize("ac", [False, True])
def test_cuda_matches_cpu(ac):
    from runtime.cuda_util import gpu_available
    if not gpu_available():
        pytest.skip("no CUDA GPU")
    x = _logits(2, 21, 41, 41)
    for fn in (upsample.bilinear, upsample.bilinear_softmax):
        np.testing.assert_allclose(fn(x, (321, 321), ac, crop=(300, 310), device="cuda"),
                                   fn(x, (321, 321), ac, crop=(300, 310)), atol=1e-5)
    np.testing.assert_array_equal(upsample.bilinear_labels(x, (321, 321), ac, device="cuda"),
                                  upsample.bilinear_labels(x, (321, 321), ac))
