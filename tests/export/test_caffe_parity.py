"""The ONNX exported from an official-layout DeepLab v2 caffemodel against OpenCV 4's dnn module (an independent
Caffe implementation): ResNet-101 and VGG-16, single scale and the official multi-scale net, at 321×321, 375×500 and
513×513. The nets have the official layer names and depth with reduced widths, so each size takes seconds.

OpenCV 5 dropped the Caffe importer: these tests need ``opencv-python-headless<5`` (the ``test`` extra pins it).
OpenCV's ``Interp`` ignores ``shrink_factor``, so the multi-scale net is handed to it with each ``Interp`` given
its height and width: Caffe's for the input, the 1× score map's for the score maps (Caffe's own where H, W mod 32 are
in 1..6, as at 321 and 513; at 375×500 Caffe's net stops at the size mismatch and ours is defined to resize to the 1×
map). The comparison is at the 1/8 score map.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from caffe_nets import caffemodel_bytes, prototxt, random_blobs

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
    pytest.skip(f"OpenCV {cv2.__version__} has no Caffe importer (install opencv-python-headless<5)",
                allow_module_level=True)

SIZES = ((321, 321), (375, 500), (513, 513))
MIN_AGREEMENT = 0.999
MAX_REL_ERROR = 1e-4
NETS = {"resnet": {"width": 4}, "vgg16": {"width": 8, "fc_width": 32}}
RATES = {"resnet": (6, 12, 18, 24), "vgg16": (6, 12, 18, 24)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(kind, msc) -> (caffemodel path, exported ONNX path), each written once."""
    from export.onnx_export import export_onnx

    cache: dict[tuple[str, bool], tuple[Path, Path]] = {}

    def get(kind: str, msc: bool) -> tuple[Path, Path]:
        if (kind, msc) not in cache:
            root = tmp_path_factory.mktemp(f"{kind}_{'msc' if msc else 'ss'}")
            text = prototxt(kind, 21, RATES[kind], msc=msc, **NETS[kind])
            model = root / "train_iter_20000.caffemodel"
            model.write_bytes(caffemodel_bytes(text, random_blobs(text, seed=3)))
            (root / "deploy.prototxt").write_text(text)
            onnx_path = root / "model.onnx"
            export_onnx(model, onnx_path, msc=msc, prototxt=root / "deploy.prototxt", height=65, width=65)
            cache[kind, msc] = (model, onnx_path)
        return cache[kind, msc]

    return get


def _opencv_logits(kind: str, msc: bool, caffemodel: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    h, w = x.shape[2:]
    deploy = tmp_path / f"opencv_{h}x{w}.prototxt"
    deploy.write_text(prototxt(kind, 21, RATES[kind], msc=msc, opencv_size=(h, w), **NETS[kind]))
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(caffemodel))
    net.setInput(x)
    return net.forward()


def _onnx_logits(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": x})[0]


def _input(h: int, w: int) -> np.ndarray:
    from runtime.metadata import CAFFE_BGR_MEAN

    rng = np.random.default_rng(h * 1000 + w)
    x = rng.uniform(0, 255, (1, 3, h, w)) - np.asarray(CAFFE_BGR_MEAN)[None, :, None, None]
    return x.astype(np.float32)


def _check(kind: str, msc: bool, exported, tmp_path: Path) -> None:
    caffemodel, onnx_path = exported(kind, msc)
    for h, w in SIZES:
        x = _input(h, w)
        want = _opencv_logits(kind, msc, caffemodel, x, tmp_path)
        got = _onnx_logits(onnx_path, x)
        assert got.shape == want.shape, (h, w)
        rel = float(np.abs(got - want).max() / np.abs(want).max())
        agree = float((got.argmax(1) == want.argmax(1)).mean())
        assert rel <= MAX_REL_ERROR, f"{kind} msc={msc} {h}x{w}: relative logit error {rel:.3g}"
        assert agree >= MIN_AGREEMENT, f"{kind} msc={msc} {h}x{w}: argmax agreement {agree:.5f}"


@pytest.mark.parametrize("kind", ["resnet", "vgg16"])
def test_single_scale_matches_opencv(kind, exported, tmp_path):
    _check(kind, False, exported, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["resnet", "vgg16"])
def test_official_multi_scale_matches_opencv(kind, exported, tmp_path):
    _check(kind, True, exported, tmp_path)


@pytest.mark.slow
def test_kazuto_fusion_is_another_function(exported, tmp_path):
    """The official fusion (align-corners Interp sizes) and kazuto's (scale_factor, half-pixel) disagree on the same
    weights: the Caffe export must be the official one, which OpenCV confirms above."""
    import torch

    from export.checkpoint import load_model
    from export.model import MSC, CaffeMSC

    model, _ = load_model(exported("resnet", True)[0])
    x = torch.from_numpy(_input(321, 321))
    with torch.no_grad():
        official, kazuto = CaffeMSC(model)(x), MSC(model)(x)
    assert official.shape == kazuto.shape
    assert float((official - kazuto).abs().max() / official.abs().max()) > 1e-3
