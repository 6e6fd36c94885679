"""Serving latency: gRPC (dev server + PredictClient) against the same model called in process, in one run.

    python benchmarks/serving.py [--quick] [--models conv,tvnet_flow] [--batches 1,8]
                                 [--repeats 30] [--warmup 3] [--concurrency 4] [--json out.json]

Models (random weights, seeded; input ``frames`` uint8 ``(B, 3, 6, 112, 112, 3)``: 3 TSN segments of
6-frame stacks at 112 x 112: 0.65 MiB per clip, 5.2 MiB at batch 8):

* ``conv``: the 3 stacks in a row ``(B, 18, 112, 112, 3)``, scaled to [-1, 1], three ``Conv3D`` (3 x 3 x
  3, ReLU; 16, 32, 64 filters, strides (1, 2, 2), 2, 2), global average pooling, ``Dense(101)``: cheap
  compute (about 0.2 GFLOP per clip), so the serving overhead shows.
* ``tvnet_flow``: :class:`tfvideo.models.tvnet.FlowStack` with TVNet-10 (1 scale, 1 warp, 10
  iterations; 5 flows per stack, 15 per clip, XLA off) scaled by ``FLOW_SCALE``, then a per-segment 2D
  CNN written as ``Conv3D`` with 1 x 3 x 3 kernels (32, 64, 64 filters, stride 2), global average
  pooling over segments and space, ``Dense(101)``: the temporal stream's work with a small CNN.

Why not :func:`tfvideo.models.tvnet.two_stream` itself: its streams run the CNN per segment with
``keras.layers.TimeDistributed``, and in Keras 3.15 that layer, traced with an unknown segment count (as
in the exported signature, ``frames`` ``(None, None, 6, 112, 112, 3)``), maps over the *batch* size
instead of the segments (``keras/src/layers/rnn/time_distributed.py`` takes ``ops.shape(inputs)`` before
swapping the batch and time axes): batch 8 with 3 segments fails ("slice index 3 of dimension 0 out of
bounds") and batch 1 averages only the first segment. The models above avoid the layer.

Each model is exported with :func:`tfvideo.export.export_for_serving` (``classifier_signature``:
outputs ``logits`` and ``probabilities``) into a temporary folder, and one development server
(``python -m tfvideo.serving.dev_server --port 0``, a subprocess) serves them all.

Methods (same input array for all; per call: latency; the table gives p50 and p95 over ``--repeats``
timed calls after ``--warmup`` untimed ones; the first three rows are timed round-robin, one call of
each per round, so that load from other processes hits them alike):

* ``keras predict``: ``model.predict(x, verbose=0)`` in this process.
* ``saved_model``: the exported SavedModel loaded in this process (``tf.saved_model.load``), its
  ``serving_default`` signature called on ``tf.constant(x)`` and the outputs fetched with ``.numpy()``.
  This is exactly what the dev server runs per request, so it is **the peer**: ``x peer`` is
  p50 / peer p50.
* ``grpc``: ``PredictClient.predict(frames=x)`` against the dev server, one request at a time:
  encoding (``tf.make_tensor_proto``), gRPC over loopback, decoding and checking on the server, the same
  signature call, and the way back.
* ``grpc xN``: ``--concurrency`` client threads sharing one client, ``--repeats`` requests in all;
  latency of each request under that load, throughput = clips / wall time.
* ``serialise``: only the protobuf work of one request and its response, no network and no model:
  ``make_tensor_proto`` + ``SerializeToString`` + ``FromString`` + ``make_ndarray`` for the input and
  for both outputs.

``overhead`` = gRPC p50 - peer p50 (what serving over gRPC adds per request); the last column gives
``serialise`` as a share of it. ``max|d|``: the largest absolute difference between the row's logits
and the peer's (gRPC returns the same floats: 0 expected). The server runs in another process on the
same 2 cores, so the in-process rows run while it idles.

Timings are ratios measured in the same run on the same machine; absolute times on shared machines are
noisy. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import select
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

from tfvideo.export import classifier_signature, export_for_serving  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402
from tfvideo.models import tvnet  # noqa: E402
from tfvideo.serving import PredictClient  # noqa: E402

SEGMENTS, STACK, SIZE, CLASSES = 3, 6, 112, 101
MODELS = ("conv", "tvnet_flow")


def build(name):
    """The benchmark models (see the module docstring), seeded, XLA off."""
    keras.utils.set_random_seed(0)
    frames = keras.Input((None, STACK, SIZE, SIZE, 3), dtype="uint8", name="frames")
    if name == "conv":  # the segments' stacks in a row: (B, S * K, H, W, 3), then a small 3D CNN
        x = keras.layers.Reshape((-1, SIZE, SIZE, 3))(frames)
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
        for filters, strides in ((16, (1, 2, 2)), (32, 2), (64, 2)):
            x = keras.layers.Conv3D(filters, 3, strides=strides, padding="same", activation="relu")(x)
    else:  # TVNet-10 flow stacks (B, S, H, W, 10), then a per-segment 2D CNN (1 x 3 x 3 Conv3D)
        x = tvnet.FlowStack({"scales": 1, "warps": 1, "iterations": 10}, name="flow_stack")(frames)
        x = keras.layers.Rescaling(tvnet.FLOW_SCALE)(x)
        for filters in (32, 64, 64):
            x = keras.layers.Conv3D(filters, (1, 3, 3), strides=(1, 2, 2), padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(frames, keras.layers.Dense(CLASSES)(x), name=name)


def start_server(base, timeout=120):
    """Dev server subprocess on a free port; returns (process, target)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "tfvideo.serving.dev_server", "--model-base", base,
                             "--port", "0", "--poll-seconds", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline, line = time.monotonic() + timeout, ""
    while not line.startswith("serving "):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the dev server did not start (run it by hand to see why)")
    return proc, line.rsplit(" on ", 1)[1].strip()


def timed(fns, repeats, warmup):
    """Round-robin timing: ``repeats`` rounds calling every function of ``{name: fn}`` once, after
    ``warmup`` untimed rounds (so that a burst of load from other processes hits all alike).
    Returns ``{name: (latencies in s, last output)}``."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times, outs = {name: [] for name in fns}, {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    return {name: (times[name], outs[name]) for name in fns}


def timed_concurrent(fn, repeats, warmup, threads):
    """Per-request latencies with ``threads`` concurrent callers, wall time, last output."""
    for _ in range(warmup):
        fn()
    lock, times, outs = threading.Lock(), [], []

    def one(_):
        t = time.perf_counter()
        out = fn()
        with lock:
            times.append(time.perf_counter() - t)
            outs.append(out)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(repeats)))
    return times, time.perf_counter() - start, outs[-1]


def serialise_round_trip(x, outputs):
    """The protobuf work of one Predict call without network or model (request and response)."""
    request = predict_pb2.PredictRequest()
    request.inputs["frames"].CopyFrom(tf.make_tensor_proto(x))
    tf.make_ndarray(predict_pb2.PredictRequest.FromString(request.SerializeToString()).inputs["frames"])
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    parsed = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    return {key: tf.make_ndarray(proto) for key, proto in parsed.outputs.items()}


def percentile(times, q):
    return float(np.percentile(times, q))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 timed calls per row, 2 warm-up calls")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma separated, from {MODELS}")
    parser.add_argument("--batches", default="1,8", help="batch sizes (clips per request)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads of the 'grpc xN' row (0: no row)")
    parser.add_argument("--json", help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if any(m not in MODELS for m in models):
        raise SystemExit(f"--models: choose from {MODELS}, got {args.models!r}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        raise SystemExit(f"--batches: expected integers like 1,8; got {args.batches!r}") from None
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 8), min(args.warmup, 2)
    if args.repeats < 2 or args.warmup < 1 or args.concurrency < 0 or min(batches) < 1:
        raise SystemExit("--repeats must be >= 2, --warmup and --batches >= 1, --concurrency >= 0")

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPUs: {os.cpu_count()} ({usable} usable), TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"Python {platform.python_version()}; frames (B, {SEGMENTS}, {STACK}, {SIZE}, {SIZE}, 3) uint8; "
          f"{args.warmup} warm-up + {args.repeats} timed calls per row", flush=True)
    results = dict(tensorflow=tf.__version__, usable_cpus=usable, repeats=args.repeats, warmup=args.warmup,
                   concurrency=args.concurrency, rows=[])
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as base:
        keras_models, signatures = {}, {}
        for name in models:
            t = time.perf_counter()
            model = keras_models[name] = build(name)
            path = export_for_serving(model, base, name, signatures={"serving_default": classifier_signature(model)},
                                      print_signatures=False)
            signatures[name] = tf.saved_model.load(path).signatures["serving_default"]
            print(f"  built and exported {name} ({model.count_params():,} parameters) in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        proc, target = start_server(base)
        print(f"  dev server up at {target} in {time.perf_counter() - t:.1f} s", flush=True)
        try:
            for name in models:
                with PredictClient(target, model_name=name) as client:
                    for batch in batches:
                        bench_one(name, batch, keras_models[name], signatures[name], client, args, results["rows"])
        finally:
            proc.terminate()
            proc.wait(30)
    if args.json:
        atomic_write_json(args.json, results, indent=1)
        print(f"\nwrote {args.json}")
    return results


def bench_one(name, batch, model, signature, client, args, out):
    """Times every method for one model and batch size, prints the table, appends rows to ``out``."""
    x = np.random.default_rng(batch).integers(0, 256, (batch, SEGMENTS, STACK, SIZE, SIZE, 3), dtype=np.uint8)
    runs = {
        "keras predict": lambda: {"logits": model.predict(x, verbose=0)},
        "saved_model": lambda: {k: v.numpy() for k, v in signature(frames=tf.constant(x)).items()},
        "grpc": lambda: client.predict(frames=x),
    }
    timings = timed(runs, args.repeats, args.warmup)
    rows = [dict(method=method, times=times, wall=sum(times), logits=outputs["logits"])
            for method, (times, outputs) in timings.items()]
    peer_outputs = timings["saved_model"][1]
    if args.concurrency:
        times, wall, outputs = timed_concurrent(runs["grpc"], args.repeats, args.warmup, args.concurrency)
        rows.append(dict(method=f"grpc x{args.concurrency}", times=times, wall=wall, logits=outputs["logits"]))
    times, outputs = timed({"s": lambda: serialise_round_trip(x, peer_outputs)}, args.repeats, args.warmup)["s"]
    rows.append(dict(method="serialise", times=times, wall=sum(times), logits=outputs["logits"]))
    report(name, batch, rows, out)


def report(name, batch, rows, out):
    """Prints one model/batch table and appends its rows (without raw arrays) to ``out``."""
    peer = next(r for r in rows if r["method"] == "saved_model")
    grpc_row = next(r for r in rows if r["method"] == "grpc")
    peer_p50, grpc_p50 = percentile(peer["times"], 50), percentile(grpc_row["times"], 50)
    overhead = grpc_p50 - peer_p50
    print(f"\n{name}, batch {batch} ({batch * SEGMENTS * STACK * SIZE * SIZE * 3 / 2**20:.1f} MiB per request; "
          f"peer = saved_model in process, p50 {peer_p50 * 1e3:.1f} ms)")
    header = f"{'method':14s} {'p50 ms':>8s} {'p95 ms':>8s} {'clips/s':>8s} {'x peer':>7s} {'max|d|':>8s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        p50, p95 = percentile(r["times"], 50), percentile(r["times"], 95)
        rate = batch * len(r["times"]) / r["wall"]
        diff = float(np.abs(r["logits"] - peer["logits"]).max())
        print(f"{r['method']:14s} {p50 * 1e3:8.2f} {p95 * 1e3:8.2f} {rate:8.1f} {p50 / peer_p50:7.2f} {diff:8.1e}")
        out.append(dict(model=name, batch=batch, method=r["method"], p50_ms=p50 * 1e3, p95_ms=p95 * 1e3,
                        clips_per_s=rate, ratio_to_peer=p50 / peer_p50, max_abs_diff=diff))
    serialise = percentile(next(r for r in rows if r["method"] == "serialise")["times"], 50)
    share = f"{serialise / overhead:.0%} of it" if overhead > 0 else "overhead below noise"
    print(f"gRPC overhead (p50 grpc - p50 peer): {overhead * 1e3:.2f} ms = {grpc_p50 / peer_p50:.2f}x the peer; "
          f"protobuf serialisation {serialise * 1e3:.2f} ms ({share})")
    out.append(dict(model=name, batch=batch, method="summary", overhead_ms=overhead * 1e3,
                    serialise_ms=serialise * 1e3, grpc_over_peer=grpc_p50 / peer_p50))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
