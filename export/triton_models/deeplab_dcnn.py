"""Triton Python-backend model ``deeplab_dcnn`` (the python variant): the network run by the toolkit's own runtime
backend (runtime.backends.open_backend: ONNX Runtime, or TensorRT for an engine), for servers without Triton's
TensorRT or ONNX Runtime backends. Written by ``python -m export triton``."""
import os

import triton_python_backend_utils as pb_utils

from runtime.backends import open_backend
from runtime.backends.triton import tensor_dtype
from runtime.triton_serving import from_triton, infer_grouped, model_meta, model_parameters, to_triton


def _output(name, array):
    """A response tensor (see runtime.triton_serving.to_triton)."""
    return to_triton(pb_utils.Tensor, name, array)


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args["model_config"])
        meta = model_meta(parameters)
        path = os.path.join(args["model_repository"], args["model_version"], parameters["model_filename"])
        self.backend = open_backend(path, backend=parameters.get("runtime_backend", "auto") or "auto")
        self.input_name, self.output_name = meta.input_name, meta.output_name
        self.output_dtype = tensor_dtype(args["model_config"], meta.output_name)  # the runtime returns float32

    def execute(self, requests):
        try:
            batches = [from_triton(pb_utils.get_input_tensor_by_name(r, self.input_name)) for r in requests]
            results = infer_grouped(self.backend.infer, batches)
        except Exception as e:  # noqa: BLE001 - the whole batch failed (the runtime's error says why)
            error = pb_utils.TritonError(f"deeplab_dcnn: {e}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        return [pb_utils.InferenceResponse([_output(self.output_name, out.astype(self.output_dtype, copy=False))])
                for out in results]

    def finalize(self):
        self.backend.close()
