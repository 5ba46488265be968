#!/usr/bin/env python3
"""Dense CRF benchmark: this package (`crf`) against pydensecrf, same inputs, one process.

Input: a real photo cropped/resized to 500x375 (../shared/reference/images, or --image), 21 labels
of DCNN-like soft probabilities (a smooth random label map at 1/8 resolution, upsampled bilinearly,
softmax), the DeepLab v2 VOC preset. For 5 and 10 iterations, with 1 thread and all threads (and
`crf-cold`: 1 thread, without the smoothness lattice kept from the previous CRF of the same size): median
set-up and inference times over the repeats (runs interleaved so both see the same machine load),
the marginal cost of one iteration, the speed-up over pydensecrf, the argmax agreement with it, and
the peak memory of each (measured in a fresh subprocess from /proc/self/status VmHWM, since the
C++ allocations are invisible to tracemalloc).

    python benchmarks/crf_bench.py [--json out.json] [--repeats 5] [--image photo.jpg]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import crf
from runtime.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("DEEPLAB_REFERENCE") or ROOT.parent / "shared" / "reference")
DEFAULT_IMAGE = REFERENCE / "images" / "messi5.jpg"


def load_image(path: Path | None, width: int, height: int) -> tuple[np.ndarray, str]:
    """RGB uint8 photo, centre-cropped to the aspect ratio and resized to width x height."""
    if path is None or not path.is_file():
        rng = np.random.default_rng(0)  # no photo available: a smooth synthetic image instead
        y, x = np.mgrid[0:height, 0:width]
        img = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], -1)
        img = img + rng.integers(0, 8, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8), "synthetic"
    import cv2

    bgr = cv2.imread(str(path))
    if bgr is None:
        raise SystemExit(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    scale = max(width / w, height / h)
    bgr = cv2.resize(bgr, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_AREA)
    y0, x0 = (bgr.shape[0] - height) // 2, (bgr.shape[1] - width) // 2
    return np.ascontiguousarray(bgr[y0:y0 + height, x0:x0 + width, ::-1]), path.name


def build(mod: Any, img: np.ndarray, unary: np.ndarray, preset: crf.Preset) -> Any:
    h, w = img.shape[:2]
    d = mod.DenseCRF2D(w, h, unary.shape[0])
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=preset.gaussian_sxy, compat=preset.gaussian_weight)
    d.addPairwiseBilateral(sxy=preset.bilateral_sxy, srgb=preset.bilateral_srgb, rgbim=img,
                           compat=preset.bilateral_weight)
    return d


def timed_run(mod: Any, img: np.ndarray, unary: np.ndarray, preset: crf.Preset, iterations: int,
              clock: Callable[[], float] = time.perf_counter) -> tuple[float, float, np.ndarray]:
    t0 = clock()
    d = build(mod, img, unary, preset)
    t1 = clock()
    q = np.asarray(d.inference(iterations))
    t2 = clock()
    return t1 - t0, t2 - t1, q


def peak_memory_probe(args: argparse.Namespace) -> None:
    """Subprocess mode: one run, then print the peak resident memory it added (MiB) as JSON."""
    img, _ = load_image(args.image, args.width, args.height)
    probs = crf.utils.synthetic_probabilities(args.height, args.width, args.labels, seed=args.seed)
    unary = crf.utils.unary_from_softmax(probs)
    mod: Any = crf
    if args.probe == "pydensecrf":
        import pydensecrf.densecrf as mod
    else:
        crf.set_num_threads(args.probe_threads)
    status = Path("/proc/self/status")

    def kib(field: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/self/status")

    try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = kib("VmRSS")
    timed_run(mod, img, unary, crf.PRESETS[args.preset], args.probe_iterations)
    print(json.dumps({"peak_mib": (kib("VmHWM") - before) / 1024}))


def peak_memory(args: argparse.Namespace, impl: str, threads: int, iterations: int) -> float | None:
    if not Path("/proc/self/status").exists():
        return None
    cmd = [sys.executable, __file__, "--probe", impl, "--probe-threads", str(threads), "--probe-iterations",
           str(iterations), "--width", str(args.width), "--height", str(args.height), "--labels", str(args.labels),
           "--seed", str(args.seed), "--preset", args.preset]
    if args.image is not None:
        cmd += ["--image", str(args.image)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE if DEFAULT_IMAGE.is_file() else None)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--labels", type=int, default=21)
    p.add_argument("--preset", default="voc", choices=sorted(crf.PRESETS))
    p.add_argument("--iterations", type=int, nargs="+", default=[5, 10])
    p.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 and all cores")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: CPU time of the calling thread, 1 thread only (robust to other load, which "
                        "only steals time; caches are still shared)")
    p.add_argument("--no-reference", action="store_true", help="skip pydensecrf")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--probe", choices=["crf", "crf-cold", "pydensecrf"], help=argparse.SUPPRESS)
    p.add_argument("--probe-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--probe-iterations", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.probe:
        peak_memory_probe(args)
        return 0

    all_threads = os.cpu_count() or 1
    threads = [1] if args.clock == "cpu" else args.threads or sorted({1, all_threads})
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    img, image_name = load_image(args.image, args.width, args.height)
    probs = crf.utils.synthetic_probabilities(args.height, args.width, args.labels, seed=args.seed)
    unary = crf.utils.unary_from_softmax(probs)
    preset = crf.PRESETS[args.preset]
    ref_mod = None
    if not args.no_reference:
        try:
            import pydensecrf.densecrf as ref_mod
        except ImportError:
            print("pydensecrf is not installed: measuring this package only", file=sys.stderr)

    load_before = os.getloadavg()
    # crf-cold: every run builds both lattices (the smoothness lattice cache is cleared first); the
    # crf rows reuse the smoothness lattice of the previous run, as for a video or same-sized images.
    configs: list[tuple[str, int]] = (([("pydensecrf", 1)] if ref_mod else []) + [("crf-cold", 1)]
                                      + [("crf", t) for t in threads])
    times: dict[tuple[str, int, int], list[tuple[float, float]]] = {}
    outputs: dict[tuple[str, int, int], np.ndarray] = {}
    default_threads = crf.get_num_threads()
    build(crf, img, unary, preset).inference(1)  # warm-up (thread pool, page faults)
    for _ in range(args.repeats):  # interleaved, so every configuration sees the same machine load
        for impl, t in configs:
            mod = ref_mod if impl == "pydensecrf" else crf
            if mod is crf:
                crf.set_num_threads(t)
            for it in args.iterations:
                if impl == "crf-cold":
                    crf.clear_lattice_cache()
                setup, infer, q = timed_run(mod, img, unary, preset, it, clock)
                times.setdefault((impl, t, it), []).append((setup, infer))
                outputs[(impl, t, it)] = q
    crf.set_num_threads(default_threads)
    load_after = os.getloadavg()

    rows: list[dict[str, Any]] = []
    med: Callable[[list[float]], float] = statistics.median
    for impl, t in configs:
        for it in args.iterations:
            runs = times[(impl, t, it)]
            row = {"impl": impl, "threads": t, "iterations": it, "setup_s": med([s for s, _ in runs]),
                   "inference_s": med([i for _, i in runs]), "total_s": med([s + i for s, i in runs]),
                   "repeats": len(runs)}
            if ref_mod is not None:
                ref = outputs[("pydensecrf", 1, it)]
                row["agreement"] = float((outputs[(impl, t, it)].argmax(0) == ref.argmax(0)).mean())
                row["speedup"] = med([s + i for s, i in times[("pydensecrf", 1, it)]]) / row["total_s"]
            rows.append(row)
    if len(args.iterations) >= 2:  # marginal cost of one iteration, from the two iteration counts
        lo, hi = min(args.iterations), max(args.iterations)
        for impl, t in configs:
            per_it = (med([i for _, i in times[(impl, t, hi)]]) - med([i for _, i in times[(impl, t, lo)]])) / (hi - lo)
            for row in rows:
                if row["impl"] == impl and row["threads"] == t:
                    row["per_iteration_s"] = per_it
    if not args.no_memory:
        for impl, t in configs:
            peak = peak_memory(args, impl, t, max(args.iterations))
            for row in rows:
                if row["impl"] == impl and row["threads"] == t:
                    row["peak_memory_mib"] = peak

    print(f"dense CRF, {args.width}x{args.height} {image_name}, {args.labels} labels, preset {args.preset}, "
          f"median of {args.repeats}, {args.clock} clock; load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {all_threads} cores")
    header = f"{'impl':<11}{'thr':>4}{'iter':>5}{'setup ms':>10}{'infer ms':>10}{'total ms':>10}{'ms/iter':>9}" \
             f"{'speed-up':>10}{'agree %':>9}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        def fmt(key: str, scale: float, spec: str, r: dict = r) -> str:
            v = r.get(key)
            return format(v * scale, spec) if v is not None else "-"
        print(f"{r['impl']:<11}{r['threads']:>4}{r['iterations']:>5}{fmt('setup_s', 1e3, '.1f'):>10}"
              f"{fmt('inference_s', 1e3, '.1f'):>10}{fmt('total_s', 1e3, '.1f'):>10}"
              f"{fmt('per_iteration_s', 1e3, '.1f'):>9}{fmt('speedup', 1, '.2f') + 'x':>10}"
              f"{fmt('agreement', 100, '.3f'):>9}{fmt('peak_memory_mib', 1, '.0f'):>10}")
    if args.json:
        write_json_atomic(args.json, {
            "image": image_name, "width": args.width, "height": args.height, "labels": args.labels,
            "preset": args.preset, "repeats": args.repeats, "cores": all_threads, "clock": args.clock,
            "load_average": {"before": load_before, "after": load_after}, "results": rows,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
