"""ONNX export: dynamic-axes parity with PyTorch (single-scale and MSC), metadata, CLI errors, atomic writes."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import demo.assets
from export import onnx_export
from export.checkpoint import CheckpointError, load_model, save_checkpoint
from export.model import MSC, output_size
from export.onnx_export import ExportError, Parity, export_onnx, sha256_file
from runtime.metadata import CAFFE_BGR_MEAN, ONNX_METADATA_KEY, ModelMeta

REPO = Path(__file__).resolve().parents[2]


def _meta(path: Path) -> ModelMeta:
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return ModelMeta.from_json(props[ONNX_METADATA_KEY])


def _assert_parity(onnx_path: Path, net, shapes):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shape in shapes:
        x = (rng.uniform(0, 255, shape) - 117).astype(np.float32)
        got = session.run(["logits"], {"image": x})[0]
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (shape[0], net_classes(net), output_size(shape[2]), output_size(shape[3]))
        rel = np.abs(got - want).max() / np.abs(want).max()
        assert rel < 1e-4
        assert (got.argmax(1) == want.argmax(1)).mean() > 0.999


def net_classes(net) -> int:
    return (net.base if isinstance(net, MSC) else net).n_classes


def test_single_scale_parity_through_dynamic_axes(small_onnx, small_checkpoint):
    model, _ = load_model(small_checkpoint)
    _assert_parity(small_onnx, model, [(1, 3, 97, 131), (2, 3, 160, 121), (1, 3, 65, 65)])
    graph = onnx.load(str(small_onnx)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert graph.input[0].name == "image" and graph.output[0].name == "logits"
    assert dims == ["batch", 3, "height", "width"]
    assert onnx.load(str(small_onnx)).opset_import[0].version == 17


def test_msc_parity_through_dynamic_axes(small_checkpoint, tmp_path):
    out = tmp_path / "msc.onnx"
    result = export_onnx(small_checkpoint, out, msc=True, height=81, width=57)
    assert result.parity is not None and result.parity.ok()
    model, _ = load_model(small_checkpoint)
    _assert_parity(out, MSC(model).eval(), [(1, 3, 121, 99), (2, 3, 64, 88)])
    graph = onnx.load(str(out)).graph
    assert [n.op_type for n in graph.node].count("Resize") == 4
    weights = {t.name for t in graph.initializer}
    assert all(n.input[1] in weights for n in graph.node if n.op_type == "Conv"), "conv weights are initializers"
    assert _meta(out).msc


def test_metadata_round_trip(small_onnx, small_checkpoint):
    meta = _meta(small_onnx)
    assert meta.class_names == ("background", "road", "car", "person")
    assert meta.channel_order == "BGR" and meta.mean == CAFFE_BGR_MEAN and meta.scale == (1.0, 1.0, 1.0)
    assert meta.output_stride == 8 and meta.align_corners is False and meta.msc is False
    assert (meta.input_name, meta.output_name, meta.precision) == ("image", "logits", "fp32")
    assert meta.source_sha256 == sha256_file(small_checkpoint)
    assert meta.extra["architecture"] == {"backbone": "resnet", "blocks": [1, 1, 1, 1], "base_width": 8,
                                          "aspp_rates": [6, 12, 18, 24], "aspp_rates_from": "checkpoint meta"}
    assert meta.extra["checkpoint_meta"] == {"dataset": "unit-test"}
    assert ModelMeta.from_json(meta.to_json()) == meta


@pytest.mark.slow
def test_class_names_file_overrides_and_default_names(small_model, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save({"base." + k: v for k, v in small_model().state_dict().items()}, path)
    export_onnx(path, tmp_path / "default.onnx", height=33, width=33, check_parity=False)
    assert _meta(tmp_path / "default.onnx").class_names == ("class_0", "class_1", "class_2", "class_3")
    names = tmp_path / "names.txt"
    names.write_text("sky\nroad\n\ncar\nperson\n")
    subprocess_export(path, "-o", tmp_path / "named.onnx", "--classes", names, "--height", "33", "--width", "33")
    assert _meta(tmp_path / "named.onnx").class_names == ("sky", "road", "car", "person")


def test_checkpoint_preprocessing_meta_is_carried(small_model, tmp_path):
    path = tmp_path / "rgb.pt"
    save_checkpoint(path, small_model(), meta={"channel_order": "RGB", "mean": [0.5, 0.5, 0.5],
                                               "scale": [2.0, 2.0, 2.0]})
    meta = export_onnx(path, tmp_path / "rgb.onnx", height=33, width=33, check_parity=False).meta
    assert (meta.channel_order, meta.mean, meta.scale) == ("RGB", (0.5, 0.5, 0.5), (2.0, 2.0, 2.0))


def test_in_memory_export(small_checkpoint):
    data, meta, parity = onnx_export.onnx_bytes(small_checkpoint, height=33, width=41)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map[ONNX_METADATA_KEY] == meta.to_json()
    assert parity.ok() and parity.shape == (1, 3, 33, 41)


def test_demo_resolves_to_bundled_checkpoint(small_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(demo.assets, "checkpoint_path", lambda: small_checkpoint)
    result = export_onnx("demo", tmp_path / "demo.onnx", height=33, width=33)
    assert result.meta.source_sha256 == sha256_file(small_checkpoint)
    monkeypatch.setattr(demo.assets, "checkpoint_path", lambda: tmp_path / "absent.pt")
    with pytest.raises(ExportError, match="demo checkpoint is missing"):
        export_onnx("demo", tmp_path / "x.onnx")


def test_aspp_rates_option_named_and_explicit(small_model, tmp_path, capsys):
    """The rates are not in the weights: --aspp-rates sets them (named or explicit) and the metadata says so."""
    from export.cli import main

    path = tmp_path / "kazuto.pt"
    torch.save({f"base.{k}": v for k, v in small_model().state_dict().items()}, path)  # no meta, as kazuto's files
    for option, rates, source in ((None, [6, 12, 18, 24], "default (L)"), ("S-kazuto", [3, 6, 9, 12], "export option"),
                                  ("s", [2, 4, 8, 12], "export option"), ("1,3,5,7", [1, 3, 5, 7], "export option")):
        out = tmp_path / f"{option}.onnx"
        argv = ["onnx", str(path), "-o", str(out), "--height", "33", "--width", "33"]
        assert main(argv + (["--aspp-rates", option] if option else [])) == 0
        arch = _meta(out).extra["architecture"]
        assert (arch["aspp_rates"], arch["aspp_rates_from"]) == (rates, source)
        assert f"ASPP rates {rates} ({source})" in capsys.readouterr().out
    for bad in ("M", "3,x", "0,6,9,12", ""):
        with pytest.raises(SystemExit) as exit_info:
            main(["onnx", str(path), "--aspp-rates", bad])
        assert exit_info.value.code == 2 and "--aspp-rates" in capsys.readouterr().err
    proc = subprocess_export(path, "-o", tmp_path / "three.onnx", "--aspp-rates", "6,12,18")
    assert proc.returncode == 1 and "4 ASPP branches but 3 rates" in proc.stderr


def test_parity_tolerance_follows_float32_pytorch():
    """The issue's figures: ONNX 3.3e-4 from float64 while float32 PyTorch is 5.4e-4 away passes; the same ONNX error
    on a model whose float32 PyTorch is exact to 1e-6 fails, as does an argmax drop PyTorch does not share."""
    shape = (1, 3, 513, 513)
    assert Parity(shape, 0.01, 3.3e-4, 0.9995, 5.4e-4, 0.9993).ok()
    assert not Parity(shape, 0.01, 3.3e-4, 0.9995, 1e-6, 1.0).ok()
    assert Parity(shape, 0.001, 9e-5, 0.9995, 1e-6, 1.0).ok()
    assert not Parity(shape, 0.001, 9e-5, 0.99, 1e-6, 0.9995).ok()
    assert Parity(shape, 0.001, 9e-5, 0.99, 1e-6, 0.9905).ok()
    text = str(Parity(shape, 0.01, 3.3e-4, 0.9995, 5.4e-4, 0.9993))
    assert "onnxruntime 0.00033" in text and "float32 PyTorch 0.00054" in text and "tolerance 0.00108" in text


def realistic_resnet101(n_classes: int = 21, seed: int = 0) -> torch.nn.Module:
    """kazuto's DeepLabV2_ResNet101_MSC layout with trained-looking BatchNorm: running statistics recorded from the
    network's own activations on an image-like input, as training records them (variances 0.05 .. 2e3, like trained
    nets' 0.04 .. 4.7e3), scales 0.2 .. 1.5, shifts N(0, 0.5). Float32 PyTorch is about 1e-4 from float64 on it."""
    from export.model import DeepLabV2

    torch.manual_seed(seed)
    model = DeepLabV2(n_classes)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            m.momentum = None  # cumulative average: the statistics of the one calibration batch
            m.reset_running_stats()
            m.weight.uniform_(0.2, 1.5)
            m.bias.normal_(0.0, 0.5)
        model.train()(torch.rand(1, 3, 129, 129) * 255 - 120)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


@pytest.mark.slow
def test_realistic_resnet101_msc_exports_at_513(tmp_path):
    """Float32 rounding, amplified by wide BatchNorm statistics and MSC's input resizes, is not an export error: the
    check compares onnxruntime with float64 PyTorch and prints both figures."""
    path = tmp_path / "deeplabv2_resnet101_msc.pth"
    torch.save({f"base.{k}": v for k, v in realistic_resnet101().state_dict().items()}, path)
    lines: list[str] = []
    result = export_onnx(path, tmp_path / "msc.onnx", msc=True, height=513, width=513, log=lines.append)
    parity = result.parity
    assert parity is not None and parity.ok() and (tmp_path / "msc.onnx").is_file()
    # The failing case: float32 PyTorch itself is beyond the 1e-4 that an ONNX-vs-float32-PyTorch check demanded.
    assert parity.torch_rel_error > onnx_export.MAX_REL_ERROR and parity.shape == (1, 3, 513, 513)
    assert str(parity) in lines and "float32 PyTorch" in str(parity)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, ExportError])
def test_no_output_after_interrupt_or_failed_check(failure, small_checkpoint, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        if failure is KeyboardInterrupt:
            raise KeyboardInterrupt
        return Parity((1, 3, 33, 33), 1.0, 0.5, 0.2, 1e-6, 1.0)

    monkeypatch.setattr(onnx_export, "check_onnx_parity", broken)
    with pytest.raises(failure):
        export_onnx(small_checkpoint, tmp_path / "model.onnx", height=33, width=33)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_fail_before_the_export(small_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="is a directory"):
        export_onnx(small_checkpoint, tmp_path)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(small_checkpoint, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ExportError, match="is the checkpoint itself"):
        export_onnx(small_checkpoint, small_checkpoint)
    with pytest.raises(ExportError, match=f"^cannot write {small_checkpoint}/x.onnx: {small_checkpoint} is a file, not "
                                          "a directory$"):
        export_onnx(small_checkpoint, small_checkpoint / "x.onnx")


def test_read_only_output_fails_before_the_export(small_checkpoint, read_only_dir):
    with pytest.raises(ExportError, match=f"^cannot write {read_only_dir}/m.onnx: {read_only_dir} is not writable"):
        export_onnx(small_checkpoint, read_only_dir / "m.onnx")


def test_other_opsets(small_checkpoint, tmp_path):
    result = export_onnx(small_checkpoint, tmp_path / "o13.onnx", msc=True, opset=13, height=49, width=33)
    assert result.parity.ok() and onnx.load(str(tmp_path / "o13.onnx")).opset_import[0].version == 13
    for opset in (9, 99):
        with pytest.raises(ExportError, match=f"opset {opset}"):
            export_onnx(small_checkpoint, tmp_path / "o.onnx", opset=opset)
    with pytest.raises(ExportError, match="at least 8"):
        export_onnx(small_checkpoint, tmp_path / "o.onnx", msc=True, height=1, width=33)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o13.onnx"]


def test_existing_output_survives_a_failed_export(small_checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")
    (tmp_path / "bad.pt").write_bytes(b"junk" * 100)
    with pytest.raises(CheckpointError):
        export_onnx(tmp_path / "bad.pt", out)
    assert out.read_bytes() == b"previous model" and len(list(tmp_path.iterdir())) == 2


# ---- the CLI, as users run it ----

def _cli(*args) -> list[str]:
    return [sys.executable, "-u", "-m", "export", "onnx", *map(str, args)]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def subprocess_export(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)


class _CreatesFile:
    """Unpickling this calls open(marker, "w"): the file exists if the payload ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _bad_checkpoints(tmp_path: Path, sd: dict) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected message fragment)."""
    marker = tmp_path / "payload-ran"
    good = tmp_path / "good.pt"
    torch.save({"model": sd}, good)
    files = {
        "truncated": (good.read_bytes()[: good.stat().st_size // 2], "truncated checkpoint archive"),
        "not zip": (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a PyTorch checkpoint"),
        "pickle payload": (pickle.dumps({"model": sd, "x": _CreatesFile(marker)}), "loader refuses"),
        "empty": (b"", "empty"),
    }
    out = {name: (tmp_path / f"{i}.pt", msg) for i, (name, (data, msg)) in enumerate(files.items())}
    for name, (path, _) in out.items():
        path.write_bytes(files[name][0])
    torch.save({"model": sd, "x": _CreatesFile(marker)}, tmp_path / "zip-payload.pt")
    out["torch.save payload"] = (tmp_path / "zip-payload.pt", "refusing to load")
    wrong = {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 64)}
    torch.save(wrong, tmp_path / "wrong.pt")
    out["wrong keys"] = (tmp_path / "wrong.pt", "not a DeepLab v2 checkpoint")
    torch.save({k: v for k, v in sd.items() if "layer4.block1.conv3x3" not in k}, tmp_path / "partial.pt")
    out["partial keys"] = (tmp_path / "partial.pt", "missing: layer4.block1.conv3x3.conv.weight")
    out["missing file"] = (tmp_path / "absent.pt", "not found")
    return out


@pytest.mark.slow
def test_cli_bad_checkpoints(small_model, tmp_path):
    marker = tmp_path / "payload-ran"
    for name, (path, fragment) in _bad_checkpoints(tmp_path, small_model().state_dict()).items():
        out = tmp_path / f"{path.stem}.onnx"
        proc = subprocess_export(path, "-o", out)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, (name, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], (name, proc.stderr)
        assert not out.exists(), name
        assert not marker.exists(), f"{name}: the pickle payload ran"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.slow
def test_cli_success_and_verbose(small_checkpoint, tmp_path):
    proc = subprocess_export(small_checkpoint, "-o", tmp_path / "ok.onnx", "--height", "41", "--width", "57")
    assert proc.returncode == 0, proc.stderr
    assert "argmax agreement onnxruntime 100.000 %" in proc.stdout and (tmp_path / "ok.onnx").is_file()
    proc = subprocess_export(tmp_path / "absent.pt", "--verbose")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = subprocess_export(small_checkpoint, "-o", tmp_path / "x.onnx", "--classes", tmp_path / "absent.txt")
    assert proc.returncode == 1 and "cannot read class names" in proc.stderr and not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_cli_ctrl_c_leaves_no_file(small_model, tmp_path):
    path = tmp_path / "wide.pt"
    save_checkpoint(path, small_model(blocks=(2, 2, 4, 2), width=32))
    out = tmp_path / "wide.onnx"
    proc = subprocess.Popen(_cli(path, "-o", out, "--msc", "--height", "513", "--width", "513"), cwd=REPO,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("DeepLab v2 ")  # checkpoint loaded; tracing and parity take seconds more
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and stderr.strip() == "error: interrupted", stderr[-1500:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.pt"]
