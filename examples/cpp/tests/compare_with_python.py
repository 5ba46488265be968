"""CTest: deeplab_segment (C++) turns the logits that runtime/infer.py computed into the same masks as runtime/infer.py,
with every CRF setting the two CLIs offer.

    python compare_with_python.py DEEPLAB_SEGMENT WORK_DIR [--source VIDEO] [--frames N]

1. `examples/cpp/dump_logits.py` writes the frames' network logits (<frame>.npy) and meta.json once;
2. for each entry of SETTINGS (CRF flags both CLIs take): `python -m runtime.infer --source demo --masks WORK/<n>/py
   FLAGS` (the Python runtime, demo model) and `deeplab_segment --source <the same video> --logits WORK/logits
   --masks WORK/<n>/cpp FLAGS` (the C++ chain on those logits) write palette masks;
3. every mask must be identical (palette indices). Exit 77 (CTest's skip) when the Python runtime or the demo model
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
# The CRF flags of runtime/infer.py and deeplab_segment: the video default, each option alone, warm start with a scale.
SETTINGS = [
    [],
    ["--crf-scale", "0.5"],
    ["--crf-iters", "2"],
    ["--warm-start"],
    ["--warm-start", "--crf-scale", "0.5"],
    ["--crf-preset", "pydensecrf"],
    ["--crf-preset", "voc", "--crf-iters", "4", "--crf-scale", "0.75"],
    ["--no-crf"],
]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("segment")
    p.add_argument("work")
    p.add_argument("--source", default="demo")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--model", default="demo")
    args = p.parse_args()
    try:
        import PIL.Image  # noqa: F401 - compare_masks reads the masks with it
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
    logits, frames = work / "logits", str(args.frames)
    if not run([sys.executable, str(Path(__file__).resolve().parents[1] / "dump_logits.py"), "--source", source,
                "--model", args.model, "--out", str(logits), "--max-frames", frames]):
        return 1
    failures = 0
    for n, flags in enumerate(SETTINGS):
        py_masks, cpp_masks = work / str(n) / "py", work / str(n) / "cpp"
        print(f"CRF flags: {' '.join(flags) or '(defaults)'}")
        if not (run([sys.executable, "-m", "runtime.infer", "--source", source, "--masks", str(py_masks), "--model",
                     args.model, "--max-frames", frames, "--no-progress", *flags])
                and run([args.segment, "--source", source, "--logits", str(logits), "--masks", str(cpp_masks),
                         "--max-frames", frames, *flags])):
            return 1
        failures += compare_masks(py_masks, cpp_masks)
    print(f"{len(SETTINGS)} CRF settings: {'all masks identical' if not failures else f'{failures} masks differ'}")
    return 1 if failures else 0


def run(command: list[str]) -> bool:
    ok = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL).returncode == 0
    if not ok:
        print(f"FAIL: {' '.join(command)}")
    return ok


def compare_masks(py_masks: Path, cpp_masks: Path) -> int:
    """How many masks differ (palette indices and palette), a missing or extra mask counting as one."""
    from PIL import Image

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
        if not same:
            print(f"FAIL {name}: {la.shape[1]}x{la.shape[0]}, {agree:.3f}% of pixels equal")
        failures += not same
    extra = sorted({p.name for p in cpp_masks.glob("*.png")} - set(names))
    if extra:
        print(f"FAIL: masks only the C++ example wrote: {extra[:5]}")
        failures += 1
    print(f"  {len(names)} masks compared: {'identical' if not failures else f'{failures} differ'}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
