"""Data pipeline speed: decode -> shard, shard -> batch, and a small model's training steps, in one run.

    python benchmarks/data_pipeline.py [--quick] [--videos-per-class 40] [--workers 1,2]
                                       [--batch-size 8] [--batches 100] [--repeats 3]
                                       [--json out.json]

Data: the built-in ``motion`` set (:mod:`tfvideo.data.motion`: 8 classes, 24 frames of 96 x 128 per
video, Motion-JPEG AVI), generated into a temporary folder first (timed, but not part of any ratio).

Stages
------
1. **decode -> shard**: for each ``--workers`` value, :func:`tfvideo.data.prepare.prepare`
   (``"motion"``, the generated videos, split 1: train and test) into a fresh folder: AVI decoding,
   JPEG re-encoding and TFRecord writing, timed as a user runs it, i.e. including the start-up of the
   ``spawn`` worker pool (each worker imports TensorFlow, and this script: several seconds on 2 cores,
   which dominates on a set this small). Then the same listing again with
   :func:`tfvideo.data.shards.write_shards` and a *warm* pool (started and timed beforehand: until the
   workers have answered a few trivial tasks), which separates the start-up from the throughput.
   Reported: frames/s written (frames = the sum of ``frames`` over the splits of the summary) and the
   speed-up against the first ``--workers`` value, for both.
2. **shard -> batch**: the training pipelines of :mod:`tfvideo.data.pipeline` on the train shards,
   ``size=(80, 80)``, ``seed=0``: ``segment_dataset`` (3 segments x 6 frames, TSN crops, a TVNet
   stack per segment) and ``clip_dataset`` (16 frames, random crops). After a warm-up (pipeline
   start-up, shuffle buffer fill), ``--batches`` batches are iterated in eager Python: batches/s and
   decoded frames/s (frames per batch: ``B * 3 * 6`` and ``B * 16``).
3. **the peer, a small model**: on the same input shape ``(B, S, k, 80, 80, 3)`` uint8 (``S = 1``,
   ``k = 16`` for clips): rescale to [0, 1], fold each segment's frames into channels
   ``(B * S, 80, 80, 3k)``, 3 x ``Conv2D(32, 3, strides=2, relu)``, global average pooling,
   ``Dense(8)``, mean of the logits over the segments; SGD, sparse cross-entropy. Timed with
   ``model.fit(steps_per_epoch=...)`` (a callback stamps every step; warm-up steps, including the
   trace, are left out): *model alone* feeds one real batch from memory
   (``Dataset.from_tensors(batch).repeat()``), *model fed* feeds the pipeline itself.

Stages 2 and 3 run ``--repeats`` interleaved rounds (pipeline, model alone, model fed) per pipeline, all
printed; the table gives the medians, so that a burst of load from other processes does not decide a
ratio.

The table gives, per pipeline: the pipeline alone (batches/s), the model alone (steps/s), the model fed
by the pipeline (steps/s), ``pipeline/model`` (> 1: the pipeline alone is faster than the model's
training step, i.e. it is not the bottleneck) and ``fed/alone`` (1 = no loss from feeding through the
pipeline). On a CPU-only machine the pipeline and the model share the same cores, so *fed* is
normally below both; with a GPU, the model's step moves off the CPU.

Timings are ratios measured in the same run on the same machine; absolute times on shared machines are
noisy. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.data.motion import CLASSES, generate_motion  # noqa: E402
from tfvideo.data.pipeline import clip_dataset, segment_dataset  # noqa: E402
from tfvideo.data.prepare import list_dataset, prepare  # noqa: E402
from tfvideo.data.shards import make_pool, write_shards  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402

SIZE = (80, 80)
SEGMENTS, SEGMENT_FRAMES, CLIP_FRAMES = 3, 6, 16


def parse_workers(text):
    """``"1,2"`` -> ``[1, 2]`` (each >= 1)."""
    try:
        workers = [int(w) for w in text.split(",")]
    except ValueError:
        workers = []
    if not workers or min(workers) < 1 or len(set(workers)) != len(workers):
        raise SystemExit(f"--workers: expected distinct positive integers separated by commas, got {text!r}")
    return workers


def time_prepare(videos, out, workers, videos_per_class):
    """Decode -> shard of the generated set with ``workers`` processes, into fresh folders under ``out``.

    Returns seconds of :func:`prepare` (as a user runs it: the ``spawn`` pool start-up included),
    videos and frames written, and, on a second copy, the pool start-up alone (until the workers have
    answered ``4 * workers`` trivial tasks: each has imported TensorFlow, and this script) and the seconds
    of :func:`write_shards` with that warm pool (0 and an in-process run for ``workers == 1``).
    """
    t = time.perf_counter()
    summary = prepare("motion", os.path.join(out, "prepare"), data_dir=videos, workers=workers,
                      progress=False, log=None,
                      motion_options=dict(videos_per_class=videos_per_class, progress=False))
    seconds = time.perf_counter() - t
    if summary["skipped"]:
        raise RuntimeError(f"prepare skipped {len(summary['skipped'])} videos: {summary['skipped'][:2]}")
    frames = sum(s["frames"] for s in summary["splits"].values())

    listing = list_dataset("motion", videos, split=1)
    t = time.perf_counter()
    pool = make_pool(workers)
    try:
        if pool is not None:
            pool.map(os.getpgid, [0] * (4 * workers), chunksize=1)
        start = time.perf_counter() - t if pool is not None else 0.0
        t = time.perf_counter()
        warm = sum(write_shards(items, os.path.join(out, "warm"), split=name, dataset="motion",
                                workers=workers, pool=pool, progress=False)["frames"]
                   for name, items in listing.splits.items())
        warm_seconds = time.perf_counter() - t
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if warm != frames:
        raise RuntimeError(f"write_shards wrote {warm} frames, prepare {frames}")
    return dict(workers=workers, seconds=seconds, videos=summary["videos"], frames=frames,
                pool_start_seconds=start, warm_seconds=warm_seconds)


def pipelines(shards, batch_size):
    """``{name: (builder, S, k)}`` of the two training pipelines measured; the builder's batches are
    reshaped to the model's ``(B, S, k, H, W, 3)`` (a clip is one segment of 16 frames)."""
    return {
        "segment 3x6": (lambda: segment_dataset(
            shards, "train", training=True, batch_size=batch_size, num_segments=SEGMENTS,
            frames_per_segment=SEGMENT_FRAMES, size=SIZE, seed=0), SEGMENTS, SEGMENT_FRAMES),
        "clip 16": (lambda: clip_dataset(
            shards, "train", training=True, batch_size=batch_size, num_frames=CLIP_FRAMES, size=SIZE,
            seed=0), 1, CLIP_FRAMES),
    }


def fmt(values):
    """``[12.34, 15.6]`` -> ``"12.3 / 15.6"`` (the rounds of one measurement)."""
    return " / ".join(f"{v:.1f}" for v in values)


def rate(stamps, warmup):
    """Steps per second over ``stamps[warmup - 1:]`` (stamps taken after each step)."""
    return (len(stamps) - warmup) / (stamps[-1] - stamps[warmup - 1])


def time_pipeline(ds, warmup, batches):
    """Batches/s of iterating ``ds`` after ``warmup`` batches; also returns the first batch."""
    stamps, first = [], None
    for x, y in ds.take(warmup + batches):
        if first is None:
            first = (x, y)
        stamps.append(time.perf_counter())
    return rate(stamps, warmup), first


class StepClock(keras.callbacks.Callback):
    """Records ``time.perf_counter()`` after every training step."""

    def on_train_begin(self, logs=None):
        self.stamps = []

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())


def small_model(segments, frames_per_segment, num_classes=len(CLASSES)):
    """The peer: uint8 ``(B, S, k, H, W, 3)`` -> logits ``(B, num_classes)`` (see the module doc)."""
    h, w = SIZE
    ops = keras.ops
    inputs = keras.Input((segments, frames_per_segment, h, w, 3), dtype="uint8")
    x = keras.layers.Lambda(lambda t: ops.cast(t, "float32") / 255.0)(inputs)
    x = keras.layers.Lambda(lambda t: ops.reshape(  # (B*S, H, W, k*3): frames as channels
        ops.transpose(t, (0, 1, 3, 4, 2, 5)), (-1, h, w, frames_per_segment * 3)))(x)
    for _ in range(3):
        x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(num_classes)(x)
    x = keras.layers.Lambda(lambda t: ops.mean(ops.reshape(t, (-1, segments, num_classes)), axis=1))(x)
    model = keras.Model(inputs, x)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def time_fit(model, ds, warmup, steps):
    """Training steps/s of ``model.fit(ds)`` after ``warmup`` steps (the first one traces)."""
    clock = StepClock()
    model.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock],
              shuffle=False)
    return rate(clock.stamps, warmup)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 videos per class, 10 timed batches/steps (under 2 minutes on 2 cores)")
    parser.add_argument("--videos-per-class", type=int, default=40,
                        help="motion videos per class (40 = the default motion set: 320 videos)")
    parser.add_argument("--workers", default="1,2",
                        help="prepare() worker counts to compare (speed-up against the first)")
    parser.add_argument("--batch-size", type=int, default=8, help="pipeline and model batch size")
    parser.add_argument("--batches", type=int, default=100, help="timed batches (and training steps)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of (pipeline, model alone, model fed) for each pipeline; the table "
                             "gives the medians")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches/steps before timing")
    parser.add_argument("--json", help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    workers = parse_workers(args.workers)
    if args.quick:
        args.videos_per_class, args.batches, args.warmup = 2, min(args.batches, 10), min(args.warmup, 3)
    if args.videos_per_class < 2 or args.batch_size < 1 or args.batches < 1 or args.warmup < 1 \
            or args.repeats < 1:
        raise SystemExit("--videos-per-class must be >= 2; --batch-size, --batches, --warmup and --repeats "
                         "must be >= 1")

    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    print(f"CPUs: {cpus} ({usable} usable), TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"Python {platform.python_version()}; batch {args.batch_size}, {args.warmup} warm-up + "
          f"{args.batches} timed batches/steps, {args.repeats} rounds (median)", flush=True)
    results = dict(cpus=cpus, usable_cpus=usable, tensorflow=tf.__version__, keras=keras.__version__,
                   batch_size=args.batch_size, batches=args.batches, warmup=args.warmup,
                   repeats=args.repeats)

    with tempfile.TemporaryDirectory(prefix="tfvideo-bench-") as tmp:
        videos = os.path.join(tmp, "videos")
        gen_workers = 1 if args.quick else max(workers)  # a spawn pool costs more than 16 clips
        gen = generate_motion(videos, videos_per_class=args.videos_per_class, workers=gen_workers,
                              progress=False)
        h, w = gen["size"]
        print(f"\nmotion set: {gen['num_videos']} videos x {gen['num_frames']} frames {h}x{w} generated "
              f"in {gen['seconds']:.1f} s ({gen_workers} worker(s); rendering, not part of the table)",
              flush=True)
        results["videos"] = {k: gen[k] for k in ("num_videos", "num_frames", "size", "seconds")}

        # 1. decode -> shard
        decode = []
        for n in workers:
            r = time_prepare(videos, os.path.join(tmp, f"shards-w{n}"), n, args.videos_per_class)
            decode.append(r)
            print(f"  workers={n}: prepare {r['seconds']:.1f} s; pool start-up {r['pool_start_seconds']:.1f} s "
                  f"+ write_shards {r['warm_seconds']:.1f} s", flush=True)
        ref = decode[0]
        print("\ndecode -> shard (split 1 train + test). prepare(): as a user runs it, spawn pool start-up "
              "included;\nwarm pool: write_shards() with a pool started (and timed) beforehand")
        header = f"{'workers':>7s} {'videos':>6s} {'frames':>7s} | {'prepare s':>9s} {'frames/s':>9s} " \
                 f"{'speed-up':>8s} | {'pool start':>10s} {'warm s':>7s} {'frames/s':>9s} {'speed-up':>8s}"
        print(header)
        print("-" * len(header))
        for r in decode:
            print(f"{r['workers']:7d} {r['videos']:6d} {r['frames']:7d} | {r['seconds']:9.2f} "
                  f"{r['frames'] / r['seconds']:9.0f} {ref['seconds'] / r['seconds']:8.2f} | "
                  f"{r['pool_start_seconds']:9.1f}s {r['warm_seconds']:7.2f} "
                  f"{r['frames'] / r['warm_seconds']:9.0f} {ref['warm_seconds'] / r['warm_seconds']:8.2f}")
        results["decode_to_shard"] = decode

        # 2. shard -> batch, 3. the model alone and fed by the pipeline
        shards = os.path.join(tmp, f"shards-w{workers[0]}", "prepare")
        rows = []
        for name, (build, segments, k) in pipelines(shards, args.batch_size).items():
            frames_per_batch = args.batch_size * segments * k
            pipe, batch = time_pipeline(build(), args.warmup, args.batches)

            def as_model_input(x, y, segments=segments, k=k):
                return tf.reshape(x, (-1, segments, k, *SIZE, 3)), y

            model = small_model(segments, k)
            memory = tf.data.Dataset.from_tensors(as_model_input(*batch)).repeat()
            pipes, alones, feds = [pipe], [], []
            for i in range(args.repeats):  # interleaved rounds: load changes hit all three alike
                if i:
                    pipes.append(time_pipeline(build(), args.warmup, args.batches)[0])
                alones.append(time_fit(model, memory, args.warmup, args.batches))
                feds.append(time_fit(model, build().map(as_model_input), args.warmup, args.batches))
            pipe, alone, fed = (statistics.median(v) for v in (pipes, alones, feds))
            print(f"  {name}: pipeline {fmt(pipes)} batches/s; model alone {fmt(alones)}, fed by the "
                  f"pipeline {fmt(feds)} steps/s", flush=True)
            rows.append(dict(pipeline=name, batch_shape=list(batch[0].shape), frames_per_batch=frames_per_batch,
                             pipeline_batches_per_s=pipe, pipeline_frames_per_s=pipe * frames_per_batch,
                             model_steps_per_s=alone, fed_steps_per_s=fed,
                             rounds=dict(pipeline=pipes, model=alones, fed=feds)))

    print(f"\nshard -> batch (training pipelines, {SIZE[0]}x{SIZE[1]}, batch {args.batch_size}) vs the small "
          f"model's training step")
    header = f"{'pipeline':12s} {'frames/batch':>12s} {'pipe batch/s':>12s} {'pipe frames/s':>13s} " \
             f"{'model steps/s':>13s} {'fed steps/s':>11s} {'pipe/model':>10s} {'fed/alone':>9s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['pipeline']:12s} {r['frames_per_batch']:12d} {r['pipeline_batches_per_s']:12.1f} "
              f"{r['pipeline_frames_per_s']:13.0f} {r['model_steps_per_s']:13.1f} {r['fed_steps_per_s']:11.1f} "
              f"{r['pipeline_batches_per_s'] / r['model_steps_per_s']:10.2f} "
              f"{r['fed_steps_per_s'] / r['model_steps_per_s']:9.2f}")
    results["shard_to_batch"] = rows
    if args.json:
        atomic_write_json(args.json, results, indent=1)
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
