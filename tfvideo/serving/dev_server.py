"""A DEVELOPMENT/TEST gRPC server speaking TensorFlow Serving's protocol (not TensorFlow Serving).

The ``tensorflow_model_server`` binary cannot be installed on every machine (our CI has no package for
it), so this module serves the SavedModels that :func:`tfvideo.export.export_for_serving` writes over
the *same* gRPC services and protos (``tensorflow-serving-api``), for development, tests and
benchmarks. It is a Python process calling ``tf.saved_model.load`` signatures: no request batching, no
REST API, no model config file, no version labels, no monitoring. Use TF Serving in production (see
:mod:`tfvideo.export` for the Docker command); :class:`tfvideo.serving.PredictClient` talks to both.

Services (``tensorflow.serving``): ``PredictionService.Predict``, ``PredictionService.GetModelMetadata``
(``metadata_field: "signature_def"``, answered with the SavedModel's ``SignatureDefMap`` as TF Serving
does) and ``ModelService.GetModelStatus``. Other methods answer ``UNIMPLEMENTED``.

Model layout (TF Serving's)::

    <model-base>/<name>/<version>/saved_model.pb     # name: letters, digits, _ . - ; version: all digits

Every folder under ``--model-base`` with at least one complete version (all-digit sub-folder holding
``saved_model.pb``) is a model; ``models.config`` is not read. The folder is polled every
``--poll-seconds`` (TF Serving's ``--file_system_poll_wait_seconds``, default 1 s there) on a background
thread, so versions and models exported while the server runs are loaded off the request path and
served as soon as they are ready; a model or version folder that disappears is unloaded.

Version policy (our choice, as TF Serving's default ``latest { num_versions: 1 }``): only the highest
version of each model is loaded and served (``--version-policy latest``); while a new version loads,
the previous one keeps serving, and it is unloaded once the new one is AVAILABLE. A version that fails
to load is reported by ``GetModelStatus`` as ``END`` with the error and not retried (the previous
version keeps serving). ``--version-policy all`` loads every version, so requests with
``model_spec.version`` can address any of them; without ``version`` a request gets the highest loaded
version.

Validation and status codes. Each request's inputs are checked against the signature's ``TensorInfo``:
a missing or unexpected input, a wrong dtype or a wrong rank/shape (``-1`` dimensions are free) is
``INVALID_ARGUMENT`` with a message naming the input, the expected and the received value. So is a
malformed ``TensorProto`` (see :func:`_decode_input`): a negative dimension in its ``tensor_shape`` (a
tensor value has a fully defined shape; ``-1`` is for signatures only), more values than the shape holds,
or a ``tensor_content`` of another size than the shape needs; the message gives the input, the declared
shape, the number of values the shape needs and the number sent. As in TensorFlow, fewer values in a typed
field (``int_val``, ``float_val``, ...) are legal: the last one is repeated (one value fills the shape),
none gives zeros. An unknown model, version or signature is ``NOT_FOUND``; a model whose first version
is still loading is ``UNAVAILABLE`` (clients retry); a TensorFlow error raised while running the model
keeps its own code (TF and gRPC codes coincide, as in TF Serving); any other failure is ``INTERNAL`` with
the message. The server keeps serving after every error.

Messages: gRPC's default limit is 4 MB per message, too small for video (a batch of 8 x 25 stacks x 6 x
224 x 224 x 3 uint8 is 180 MB), so both directions allow ``--max-message-mb`` (default 256 MB; protobuf
caps a message at 2 GB). TF Serving itself accepts up to 2 GB by default (``SetMaxMessageSize(INT_MAX)``
in its ``server.cc``); more gRPC server arguments go in its ``--grpc_channel_arguments`` flag, and
``--grpc_max_threads`` sizes its thread pool. Clients must raise their own limits too (the
``PredictClient(max_message_mb=...)`` option). Requests run on a thread pool of ``--workers`` threads;
calling a loaded concrete function from several threads at once is supported by TensorFlow.

Command line (binds 127.0.0.1 by default; ``--port 0`` picks a free port; when the initial models are
loaded it prints ONE line ``serving <names> on <host>:<port>`` to stdout, logs go to stderr)::

    python -m tfvideo.serving.dev_server --model-base saved_models [--port 8500] [--host 127.0.0.1]
        [--poll-seconds 2] [--max-message-mb 256] [--workers 8] [--version-policy latest|all]

In-process::

    from tfvideo.serving import PredictClient
    from tfvideo.serving.dev_server import DevServer

    with DevServer("saved_models", port=0) as server:
        with PredictClient(f"127.0.0.1:{server.port}", model_name="toy") as client:
            print(client.status())

Length (over 500 lines, on purpose): one gRPC service implementing TF Serving's Predict,
GetModelMetadata and GetModelStatus with their proto validation; the validation is most of it and
belongs next to the handlers it guards.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import traceback
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfvideo.checks import MODEL_NAME_PATTERN

__all__ = ["DevServer", "main"]

log = logging.getLogger(__name__)

BANNER = ("tfvideo development server: for development and tests only, NOT TensorFlow Serving "
          "(no batching, no REST, no version labels)")
_STATE = get_model_status_pb2.ModelVersionStatus.State
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}  # TF error codes are gRPC's


class _Abort(Exception):
    """A request failure with its gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class _Version:
    """One model version: its state and, once AVAILABLE, the loaded SavedModel."""

    path: str
    state: str = "LOADING"  # LOADING -> AVAILABLE, or END (failed to load; `error` says why)
    error: str = ""
    loaded: object = None  # keeps the restored object (and so the variables) alive
    signatures: dict = dataclasses.field(default_factory=dict)  # name -> ConcreteFunction
    signature_defs: dict = dataclasses.field(default_factory=dict)  # name -> SignatureDef (all)


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except (TypeError, ValueError):
        return types_pb2.DataType.Name(enum) if enum in types_pb2.DataType.values() else str(enum)


def _shape_text(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


# The typed repeated field that tf.make_ndarray (and TensorFlow's C++ Tensor::FromProto) reads for each
# dtype, and how many numbers make one value (complex values are (real, imaginary) pairs).
_VALUE_FIELDS = {
    **dict.fromkeys(("DT_INT32", "DT_UINT8", "DT_UINT16", "DT_INT16", "DT_INT8", "DT_QINT32", "DT_QUINT8",
                     "DT_QINT8", "DT_QINT16", "DT_QUINT16", "DT_INT4", "DT_UINT4", "DT_INT2", "DT_UINT2"),
                    ("int_val", 1)),
    **dict.fromkeys(("DT_HALF", "DT_BFLOAT16"), ("half_val", 1)),
    **dict.fromkeys(("DT_FLOAT8_E5M2", "DT_FLOAT8_E4M3FN", "DT_FLOAT4_E2M1FN"), ("float8_val", 1)),
    "DT_FLOAT": ("float_val", 1), "DT_DOUBLE": ("double_val", 1), "DT_INT64": ("int64_val", 1),
    "DT_UINT32": ("uint32_val", 1), "DT_UINT64": ("uint64_val", 1), "DT_BOOL": ("bool_val", 1),
    "DT_STRING": ("string_val", 1), "DT_COMPLEX64": ("scomplex_val", 2), "DT_COMPLEX128": ("dcomplex_val", 2),
}


def _decode_input(name: str, where: str, proto) -> np.ndarray:
    """The array a request's ``TensorProto`` holds; ``_Abort(INVALID_ARGUMENT)`` when it is malformed.

    The decision is TensorFlow's: a proto is accepted when both of TensorFlow's parsers accept it,
    ``tf.make_ndarray`` and the C++ ``Tensor::FromProto`` that TF Serving uses (``tf.io.parse_tensor``):

    * a negative dimension in ``tensor_shape`` is refused (``Tensor::FromProto`` refuses every one;
      ``tf.make_ndarray`` refuses them too, except that NumPy's ``reshape`` silently infers ONE negative
      dimension of a ``tensor_content`` proto: that accident is not followed);
    * ``tensor_content`` must hold exactly the values the shape needs (both refuse other sizes);
    * a typed field (``int_val``, ``float_val``, ...) may hold fewer values: the last one is repeated, none
      gives zeros (both parsers); more values than the shape holds are refused (``tf.make_ndarray``
      refuses them; ``Tensor::FromProto`` would silently drop the extra ones);
    * ``unknown_rank`` is ignored and the listed dims are the shape (both parsers do so), and, as in both,
      only the field of the proto's dtype is read (values in another field are not seen).
    """
    dims = [d.size for d in proto.tensor_shape.dim]
    declared = _shape_text(dims)
    dtype = _dtype_name(proto.dtype)
    head = f"input {name!r} of {where}: malformed TensorProto ({dtype}, tensor_shape {declared})"
    known = proto.dtype in types_pb2.DataType.values()
    field, per_value = _VALUE_FIELDS.get(types_pb2.DataType.Name(proto.dtype) if known else "", (None, 1))
    content, itemsize = proto.tensor_content, None
    if content and field not in (None, "string_val"):
        itemsize = np.dtype(tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype).itemsize
        whole, stray = divmod(len(content), itemsize)
        sent = f"sent: {whole} (tensor_content, {len(content)} bytes" + (f", {stray} stray)" if stray else ")")
    elif field is not None:
        sent = f"sent: {len(getattr(proto, field)) // per_value} ({field})"
    else:
        sent = "sent: unknown (unsupported dtype)"
    negative = [axis for axis, size in enumerate(dims) if size < 0]
    if negative:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"{head}: negative dimension(s) at axis {', '.join(map(str, negative))}: a tensor value needs "
                     f"a fully defined shape (sizes >= 0; -1 means 'any size' in a signature only), so the shape "
                     f"needs no definite number of values; {sent}")
    needed = math.prod(dims)
    if itemsize is not None and len(content) != needed * itemsize:
        word = "too many" if len(content) > needed * itemsize else "too few"
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"{head}: {word} values: the shape needs {needed} ({needed * itemsize} bytes of "
                     f"tensor_content), {sent}; tensor_content must hold every value")
    if not content and field is not None and len(getattr(proto, field)) // per_value > needed:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"{head}: too many values: the shape holds {needed}, {sent}")
    try:
        return tf.make_ndarray(proto)
    except Exception as err:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"{head}: cannot decode it ({sent}): {err}") from None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _load(path: str):
    """Loads the SavedModel at ``path`` (tag ``serve``): (restored object, {name: function}, {name: SignatureDef})."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    meta_graphs = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    if not meta_graphs:
        raise ValueError(f"{path}: no MetaGraph with the 'serve' tag")
    loaded = tf.saved_model.load(path, tags=["serve"])
    defs = dict(meta_graphs[0].signature_def)
    return loaded, {k: fn for k, fn in loaded.signatures.items() if k in defs}, defs


class _Repository:
    """The models under ``base``: ``{name: {version: _Version}}``, kept in sync with the folder."""

    def __init__(self, base: str, version_policy: str):
        self.base, self.version_policy = base, version_policy
        self._lock = threading.Lock()
        self._models: dict[str, dict[int, _Version]] = {}

    def _scan(self) -> dict[str, dict[int, str]]:
        found = {}
        for model in os.scandir(self.base):
            if not (model.is_dir() and MODEL_NAME_PATTERN.match(model.name)):
                continue
            versions = {
                int(v.name): v.path for v in os.scandir(model.path)
                if v.name.isdigit() and v.is_dir() and os.path.isfile(os.path.join(v.path, "saved_model.pb"))
            }
            if versions:
                found[model.name] = versions
        return found

    def refresh(self) -> None:
        """Loads new versions, unloads superseded or deleted ones (called by the poller thread)."""
        on_disk = self._scan()
        for name, versions in sorted(on_disk.items()):
            kept = []
            for number in sorted(versions, reverse=True):
                with self._lock:
                    entry = self._models.get(name, {}).get(number)
                    if entry is None:
                        entry = self._models.setdefault(name, {})[number] = _Version(versions[number])
                if entry.state == "LOADING":
                    try:
                        entry.loaded, entry.signatures, entry.signature_defs = _load(entry.path)
                        entry.state = "AVAILABLE"
                        log.info("loaded %s version %d (%s)", name, number, ", ".join(sorted(entry.signatures)))
                    except Exception as err:  # reported by GetModelStatus; the server goes on
                        entry.state, entry.error = "END", f"{type(err).__name__}: {err}"
                        log.error("failed to load %s version %d: %s", name, number, entry.error)
                if entry.state == "AVAILABLE":
                    kept.append(number)
                    if self.version_policy == "latest":
                        break
            with self._lock:
                table = self._models.get(name, {})
                for number in set(table) - set(kept):
                    if table[number].state == "AVAILABLE" or number not in versions:
                        log.info("unloaded %s version %d", name, number)
                        del table[number]
        with self._lock:
            for name in set(self._models) - set(on_disk):
                log.info("unloaded model %s (folder gone)", name)
                del self._models[name]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def versions(self, name: str) -> dict[int, _Version]:
        with self._lock:
            if name not in self._models:
                raise _Abort(grpc.StatusCode.NOT_FOUND,
                             f"model {name!r} not found (serving: {', '.join(sorted(self._models)) or 'none'})")
            return dict(self._models[name])

    def resolve(self, spec) -> tuple[int, _Version]:
        """The servable a ``ModelSpec`` asks for: a given version, else the highest AVAILABLE one."""
        versions = self.versions(spec.name)
        available = sorted(v for v, e in versions.items() if e.state == "AVAILABLE")
        if spec.version_label:
            raise _Abort(grpc.StatusCode.NOT_FOUND,
                         f"version label {spec.version_label!r} of model {spec.name!r}: the development "
                         "server has no version labels; use `version`")
        if spec.HasField("version"):
            number = spec.version.value
            if number not in available:
                raise _Abort(grpc.StatusCode.NOT_FOUND,
                             f"version {number} of model {spec.name!r} is not loaded (available: {available}; "
                             f"version policy {self.version_policy!r})")
            return number, versions[number]
        if not available:
            if any(e.state == "LOADING" for e in versions.values()):
                raise _Abort(grpc.StatusCode.UNAVAILABLE, f"model {spec.name!r} is still loading")
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"model {spec.name!r} has no loadable version")
        return available[-1], versions[available[-1]]


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """Implements the three RPCs over a :class:`_Repository`."""

    def __init__(self, repository: _Repository):
        self.repository = repository

    @staticmethod
    def _run(context, fn, request):
        try:
            return fn(request)
        except _Abort as err:
            context.abort(err.code, str(err))
        except tf.errors.OpError as err:
            context.abort(_GRPC_CODES.get(err.error_code, grpc.StatusCode.INTERNAL), err.message)
        except Exception as err:
            log.error("internal error:\n%s", traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        return self._run(context, self._predict, request)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self._run(context, self._metadata, request)

    def GetModelStatus(self, request, context):  # noqa: N802
        return self._run(context, self._status, request)

    def _predict(self, request):
        spec = request.model_spec
        number, version = self.repository.resolve(spec)
        key = spec.signature_name or "serving_default"
        if key not in version.signatures:
            raise _Abort(grpc.StatusCode.NOT_FOUND,
                         f"signature {key!r} not found in model {spec.name!r} version {number} "
                         f"(signatures: {', '.join(sorted(version.signatures))})")
        where = f"signature {key!r} of model {spec.name!r}"
        expected = version.signature_defs[key].inputs
        described = ", ".join(
            f"{k}: {_dtype_name(t.dtype)} {_shape_text([d.size for d in t.tensor_shape.dim])}"
            for k, t in sorted(expected.items()))
        problems = []
        missing = sorted(set(expected) - set(request.inputs))
        unexpected = sorted(set(request.inputs) - set(expected))
        if missing:
            problems.append(f"missing input(s) {missing}")
        if unexpected:
            problems.append(f"unexpected input(s) {unexpected}")
        if problems:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{'; '.join(problems)} for {where} (expected inputs: {described})")
        inputs = {}
        for name, proto in request.inputs.items():
            info = expected[name]
            if proto.dtype != info.dtype:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"input {name!r} of {where}: expected dtype {_dtype_name(info.dtype)}, "
                             f"got {_dtype_name(proto.dtype)}")
            value = _decode_input(name, where, proto)
            got = list(value.shape)
            want = [d.size for d in info.tensor_shape.dim]
            if not info.tensor_shape.unknown_rank and (
                    len(got) != len(want) or any(w not in (-1, g) for w, g in zip(want, got))):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"input {name!r} of {where}: expected shape {_shape_text(want)} (-1: any size), "
                             f"got {_shape_text(got)}")
            inputs[name] = tf.constant(value)
        outputs = version.signatures[key](**inputs)
        names = list(request.output_filter) or sorted(outputs)
        unknown = sorted(set(names) - set(outputs))
        if unknown:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"output_filter {unknown} not among the outputs of {where}: {sorted(outputs)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.signature_name = key
        response.model_spec.version.value = number
        for name in names:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response

    def _metadata(self, request):
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"metadata_field must be ['signature_def'] (the only field served), got {fields}")
        number, version = self.repository.resolve(request.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in version.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = number
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _status(self, request):
        spec = request.model_spec
        versions = self.repository.versions(spec.name)
        if spec.HasField("version"):
            if spec.version.value not in versions:
                raise _Abort(grpc.StatusCode.NOT_FOUND,
                             f"version {spec.version.value} of model {spec.name!r} not found "
                             f"(versions: {sorted(versions)})")
            versions = {spec.version.value: versions[spec.version.value]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, entry in sorted(versions.items()):
            status = response.model_version_status.add(version=number, state=_STATE.Value(entry.state))
            if entry.error:
                status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                status.status.error_message = entry.error
        return response


class DevServer:
    """The development server, in process: loads the models, serves gRPC, polls for new versions.

    Args:
      model_base: folder with ``<name>/<version>/`` SavedModels (e.g. ``saved_models``).
      host: interface to bind (default loopback only; ``0.0.0.0`` for all).
      port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
      poll_seconds: interval between scans of ``model_base`` for new/removed versions; 0 scans once.
      max_message_mb: largest request and response in MB (gRPC's default is 4 MB).
      workers: threads serving requests concurrently.
      version_policy: ``"latest"`` (load and serve the highest version only, TF Serving's default) or
        ``"all"`` (load every version).
    """

    def __init__(self, model_base, host: str = "127.0.0.1", port: int = 8500, *, poll_seconds: float = 2.0,
                 max_message_mb: float = 256, workers: int = 8, version_policy: str = "latest"):
        model_base = os.fspath(model_base)
        if not os.path.isdir(model_base):
            raise ValueError(f"`model_base` must be an existing folder of exported models, got {model_base!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"`port` must be an int in [0, 65535] (0: any free port), got {port!r}")
        if not poll_seconds >= 0:
            raise ValueError(f"`poll_seconds` must be >= 0, got {poll_seconds!r}")
        if not 0 < max_message_mb <= 2048:
            raise ValueError(f"`max_message_mb` must be in (0, 2048] (protobuf's 2 GB cap), got {max_message_mb!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"`workers` must be an int >= 1, got {workers!r}")
        if version_policy not in ("latest", "all"):
            raise ValueError(f"`version_policy` must be 'latest' or 'all', got {version_policy!r}")
        self.model_base, self.host, self.poll_seconds = model_base, host, float(poll_seconds)
        self.max_message_bytes = min(int(max_message_mb * 2**20), 2**31 - 1)
        self.workers = workers
        self.repository = _Repository(model_base, version_policy)
        self._requested_port = port
        self.port: int | None = None
        self._server = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` (brackets around an IPv6 host); the bound port once started."""
        return _address(self.host, self.port if self.port is not None else self._requested_port)

    def start(self) -> "DevServer":
        """Loads the models found now, binds the port and starts serving and polling. Returns self."""
        if self._server is not None:
            raise RuntimeError("the server is started already")
        self.repository.refresh()
        options = [("grpc.max_send_message_length", self.max_message_bytes),
                   ("grpc.max_receive_message_length", self.max_message_bytes),
                   ("grpc.so_reuseport", 0)]  # a taken port fails instead of being shared
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers), options=options)
        servicer = _Servicer(self.repository)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
        try:
            port = server.add_insecure_port(_address(self.host, self._requested_port))
        except RuntimeError as err:  # grpc raises on a failed bind (older versions returned 0)
            port, reason = 0, f": {err}"
        else:
            reason = ""
        if not port:
            raise OSError(f"cannot bind {_address(self.host, self._requested_port)} (port in use or bad host?){reason}")
        server.start()
        self._server, self.port = server, port
        self._stop.clear()
        if self.poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="dev-server-poller", daemon=True)
            self._poller.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.repository.refresh()
            except Exception:  # e.g. the folder vanished for a moment: log, keep serving, retry later
                log.error("polling %s failed:\n%s", self.model_base, traceback.format_exc())

    def stop(self, grace: float | None = 1.0) -> None:
        """Stops polling and serving (in-flight requests get ``grace`` seconds)."""
        self._stop.set()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def __enter__(self) -> "DevServer":
        return self.start() if self._server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> int:
    """Command-line entry point (see the module docstring). Returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tfvideo.serving.dev_server",
        description="Development/test gRPC server with TensorFlow Serving's Predict, GetModelMetadata and "
                    "GetModelStatus APIs (NOT TensorFlow Serving: no batching, no REST).")
    parser.add_argument("--model-base", required=True, help="folder of <name>/<version>/ SavedModels")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port, printed)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="scan interval for new versions")
    parser.add_argument("--max-message-mb", type=float, default=256, help="largest request/response (MB)")
    parser.add_argument("--workers", type=int, default=8, help="request threads")
    parser.add_argument("--version-policy", choices=("latest", "all"), default="latest",
                        help="serve the highest version only (TF Serving's default) or every version")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[dev_server] %(message)s")
    log.warning(BANNER)
    try:
        server = DevServer(args.model_base, args.host, args.port, poll_seconds=args.poll_seconds,
                           max_message_mb=args.max_message_mb, workers=args.workers,
                           version_policy=args.version_policy).start()
    except (ValueError, OSError) as err:
        parser.exit(2, f"error: {err}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    names = server.repository.names()
    print(f"serving {', '.join(names) if names else '(no models yet)'} on {server.address}", flush=True)
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
