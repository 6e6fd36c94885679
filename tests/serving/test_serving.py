"""Serving over real gRPC: PredictClient against the development server in a subprocess.

A tiny Keras classifier (uint8 frames (B, T, 8, 8, 3) -> Rescaling(1/255) -> GlobalAveragePooling3D ->
Dense(4)) is exported with ``export_for_serving``; its outputs have a closed form (mean colour @ kernel +
bias), transcribed in NumPy below as the reference. The same basic checks run against a real
``tensorflow_model_server`` when that binary is on PATH.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import grpc
import keras
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import tfvideo
from tfvideo.export import classifier_signature, export_for_serving
from tfvideo.serving import PredictClient, ServingError, VersionStatus, call_with_retries
from tfvideo.serving.dev_server import DevServer

pytestmark = pytest.mark.serving

SIZE, CLASSES = 8, 4
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tfvideo.__file__)))


def make_classifier(seed):
    """The toy classifier with Dense weights drawn from ``seed``; returns (model, kernel, bias)."""
    frames = keras.Input((None, SIZE, SIZE, 3), dtype="uint8", name="frames")
    x = keras.layers.Rescaling(1 / 255)(frames)
    x = keras.layers.GlobalAveragePooling3D()(x)
    dense = keras.layers.Dense(CLASSES)
    model = keras.Model(frames, dense(x))
    rng = np.random.default_rng(seed)
    kernel, bias = rng.normal(size=(3, CLASSES)).astype(np.float32), rng.normal(size=CLASSES).astype(np.float32)
    dense.set_weights([kernel, bias])
    return model, kernel, bias


def reference(frames, kernel, bias):
    """NumPy transcription: (logits, softmax) of mean colour over (T, H, W) @ kernel + bias."""
    logits = (frames.astype(np.float64) / 255).mean(axis=(1, 2, 3)) @ kernel + bias
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return logits, e / e.sum(axis=-1, keepdims=True)


def clips(seed, batch=2, time_steps=3):
    return np.random.default_rng(seed).integers(0, 256, (batch, time_steps, SIZE, SIZE, 3), dtype=np.uint8)


def export(model, base, name, version=None, **kwargs):
    return export_for_serving(model, base, name, version, {"serving_default": classifier_signature(model)},
                              print_signatures=False, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_basic(client, model, kernel, bias):
    """Predict equals the NumPy reference and model.predict; metadata and status describe the model."""
    frames = clips(0, batch=3, time_steps=5)
    out = client.predict(frames=frames)
    logits, probabilities = reference(frames, kernel, bias)
    assert sorted(out) == ["logits", "probabilities"]
    assert out["logits"].dtype == np.float32 and out["logits"].shape == (3, CLASSES)
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["logits"], model.predict(frames, verbose=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
    tensor = {"dtype": "float32", "shape": (None, CLASSES)}
    assert client.model_metadata() == {"serving_default": {
        "method_name": "tensorflow/serving/predict",
        "inputs": {"frames": {"dtype": "uint8", "shape": (None, None, SIZE, SIZE, 3)}},
        "outputs": {"logits": tensor, "probabilities": tensor},
    }}
    assert [(s.version, s.state) for s in client.status()] == [(1, "AVAILABLE")]
    assert client.healthy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Dev server subprocess on a free port over a folder with models ``toy`` (v1) and ``growing`` (v1)."""
    base = tmp_path_factory.mktemp("saved_models")
    toy, toy_kernel, toy_bias = make_classifier(0)
    export(toy, base, "toy")
    growing, grow_kernel, grow_bias = make_classifier(1)
    export(growing, base, "growing")
    log_path = base.parent / "dev_server.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tfvideo.serving.dev_server", "--model-base", str(base), "--port", "0",
             "--poll-seconds", "0.5", "--workers", "8"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        deadline, line = time.monotonic() + 60, ""
        while not line.startswith("serving "):
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else ""
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dev server did not start:\n{log_path.read_text()}")
        assert line.startswith("serving growing, toy on 127.0.0.1:"), line
        target = line.split(" on ")[-1].strip()
        yield SimpleNamespace(base=base, target=target, proc=proc, toy=toy, toy_weights=(toy_kernel, toy_bias),
                              grow_weights=(grow_kernel, grow_bias))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
def client(served):
    with PredictClient(served.target, model_name="toy", retries=2, backoff=0.1) as c:
        yield c


def test_predict_metadata_status_over_grpc(served, client):
    check_basic(client, served.toy, *served.toy_weights)
    assert not PredictClient(served.target, model_name="nope", retries=0).healthy()


@pytest.mark.parametrize("inputs, needles", [
    (lambda x: {"frames": x.astype(np.float32)}, ["'frames'", "uint8", "float32"]),
    (lambda x: {"frames": x[:, 0]}, ["'frames'", "(-1, -1, 8, 8, 3)", "(2, 8, 8, 3)"]),
    (lambda x: {"frames": x[:, :, :, :5]}, ["'frames'", "(-1, -1, 8, 8, 3)", "(2, 3, 8, 5, 3)"]),
    (lambda x: {}, ["missing input", "'frames'", "uint8 (-1, -1, 8, 8, 3)"]),
    (lambda x: {"frames": x, "extra": x}, ["unexpected input", "'extra'"]),
], ids=["dtype", "rank", "dimension", "missing", "unexpected"])
def test_bad_inputs_are_invalid_argument_and_server_keeps_serving(served, client, inputs, needles):
    with pytest.raises(ServingError) as info:
        client.predict(**inputs(clips(1)))
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert all(n in err.details for n in needles), err.details
    assert "'toy'" in str(err) and "'serving_default'" in str(err) and served.target in str(err)
    frames = clips(2)
    np.testing.assert_allclose(client.predict(frames=frames)["logits"], reference(frames, *served.toy_weights)[0],
                               rtol=1e-5, atol=1e-5)


def tensor_proto(dims, *, content=None, int_val=None, float_val=None, unknown_rank=False):
    """A uint8 TensorProto built field by field (no tf.make_tensor_proto), malformed if asked to."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims], unknown_rank=unknown_rank)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, tensor_shape=shape)
    if content is not None:
        proto.tensor_content = bytes(content)
    proto.int_val.extend(int_val or [])
    proto.float_val.extend(float_val or [])
    return proto


def _bytes(n):
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


FRAME = SIZE * SIZE * 3  # values in one (8, 8, 3) frame of the toy model's (-1, -1, 8, 8, 3) input
RAISES = None


def frames_of(data, shape):
    return np.frombuffer(data, np.uint8).reshape(shape) if isinstance(data, bytes) else np.full(shape, data, np.uint8)


# id: (proto, what tf.make_ndarray gives, what TF's C++ parser Tensor::FromProto gives (tf.io.parse_tensor; the
# one TF Serving uses), the pieces of the server's INVALID_ARGUMENT message, or None: the server answers).
# RAISES: that parser refuses the proto. The server accepts a proto only when both parsers do.
MALFORMED = {
    # negative dims: the C++ parser refuses every one; make_ndarray's NumPy reshape infers ONE negative dim
    # of a tensor_content proto (-1 or -2 alike): that is how such protos got through before
    "minus_one_in_tensor_content": (
        tensor_proto([-1, 1, SIZE, SIZE, 3], content=_bytes(FRAME)), frames_of(_bytes(FRAME), (1, 1, SIZE, SIZE, 3)),
        RAISES, ["(-1, 1, 8, 8, 3)", "negative dimension(s) at axis 0:", "needs no definite number of values",
                 f"sent: {FRAME} (tensor_content, {FRAME} bytes)"]),
    "minus_two_in_tensor_content": (
        tensor_proto([-2, 1, SIZE, SIZE, 3], content=_bytes(FRAME)), frames_of(_bytes(FRAME), (1, 1, SIZE, SIZE, 3)),
        RAISES, ["(-2, 1, 8, 8, 3)", "negative dimension(s) at axis 0:", f"sent: {FRAME} (tensor_content"]),
    "signature_shape_copied": (
        tensor_proto([-1, -1, SIZE, SIZE, 3], content=_bytes(FRAME)), RAISES, RAISES,
        ["(-1, -1, 8, 8, 3)", "negative dimension(s) at axis 0, 1:", f"sent: {FRAME} (tensor_content"]),
    "minus_one_in_int_val": (
        tensor_proto([2, -1, SIZE, SIZE, 3], int_val=[i % 256 for i in range(2 * FRAME)]), RAISES, RAISES,
        ["(2, -1, 8, 8, 3)", "negative dimension(s) at axis 1:", f"sent: {2 * FRAME} (int_val)"]),
    # too many values in a typed field: make_ndarray refuses them, the C++ parser drops the extra ones
    "too_many_int_val": (
        tensor_proto([1, 1, SIZE, SIZE, 3], int_val=[5] * (FRAME + 1)), RAISES, frames_of(5, (1, 1, SIZE, SIZE, 3)),
        ["(1, 1, 8, 8, 3)", f"too many values: the shape holds {FRAME}, sent: {FRAME + 1} (int_val)"]),
    "values_for_an_empty_shape": (
        tensor_proto([0, 1, SIZE, SIZE, 3], int_val=[7]), RAISES, frames_of(0, (0, 1, SIZE, SIZE, 3)),
        ["(0, 1, 8, 8, 3)", "too many values: the shape holds 0, sent: 1 (int_val)"]),
    # tensor_content must hold exactly the shape's values (both parsers)
    "too_many_in_tensor_content": (
        tensor_proto([1, 1, SIZE, SIZE, 3], content=_bytes(FRAME + 1)), RAISES, RAISES,
        ["(1, 1, 8, 8, 3)", f"too many values: the shape needs {FRAME} ({FRAME} bytes of tensor_content), "
                            f"sent: {FRAME + 1} (tensor_content, {FRAME + 1} bytes)"]),
    "too_few_in_tensor_content": (
        tensor_proto([1, 1, SIZE, SIZE, 3], content=_bytes(FRAME - 1)), RAISES, RAISES,
        ["(1, 1, 8, 8, 3)", f"too few values: the shape needs {FRAME} ", f"sent: {FRAME - 1} (tensor_content"]),
    "one_value_in_tensor_content": (
        tensor_proto([2, 1, SIZE, SIZE, 3], content=_bytes(1)), RAISES, RAISES,
        ["(2, 1, 8, 8, 3)", f"too few values: the shape needs {2 * FRAME} ", "sent: 1 (tensor_content, 1 bytes)"]),
    # fewer values in a typed field are legal (both parsers): the last one is repeated, none gives zeros
    "one_int_val_fills_the_shape": (
        tensor_proto([2, 1, SIZE, SIZE, 3], int_val=[200]), frames_of(200, (2, 1, SIZE, SIZE, 3)), "same", None),
    "fewer_int_val_repeat_the_last": (
        tensor_proto([1, 2, SIZE, SIZE, 3], int_val=range(10)),
        np.concatenate([np.arange(10), np.full(2 * FRAME - 10, 9)]).astype(np.uint8).reshape(1, 2, SIZE, SIZE, 3),
        "same", None),
    "no_values_are_zeros": (
        tensor_proto([1, 1, SIZE, SIZE, 3]), frames_of(0, (1, 1, SIZE, SIZE, 3)), "same", None),
    # both parsers ignore unknown_rank (the listed dims are the shape) and read only the dtype's field
    "unknown_rank_is_ignored": (
        tensor_proto([1, 1, SIZE, SIZE, 3], content=_bytes(FRAME), unknown_rank=True),
        frames_of(_bytes(FRAME), (1, 1, SIZE, SIZE, 3)), "same", None),
    "float_val_of_a_uint8_is_not_read": (
        tensor_proto([1, 1, SIZE, SIZE, 3], float_val=[9.0] * FRAME), frames_of(0, (1, 1, SIZE, SIZE, 3)),
        "same", None),
}


@pytest.fixture(scope="module")
def raw_stub(served):
    """A bare PredictionService stub, to send hand-built TensorProtos (the client builds only good ones)."""
    with grpc.insecure_channel(served.target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_tensor_protos_are_judged_as_tensorflow_parses_them(served, raw_stub, case):
    import tensorflow as tf

    proto, by_make_ndarray, by_cpp, needles = MALFORMED[case]
    by_cpp = by_make_ndarray if isinstance(by_cpp, str) else by_cpp
    # the references: TensorFlow's two parsers on the very same proto
    if by_make_ndarray is RAISES:
        with pytest.raises(ValueError):
            tf.make_ndarray(proto)
    else:
        np.testing.assert_array_equal(tf.make_ndarray(proto), by_make_ndarray, strict=True)
    if by_cpp is RAISES:
        with pytest.raises(tf.errors.InvalidArgumentError, match="Cannot parse tensor from proto"):
            tf.io.parse_tensor(proto.SerializeToString(), tf.uint8)
    else:
        np.testing.assert_array_equal(tf.io.parse_tensor(proto.SerializeToString(), tf.uint8).numpy(), by_cpp,
                                      strict=True)
    assert (needles is None) == (by_make_ndarray is not RAISES and by_cpp is not RAISES)  # the rule under test

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["frames"].CopyFrom(proto)
    if needles is None:  # TF accepts it: the server answers, on the array TF reads
        logits = tf.make_ndarray(raw_stub.Predict(request, timeout=30).outputs["logits"])
        np.testing.assert_allclose(logits, reference(by_make_ndarray, *served.toy_weights)[0], rtol=1e-5, atol=1e-5)
        return
    with pytest.raises(grpc.RpcError) as info:
        raw_stub.Predict(request, timeout=30)
    code, details = info.value.code(), info.value.details()
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    prefix = ("input 'frames' of signature 'serving_default' of model 'toy': malformed TensorProto (uint8, "
              "tensor_shape ")
    assert details.startswith(prefix), details
    assert all(n in details for n in needles), details


@pytest.mark.parametrize("spec, needle", [
    ({"model_name": "nope"}, "model 'nope' not found"),
    ({"model_name": "toy", "signature_name": "classify"}, "signature 'classify' not found"),
    ({"model_name": "toy", "version": 7}, "version 7 of model 'toy'"),
])
def test_unknown_model_signature_version_are_not_found(served, client, spec, needle):
    with PredictClient(served.target, retries=0, **spec) as other:
        with pytest.raises(ServingError) as info:
            other.predict(frames=clips(3))
    assert info.value.code == grpc.StatusCode.NOT_FOUND and needle in info.value.details, info.value
    assert client.predict(frames=clips(3))["logits"].shape == (2, CLASSES)


def test_messages_over_grpc_default_4mb_limit(served, client):
    frames = clips(4, batch=1, time_steps=25_000)  # 4.8 MB > gRPC's default 4 MB
    np.testing.assert_allclose(client.predict(frames=frames)["logits"], reference(frames, *served.toy_weights)[0],
                               rtol=1e-4, atol=1e-5)
    with PredictClient(served.target, model_name="toy", max_message_mb=1, retries=0) as small:
        with pytest.raises(ServingError) as info:
            small.predict(frames=frames)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_50_concurrent_requests(served, client):
    def one(i):
        frames = clips(100 + i, batch=1 + i % 3, time_steps=1 + i % 4)
        return frames, client.predict(frames=frames)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(50)))
    assert len(results) == 50
    for frames, out in results:
        logits, probabilities = reference(frames, *served.toy_weights)
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"], probabilities, rtol=1e-5, atol=1e-6)


def test_new_version_is_picked_up_while_serving(served):
    frames = clips(5)
    with PredictClient(served.target, model_name="growing", retries=2, backoff=0.1) as growing:
        np.testing.assert_allclose(growing.predict(frames=frames)["logits"],
                                   reference(frames, *served.grow_weights)[0], rtol=1e-5, atol=1e-5)
        model2, kernel2, bias2 = make_classifier(2)
        export(model2, served.base, "growing")  # version 2
        deadline = time.monotonic() + 20
        while [(s.version, s.state) for s in growing.status()] != [(2, "AVAILABLE")]:
            assert time.monotonic() < deadline, growing.status()
            time.sleep(0.2)
        logits = growing.predict(frames=frames)["logits"]
        np.testing.assert_allclose(logits, reference(frames, kernel2, bias2)[0], rtol=1e-5, atol=1e-5)
        assert np.abs(logits - reference(frames, *served.grow_weights)[0]).max() > 0.1
    with PredictClient(served.target, model_name="growing", version=1, retries=0) as old:
        with pytest.raises(ServingError) as info:  # the "latest" policy unloaded version 1
            old.predict(frames=frames)
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_client_retries_until_server_starts(served):
    port = free_port()
    server = DevServer(served.base, port=port, poll_seconds=0)
    timer = threading.Timer(1.0, server.start)
    start = time.monotonic()
    timer.start()
    try:
        with PredictClient(f"127.0.0.1:{port}", model_name="toy", retries=12, backoff=0.1, max_backoff=0.4) as c:
            statuses = c.status()
            waited = time.monotonic() - start
            frames = clips(6)
            logits = c.predict(frames=frames)["logits"]
    finally:
        timer.join()
        server.stop()
    assert statuses == [VersionStatus(1, "AVAILABLE")] and waited >= 0.9
    np.testing.assert_allclose(logits, reference(frames, *served.toy_weights)[0], rtol=1e-5, atol=1e-5)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "fake"


def test_call_with_retries_only_retries_unavailable():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)
        return "ok"

    assert call_with_retries(flaky, 5, 0.1, 1.0, sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [0.1, 0.2]

    def failing(code):
        def call():
            calls.append(1)
            raise FakeRpcError(code)
        return call

    calls.clear(), sleeps.clear()
    with pytest.raises(FakeRpcError) as info:
        call_with_retries(failing(grpc.StatusCode.INVALID_ARGUMENT), 5, 0.1, 1.0, sleeps.append)
    assert len(calls) == 1 and sleeps == [] and info.value.attempts == 1
    calls.clear()
    with pytest.raises(FakeRpcError) as info:
        call_with_retries(failing(grpc.StatusCode.UNAVAILABLE), 3, 0.5, 1.0, sleeps.append)
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 1.0] and info.value.attempts == 4


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="model_name"):
        PredictClient("localhost:1", model_name="")
    with pytest.raises(ValueError, match="version"):
        PredictClient("localhost:1", model_name="toy", version=0)
    with pytest.raises(ValueError, match="model_base"):
        DevServer(tmp_path / "missing")
    with pytest.raises(ValueError, match="version_policy"):
        DevServer(tmp_path, version_policy="newest")


def test_real_tensorflow_model_server(tmp_path):
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server not on PATH (not installable here; see README)")
    model, kernel, bias = make_classifier(0)
    export(model, tmp_path, "toy", serving_base_path=str(tmp_path))
    port = free_port()
    proc = subprocess.Popen([binary, f"--port={port}", f"--model_config_file={tmp_path / 'models.config'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with PredictClient(f"127.0.0.1:{port}", model_name="toy") as real:
            real.wait_until_healthy(timeout=60)
            check_basic(real, model, kernel, bias)
            with pytest.raises(ServingError) as info:
                real.predict(frames=clips(1).astype(np.float32))
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        proc.terminate()
        proc.wait(30)


def test_tvnet_two_stream_model_over_grpc(served):
    """The recipe's model kind, exported as the recipe does (XLA off, ``flow`` signature), added
    while the server runs: answers equal the Keras model's for batch > stacks and batch < stacks."""
    import tensorflow as tf

    from tfvideo.export import classifier_signature, export_for_serving, function_signature
    from tfvideo.models import tvnet

    model = tvnet.without_xla(tvnet.two_stream(
        tvnet.spatial_stream(3, size=(16, 16)),
        tvnet.temporal_stream(3, size=(16, 16), tvnet={"iterations": 3, "xla_iterations": True})))
    layer = model.get_layer("temporal").get_layer("flow_stack").tvnet
    spec = tf.TensorSpec((None, 16, 16, 3), tf.uint8)
    flow_sig = function_signature(lambda a, b: layer([tf.cast(a, tf.float32), tf.cast(b, tf.float32)]),
                                  {"frame0": spec, "frame1": spec}, "flow")
    export_for_serving(model, served.base, "tvnet", print_signatures=False,
                       signatures={"serving_default": classifier_signature(model), "flow": flow_sig})
    with PredictClient(served.target, model_name="tvnet", retries=3, backoff=0.2) as c:
        c.wait_until_healthy(timeout=30)
        rng = np.random.default_rng(0)
        for batch, stacks in ((3, 2), (1, 3)):
            frames = rng.integers(0, 256, (batch, stacks, 6, 16, 16, 3), dtype=np.uint8)
            out = c.predict(frames=frames)
            np.testing.assert_allclose(out["logits"], model(frames).numpy(), rtol=1e-4, atol=1e-5)
        with PredictClient(served.target, model_name="tvnet", signature_name="flow") as f:
            got = f.predict(frame0=frames[:, 0, 0], frame1=frames[:, 0, 1])["flow"]
        ref = layer([frames[:, 0, 0].astype(np.float32), frames[:, 0, 1].astype(np.float32)])
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-5)


def test_dff_signatures_and_runner_over_grpc(served):
    """DFF's exported signatures (``dff_runner.signatures``) answered over gRPC equal the Keras parts
    called directly, and Algorithm 1 through :class:`ServedSignatures` equals the in-process runner."""
    import tensorflow as tf

    from tfvideo.layers.dff import CropToFrame
    from tfvideo.layers.feature_warp import FeatureWarp
    from tfvideo.models import dff
    from tfvideo.models.dff_runner import DFFVideoRunner, signatures
    from tfvideo.serving import ServedSignatures

    keras.utils.set_random_seed(3)
    model = dff.dff_segmenter("small", 3, flow="tiny", frame_size=(None, None))
    n_feat, n_task, flow_net = (model.get_layer(n) for n in ("n_feat", "n_task", "flownet"))
    # a scale field away from 1 (its weights start at 0), so that S is exercised too
    scale_conv = flow_net.get_layer("scale_conv")
    scale_conv.set_weights([np.random.default_rng(1).normal(0, 0.05, w.shape).astype(np.float32)
                            for w in scale_conv.get_weights()])
    export_for_serving(model, served.base, "dff", signatures=signatures(model), print_signatures=False)  # no XLA

    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (6, 128, 128, 3), dtype=np.uint8)
    cur, key = frames[1:2], frames[0:1]
    tol = dict(rtol=1e-4, atol=1e-4)
    with ServedSignatures(served.target, "dff", retries=3, backoff=0.2, timeout=60) as remote:
        with PredictClient(served.target, model_name="dff", retries=3, backoff=0.2) as health:
            health.wait_until_healthy(timeout=60)
        assert sorted(remote.signatures) == ["key_features", "motion", "propagate", "serving_default", "task"]
        sig = remote.signatures
        # (a) each signature against the Keras parts called directly
        features = n_feat(key, training=False).numpy()
        got = sig["key_features"](frames=key)["features"]
        assert isinstance(got, tf.Tensor) and got.dtype == tf.float32
        np.testing.assert_allclose(got.numpy(), features, **tol)
        direct = flow_net(np.stack([cur, key], axis=1), training=False)
        motion = sig["motion"](frame=cur, key_frame=key)
        np.testing.assert_allclose(motion["flow"].numpy(), direct["flow"].numpy(), **tol)
        np.testing.assert_allclose(motion["scale"].numpy(), direct["scale"].numpy(), **tol)
        assert np.abs(direct["flow"].numpy()).max() > 1e-3 and np.abs(direct["scale"].numpy() - 1).max() > 1e-3
        warped = FeatureWarp()([features, direct["flow"], direct["scale"]]).numpy()
        np.testing.assert_allclose(sig["propagate"](frame=cur, key_frame=key, features=features)["features"].numpy(),
                                   warped, **tol)
        logits = CropToFrame()([n_task(warped, training=False), cur]).numpy()
        task = sig["task"](features=warped, frame=cur)
        np.testing.assert_allclose(task["logits"].numpy(), logits, **tol)
        np.testing.assert_array_equal(task["labels"].numpy(), logits.argmax(-1))
        with pytest.raises(KeyError, match="'flow'.*serves"):
            sig["flow"]
        with pytest.raises(ServingError) as info:
            sig["motion"](frame=cur)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "key_frame" in info.value.details

        # (b) Algorithm 1 (fixed l = 3) over gRPC == in process: same outputs, same key frames
        local = DFFVideoRunner.from_model(model, key_interval=3)
        over_grpc = DFFVideoRunner.from_signatures(remote, key_interval=3)
        expected, got = list(local.run(frames)), list(over_grpc.run(frames))
    assert [(i, k) for i, _, k in got] == [(i, k) for i, _, k in expected]
    assert over_grpc.key_frames == local.key_frames == [0, 3] and over_grpc.feature_calls == 2
    for (_, a, _), (_, b, _) in zip(got, expected):
        assert a.shape == (128, 128, 3)
        np.testing.assert_allclose(a, b, **tol)
    with pytest.raises(ValueError, match="closed"):
        remote.signatures["task"]


def test_dff_detection_signatures_over_grpc(served):
    """The DFF detector's export (``dff_runner.signatures`` of ``rfcn.dff_detector``): ``serving_default``
    (Frame) and ``task`` answer boxes / classes / scores / num_detections over gRPC equal to the Keras
    parts called directly, and Algorithm 1 through :class:`ServedSignatures` equals the in-process runner."""
    import tensorflow as tf

    from tfvideo.models import rfcn
    from tfvideo.models.dff_runner import DFFVideoRunner, signatures
    from tfvideo.serving import ServedSignatures

    keras.utils.set_random_seed(5)
    model = rfcn.dff_detector("small", 3, flow="tiny", frame_size=(None, None))
    n_feat, n_task, head = (model.get_layer(n) for n in ("n_feat", "n_task", "rfcn_head"))
    # scores far from uniform (features of unit scale, larger score weights): near-ties would let the
    # rounding of another kernel flip which of two boxes NMS keeps
    rng = np.random.default_rng(2)
    for part, name, std in ((n_feat, "feat_conv_3x3", 0.3), (n_task, "rfcn_cls", 0.3), (n_task, "rpn_cls_score", 0.3)):
        conv = part.get_layer(name)
        conv.set_weights([rng.normal(0, std, w.shape).astype(np.float32) for w in conv.get_weights()])
    export_for_serving(model, served.base, "dffdet", signatures=signatures(model), print_signatures=False)

    frames = rng.integers(0, 256, (4, 128, 256, 3), dtype=np.uint8)
    tol = dict(rtol=1e-3, atol=1e-3)
    with ServedSignatures(served.target, "dffdet", retries=3, backoff=0.2, timeout=60) as remote:
        with PredictClient(served.target, model_name="dffdet", retries=3, backoff=0.2) as health:
            health.wait_until_healthy(timeout=60)
        sig = remote.signatures
        features = n_feat(frames[:1], training=False)
        direct = head({**n_task(features, training=False), "frames": tf.constant(frames[:1])},
                      training=False).numpy()[0]
        for out in (sig["serving_default"](frames=frames[:1]), sig["task"](features=features.numpy(), frame=frames[:1])):
            assert sorted(out) == ["boxes", "classes", "detections", "num_detections", "scores"]
            n = int(out["num_detections"].numpy()[0])
            assert n == int((direct[:, 5] >= 0).sum()) > 0
            np.testing.assert_allclose(out["boxes"].numpy()[0, :n], direct[:n, :4], **tol)
            np.testing.assert_allclose(out["scores"].numpy()[0, :n], direct[:n, 4], **tol)
            np.testing.assert_array_equal(out["classes"].numpy()[0, :n], direct[:n, 5].astype(np.int32))
            assert out["classes"].dtype == tf.int32 and np.all(out["classes"].numpy()[0, n:] == -1)
        local = DFFVideoRunner.from_model(model, key_interval=3)
        over_grpc = DFFVideoRunner.from_signatures(remote, key_interval=3)
        expected, got = list(local.run(frames)), list(over_grpc.run(frames))
    assert over_grpc.key_frames == local.key_frames == [0, 3] and over_grpc.feature_calls == 2
    for (_, a, _), (_, b, _) in zip(got, expected):
        assert a.shape == (300, 6)
        used = b[:, 5] >= 0
        np.testing.assert_array_equal(a[:, 5] >= 0, used)
        np.testing.assert_allclose(a[used], b[used], **tol)


def test_thesis_video_heads_answer_over_grpc_for_any_clip_length(served):
    """Chapter 3's heads exported as the snippets recipe exports them (Conv Pooling's softmax and the LSTM
    head's gain-weighted average, frames (B, T, H, W, 3) with T unknown) answer over gRPC like Keras for
    clips of 3 and 8 frames."""
    import tensorflow as tf

    from tfvideo.export import function_signature
    from tfvideo.layers.lstm import GainWeightedAverage
    from tfvideo.models.snippets import lstm_model, pooling_model

    keras.utils.set_random_seed(6)
    shape = (None, 24, 24, 3)
    frames = keras.Input(shape, dtype="uint8", name="frames")
    conv = pooling_model(4, "conv", input_shape=shape, fc_units=8)
    lstm = lstm_model(4, input_shape=shape, layers=2, units=5)
    heads = {"conv_pooling": keras.layers.Softmax()(conv(frames)),
             "lstm": GainWeightedAverage("weighted", from_logits=True)(lstm(frames))}
    model = keras.Model(frames, heads)
    spec = {"frames": tf.TensorSpec((None, None, 24, 24, 3), tf.uint8)}
    sigs = {k: function_signature(lambda x, k=k: {"probabilities": model(x, training=False)[k]}, spec,
                                  ("probabilities",)) for k in heads}
    sigs["serving_default"] = sigs["lstm"]
    export_for_serving(model, served.base, "snippets", signatures=sigs, print_signatures=False)
    rng = np.random.default_rng(1)
    for name in ("conv_pooling", "lstm"):
        with PredictClient(served.target, model_name="snippets", signature_name=name, retries=3, backoff=0.2) as c:
            c.wait_until_healthy(timeout=60)
            for t in (3, 8):
                clip = rng.integers(0, 256, (2, t, 24, 24, 3), dtype=np.uint8)
                got = c.predict(frames=clip)["probabilities"]
                np.testing.assert_allclose(got, model(clip)[name].numpy(), rtol=1e-4, atol=1e-6)
                np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


def test_actionflownet_classifier_without_decoder_answers_over_grpc(served):
    """ActionFlowNet exported as its recipe exports it (the decoder dropped, digest 4.2 "Inference"): the
    served class scores equal the full multitask model's logits, and the SavedModel has no decoder."""
    import tensorflow as tf

    from tfvideo.export import classifier_signature
    from tfvideo.models.actionflownet import actionflownet, classifier_model

    keras.utils.set_random_seed(7)
    model = actionflownet(4, num_frames=8, input_size=(32, 32), widths=(4, 8, 8, 16))
    classifier = classifier_model(model)
    spec = tf.TensorSpec((None, 8, 32, 32, 3), tf.uint8)
    path = export_for_serving(classifier, served.base, "actionflownet", print_signatures=False,
                              signatures={"serving_default": classifier_signature(classifier, spec)})
    loaded = tf.saved_model.load(path)
    assert not any("deconv" in v.name or "predict_flow" in v.name for v in loaded.variables)
    clip = np.random.default_rng(2).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    with PredictClient(served.target, model_name="actionflownet", retries=3, backoff=0.2) as c:
        c.wait_until_healthy(timeout=60)
        got = c.predict(frames=clip)
    np.testing.assert_allclose(got["logits"], model(clip, training=False)["logits"].numpy(), rtol=1e-4, atol=1e-5)


def test_vlad_descriptor_model_answers_over_grpc(served):
    """The retrieval recipe's export (images of any size -> the multi-scale VLAD descriptor of one layer)
    answers over gRPC like Keras, and its descriptors are unit vectors."""
    import tensorflow as tf

    from recipes.vlad_retrieval import export_model
    from tfvideo.models.retrieval import multiscale_features

    keras.utils.set_random_seed(8)
    features = multiscale_features("vgg16", ["block2_conv1"], size=32, scales=(1, 2))
    rng = np.random.default_rng(3)
    centers = {f"block2_conv1_s{s}": rng.normal(size=(4, 128)).astype(np.float32) for s in (1, 2)}
    cfg = {"scales": [1, 2]}
    path, model = export_model(features, centers, "block2_conv1", cfg, None,
                               os.path.join(served.base, "vlad"), True)
    assert tf.saved_model.load(path).signatures["serving_default"] is not None
    with PredictClient(served.target, model_name="vlad", retries=3, backoff=0.2) as c:
        c.wait_until_healthy(timeout=60)
        for shape in ((2, 40, 56, 3), (1, 64, 48, 3)):          # any image size
            images = rng.integers(0, 256, shape, dtype=np.uint8)
            got = c.predict(images=images)
            want = model(images)
            np.testing.assert_allclose(got["descriptor"], want["descriptor"].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(np.linalg.norm(got["descriptor"], axis=1), 1.0, rtol=1e-5)
            assert got["descriptor"].shape == (shape[0], 2 * 4 * 128)
