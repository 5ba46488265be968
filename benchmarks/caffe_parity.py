"""A full-width official-layout DeepLab v2 caffemodel (random weights, the tests' generator), exported with
``export_onnx`` (what ``python -m export onnx`` runs) and compared with OpenCV 4's dnn Caffe importer.

    python benchmarks/caffe_parity.py [--kind resnet|vgg16] [--msc] [--size 513x513 ...]

Prints the relative logit error (max |ONNX − OpenCV| / max |OpenCV|) and the argmax agreement per size. Needs the
export extra and ``opencv-python-headless<5``; a ResNet-101 takes minutes and ~1.5 GB of disk in the temp directory.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from caffe_nets import caffemodel_bytes, prototxt, random_blobs  # noqa: E402

from export.onnx_export import export_onnx  # noqa: E402
from runtime.metadata import CAFFE_BGR_MEAN  # noqa: E402

WIDTHS = {"resnet": {"width": 64}, "vgg16": {"width": 64, "fc_width": 1024}}


def main() -> int:
    import cv2
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--kind", choices=tuple(WIDTHS), default="resnet",
                   help="backbone: ResNet-101 ASPP-L or VGG-16 ASPP-L (default resnet)")
    p.add_argument("--msc", action="store_true", help="the official multi-scale net")
    p.add_argument("--size", action="append", default=None, help="HxW (repeatable; default 513x513)")
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["513x513"])]
    rates = (6, 12, 18, 24)
    with tempfile.TemporaryDirectory(prefix="caffe-parity-") as tmp:
        root = Path(tmp)
        text = prototxt(args.kind, 21, rates, msc=args.msc, **WIDTHS[args.kind])
        (root / "deploy.prototxt").write_text(text)
        (root / "m.caffemodel").write_bytes(caffemodel_bytes(text, random_blobs(text)))
        export_onnx(root / "m.caffemodel", root / "m.onnx", msc=args.msc, prototxt=root / "deploy.prototxt",
                    height=sizes[0][0], width=sizes[0][1], log=print)
        session = ort.InferenceSession(str(root / "m.onnx"), providers=["CPUExecutionProvider"])
        for h, w in sizes:
            (root / "cv.prototxt").write_text(prototxt(args.kind, 21, rates, msc=args.msc, opencv_size=(h, w),
                                                       **WIDTHS[args.kind]))
            x = np.random.default_rng(h * 1000 + w).uniform(0, 255, (1, 3, h, w))
            x = (x - np.asarray(CAFFE_BGR_MEAN)[None, :, None, None]).astype(np.float32)
            net = cv2.dnn.readNetFromCaffe(str(root / "cv.prototxt"), str(root / "m.caffemodel"))
            net.setInput(x)
            want = net.forward()
            got = session.run(["logits"], {"image": x})[0]
            rel = float(np.abs(got - want).max() / np.abs(want).max())
            agree = float((got.argmax(1) == want.argmax(1)).mean())
            print(f"{args.kind} {'msc' if args.msc else 'single scale'} {h}x{w}: OpenCV vs ONNX relative logit "
                  f"error {rel:.3g}, argmax agreement {100 * agree:.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
