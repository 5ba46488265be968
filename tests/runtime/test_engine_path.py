"""The TensorRT engine path end to end, for each TensorRT API release, through the stand-ins of tests/support:
``python -m export fp16|int8`` → ``python -m export engine`` (fixed and dynamic profiles) → ``Segmenter(plan)`` with
labels equal to ONNX Runtime's across the profile; ``runtime/infer.py --model x.plan``; ``python -m export triton`` on
a plan; an engine built by one release opened under another; Ctrl-C during a build.

What this proves and what it cannot (it is not TensorRT): docs/standin.md."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import trt_standin

from export.engine import BuildOptions, build_engine
from export.trt_compat import CompatError
from runtime import Segmenter
from runtime.backends import resolve_model
from runtime.named import resolve

REPO = Path(__file__).resolve().parents[2]
RELEASES = ["8.5.3", "8.6.1", "10.3.0", "10.16", "11.1"]
DYNAMIC = {"min_shape": (1, 3, 64, 64), "opt_shape": (1, 3, 120, 160), "max_shape": (1, 3, 160, 208)}
FIXED = {"min_shape": (1, 3, 120, 160), "opt_shape": (1, 3, 120, 160), "max_shape": (1, 3, 120, 160)}
IMAGE_SIZES = {"dynamic": [(160, 208), (50, 60), (150, 200), (97, 131)], "fixed": [(120, 160), (100, 150), (33, 47)]}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not trt_standin.available_versions(),
                                reason=f"TensorRT binding sources not found at {trt_standin.api_root()}")]


def _run(args: list[str], release: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=trt_standin.subprocess_env(release, **env), timeout=300)


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(map(str, s))


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """The demo model as FP32, FP16 and INT8 Q/DQ ONNX, the latter two made by the export CLI."""

    out = tmp_path_factory.mktemp("models")
    fp16, int8 = out / "demo.fp16.onnx", out / "demo.int8.onnx"
    for args in (["fp16", "demo", "-o", str(fp16)],
                 ["int8", "demo", "--calib", str(REPO / "calib_data"), "--max-images", "4", "--method", "minmax",
                  "--no-progress", "-o", str(int8)]):
        r = subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, cwd=out)
        assert r.returncode == 0, r.stderr
    return {"fp32": resolve_model("demo"), "fp16": fp16, "int8": int8}


def _images(sizes: list[tuple[int, int]]) -> list[np.ndarray]:


    cap = cv2.VideoCapture(str(resolve("demo", "video")))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return [cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA) for h, w in sizes]


@pytest.mark.parametrize("profile", ["dynamic", "fixed"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("release", RELEASES)
def test_engine_labels_equal_onnxruntime(trt_standin_for, tmp_path, models, release, precision, profile):
    trt_standin_for(release)

    plan = tmp_path / "m.plan"
    info = build_engine(models[precision], plan, BuildOptions(**(DYNAMIC if profile == "dynamic" else FIXED)))
    assert info.precision == precision and info.tensorrt_version.startswith(release)
    engine = Segmenter(plan, crf=None, upsample_device="cpu")
    reference = Segmenter(models[precision], backend="onnxruntime", crf=None, upsample_device="cpu", threads=1)
    assert engine.backend.name == "tensorrt"
    for image in _images(IMAGE_SIZES[profile]):
        # the same network input for both (an engine pads small images up to its profile's minimum)
        x, padding = engine.preprocess(image)
        labels = engine.labels(engine.infer_batch(x)[0], padding)
        want = reference.labels(reference.backend.infer(x)[0], padding)
        assert labels.shape == image.shape[:2]
        np.testing.assert_array_equal(labels, want)
    engine.close()


@pytest.mark.parametrize("release", ["8.5.3", "10.16", "11.1"])
def test_cli_build_infer_and_triton(tmp_path, models, release):

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, image in enumerate(_images([(120, 160), (96, 128), (120, 152)])):
        cv2.imwrite(str(frames / f"{i}.png"), image)
    plan = tmp_path / "demo.plan"
    r = _run(["-m", "export", "engine", str(models["fp16"]), "-o", str(plan), "--min-shape", "1x3x64x64",
              "--opt-shape", "1x3x120x160", "--max-shape", "1x3x120x160"], release, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"TensorRT {release}" in r.stdout and plan.is_file() and Path(f"{plan}.json").is_file()
    masks = {}
    for name, model in (("tensorrt", plan), ("onnxruntime", models["fp16"])):
        out = tmp_path / f"masks-{name}"
        r = _run([str(REPO / "runtime" / "infer.py"), "--model", str(model), "--source", str(frames), "--masks",
                  str(out), "--crf-iters", "2"], release, tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"backend: {name}" in r.stdout + r.stderr
        masks[name] = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.iterdir())}
    assert masks["tensorrt"].keys() == masks["onnxruntime"].keys() and len(masks["tensorrt"]) == 3
    for k in masks["tensorrt"]:
        np.testing.assert_array_equal(masks["tensorrt"][k], masks["onnxruntime"][k])
    repo = tmp_path / "triton"
    r = _run(["-m", "export", "triton", str(plan), "-o", str(repo)], release, tmp_path)
    assert r.returncode == 0, r.stderr
    copied = list(repo.rglob("model.plan"))
    assert len(copied) == 1 and copied[0].read_bytes() == plan.read_bytes()
    assert 'platform: "tensorrt_plan"' in (copied[0].parent.parent / "config.pbtxt").read_text()


def test_engine_from_another_release_prints_the_whole_rebuild_message(tmp_path, models):
    plan = tmp_path / "old.plan"
    r = _run(["-m", "export", "engine", str(models["fp32"]), "-o", str(plan), "--min-shape", "1x3x64x64",
              "--opt-shape", "1x3x120x160", "--max-shape", "1x3x120x160"], "8.5.3", tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run([str(REPO / "runtime" / "infer.py"), "--model", str(plan), "--source", "demo", "--no-crf"], "11.1",
             tmp_path)
    assert r.returncode == 1
    assert "built by TensorRT 8.5.3" in r.stderr and "this is TensorRT 11.1" in r.stderr
    rebuild = f"python -m export engine {models['fp32']} -o {plan} --precision fp32 --min-shape 1x3x64x64"
    assert "Rebuild it here with:" in r.stderr and rebuild in r.stderr
    # Without the sidecar check, TensorRT itself refuses the plan (the stand-in logs and returns None, as TensorRT does)

    sidecar = Path(f"{plan}.json")
    d = json.loads(sidecar.read_text())
    d["engine"]["tensorrt_version"] = "11.1.0.0"
    sidecar.write_text(json.dumps(d))
    r = _run([str(REPO / "runtime" / "infer.py"), "--model", str(plan), "--source", "demo", "--no-crf"], "11.1",
             tmp_path)
    assert r.returncode == 1 and "could not deserialize" in r.stderr and "Version tag does not match" in r.stderr


@pytest.mark.parametrize("release, build_seconds", [("8.5.3", 4), ("10.16", 60)])
def test_ctrl_c_during_a_build(tmp_path, models, release, build_seconds):
    """TensorRT's bindings swallow exceptions raised in progress-monitor callbacks (10+: the build is cancelled and
    returns None) and 8.x builds run without Python (the interrupt arrives when the build returns): either way Ctrl-C
    must end with exit 130, "interrupted", and no plan or sidecar written; with a monitor, without waiting."""
    started = tmp_path / "started"
    plan = tmp_path / "m.plan"
    env = trt_standin.subprocess_env(release, TRT_STANDIN_BUILD_SECONDS=str(build_seconds),
                                     TRT_STANDIN_BUILD_STARTED=str(started))
    proc = subprocess.Popen([sys.executable, "-m", "export", "engine", str(models["fp32"]), "-o", str(plan),
                             "--min-shape", "1x3x64x64", "--opt-shape", "1x3x64x64", "--max-shape", "1x3x64x64"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), proc.communicate()[1]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    if release.startswith("10"):
        assert time.monotonic() - t0 < build_seconds / 2
    assert not plan.exists() and not Path(f"{plan}.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started"]


@pytest.mark.parametrize("release", ["8.6.1", "10.16", "11.1"])
def test_implicit_calibration(trt_standin_for, tmp_path, models, release):
    """--calib drives TensorRT's calibrator (get_batch from device memory, cache written) where the release has one;
    11 has none and says what to do instead."""
    trt_standin_for(release)

    plan = tmp_path / "m.plan"
    options = BuildOptions(precision="int8", calib=REPO / "calib_data", max_images=3, **FIXED)
    if release == "11.1":
        with pytest.raises(CompatError, match="no implicit INT8 calibrators"):
            build_engine(models["fp32"], plan, options)
        assert not plan.exists()
        return
    info = build_engine(models["fp32"], plan, options)
    assert info.precision == "int8" and Path(f"{plan}.calib.cache").is_file()
    image = _images([(120, 160)])[0]
    labels, _ = Segmenter(plan, crf=None, upsample_device="cpu").segment(image, return_probs=False)
    assert labels.shape == (120, 160)
