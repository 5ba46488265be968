"""Agreement with the reference implementation (pydensecrf) on real photos and every option."""

from __future__ import annotations

import numpy as np
import pytest

import crf
from crf import utils

SMALL = (240, 180)  # the reference is single-threaded and slow: one photo at full size, two small
PHOTOS = [("messi5.jpg", None), ("fruits.jpg", SMALL), ("building.jpg", SMALL)]


def run_2d(mod, img, probs, preset: crf.Preset, lattice: bool | None = None, **norm):
    h, w = img.shape[:2]
    d = mod.DenseCRF2D(w, h, probs.shape[0])
    d.setUnaryEnergy(utils.unary_from_softmax(probs))
    smoothness = {} if lattice is None else {"lattice": lattice}
    d.addPairwiseGaussian(sxy=preset.gaussian_sxy, compat=preset.gaussian_weight, **smoothness, **norm)
    d.addPairwiseBilateral(sxy=preset.bilateral_sxy, srgb=preset.bilateral_srgb, rgbim=img,
                           compat=preset.bilateral_weight, **norm)
    return np.array(d.inference(preset.iterations))


@pytest.mark.slow
@pytest.mark.parametrize("photo,size", PHOTOS)
@pytest.mark.parametrize("preset", ["voc", "pydensecrf"])
def test_presets_agree_with_pydensecrf(pydensecrf, load_photo, photo, size, preset):
    img = load_photo(photo, size)
    probs = utils.synthetic_probabilities(img.shape[0], img.shape[1], 21, seed=len(photo))
    p = crf.PRESETS[preset]
    ref = run_2d(pydensecrf, img, probs, p)
    ours = run_2d(crf, img, probs, p)  # the drop-in default: pydensecrf's lattice for every kernel
    assert (ref.argmax(0) == ours.argmax(0)).all()
    assert np.abs(ref - ours).max() < 1e-2
    # refine's model: VOC's sigma-1 smoothness kernel as an exact Gaussian in image space (a different kernel from
    # the lattice's approximation of it, so only the labels are compared); the pydensecrf preset's sigma 3 stays a
    # lattice either way.
    image_space = run_2d(crf, img, probs, p, lattice=False)
    assert (ref.argmax(0) == image_space.argmax(0)).mean() >= 0.995
    if preset == "pydensecrf":
        np.testing.assert_array_equal(image_space, ours)
    # The one-call pipeline runs that computation (its -log is C++'s, not numpy's: ulp differences), by default
    # with half-precision vertex rows where the CPU has them (test_half_rows_agree_with_pydensecrf).
    refined = crf.refine(img, probs, preset=preset, half_rows=False).reshape(21, -1)
    np.testing.assert_allclose(refined, image_space, atol=1e-5)
    assert (refined.argmax(0) == image_space.argmax(0)).mean() > 0.9999
    fast = crf.refine(img, probs, preset=preset).reshape(21, -1)
    assert (fast.argmax(0) == ref.argmax(0)).mean() >= 0.995
    assert (fast.argmax(0) == image_space.argmax(0)).mean() > 0.9999


@pytest.mark.parametrize("normalization", range(4))
@pytest.mark.parametrize("compat", ["potts", "diag", "matrix"])
def test_options_agree(pydensecrf, load_photo, normalization, compat):
    img = load_photo("baboon.jpg", (96, 72))
    h, w = img.shape[:2]
    n_labels = 5
    probs = utils.synthetic_probabilities(h, w, n_labels, seed=normalization, stride=4, region=3)
    rng = np.random.default_rng(7)
    c = {"potts": 3.0, "diag": -rng.uniform(1, 4, n_labels).astype(np.float32),
         "matrix": rng.uniform(-4, 1, (n_labels, n_labels)).astype(np.float32)}[compat]
    results = []
    for mod in (pydensecrf, crf):
        d = mod.DenseCRF(h * w, n_labels)
        d.setUnaryEnergy(utils.unary_from_softmax(probs))
        d.addPairwiseEnergy(utils.create_pairwise_gaussian((3, 3), (h, w)), compat=c, kernel=mod.DIAG_KERNEL,
                            normalization=normalization)
        d.addPairwiseEnergy(utils.create_pairwise_bilateral((20, 20), (10, 10, 10), img, chdim=2), compat=c,
                            kernel=mod.FULL_KERNEL, normalization=normalization)
        results.append(np.array(d.inference(5)))
    ref, ours = results
    assert (ref.argmax(0) == ours.argmax(0)).mean() >= 0.995
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_step_inference_and_kl_match(pydensecrf, load_photo):
    img = load_photo("home.jpg", (80, 60))
    h, w = img.shape[:2]
    probs = utils.synthetic_probabilities(h, w, 4, seed=3, stride=4, region=2)
    crfs = []
    for mod in (pydensecrf, crf):
        d = mod.DenseCRF2D(w, h, 4)
        d.setUnaryEnergy(utils.unary_from_softmax(probs))
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=30, srgb=13, rgbim=img, compat=10)
        crfs.append(d)
    (q_ref, t1, t2), (q, u1, u2) = crfs[0].startInference(), crfs[1].startInference()
    kls = []
    for _ in range(3):
        kl_ref, kl = crfs[0].klDivergence(q_ref), crfs[1].klDivergence(q)
        assert kl == pytest.approx(kl_ref, rel=1e-3, abs=1e-2)
        kls.append(kl)
        crfs[0].stepInference(q_ref, t1, t2)
        crfs[1].stepInference(q, u1, u2)
        np.testing.assert_allclose(q, np.array(q_ref), atol=1e-3)
    assert kls[-1] < kls[0]  # mean field lowers the KL divergence
    np.testing.assert_allclose(q, crfs[1].inference(3), atol=1e-6)


@pytest.mark.parametrize("half_rows", [True, False])
def test_thread_count_does_not_change_results(load_photo, half_rows):
    img = load_photo("squirrel_cls.jpg", (160, 120))
    probs = utils.synthetic_probabilities(120, 160, 21, seed=1)
    before = crf.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            crf.set_num_threads(threads)
            outs.append(crf.refine(img, probs, preset="voc", half_rows=half_rows))
    finally:
        crf.set_num_threads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def _half_rows_supported() -> bool:
    return crf.DenseCRF2D(8, 8, 21).setHalfRows(True)


@pytest.mark.slow
@pytest.mark.skipif(not _half_rows_supported(), reason="this CPU has no vector half-precision conversions")
@pytest.mark.parametrize("photo", ["messi5.jpg", "butterfly.jpg"])  # butterfly: the largest float/half difference
def test_half_rows_agree_with_pydensecrf(pydensecrf, load_photo, photo):
    img = load_photo(photo, (500, 375))
    probs = utils.synthetic_probabilities(375, 500, 21, seed=0)
    p = crf.PRESETS["voc"]
    ref = run_2d(pydensecrf, img, probs, p).argmax(0)
    full = crf.refine(img, probs, half_rows=False).reshape(21, -1)
    half = crf.refine(img, probs).reshape(21, -1)  # the default
    assert not np.array_equal(half, full)
    assert (half.argmax(0) == ref).mean() >= 0.995
    assert (half.argmax(0) == full.argmax(0)).mean() >= 0.9999
    assert np.abs(half - full).mean() < 1e-4
    d = crf.DenseCRF2D(500, 375, 21)
    assert d.setHalfRows(True)
    d.setUnaryEnergy(utils.unary_from_softmax(probs))
    d.addPairwiseGaussian(sxy=p.gaussian_sxy, compat=p.gaussian_weight, lattice=False)  # refine's smoothness kernel
    d.addPairwiseBilateral(sxy=p.bilateral_sxy, srgb=p.bilateral_srgb, rgbim=img, compat=p.bilateral_weight)
    np.testing.assert_allclose(np.array(d.inference(p.iterations)), half, atol=1e-5)
