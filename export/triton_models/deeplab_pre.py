"""Triton Python-backend model ``deeplab_pre``: IMAGE (N×H×W×3 uint8 BGR) -> INPUT, the network's input in the type
its config declares, by the toolkit's own preprocessing (runtime.triton_serving.preprocess_batch). Written by
``python -m export triton``."""
import triton_python_backend_utils as pb_utils

from runtime.backends.triton import tensor_dtype
from runtime.triton_serving import (from_triton, model_meta, model_parameters, parse_pad_to, preprocess_batch,
                                     to_triton)


def _output(name, array):
    """A response tensor (see runtime.triton_serving.to_triton)."""
    return to_triton(pb_utils.Tensor, name, array)


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args["model_config"])
        self.meta = model_meta(parameters)
        self.pad_to = parse_pad_to(parameters.get("pad_to", ""))
        self.dtype = tensor_dtype(args["model_config"], "INPUT")  # the network's input type

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                images = from_triton(pb_utils.get_input_tensor_by_name(request, "IMAGE"))
                batch = preprocess_batch(images, self.meta, self.pad_to, self.dtype)
                responses.append(pb_utils.InferenceResponse([_output("INPUT", batch)]))
            except Exception as e:  # noqa: BLE001 - one bad request fails alone, with its reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"deeplab_pre: {e}")))
        return responses
