"""The CRF-settings rule (crf/include/crf/settings.hpp, bound as crf.resolve_crf): the presets, the model's own
settings under "default" and the video rule. Both runtimes resolve through it; this is its one test list."""
from __future__ import annotations

import pytest

import crf

V_IT, V_SCALE = crf.VIDEO_ITERATIONS, crf.VIDEO_SCALE
TUNED = {"bilateral_srgb": 10.0, "bilateral_sxy": 40.0}

# (preset, caller's overrides, iterations, scale, warm start, model preset, model overrides, video)
#   -> (preset, overrides, iterations, scale)
CASES = [
    (("default", {}, -1, 0, False, "", {}, False), ("voc", {}, -1, 0)),
    (("default", {}, -1, 0, False, "pydensecrf", {}, False), ("pydensecrf", {}, -1, 0)),
    (("default", {}, -1, 0, False, "voc", TUNED, False), ("voc", TUNED, -1, 0)),
    (("voc", {}, -1, 0, False, "pydensecrf", TUNED, False), ("voc", {}, -1, 0)),  # a named preset ignores the model's
    (("default", {}, 7, 0, False, "voc", {"iterations": 3.0}, False), ("voc", {"iterations": 3.0}, 7, 0)),
    (("voc", {"bilateral_srgb": 5.0}, -1, 0.5, False, "", {}, False), ("voc", {"bilateral_srgb": 5.0}, -1, 0.5)),
    # the video rule: iterations, a scale or warm start (or the caller's own iterations/scale) keep the choice
    (("default", {}, -1, 0, False, "voc", TUNED, True), ("voc", TUNED, V_IT, V_SCALE)),
    (("default", {}, -1, 0, False, "", {"iterations": 2.0}, True), ("voc", {"iterations": 2.0}, V_IT, V_SCALE)),
    (("voc", {}, 10, 0, False, "", {}, True), ("voc", {}, 10, 0)),
    (("voc", {}, -1, 0.5, False, "", {}, True), ("voc", {}, -1, 0.5)),
    (("voc", {}, -1, 0, True, "", {}, True), ("voc", {}, -1, 0)),
    (("voc", {"scale": 1.0}, -1, 0, False, "", {}, True), ("voc", {"scale": 1.0}, -1, 0)),
    (("voc", {"iterations": 4.0}, -1, 0, False, "", {}, True), ("voc", {"iterations": 4.0}, -1, 0)),
]


@pytest.mark.parametrize("args, expected", CASES)
def test_resolve(args, expected):
    c = crf.resolve_crf(*args[:5], "auto", *args[5:])
    assert (c.preset, c.overrides, c.iterations) == expected[:3] and c.scale == pytest.approx(expected[3])
    assert c.warm_start == args[4] and c.device == "auto"


def test_params_apply_preset_overrides_iterations_scale_in_order():
    c = crf.resolve_crf("default", {}, -1, 0, False, "auto", "pydensecrf", {"iterations": 3.0, "half_rows": 0.0,
                                                                          "bilateral_srgb": 7.0}, True)
    p = c.params()
    base = crf.PRESETS["pydensecrf"]
    assert (p.iterations, p.scale, p.half_rows) == (V_IT, pytest.approx(V_SCALE), False)
    assert (p.bilateral_srgb, p.bilateral_sxy) == (7.0, base.bilateral_sxy)
    assert crf.resolve_crf("voc", {}, 5, 0.5, False, "cpu", "", {}, False).params().iterations == 5


def test_the_presets_are_one_table():
    assert sorted(crf.PRESETS) == crf._crf.preset_names()
    assert crf.PRESETS["voc"].iterations == 10 and crf.PRESETS["pydensecrf"].bilateral_srgb == 13


@pytest.mark.parametrize("args, match", [
    (("nonsense", {}, -1, 0, False, "auto", "", {}, False), "unknown CRF preset 'nonsense'; known: pydensecrf, voc"),
    (("default", {}, -1, 0, False, "auto", "mine", {}, False), "unknown CRF preset 'mine'"),
    (("voc", {"sigma": 3.0}, -1, 0, False, "auto", "", {}, False), "unknown CRF setting 'sigma'"),
    (("default", {}, -1, 0, False, "auto", "", {"bilateral_w": 5.0}, False), "unknown CRF setting 'bilateral_w'"),
    (("voc", {"iterations": 2.5}, -1, 0, False, "auto", "", {}, False), "iterations must be an integer"),
    (("voc", {"half_rows": 2.0}, -1, 0, False, "auto", "", {}, False), "half_rows must be a bool"),
    (("voc", {}, -2, 0, False, "auto", "", {}, False), "iterations must be an integer >= 0"),
    (("voc", {}, -1, 1.5, False, "auto", "", {}, False), r"scale must be in \(0, 1\]"),
    (("voc", {"bilateral_sxy": -1.0}, -1, 0, False, "auto", "", {}, False), "bilateral_sxy must be finite and > 0"),
    (("voc", {}, -1, 0, False, "gpu", "", {}, False), "device must be auto, cpu or cuda"),
])
def test_bad_settings(args, match):
    with pytest.raises(ValueError, match=match):
        crf.resolve_crf(*args)


def test_a_resolved_config_is_read_only():
    c = crf.resolve_crf("voc", {}, -1, 0, False, "auto", "", {}, True)
    with pytest.raises(AttributeError):
        c.iterations = 10
