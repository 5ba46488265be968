from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runtime import Segmenter
from runtime.cuda_util import gpu_available
from runtime.metadata import ModelMeta
from runtime.preprocess import ImageError, preprocess
from runtime.segmenter import CrfUnavailable, _upsample_device, crf_config, crf_summary


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def seg(tiny_onnx):
    with Segmenter(tiny_onnx, crf=None) as s:
        yield s


def test_segment_shapes_and_consistency(seg):
    image = _image(45, 61)  # odd sizes: padded to 48×64, cropped back
    labels, probs = seg.segment(image)
    assert labels.shape == (45, 61) and labels.dtype == np.uint8
    assert probs.shape == (4, 45, 61) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    np.testing.assert_array_equal(labels, probs.argmax(0))
    fast, none = seg.segment(image, return_probs=False)
    assert none is None
    assert (fast == labels).mean() > 0.999


def test_stages_match_torch(seg):
    torch = pytest.importorskip("torch")
    image = _image(40, 56, seed=3)
    logits, padding = seg.infer(image)
    assert logits.shape == (4, 5, 7) and (padding.height, padding.width) == (40, 56)
    ref = torch.nn.functional.interpolate(torch.from_numpy(logits[None]), size=(40, 56), mode="bilinear",
                                          align_corners=False).softmax(1)[0].numpy()
    np.testing.assert_allclose(seg.upsample(logits, padding), ref, atol=1e-5)
    assert seg.refine(image, ref) is ref  # CRF off: identity


@pytest.mark.parametrize("image", [
    np.full((33, 47), 128, np.uint8),                      # grayscale
    np.full((33, 47, 1), 128, np.uint8),
    np.full((33, 47, 4), 200, np.uint8),                   # BGRA
    np.full((33, 47, 3), 40000, np.uint16),                # 16-bit
    np.full((33, 47, 3), 0.5, np.float32),
], ids=["gray", "gray1", "bgra", "uint16", "float"])
def test_image_layouts(seg, image):
    labels, probs = seg.segment(image)
    assert labels.shape == (33, 47) and probs.shape == (4, 33, 47)


@pytest.mark.parametrize("image", [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 0), np.uint8),
                                   np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.int64)])
def test_bad_images(seg, image):
    with pytest.raises(ImageError):
        seg.segment(image)


def test_thread_safety(seg):
    images = [_image(32 + 8 * i, 40, seed=i) for i in range(8)]
    expected = [seg.segment(im)[0] for im in images]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: seg.segment(im)[0], images * 3))
    for i, labels in enumerate(got):
        np.testing.assert_array_equal(labels, expected[i % len(images)])


def test_stream(seg):
    frames = [_image(24, 32, seed=i) for i in range(3)]
    out = list(seg.stream(frames, return_probs=False))
    assert len(out) == 3 and all(p is None and lab.shape == (24, 32) for lab, p in out)


def test_crf_config():
    """The Python layer over crf.resolve_crf (its rule's cases: tests/crf/test_settings.py): the shapes of ``crf``,
    the model's own settings from its metadata, and the summary the CLIs print."""
    meta = ModelMeta(class_names=("a", "b"))
    demo = ModelMeta(class_names=("a", "b"), extra={"crf": {"preset": "voc", "iterations": 3, "bilateral_srgb": 5}})
    assert crf_config(None, meta) is None
    assert crf_summary(crf_config("default", meta)) == {"preset": "voc"}
    assert crf_summary(crf_config("default", demo)) == {"preset": "voc", "iterations": 3, "bilateral_srgb": 5}
    assert crf_summary(crf_config("default", demo, iterations=7))["iterations"] == 7
    assert crf_summary(crf_config("pydensecrf", demo)) == {"preset": "pydensecrf"}
    assert crf_summary(crf_config({"iterations": 2}, meta, iterations=4)) == {"preset": "voc", "iterations": 4}
    assert crf_summary(crf_config("voc", meta, video=True, scale=0.5)) == {"preset": "voc", "scale": 0.5}
    assert crf_summary(crf_config("voc", meta, scale=0.3))["scale"] == 0.3
    with pytest.raises(ValueError):
        crf_config("voc", meta, iterations=-1)
    with pytest.raises(ValueError, match="bilateral_srgb must be a number"):
        crf_config({"bilateral_srgb": "5"}, meta)
    with pytest.raises(TypeError):
        crf_config(3, meta)  # type: ignore[arg-type]


def _crf_or_skip():
    crf = pytest.importorskip("crf")
    if not hasattr(crf, "refine"):
        pytest.skip("crf.refine is not available in this checkout")


def test_with_crf_and_warm_start(tiny_onnx):
    _crf_or_skip()
    with Segmenter(tiny_onnx, crf="voc", crf_iterations=2, warm_start=True) as seg:
        frames = [_image(40, 48, seed=i) for i in range(3)] + [_image(24, 32)]  # the size change drops the warm start
        out = list(seg.stream(frames))
        assert [lab.shape for lab, _ in out] == [(40, 48)] * 3 + [(24, 32)]
        np.testing.assert_allclose(out[0][1].sum(0), 1, atol=1e-4)


def test_video_crf_default(tiny_onnx):
    """On a video the CRF is the shared video default (fewer iterations) unless iterations, a scale or warm start
    were asked for; images keep the full CRF. Resolved once, at construction."""
    crf = pytest.importorskip("crf")
    with Segmenter(tiny_onnx, crf="voc") as seg:
        assert crf_summary(seg.crf) == {"preset": "voc"} and not seg.warm_start
    with Segmenter(tiny_onnx, crf="voc", video=True) as seg:
        assert crf_summary(seg.crf) == {"preset": "voc", "iterations": crf.VIDEO_ITERATIONS,
                                        "scale": pytest.approx(crf.VIDEO_SCALE)}
        assert crf.VIDEO_ITERATIONS < crf.PRESETS["voc"].iterations and 0 < crf.VIDEO_SCALE <= 1
        labels, probs = next(seg.stream([_image(40, 48)]))
        assert labels.shape == (40, 48)
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
    for chosen in ({"crf_iterations": 10}, {"warm_start": True}, {"crf": {"preset": "voc", "scale": 1.0}},
                   {"crf_scale": 0.5}):
        with Segmenter(tiny_onnx, **{"crf": "voc", **chosen}) as still, \
                Segmenter(tiny_onnx, **{"crf": "voc", **chosen}, video=True) as video:
            assert crf_summary(video.crf) == crf_summary(still.crf), chosen
    with Segmenter(tiny_onnx, crf=None, video=True) as seg:
        assert seg.crf is None
    with Segmenter(tiny_onnx, crf="voc", crf_scale=0.5) as seg:
        assert crf_summary(seg.crf) == {"preset": "voc", "scale": 0.5}
    with pytest.raises(ValueError, match="scale must be in"):
        Segmenter(tiny_onnx, crf="voc", crf_scale=1.5)


def test_each_segmenter_owns_its_lattice_cache(tiny_onnx):
    """No process-wide CRF state: a Segmenter's lattices live in its own cache (and each stream's in its own)."""
    crf = pytest.importorskip("crf")
    with Segmenter(tiny_onnx, crf="pydensecrf", crf_iterations=1) as a, \
            Segmenter(tiny_onnx, crf="pydensecrf", crf_iterations=1) as b:
        assert a._lattices is not b._lattices and a.crf_cache() is not a._lattices
        before = len(crf.LatticeCache.process_default())
        a.segment(_image(40, 48))
        assert len(a._lattices) == 1 and len(b._lattices) == 0
        assert len(crf.LatticeCache.process_default()) == before


def test_crf_missing_is_a_clear_error(tiny_onnx, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "crf", None)
    with pytest.raises(CrfUnavailable, match="--no-crf"):
        Segmenter(tiny_onnx, crf="voc")


@pytest.mark.parametrize("order, scale", [("BGR", (1.0, 1.0, 1.0)), ("RGB", (0.5, 0.25, 2.0))])
def test_preprocess_matches_the_reference_formula(order, scale):
    meta = ModelMeta(class_names=("a",), channel_order=order, scale=scale, mean=(10.0, 20.0, 30.5))
    image = _image(21, 30)
    x, padding = preprocess(image, meta)
    assert x.shape == (1, 3, 24, 32) and (padding.height, padding.width) == (21, 30)
    idx = ["BGR".index(c) for c in order]
    ref = (image[:, :, idx].transpose(2, 0, 1).astype(np.float32) - np.float32(meta.mean).reshape(3, 1, 1)) \
        * np.float32(scale).reshape(3, 1, 1)
    np.testing.assert_array_equal(x[0, :, :21, :30], ref)
    assert not x[0, :, 21:].any() and not x[0, :, :, 30:].any()



def test_cuda_upsampling_without_a_gpu_is_a_clear_error(tiny_onnx):
    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        Segmenter(tiny_onnx, crf=None, upsample_device="cuda")


@pytest.mark.parametrize("crf, match", [("nonsense", "unknown CRF preset"), ({"sigma": 3}, "unknown CRF setting")])
def test_bad_crf_settings_fail_at_start(tiny_onnx, crf, match):
    _crf_or_skip()
    with pytest.raises(ValueError, match=match):
        Segmenter(tiny_onnx, crf=crf)


def test_upsample_device_resolution():
    assert _upsample_device("auto", "onnxruntime") == "cpu"
    assert _upsample_device("cpu", "tensorrt") == "cpu"
    if not gpu_available():
        assert _upsample_device("auto", "tensorrt") == "cpu"  # no GPU: the CPU, silently
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        _upsample_device("tpu", "onnxruntime")
