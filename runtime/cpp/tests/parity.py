"""CTest: the C++ runtime, driven through its C API with ctypes, gives the Python package's results on the same inputs.

    python parity.py LIBDEEPLAB_RUNTIME.so              compare against the Python package
    python parity.py --write-golden DIR                 write the small golden arrays test_golden reads

Compared: the preprocessed input (bit for bit), upsampling + softmax (CPU), labels straight from the logits, the dense
CRF, and the whole chain against runtime.Segmenter. Parts whose Python module is missing are reported and skipped;
exit code 77 (CTest's skip) when the Python runtime itself cannot be imported.
"""
from __future__ import annotations

import ctypes as C
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
SKIP = 77


def _import(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        if str(REPO) not in sys.path:  # a source checkout without `pip install`
            sys.path.insert(0, str(REPO))
            return _import(name)
        raise


class Logits(C.Structure):
    _fields_ = [("data", C.POINTER(C.c_float)), ("channels", C.c_int32), ("height", C.c_int32), ("width", C.c_int32)]


class Options(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("crf", C.c_int32), ("crf_iterations", C.c_int32),
                ("threads", C.c_int32), ("warm_start", C.c_int32), ("device", C.c_int32),
                ("crf_preset", C.c_char_p), ("crf_scale", C.c_float), ("video", C.c_int32)]


PROVIDER = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_float), C.c_int32, C.c_int32, C.POINTER(Logits))


class CRuntime:
    """A deeplab_segmenter whose provider returns fixed logits and records the input it was given."""

    def __init__(self, lib: C.CDLL, meta_json: str, logits: np.ndarray, crf: bool, preset: str | None = None,
                 threads: int = 1, warm_start: bool = False, iterations: int | None = None,
                 scale: float | None = None, video: bool = False) -> None:
        self.lib, self.logits, self.inputs = lib, np.ascontiguousarray(logits, np.float32), []
        lib.deeplab_last_error.restype = C.c_char_p
        lib.deeplab_create_from_provider.argtypes = [C.c_char_p, PROVIDER, C.c_void_p, C.POINTER(Options),
                                                     C.POINTER(C.c_void_p)]
        lib.deeplab_apply.argtypes = [C.c_void_p, C.c_void_p, C.c_int32, C.c_int32, C.c_size_t, C.c_void_p,
                                      C.c_size_t, C.c_void_p, C.c_size_t]
        lib.deeplab_options_init.argtypes = [C.POINTER(Options)]
        lib.deeplab_destroy.argtypes = [C.c_void_p]

        def provide(_user, data, h, w, out):
            self.inputs.append(np.ctypeslib.as_array(data, shape=(1, 3, h, w)).copy())
            c, lh, lw = self.logits.shape
            out[0] = Logits(self.logits.ctypes.data_as(C.POINTER(C.c_float)), c, lh, lw)
            return 0

        self._provide = PROVIDER(provide)  # keep the callback alive
        o = Options()
        lib.deeplab_options_init(C.byref(o))
        o.crf, o.threads, o.warm_start = int(crf), threads, int(warm_start)
        o.crf_preset = preset.encode() if preset else None
        o.crf_iterations = -1 if iterations is None else iterations
        o.crf_scale, o.video = scale or 0.0, int(video)
        self.handle = C.c_void_p()
        self._check(lib.deeplab_create_from_provider(meta_json.encode(), self._provide, None, C.byref(o),
                                                     C.byref(self.handle)))

    def _check(self, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"C API status {status}: {self.lib.deeplab_last_error().decode()}")

    def apply(self, image: np.ndarray, probs: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        h, w = image.shape[:2]
        labels = np.zeros((h, w), np.uint8)
        p = np.zeros((self.logits.shape[0], h, w), np.float32) if probs else None
        self._check(self.lib.deeplab_apply(self.handle, image.ctypes.data, h, w, image.strides[0], labels.ctypes.data,
                                           labels.size, p.ctypes.data if probs else None, p.size if probs else 0))
        return labels, p

    def close(self) -> None:
        self.lib.deeplab_destroy(self.handle)


def make_case(seed: int = 0, h: int = 45, w: int = 61, n_classes: int = 5):
    """A smooth image with edges and noise, smooth DCNN-like logits covering its padded size, and metadata."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], axis=2).astype(np.float32)
    image[(xx - w // 2) ** 2 + (yy - h // 2) ** 2 < (min(h, w) // 3) ** 2] = (40, 200, 90)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    lh, lw = -(-h // 8) + 1, -(-w // 8) + 1  # DeepLab v2's ceil-mode pooling: one more than padded/8
    logits = rng.normal(0, 1.5, (n_classes, lh, lw)).astype(np.float32)
    meta = {"class_names": [f"c{i}" for i in range(n_classes)], "channel_order": "RGB",
            "mean": [101.5, 117.25, 122.675], "scale": [0.5, 1.0, 0.017], "output_stride": 8,
            "align_corners": False, "schema_version": 1}
    return image, logits, meta


def python_chain(image, logits, meta_dict, crf_preset):
    """The Python runtime's results: (input, probs without CRF, labels without CRF, probs with CRF or None)."""
    metadata, preprocess = _import("runtime.metadata"), _import("runtime.preprocess")
    meta = metadata.ModelMeta.from_dict(meta_dict)
    x, pad = preprocess.preprocess(image, meta)
    upsample = _import("runtime.upsample")
    size, crop = (pad.padded_height, pad.padded_width), (pad.height, pad.width)
    probs = upsample.bilinear_softmax(logits, size, meta.align_corners, crop=crop)
    labels = upsample.bilinear_labels(logits, size, meta.align_corners, crop=crop)
    try:
        crf = _import("crf")
        crf.set_num_threads(1)
        refined = crf.refine(image, probs, preset=crf_preset)
    except (ImportError, AttributeError) as e:
        print(f"  skipped the CRF comparison: {e}")
        refined = None
    return x, probs, labels, refined


def compare(lib_path: str) -> int:
    try:
        _import("runtime.preprocess")
        _import("runtime.upsample")
    except ImportError as e:
        print(f"SKIP: the Python runtime is not importable ({e})")
        return SKIP
    lib = C.CDLL(lib_path)
    failures = 0

    def check(name: str, ok: bool, detail: str) -> None:
        nonlocal failures
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        failures += not ok

    for seed, (h, w), align in [(0, (45, 61), False), (1, (64, 40), True), (2, (1, 9), False)]:
        image, logits, meta = make_case(seed, h, w)
        meta["align_corners"] = align
        print(f"case {h}x{w} align_corners={align}")
        x, probs, labels, refined = python_chain(image, logits, meta, "voc")
        rt = CRuntime(lib, json.dumps(meta), logits, crf=False)
        c_labels_direct, _ = rt.apply(image, probs=False)
        c_labels, c_probs = rt.apply(image)
        rt.close()
        check("preprocessed input", np.array_equal(rt.inputs[0], x), f"max |diff| {np.abs(rt.inputs[0] - x).max()}")
        check("upsample+softmax", np.allclose(c_probs, probs, rtol=0, atol=1e-6),
              f"max |diff| {np.abs(c_probs - probs).max():.2e}")
        check("labels from logits", np.array_equal(c_labels_direct, labels),
              f"{(c_labels_direct == labels).mean() * 100:.3f}% equal")
        if refined is not None:
            rt = CRuntime(lib, json.dumps(meta), logits, crf=True, preset="voc")
            c_labels, c_refined = rt.apply(image)
            rt.close()
            agree = (c_labels == refined.argmax(0)).mean()
            check("dense CRF (voc)", np.allclose(c_refined, refined, rtol=0, atol=1e-4) and agree == 1.0,
                  f"max |diff| {np.abs(c_refined - refined).max():.2e}, labels {agree * 100:.3f}% equal")
    failures += compare_segmenter(lib)
    print("FAILED" if failures else "all parity checks passed")
    return 1 if failures else 0


# Every CRF setting the CLIs offer (deeplab-infer: --crf-preset, --crf-iters, --crf-scale, --warm-start; a video
# source or images), as Segmenter keyword arguments; the C runtime gets the same through deeplab_options.
SETTINGS = [
    {},
    {"video": True},
    {"crf_scale": 0.5},
    {"crf_scale": 0.5, "video": True},
    {"crf_iterations": 2, "video": True},
    {"warm_start": True},
    {"warm_start": True, "crf_scale": 0.5, "video": True},
    {"crf": "pydensecrf", "crf_iterations": 3},
]


def compare_segmenter(lib: C.CDLL) -> int:
    """A three-frame stream through runtime.Segmenter and through the C runtime with every CRF setting of SETTINGS,
    on a stand-in backend that returns the same fixed logits as the C provider; the model carries its own CRF
    settings (a preset, overrides, a scale and half_rows in extra.crf)."""
    try:
        seg_mod = _import("runtime.segmenter")
        _import("crf").refine  # noqa: B018 - the CRF must be importable
    except (ImportError, AttributeError) as e:
        print(f"  skipped the Segmenter comparison: {e}")
        return 0
    image, logits, meta_dict = make_case(3, 50, 70)
    failures = 0
    for extra in ({"preset": "voc", "iterations": 4, "bilateral_srgb": 5.0},
                  {"preset": "voc", "scale": 0.75, "half_rows": False}):
        meta_dict["extra"] = {"crf": extra}
        meta = _import("runtime.metadata").ModelMeta.from_dict(meta_dict)
        frames = [np.roll(image, 3 * k, axis=1) for k in range(3)]
        stream_logits = [np.roll(logits, k, axis=2) for k in range(3)]

        class FixedLogits(_import("runtime.backends.base").Backend):  # the network's output is the test's input
            name = "fixed-logits"

            def __init__(self, meta, outputs) -> None:
                self.meta, self.calls = meta, iter(outputs)

            def infer(self, batch):
                return next(self.calls)[None]

            def close(self) -> None:
                pass

        for settings in SETTINGS:
            kwargs = {"crf": "default", **settings}
            with seg_mod.Segmenter(FixedLogits(meta, stream_logits), **kwargs) as seg:
                py = list(seg.stream(frames))
            rt = CRuntime(lib, meta.to_json(), stream_logits[0], crf=True, preset=kwargs["crf"],
                          warm_start=kwargs.get("warm_start", False), iterations=kwargs.get("crf_iterations"),
                          scale=kwargs.get("crf_scale"), video=kwargs.get("video", False))
            worst, agree = 0.0, 1.0
            for k, frame in enumerate(frames):
                rt.logits = np.ascontiguousarray(stream_logits[k])
                c_labels, c_probs = rt.apply(frame)
                worst = max(worst, float(np.abs(c_probs - py[k][1]).max()))
                agree = min(agree, float((c_labels == py[k][0]).mean()))
            rt.close()
            ok = worst <= 1e-4 and agree == 1.0
            print(f"  {'ok  ' if ok else 'FAIL'} Segmenter stream, model crf {extra}, {settings or 'defaults'}: "
                  f"max |diff| {worst:.2e}, labels {agree * 100:.3f}% equal")
            failures += not ok
    return failures


def write_golden(out: Path) -> int:
    """Small arrays from the Python package for test_golden (C++ only, no Python at test time)."""
    image, logits, meta = make_case(7, 37, 53, 4)
    meta["extra"] = {"crf": "voc"}
    _, probs, labels, refined = python_chain(image, logits, meta, "voc")
    if refined is None:
        print("the crf package is needed to write golden arrays", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "image.npy", image)
    np.save(out / "logits.npy", logits)
    np.save(out / "probs.npy", probs)
    np.save(out / "labels.npy", labels)
    np.save(out / "probs_crf.npy", refined)
    np.save(out / "labels_crf.npy", refined.argmax(0).astype(np.uint8))
    (out / "meta.json").write_text(json.dumps(meta, sort_keys=True) + "\n")
    print(f"golden arrays written to {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-golden":
        sys.exit(write_golden(Path(sys.argv[2])))
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(compare(sys.argv[1]))
