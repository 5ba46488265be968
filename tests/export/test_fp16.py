"""FP16 ONNX: fp16 weights/activations, fp32 boundaries, topological order, onnxruntime CPU agreement with FP32."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export.fp16 import convert  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from export.onnx_graph import read_meta, topological_sort  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT


@pytest.fixture(scope="module")
def fp16_onnx(small_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fp16") / "small.fp16.onnx"
    convert(small_onnx, out)
    return out


def _elem_type(value_info) -> int:
    return value_info.type.tensor_type.elem_type


def _topologically_sorted(graph) -> bool:
    seen = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    for n in graph.node:
        if not all(i in seen for i in n.input):
            return False
        seen.update(n.output)
    return True


def test_structure(small_onnx, fp16_onnx):
    m = onnx.load(str(fp16_onnx))
    assert [_elem_type(i) for i in m.graph.input] == [F32] and [_elem_type(o) for o in m.graph.output] == [F32]
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    inits = {t.name: t for t in m.graph.initializer}
    assert convs and all(inits[c.input[1]].data_type == F16 for c in convs)
    assert not any(t.data_type == F32 for t in m.graph.initializer if t.name in {c.input[1] for c in convs})
    casts = [n for n in m.graph.node if n.op_type == "Cast"]
    assert len(casts) == 2  # one at the input, one at the output
    assert _topologically_sorted(m.graph)
    src = onnx.load(str(small_onnx))
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    meta = read_meta(m)
    assert meta.precision == "fp16" and meta.class_names == read_meta(src).class_names
    onnx.checker.check_model(m)


def test_agrees_with_fp32_in_onnxruntime_cpu(small_onnx, fp16_onnx):
    rng = np.random.default_rng(0)
    fp32 = ort.InferenceSession(str(small_onnx), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(fp16_onnx), providers=["CPUExecutionProvider"])
    for h, w in ((64, 64), (48, 96)):
        x = rng.uniform(-120, 130, (1, 3, h, w)).astype(np.float32)
        a, b = fp32.run(None, {"image": x})[0], fp16.run(None, {"image": x})[0]
        assert b.dtype == np.float32 and a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-2 * np.abs(a).max()
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99


def test_fp16_io(small_onnx, tmp_path):
    out = tmp_path / "io16.onnx"
    convert(small_onnx, out, keep_io_types=False)
    m = onnx.load(str(out))
    assert _elem_type(m.graph.input[0]) == F16 and _elem_type(m.graph.output[0]) == F16
    y = ort.InferenceSession(str(out)).run(None, {"image": np.zeros((1, 3, 32, 32), np.float16)})[0]
    assert y.dtype == np.float16


def test_msc_keeps_max_and_resize_scales_fp32(small_checkpoint, tmp_path):
    src, out = tmp_path / "msc.onnx", tmp_path / "msc.fp16.onnx"
    export_onnx(small_checkpoint, src, msc=True, height=64, width=64)
    convert(src, out)
    m = onnx.load(str(out))
    assert _topologically_sorted(m.graph)
    rng = np.random.default_rng(1)
    x = rng.uniform(-120, 130, (1, 3, 64, 64)).astype(np.float32)
    a = ort.InferenceSession(str(src)).run(None, {"image": x})[0]
    b = ort.InferenceSession(str(out)).run(None, {"image": x})[0]
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99


def test_topological_sort_orders_appended_nodes():
    from onnx import helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Neg", ["a"], ["b"])], "g",
        [helper.make_tensor_value_info("a", F32, [1])], [helper.make_tensor_value_info("c", F32, [1])])
    topological_sort(g)
    assert [n.op_type for n in g.node] == ["Neg", "Relu"]
    g.node.append(helper.make_node("Abs", ["missing"], ["d"]))
    with pytest.raises(ValueError, match="missing"):
        topological_sort(g)


def test_errors(fp16_onnx, tmp_path):
    with pytest.raises(ValueError, match="already has fp16"):
        convert(fp16_onnx, tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    r = subprocess.run([sys.executable, "-m", "export", "fp16", str(tmp_path / "missing.onnx")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
