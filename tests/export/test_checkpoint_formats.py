"""Each checkpoint family from the README's table, through its documented commands: ``python -m export onnx``,
``python -m export eval`` and ``runtime/infer.py`` with the exported model (overlays and masks in the model's palette).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from caffe_nets import caffemodel_bytes, prototxt, random_blobs
from PIL import Image

from demo.dataset import write_dataset
from demo.scenes import CLASS_NAMES
from export.cli import main as export_main
from export.model import ASPP_L
from runtime.infer import main as infer_main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    write_dataset(root / "data", 2, seed=3, width=72, height=56, val_fraction=1.0, progress=False)
    return root / "data"


def _infer_masks(model, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (57, 75, 3), np.uint8))
    rc = infer_main(["--model", str(model), "--source", str(image), "--masks", str(tmp_path / "masks"),
                     "--output", str(tmp_path / "overlays"), "--no-crf", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "overlays" / "in.jpg").is_file()
    return Image.open(tmp_path / "masks" / "in.png")


@pytest.mark.slow
def test_caffemodel_exports_evaluates_and_runs(data, tmp_path, capsys):
    text = prototxt("resnet", len(CLASS_NAMES), ASPP_L, blocks=(1, 1, 2, 1), width=4)
    model = tmp_path / "train_iter_20000.caffemodel"
    model.write_bytes(caffemodel_bytes(text, random_blobs(text)))
    (tmp_path / "deploy.prototxt").write_text(text)
    classes = data / "classes.txt"
    out = tmp_path / "m.onnx"
    assert export_main(["onnx", str(model), "--prototxt", str(tmp_path / "deploy.prototxt"), "--classes",
                        str(classes), "-o", str(out), "--height", "57", "--width", "75"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (f"DeepLab v2 ResNet (blocks 1-1-2-1, width 4), ASPP-L, {len(CLASS_NAMES)} classes, Caffe "
                     f"layout, single scale")
    report = tmp_path / "eval.json"
    assert export_main(["eval", str(model), "--prototxt", str(tmp_path / "deploy.prototxt"), "--classes",
                        str(classes), "--data", str(data), "--no-crf", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["images"] == 2
    mask = _infer_masks(out, tmp_path)
    assert mask.mode == "P"


def test_cityscapes_model_runs_with_its_palette(tmp_path):
    from export.checkpoint import save_checkpoint
    from export.model import DeepLabV2

    torch.manual_seed(0)
    path = tmp_path / "gta2cityscapes.pth"
    save_checkpoint(path, DeepLabV2(19, (1, 1, 1, 1), 4).eval())
    out = tmp_path / "m.onnx"
    assert export_main(["onnx", str(path), "-o", str(out), "--height", "33", "--width", "33"]) == 0
    palette = np.asarray(_infer_masks(out, tmp_path).getpalette()[:6]).reshape(2, 3)
    assert palette.tolist() == [[128, 64, 128], [244, 35, 232]]  # road, sidewalk


def test_ambiguous_layout_is_one_line_and_writes_nothing(tmp_path, capsys):
    sd = {"conv1.weight": torch.zeros(4, 3, 7, 7), "layer5.conv2d_list.0.weight": torch.zeros(19, 16, 3, 3)}
    torch.save(sd, tmp_path / "GTA5_multi.pth")
    out = tmp_path / "m.onnx"
    assert export_main(["onnx", str(tmp_path / "GTA5_multi.pth"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "--layout adaptsegnet" in err and "--layout advent" in err
    assert not out.exists()


def test_classes_that_do_not_fit(tmp_path, capsys):
    text = prototxt("resnet", 5, ASPP_L, blocks=(1, 1, 1, 1), width=4)
    model = tmp_path / "m.caffemodel"
    model.write_bytes(caffemodel_bytes(text, random_blobs(text)))
    assert export_main(["onnx", str(model), "--classes", "voc", "-o", str(tmp_path / "m.onnx")]) == 1
    assert "'voc' lists 21 class names for a model with 5 classes" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_compare_takes_a_caffemodel(data, tmp_path):
    from export.compare import compare
    from export.onnx_export import export_onnx

    text = prototxt("vgg16", len(CLASS_NAMES), (12,), width=8, fc_width=16)
    model = tmp_path / "largefov.caffemodel"
    model.write_bytes(caffemodel_bytes(text, random_blobs(text)))
    classes = str(data / "classes.txt")
    export_onnx(model, tmp_path / "m.onnx", classes=classes, height=57, width=75)
    stats, names = compare([str(model), str(tmp_path / "m.onnx")], data, progress=False,
                           export_args={"layout": "auto", "prototxt": None, "classes": classes})
    assert names == list(CLASS_NAMES) and stats[1].agreement == 1.0


def test_eval_reads_labels_in_the_models_palette(tmp_path):
    """A Cityscapes model evaluates on label PNGs coloured with the Cityscapes palette its metadata records."""
    from export.checkpoint import save_checkpoint
    from export.classes import named_set
    from export.model import DeepLabV2
    from export.voc import write_split

    root = tmp_path / "city"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    cv2.imwrite(str(root / "JPEGImages" / "a.jpg"), np.full((40, 48, 3), 90, np.uint8))
    colours = np.zeros((256, 3), np.uint8)
    colours[:19] = named_set("cityscapes").palette
    label = Image.fromarray(np.tile(np.arange(19, dtype=np.uint8), (40, 3))[:, :48], mode="P")
    label.putpalette(colours.tobytes())
    label.save(root / "SegmentationClass" / "a.png")
    write_split(root, "val", ["a"])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "city.pt", DeepLabV2(19, (1, 1, 1, 1), 4).eval())
    report = tmp_path / "r.json"
    assert export_main(["eval", str(tmp_path / "city.pt"), "--data", str(root), "--no-crf", "--json",
                        str(report)]) == 0
    assert "road" in json.loads(report.read_text())["iou"]
