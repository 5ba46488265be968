"""Triton Python-backend model ``deeplab_post``: LOGITS + IMAGE -> LABELS (and PROBS when requested): upsampling,
softmax and the dense CRF with the toolkit's own code (runtime.triton_serving.postprocess). Written by
``python -m export triton``."""
import triton_python_backend_utils as pb_utils

from runtime.triton_serving import PostSettings, model_meta, model_parameters, postprocess


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(args["model_config"])
        self.meta = model_meta(parameters)
        self.settings = PostSettings.from_parameters(parameters)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                logits = pb_utils.get_input_tensor_by_name(request, "LOGITS").as_numpy()
                images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                want_probs = "PROBS" in request.requested_output_names()
                labels, probs = postprocess(logits, images, self.meta, self.settings, want_probs)
                outputs = [pb_utils.Tensor("LABELS", labels)]
                if probs is not None:
                    outputs.append(pb_utils.Tensor("PROBS", probs))
                responses.append(pb_utils.InferenceResponse(outputs))
            except Exception as e:  # one bad request fails alone, with its reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"deeplab_post: {e}")))
        return responses
