"""Confusion matrix, IoU, mIoU and pixel accuracy against hand-computed values."""
import math

import numpy as np
import pytest

from export.metrics import ConfusionMatrix, iou, miou, pixel_accuracy


def test_against_a_hand_computed_confusion_matrix():
    truth = np.array([[0, 0, 1, 1],
                      [0, 2, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1],
                     [0, 2, 0, 2]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    # rows truth, columns prediction; the 255 pixel is skipped
    expected = np.array([[2, 1, 0],
                         [0, 2, 0],
                         [1, 0, 1]])
    assert cm.matrix.dtype == np.int64
    assert np.array_equal(cm.matrix, expected)
    # IoU: class 0: 2 / (3 + 3 - 2) = 0.5; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 0.5
    assert np.allclose(cm.iou(), [0.5, 2 / 3, 0.5])
    assert cm.miou() == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    cm.update(truth, pred)
    assert np.array_equal(cm.matrix, 2 * expected)


def test_absent_class_is_left_out_of_the_mean():
    m = np.array([[4, 0, 0], [0, 0, 0], [0, 0, 2]], np.int64)
    values = iou(m)
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 1.0
    assert miou(m) == 1.0
    assert pixel_accuracy(m) == 1.0
    assert math.isnan(miou(np.zeros((2, 2), np.int64)))


def test_bad_inputs():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="differ in shape"):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="ground-truth label 5 is outside 0..1"):
        cm.update(np.full((2, 2), 5, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="predicted labels"):
        cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 2, np.int64))


def test_large_counts_do_not_overflow():
    cm = ConfusionMatrix(2)
    cm.matrix[0, 0] = 2**40
    cm.update(np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8))
    assert cm.matrix[0, 0] == 2**40 + 9
