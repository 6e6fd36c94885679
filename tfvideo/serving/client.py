"""gRPC client for TensorFlow Serving's PredictionService and ModelService (and our development server).

:class:`PredictClient` sends numpy arrays to one model/signature/version and returns numpy arrays::

    from tfvideo.serving import PredictClient

    with PredictClient("localhost:8500", model_name="toy") as client:
        client.healthy()                    # True once a version is AVAILABLE
        client.model_metadata()             # {"serving_default": {"inputs": {"frames": {"dtype": "uint8",
                                            #   "shape": (None, None, 32, 32, 3)}}, "outputs": {...}}}
        out = client.predict(frames=clips)  # clips: uint8 (B, T, 32, 32, 3) -> {"logits": ..., "probabilities": ...}

The server is TF Serving (``tensorflow_model_server`` or the ``tensorflow/serving`` Docker image: gRPC on
port 8500) or, where that binary is not installable, ``python -m tfvideo.serving.dev_server`` (same
protos, development only). Inputs go as ``TensorProto`` (``tf.make_tensor_proto``; no dtype conversion:
send what the signature declares, e.g. ``uint8`` frames) and outputs come back through
``tf.make_ndarray``.

Large messages. gRPC refuses messages over 4 MB by default, and video tensors are big (a batch of 8 x
25 stacks x 6 x 224 x 224 x 3 uint8 is 180 MB), so the channel sets ``grpc.max_send_message_length``
and ``grpc.max_receive_message_length`` to ``max_message_mb`` (default 256 MB; protobuf caps a message
at 2 GB). The server must accept them too: TF Serving's gRPC server allows up to 2 GB by default
(``builder.SetMaxMessageSize(INT_MAX)`` in ``tensorflow_serving/model_servers/server.cc``); other gRPC
server arguments are passed with its ``--grpc_channel_arguments=key=value,...`` flag (and
``--grpc_max_threads`` sizes its request thread pool). Our dev server takes ``--max-message-mb``.

Retries. ``UNAVAILABLE`` (server starting, restarting, a model still loading) is retried ``retries``
times with exponential backoff (``backoff``, ``2 * backoff``, ... capped at ``max_backoff`` seconds); the
channel's reconnect backoff is set to the same scale, so a server that comes up is found by the next
attempt. Every other error, and ``UNAVAILABLE`` after the last retry, raises :class:`ServingError`
(a ``RuntimeError``) with ``.code`` (``grpc.StatusCode``) and ``.details`` (the server's message).
``timeout`` applies to each attempt.

Installing ``tensorflow-serving-api`` without a second TensorFlow. The wheel's METADATA
(``pip download tensorflow-serving-api==2.21.0 --no-deps``; ``tensorflow_serving_api-2.21.0-py2.py3-none-any.whl``)
declares::

    Requires-Python: >=3.10
    Requires-Dist: grpcio (<2.0,>=1.24.3)
    Requires-Dist: protobuf (<8.0.0,>=6.31.1)
    Requires-Dist: tensorflow (<3,>=2.21.0)

Its TensorFlow requirement is the package ``tensorflow``, the same one we depend on, so with
``tensorflow`` 2.21 installed ``pip install "tensorflow-serving-api==2.21.*"`` reuses it (keep the
minor versions equal: the API release follows TensorFlow's). With another TensorFlow build
(``tensorflow-cpu``, ``tensorflow-macos``, ``tf-nightly``...) pip would pull ``tensorflow`` as well;
install it without dependencies instead (``grpcio`` and ``protobuf`` are TensorFlow's own requirements,
so they are there already; naming them keeps the command complete)::

    pip install --no-deps "tensorflow-serving-api==2.21.*" grpcio protobuf
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

__all__ = ["PredictClient", "ServingError", "VersionStatus", "call_with_retries"]

_MAX_MESSAGE_BYTES = 2**31 - 1  # protobuf's limit


class ServingError(RuntimeError):
    """A failed RPC: ``code`` is the ``grpc.StatusCode``, ``details`` the server's message."""

    def __init__(self, message: str, code: grpc.StatusCode, details: str):
        super().__init__(message)
        self.code = code
        self.details = details


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One model version as ``GetModelStatus`` reports it.

    ``state`` is ``ModelVersionStatus.State``'s name (``START``, ``LOADING``, ``AVAILABLE``,
    ``UNLOADING``, ``END``); ``error_code`` is TensorFlow's error code (0: OK) and ``error_message``
    says why a version failed to load.
    """

    version: int
    state: str
    error_code: int = 0
    error_message: str = ""


def call_with_retries(call: Callable[[], object], retries: int, backoff: float, max_backoff: float,
                      sleep: Callable[[float], None] = time.sleep):
    """Calls ``call()``; on a ``grpc.RpcError`` with code ``UNAVAILABLE`` waits and tries again.

    Args:
      call: the RPC, e.g. ``lambda: stub.Predict(request, timeout=30)``.
      retries: extra attempts after the first (0: none).
      backoff: first wait in seconds; doubled after every attempt.
      max_backoff: longest wait.
      sleep: the waiting function (tests pass a recorder).

    Returns:
      What ``call`` returns.

    Raises:
      grpc.RpcError: any other code at once, or ``UNAVAILABLE`` after the last retry; its
      ``attempts`` attribute is set to the number of calls made.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or attempt > retries:
                err.attempts = attempt
                raise
            sleep(min(backoff * 2 ** (attempt - 1), max_backoff))


class PredictClient:
    """A client bound to one model (and signature, version) on a TF Serving-compatible gRPC server.

    Args:
      target: ``host:port`` of the server's gRPC endpoint.
      model_name: the served model's name (``<name>`` in ``saved_models/<name>/<version>``).
      signature_name: signature for :meth:`predict` (TF Serving's default ``serving_default``).
      version: version to address (int), or None for the server's choice (the highest loaded one).
      timeout: seconds per attempt of every RPC.
      max_message_mb: largest request and response in MB (gRPC's default of 4 MB is too small for video).
      retries: extra attempts on ``UNAVAILABLE``.
      backoff, max_backoff: first and longest wait between attempts, in seconds (doubling).
      options: extra gRPC channel options ``[(key, value), ...]``.

    The client is thread-safe (one channel, shared by all calls); close it with :meth:`close` or use it
    as a context manager.
    """

    def __init__(self, target: str = "localhost:8500", *, model_name: str, signature_name: str = "serving_default",
                 version: int | None = None, timeout: float = 30.0, max_message_mb: float = 256,
                 retries: int = 5, backoff: float = 0.25, max_backoff: float = 4.0, options=()):
        if not isinstance(target, str) or not target:
            raise ValueError(f"`target` must be 'host:port', got {target!r}")
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"`model_name` must be a non-empty string, got {model_name!r}")
        if not isinstance(signature_name, str) or not signature_name:
            raise ValueError(f"`signature_name` must be a non-empty string, got {signature_name!r}")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError(f"`version` must be a positive int or None, got {version!r}")
        if not timeout > 0:
            raise ValueError(f"`timeout` must be > 0 seconds, got {timeout!r}")
        if not 0 < max_message_mb <= 2048:
            raise ValueError(f"`max_message_mb` must be in (0, 2048], got {max_message_mb!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"`retries` must be an int >= 0, got {retries!r}")
        if not (backoff > 0 and max_backoff >= backoff):
            raise ValueError(f"`backoff` must be > 0 and <= `max_backoff`, got {backoff!r}, {max_backoff!r}")
        self.target, self.model_name, self.signature_name, self.version = target, model_name, signature_name, version
        self.timeout, self.retries = float(timeout), retries
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        limit = min(int(max_message_mb * 2**20), _MAX_MESSAGE_BYTES)
        reconnect_ms = int(backoff * 1000)
        channel_options = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # reconnect on the retry schedule (gRPC's default waits ~1 s, then x1.6, before reconnecting)
            ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
            ("grpc.min_reconnect_backoff_ms", reconnect_ms),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
            *options,
        ]
        self._channel = grpc.insecure_channel(target, options=channel_options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    # -------------------------------------------------------------------------------------- RPCs ----
    def _spec(self, spec, signature: bool = True, version: bool = True):
        spec.name = self.model_name
        if signature:
            spec.signature_name = self.signature_name
        if version and self.version is not None:
            spec.version.value = self.version

    def _call(self, rpc: str, method, request, retries: int | None = None):
        retries = self.retries if retries is None else retries
        try:
            return call_with_retries(lambda: method(request, timeout=self.timeout), retries, self.backoff,
                                     self.max_backoff)
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
            version = "" if self.version is None else f", version {self.version}"
            tries = f" after {err.attempts} attempts" if getattr(err, "attempts", 1) > 1 else ""
            raise ServingError(
                f"{rpc} for model {self.model_name!r} (signature {self.signature_name!r}{version}) at "
                f"{self.target} failed{tries}: {code.name}: {details}", code, details) from None

    def predict(self, **inputs) -> dict[str, np.ndarray]:
        """Runs the signature on named inputs: ``predict(frames=uint8 array)`` -> ``{output: array}``.

        Args:
          **inputs: one array (numpy, ``tf.Tensor`` or nested lists) per signature input, of the
            signature's dtype (no conversion is made; a mismatch is refused by the server).

        Returns:
          ``{output name: np.ndarray}`` for every output of the signature.

        Raises:
          ServingError: e.g. ``INVALID_ARGUMENT`` (missing/unexpected input, wrong dtype or shape),
          ``NOT_FOUND`` (unknown model, version or signature), ``UNAVAILABLE`` after the retries.
        """
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, value in inputs.items():
            value = value.numpy() if isinstance(value, tf.Tensor) else value
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._call("Predict", self._predictions.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def model_metadata(self) -> dict[str, dict]:
        """The model's signatures (``GetModelMetadata`` with ``metadata_field: "signature_def"``).

        Returns:
          ``{signature name: {"method_name": str, "inputs": {name: {"dtype": "uint8", "shape": tuple}},
          "outputs": {...}}}``; shapes have ``None`` for free dimensions (and are ``None`` for an
          unknown rank). Internal entries (``__saved_model_init_op``) are left out.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, signature=False)
        response = self._call("GetModelMetadata", self._predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signature_map):
            raise ServingError(f"GetModelMetadata for model {self.model_name!r} at {self.target}: the "
                               "'signature_def' metadata is not a SignatureDefMap", grpc.StatusCode.INTERNAL, "")

        def tensors(infos):
            return {name: {"dtype": tf.dtypes.as_dtype(info.dtype).name,
                           "shape": None if info.tensor_shape.unknown_rank
                           else tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)}
                    for name, info in sorted(infos.items())}

        return {key: {"method_name": sig.method_name, "inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
                for key, sig in sorted(signature_map.signature_def.items()) if not key.startswith("__")}

    def status(self, retries: int | None = None) -> list[VersionStatus]:
        """Every version the server knows of this model (``ModelService.GetModelStatus``), by version.

        Args:
          retries: retries on ``UNAVAILABLE`` (default: the client's).

        Raises:
          ServingError: ``NOT_FOUND`` for an unknown model, ``UNAVAILABLE`` if no server answers.
        """
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, signature=False, version=False)
        response = self._call("GetModelStatus", self._models.GetModelStatus, request, retries)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return sorted((VersionStatus(s.version, state_name(s.state), s.status.error_code, s.status.error_message)
                       for s in response.model_version_status), key=lambda s: s.version)

    def healthy(self) -> bool:
        """True if the model's version (the client's ``version``, or any) is AVAILABLE; False if the
        server is unreachable or does not know the model (one attempt, no retries)."""
        try:
            statuses = self.status(retries=0)
        except ServingError:
            return False
        return any(s.state == "AVAILABLE" and self.version in (None, s.version) for s in statuses)

    def wait_until_healthy(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Polls :meth:`healthy` until True; raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {self.model_name!r} not AVAILABLE at {self.target} after {timeout} s")
            time.sleep(interval)

    # ------------------------------------------------------------------------------ life cycle ----
    def close(self) -> None:
        """Closes the channel (pending calls are cancelled)."""
        self._channel.close()

    def __enter__(self) -> "PredictClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
