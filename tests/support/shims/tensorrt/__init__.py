"""``import tensorrt`` in a subprocess under test: the stand-in for the release in $TRT_STANDIN_VERSION."""
import os
import sys

from trt_standin.tensorrt import make_module

sys.modules[__name__] = make_module(os.environ["TRT_STANDIN_VERSION"])
