"""The scene generator: deterministic from the seed, valid labels, every class drawn, colour shared across classes."""
import numpy as np
import pytest

from demo.scenes import CLASS_NAMES, IGNORE, generate


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


def test_every_class_appears_and_colour_alone_does_not_separate_them():
    counts = np.zeros(256, np.int64)
    hue_means = {c: [] for c in range(1, len(CLASS_NAMES))}
    import cv2
    for i in range(24):
        img, lab = generate(1, i)
        counts += np.bincount(lab.ravel(), minlength=256)
        hue = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 0]
        for c in hue_means:
            if (lab == c).sum() > 50:
                hue_means[c].append(float(np.median(hue[lab == c])))
    assert (counts[: len(CLASS_NAMES)] > 0).all()
    # every object class shows a wide range of hues (colour is drawn from one shared distribution)
    for c, hues in hue_means.items():
        assert np.ptp(hues) > 60, (CLASS_NAMES[c], hues)
