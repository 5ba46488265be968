"""CTest: deeplab_segment (C++) turns the logits that runtime/infer.py computed into the same masks as runtime/infer.py.

    python compare_with_python.py DEEPLAB_SEGMENT WORK_DIR [--source VIDEO] [--frames N]

1. `python -m runtime.infer --source demo --masks WORK/py` (the Python runtime, demo model, default CRF settings)
   writes palette masks;
2. `examples/cpp/dump_logits.py` writes the same frames' network logits (<frame>.npy) and meta.json;
3. `deeplab_segment --source <the same video> --logits WORK/logits --masks WORK/cpp` runs the C++ chain on them;
4. every mask must be identical (palette indices). Exit 77 (CTest's skip) when the Python runtime or the demo model
   and video are not available here.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
SKIP = 77


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("segment")
    p.add_argument("work")
    p.add_argument("--source", default="demo")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--model", default="demo")
    args = p.parse_args()
    try:
        from PIL import Image
        import runtime.infer  # noqa: F401 - the Python runtime must be importable
        from runtime.named import NamedFileError, resolve
    except ImportError as e:
        print(f"SKIP: the Python runtime is not importable ({e})")
        return SKIP
    try:
        source = str(resolve(args.source, "video"))
        resolve(args.model, "model")
    except NamedFileError as e:
        print(f"SKIP: the demo model or video is not available ({e})")
        return SKIP

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    py_masks, cpp_masks, logits = work / "py", work / "cpp", work / "logits"
    frames = str(args.frames)
    steps = [
        [sys.executable, "-m", "runtime.infer", "--source", source, "--masks", str(py_masks), "--model", args.model,
         "--max-frames", frames, "--no-progress"],
        [sys.executable, str(Path(__file__).resolve().parents[1] / "dump_logits.py"), "--source", source,
         "--model", args.model, "--out", str(logits), "--max-frames", frames],
        [args.segment, "--source", source, "--logits", str(logits), "--masks", str(cpp_masks), "--max-frames", frames],
    ]
    for command in steps:
        if subprocess.run(command, cwd=REPO).returncode != 0:
            print(f"FAIL: {' '.join(command)}")
            return 1

    names = sorted(p.name for p in py_masks.glob("*.png"))
    if not names:
        print("FAIL: runtime/infer.py wrote no masks")
        return 1
    failures = 0
    for name in names:
        cpp = cpp_masks / name
        if not cpp.exists():
            print(f"FAIL {name}: no C++ mask")
            failures += 1
            continue
        a, b = Image.open(py_masks / name), Image.open(cpp)
        la, lb = np.asarray(a), np.asarray(b)
        same = la.shape == lb.shape and np.array_equal(la, lb) and a.mode == b.mode == "P"
        same = same and a.getpalette()[:768] == b.getpalette()[:768]
        agree = (la == lb).mean() * 100 if la.shape == lb.shape else 0.0
        print(f"{'ok  ' if same else 'FAIL'} {name}: {la.shape[1]}x{la.shape[0]}, {agree:.3f}% of pixels equal")
        failures += not same
    extra = sorted({p.name for p in cpp_masks.glob("*.png")} - set(names))
    if extra:
        print(f"FAIL: masks only the C++ example wrote: {extra[:5]}")
        failures += 1
    print(f"{len(names)} masks compared: {'all identical' if not failures else f'{failures} differ'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
