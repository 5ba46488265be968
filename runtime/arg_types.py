"""argparse types for the CLIs' numeric options: a bad value is a usage error (exit 2) that names the flag, as
argparse does for ``invalid int value``."""
from __future__ import annotations

import argparse
from typing import Callable


def _number(kind: type, low: float, low_open: bool = False, high: float | None = None) -> Callable[[str], float]:
    bound = f"> {low:g}" if low_open else f"≥ {low:g}"
    if high is not None:
        bound = f"in ({low:g}, {high:g}]" if low_open else f"in [{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if value < low or (low_open and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


positive_int = _number(int, 1)            # ≥ 1: frames, queue sizes, batches
non_negative_int = _number(int, 0)        # ≥ 0: iterations, 0 = unbounded in-flight frames
non_negative_float = _number(float, 0.0)  # ≥ 0: waiting windows
positive_float = _number(float, 0.0, low_open=True)   # > 0: durations, timeouts
fraction = _number(float, 0.0, low_open=True, high=1.0)  # (0, 1]: the CRF's scale
