"""Procedural tabletop scenes with exact labels, deterministic from a seed.

A scene is a textured background plus a list of :class:`Shape` objects drawn back to front (later ones occlude earlier
ones). Identity is carried by shape and texture: every class draws its colours from the same distribution, so colour
alone does not tell classes apart. Labels are exact (the shape test at each pixel centre); the image is anti-aliased,
shaded, blurred and noisy, so a 1/8-resolution score map loses detail at object boundaries, as on real photos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("background", "disc", "box", "triangle", "ring", "pole", "star", "cross")
IGNORE = 255
CLASS_HUES: tuple[float, ...] = (0, 0, 25, 50, 75, 100, 125, 150)  # OpenCV hue (0..180) each class leans to
HUE_SPREAD = 12.0  # standard deviation around a class's hue: neighbouring classes (25 apart) overlap
MIN_VISIBLE_PIXELS = 30  # an object with fewer visible pixels is labelled IGNORE (too small to be judged)
_SUPERSAMPLE = 3  # sub-pixel grid per axis for anti-aliased coverage


@dataclass(frozen=True)
class Shape:
    """One object: class index, pose (centre, angle in radians), size (half-extents a, b; thickness t), colours, and a
    texture parameter (stripe/dot/checker period in pixels)."""

    cls: int
    cx: float
    cy: float
    angle: float
    a: float
    b: float
    t: float
    color: tuple[float, float, float]
    color2: tuple[float, float, float]
    period: float


@dataclass(frozen=True)
class Scene:
    """A background image (H×W×3 float32, 0..255, BGR) and the objects drawn on it, back to front."""

    background: np.ndarray
    shapes: tuple[Shape, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.background.shape[1], self.background.shape[0]


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image ``index`` of the set made with ``seed``: independent of how many images are made."""
    return np.random.default_rng([seed, index])


def random_color(rng: np.random.Generator, hue: float | None = None, saturation: tuple[float, float] = (0.3, 1.0),
                 value: tuple[float, float] = (0.35, 1.0)) -> tuple[float, float, float]:
    """A BGR colour (0..255); hue (OpenCV's 0..180 scale) uniform, or spread widely around ``hue``."""
    h = rng.uniform(0, 180) if hue is None else (hue + rng.normal(0, HUE_SPREAD)) % 180
    hsv = np.array([[[h, rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.float32)
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(float(c) for c in bgr)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random coarse grid upsampled bicubically."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured table: two blended colours, plus wood grain, tiles or speckle; H×W×3 float32 BGR."""
    c1 = np.array(random_color(rng, None, (0.0, 0.6), (0.25, 0.9)), np.float32)
    c2 = np.array(random_color(rng, None, (0.0, 0.6), (0.25, 0.9)), np.float32)
    mix = _smooth_field(rng, height, width, int(rng.integers(2, 6)))[..., None]
    img = c1 * mix + c2 * (1 - mix)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:  # wood grain: warped low-contrast stripes
        theta = rng.uniform(0, math.pi)
        u = xx * math.cos(theta) + yy * math.sin(theta)
        warp = _smooth_field(rng, height, width, 3) * rng.uniform(10, 40)
        grain = np.sin((u + warp) * 2 * math.pi / rng.uniform(6, 20))
        img = img * (1 + 0.12 * grain[..., None])
    elif kind == 1:  # tiles: a grid of soft grout lines
        period = rng.uniform(24, 64)
        line = (np.minimum(np.mod(xx, period), np.mod(yy, period)) < rng.uniform(1, 3)).astype(np.float32)
        line = cv2.GaussianBlur(line, (0, 0), 0.8)
        img = img * (1 - 0.35 * line[..., None])
    else:  # speckle
        speckle = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 1.2)
        img = img * (1 + 0.25 * speckle[..., None])
    return np.clip(img, 0, 255).astype(np.float32)


def random_shape(rng: np.random.Generator, width: int, height: int, cls: int | None = None,
                 small: bool = False) -> Shape:
    """A random object of class ``cls`` (random when None), sizes in pixels independent of the image size."""
    if cls is None:
        cls = int(rng.integers(1, len(CLASS_NAMES)))
    scale = rng.uniform(9, 16) if small else rng.uniform(20, 55)
    a = scale
    b = scale * rng.uniform(0.6, 1.0)
    t = 0.0
    name = CLASS_NAMES[cls]
    if name == "ring":
        t = rng.uniform(4.0, max(5.0, 0.4 * scale))
    elif name == "pole":
        a = rng.uniform(40, 120) if not small else rng.uniform(16, 28)
        t = rng.uniform(4.0, 9.0)
    elif name == "cross":
        t = max(4.0, scale * rng.uniform(0.22, 0.35))
    elif name in ("box", "disc"):
        b = scale * rng.uniform(0.5, 1.0)
    # each class leans towards its own hue, but the spread makes every class take every colour
    color = random_color(rng, hue=CLASS_HUES[cls])
    color2 = tuple(c * rng.uniform(0.3, 0.6) for c in color) if rng.random() < 0.5 else random_color(rng)
    return Shape(cls=cls, cx=rng.uniform(0, width), cy=rng.uniform(0, height), angle=rng.uniform(0, 2 * math.pi),
                 a=a, b=b, t=t, color=color, color2=color2, period=rng.uniform(5, 10))


def random_scene(rng: np.random.Generator, width: int = 320, height: int = 240) -> Scene:
    """A background and 5–12 objects (a few of them small, a few poles), in random depth order."""
    background = make_background(rng, width, height)
    area_scale = width * height / (320 * 240)
    n = int(round(rng.integers(3, 8) * area_scale))
    shapes = [random_shape(rng, width, height) for _ in range(n)]
    shapes += [random_shape(rng, width, height, small=True) for _ in range(int(rng.integers(0, 3) * area_scale))]
    pole = CLASS_NAMES.index("pole")
    shapes += [random_shape(rng, width, height, cls=pole) for _ in range(int(rng.integers(0, 2) * area_scale))]
    order = rng.permutation(len(shapes))
    return Scene(background, tuple(shapes[i] for i in order))


def _extent(s: Shape) -> float:
    """A radius that bounds the shape."""
    return math.hypot(max(s.a, s.t), max(s.b, s.t)) + 2


def _inside(s: Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean: is the local point (u, v) (object frame, pixels) inside the shape."""
    name = CLASS_NAMES[s.cls]
    if name == "disc":
        return (u / s.a) ** 2 + (v / s.b) ** 2 <= 1
    if name == "box":
        return (np.abs(u) <= s.a) & (np.abs(v) <= s.b)
    if name == "triangle":
        inside = np.ones(u.shape, bool)
        for k in range(3):
            phi = 2 * math.pi * k / 3
            inside &= u * math.cos(phi) + v * math.sin(phi) <= s.a * 0.5
        return inside
    if name == "ring":
        r = np.hypot(u, v)
        return (r <= s.a) & (r >= s.a - s.t)
    if name == "pole":
        return (np.abs(u) <= s.a) & (np.abs(v) <= s.t / 2)
    if name == "star":
        r = np.hypot(u, v)
        theta = np.arctan2(v, u)
        return r <= s.a * (0.45 + 0.55 * np.abs(np.cos(2.5 * theta)) ** 1.5)
    if name == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= s.a) & (av <= s.t)) | ((au <= s.t) & (av <= s.a))
    raise ValueError(f"unknown class {s.cls}")


def _texture(s: Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The object's colour at local points (u, v): ...×3 float32 BGR."""
    name = CLASS_NAMES[s.cls]
    c1 = np.asarray(s.color, np.float32)
    c2 = np.asarray(s.color2, np.float32)
    if name == "disc":  # a lit dome
        r2 = np.clip((u / s.a) ** 2 + (v / s.b) ** 2, 0, 1)
        w = (0.55 + 0.45 * np.sqrt(1 - r2) + 0.15 * np.clip(-(u + v) / (s.a + s.b), -1, 1))[..., None]
        return c1 * w
    if name == "box":  # stripes across the long side
        w = (np.sin(u * 2 * math.pi / s.period) > 0)[..., None]
        return np.where(w, c1, c2)
    if name == "triangle":  # flat with a dark rim
        d = np.full(u.shape, np.inf, np.float32)
        for k in range(3):
            phi = 2 * math.pi * k / 3
            d = np.minimum(d, s.a * 0.5 - (u * math.cos(phi) + v * math.sin(phi)))
        return np.where((d < 2.5)[..., None], c1 * 0.35, c1)
    if name == "ring":  # flat, slightly lit
        return c1 * (0.85 + 0.15 * np.clip(u / s.a, -1, 1))[..., None]
    if name == "pole":  # a lit cylinder
        return c1 * (0.6 + 0.4 * np.cos(np.clip(v / (s.t / 2 + 1e-3), -1, 1) * 1.3))[..., None]
    if name == "star":  # polka dots
        p = s.period
        dots = (np.mod(u, p) - p / 2) ** 2 + (np.mod(v, p) - p / 2) ** 2 <= (p * 0.3) ** 2
        return np.where(dots[..., None], c2, c1)
    if name == "cross":  # checker
        p = s.period
        check = (np.floor(u / p) + np.floor(v / p)) % 2 == 0
        return np.where(check[..., None], c1, c2)
    raise ValueError(f"unknown class {s.cls}")


def _draw(s: Shape, image: np.ndarray, labels: np.ndarray, ids: np.ndarray, obj_id: int) -> None:
    """Composite one shape over ``image`` (anti-aliased) and write its exact pixel-centre mask into labels/ids."""
    h, w = labels.shape
    r = _extent(s)
    x0, x1 = max(0, int(s.cx - r)), min(w, int(math.ceil(s.cx + r)) + 1)
    y0, y1 = max(0, int(s.cy - r)), min(h, int(math.ceil(s.cy + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    cos, sin = math.cos(s.angle), math.sin(s.angle)
    n = _SUPERSAMPLE
    offsets = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    ys = (np.arange(y0, y1, dtype=np.float32)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(x0, x1, dtype=np.float32)[:, None] + offsets[None, :]).reshape(-1)
    yy, xx = np.meshgrid(ys - s.cy, xs - s.cx, indexing="ij")
    u = xx * cos + yy * sin
    v = -xx * sin + yy * cos
    inside = _inside(s, u, v)
    tex = _texture(s, u, v) * inside[..., None]
    bh, bw = y1 - y0, x1 - x0
    coverage = inside.reshape(bh, n, bw, n).mean(axis=(1, 3))
    colour = tex.reshape(bh, n, bw, n, 3).sum(axis=(1, 3)) / np.maximum(coverage * n * n, 1)[..., None]
    region = image[y0:y1, x0:x1]
    region[:] = region * (1 - coverage[..., None]) + colour * coverage[..., None]
    centre = inside[n // 2::n, n // 2::n]
    labels[y0:y1, x0:x1][centre] = s.cls
    ids[y0:y1, x0:x1][centre] = obj_id


@dataclass(frozen=True)
class Look:
    """Photometric effects of one shot: a lighting ramp, lens blur and sensor noise."""

    light_angle: float
    gain: float
    slope: float
    blur_sigma: float
    noise_sigma: float


def random_look(rng: np.random.Generator) -> Look:
    return Look(light_angle=rng.uniform(0, 2 * math.pi), gain=rng.uniform(0.85, 1.1), slope=rng.uniform(0.0, 0.35),
                blur_sigma=rng.uniform(0.3, 1.0), noise_sigma=rng.uniform(2, 7))


def render(scene: Scene, rng: np.random.Generator, look: Look | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw a scene: returns (H×W×3 uint8 BGR image, H×W uint8 labels with IGNORE for barely visible objects).

    ``look`` (drawn from ``rng`` when None) sets lighting, blur and noise level; ``rng`` draws the noise itself."""
    if look is None:
        look = random_look(rng)
    image = scene.background.copy()
    h, w = image.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    ids = np.zeros((h, w), np.int32)
    for i, s in enumerate(scene.shapes, start=1):
        _draw(s, image, labels, ids, i)
    counts = np.bincount(ids.ravel(), minlength=len(scene.shapes) + 1)
    tiny = np.flatnonzero((counts > 0) & (counts < MIN_VISIBLE_PIXELS))
    tiny = tiny[tiny > 0]
    if tiny.size:
        labels[np.isin(ids, tiny)] = IGNORE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xx * math.cos(look.light_angle) + yy * math.sin(look.light_angle)) / max(h, w)
    light = look.gain + look.slope * (ramp - ramp.mean())
    image *= light[..., None]
    image = cv2.GaussianBlur(image, (0, 0), look.blur_sigma)
    image += rng.normal(0, look.noise_sigma, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), labels


def generate(seed: int, index: int, width: int = 320, height: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of the set made with ``seed``: (BGR uint8 image, uint8 labels)."""
    rng = scene_rng(seed, index)
    return render(random_scene(rng, width, height), rng)


def move(shape: Shape, dx: float, dy: float, dangle: float) -> Shape:
    """The shape translated and rotated (for video)."""
    return replace(shape, cx=shape.cx + dx, cy=shape.cy + dy, angle=shape.angle + dangle)
