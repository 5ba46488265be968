"""DeepLab v2 runtime: backends (ONNX Runtime, TensorRT, Triton), fused upsampling, dense CRF, video pipeline.

Needs no torch. ``from runtime import Segmenter``; the command line is ``python -m runtime.infer`` (``deeplab-infer``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Segmenter"]


def __getattr__(name: str) -> Any:  # lazy: `import runtime.metadata` stays light
    if name == "Segmenter":
        from runtime.segmenter import Segmenter
        return Segmenter
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
