"""INT8 Q/DQ export: exact graph structure for TensorRT, calibration sources and cache, onnxruntime CPU execution."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import numpy_helper  # noqa: E402

from export.calibration import CalibrationError, open_calibration  # noqa: E402
from export.int8 import place_for_tensorrt, quantize, residual_adds  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from export.onnx_graph import read_meta  # noqa: E402
from runtime.preprocess import preprocess  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def scene(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth image-like BGR uint8 picture (gradients, a few blobs, noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (h + w) * 255], -1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 20)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    import cv2

    d = tmp_path_factory.mktemp("calib")
    for i, (h, w) in enumerate([(48, 64), (65, 65), (40, 90), (72, 56), (64, 64), (33, 47)]):
        cv2.imwrite(str(d / f"img{i}.{'png' if i % 2 else 'jpg'}"), scene(h, w, i))
    return d


@pytest.fixture(scope="module")
def int8_onnx(small_onnx, calib_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "small.int8.onnx"
    report = quantize(small_onnx, calib_dir, out, method="minmax", progress=False)
    assert report.calibration_inputs == 6 and not report.cache_used
    return out


def _graph(path):
    m = onnx.load(str(path))
    producers = {o: n for n in m.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name: t for t in m.graph.initializer}
    return m, producers, consumers, inits


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def test_every_conv_weight_is_per_channel_int8_on_axis_0(int8_onnx):
    m, producers, _, inits = _graph(int8_onnx)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear", conv.name
        w = inits[dq.input[0]]
        assert w.data_type == onnx.TensorProto.INT8, conv.name
        scale = numpy_helper.to_array(inits[dq.input[1]])
        assert scale.shape == (w.dims[0],) and (scale > 0).all(), conv.name
        assert _axis(dq) == 0, conv.name
        if len(conv.input) > 2:  # biases stay float: no int32 DequantizeLinear
            assert conv.input[2] in inits and inits[conv.input[2]].data_type == onnx.TensorProto.FLOAT


def test_every_conv_input_is_quantized_and_every_zero_point_is_int8_0(int8_onnx):
    m, producers, _, inits = _graph(int8_onnx)
    for conv in (n for n in m.graph.node if n.op_type == "Conv"):
        dq = producers[conv.input[0]]
        assert dq.op_type == "DequantizeLinear" and producers[dq.input[0]].op_type == "QuantizeLinear", conv.name
    qdq = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        assert len(n.input) == 3, n.name
        zp = inits[n.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(zp).any(), n.name
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            assert inits[n.input[0]].data_type != onnx.TensorProto.INT32, "biases must not be quantized"


def test_opset_and_metadata_kept(small_onnx, int8_onnx):
    m = onnx.load(str(int8_onnx))
    assert [(o.domain, o.version) for o in m.opset_import if o.domain in ("", "ai.onnx")] == [("", 17)]
    assert all(o.domain in ("", "ai.onnx") for o in m.opset_import)  # no com.microsoft contrib Q/DQ
    meta, fp32 = read_meta(m), read_meta(onnx.load(str(small_onnx)))
    assert meta.precision == "int8" and meta.class_names == fp32.class_names and meta.mean == fp32.mean
    onnx.checker.check_model(m)


def test_qdq_placed_where_tensorrt_fuses(int8_onnx):
    m, producers, consumers, _ = _graph(int8_onnx)
    adds = [n for n in m.graph.node if n.op_type == "Add"]
    residual = set(residual_adds(m.graph))
    assert residual and len(residual) < len(adds)  # the ASPP sum is not residual
    for add in adds:
        kinds = [producers[i].op_type for i in add.input]
        if add.name in residual:
            # one input straight from the conv the add fuses into, the residual input through Q/DQ
            assert sorted(kinds) == ["Conv", "DequantizeLinear"], (add.name, kinds)
        else:
            assert "DequantizeLinear" not in kinds, (add.name, kinds)
    # nothing on op outputs: a Q only feeds DQs, a DQ only feeds convs or residual adds, and a conv's output is
    # quantized only as the residual input of an add
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            assert all(c.op_type == "DequantizeLinear" for c in consumers[n.output[0]])
            src = producers.get(n.input[0])
            if src is not None and src.op_type == "Conv":
                dq_users = [c for dq in consumers[n.output[0]] for c in consumers[dq.output[0]]]
                assert all(c.name in residual for c in dq_users)
        if n.op_type == "DequantizeLinear":
            assert all(c.op_type == "Conv" or c.name in residual for c in consumers[n.output[0]])
    # nothing between conv and relu: every Relu reads a Conv or an Add directly
    for n in m.graph.node:
        if n.op_type == "Relu":
            assert producers[n.input[0]].op_type in ("Conv", "Add")


def test_runs_in_onnxruntime_and_agrees_with_fp32(small_onnx, int8_onnx):
    meta = read_meta(onnx.load(str(small_onnx)))
    fp32 = ort.InferenceSession(str(small_onnx), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(int8_onnx), providers=["CPUExecutionProvider"])
    agree = []
    for seed in (100, 101, 102):
        x, _ = preprocess(scene(64, 80, seed), meta)
        a, b = fp32.run(None, {"image": x})[0], int8.run(None, {"image": x})[0]
        assert a.shape == b.shape and np.isfinite(b).all()
        agree.append((a.argmax(1) == b.argmax(1)).mean())
    assert np.mean(agree) > 0.8  # a random small model has many near-ties; the demo model is held to 98 %


def test_cache_skips_the_calibration_pass(small_onnx, calib_dir, tmp_path):
    cache = tmp_path / "calib.json"
    first = quantize(small_onnx, calib_dir, tmp_path / "a.onnx", method="minmax", cache=cache, progress=False)
    assert not first.cache_used and first.calibration_inputs == 6 and cache.is_file()
    assert "deeplab_calibration_key" in json.loads(cache.read_text())
    second = quantize(small_onnx, calib_dir, tmp_path / "b.onnx", method="minmax", cache=cache, progress=False)
    assert second.cache_used and second.calibration_inputs == 0
    a, b = onnx.load(str(tmp_path / "a.onnx")), onnx.load(str(tmp_path / "b.onnx"))
    assert {t.name: t.SerializeToString() for t in a.graph.initializer} == \
        {t.name: t.SerializeToString() for t in b.graph.initializer}
    # other data or method: calibrate again and rewrite the cache
    third = quantize(small_onnx, calib_dir, tmp_path / "c.onnx", method="minmax", max_images=3, cache=cache,
                     progress=False)
    assert not third.cache_used and third.calibration_inputs == 3


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods(small_onnx, calib_dir, tmp_path, method):
    out = tmp_path / f"{method}.onnx"
    report = quantize(small_onnx, calib_dir, out, method=method, max_images=3, progress=False)
    assert report.method == method and report.calibration_inputs == 3
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert np.isfinite(ort.InferenceSession(str(out)).run(None, {"image": x})[0]).all()


def test_load_data_script(small_onnx, tmp_path):
    script = tmp_path / "data.py"
    script.write_text(
        "import numpy as np\n"
        "def load_data():\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(3):\n"
        "        yield {'image': rng.normal(0, 60, (1, 3, 64, 72)).astype(np.float32)}\n")
    report = quantize(small_onnx, script, tmp_path / "s.onnx", method="minmax", progress=False)
    assert report.calibration_inputs == 3


@pytest.mark.parametrize("body,match", [
    ("def load_data():\n    yield {'x': 1}\n", "must be a dict with key 'image'"),
    ("import numpy as np\ndef load_data():\n    yield {'image': np.zeros((1, 3, 60, 64), np.float32)}\n",
     "multiples of 8"),
    ("x = 1\n", "defines no load_data"),
    ("raise RuntimeError('boom')\n", "failed to import: RuntimeError: boom"),
    ("def load_data():\n    return []\n", "yielded no inputs"),
])
def test_bad_load_data_scripts(small_onnx, tmp_path, body, match):
    script = tmp_path / "bad.py"
    script.write_text(body)
    with pytest.raises(CalibrationError, match=match):
        quantize(small_onnx, script, tmp_path / "s.onnx", method="minmax", progress=False)
    assert not (tmp_path / "s.onnx").exists()


def test_bad_inputs(small_onnx, int8_onnx, calib_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no calibration images"):
        open_calibration(tmp_path / "empty")
    with pytest.raises(CalibrationError, match="does not exist"):
        open_calibration(tmp_path / "missing")
    with pytest.raises(CalibrationError, match="max-images"):
        open_calibration(calib_dir, max_images=0)
    with pytest.raises(ValueError, match="already quantized"):
        quantize(int8_onnx, calib_dir, tmp_path / "x.onnx")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    bad = tmp_path / "badimg"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError, match="cannot decode"):
        quantize(small_onnx, bad, tmp_path / "x.onnx", method="minmax", progress=False)
    assert not (tmp_path / "x.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_msc_model(small_checkpoint, calib_dir, tmp_path):
    src = tmp_path / "msc.onnx"
    export_onnx(small_checkpoint, src, msc=True, height=64, width=64)
    out = tmp_path / "msc.int8.onnx"
    quantize(src, calib_dir, out, method="minmax", max_images=2, progress=False)
    m = onnx.load(str(out))
    assert {"Resize", "Max"} <= {n.op_type for n in m.graph.node}
    test_every_conv_weight_is_per_channel_int8_on_axis_0(out)
    test_every_conv_input_is_quantized_and_every_zero_point_is_int8_0(out)
    x = np.zeros((1, 3, 64, 64), np.float32)
    y = ort.InferenceSession(str(out)).run(None, {"image": x})[0]
    assert y.shape == ort.InferenceSession(str(src)).run(None, {"image": x})[0].shape


def test_place_for_tensorrt_is_idempotent(int8_onnx):
    m = onnx.load(str(int8_onnx))
    assert place_for_tensorrt(m) == 0


def test_cli(small_onnx, calib_dir, tmp_path):
    out = tmp_path / "cli.onnx"
    r = subprocess.run([sys.executable, "-m", "export", "int8", str(small_onnx), "--calib", str(calib_dir), "-o",
                        str(out), "--method", "minmax", "--max-images", "2", "--no-progress"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "INT8 Q/DQ" in r.stdout and out.is_file()
    r = subprocess.run([sys.executable, "-m", "export", "int8", str(small_onnx), "--calib", str(tmp_path / "nope"),
                        "-o", str(tmp_path / "n.onnx")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
