"""Class names and colour palettes of the datasets DeepLab v2 models are trained on: ``voc`` (21), ``cityscapes``
(19), ``cocostuff`` (182, kazuto1011/deeplab-pytorch's label order), or a file with one name per line.

The export records the set's name, names and palette in the model metadata (``extra["classes"]``,
``extra["palette"]``); overlays and label PNGs use the palette (:func:`runtime.palette.palette_of`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime.palette import voc_palette

VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# Cityscapes' 19 training classes and their official colours (RGB).
CITYSCAPES = (("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
              ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
              ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)),
              ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)), ("person", (220, 20, 60)),
              ("rider", (255, 0, 0)), ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)),
              ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)))
COCOSTUFF = tuple((
    "person|bicycle|car|motorcycle|airplane|bus|train|truck|boat|traffic light|fire hydrant|street sign|"
    "stop sign|parking meter|bench|bird|cat|dog|horse|sheep|cow|elephant|bear|zebra|giraffe|hat|backpack|"
    "umbrella|shoe|eye glasses|handbag|tie|suitcase|frisbee|skis|snowboard|sports ball|kite|baseball bat|"
    "baseball glove|skateboard|surfboard|tennis racket|bottle|plate|wine glass|cup|fork|knife|spoon|bowl|"
    "banana|apple|sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake|chair|couch|potted plant|bed|"
    "mirror|dining table|window|desk|toilet|door|tv|laptop|mouse|remote|keyboard|cell phone|microwave|oven|"
    "toaster|sink|refrigerator|blender|book|clock|vase|scissors|teddy bear|hair drier|toothbrush|hair brush|"
    "banner|blanket|branch|bridge|building-other|bush|cabinet|cage|cardboard|carpet|ceiling-other|"
    "ceiling-tile|cloth|clothes|clouds|counter|cupboard|curtain|desk-stuff|dirt|door-stuff|fence|floor-marble|"
    "floor-other|floor-stone|floor-tile|floor-wood|flower|fog|food-other|fruit|furniture-other|grass|gravel|"
    "ground-other|hill|house|leaves|light|mat|metal|mirror-stuff|moss|mountain|mud|napkin|net|paper|pavement|"
    "pillow|plant-other|plastic|platform|playingfield|railing|railroad|river|road|rock|roof|rug|salad|sand|"
    "sea|shelf|sky-other|skyscraper|snow|solid-other|stairs|stone|straw|structural-other|table|tent|"
    "textile-other|towel|tree|vegetable|wall-brick|wall-concrete|wall-other|wall-panel|wall-stone|wall-tile|"
    "wall-wood|water-other|waterdrops|window-blind|window-other|wood"
).split("|"))
SETS = ("voc", "cityscapes", "cocostuff")
DEFAULT_BY_COUNT = {len(VOC): "voc", len(CITYSCAPES): "cityscapes", len(COCOSTUFF): "cocostuff"}


class ClassesError(ValueError):
    """Class names that do not fit the model, or an unreadable names file; one line."""


@dataclass(frozen=True)
class ClassSet:
    """A model's classes: the set's name (``voc``, ..., ``file``, or ``generic``), names and RGB palette."""

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def metadata(self) -> dict[str, object]:
        """The ``extra`` entries the export records."""
        return {"classes": self.name, "palette": [list(c) for c in self.palette]}


def named_set(name: str) -> ClassSet:
    """One of :data:`SETS`."""
    if name == "voc":
        return ClassSet(name, VOC, _voc_colours(len(VOC)))
    if name == "cityscapes":
        return ClassSet(name, tuple(n for n, _ in CITYSCAPES), tuple(c for _, c in CITYSCAPES))
    if name == "cocostuff":
        return ClassSet(name, COCOSTUFF, _voc_colours(len(COCOSTUFF)))
    raise ClassesError(f"unknown class set {name!r} (expected {', '.join(SETS)} or a file)")


def _voc_colours(n: int) -> tuple[tuple[int, int, int], ...]:
    return tuple(tuple(int(v) for v in c) for c in voc_palette(n))  # type: ignore[misc]


def read_names(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """One class name per line; blank lines are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClassesError(f"cannot read class names from {path}: {e}") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ClassesError(f"class names file {path} lists no names")
    return names


def resolve(spec: str | None, n_classes: int, names: tuple[str, ...] | None = None) -> ClassSet:
    """The classes of a model with ``n_classes`` outputs: ``spec`` (a set name or a names file) if given, else the
    checkpoint's own ``names``, else the set its class count implies (21 VOC, 19 Cityscapes, 182 COCO-Stuff), else
    ``class_0..``. Names from a file or the checkpoint get the VOC colour map."""
    if spec in SETS:
        chosen = named_set(spec)
    elif spec is not None:
        chosen = ClassSet("file", read_names(spec), _voc_colours(0))
    elif names is not None:
        chosen = ClassSet("checkpoint", tuple(names), _voc_colours(0))
    elif n_classes in DEFAULT_BY_COUNT:
        chosen = named_set(DEFAULT_BY_COUNT[n_classes])
    else:
        chosen = ClassSet("generic", tuple(f"class_{i}" for i in range(n_classes)), _voc_colours(0))
    if len(chosen.names) != n_classes:
        what = f"'{spec}'" if spec is not None else "the checkpoint"
        raise ClassesError(f"{what} lists {len(chosen.names)} class names for a model with {n_classes} classes")
    if not chosen.palette:
        chosen = ClassSet(chosen.name, chosen.names, _voc_colours(n_classes))
    return chosen
