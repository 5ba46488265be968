"""The scene generator: deterministic from the seed, valid labels, every class drawn, colour shared across classes."""
import cv2
import numpy as np
import pytest

from demo.scenes import CLASS_NAMES, IGNORE, generate, random_shape


def test_same_seed_and_index_give_identical_images():
    a_img, a_lab = generate(3, 5)
    b_img, b_lab = generate(3, 5)
    assert np.array_equal(a_img, b_img)
    assert np.array_equal(a_lab, b_lab)


def test_other_seed_or_index_differs():
    img, _ = generate(3, 5)
    assert not np.array_equal(img, generate(4, 5)[0])
    assert not np.array_equal(img, generate(3, 6)[0])


@pytest.mark.parametrize("size", [(320, 240), (97, 61)])
def test_labels_are_valid(size):
    w, h = size
    img, lab = generate(11, 0, w, h)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert lab.shape == (h, w) and lab.dtype == np.uint8
    values = set(np.unique(lab).tolist())
    assert values <= set(range(len(CLASS_NAMES))) | {IGNORE}
    assert 0 in values


def test_every_class_appears():
    counts = np.zeros(256, np.int64)
    for i in range(12):
        counts += np.bincount(generate(1, i)[1].ravel(), minlength=256)
    assert (counts[: len(CLASS_NAMES)] > 0).all()


def test_colour_alone_does_not_separate_the_classes():
    """Each class leans to a hue, but neighbouring classes' hue ranges overlap (identity needs shape/texture)."""
    rng = np.random.default_rng(0)
    hues = {c: [] for c in range(1, len(CLASS_NAMES))}
    for _ in range(400):
        shape = random_shape(rng, 320, 240)
        hsv = cv2.cvtColor(np.array([[shape.color]], np.uint8), cv2.COLOR_BGR2HSV)[0, 0]
        if hsv[1] > 60:  # hue is meaningful
            hues[shape.cls].append(int(hsv[0]))
    for c in range(2, len(CLASS_NAMES)):
        lower, upper = np.percentile(hues[c - 1], 95), np.percentile(hues[c], 5)
        assert upper < lower, (CLASS_NAMES[c - 1], CLASS_NAMES[c])
