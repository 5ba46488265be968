"""Hypothesis fuzzing of the binding: valid inputs give valid probabilities (equal to pydensecrf's),
invalid ones give Python exceptions, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import crf

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    h, w = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    n_labels = draw(st.integers(1, 6))
    img = draw(hnp.arrays(np.uint8, (h, w, 3)))
    probs = draw(hnp.arrays(np.float32, (n_labels, h, w), elements=st.floats(0, 1, width=32)))
    return img, probs


@FAST
@given(problems(), st.integers(0, 4), st.sampled_from(["voc", "pydensecrf"]))
def test_refine_valid_inputs(problem, iterations, preset):
    img, probs = problem
    out = crf.refine(img, probs, iterations=iterations, preset=preset)
    assert out.shape == probs.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all()
    if out.size:
        np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-5)


@FAST
@given(problems(), st.integers(0, 3), st.floats(0.5, 100), st.floats(0.5, 50), st.floats(-10, 10))
def test_matches_pydensecrf(problem, iterations, sxy, srgb, weight):
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    img, probs = problem
    n_labels, h, w = probs.shape
    if h * w == 0:
        return  # pydensecrf cannot take empty images
    u = crf.utils.unary_from_softmax(probs)
    results = []
    for mod in (dcrf, crf):
        d = mod.DenseCRF2D(w, h, n_labels)
        d.setUnaryEnergy(u)
        d.addPairwiseGaussian(sxy=sxy, compat=weight, **({"lattice": True} if mod is crf else {}))
        d.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=img, compat=weight)
        results.append(np.array(d.inference(iterations)))
    np.testing.assert_allclose(results[1], results[0], atol=2e-4)


ANY_ARRAY = st.one_of(
    hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.uint8, np.int64, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)),
    st.none(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=3),
)
ERRORS = (ValueError, TypeError, OverflowError, MemoryError)


@FAST
@given(ANY_ARRAY, ANY_ARRAY)
def test_refine_garbage_inputs_raise_python_errors(img, probs):
    try:
        out = crf.refine(img, probs, iterations=1)
    except ERRORS:
        return
    assert np.isfinite(out).all()


@FAST
@given(st.integers(-2, 6), st.integers(-2, 6), st.integers(-1, 4), ANY_ARRAY, ANY_ARRAY, ANY_ARRAY, ANY_ARRAY)
def test_pydensecrf_api_garbage(w, h, n_labels, unary, feats, compat, sxy):
    try:
        d = crf.DenseCRF2D(w, h, n_labels)
    except ERRORS:
        return
    for call in (lambda: d.setUnaryEnergy(unary), lambda: d.addPairwiseEnergy(feats, compat=compat),
                 lambda: d.addPairwiseGaussian(sxy=sxy, compat=compat),
                 lambda: d.addPairwiseBilateral(sxy=3, srgb=sxy, rgbim=feats, compat=compat)):
        try:
            call()
        except ERRORS:
            pass
    q = d.inference(2)
    assert q.shape == (n_labels, w * h) and not np.isnan(q).any()
