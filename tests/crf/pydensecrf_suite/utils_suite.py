"""pydensecrf's tests/test_utils.py, rewritten: the deprecated compute_unary gives -log of the label probabilities,
label 0 meaning unknown (uniform). Runs as `pydensecrf` (tests/crf/test_pydensecrf_suite.py supplies the name)."""

import unittest

import numpy as np
import pydensecrf.utils as utils


class TestUnary(unittest.TestCase):
    def test_unary(self):
        m = 3
        uniform, positive, negative = 1.0 / m, 0.8, 0.2 / (m - 1)
        labels = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
        u, p, n = uniform, positive, negative
        expected = -np.log(np.array([[u, p, n, n, n, n, p, u],
                                     [u, n, p, n, n, p, n, u],
                                     [u, n, n, p, p, n, n, u]]))
        np.testing.assert_almost_equal(utils.compute_unary(labels, m, GT_PROB=positive), expected)
