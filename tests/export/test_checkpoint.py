"""Checkpoint import: prefixes and nesting of the port's checkpoints, inference of the architecture, strict loading."""
from __future__ import annotations

import zipfile

import pytest
import torch

from export.checkpoint import (CheckpointError, build_from_state_dict, infer_architecture, load_checkpoint,
                               load_model, save_checkpoint)
from export.model import ASPP_S, MSC


def _outputs_equal(a, b, hw=(41, 53)) -> bool:
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def _prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


VARIANTS = {
    "plain": lambda sd: sd,
    "base (port's MSC wrapper)": lambda sd: _prefixed(sd, "base."),
    "module (DataParallel)": lambda sd: _prefixed(sd, "module."),
    "module.base": lambda sd: _prefixed(sd, "module.base."),
    "nested state_dict": lambda sd: {"state_dict": _prefixed(sd, "base."), "epoch": 3},
    "nested model": lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    "nested twice": lambda sd: {"state_dict": {"model": _prefixed(sd, "module.")}},
    "legacy names (proj, aspp.stages, scale.)": lambda sd: {
        "scale." + k.replace(".shortcut.", ".proj.").replace("aspp.", "aspp.stages."): v for k, v in sd.items()},
    "no num_batches_tracked (PyTorch < 0.4.1)": lambda sd: {k: v for k, v in sd.items()
                                                            if not k.endswith("num_batches_tracked")},
    "fp16": lambda sd: {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prefix_and_nesting_variants(variant, small_model, tmp_path):
    model = small_model(blocks=(2, 1, 3, 1))
    path = tmp_path / "ckpt.pth"
    torch.save(VARIANTS[variant](model.state_dict()), path)
    loaded, ckpt = load_model(path)
    assert loaded.blocks == (2, 1, 3, 1) and loaded.base_width == 8 and loaded.n_classes == 4
    assert ckpt.class_names is None and ckpt.meta == {}
    if variant == "fp16":
        x = torch.randn(1, 3, 33, 33)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model.half().float()(x), atol=1e-5)
    else:
        assert _outputs_equal(loaded, model)


def test_legacy_serialization_loads(small_model, tmp_path):
    """The port's released checkpoints predate PyTorch 1.6's zip format."""
    model = small_model()
    torch.save(MSC(model).state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert (tmp_path / "old.pth").read_bytes()[:1] == b"\x80"
    assert _outputs_equal(load_model(tmp_path / "old.pth")[0], model)


def test_msc_wrapper_state_dict_loads(small_model, tmp_path):
    model = small_model()
    torch.save(MSC(model).state_dict(), tmp_path / "msc.pth")
    assert _outputs_equal(load_model(tmp_path / "msc.pth")[0], model)


def test_round_trip_with_class_names_and_meta(small_model, tmp_path):
    model = small_model(n_classes=3, aspp_rates=ASPP_S)
    path = tmp_path / "ours.pt"
    save_checkpoint(path, model, ["a", "b", "c"], {"epochs": 7, "mean": [1.0, 2.0, 3.0]})
    loaded, ckpt = load_model(path)
    assert ckpt.class_names == ["a", "b", "c"]
    assert ckpt.meta == {"aspp_rates": list(ASPP_S), "epochs": 7, "mean": [1.0, 2.0, 3.0]}
    assert loaded.aspp_rates == ASPP_S
    assert _outputs_equal(loaded, model, hw=(64, 48))
    assert not list(tmp_path.glob(".*")), "no temporary files left"


def test_infer_architecture(small_model):
    arch = infer_architecture(small_model(n_classes=7, blocks=(1, 2, 3, 2), width=16).state_dict())
    assert (arch.n_classes, arch.blocks, arch.base_width, arch.n_aspp) == (7, (1, 2, 3, 2), 16, 4)


def _error(sd, match, **kwargs):
    with pytest.raises(CheckpointError, match=match) as info:
        build_from_state_dict(sd, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_unexpected_and_mismatched_keys_are_all_named(small_model):
    sd = small_model().state_dict()
    del sd["layer2.block1.reduce.conv.weight"]
    sd["layer2.block1.extra.weight"] = torch.zeros(1)
    sd["aspp.c1.bias"] = torch.zeros(5)
    msg = _error(sd, "does not match")
    assert "1 missing: layer2.block1.reduce.conv.weight" in msg
    assert "1 unexpected: layer2.block1.extra.weight" in msg
    assert "aspp.c1.bias [5] vs [4]" in msg


def test_partial_key_set_is_an_error(small_model):
    sd = {k: v for k, v in small_model().state_dict().items() if not k.startswith("layer5.block1.shortcut")}
    msg = _error(sd, "missing")
    assert "layer5.block1.shortcut.conv.weight" in msg


def test_long_key_lists_are_cut(small_model):
    sd = {k: v for k, v in small_model().state_dict().items() if not k.startswith("layer4.")}
    sd.update({f"layer4.block1.reduce.conv.weight{i}": torch.zeros(1) for i in range(2)})
    _error(sd, r"missing: .*\(\+\d+ more\)")


@pytest.mark.parametrize("mutate, match", [
    (lambda sd: {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)},
     "not a DeepLab v2 checkpoint"),
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith("aspp")}, "no ASPP"),
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith("layer3")}, "no blocks in layer3"),
    (lambda sd: {k.replace("layer2.block1", "layer2.block2"): v for k, v in sd.items()}, "lacks block"),
    (lambda sd: {k.replace("aspp.c1", "aspp.c7"): v for k, v in sd.items()}, "ASPP branches"),
    (lambda sd: sd | {"aspp.c0.bias": torch.full((4,), float("nan"))}, "NaN"),
    (lambda sd: sd | {"aspp.c0.bias": torch.zeros(4, dtype=torch.int32)}, "dtype"),
    (lambda sd: sd | {"aspp.c0.bias": [0.0] * 4}, "not a tensor"),
    (lambda sd: sd | {"base.aspp.c0.bias": sd["aspp.c0.bias"]}, "two entries"),
])
def test_bad_state_dicts(mutate, match, small_model):
    _error(mutate(small_model().state_dict()), match)


def test_wrong_aspp_rates(small_model):
    _error(small_model().state_dict(), "4 ASPP branches but 3 rates", aspp_rates=(1, 2, 3))
    _error(small_model().state_dict(), "positive integers", aspp_rates="6,12")
    _error(small_model().state_dict(), "positive integers", aspp_rates=(6, 12, 0, 24))


def test_class_names_must_match_classes(small_model, tmp_path):
    torch.save({"model": small_model().state_dict(), "class_names": ["a", "b"]}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="2 class names for a model with 4 classes"):
        load_model(tmp_path / "c.pt")
    torch.save({"model": small_model().state_dict(), "class_names": "abcd"}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="list of strings"):
        load_checkpoint(tmp_path / "d.pt")


@pytest.mark.parametrize("payload, match", [
    (b"", "empty"),
    (b"not a checkpoint at all" * 10, "not a PyTorch checkpoint"),
    (b"\x80\x02}q\x00(X\x01", "corrupt or truncated"),
    (b"PK\x03\x04" + b"\0" * 100, "truncated"),
])
def test_unreadable_files(payload, match, tmp_path):
    (tmp_path / "x.pt").write_bytes(payload)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "x.pt")


def test_zip_that_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.pt", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="corrupt or truncated checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_zip_bomb_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.pt", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data/0", bytes(64 << 20))
    assert (tmp_path / "bomb.pt").stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="expands to 64 MiB"):
        load_checkpoint(tmp_path / "bomb.pt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_non_mapping_payload(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no weights found"):
        load_checkpoint(tmp_path / "list.pt")


def test_every_truncation_is_a_clean_error(small_model, tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, small_model(), ["a", "b", "c", "d"])
    data = good.read_bytes()
    for cut in [1, 3, 64, 500, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1]:
        (tmp_path / "cut.pt").write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load_model(tmp_path / "cut.pt")
        assert "\n" not in str(info.value)


def test_flipped_bytes_never_escape_as_other_errors(small_model, tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, small_model(), ["a", "b", "c", "d"])
    data = bytearray(good.read_bytes())
    rng = torch.Generator().manual_seed(0)
    for _ in range(12):
        bad = bytearray(data)
        for i in torch.randint(0, len(bad), (8,), generator=rng).tolist():
            bad[i] ^= 0xFF
        (tmp_path / "flip.pt").write_bytes(bad)
        try:
            load_model(tmp_path / "flip.pt")  # flips inside tensor data load; that is what SHA-256 in metadata is for
        except CheckpointError as e:
            assert "\n" not in str(e)


class _CreatesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("zip_format", [True, False])
def test_code_in_a_checkpoint_never_runs(small_model, tmp_path, zip_format):
    marker = tmp_path / "payload-ran"
    torch.save({"model": small_model().state_dict(), "hook": _CreatesFile(marker)}, tmp_path / "evil.pt",
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match="refusing to load: the file references the Python object"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
