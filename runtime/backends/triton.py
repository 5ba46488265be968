"""Clients of a Triton Inference Server that serves a repository written by ``python -m export triton``.

- :class:`TritonBackend` is a :class:`~runtime.backends.base.Backend`: preprocessed batches go to ``deeplab_dcnn``,
  logits come back, and the runtime upsamples and runs the CRF locally as with any backend. This is what
  ``open_backend(..., backend="triton", url=..., protocol=...)``, ``runtime/infer.py --backend triton`` and
  ``Segmenter(..., backend="triton")`` use: outputs, stats and progress are the local pipeline's.
- :class:`TritonPipeline` sends whole frames to the ``deeplab`` ensemble and gets labels back (``deeplab_probs`` for
  probabilities too): everything runs on the server (for thin clients).

Both read the model's metadata (:class:`ModelMeta`) from the server's model config. Every failure (server down, gone
mid-run, model missing, a request rejected) is a :class:`BackendError` naming the server and the reason; when the
server itself is gone it is the subclass :class:`BackendUnavailable`, which stops ``runtime/infer.py``'s pipeline
with that one-line error instead of failing frame after frame.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from runtime import named
from runtime.backends.base import Backend, BackendError, BackendUnavailable
from runtime.metadata import TRITON_META_PARAMETER, MetadataError, ModelMeta, read_meta
from runtime.preprocess import to_bgr8

DCNN_MODEL = "deeplab_dcnn"
ENSEMBLE_MODEL = "deeplab"
ENSEMBLE_PROBS_MODEL = "deeplab_probs"
PROTOCOLS = ("http", "grpc")
_NUMPY_TO_TRITON = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.uint8): "UINT8"}
# The config data types a DeepLab network tensor can have on the server, as numpy dtypes (numpy has no bfloat16).
TRITON_FLOAT_DTYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64}


def tensor_dtype(model_config: str | dict, name: str) -> np.dtype:
    """The numpy dtype of input or output ``name`` of a model config (the JSON Triton hands a Python model's
    ``initialize``, or a client's ``get_model_config``): what a sender casts to so the receiver gets the type its
    config declares."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    for tensor in (*config.get("input", []), *config.get("output", [])):
        if tensor.get("name") == name:
            data_type = tensor.get("data_type", "")
            if data_type not in TRITON_FLOAT_DTYPES:
                raise ValueError(f"tensor {name!r} is {data_type or 'untyped'}: only {', '.join(TRITON_FLOAT_DTYPES)} "
                                 "are cast to")
            return np.dtype(TRITON_FLOAT_DTYPES[data_type])
    raise ValueError(f"the model config has no tensor {name!r}")


def triton_model_name(model: str | os.PathLike[str] | None, default: str) -> str:
    """The server-side model for a ``--model`` value: a name such as ``demo`` (:mod:`runtime.named`), a model file or
    nothing mean the repository's own ``default``; any other bare name is a model on the server."""
    if model is None:
        return default
    text = str(model)
    if named.is_name(text) or Path(text).suffix or os.sep in text or Path(text).exists():
        return default
    return text


# What a server that answers but is not live and ready, or whose health checks say "Server exiting", is doing.
SHUTTING_DOWN = "is shutting down (or not ready)"


class _Connection:
    """One tritonclient connection (HTTP or gRPC) with errors turned into :class:`BackendError`."""

    def __init__(self, url: str, protocol: str, timeout_s: float) -> None:
        if protocol not in PROTOCOLS:
            raise BackendError(f"unknown Triton protocol {protocol!r} (http or grpc)")
        if not url:
            raise BackendError("the triton backend needs the server's address: --url HOST:PORT")
        url = url.split("://", 1)[-1]  # tritonclient wants host:port
        self.url, self.protocol, self.timeout_s = url, protocol, timeout_s
        try:
            if protocol == "http":
                import tritonclient.http as module
            else:
                import tritonclient.grpc as module
        except ImportError:
            raise BackendError("the triton backend needs tritonclient: pip install 'tritonclient[http,grpc]'") from None
        self.module: Any = module
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self.client  # noqa: B018 - connect now, so a malformed URL fails here

    @property
    def timeout(self) -> dict[str, float]:
        """Per-call timeout keywords: gRPC calls take one; the HTTP client has its network timeout built in."""
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    @property
    def client(self) -> Any:
        """This thread's tritonclient client: the HTTP client (gevent) must stay on the thread that made it, and the
        runtime's pipeline calls ``infer`` from its own inference thread."""
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.protocol == "http":
                    client = self.module.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                               network_timeout=self.timeout_s)
                else:
                    client = self.module.InferenceServerClient(self.url)
            except Exception as e:  # noqa: BLE001 - a malformed URL
                raise BackendError(f"cannot connect to Triton at {self.url} ({self.protocol}): {_reason(e)}") from None
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; a failure is a :class:`BackendError`, or :class:`BackendUnavailable` when the
        server no longer answers its liveness endpoint (down, killed, unreachable): then every later call would fail
        too, and pipelines stop instead of skipping frames."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tritonclient, gevent, grpc and socket errors alike
            state = self._state()
            if state is None:
                raise BackendError(f"Triton server {self.url} ({self.protocol}): {what} failed: {_reason(e)}") from None
            # A server shutting down unloads its models first: its "unknown model" would mislead, so it is left out.
            detail = "" if state == SHUTTING_DOWN else f": {_reason(e)}"
            raise BackendUnavailable(f"Triton server {self.url} ({self.protocol}) {state}: {what} failed{detail}"
                                     ) from None

    def _state(self) -> str | None:
        """None while the server is live and ready; else what it is: shutting down, or not answering."""
        try:
            if self.client.is_server_live(**self.timeout) and self.client.is_server_ready(**self.timeout):
                return None
            return SHUTTING_DOWN  # it answers, but is not (or no longer) live and ready
        except Exception as e:  # noqa: BLE001 - any failure to answer means not alive
            return SHUTTING_DOWN if "exiting" in str(e).lower() else "does not answer (down or unreachable)"

    def model_meta(self, model: str) -> tuple[ModelMeta, dict[str, Any]]:
        """Check the server and ``model`` are ready; return the model's metadata and its config."""
        if not self.call("health check", self.client.is_server_live, **self.timeout):
            raise BackendError(f"Triton server {self.url} ({self.protocol}) is not live")
        if not self.call(f"readiness check of model {model!r}", self.client.is_model_ready, model, **self.timeout):
            raise BackendError(f"Triton server {self.url} has no ready model {model!r} (is the repository from "
                               "`python -m export triton` loaded?)")
        config = self.call(f"reading the config of {model!r}", self._config, model)
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        try:
            return read_meta(parameters, TRITON_META_PARAMETER, f"model {model!r} on {self.url}",
                             "regenerate its repository with `python -m export triton`"), config
        except MetadataError as e:
            raise BackendError(str(e)) from None

    def _config(self, model: str) -> dict[str, Any]:
        if self.protocol == "http":
            return self.client.get_model_config(model)
        return self.client.get_model_config(model, as_json=True, **self.timeout)["config"]

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tensors = []
        for name, array in inputs.items():
            t = self.module.InferInput(name, list(array.shape), _NUMPY_TO_TRITON[array.dtype])
            t.set_data_from_numpy(array)
            tensors.append(t)
        requested = [self.module.InferRequestedOutput(name) for name in outputs]
        result = self.call(f"inference on {model!r}", self.client.infer, model, tensors, outputs=requested,
                           **self.timeout)
        return {name: result.as_numpy(name) for name in outputs}

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection (or another thread's) is not an error
                pass


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


class TritonBackend(Backend):
    """``deeplab_dcnn`` on a Triton server as a local backend: ``infer`` sends a preprocessed N×3×H×W batch (split
    into the model's max batch size) and returns the logits. Thread-safe: each thread gets its own connection."""

    name = "triton"

    def __init__(self, model: str | os.PathLike[str] | None = None, *, url: str = "127.0.0.1:8000",
                 protocol: str = "http", timeout_s: float = 60.0, meta: ModelMeta | None = None) -> None:
        self.model_name = triton_model_name(model, DCNN_MODEL)
        self._conn = _Connection(url, protocol, timeout_s)
        server_meta, config = self._conn.model_meta(self.model_name)
        self.meta = meta or server_meta
        inputs = {t.get("name"): [int(d) for d in t.get("dims", [])] for t in config.get("input", [])}
        dims = inputs.get(self.meta.input_name, [])
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        if self.max_batch == 0 and len(dims) == 4:  # a fixed batch dimension: the dims start with N
            self.max_batch, dims = max(1, dims[0]), dims[1:]
        self.max_batch = max(1, self.max_batch)
        try:
            self._dtype = tensor_dtype(config, self.meta.input_name)
        except ValueError as e:
            raise BackendError(f"Triton model {self.model_name!r}: {e}") from None
        # An engine built for one input size: the runtime pads every frame to it (as with a local engine).
        self.fixed_input_size = (dims[1], dims[2]) if len(dims) == 3 and min(dims[1:]) > 0 else None
        self.device = f"triton {self._conn.protocol}://{self._conn.url}/{self.model_name}"

    def input_size(self, height: int, width: int) -> tuple[int, int] | None:
        return self.fixed_input_size

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise BackendError(f"input must be N×3×H×W, got shape {batch.shape}")
        batch = np.ascontiguousarray(batch, dtype=self._dtype)  # the type the server's config declares
        name, out = self.meta.input_name, self.meta.output_name
        parts = [self._conn.infer(self.model_name, {name: batch[i:i + self.max_batch]}, [out])[out]
                 for i in range(0, batch.shape[0], self.max_batch)]
        return np.asarray(np.concatenate(parts) if len(parts) > 1 else parts[0], dtype=np.float32)

    def close(self) -> None:
        self._conn.close()


class TritonPipeline:
    """The ``deeplab`` ensemble: whole BGR frames in, labels (and optionally probabilities) out; preprocessing,
    network, upsampling and CRF all run on the server. Thread-safe: each thread gets its own connection."""

    def __init__(self, url: str, protocol: str = "http", timeout_s: float = 60.0) -> None:
        self._conn = _Connection(url, protocol, timeout_s)
        self.meta, _ = self._conn.model_meta(DCNN_MODEL)
        for model in (ENSEMBLE_MODEL, ENSEMBLE_PROBS_MODEL):
            if not self._conn.call(f"readiness check of model {model!r}", self._conn.client.is_model_ready, model,
                                   **self._conn.timeout):
                raise BackendError(f"Triton server {self._conn.url} has no ready model {model!r}")

    def segment(self, image_bgr: np.ndarray, probs: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """H×W×3 uint8 BGR -> (H×W labels, C×H×W probabilities if ``probs`` else None)."""
        image = to_bgr8(image_bgr)[None]
        outputs = ["LABELS", "PROBS"] if probs else ["LABELS"]
        result = self._conn.infer(ENSEMBLE_PROBS_MODEL if probs else ENSEMBLE_MODEL, {"IMAGE": image}, outputs)
        return result["LABELS"][0], (result["PROBS"][0] if probs else None)

    def close(self) -> None:
        self._conn.close()
