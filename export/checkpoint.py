"""DeepLab v2 checkpoints: safe loading, key normalization, architecture inference and strict import.

A checkpoint is untrusted input. A ``.caffemodel`` is parsed as protobuf (:mod:`export.caffe_import`); anything else
is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling) and accepted in the key layout of
kazuto1011/deeplab-pytorch, with ``base.`` (its MSC wrapper), ``module.`` (DataParallel) and ``scale.`` (its older
MSC wrapper) prefixes, nested under ``state_dict`` or ``model``, or in the isht7/AdaptSegNet/ADVENT layouts
(:mod:`export.layouts`). Our own saves (:func:`save_checkpoint`) are
``{"model": state_dict, "class_names": [...], "meta": {...}}``.
"""
from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from runtime.atomic import atomic_write_bytes
from export.layouts import LayoutError, convert
from export.model import ASPP_L, LARGE_FOV, DeepLabV2, DeepLabV2VGG

CAFFE_SUFFIX = ".caffemodel"

PREFIXES = ("module.", "base.", "scale.")
NESTING_KEYS = ("state_dict", "model")
# Older releases of the port named the projection shortcut `proj` and kept the ASPP convs under `aspp.stages`.
LEGACY_RENAMES = ((".proj.", ".shortcut."), ("aspp.stages.", "aspp."))
_BLOCK_KEY = re.compile(r"^layer([2-5])\.block(\d+)\.")
_ASPP_KEY = re.compile(r"^aspp\.c(\d+)\.weight$")
_LIST_LIMIT = 5
MAX_EXPANSION = 4  # uncompressed / file size above which an archive is refused as a zip bomb


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the reason."""


@dataclass
class Checkpoint:
    """Normalized checkpoint contents: plain DeepLabV2 keys, float32 tensors, and what was saved beside them."""

    state_dict: dict[str, torch.Tensor]
    class_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    layout: str = "kazuto"  # the layout the file came in (export.layouts.LAYOUTS)
    notes: list[str] = field(default_factory=list)  # what the import decided (which head, ignored branches)
    msc_in_file: bool = False  # a caffemodel of the official multi-scale net


@dataclass(frozen=True)
class Architecture:
    """What the tensors say about the network."""

    n_classes: int
    blocks: tuple[int, int, int, int]
    base_width: int
    n_aspp: int
    aspp_kernel: int = 3


def load_checkpoint(path: str | os.PathLike[str], layout: str = "auto") -> Checkpoint:
    """Read a PyTorch checkpoint file safely, normalize it and map ``layout`` (``auto``: from the keys) to our keys;
    raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    obj = _torch_load(path)
    weights, holder = _find_weights(obj)
    try:
        converted = convert(normalize_state_dict(weights), layout)
    except LayoutError as e:
        raise CheckpointError(f"{path}: {e}") from None
    meta = _meta(holder, path)
    if converted.aspp_rates is not None:
        meta.setdefault("aspp_rates", list(converted.aspp_rates))
    return Checkpoint(converted.state_dict, _class_names(holder, path), meta, converted.layout, converted.notes)


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one line."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    _check_expansion(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the failure below says what matters
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types here; all mean "unusable file"
        raise CheckpointError(f"{path}: {_load_failure(path, e)}") from None


def _check_expansion(path: Path) -> None:
    """Refuse archives that would expand far beyond their size (torch.save stores entries uncompressed)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports the damage
    size = path.stat().st_size
    if total > MAX_EXPANSION * size + (1 << 20):
        raise CheckpointError(f"{path}: refusing to load: the archive expands to {total / 2**20:.0f} MiB from "
                              f"{size / 2**20:.1f} MiB (not a torch.save file)")


def _load_failure(path: Path, error: Exception) -> str:
    text = " ".join(str(error).split())
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK", b"\x80")):  # neither a zip archive nor a (legacy torch.save) pickle
        return "not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"
    if "Weights only load failed" in text:
        if m := re.search(r"GLOBAL (\S+)", text):
            return (f"refusing to load: the file references the Python object {m.group(1)}, not only tensors "
                    f"(a checkpoint must hold weights only)")
        return "not a PyTorch checkpoint: a pickle that the weights-only loader refuses to read"
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return "truncated checkpoint archive (the zip directory is missing)"
    return f"corrupt or truncated checkpoint ({text[:160]})"


def _find_weights(obj: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Return (the mapping of tensors, the mapping that holds it and its class names/meta)."""
    holder = obj
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj, holder
        inner = next((obj[k] for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        holder, obj = obj, inner
    kind = type(obj).__name__
    keys = f" with keys {', '.join(map(str, list(obj)[:_LIST_LIMIT]))}" if isinstance(obj, Mapping) and obj else ""
    raise CheckpointError(f"no weights found: expected a state_dict (optionally under 'state_dict' or 'model'), "
                          f"got a {kind}{keys}")


def normalize_state_dict(weights: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, apply legacy renames, check every value is a finite float tensor, cast to float32."""
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if not isinstance(key, str):
            raise CheckpointError(f"state_dict key {key!r} is not a string")
        name = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix):], True
        for old, new in LEGACY_RENAMES:
            name = name.replace(old, new)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if name in out:
            raise CheckpointError(f"state_dict has two entries for {name!r} after removing wrapper prefixes")
        if name.endswith("num_batches_tracked"):
            out[name] = value.to(torch.long)
            continue
        if not value.is_floating_point():
            raise CheckpointError(f"state_dict entry {key!r} has dtype {value.dtype}, expected a float tensor")
        value = value.detach().to(torch.float32)
        if not torch.isfinite(value).all():
            raise CheckpointError(f"state_dict entry {key!r} has NaN or infinite values")
        out[name] = value
    return out


def infer_architecture(sd: Mapping[str, torch.Tensor]) -> Architecture:
    """Read n_classes, blocks per stage, base width and ASPP branch count from the tensor names and shapes."""
    stem = sd.get("layer1.conv1.conv.weight")
    if stem is None or stem.ndim != 4:
        raise CheckpointError(f"not a DeepLab v2 checkpoint: no 4-D 'layer1.conv1.conv.weight' "
                              f"(first keys: {', '.join(list(sd)[:_LIST_LIMIT]) or 'none'})")
    blocks = [set(), set(), set(), set()]
    aspp: dict[int, torch.Tensor] = {}
    for key, value in sd.items():
        if m := _BLOCK_KEY.match(key):
            blocks[int(m.group(1)) - 2].add(int(m.group(2)))
        elif m := _ASPP_KEY.match(key):
            aspp[int(m.group(1))] = value
    counts = []
    for stage, ids in enumerate(blocks, start=2):
        if not ids:
            raise CheckpointError(f"not a DeepLab v2 checkpoint: no blocks in layer{stage}")
        if ids != set(range(1, max(ids) + 1)):
            missing = sorted(set(range(1, max(ids) + 1)) - ids)
            raise CheckpointError(f"layer{stage} lacks block(s) {', '.join(map(str, missing))}")
        counts.append(max(ids))
    if not aspp:
        raise CheckpointError("not a DeepLab v2 checkpoint: no ASPP weights 'aspp.c0.weight'")
    if sorted(aspp) != list(range(len(aspp))):
        raise CheckpointError(f"ASPP branches must be c0..c{len(aspp) - 1}, found c{', c'.join(map(str, sorted(aspp)))}")
    if aspp[0].ndim != 4:
        raise CheckpointError(f"aspp.c0.weight must be 4-D, got shape {list(aspp[0].shape)}")
    return Architecture(n_classes=int(aspp[0].shape[0]), blocks=tuple(counts),  # type: ignore[arg-type]
                        base_width=int(stem.shape[0]), n_aspp=len(aspp), aspp_kernel=int(aspp[0].shape[-1]))


def build_from_state_dict(sd: Mapping[str, torch.Tensor], aspp_rates: Sequence[int] | None = None,
                          pool5a: bool = False) -> DeepLabV2 | DeepLabV2VGG:
    """A :class:`DeepLabV2` (or, for ``features.conv1_1`` keys, a :class:`DeepLabV2VGG`) of the architecture the
    tensors describe, strictly loaded, in eval mode.

    The ASPP rates cannot be read from the tensors: ``aspp_rates`` (default ASPP-L; LargeFOV for a one-branch VGG)
    must match the training's, as must ``pool5a`` (VGG only)."""
    sd = normalize_state_dict(sd)
    if VGG_STEM in sd:
        return vgg_from_state_dict(sd, aspp_rates, pool5a)
    arch = infer_architecture(sd)
    default = ASPP_L if arch.aspp_kernel == 3 else (1,) * arch.n_aspp
    try:
        model = DeepLabV2(arch.n_classes, arch.blocks, arch.base_width, _rates(aspp_rates, arch.n_aspp, default),
                          arch.aspp_kernel)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    strict_load(model, sd)
    return model.eval()


VGG_STEM = "features.conv1_1.weight"
_VGG_HEAD = re.compile(r"^aspp\.c(\d+)\.fc8\.weight$")


def vgg_from_state_dict(sd: Mapping[str, torch.Tensor], aspp_rates: Sequence[int] | None = None,
                        pool5a: bool = False) -> DeepLabV2VGG:
    """A strictly loaded :class:`DeepLabV2VGG` in eval mode (see :func:`build_from_state_dict`)."""
    heads = sorted(int(m.group(1)) for k in sd if (m := _VGG_HEAD.match(k)))
    if not heads or VGG_STEM not in sd or "aspp.c0.fc6.weight" not in sd:
        raise CheckpointError("not a DeepLab v2 VGG-16 checkpoint: needs features.conv1_1 and aspp.c0.{fc6,fc7,fc8}")
    default = LARGE_FOV if len(heads) == 1 else ASPP_L
    model = DeepLabV2VGG(int(sd["aspp.c0.fc8.weight"].shape[0]), _rates(aspp_rates, len(heads), default),
                         int(sd[VGG_STEM].shape[0]), int(sd["aspp.c0.fc6.weight"].shape[0]), pool5a)
    strict_load(model, sd)
    return model.eval()


def _rates(aspp_rates: Sequence[int] | None, n_branches: int, default: Sequence[int]) -> tuple[int, ...]:
    rates = tuple(aspp_rates) if aspp_rates else tuple(default)
    if not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rates):
        raise CheckpointError(f"ASPP rates must be positive integers, got {aspp_rates!r}")
    if len(rates) != n_branches:
        raise CheckpointError(f"checkpoint has {n_branches} ASPP branches but {len(rates)} rates were given "
                              f"({', '.join(map(str, rates))})")
    return rates


def strict_load(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Load every tensor or fail naming the missing keys, the unexpected keys and the shape mismatches.

    Only ``num_batches_tracked`` may be absent (checkpoints from PyTorch < 0.4.1 lack it; inference ignores it)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k} {list(sd[k].shape)} vs {list(v.shape)}" for k, v in expected.items()
                  if k in sd and sd[k].shape != v.shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch (checkpoint vs model)",
                                                                            mismatched)):
        if items:
            more = f" (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:_LIST_LIMIT])}{more}")
    if problems:
        raise CheckpointError("checkpoint does not match the DeepLab v2 layout: " + "; ".join(problems))
    full = dict(sd)
    for k, v in expected.items():
        full.setdefault(k, v)
    model.load_state_dict(full, strict=True)


def _class_names(holder: Mapping[str, Any], path: Path) -> list[str] | None:
    names = holder.get("class_names") if isinstance(holder, Mapping) else None
    if names is None:
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: 'class_names' must be a list of strings")
    return list(names)


def _meta(holder: Mapping[str, Any], path: Path) -> dict[str, Any]:
    meta = holder.get("meta") if isinstance(holder, Mapping) else None
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{path}: 'meta' must be a dict")
    return dict(meta)


def load_model(path: str | os.PathLike[str], aspp_rates: Sequence[int] | None = None, layout: str = "auto",
               prototxt: str | os.PathLike[str] | None = None) -> tuple[DeepLabV2 | DeepLabV2VGG, Checkpoint]:
    """Load a checkpoint file (a ``.caffemodel``, optionally checked against its ``prototxt``, or a PyTorch file in
    ``layout``) into a strictly matching model in eval mode.

    ASPP rates of a PyTorch file: ``aspp_rates`` if given, else the checkpoint's ``meta["aspp_rates"]`` (or its
    layout's), else ASPP-L; a caffemodel records its own."""
    if Path(path).suffix.lower() == CAFFE_SUFFIX:
        return _load_caffe(Path(path), aspp_rates, layout, prototxt)
    if prototxt is not None:
        raise CheckpointError(f"a prototxt goes with a {CAFFE_SUFFIX} file, not with {path}")
    ckpt = load_checkpoint(path, layout)
    rates = aspp_rates or ckpt.meta.get("aspp_rates")
    try:
        model = build_from_state_dict(ckpt.state_dict, rates, bool(ckpt.meta.get("pool5a", False)))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if ckpt.class_names is not None and len(ckpt.class_names) != model.n_classes:
        raise CheckpointError(f"{path}: {len(ckpt.class_names)} class names for a model with {model.n_classes} "
                              f"classes")
    return model, ckpt


def _load_caffe(path: Path, aspp_rates: Sequence[int] | None, layout: str,
                prototxt: str | os.PathLike[str] | None) -> tuple[DeepLabV2 | DeepLabV2VGG, Checkpoint]:
    from export.caffe_import import import_caffe
    from export.caffe_proto import CaffeFormatError

    if layout not in ("auto", "caffe"):
        raise CheckpointError(f"{path}: a {CAFFE_SUFFIX} is in the caffe layout, not {layout}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        imported = import_caffe(path, prototxt)
    except CaffeFormatError as e:
        raise CheckpointError(str(e)) from None
    model = imported.model
    if aspp_rates and tuple(aspp_rates) != model.aspp_rates:
        raise CheckpointError(f"{path}: the caffemodel's ASPP rates are {list(model.aspp_rates)}, not "
                              f"{list(aspp_rates)}")
    meta: dict[str, Any] = {"aspp_rates": list(model.aspp_rates)}
    if isinstance(model, DeepLabV2VGG):
        meta["pool5a"] = model.pool5a
    return model, Checkpoint(imported.state_dict, None, meta, "caffe", imported.notes, imported.msc_in_file)


def save_checkpoint(path: str | os.PathLike[str], model: DeepLabV2 | DeepLabV2VGG,
                    class_names: Sequence[str] | None = None, meta: Mapping[str, Any] | None = None) -> None:
    """Save ``{"model": state_dict, "class_names": [...], "meta": {...}}`` atomically (loadable with weights_only).

    ``meta`` gets ``aspp_rates`` (and a VGG's ``pool5a``) from the model unless it has them; keep its values to
    str/int/float/bool/list/dict."""
    if class_names is not None and len(class_names) != model.n_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.n_classes} classes")
    arch = {"pool5a": model.pool5a} if isinstance(model, DeepLabV2VGG) else {}
    meta = {"aspp_rates": list(model.aspp_rates), **arch, **(meta or {})}
    payload: dict[str, Any] = {"model": model.state_dict(), "meta": meta}
    if class_names is not None:
        payload["class_names"] = list(class_names)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
