#!/usr/bin/env python3
"""Cost model of the GPU dense CRF (crf/src/gpu/engine.inl): bytes each phase moves through memory, and the time that
predicts on a memory system of a given bandwidth (the CRF's phases are gathers and streams with a few flops per byte,
so memory traffic bounds them). Prints a markdown table per image size; `benchmarks/crf_bench.py --device cuda`
measures the same phases on a GPU to compare with it.

Counted per phase, as the functors read and write (VOC preset: the image-space smoothness Gaussian and the 5-d
bilateral lattice; L labels, n pixels, E = 6 (n + 1) lattice entries, m = rho n vertices, half-precision vertex rows):
each array streamed once, gathered rows counted once per use (an upper bound where the cache keeps rows between
uses), the radix sort as ceil(key bits / 8) passes reading and writing keys and values, the neighbour search as
log2(m) probes of which the last `uncached_probes` miss the cache (32-byte sectors).

    python benchmarks/crf_gpu_cost_model.py [--labels 21] [--rho 1.5] [--efficiency 0.7]
"""

from __future__ import annotations

import argparse
import math

SYSTEMS = {"Jetson Orin (204.8 GB/s)": 204.8e9, "RTX 4090-class (1008 GB/s)": 1008e9,
           "H100 SXM-class (3350 GB/s)": 3350e9}


def phase_bytes(n: int, labels: int, rho: float, key_bits: int = 48, uncached_probes: int = 6) -> dict[str, float]:
    """Bytes per phase: per frame (unary, lattice, normalisation) and per iteration (column, splat, blur, slice)."""
    d1 = 6  # bilateral: d + 1 vertices per point
    e = d1 * (n + 1)
    m = rho * n
    q = 4 * n * labels  # float rows of the pixels (q, unary, the column pass)
    h = 2 * m * labels  # half-precision vertex rows
    sort_passes = math.ceil(key_bits / 8)
    search = d1 * m * (8 + uncached_probes * 32)
    lattice = (12 * e  # elevate: keys + barycentric weights
               + sort_passes * 2 * 12 * e  # radix sort: keys (8) + entry ids (4), read and written per pass
               + 12 * e + 8 * e  # heads, scan
               + 36 * e  # vertices: keys, ids, weights in; offsets, splat entries out
               + 4 * e  # slice weights
               + search + 8 * d1 * m)  # neighbours: search, successor links
    normalisation = (8 * e + 4 * m) + d1 * (3 * 4 * m + 8 * m) + (8 * e + 4 * n) + 8 * n + 12 * e
    return {
        "upload + unary": 3 * n + 4 * n * labels + q,  # image, probabilities in; -log P rows out
        "lattice": lattice,
        "normalisation": normalisation,
        "column pass": 2 * q,  # q in, the column pass out
        "splat": 8 * e + 4 * m + d1 * q + h,  # entries, each entry's q row, vertex rows out
        "blur (6 axes)": d1 * (3 * h + h + 8 * m),  # own + two neighbours' rows in, rows out, neighbour ids
        "slice + softmax": 2 * q + 8 * e + d1 * h / rho + q,  # unary, columns (row taps cached), entries, vertex rows; q out
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=int, default=21, help="labels per pixel (default 21, PASCAL VOC)")
    p.add_argument("--rho", type=float, default=1.5, help="bilateral vertices per pixel (photos: 0.74 to 2.49)")
    p.add_argument("--efficiency", type=float, default=0.7, help="achieved fraction of the peak bandwidth")
    args = p.parse_args()
    per_iteration = ("column pass", "splat", "blur (6 axes)", "slice + softmax")
    for w, h in ((500, 375), (1280, 720)):
        b = phase_bytes(w * h, args.labels, args.rho)
        it = sum(b[k] for k in per_iteration)
        frame = {k: v for k, v in b.items() if k not in per_iteration}
        print(f"\n{w}x{h}, {args.labels} labels, {args.rho} bilateral vertices per pixel, "
              f"{args.efficiency:.0%} of peak bandwidth\n")
        print("| phase | MB | " + " | ".join(f"{s} ms" for s in SYSTEMS) + " |")
        print("|---|---|" + "---|" * len(SYSTEMS))
        rows = list(frame.items()) + [(k, b[k]) for k in per_iteration] + [("**one iteration**", it)]
        for iters in (10, 3):
            rows.append((f"**frame, {iters} iterations**", sum(frame.values()) + iters * it))
        for name, nbytes in rows:
            times = " | ".join(f"{nbytes / (args.efficiency * bw) * 1e3:.2f}" for bw in SYSTEMS.values())
            print(f"| {name} | {nbytes / 1e6:.1f} | {times} |")


if __name__ == "__main__":
    main()
