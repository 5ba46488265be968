"""``cuda.bindings`` in a subprocess under test: stand-in ``runtime`` and ``driver`` (trt_standin.cuda) and
cuda-python's own ``nvrtc`` (compilation needs no GPU). The real package's folder is appended to ``__path__`` so its
compiled submodules load; the real ``driver`` is imported first because the real ``nvrtc`` links against it."""
import importlib
import os
import sys

for _entry in sys.path:
    _real = os.path.join(_entry, "cuda", "bindings")
    if os.path.abspath(_real) != os.path.dirname(os.path.abspath(__file__)) and os.path.isfile(
            os.path.join(_real, "__init__.py")):
        __path__.append(_real)
        break

importlib.import_module(__name__ + ".driver")
nvrtc = importlib.import_module(__name__ + ".nvrtc")

from trt_standin import cuda as _cuda  # noqa: E402

runtime = _cuda.make_runtime()
driver = _cuda.make_driver()
sys.modules[__name__ + ".runtime"] = runtime
sys.modules[__name__ + ".driver"] = driver
