"""Bad input at the binding: each case is a clear Python exception or a correct result."""

from __future__ import annotations

import numpy as np
import pytest

import crf

IMG = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
PROBS = crf.utils.synthetic_probabilities(6, 7, 3, seed=0, stride=2, region=2)


def refine(img=IMG, probs=PROBS, **kw):
    return crf.refine(img, probs, **kw)


# ---- shapes ----
@pytest.mark.parametrize("probs", [PROBS[:, :5], PROBS[0], PROBS[None], PROBS.transpose(1, 2, 0)])
def test_probs_shape_mismatch(probs):
    with pytest.raises(ValueError, match="probs must be"):
        refine(probs=probs)


@pytest.mark.parametrize("img", [IMG[:, :, :2], np.zeros((6, 7, 4), np.uint8), IMG[None]])
def test_image_channels(img):
    with pytest.raises(ValueError, match="image must be"):
        refine(img=img)


def test_pydensecrf_api_shapes():
    d = crf.DenseCRF2D(7, 6, 3)
    with pytest.raises(ValueError, match="unary"):
        d.setUnaryEnergy(np.zeros((3, 41), np.float32))
    with pytest.raises(ValueError, match="features"):
        d.addPairwiseEnergy(np.zeros((2, 41), np.float32), compat=3)
    with pytest.raises(ValueError, match="Bad shape"):
        d.addPairwiseBilateral(sxy=3, srgb=3, rgbim=IMG[:5], compat=3)
    with pytest.raises(ValueError, match="compat"):
        d.addPairwiseGaussian(sxy=3, compat=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="compat"):
        d.addPairwiseGaussian(sxy=3, compat=np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="a vector or a matrix, got an array of 3 dimensions"):
        d.addPairwiseGaussian(sxy=3, compat=np.ones((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="sxy"):
        d.addPairwiseGaussian(sxy=(1, 2, 3), compat=3)
    with pytest.raises(ValueError):
        d.addPairwiseEnergy(np.zeros((0, 42), np.float32), compat=3)
    with pytest.raises(ValueError, match="feature dimensions"):
        d.addPairwiseEnergy(np.zeros((40, 42), np.float32), compat=3)
    q, _, _ = d.startInference()
    with pytest.raises(ValueError, match="shape"):
        d.stepInference(np.zeros((3, 41), np.float32))
    with pytest.raises(ValueError, match="shape"):
        d.klDivergence(q[:, 1:])


# ---- dtypes ----
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_float_probabilities_are_converted(dtype):
    expected = refine(probs=PROBS.astype(dtype).astype(np.float32))
    np.testing.assert_array_equal(refine(probs=PROBS.astype(dtype)), expected)


def test_float64_features_are_converted():
    u = crf.utils.unary_from_softmax(PROBS)
    feats = crf.utils.create_pairwise_gaussian((2, 2), (6, 7))
    outs = []
    for cast in (np.float32, np.float64):
        d = crf.DenseCRF(42, 3)
        d.setUnaryEnergy(u)
        d.addPairwiseEnergy(feats.astype(cast), compat=np.float64(3))
        outs.append(d.inference(3))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_unaries_and_compat_arrays_must_be_float32_and_contiguous():
    """pydensecrf's strictness (ValueError, TypeError for None or a list), with the fix in the message."""
    u = crf.utils.unary_from_softmax(PROBS)
    d = crf.DenseCRF2D(7, 6, 3)
    for bad in (u.astype(np.float64), np.asfortranarray(u)):
        for call in (d.setUnaryEnergy, lambda a: d.setUnary(crf.ConstUnary(a))):
            with pytest.raises(ValueError, match="float32|C-contiguous"):
                call(bad)
    with pytest.raises(ValueError, match="np.ascontiguousarray"):
        d.setUnaryEnergy(u.astype(np.float64))
    for bad in (None, u.tolist()):
        with pytest.raises(TypeError):
            d.setUnaryEnergy(bad)
    with pytest.raises(TypeError, match="setUnaryEnergy"):
        d.setUnary(u)
    for compat in (np.ones(3), np.ones(3, np.int64), np.ones((3, 3)), np.ones((3, 6), np.float32)[:, ::2]):
        with pytest.raises(ValueError, match="float32|C-contiguous"):
            d.addPairwiseGaussian(sxy=3, compat=compat)
    with pytest.raises(TypeError):
        d.addPairwiseGaussian(sxy=3, compat=[1.0, 2.0, 3.0])
    d.addPairwiseGaussian(sxy=3, compat=np.float64(3))  # a number of any type is a Potts weight


@pytest.mark.parametrize("bad", [PROBS.astype(np.int32), PROBS.astype(np.complex64), PROBS.astype(object)])
def test_non_float_probabilities_rejected(bad):
    with pytest.raises(TypeError):
        refine(probs=bad)


def test_non_uint8_image_rejected():
    with pytest.raises(TypeError, match="uint8"):
        refine(img=IMG.astype(np.float32))
    with pytest.raises(TypeError, match="uint8"):
        crf.DenseCRF2D(7, 6, 3).addPairwiseBilateral(sxy=3, srgb=3, rgbim=IMG.astype(np.int64), compat=3)


def test_non_integer_sizes_rejected():
    with pytest.raises(TypeError):
        crf.DenseCRF(10.5, 3)
    with pytest.raises(TypeError):
        crf.DenseCRF2D(7, 6, "3")


def test_step_inference_needs_float32_q():
    d = crf.DenseCRF2D(7, 6, 3)
    q, _, _ = d.startInference()
    with pytest.raises(TypeError, match="float32"):
        d.stepInference(q.astype(np.float64))
    with pytest.raises(TypeError, match="float32"):
        d.stepInference(np.asfortranarray(q))


# ---- non-contiguous arrays ----
def test_non_contiguous_inputs_give_the_same_result():
    big_img = np.repeat(IMG, 2, axis=1)[:, ::2]  # strided view
    big_probs = np.repeat(PROBS, 2, axis=2)[:, :, ::2]
    assert not big_img.flags.c_contiguous and not big_probs.flags.c_contiguous
    np.testing.assert_array_equal(refine(img=big_img, probs=big_probs), refine())
    d1, d2 = crf.DenseCRF(42, 3), crf.DenseCRF(42, 3)
    u = crf.utils.unary_from_softmax(PROBS)
    feats = crf.utils.create_pairwise_gaussian((2, 2), (6, 7))
    for d, f in ((d1, feats), (d2, np.asfortranarray(feats))):
        d.setUnaryEnergy(u)
        d.addPairwiseEnergy(f, compat=3)
    np.testing.assert_array_equal(d1.inference(2), d2.inference(2))


# ---- NaN / inf ----
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_probabilities(value):
    probs = PROBS.copy()
    probs[1, 2, 3] = value
    with pytest.raises(ValueError, match="NaN or infinity"):
        refine(probs=probs)


def test_non_finite_unary_features_and_parameters():
    d = crf.DenseCRF(42, 3)
    u = crf.utils.unary_from_softmax(PROBS)
    u[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        d.setUnaryEnergy(u)
    feats = crf.utils.create_pairwise_gaussian((2, 2), (6, 7))
    feats[1, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        d.addPairwiseEnergy(feats, compat=3)
    with pytest.raises(ValueError, match="finite"):
        d.addPairwiseEnergy(np.zeros_like(feats), compat=np.nan)
    with pytest.raises(ValueError, match="NaN or infinity"):
        d.addPairwiseEnergy(np.zeros_like(feats), compat=np.array([1, np.nan, 2], np.float32))
    with pytest.raises(ValueError, match="sxy"):
        crf.DenseCRF2D(7, 6, 3).addPairwiseGaussian(sxy=np.inf, compat=3)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError):
            refine(bilateral_srgb=bad)
    q = np.full((3, 42), 1 / 3, np.float32)
    q[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        crf.DenseCRF(42, 3).stepInference(q)


# ---- label counts ----
def test_zero_labels():
    with pytest.raises(ValueError):
        crf.DenseCRF(10, 0)
    with pytest.raises(ValueError, match="label"):
        refine(probs=np.zeros((0, 6, 7), np.float32))


def test_one_label_is_certain():
    out = refine(probs=np.ones((1, 6, 7), np.float32))
    np.testing.assert_array_equal(out, np.ones((1, 6, 7), np.float32))


def test_too_many_labels():
    with pytest.raises(ValueError, match="labels"):
        crf.DenseCRF(10, 10**6)


def test_unary_from_labels_checks():
    with pytest.raises(ValueError, match="gt_prob"):
        crf.utils.unary_from_labels(np.zeros(4, int), 3, gt_prob=1.0)
    with pytest.raises(ValueError, match="labels must be in"):
        crf.utils.unary_from_labels(np.array([0, 4]), 3, gt_prob=0.7)
    with pytest.raises(ValueError, match="n_labels"):
        crf.utils.unary_from_labels(np.zeros(4, int), 1, gt_prob=0.7)


# ---- sizes ----
@pytest.mark.parametrize("h,w", [(0, 7), (6, 0), (0, 0)])
def test_zero_size_images(h, w):
    out = refine(img=np.zeros((h, w, 3), np.uint8), probs=np.zeros((3, h, w), np.float32))
    assert out.shape == (3, h, w) and out.dtype == np.float32
    d = crf.DenseCRF2D(w, h, 3)
    d.addPairwiseGaussian(sxy=3, compat=3)
    assert d.inference(2).shape == (3, 0)


def test_one_pixel_image():
    out = refine(img=IMG[:1, :1], probs=PROBS[:, :1, :1])
    assert out.shape == (3, 1, 1)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-6)


def test_negative_iterations():
    with pytest.raises(ValueError, match="iterations"):
        refine(iterations=-1)
    with pytest.raises(ValueError, match="niter"):
        crf.DenseCRF2D(7, 6, 3).inference(-2)


# ---- lattice overflow (pydensecrf aborts the process) ----
def test_tiny_sigma_overflows_cleanly():
    with pytest.raises(OverflowError, match="lattice"):
        refine(bilateral_sxy=1e-6)
    # A tiny smoothness sigma is filtered in image space, where it is exactly the identity: no lattice to overflow.
    assert np.isfinite(refine(gaussian_sxy=1e-6)).all()
    with pytest.raises(OverflowError, match="lattice"):
        crf.DenseCRF2D(7, 6, 3).addPairwiseBilateral(sxy=3, srgb=1e-5, rgbim=IMG, compat=3)


def test_large_image_small_sigma_overflows_cleanly():
    d = crf.DenseCRF2D(40000, 3, 2)
    with pytest.raises(OverflowError, match="lattice"):
        d.addPairwiseGaussian(sxy=0.1, compat=3, lattice=True)


def test_huge_features_overflow_cleanly():
    with pytest.raises(OverflowError):
        crf.DenseCRF(10, 2).addPairwiseEnergy(np.full((3, 10), 1e9, np.float32), compat=1)


def test_large_but_valid_coordinates_use_wide_keys():
    # Coordinates beyond 16-bit keys (where pydensecrf's `short` keys overflow) are still exact.
    w = 12000
    d = crf.DenseCRF2D(w, 1, 2)
    u = np.zeros((2, w), np.float32)
    u[0, : w // 2] = 5
    u[1, w // 2:] = 5
    d.setUnaryEnergy(u)
    d.addPairwiseGaussian(sxy=0.5, compat=1)
    q = d.inference(2)
    assert np.isfinite(q).all()
    assert (q.argmax(0) == (np.arange(w) < w // 2)).all()


# ---- memory ----
def test_out_of_memory_is_a_python_error():
    with pytest.raises(MemoryError, match="memory"):
        crf.DenseCRF(200_000_000, 100)
    with pytest.raises((MemoryError, ValueError)):
        crf.DenseCRF2D(100_000, 100_000, 21)


# ---- enums and presets ----
def test_bad_enums_and_presets():
    d = crf.DenseCRF2D(7, 6, 3)
    with pytest.raises(ValueError, match="normalization"):
        d.addPairwiseGaussian(sxy=3, compat=3, normalization=4)
    with pytest.raises(ValueError, match="kernel"):
        d.addPairwiseGaussian(sxy=3, compat=3, kernel=-1)
    with pytest.raises(ValueError, match="unknown CRF preset"):
        refine(preset="nope")
    with pytest.raises(ValueError, match="images"):
        crf.refine_batch([IMG], [PROBS, PROBS])


def test_refine_init_must_match_probs():
    probs = np.full((3, 6, 7), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="init must have the shape"):
        crf.refine(IMG, probs, init=np.full((2, 6, 7), 0.5, np.float32))
    with pytest.raises(ValueError, match="to match the image"):
        crf.refine(IMG, probs, init=np.full((3, 5, 7), 1 / 3, np.float32))


def test_half_rows_not_a_bool():
    with pytest.raises(ValueError, match="half_rows"):
        refine(half_rows="yes")
    with pytest.raises(TypeError, match="bool"):
        crf.DenseCRF2D(8, 8, 2).setHalfRows(1)
