"""The Python package: presets, threads, batches, the GIL, and pydensecrf.utils equivalents."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import crf
from crf import _crf, utils


def test_presets_match_the_cpp_defaults():
    for name, factory in (("voc", _crf.RefineParams.voc), ("pydensecrf", _crf.RefineParams.pydensecrf)):
        p, c = crf.PRESETS[name], factory()
        assert (p.iterations, p.gaussian_sxy, p.gaussian_weight, p.bilateral_sxy, p.bilateral_srgb,
                p.bilateral_weight, p.normalization, p.scale, p.half_rows) == (
                    c.iterations, c.gaussian_sxy, c.gaussian_weight, c.bilateral_sxy, c.bilateral_srgb,
                    c.bilateral_weight, c.normalization, c.scale, c.half_rows)
        assert p.half_rows  # refine: half-precision vertex rows where the CPU has them
    voc = crf.PRESETS["voc"]
    assert (voc.iterations, voc.gaussian_weight, voc.gaussian_sxy) == (10, 3, 1)
    assert (voc.bilateral_weight, voc.bilateral_sxy, voc.bilateral_srgb) == (4, 67, 3)


def test_overrides_and_custom_presets():
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(20, 30, 4, seed=2, stride=4, region=2)
    custom = crf.Preset(iterations=3, gaussian_sxy=2, gaussian_weight=1, bilateral_sxy=10, bilateral_srgb=5,
                        bilateral_weight=2)
    np.testing.assert_array_equal(
        crf.refine(img, probs, preset=custom),
        crf.refine(img, probs, iterations=3, gaussian_sxy=2, gaussian_weight=1, bilateral_sxy=10, bilateral_srgb=5,
                   bilateral_weight=2))
    np.testing.assert_allclose(crf.refine(img, probs, iterations=0).sum(0), 1, rtol=1e-5)


def test_reused_smoothness_lattice_is_exact():
    """The smoothness lattice of the last geometry is reused: a reuse equals a fresh build, bit for bit."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(24, 36, 5, seed=4, stride=4, region=2)
    crf.refine(img[:20], probs[:, :20], preset="pydensecrf")  # another geometry: the next call builds afresh
    fresh = crf.refine(img, probs, preset="pydensecrf")
    np.testing.assert_array_equal(crf.refine(img, probs, preset="pydensecrf"), fresh)
    for other in ({"gaussian_weight": 5}, {"gaussian_sxy": 2}, {"normalization": crf.NORMALIZE_AFTER}):
        changed = crf.refine(img, probs, preset="pydensecrf", **other)  # every key field matters: no stale reuse
        assert not np.array_equal(changed, fresh), other
        crf.refine(img[:20], probs[:, :20], preset="pydensecrf")
        np.testing.assert_array_equal(crf.refine(img, probs, preset="pydensecrf", **other), changed)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """size x size matrix of exp(-d^2 / 2 sigma^2) for |d| <= ceil(3 sigma), else 0."""
    d = np.abs(np.arange(size)[:, None] - np.arange(size)[None, :])
    return np.where(d <= np.ceil(3 * sigma - 1e-6), np.exp(-0.5 * d**2 / sigma**2), 0.0)


@pytest.mark.parametrize("sxy,normalization", [((1.0, 1.0), crf.NORMALIZE_SYMMETRIC),
                                               ((1.3, 0.6), crf.NORMALIZE_BEFORE),
                                               ((0.5, 1.0), crf.NORMALIZE_AFTER)])
def test_small_smoothness_kernel_is_an_exact_gaussian(sxy, normalization):
    """sxy <= 4/3 with a normalised kernel: one mean-field step equals numpy's, with a separable Gaussian whose taps
    reach 3 sigma (normalised over the taps inside the image); lattice=True keeps pydensecrf's lattice instead."""
    h, w, n = 23, 31, 4
    rng = np.random.default_rng(9)
    unary = utils.unary_from_softmax(utils.synthetic_probabilities(h, w, n, seed=9, stride=4, region=2))
    q0 = np.ascontiguousarray(rng.dirichlet(np.ones(n), size=h * w).T, dtype=np.float32)
    results = {}
    for lattice in (False, True):
        d = crf.DenseCRF2D(w, h, n)
        d.setUnaryEnergy(unary)
        d.addPairwiseGaussian(sxy=sxy, compat=3, normalization=normalization, lattice=lattice)
        results[lattice] = q0.copy()
        d.stepInference(results[lattice])
    ky, kx = _gaussian_matrix(h, sxy[1]), _gaussian_matrix(w, sxy[0])
    norm = ky.sum(1)[:, None] * kx.sum(1)[None, :]
    pre, post = {crf.NORMALIZE_SYMMETRIC: (norm**-0.5, norm**-0.5), crf.NORMALIZE_BEFORE: (1 / norm, 1.0),
                 crf.NORMALIZE_AFTER: (1.0, 1 / norm)}[normalization]
    filtered = np.einsum("ij,njk,lk->nil", ky, q0.reshape(n, h, w) * pre, kx) * post
    energy = -unary.reshape(n, h, w) + 3 * filtered
    expected = np.exp(energy - energy.max(0))
    np.testing.assert_allclose(results[False].reshape(n, h, w), expected / expected.sum(0), atol=1e-5)
    assert np.abs(results[True] - results[False]).max() > 1e-4  # the lattice is another kernel


def test_set_num_threads():
    before = crf.get_num_threads()
    try:
        crf.set_num_threads(3)
        assert crf.get_num_threads() == 3
        crf.set_num_threads(0)  # back to the default: all cores
        assert crf.get_num_threads() >= 1
    finally:
        crf.set_num_threads(before)


def test_refine_batch_equals_single_calls():
    rng = np.random.default_rng(3)
    sizes = [(24, 32), (17, 9), (40, 40)]
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    probs = [utils.synthetic_probabilities(h, w, 5, seed=i, stride=4, region=2) for i, (h, w) in enumerate(sizes)]
    batch = crf.refine_batch(imgs, probs, preset="pydensecrf")
    for img, p, out in zip(imgs, probs, batch):
        np.testing.assert_array_equal(out, crf.refine(img, p, preset="pydensecrf"))
    assert crf.refine_batch([], []) == []


def test_inference_releases_the_gil():
    img = np.random.default_rng(4).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(240, 320, 21, seed=4)
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    t = threading.Thread(target=count)
    t.start()
    try:
        start = ticks
        crf.refine(img, probs, iterations=10)
        during = ticks - start
    finally:
        stop.set()
        t.join()
    assert during > 100  # the counting thread kept running while the CRF did


def test_utils_match_pydensecrf_utils():
    pu = pytest.importorskip("pydensecrf.utils")
    rng = np.random.default_rng(5)
    sm = rng.dirichlet(np.ones(4), size=(6, 7)).transpose(2, 0, 1).astype(np.float32)
    sm[0, 0, 0] = 0.0
    np.testing.assert_array_equal(utils.unary_from_softmax(sm), pu.unary_from_softmax(sm))
    np.testing.assert_allclose(utils.unary_from_softmax(sm, scale=0.8), pu.unary_from_softmax(sm, scale=0.8))
    labels = rng.integers(0, 4, (6, 7))
    for zero_unsure in (True, False):
        n = 3 if zero_unsure else 4
        np.testing.assert_array_equal(utils.unary_from_labels(labels, n, 0.7, zero_unsure),
                                      pu.unary_from_labels(labels, n, 0.7, zero_unsure))
    np.testing.assert_array_equal(utils.create_pairwise_gaussian((3, 2), (6, 7)),
                                  pu.create_pairwise_gaussian((3, 2), (6, 7)))
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(utils.create_pairwise_bilateral((5, 5), (13, 12, 11), img, chdim=2),
                                  pu.create_pairwise_bilateral((5, 5), (13, 12, 11), img, chdim=2))
    np.testing.assert_array_equal(utils.create_pairwise_bilateral((5, 5), 7, img[:, :, 0]),
                                  pu.create_pairwise_bilateral((5, 5), 7, img[:, :, 0]))


def test_unary_from_logits_is_negative_log_softmax():
    logits = np.random.default_rng(6).normal(0, 5, (4, 3, 5)).astype(np.float32)
    p = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    np.testing.assert_allclose(utils.unary_from_logits(logits), -np.log(p).reshape(4, -1), atol=1e-5)


def test_logistic_unary_is_u_times_f():
    rng = np.random.default_rng(7)
    weights, feats = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(2, 10)).astype(np.float32)
    a, b = crf.DenseCRF(10, 3), crf.DenseCRF(10, 3)
    a.setUnaryEnergy(weights, feats)
    b.setUnaryEnergy(weights @ feats)
    np.testing.assert_array_equal(a.inference(0), b.inference(0))


def test_without_unary_or_pairwise():
    q = crf.DenseCRF(5, 4).inference(3)  # no unary: uniform, like pydensecrf
    np.testing.assert_allclose(q, 0.25)
    d = crf.DenseCRF(5, 2)
    d.setUnaryEnergy(np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]], np.float32))
    q = d.inference(4)  # no pairwise term: softmax(-U)
    np.testing.assert_allclose(q[0], 1 / (1 + np.exp(np.array([0, 1, 2, 3, 4]) - np.array([4, 3, 2, 1, 0]))),
                               rtol=1e-5)


def _refine_sum(queue) -> None:
    img = np.zeros((30, 40, 3), np.uint8)
    queue.put(float(crf.refine(img, utils.synthetic_probabilities(30, 40, 3, stride=4, region=2)).sum()))


def test_forked_child_gets_a_fresh_thread_pool():
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    before = crf.get_num_threads()
    crf.set_num_threads(2)
    try:
        crf.refine(np.zeros((30, 40, 3), np.uint8), utils.synthetic_probabilities(30, 40, 3, stride=4, region=2))
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_refine_sum, args=(queue,))
        child.start()
        assert queue.get(timeout=60) == pytest.approx(30 * 40)  # would hang on the parent's dead workers
        child.join(60)
        assert child.exitcode == 0
    finally:
        crf.set_num_threads(before)


def test_refine_from_init_uses_the_same_kernels():
    """Started from the unary's own softmax, the warm-start path (init=) must give crf.refine's result."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    logits = rng.standard_normal((3, 30, 40)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(0)
    for preset in ("voc", "pydensecrf"):
        cold = crf.refine(image, probs, preset=preset, iterations=3)
        warm = crf.refine(image, probs, preset=preset, iterations=3, init=probs)
        np.testing.assert_allclose(warm, cold, atol=1e-4)


def test_threads_per_call_leave_the_process_count_alone():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(60, 80, 6, seed=5, stride=4, region=2)
    before = crf.get_num_threads()
    one = crf.refine(img, probs, threads=1)
    assert crf.get_num_threads() == before
    np.testing.assert_array_equal(crf.refine(img, probs, threads=3), one)  # bit-identical whatever the count
    with pytest.raises(ValueError, match="threads"):
        crf.refine(img, probs, threads=0)


def test_lattice_cache_object():
    """A cache of its own: filled by the first CRF of a geometry, least recently used dropped, same bits as none."""
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(30, 40, 5, seed=6, stride=4, region=2)
    cache = crf.LatticeCache(2)
    assert (cache.capacity, len(cache), cache.memory_bytes) == (2, 0, 0)
    uncached = crf.refine(img, probs, preset="pydensecrf", lattice_cache=None)
    np.testing.assert_array_equal(crf.refine(img, probs, preset="pydensecrf", lattice_cache=cache), uncached)
    assert len(cache) == 1 and cache.memory_bytes > 0
    np.testing.assert_array_equal(crf.refine(img, probs, preset="pydensecrf", lattice_cache=cache), uncached)
    for h in (20, 10):  # two more geometries: the first one is dropped
        crf.refine(img[:h], probs[:, :h], preset="pydensecrf", lattice_cache=cache)
    assert len(cache) == 2
    crf.refine(img, probs, lattice_cache=cache)  # VOC's sigma-1 smoothness kernel needs no lattice
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0
    assert crf.DEFAULT_LATTICE_CACHE.capacity == 1


def _area_half(x: np.ndarray) -> np.ndarray:
    """2x2 means of a C x H x W array (H, W even)."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4), dtype=np.float64)


def _area(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area average of C x H x W down to C x h x w: output cell i covers [i H / h, (i + 1) H / h) and takes each
    source pixel with its share of the overlap."""
    def weights(n_out: int, n_in: int) -> np.ndarray:  # in integers (units of 1 / n_out pixel): exact
        i = np.arange(n_out)[:, None]
        j = np.arange(n_in)[None, :]
        overlap = np.minimum((i + 1) * n_in, (j + 1) * n_out) - np.maximum(i * n_in, j * n_out)
        return np.clip(overlap, 0, None) / n_in
    return np.einsum("yj,cjk,xk->cyx", weights(h, x.shape[1]), x.astype(np.float64), weights(w, x.shape[2]))


def _bilinear(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of C x h' x w' to C x h x w, align_corners=False."""
    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        i0 = np.floor(t).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), t - i0
    y0, y1, ty = axis(h, x.shape[1])
    x0, x1, tx = axis(w, x.shape[2])
    rows = x[:, y0] + ty[None, :, None] * (x[:, y1] - x[:, y0])
    return rows[:, :, x0] + tx * (rows[:, :, x1] - rows[:, :, x0])


def test_reduced_resolution_crf_is_a_crf_on_the_shrunk_image():
    """scale=0.5: mean field on the 2x2-averaged image and probabilities (position sigmas halved); its message
    log Q - log P, upsampled bilinearly, is added to the full-resolution unary."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(40, 60, 5, seed=7, stride=4, region=2)
    small_img = np.floor(_area_half(img.transpose(2, 0, 1).astype(np.float64)) + 0.5).astype(np.uint8).transpose(1, 2, 0)
    small_probs = _area_half(probs).astype(np.float32)
    voc = crf.PRESETS["voc"]
    small = crf.refine(small_img, small_probs, gaussian_sxy=voc.gaussian_sxy / 2, bilateral_sxy=voc.bilateral_sxy / 2)
    got = crf.refine(img, probs, scale=0.5)
    assert got.shape == probs.shape
    message = _bilinear(np.log(np.maximum(small, 1e-5)) - np.log(np.maximum(small_probs, 1e-5)), 40, 60)
    expected = np.exp(np.log(np.clip(probs, 1e-5, 1)) + message)
    np.testing.assert_allclose(got, expected / expected.sum(0), atol=2e-5)
    np.testing.assert_array_equal(crf.refine(img, probs, scale=1.0), crf.refine(img, probs))
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="scale must be in"):
            crf.refine(img, probs, scale=bad)


def test_reduced_resolution_crf_at_three_quarters_weighs_pixels_by_overlap():
    """scale=0.75: a small pixel averages the 4/3 x 4/3 source pixels it covers, each by its overlap (so small pixels
    stay evenly spaced, as the bilinear upsampling of the message assumes); same message as at 0.5."""
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(40, 60, 5, seed=9, stride=4, region=2)
    # The overlap weights are quarters, so the averaged image is exact and rounds as in float64.
    small_img = np.floor(_area(img.transpose(2, 0, 1), 30, 45) + 0.5).astype(np.uint8).transpose(1, 2, 0)
    small_probs = _area(probs, 30, 45).astype(np.float32)
    voc = crf.PRESETS["voc"]
    small = crf.refine(small_img, small_probs, gaussian_sxy=voc.gaussian_sxy * 0.75,
                       bilateral_sxy=voc.bilateral_sxy * 0.75)
    message = _bilinear(np.log(np.maximum(small, 1e-5)) - np.log(np.maximum(small_probs, 1e-5)), 40, 60)
    expected = np.exp(np.log(np.clip(probs, 1e-5, 1)) + message)
    np.testing.assert_allclose(crf.refine(img, probs, scale=0.75), expected / expected.sum(0), atol=2e-5)


def test_profile_refine_names_every_phase():
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    probs = utils.synthetic_probabilities(30, 40, 5, seed=8, stride=4, region=2)
    phases = crf.profile_refine(img, probs, iterations=2, lattice_cache=None, gaussian_sxy=3)
    for key in ("unary", "smoothness_lattice", "bilateral_lattice", "normalisation", "splat", "blur", "slice"):
        assert phases[key] > 0, key
    assert phases["smoothness_vertices"] > 100 and phases["bilateral_vertices"] > 1200
    voc = crf.profile_refine(img, probs, iterations=2, lattice_cache=None)
    assert voc["smoothness_vertices"] == 0 and voc["bilateral_vertices"] > 1200  # sigma 1: filtered in image space
