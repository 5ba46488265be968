#!/usr/bin/env python3
"""Dense CRF benchmark: this package (`crf`) against pydensecrf on several photos, same inputs, same run.

Every photo (default: all of ../shared/reference/images) is centre-cropped and resized to --width x --height
(500x375, PASCAL VOC's most common size) and gets 21 labels of DCNN-like soft probabilities (a smooth random label
map at 1/8 resolution, upsampled bilinearly, softmax); the VOC preset, 10 iterations, set-up included. For each
photo, with 1 thread and all threads:

- steady: the photos one after another in this process (thread pool running, buffers cached, a smoothness lattice
  reused where there is one: the frames of a video or a data set of same-sized images);
- cold: one CRF in a fresh subprocess (no lattice kept, no thread pool, no buffers: the first image a program sees);
- drop-in: what a pydensecrf user's script runs after `import crf as dcrf`: DenseCRF2D with its defaults (the
  lattice for every kernel, float rows, as pydensecrf), set-up included, all threads, steady;
- pydensecrf on the same unaries in this process (runs interleaved, so all see the same machine load);
- speed-up = pydensecrf time / crf time (medians over --repeats), argmax agreement with pydensecrf, and the size of
  both lattices (vertices: crf's, and pydensecrf's counted independently), and the time per phase of one cold CRF.

Prints a markdown table with the worst and median speed-ups and writes everything as JSON (atomically).

steady and cold run crf as `crf.refine` does: the smoothness kernel in image space where it is small, lattice vertex
values in half precision where the CPU supports it (the presets' half_rows); --float-rows measures it with float
rows (DenseCRF2D's default, pydensecrf's precision).

    python benchmarks/crf_bench.py [--json out.json] [--images DIR_OR_FILES...] [--repeats 5] [--threads 1 2]
                                   [--float-rows]

--device cuda measures the GPU CRF (crf.refine(device="cuda"), host arrays in and out) against this package's CPU
CRF on all cores, same run: time per photo, speed-up, argmax agreement and largest probability difference, and the
time per phase of one warm GPU CRF (upload, unary, lattice, normalisation, splat, blur, slice, download; compare them
with the cost model in docs/crf.md). Where the GPU CRF cannot run it says why and exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

import crf
from runtime.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("DEEPLAB_REFERENCE") or ROOT.parent / "shared" / "reference")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def image_paths(items: list[Path]) -> list[Path]:
    """The image files named, directories expanded to the images they hold (sorted)."""
    paths: list[Path] = []
    for item in items:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise SystemExit(f"no such image or directory: {item}")
    if not paths:
        raise SystemExit(f"no images in {', '.join(map(str, items))}")
    return paths


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """RGB uint8 photo, centre-cropped to the aspect ratio and resized to width x height."""
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise SystemExit(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    scale = max(width / w, height / h)
    bgr = cv2.resize(bgr, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_AREA)
    y0, x0 = (bgr.shape[0] - height) // 2, (bgr.shape[1] - width) // 2
    return np.ascontiguousarray(bgr[y0:y0 + height, x0:x0 + width, ::-1])


def unary_for(args: argparse.Namespace) -> np.ndarray:
    probs = crf.utils.synthetic_probabilities(args.height, args.width, args.labels, seed=args.seed)
    return crf.utils.unary_from_softmax(probs)


def build(mod: Any, img: np.ndarray, unary: np.ndarray, preset: crf.Preset, drop_in: bool = False) -> Any:
    """The CRF as kazuto1011/deeplab-pytorch's libs/utils/crf.py builds it; with crf and not `drop_in`, refine's model
    (image-space smoothness kernel, the preset's vertex rows)."""
    h, w = img.shape[:2]
    d = mod.DenseCRF2D(w, h, unary.shape[0])
    options = {}
    if mod is crf and not drop_in:
        d.setHalfRows(preset.half_rows)
        options["lattice"] = False
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=preset.gaussian_sxy, compat=preset.gaussian_weight, **options)
    d.addPairwiseBilateral(sxy=preset.bilateral_sxy, srgb=preset.bilateral_srgb, rgbim=img,
                           compat=preset.bilateral_weight)
    return d


def timed_run(mod: Any, img: np.ndarray, unary: np.ndarray, preset: crf.Preset, iterations: int,
              drop_in: bool = False) -> tuple[float, np.ndarray]:
    """Seconds for set-up + inference, and the result (labels x pixels)."""
    t0 = time.perf_counter()
    q = np.asarray(build(mod, img, unary, preset, drop_in).inference(iterations))
    return time.perf_counter() - t0, q


def digest(q: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(q, dtype=np.float32).tobytes()).hexdigest()[:16]


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def half_rows_used(preset: crf.Preset, labels: int) -> bool:
    """Whether crf runs with half-precision vertex rows (asked for, and supported by this CPU)."""
    return preset.half_rows and crf.DenseCRF2D(8, 8, labels).setHalfRows(True)


def preset_for(args: argparse.Namespace) -> crf.Preset:
    return crf.PRESETS[args.preset].with_overrides(half_rows=False if args.float_rows else None)


def cold_probe(args: argparse.Namespace) -> None:
    """Subprocess mode: one CRF in this fresh process; prints its time, result digest and peak memory as JSON."""
    img = load_image(args.cold_probe, args.width, args.height)
    unary = unary_for(args)
    crf.set_num_threads(args.probe_threads)
    memory = Path("/proc/self/status").exists()
    if memory:
        try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        before = vm_kib("VmRSS")
    seconds, q = timed_run(crf, img, unary, preset_for(args), args.iterations)
    peak = (vm_kib("VmHWM") - before) / 1024 if memory else None
    print(json.dumps({"seconds": seconds, "digest": digest(q), "peak_mib": peak}))


def run_cold(args: argparse.Namespace, path: Path, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--cold-probe", str(path), "--probe-threads", str(threads),
           "--iterations", str(args.iterations), "--width", str(args.width), "--height", str(args.height),
           "--labels", str(args.labels), "--seed", str(args.seed), "--preset", args.preset,
           *(["--float-rows"] if args.float_rows else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference_lattice_vertices(features: np.ndarray) -> int:
    """Vertices of the permutohedral lattice of `features` (d x n), counted the way pydensecrf builds it (elevate,
    nearest remainder-0 point, simplex by ranking, d + 1 vertex keys per point), in numpy: an independent count of
    pydensecrf's lattice size (it does not report it). pydensecrf's SSE build also elevates a zero feature vector
    when n is not a multiple of 4 (see docs/crf.md)."""
    d, n = features.shape
    if n % 4:
        features = np.concatenate([features, np.zeros((d, 1), features.dtype)], axis=1)
    f = features.T.astype(np.float32)
    inv_std = np.float32(np.sqrt(2.0 / 3.0) * (d + 1))
    scale = np.array([inv_std / np.sqrt((i + 2) * (i + 1)) for i in range(d)], np.float32)
    cf = f * scale
    elevated = np.zeros((f.shape[0], d + 1), np.float32)
    tail = np.cumsum(cf[:, ::-1], axis=1)[:, ::-1]  # tail[:, j] = sum_{i >= j} cf[:, i]
    elevated[:, 0] = tail[:, 0]
    for j in range(1, d + 1):
        elevated[:, j] = (tail[:, j] if j < d else 0) - j * cf[:, j - 1]
    v = np.rint(elevated * np.float32(1.0 / (d + 1)))
    down = v * np.float32(d + 1)
    total = v.sum(axis=1).astype(np.int64)
    diff = elevated - down
    # Rank by descending remainder, ties to the later coordinate, in pydensecrf's pairwise order.
    lt = diff[:, :, None] < diff[:, None, :]
    later = np.triu(np.ones((d + 1, d + 1), bool), 1)
    rank = (lt & later).sum(axis=2) + (~lt.transpose(0, 2, 1) & later.T).sum(axis=2) + total[:, None]
    low, high = rank < 0, rank > d
    down = down + (d + 1) * low - (d + 1) * high
    rank = rank + (d + 1) * low - (d + 1) * high
    keys = []
    for r in range(d + 1):
        keys.append((down + np.where(rank <= d - r, r, r - (d + 1)))[:, :d].astype(np.int32))
    return len(np.unique(np.concatenate(keys), axis=0))


def lattice_sizes(img: np.ndarray, preset: crf.Preset) -> dict[str, int]:
    h, w = img.shape[:2]
    pos = crf.utils.create_pairwise_gaussian((preset.gaussian_sxy, preset.gaussian_sxy), (h, w))[::-1]
    bil = crf.utils.create_pairwise_bilateral((preset.bilateral_sxy,) * 2, (preset.bilateral_srgb,) * 3, img, chdim=2)
    bil = np.concatenate([bil[1::-1], bil[2:]])  # x, y, r, g, b as DenseCRF2D orders them
    return {"smoothness_pydensecrf": reference_lattice_vertices(pos),
            "bilateral_pydensecrf": reference_lattice_vertices(bil)}


def phases(img: np.ndarray, unary: np.ndarray, preset: crf.Preset, iterations: int, threads: int) -> dict[str, Any]:
    """Seconds per phase of one cold CRF (crf.profile_refine) and its lattices' sizes."""
    crf.clear_lattice_cache()
    probs = np.exp(-unary).reshape(unary.shape[0], *img.shape[:2])
    return crf.profile_refine(img, probs, iterations=iterations, preset=preset, threads=threads)


def markdown_table(rows: list[dict[str, Any]], threads: list[int], has_ref: bool) -> str:
    cols = ["image"]
    if has_ref:
        cols.append("pydensecrf")
    for t in threads:
        cols += [f"steady {t}t", f"cold {t}t"]
    cols.append(f"drop-in {threads[-1]}t")
    if has_ref:
        cols += ["agreement", "drop-in agreement"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def cell(r: dict[str, Any], key: str) -> str:
        ms = r[key + "_s"] * 1e3
        return f"{ms:.0f} ms ({r[key + '_speedup']:.2f}×)" if has_ref else f"{ms:.0f} ms"

    for r in rows:
        c = [r["image"]] + ([f"{r['pydensecrf_s'] * 1e3:.0f} ms"] if has_ref else [])
        for t in threads:
            c += [cell(r, f"steady_{t}"), cell(r, f"cold_{t}")]
        c.append(cell(r, "drop_in"))
        if has_ref:
            c += [f"{100 * r['agreement']:.2f} %", f"{100 * r['drop_in_agreement']:.2f} %"]
        lines.append("| " + " | ".join(c) + " |")
    if has_ref and len(rows) > 1:
        for name, fn in (("**worst**", min), ("**median**", statistics.median)):
            c = [name, ""]
            for key in [f"{kind}_{t}" for t in threads for kind in ("steady", "cold")] + ["drop_in"]:
                c.append(f"**{fn([r[f'{key}_speedup'] for r in rows]):.2f}×**")
            c += [f"{100 * fn([r[key] for r in rows]):.2f} %" for key in ("agreement", "drop_in_agreement")]
            lines.append("| " + " | ".join(c) + " |")
    return "\n".join(lines)


def phase_table(rows: list[dict[str, Any]]) -> str:
    keys = ["unary", "smoothness_lattice", "bilateral_lattice", "normalisation", "splat", "blur", "slice"]
    lines = ["| image | " + " | ".join(k.replace("_", " ") + " ms" for k in keys)
             + " | total ms | smoothness vertices | bilateral vertices (crf / pydensecrf) | pixels |",
             "|---|" + "---|" * (len(keys) + 4)]
    for r in rows:
        p, v = r["phases"], r["vertices"]
        lines.append(f"| {r['image']} | " + " | ".join(f"{p[k] * 1e3:.1f}" for k in keys)
                     + f" | {sum(p[k] for k in keys) * 1e3:.1f} | {v['smoothness']} / {v['smoothness_pydensecrf']}"
                     + f" | {v['bilateral']} / {v['bilateral_pydensecrf']} | {r['pixels']} |")
    return "\n".join(lines)


GPU_PHASES = ["upload", "unary", "lattice", "normalisation", "splat", "blur", "slice", "download"]


def gpu_bench(args: argparse.Namespace, paths: list[Path], images: list[np.ndarray]) -> int:
    """--device cuda: the GPU CRF against the CPU CRF (all cores) on every photo, and its time per phase."""
    ok, why = crf.gpu.cuda_status()
    if not ok:
        print(f"skipped: the GPU CRF cannot run here ({why})", file=sys.stderr)
        return 0
    preset = preset_for(args).with_overrides(iterations=args.iterations)
    params = crf.refine_params(preset)
    probs = np.exp(-unary_for(args)).reshape(args.labels, args.height, args.width).astype(np.float32)
    crf.refine(images[0], probs, preset=preset, device="cuda")  # warm-up: context, workspace
    rows = []
    for path, img in zip(paths, images):
        times: dict[str, list[float]] = {"cpu": [], "cuda": []}
        outs: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            for device in ("cpu", "cuda"):
                t0 = time.perf_counter()
                outs[device] = crf.refine(img, probs, preset=preset, device=device)
                times[device].append(time.perf_counter() - t0)
        cpu_s, gpu_s = statistics.median(times["cpu"]), statistics.median(times["cuda"])
        rows.append({"image": path.name, "cpu_s": cpu_s, "cuda_s": gpu_s, "speedup": cpu_s / gpu_s,
                     "agreement": float((outs["cpu"].argmax(0) == outs["cuda"].argmax(0)).mean()),
                     "max_abs_diff": float(np.abs(outs["cpu"] - outs["cuda"]).max()),
                     "phases": crf.gpu.profile_on_device(img, probs, params)})
    print(f"GPU dense CRF, {len(paths)} photos at {args.width}x{args.height}, {args.labels} labels, preset "
          f"{args.preset}, {args.iterations} iterations, host arrays in and out, median of {args.repeats}; CPU CRF on "
          f"{os.cpu_count()} cores\n")
    print("| image | CPU | GPU | speed-up | agreement | max abs diff |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image']} | {r['cpu_s'] * 1e3:.1f} ms | {r['cuda_s'] * 1e3:.2f} ms | {r['speedup']:.1f}x | "
              f"{100 * r['agreement']:.3f} % | {r['max_abs_diff']:.1e} |")
    speedups = [r["speedup"] for r in rows]
    print(f"| **worst / median** | | | **{min(speedups):.1f}x / {statistics.median(speedups):.1f}x** | | |")
    print("\nTime per phase of one warm GPU CRF (ms):\n")
    print("| image | " + " | ".join(GPU_PHASES) + " | bilateral vertices |\n|---|" + "---|" * (len(GPU_PHASES) + 1))
    for r in rows:
        ph = r["phases"]
        print(f"| {r['image']} | " + " | ".join(f"{ph[k] * 1e3:.2f}" for k in GPU_PHASES)
              + f" | {ph['bilateral_vertices']} |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"device": "cuda", "rows": rows}, indent=1))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, nargs="+", default=[REFERENCE / "images"],
                   help="image files or directories (default: ../shared/reference/images)")
    p.add_argument("--width", type=int, default=500, help="synthetic image width when no image is found (default 500)")
    p.add_argument("--height", type=int, default=375, help="synthetic image height (default 375)")
    p.add_argument("--labels", type=int, default=21, help="classes of the synthetic probabilities (default 21)")
    p.add_argument("--preset", default="voc", choices=sorted(crf.PRESETS), help="CRF preset (default voc)")
    p.add_argument("--iterations", type=int, default=10, help="mean-field iterations (default 10)")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="thread counts to measure (default: 1 and all cores)")
    p.add_argument("--repeats", type=int, default=5, help="runs per configuration and image, medians shown (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic probabilities (default 0)")
    p.add_argument("--float-rows", action="store_true", help="crf's lattice vertex values in float, not half")
    p.add_argument("--no-reference", action="store_true", help="skip pydensecrf")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda: the GPU CRF against the CPU CRF, with its time per phase")
    p.add_argument("--cold-probe", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--probe-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cold_probe:
        cold_probe(args)
        return 0

    cores = os.cpu_count() or 1
    threads = args.threads or sorted({1, cores})
    paths = image_paths(args.images)
    images = [load_image(path, args.width, args.height) for path in paths]
    if args.device == "cuda":
        return gpu_bench(args, paths, images)
    unary = unary_for(args)
    preset = preset_for(args)
    ref_mod = None
    if not args.no_reference:
        try:
            import pydensecrf.densecrf as ref_mod
        except ImportError:
            print("pydensecrf is not installed: measuring this package only", file=sys.stderr)

    load_before = os.getloadavg()
    steady: dict[tuple[str, int, int], list[float]] = {}
    cold: dict[tuple[int, int], list[dict[str, Any]]] = {}
    outputs: dict[tuple[str, int, int], np.ndarray] = {}
    default_threads = crf.get_num_threads()
    for drop_in in (False, True):  # warm-up: thread pool, buffers, smoothness lattice
        build(crf, images[0], unary, preset, drop_in).inference(1)
    for rep in range(args.repeats):  # interleaved, so every configuration sees the same machine load
        for i, (path, img) in enumerate(zip(paths, images)):
            print(f"\rrepeat {rep + 1}/{args.repeats}, image {i + 1}/{len(paths)} ", end="", file=sys.stderr)
            configs: list[tuple[str, int]] = [("pydensecrf", 1)] if ref_mod else []
            configs += [("crf", t) for t in threads] + [("drop-in", threads[-1])]
            for impl, t in configs:
                if impl != "pydensecrf":
                    crf.set_num_threads(t)
                seconds, q = timed_run(ref_mod if impl == "pydensecrf" else crf, img, unary, preset, args.iterations,
                                       drop_in=impl == "drop-in")
                steady.setdefault((impl, t, i), []).append(seconds)
                outputs[(impl, t, i)] = q
            for t in threads:
                cold.setdefault((t, i), []).append(run_cold(args, path, t))
    print(file=sys.stderr)
    crf.set_num_threads(default_threads)
    load_after = os.getloadavg()

    med: Callable[[list[float]], float] = statistics.median
    rows: list[dict[str, Any]] = []
    for i, (path, img) in enumerate(zip(paths, images)):
        row: dict[str, Any] = {"image": path.name, "pixels": img.shape[0] * img.shape[1]}
        for t in threads:
            row[f"steady_{t}_s"] = med(steady[("crf", t, i)])
            row[f"cold_{t}_s"] = med([c["seconds"] for c in cold[(t, i)]])
            row[f"cold_{t}_peak_mib"] = max((c["peak_mib"] or 0.0) for c in cold[(t, i)])
            # Cold and steady CRFs, on any thread count, must give the same bits.
            row[f"cold_{t}_same_result"] = all(c["digest"] == digest(outputs[("crf", threads[0], i)]) for c in cold[(t, i)])
        row["threads_same_result"] = len({digest(outputs[("crf", t, i)]) for t in threads}) == 1
        row["drop_in_s"] = med(steady[("drop-in", threads[-1], i)])
        if ref_mod is not None:
            ref_s = med(steady[("pydensecrf", 1, i)])
            row["pydensecrf_s"] = ref_s
            for key in [f"{kind}_{t}" for t in threads for kind in ("steady", "cold")] + ["drop_in"]:
                row[f"{key}_speedup"] = ref_s / row[f"{key}_s"]
            ref = outputs[("pydensecrf", 1, i)].argmax(0)
            row["agreement"] = float((outputs[("crf", threads[-1], i)].argmax(0) == ref).mean())
            row["drop_in_agreement"] = float((outputs[("drop-in", threads[-1], i)].argmax(0) == ref).mean())
        row["phases"] = phases(img, unary, preset, args.iterations, threads[-1])
        row["vertices"] = {"smoothness": row["phases"]["smoothness_vertices"],
                           "bilateral": row["phases"]["bilateral_vertices"], **lattice_sizes(img, preset)}
        rows.append(row)

    vertex_rows = "half precision" if half_rows_used(preset, args.labels) else "float"
    print(f"dense CRF, {len(paths)} photos at {args.width}x{args.height}, {args.labels} labels, preset {args.preset}, "
          f"{args.iterations} iterations, set-up included, median of {args.repeats}"
          f", crf's lattice vertex rows in {vertex_rows}; "
          f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {cores} cores\n")
    print(markdown_table(rows, threads, ref_mod is not None))
    print(f"\nTime per phase of one cold CRF ({threads[-1]} threads), and the lattices' sizes:\n")
    print(phase_table(rows))
    if not all(r["threads_same_result"] and all(r[f"cold_{t}_same_result"] for t in threads) for r in rows):
        print("\nWARNING: results differ between thread counts or between cold and steady runs", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps({
            "images": [str(p) for p in paths], "width": args.width, "height": args.height, "labels": args.labels,
            "preset": args.preset, "vertex_rows": vertex_rows, "iterations": args.iterations,
            "repeats": args.repeats, "threads": threads,
            "cores": cores, "load_average": {"before": load_before, "after": load_after}, "results": rows,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
