"""Triton Python-backend model ``deeplab_post``: LOGITS + IMAGE -> LABELS (and PROBS when requested): upsampling,
softmax and the dense CRF with the toolkit's own code (runtime.triton_serving.PostProcessor, which runs
runtime.Segmenter's stages). Written by ``python -m export triton``."""
import triton_python_backend_utils as pb_utils

from runtime.triton_serving import (PostProcessor, PostSettings, from_triton, model_meta, model_parameters,
                                     to_triton)


def _output(name, array):
    """A response tensor (see runtime.triton_serving.to_triton)."""
    return to_triton(pb_utils.Tensor, name, array)


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args["model_config"])
        self.post = PostProcessor(model_meta(parameters), PostSettings.from_parameters(parameters))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                logits = from_triton(pb_utils.get_input_tensor_by_name(request, "LOGITS"))
                images = from_triton(pb_utils.get_input_tensor_by_name(request, "IMAGE"))
                want_probs = "PROBS" in request.requested_output_names()
                labels, probs = self.post(logits, images, want_probs)
                outputs = [_output("LABELS", labels)]
                if probs is not None:
                    outputs.append(_output("PROBS", probs))
                responses.append(pb_utils.InferenceResponse(outputs))
            except Exception as e:  # noqa: BLE001 - one bad request fails alone, with its reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"deeplab_post: {e}")))
        return responses
