"""Accuracy and CPU latency of the demo model (or any FP32 ONNX) in FP32, FP16 and INT8, on a held-out generated set.

    python benchmarks/precision_bench.py                          # demo model, calib_data/, 100 held-out scenes
    python benchmarks/precision_bench.py --model m.onnx --calib DIR --data VOC_DIR --json out.json

Makes the FP16 ONNX (`export fp16`) and the INT8 Q/DQ ONNX (`export int8`, calibrated on --calib), then runs
`export compare` (runtime.Segmenter, onnxruntime CPU) over the held-out set: argmax agreement with FP32, logit error,
mIoU and per-class IoU deltas, median latency. Without --data it generates --count scenes with --seed (11: used neither
for training, the test set, calibration nor the video). A table on stdout, JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.dataset import write_dataset
from export.compare import compare, format_classes, format_summary
from export.fp16 import convert
from export.int8 import DEFAULT_METHOD, METHODS, quantize
from runtime import named
from runtime.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo", help="FP32 ONNX (default: the demo model)")
    p.add_argument("--calib", default=str(REPO / "calib_data"), help="calibration images (default calib_data/)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help="INT8 calibration method (default %(default)s)")
    p.add_argument("--data", help="VOC-layout held-out set (default: generate one)")
    p.add_argument("--count", type=int, default=100, help="held-out scenes to generate (default 100)")
    p.add_argument("--seed", type=int, default=11, help="held-out generator seed (default 11)")
    p.add_argument("--size", default="384x288", help="held-out scene size (default 384x288, like the demo video)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)

    args.model = str(named.resolve(args.model, "model"))
    with tempfile.TemporaryDirectory(prefix="precision-bench-") as tmp:
        tmp_dir = Path(tmp)
        data = args.data
        if data is None:
            w, h = (int(v) for v in args.size.lower().split("x"))
            data = tmp_dir / "heldout"
            write_dataset(data, args.count, args.seed, w, h, val_fraction=1.0)
        fp16, int8 = tmp_dir / "model.fp16.onnx", tmp_dir / "model.int8.onnx"
        start = time.perf_counter()
        convert(args.model, fp16)
        t_fp16 = time.perf_counter() - start
        start = time.perf_counter()
        report = quantize(args.model, args.calib, int8, method=args.method)
        t_int8 = time.perf_counter() - start
        stats, names = compare([args.model, str(fp16), str(int8)], data, backend="onnxruntime")
    for s, label in zip(stats, ("fp32", "fp16", "int8")):
        s.model = f"{label} ({Path(s.model).name})"
    print(f"{len(stats[0].latencies_ms)} held-out images; FP16 conversion {t_fp16:.1f} s, INT8 "
          f"({args.method}, {report.calibration_inputs} calibration images) {t_int8:.1f} s")
    print(format_summary(stats))
    print()
    print(format_classes(stats, names))
    if args.json:
        out = {"model": args.model, "calib": args.calib, "method": args.method, "data": str(args.data or "generated"),
               "seed": args.seed, "count": args.count, "fp16_seconds": t_fp16, "int8_seconds": t_int8,
               "models": [s.to_dict(names, stats[0]) for s in stats]}
        atomic_write_text(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
