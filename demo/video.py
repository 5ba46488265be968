"""A short video of moving objects over a textured table (the sample behind ``--source demo``)."""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import cv2
from tqdm import tqdm

from demo.scenes import Scene, move, random_look, random_scene, render, scene_rng
from export import voc

VIDEO_SEED = 7  # the seed of the committed demo video (disjoint from the training and held-out seeds)


def _wrap(value: float, low: float, high: float) -> float:
    """Wrap ``value`` into [low, high) so objects leave one side and come back on the other."""
    return low + math.fmod(math.fmod(value - low, high - low) + (high - low), high - low)


def frames(seed: int, count: int, width: int, height: int):
    """Yield ``count`` (BGR image, labels) frames of one scene whose objects drift and spin at constant speeds."""
    rng = scene_rng(seed, 0)
    scene = random_scene(rng, width, height)
    look = random_look(rng)
    velocity = [(rng.uniform(-2.5, 2.5), rng.uniform(-2.0, 2.0), rng.uniform(-0.04, 0.04)) for _ in scene.shapes]
    margin = 60.0
    for k in range(count):
        shapes = []
        for s, (vx, vy, va) in zip(scene.shapes, velocity):
            m = move(s, vx * k, vy * k, va * k)
            shapes.append(replace(m, cx=_wrap(m.cx, -margin, width + margin), cy=_wrap(m.cy, -margin, height + margin)))
        yield render(Scene(scene.background, tuple(shapes)), scene_rng(seed, k + 1), look)


def write_video(out: str | os.PathLike, count: int = 90, seed: int = VIDEO_SEED, width: int = 384, height: int = 288,
                fps: float = 15.0, labels_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Render the video to ``out`` (MPEG-4 part 2, ``mp4v``), atomically; optionally the label PNG of every frame
    into ``labels_dir`` (``000000.png``, ...)."""
    if count < 1:
        raise ValueError(f"frame count must be positive, got {count}")
    if Path(out).suffix.lower() not in (".mp4", ".avi", ".mov", ".mkv"):
        raise ValueError(f"video file name must end in .mp4, .avi, .mov or .mkv (OpenCV picks the container from it): {out}")
    with voc.atomic_output(out) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write an mp4v video to {out}")
        try:
            for k, (image, labels) in enumerate(tqdm(frames(seed, count, width, height), total=count, desc="video",
                                                     unit="frame", disable=None if progress else True)):
                writer.write(image)
                if labels_dir is not None:
                    voc.write_label(Path(labels_dir) / f"{k:06d}.png", labels)
        finally:
            writer.release()
    return Path(out)

