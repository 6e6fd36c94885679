"""Train TVNet alone on optical-flow ground truth (seed 002, Sec. 5.1): ``python -m recipes.tvnet_middlebury``.

TVNet-50 (1 scale, 1 warp, 50 iterations) starts as exact TV-L1 and is trained with the end-point
error against ground truth by *batch* gradient descent (every training pair in every step), lr 0.05,
3000 iterations (Sec. 5.1). The EPE is reported before and after training, on the training pairs and
on held-out pairs, beside OpenCV's TV-L1 on the same pairs.

Data: ``--data-dir`` = a Middlebury root (``other-data/<scene>/frame10.png, frame11.png`` +
``other-gt-flow/<scene>/flow10.flo``; :func:`tfvideo.data.flow_sets.middlebury_items`), split
alternately into training and held-out scenes. Without it: built-in pairs -- consecutive frames of
the ``motion`` set's clips (real photographs, exact similarity-motion ground truth,
:func:`tfvideo.data.motion.exact_flow`), ``--pairs`` for training and as many held out, and a
shorter default schedule (``--steps 100``; the paper's is 3000) so the run takes minutes on a CPU.

Ends by exporting the trained TVNet as a flow model (signature ``serving_default``: uint8 ``frame0``,
``frame1`` -> ``flow``) in TF Serving's layout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def build_parser():
    p = argparse.ArgumentParser(prog="python -m recipes.tvnet_middlebury",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="Middlebury root; default: the built-in pairs")
    p.add_argument("--steps", type=int, help="gradient steps (paper: 3000; built-in default 100)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (batch gradient descent)")
    p.add_argument("--iterations", type=int, default=50, help="TVNet iterations (TVNet-50)")
    p.add_argument("--scales", type=int, default=1)
    p.add_argument("--warps", type=int, default=1)
    p.add_argument("--pairs", type=int, default=8, help="built-in: training pairs (and held-out)")
    p.add_argument("--size", default="96x128", help="built-in: HxW of the pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="default runs/tvnet_middlebury/<time>")
    p.add_argument("--export", default="saved_models/tvnet_flow",
                   help="TF Serving export: <base_dir>/<model name>")
    p.add_argument("--dry-run", action="store_true", help="build everything, one step")
    p.add_argument("--quiet", action="store_true")
    return p


def builtin_pairs(count, size, seed, offset):
    """``count`` (frame0, frame1, flow, valid) pairs from motion clips ``offset..offset+count``."""
    from tfvideo.data import motion

    pairs = []
    for k in range(count):
        name = motion.CLASSES[k % len(motion.CLASSES)]
        spec = motion.clip_spec(name, seed=seed, index=offset + k, num_frames=2, size=size)
        clip = motion.make_clip(spec)
        flow = motion.exact_flow(spec, 0)
        pairs.append((clip[0], clip[1], flow, np.ones(flow.shape[:2], bool), f"{name}/{offset + k}"))
    return pairs


def middlebury_pairs(root):
    from tfvideo.data.flow_sets import middlebury_items

    items, problems = middlebury_items(root)
    if not items:
        raise SystemExit(f"error: no Middlebury scene with ground truth under {root}")
    pairs = []
    for item in items:
        d = item.load()
        t = int(d["flow_frame_index"][0])
        pairs.append((d["frames"][t], d["frames"][t + 1], d["flows"][0], d["flow_valid"][0],
                      item.video_id))
    return pairs[0::2], pairs[1::2] or pairs[:1], problems


def opencv_epe(pairs):
    import cv2

    from tfvideo.ops import endpoint_error

    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    errors = []
    for f0, f1, gt, valid, _ in pairs:
        g0, g1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (f0, f1))
        errors.append(float(endpoint_error(tvl1.calc(g0, g1, None), gt, mask=valid)))
    return float(np.mean(errors))


def main(argv=None):
    args = build_parser().parse_args(argv)
    started = time.time()

    def log(msg):
        print(f"[{time.time() - started:6.0f}s] {msg}", flush=True)

    import keras
    import tensorflow as tf

    from tfvideo import export
    from tfvideo.layers import TVNet
    from tfvideo.ops import endpoint_error

    keras.utils.set_random_seed(args.seed)
    if args.data_dir:
        train_pairs, test_pairs, problems = middlebury_pairs(args.data_dir)
        source = f"Middlebury ({args.data_dir})"
        steps = args.steps or 3000
        for path, reason in problems:
            log(f"skipped {path}: {reason}")
    else:
        h, w = (int(v) for v in args.size.lower().split("x"))
        train_pairs = builtin_pairs(args.pairs, (h, w), args.seed, 0)
        test_pairs = builtin_pairs(args.pairs, (h, w), args.seed, 1000)
        source = (f"built-in pairs (motion clips, exact flow, {h}x{w}) -- NOT Middlebury; pass "
                  "--data-dir for the real data")
        steps = args.steps or 100
    if args.dry_run:
        steps = 1
    log(f"data: {source}: {len(train_pairs)} training pairs, {len(test_pairs)} held out")
    sizes = {p[0].shape[:2] for p in train_pairs + test_pairs}
    tvnet = TVNet(scales=args.scales, warps=args.warps, iterations=args.iterations,
                  u0_size=None if len(sizes) == 1 else (1, 1), name="tvnet")
    first = train_pairs[0][0]
    tvnet.build([(None, *first.shape), (None, *first.shape)])
    def batch_of_one(pair):  # (frame0, frame1, flow as float32; validity as bool), batch axis added
        f0, f1, gt, valid = pair[:4]
        return (*(tf.constant(v[None], tf.float32) for v in (f0, f1, gt)), tf.constant(valid[None]))

    as_tensors = [batch_of_one(p) for p in train_pairs]

    def pair_epe(f0, f1, gt, valid):
        return endpoint_error(tvnet([f0, f1]), gt, mask=valid)

    epe_fn = tf.function(pair_epe, reduce_retracing=True)

    def mean_epe(pairs):
        return float(np.mean([float(epe_fn(*batch_of_one(p))) for p in pairs]))

    optimizer = keras.optimizers.SGD(args.lr)

    @tf.function(reduce_retracing=True)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.add_n([pair_epe(*p) for p in as_tensors]) / len(as_tensors)
        grads = tape.gradient(loss, tvnet.trainable_variables)
        optimizer.apply(grads, tvnet.trainable_variables)
        return loss

    before = {"train": mean_epe(train_pairs), "held_out": mean_epe(test_pairs)}
    reference = {"train": opencv_epe(train_pairs), "held_out": opencv_epe(test_pairs)}
    log(f"EPE before training: train {before['train']:.3f} px, held out {before['held_out']:.3f} px "
        f"(OpenCV TV-L1: {reference['train']:.3f} / {reference['held_out']:.3f})")
    run_dir = args.run_dir or os.path.join("runs", "tvnet_middlebury", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    log(f"training TVNet-{args.iterations} ({args.scales}-{args.warps}-{args.iterations}) with the "
        f"EPE loss: {steps} steps of batch gradient descent, lr {args.lr}; run dir {run_dir}")
    history = []
    with open(os.path.join(run_dir, "metrics.jsonl"), "a") as log_file:
        for k in range(1, steps + 1):
            loss = float(step())
            history.append(loss)
            if k == 1 or k % max(1, steps // 10) == 0 or k == steps:
                log_file.write(json.dumps({"step": k, "epe": loss, "time": time.time()}) + "\n")
                log_file.flush()
                if not args.quiet:
                    log(f"  step {k}/{steps}: training EPE {loss:.4f} px")
    after = {"train": mean_epe(train_pairs), "held_out": mean_epe(test_pairs)}
    log(f"EPE after training:  train {after['train']:.3f} px, held out {after['held_out']:.3f} px "
        f"(before: {before['train']:.3f} / {before['held_out']:.3f}; OpenCV TV-L1: "
        f"{reference['train']:.3f} / {reference['held_out']:.3f})")
    results = {"source": source, "steps": steps, "before": before, "after": after,
               "opencv_tvl1": reference}
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    h, w = first.shape[:2]
    frames0 = keras.Input((h, w, 3), dtype="uint8", name="frame0")
    frames1 = keras.Input((h, w, 3), dtype="uint8", name="frame1")
    model = keras.Model([frames0, frames1], tvnet([frames0, frames1]), name="tvnet_flow")
    spec = tf.TensorSpec((None, h, w, 3), tf.uint8)
    signature = export.function_signature(
        lambda a, b: tvnet([tf.cast(a, tf.float32), tf.cast(b, tf.float32)]),
        {"frame0": spec, "frame1": spec}, "flow")
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export.export_for_serving(model, base_dir or ".", name,
                                     signatures={"serving_default": signature},
                                     print_signatures=not args.quiet)
    log(f"exported TVNet to {path}; done in {(time.time() - started) / 60:.1f} min")
    return {**results, "export": path, "run_dir": run_dir, "tvnet": tvnet}


if __name__ == "__main__":
    main(sys.argv[1:])
