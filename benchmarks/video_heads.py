"""The video heads of Ng's thesis (chapters 3 and 5) side by side with their peers, in one run.

    python benchmarks/video_heads.py [--quick] [--frames 30] [--size 64] [--batch 4] [--repeats 5]
                                     [--json out.json]

Ratios, not absolute times (shared machines are noisy); every row is timed in the same rounds,
interleaved (one call of each in turn, the order rotating), medians over rounds:

1. **The peephole LSTM against Keras's LSTM.** ``tfvideo.layers.DeepLSTM`` (our ``PeepholeLSTMCell`` in
   ``keras.layers.RNN``, Eqs. 3.3-3.7) against a stack of ``keras.layers.LSTM`` of the same size (its
   fused kernel, no peepholes) and our cell with ``use_peepholes=False``: forward and a training step
   (forward + backward + Adam) on ``(batch, T, 512)`` sequences, 5 x 512 as in the thesis (``--quick``:
   2 x 64). What the peepholes and the generic RNN loop cost.
2. **The chapter-3 heads on one per-frame CNN.** Conv Pooling, Late Pooling, Slow Pooling and the LSTM
   head (:mod:`tfvideo.models.snippets`, the ``small`` CNN at ``--size``) against the per-frame CNN alone
   (the single-frame model applied to every frame, the floor every head pays): clips per second, training
   step time. ``PerSegment`` (time folded into the batch) against ``keras.layers.TimeDistributed``
   around the same CNN, with a fixed clip length (where TimeDistributed works).
3. **Ng & Davis 2018 TDN against its image branch (TSN).** ``tfvideo.models.tdn.tdn`` (``small``, taps
   input..res3) and its image branch alone on ``s`` = 3 snippets: the TDN costs about two networks (the
   difference subnetwork on s - 1 pairs) plus the image-feature differences.

No timing is asserted anywhere (tests/test_benchmarks_video_heads.py runs a tiny configuration).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.files import atomic_write_json  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _step(model, loss):
    """A compiled training step ``(x, y) -> loss`` (graph mode) and a forward ``x -> y``."""
    import keras

    opt = keras.optimizers.Adam(1e-4)
    forward = tf.function(lambda x: model(x, training=False))

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_weights)
        opt.apply_gradients(zip(grads, model.trainable_weights))
        return value

    return forward, train


def interleaved(calls, rounds, clock=time.perf_counter):
    """``{name: fn()}`` timed in rounds, one call each per round in a rotating order; medians (s) of ``clock``
    (wall time by default; ``time.process_time``: the process's CPU time over all its threads)."""
    names = list(calls)
    times = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            start = clock()
            out = calls[n]()
            np.asarray(out)  # fetch
            times[n].append(clock() - start)
    return {n: statistics.median(v) for n, v in times.items()}


def lstm_rows(batch, frames, layers, units, rounds):
    import keras

    from tfvideo.layers.lstm import DeepLSTM

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, frames, units)).astype(np.float32))
    y = tf.constant(rng.normal(size=(batch, frames, units)).astype(np.float32))
    mse = keras.losses.MeanSquaredError()

    def keras_stack():
        inp = keras.Input((None, units))
        h = inp
        for _ in range(layers):
            h = keras.layers.LSTM(units, return_sequences=True)(h)
        return keras.Model(inp, h)

    def ours(peepholes):
        inp = keras.Input((None, units))
        return keras.Model(inp, DeepLSTM(layers, units, use_peepholes=peepholes)(inp))

    models = {"keras.layers.LSTM": keras_stack(), "DeepLSTM, plain cells": ours(False),
              "DeepLSTM, peepholes": ours(True)}
    calls = {}
    for name, model in models.items():
        forward, train = _step(model, mse)
        forward(x), train(x, y)  # trace
        calls[f"{name} | forward"] = lambda f=forward: f(x)
        calls[f"{name} | train step"] = lambda t=train: t(x, y)
    return interleaved(calls, rounds)


def head_rows(batch, frames, size, rounds):
    import keras

    from tfvideo.layers import PerSegment
    from tfvideo.losses import GainWeightedCrossEntropy
    from tfvideo.models import snippets

    rng = np.random.default_rng(1)
    clip = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, 8, (batch,)))
    shape = (None, size, size, 3)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    models = {f"{h} pooling": (snippets.pooling_model(8, h, input_shape=shape, fc_units=256), ce)
              for h in ("conv", "late", "slow")}
    models["LSTM head (2 x 256)"] = (snippets.lstm_model(8, input_shape=shape, layers=2, units=256),
                                     GainWeightedCrossEntropy())
    cnn = snippets.backbone_maps("small", (size, size, 3))
    frames_in = keras.Input(shape, dtype="uint8")
    pre = snippets.preprocess_layer("small")(frames_in)
    models["per-frame CNN alone (PerSegment)"] = (keras.Model(frames_in, PerSegment(cnn)(pre)), None)
    fixed = keras.Input((frames, size, size, 3), dtype="uint8")
    td = keras.layers.TimeDistributed(snippets.backbone_maps("small", (size, size, 3)))(
        snippets.preprocess_layer("small")(fixed))
    models["per-frame CNN alone (TimeDistributed)"] = (keras.Model(fixed, td), None)
    calls = {}
    for name, (model, loss) in models.items():
        forward = tf.function(lambda x, m=model: m(x, training=False))
        forward(clip)
        calls[f"{name} | forward"] = lambda f=forward: f(clip)
        if loss is not None:
            _, train = _step(model, loss)
            train(clip, labels)
            calls[f"{name} | train step"] = lambda t=train: t(clip, labels)
    return interleaved(calls, rounds)


def tdn_rows(batch, size, rounds, segments=3):
    import keras

    from tfvideo.models.tdn import tdn

    rng = np.random.default_rng(2)
    x = tf.constant(rng.integers(0, 256, (batch, segments, size, size, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, 8, (batch,)))
    model = tdn(8, backbone="small", input_shape=(size, size, 3), dropout=0.0)
    image = keras.Model(model.input, model.get_layer("image_consensus").output)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    calls = {}
    for name, m in (("image branch alone (TSN)", image), ("Ng & Davis 2018 TDN", model)):
        forward, train = _step(m, ce)
        forward(x), train(x, labels)
        calls[f"{name} | forward"] = lambda f=forward: f(x)
        calls[f"{name} | train step"] = lambda t=train: t(x, labels)
    return interleaved(calls, rounds)


def report(title, times, baseline):
    print(f"\n{title}")
    print(f"  {'model | pass':58s} {'ms':>9s} {'ratio':>7s}")
    for name, t in times.items():
        kind = name.split(" | ")[1]
        base = times.get(f"{baseline} | {kind}")
        ratio = "-" if base is None else f"{t / base:.2f}x"
        print(f"  {name:58s} {1e3 * t:9.1f} {ratio:>7s}")
    print(f"  (ratio: time over {baseline}'s for the same pass)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: small sizes, 2 rounds")
    p.add_argument("--frames", type=int, help="clip length T (default 30, the thesis's LSTM unroll)")
    p.add_argument("--size", type=int, help="frame size of the chapter-3 heads and TDN (default 64)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, help="timed rounds (default 5; --quick 2)")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    frames = args.frames or (6 if args.quick else 30)
    size = args.size or (32 if args.quick else 64)
    rounds = args.repeats or (2 if args.quick else 5)
    layers, units = (2, 64) if args.quick else (5, 512)
    import keras

    log(f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}; batch {args.batch}, T = {frames}")
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    out = {"argv": sys.argv[1:] if argv is None else list(argv), "batch": args.batch, "frames": frames,
           "size": size, "rounds": rounds}
    out["lstm"] = lstm_rows(args.batch, frames, layers, units, rounds)
    report(f"1. deep LSTM {layers} x {units} on ({args.batch}, {frames}, {units})", out["lstm"], "keras.layers.LSTM")
    out["heads"] = head_rows(args.batch, frames, size, rounds)
    report(f"2. chapter-3 heads on the small CNN, clips ({args.batch}, {frames}, {size}, {size}, 3)", out["heads"],
           "per-frame CNN alone (PerSegment)")
    out["tdn"] = tdn_rows(args.batch, size, rounds)
    report(f"3. TDN (small, taps input..res3) on ({args.batch}, 3, {size}, {size}, 3)", out["tdn"],
           "image branch alone (TSN)")
    out["seconds"] = time.perf_counter() - start
    print(f"\n{out['seconds']:.0f} s in all")
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
