"""Write generated scenes as a PASCAL VOC-layout dataset."""
from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from demo.scenes import CLASS_NAMES, generate
from export import voc


def write_dataset(out: str | os.PathLike, count: int, seed: int, width: int = 320, height: int = 240,
                  val_fraction: float = 0.1, progress: bool = True) -> list[str]:
    """Generate ``count`` scenes from ``seed`` into ``out`` (VOC layout + classes.txt); the last
    ``round(count * val_fraction)`` ids form the val split, the others train. Returns the ids."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val fraction must be in [0, 1], got {val_fraction}")
    root = Path(out)
    ids = [f"s{seed}_{i:05d}" for i in range(count)]
    for i, id_ in enumerate(tqdm(ids, desc="generate", unit="img", disable=None if progress else True)):
        image, labels = generate(seed, i, width, height)
        voc.write_image(root / voc.IMAGE_DIR / f"{id_}.jpg", image)
        voc.write_label(root / voc.LABEL_DIR / f"{id_}.png", labels)
    n_val = int(round(count * val_fraction))
    voc.write_split(root, "train", ids[: count - n_val])
    voc.write_split(root, "val", ids[count - n_val:])
    voc.write_classes(root, CLASS_NAMES)
    return ids


def write_images(out: str | os.PathLike, count: int, seed: int, width: int = 320, height: int = 240,
                 progress: bool = True) -> list[Path]:
    """Generate ``count`` scenes from ``seed`` as plain JPEGs in ``out`` (no labels): calibration images."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    paths = [Path(out) / f"s{seed}_{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(tqdm(paths, desc="generate", unit="img", disable=None if progress else True)):
        voc.write_image(path, generate(seed, i, width, height)[0])
    return paths
