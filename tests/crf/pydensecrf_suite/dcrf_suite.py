"""pydensecrf's tests/test_dcrf.py, rewritten: the 2-D and generic CRFs run, agree with each other, and a float64
compatibility vector is rejected. Runs as `pydensecrf` (tests/crf/test_pydensecrf_suite.py supplies the name)."""

import numpy as np
import pydensecrf.densecrf as dcrf
import pydensecrf.utils as utils
import pytest


def square_unary() -> np.ndarray:
    """Two labels on a 10 x 10 grid: a frame (label 0) and a 3 x 3 centre (label 1), as probabilities."""
    frame = np.zeros((10, 10), np.float32)
    frame[:, [0, -1]] = frame[[0, -1], :] = 1
    centre = np.zeros((10, 10), np.float32)
    centre[4:7, 4:7] = 1
    unary = np.vstack([frame.ravel(), centre.ravel()])
    return (unary + 1) / (unary.sum(axis=0) + 2)


def bright_square() -> np.ndarray:
    img = np.zeros((10, 10, 3), np.uint8)
    img[2:8, 2:8] = 255
    return img


def test_call_dcrf2d():
    d = dcrf.DenseCRF2D(10, 10, 2)
    d.setUnaryEnergy(-np.log(square_unary()))
    d.addPairwiseBilateral(sxy=2, srgb=2, rgbim=bright_square(), compat=3)
    assert np.argmax(d.inference(10), axis=0).reshape(10, 10).shape == (10, 10)


def test_call_dcrf():
    d = dcrf.DenseCRF(100, 2)
    d.setUnaryEnergy(-np.log(square_unary()))
    d.addPairwiseEnergy(utils.create_pairwise_bilateral(sdims=(2, 2), schan=2, img=bright_square(), chdim=2), compat=3)
    assert np.argmax(d.inference(10), axis=0).reshape(10, 10).shape == (10, 10)


def test_call_dcrf_eq_dcrf2d():
    generic, grid = dcrf.DenseCRF(100, 2), dcrf.DenseCRF2D(10, 10, 2)
    for d in (generic, grid):
        d.setUnaryEnergy(-np.log(square_unary()))
    generic.addPairwiseEnergy(utils.create_pairwise_bilateral(sdims=(2, 2), schan=2, img=bright_square(), chdim=2),
                              compat=3)
    grid.addPairwiseBilateral(sxy=2, srgb=2, rgbim=bright_square(), compat=3)
    assert np.array_equal(np.argmax(generic.inference(10), axis=0), np.argmax(grid.inference(10), axis=0))


def test_compact_wrong():
    """A float64 compatibility vector is an error (pydensecrf once crashed on it)."""
    d = dcrf.DenseCRF2D(10, 10, 2)
    d.setUnaryEnergy(np.ones((2, 100), np.float32))
    with pytest.raises(ValueError):
        d.addPairwiseBilateral(sxy=(3, 3), srgb=(3, 3, 3), rgbim=np.zeros((10, 10, 3), np.uint8),
                               compat=np.array([1.0, 2.0]))
        d.inference(2)
