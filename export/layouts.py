"""The ``.pth`` key layouts of the DeepLab v2 ports in use, mapped onto kazuto1011/deeplab-pytorch's (our model's).

- ``kazuto``: ``layer1.conv1.{conv,bn}``, ``layer{2..5}.block{i}.{reduce,conv3x3,increase,shortcut}``, ``aspp.c{i}``.
- ``isht7`` (isht7/pytorch-deeplab-resnet, and AdaptSegNet's ImageNet/COCO init file): the torchvision-style ResNet
  ``conv1``, ``bn1``, ``layerN.M.{conv,bn}{1,2,3}``, ``layerN.0.downsample.{0,1}`` under ``Scale.``, the classifier
  ``layer5.conv2d_list.{0..3}``; all four ASPP branches are summed.
- ``adaptsegnet`` (wasidennis/AdaptSegNet, trained models): the same keys unprefixed, a second head ``layer6`` in
  ``DeeplabMulti``. Its classifier returns inside its loop, so only ASPP branches 0 and 1 count.
- ``advent`` (valeoai/ADVENT): the same keys as AdaptSegNet's, all four branches summed.

The two-head models' output is the main head: ``layer6``, on the last block (``layer5`` there is an auxiliary head on
the third stage). The weights cannot tell AdaptSegNet's semantics from ADVENT's, so ``auto`` refuses to guess.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI's argument parser imports LAYOUTS without the export extra
    import torch

LAYOUTS = ("auto", "kazuto", "caffe", "isht7", "adaptsegnet", "advent")
ISHT7_PREFIX = "Scale."
ADAPTSEGNET_BRANCHES = 2  # its Classifier_Module returns after adding branch 1
_HEAD = re.compile(r"^layer([56])\.conv2d_list\.(\d+)\.(weight|bias)$")
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$")
_ROLE = {"conv1": "reduce.conv", "bn1": "reduce.bn", "conv2": "conv3x3.conv", "bn2": "conv3x3.bn",
         "conv3": "increase.conv", "bn3": "increase.bn", "downsample.0": "shortcut.conv",
         "downsample.1": "shortcut.bn"}
_LIST_LIMIT = 3


class LayoutError(ValueError):
    """Keys that fit no layout, or a layout that does not fit the keys; one line."""


@dataclass
class Converted:
    """A state_dict in our keys, the layout it came in, the ASPP rates that layout implies (None: unknown) and notes
    for the log (which head was taken, which branches were ignored)."""

    state_dict: dict[str, torch.Tensor]
    layout: str
    aspp_rates: tuple[int, ...] | None = None
    notes: list[str] = field(default_factory=list)


def detect(keys: list[str]) -> str:
    """The layout the keys leave no doubt about; raises :class:`LayoutError` where they do."""
    if any(k.startswith(ISHT7_PREFIX) for k in keys):
        return "isht7"
    heads = {m.group(1) for k in keys if (m := _HEAD.match(k))}
    if not heads:
        return "kazuto"
    if heads == {"6"}:
        return "advent"  # AdaptSegNet's models always have layer5; only ADVENT's single-level model lacks it
    raise LayoutError("unprefixed 'layer5.conv2d_list' keys are AdaptSegNet's or ADVENT's layout, and only the code "
                      "tells them apart: pass --layout adaptsegnet (only ASPP branches 0 and 1 count, as its "
                      "classifier returns inside its loop) or --layout advent (all four branches summed)")


def convert(sd: Mapping[str, torch.Tensor], layout: str) -> Converted:
    """Map ``sd`` (wrapper prefixes such as ``module.`` already removed) from ``layout`` to our keys."""
    keys = list(sd)
    if layout == "auto":
        layout = detect(keys)
    if layout == "caffe":
        raise LayoutError("--layout caffe is for .caffemodel files; this is a PyTorch checkpoint")
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    if layout == "kazuto":
        return Converted(dict(sd), layout)
    if layout == "isht7":
        if not any(k.startswith(ISHT7_PREFIX) for k in keys):
            raise LayoutError(f"--layout isht7 expects keys under '{ISHT7_PREFIX}' (first keys: "
                              f"{', '.join(keys[:_LIST_LIMIT])})")
        sd = {k[len(ISHT7_PREFIX):] if k.startswith(ISHT7_PREFIX) else k: v for k, v in sd.items()}
    return _from_resnet_keys(sd, layout)


def _from_resnet_keys(sd: Mapping[str, torch.Tensor], layout: str) -> Converted:
    from export.model import ASPP_L

    heads: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key, value in sd.items():
        if m := _HEAD.match(key):
            heads.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = value
    if not heads:
        raise LayoutError(f"--layout {layout} expects a classifier 'layer5.conv2d_list.N' or 'layer6.conv2d_list.N' "
                          f"(first keys: {', '.join(list(sd)[:_LIST_LIMIT])})")
    notes = []
    main = "6" if "6" in heads else "5"
    if len(heads) > 1:
        notes.append("two heads: took the main head layer6 (on the last block), ignored the auxiliary layer5")
    branches = heads[main]
    count = len(branches)
    if layout == "adaptsegnet" and count > ADAPTSEGNET_BRANCHES:
        notes.append(f"AdaptSegNet semantics: ASPP branches 0 and 1 of layer{main} summed, branches "
                     f"{', '.join(map(str, range(ADAPTSEGNET_BRANCHES, count)))} ignored (its classifier returns "
                     f"inside its loop)")
        count = ADAPTSEGNET_BRANCHES
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if _HEAD.match(key):
            continue
        if key.startswith("conv1."):
            out["layer1.conv1.conv." + key[len("conv1."):]] = value
        elif key.startswith("bn1."):
            out["layer1.conv1.bn." + key[len("bn1."):]] = value
        elif m := _BLOCK.match(key):
            stage, block, role, rest = m.groups()
            out[f"layer{int(stage) + 1}.block{int(block) + 1}.{_ROLE[role]}.{rest}"] = value
        else:
            out[key] = value  # unknown: the strict load names it
    for i in range(count):
        for name, value in branches.get(i, {}).items():
            out[f"aspp.c{i}.{name}"] = value
    rates = ASPP_L[:count] if count <= len(ASPP_L) else None
    return Converted(out, layout, rates, notes)
