"""pydensecrf's tests/test_eigen.py, rewritten: vectorXf / matrixXf round-trip float32 arrays and reject other
dimensions, dtypes and None. Runs as `pydensecrf` (tests/crf/test_pydensecrf_suite.py supplies the name)."""

import numpy as np
import pydensecrf.eigen as e
import pytest


def test_vector_conversion():
    v = np.random.randn(3).astype(np.float32)
    assert np.all(np.array(e.vectorXf(v)) == v)


def test_matrix_conversion():
    m = np.random.randn(3, 3).astype(np.float32)
    assert np.all(np.array(e.matrixXf(m)) == m)


def test_wrong_dims():
    with pytest.raises(ValueError):
        e.matrixXf(np.random.randn(3, 3, 3).astype(np.float32))


def test_wrong_type():
    with pytest.raises(ValueError):
        e.matrixXf(np.random.randn(3, 3))


def test_none_type():
    with pytest.raises(TypeError):
        e.matrixXf(None)
