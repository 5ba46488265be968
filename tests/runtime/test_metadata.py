"""ModelMeta: JSON round trip and one-line errors for every malformed field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.metadata import (CAFFE_BGR_MEAN, ONNX_METADATA_KEY, SCHEMA_VERSION, TRITON_META_PARAMETER, MetadataError,
                              ModelMeta, read_meta)


def _full() -> ModelMeta:
    return ModelMeta(class_names=("bg", "car"), channel_order="RGB", mean=(1.0, 2.0, 3.0), scale=(0.5, 0.5, 0.5),
                     output_stride=8, align_corners=True, input_name="in", output_name="out", precision="int8",
                     msc=True, source_sha256="ab" * 32, extra={"architecture": {"blocks": [3, 4, 23, 3]}})


def test_round_trip():
    meta = _full()
    text = meta.to_json()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    assert ModelMeta.from_json(text) == meta
    assert ModelMeta.from_json(text.encode()) == meta
    assert meta.n_classes == 2


def test_defaults_are_the_caffe_preprocessing():
    meta = ModelMeta.from_json(json.dumps({"class_names": ["a"]}))
    assert (meta.channel_order, meta.mean, meta.scale) == ("BGR", CAFFE_BGR_MEAN, (1.0, 1.0, 1.0))
    assert (meta.output_stride, meta.align_corners, meta.precision, meta.msc) == (8, False, "fp32", False)


def test_integer_mean_becomes_float():
    meta = ModelMeta.from_dict({"class_names": ["a"], "mean": [104, 117, 123]})
    assert meta.mean == (104.0, 117.0, 123.0) and all(isinstance(x, float) for x in meta.mean)


# The cases the C++ runtime tests too (runtime/cpp/tests/test_units.cpp): one list for both parsers.
CASES = json.loads((Path(__file__).parents[1] / "data" / "model_meta_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["json"][:60] for c in CASES])
def test_shared_metadata_cases(case):
    if case["error"] is None:
        meta = ModelMeta.from_json(case["json"])
        assert ModelMeta.from_json(meta.to_json()) == meta
        return
    with pytest.raises(MetadataError) as info:
        ModelMeta.from_json(case["json"])
    assert str(info.value).startswith(case["error"]) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, match", [
    (b"\xff\xfe", "not valid JSON"),
    ('{"class_names": ["a"], "mean": [1, 2, NaN]}', "3 finite numbers"),  # Python's json reads NaN; JSON has none
])
def test_python_only_json(text, match):
    with pytest.raises(MetadataError, match=match):
        ModelMeta.from_json(text)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=4), max_leaves=12)
fields = st.sampled_from(["class_names", "channel_order", "mean", "scale", "output_stride", "align_corners",
                          "input_name", "output_name", "precision", "msc", "source_sha256", "extra",
                          "schema_version", "other"])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(fields, json_values, max_size=6), st.booleans())
def test_any_json_object_gives_meta_or_metadata_error(d, named):
    if named:
        d.setdefault("class_names", ["a", "b"])
    try:
        meta = ModelMeta.from_json(json.dumps(d))
    except MetadataError:
        return
    assert ModelMeta.from_json(meta.to_json()) == meta


def test_read_meta_from_onnx_properties_and_triton_parameters():
    meta = ModelMeta(class_names=("a", "b"))
    for key in (ONNX_METADATA_KEY, TRITON_META_PARAMETER):
        assert read_meta({key: meta.to_json(), "other": "x"}, key, "m.onnx", "export it") == meta
    with pytest.raises(MetadataError, match=r"^m.onnx has no 'deeplab' metadata: export it$"):
        read_meta({"other": "x"}, ONNX_METADATA_KEY, "m.onnx", "export it")
    with pytest.raises(MetadataError, match=r"^config has corrupt 'deeplab_meta' metadata: .*not valid JSON"):
        read_meta({TRITON_META_PARAMETER: "{oops"}, TRITON_META_PARAMETER, "config", "regenerate it")
