"""V2V's speed on the CPU, side by side with its peers in one run.

    python benchmarks/v2v.py [--quick] [--clips 4] [--size 112x112] [--frames 16] [--repeats 3]
                             [--json out.json]

Two comparisons (ratios: absolute times on shared machines are noisy):

1. **V2V-flow against its teacher.** Sec. 5 of the paper: V2V learns the flow of a classical method
   and then runs 70x faster than it (91 vs < 2 frames/s on a K40 GPU, Brox). Here the teacher is
   OpenCV's TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create()`` defaults, the recipe's default teacher)
   on the same real clips (``motion`` set: scikit-image photographs filmed by a moving camera), 8-bit
   grey, one pair at a time (its only mode); V2V (``task="flow"``) takes the clips in batches in
   graph mode (``--xla`` adds XLA, much slower on the CPU: its 3-D transposed convolutions). Frames per second: a clip of T frames gives T flows for V2V and T - 1 for the
   teacher. The weights do not change the speed (untrained V2V is timed).
2. **The C3D encoder against the machine's matmul rate.** The encoder's FLOPs per clip are counted from
   its layers (:func:`tfvideo.cost.flops`, 2 per multiply-add); its forward pass in batches gives
   GFLOP/s, compared with the rate of a large float32 matmul measured in the same run (the practical
   peak of this CPU for dense float32 work).

Targets from issue 10: V2V at least 5x its teacher's frames/s; the encoder at least 60% of the matmul
rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.checks import parse_size  # noqa: E402
from tfvideo.cost import flops  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402


def timed(fn, repeats):
    fn()  # warm-up (trace / compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(n, repeats):
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    return 2 * n**3 / timed(lambda: f().numpy(), repeats) / 1e9


def real_clips(count, frames, size):
    from tfvideo.data import motion

    clips = []
    for k in range(count):
        spec = motion.clip_spec(motion.CLASSES[k % len(motion.CLASSES)], seed=0, index=k, num_frames=frames,
                                size=size)
        clips.append(motion.make_clip(spec))
    return np.stack(clips)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 clips, 1 repeat, 64x64: a smoke run")
    p.add_argument("--clips", type=int, default=4, help="clips per batch (and teacher clips)")
    p.add_argument("--size", type=parse_size, default=(112, 112), help="HxW of the clips (paper 112x112)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (paper 16)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--matmul", type=int, default=2048, help="side of the matmul that sets the peak rate")
    p.add_argument("--xla", action="store_true", help="also time V2V under XLA (slow: XLA's CPU "
                                                       "Conv3DTranspose ran 70x slower than graph mode in a "
                                                       "--quick run)")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.clips, args.repeats, args.size = 2, 1, (64, 64)

    import cv2
    import keras

    from tfvideo.models.c3d import c3d_encoder
    from tfvideo.models.v2v import v2v

    clips = real_clips(args.clips, args.frames, args.size)
    h, w = args.size
    print(f"clips: {args.clips} x {args.frames} frames {h}x{w} (motion set, real photographs); "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}")
    out = {"clips": args.clips, "frames": args.frames, "size": [h, w]}

    # 1. V2V-flow vs the OpenCV TV-L1 teacher
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    grey = [[cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in c] for c in clips]

    def teacher():
        for g in grey:
            for t in range(len(g) - 1):
                tvl1.calc(g[t], g[t + 1], None)

    t_sec = timed(teacher, max(1, args.repeats // 2))
    t_fps = args.clips * (args.frames - 1) / t_sec
    model = v2v(2, task="flow", clip_shape=(args.frames, h, w))
    x = tf.constant(clips)
    rows = [("OpenCV TV-L1 (teacher), 1 pair at a time", t_fps)]
    for mode, jit in (("graph", False), ("XLA", True))[:2 if args.xla else 1]:
        f = tf.function(lambda c: model(c, training=False), jit_compile=jit)
        sec = timed(lambda: f(x).numpy(), args.repeats)
        rows.append((f"V2V-flow, batch {args.clips}, {mode}", args.clips * args.frames / sec))
    print("\n1. V2V-flow vs its teacher (frames/s; paper: 70x on a K40 GPU vs Brox)")
    for name, fps in rows:
        print(f"  {name:44s} {fps:9.1f} frames/s  {fps / t_fps:7.1f}x teacher")
    best = max(fps for _, fps in rows[1:])
    print(f"  V2V / teacher: {best / t_fps:.1f}x (target >= 5x)")
    out["flow"] = {name: fps for name, fps in rows}
    out["v2v_over_teacher"] = best / t_fps

    # 2. the C3D encoder vs the matmul rate
    peak = matmul_rate(args.matmul, args.repeats)
    enc = c3d_encoder((args.frames, h, w, 3))
    per_clip = flops(enc)
    print(f"\n2. C3D encoder ({per_clip / 1e9:.2f} GFLOP per clip, counted from its layers) vs float32 "
          f"matmul {args.matmul}^2: {peak:.0f} GFLOP/s")
    out["matmul_gflops"] = peak
    out["encoder_gflop_per_clip"] = per_clip / 1e9
    for mode, jit in (("graph", False), ("XLA", True)):
        f = tf.function(lambda c: enc(c, training=False), jit_compile=jit)
        sec = timed(lambda: f(x).numpy(), args.repeats)
        rate = per_clip * args.clips / sec / 1e9
        print(f"  encoder, batch {args.clips}, {mode:5s} {rate:7.0f} GFLOP/s  {100 * rate / peak:5.0f}% of matmul "
              f"(target >= 60%)")
        out[f"encoder_gflops_{mode.lower()}"] = rate
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
