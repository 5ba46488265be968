"""`python -m demo train` and `tune-crf` end to end on a tiny set: checkpoint layout, ONNX metadata, CRF preset."""
import pytest

from demo.__main__ import main
from demo.train import TrainConfig, _batch, _crop
from demo.tune_crf import VOC, candidates, edge_warnings
from runtime.metadata import ONNX_METADATA_KEY, ModelMeta

torch = pytest.importorskip("torch")


def test_train_then_tune_crf(tmp_path, capsys):
    data, ckpt, onnx_file = tmp_path / "data", tmp_path / "m.pt", tmp_path / "m.onnx"
    assert main(["generate", "--out", str(data), "--count", "4", "--seed", "3", "--size", "64x48",
                 "--val-fraction", "0.5"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(ckpt), "--steps", "2",
                 "--batch", "2", "--crop", "40", "--width", "4", "--threads", "1"]) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count("wrote") == 1 and said.out.splitlines()[-1] == f"wrote {ckpt}, {onnx_file}"
    assert onnx_file.is_file()  # --out with .onnx, by default
    payload = torch.load(ckpt, weights_only=True)
    assert payload["class_names"][0] == "background" and len(payload["class_names"]) == 8
    assert "layer1.conv1.conv.weight" in payload["model"] and "aspp.c3.bias" in payload["model"]
    assert payload["meta"]["train"]["config"]["steps"] == 2
    assert payload["meta"]["train"]["data"] == "data"  # the folder's name, not this machine's path to it

    before = ckpt.read_bytes(), onnx_file.read_bytes()
    tuned, tuned_onnx = tmp_path / "tuned.pt", tmp_path / "tuned.onnx"
    assert main(["tune-crf", "--data", str(data), "--max-images", "1", "--checkpoint", str(ckpt),
                 "--out", str(tuned), "--sxy", "40", "--srgb", "10,5", "--weight", "12"]) == 0
    assert (ckpt.read_bytes(), onnx_file.read_bytes()) == before  # searched with m.onnx, found beside m.pt
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tuned_onnx)).metadata_props}
    meta = ModelMeta.from_json(props[ONNX_METADATA_KEY])
    assert meta.extra["crf"]["preset"] == "voc"
    if "bilateral_sxy" in meta.extra["crf"]:  # a grid point won, not the VOC preset itself: from the grid given
        assert meta.extra["crf"]["bilateral_sxy"] == 40 and meta.extra["crf"]["bilateral_srgb"] in (5, 10)
    assert meta.extra["crf"] == torch.load(tuned, weights_only=True)["meta"]["crf"]
    assert "crf" not in meta.extra["checkpoint_meta"]
    assert meta.extra["checkpoint_meta"]["crf_search"]["data"] == "data"


def test_train_vgg16(tmp_path):
    data, ckpt = tmp_path / "data", tmp_path / "v.pt"
    assert main(["generate", "--out", str(data), "--count", "2", "--seed", "3", "--size", "48x40",
                 "--val-fraction", "0.5"]) == 0
    assert main(["train", "--data", str(data), "--out", str(ckpt), "--steps", "1", "--batch", "1", "--crop", "33",
                 "--width", "8", "--threads", "1", "--backbone", "vgg16", "--onnx", str(tmp_path / "v.onnx")]) == 0
    payload = torch.load(ckpt, weights_only=True)
    assert "features.conv5_3.weight" in payload["model"] and "aspp.c3.fc8.bias" in payload["model"]
    assert payload["meta"]["pool5a"] is False and payload["meta"]["train"]["config"]["backbone"] == "vgg16"
    assert (tmp_path / "v.onnx").is_file()


def test_batch_crops_are_height_by_width():
    import numpy as np

    labels = np.zeros((2, 48, 64), np.uint8)
    labels[:, 10:20, 30:40] = 3
    x, y = _batch(np.random.default_rng(0), np.zeros((2, 48, 64, 3), np.uint8), labels,
                  TrainConfig(batch=4, crop=(48, 64)), np.zeros(3, np.float32))
    assert x.shape == (4, 3, 48, 64) and y.shape == (4, 48, 64)
    assert set(np.unique(y)) == {0, 3}  # whole frames: nothing padded, so no 255


@pytest.mark.parametrize("text, expected", [("40", (40, 40)), ("64x48", (48, 64)), ("64X48", (48, 64))])
def test_crop_argument(text, expected):
    assert _crop(text) == expected


@pytest.mark.parametrize("text", ["4", "64x", "x48", "big", "64x48x2"])
def test_bad_crop_argument_is_rejected(text, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "unused", "--crop", text])
    assert "crop must be" in capsys.readouterr().err


def test_tune_crf_grid_and_edge_warnings():
    grid = {"bilateral_sxy": (20.0, 40.0), "bilateral_weight": (4.0, 8.0, 12.0)}
    points = candidates(grid)
    assert points[0] == VOC and len(points) == 1 + 2 * 3
    assert {"preset": "voc", "bilateral_sxy": 40.0, "bilateral_weight": 8.0} in points
    assert edge_warnings({"preset": "voc", "bilateral_sxy": 40.0, "bilateral_weight": 8.0}, grid) == [
        "bilateral_sxy 40 is the largest value searched; widen --sxy to look beyond it"]
    assert edge_warnings({"preset": "voc", "bilateral_sxy": 20.0, "bilateral_weight": 4.0}, grid) == [
        "bilateral_sxy 20 is the smallest value searched; widen --sxy to look beyond it",
        "bilateral_weight 4 is the smallest value searched; widen --weight to look beyond it"]
    assert edge_warnings(VOC, grid) == []
    assert edge_warnings({"preset": "voc", "bilateral_weight": 12.0}, {"bilateral_weight": (12.0,)}) == []


@pytest.mark.parametrize("text, message", [("a,b", "expected comma-separated numbers, got 'a,b'"),
                                           ("3,,4", "expected comma-separated numbers, got '3,,4'"),
                                           ("0,3", "values must be > 0, got '0,3'"),
                                           ("-1", "values must be > 0, got '-1'")])
def test_bad_tune_crf_grid_is_rejected(text, message, capsys):
    with pytest.raises(SystemExit):
        main(["tune-crf", "--data", "unused", "--weight", text])
    err = capsys.readouterr().err
    assert "argument --weight" in err and message in err
