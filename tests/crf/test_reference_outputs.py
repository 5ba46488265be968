"""pydensecrf's example outputs (../shared/reference/crf, settings in its README) reproduced pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest

import crf
from crf import utils

PIL = pytest.importorskip("PIL.Image")


def run_example(directory, image: str, annotation: str, rgb: bool, mod=crf, use_2d: bool = False) -> np.ndarray:
    """pydensecrf's examples/inference.py, 5 iterations, with module `mod` as `dcrf`: the generic DenseCRF with
    utils features (the script's default) or, with `use_2d`, its DenseCRF2D branch."""
    def read(name: str) -> np.ndarray:
        arr = np.array(PIL.open(directory / name).convert("RGB"))
        return arr if rgb else np.ascontiguousarray(arr[:, :, ::-1])  # OpenCV's channel order

    img, anno = read(image), read(annotation).astype(np.uint32)
    packed = anno[:, :, 0] + (anno[:, :, 1] << 8) + (anno[:, :, 2] << 16)
    colors, labels = np.unique(packed, return_inverse=True)
    has_unknown = 0 in colors
    if has_unknown:
        colors = colors[1:]
    colorize = np.stack([colors & 0xFF, (colors >> 8) & 0xFF, (colors >> 16) & 0xFF], axis=1).astype(np.uint8)
    n_labels = len(set(labels.flat)) - int(has_unknown)

    unary = utils.unary_from_labels(labels, n_labels, gt_prob=0.7, zero_unsure=has_unknown)
    options = {"kernel": mod.DIAG_KERNEL, "normalization": mod.NORMALIZE_SYMMETRIC}
    if use_2d:
        d = mod.DenseCRF2D(img.shape[1], img.shape[0], n_labels)
        d.setUnaryEnergy(unary)
        d.addPairwiseGaussian(sxy=(3, 3), compat=3, **options)
        d.addPairwiseBilateral(sxy=(80, 80), srgb=(13, 13, 13), rgbim=img, compat=10, **options)
    else:
        d = mod.DenseCRF(img.shape[1] * img.shape[0], n_labels)
        d.setUnaryEnergy(unary)
        d.addPairwiseEnergy(utils.create_pairwise_gaussian(sdims=(3, 3), shape=img.shape[:2]), compat=3, **options)
        d.addPairwiseEnergy(utils.create_pairwise_bilateral(sdims=(80, 80), schan=(13, 13, 13), img=img, chdim=2),
                            compat=10, **options)
    out = colorize[np.argmax(d.inference(5), axis=0)].reshape(img.shape)
    return out if rgb else out[:, :, ::-1]


# out1-b.png was evidently made with OpenCV's BGR reading, the others with an RGB reader.
@pytest.mark.parametrize("image,annotation,output,rgb", [
    ("im1.png", "anno1.png", "out1.png", True),
    ("im1.png", "anno1-b.png", "out1-b.png", False),
    ("im2.png", "anno2.png", "out2.png", True),
    ("im3.png", "anno3.png", "out3.png", True),
])
def test_example_outputs_reproduced(reference_dir, image, annotation, output, rgb):
    directory = reference_dir("crf")
    expected = np.array(PIL.open(directory / output).convert("RGB"))
    np.testing.assert_array_equal(run_example(directory, image, annotation, rgb), expected)


@pytest.mark.parametrize("image,annotation", [("im1.png", "anno1.png"), ("im3.png", "anno3.png")])
def test_example_2d_branch_gives_pydensecrf_labels(reference_dir, pydensecrf, image, annotation):
    """The script's DenseCRF2D branch (addPairwiseGaussian/Bilateral with their defaults) against pydensecrf's."""
    directory = reference_dir("crf")
    ours = run_example(directory, image, annotation, True, crf, use_2d=True)
    np.testing.assert_array_equal(ours, run_example(directory, image, annotation, True, pydensecrf, use_2d=True))
