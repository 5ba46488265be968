"""Preprocessing: the shared cases of tests/data/preprocess_cases.json, which the C++ runtime tests too
(runtime/cpp/tests/test_units.cpp): one list of expectations for both implementations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime.metadata import ModelMeta
from runtime.preprocess import ImageError, preprocess

CASES = json.loads((Path(__file__).parents[1] / "data" / "preprocess_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_preprocess_cases(case):
    image = np.array(case["image"], np.uint8).reshape(case["height"], case["width"], 3)
    meta = ModelMeta.from_dict(case["meta"])
    pad_to = tuple(case["pad_to"]) if case["pad_to"] else None
    if case["error"] is not None:
        with pytest.raises(ImageError) as info:
            preprocess(image, meta, pad_to)
        assert str(info.value).startswith(case["error"])
        return
    x, padding = preprocess(image, meta, pad_to)
    assert (padding.height, padding.width) == (case["height"], case["width"])
    assert [padding.padded_height, padding.padded_width] == case["padded"]
    assert x.dtype == np.float32 and x.shape == (1, 3, *case["padded"])
    assert np.array_equal(x.ravel(), np.array(case["input"], np.float32))  # bit for bit
