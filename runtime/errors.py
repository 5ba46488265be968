"""The line between a bad frame and a broken run.

A :class:`FrameError` concerns one frame (an unusable image, a backend that failed on this input): the pipeline
counts it and goes on with the next frame. Any other exception (a sink that cannot write, a device that is gone, a
bug such as a shape mismatch) stops the pipeline and reaches the caller.
"""
from __future__ import annotations


class FrameError(Exception):
    """This frame could not be processed; the next one may be."""
