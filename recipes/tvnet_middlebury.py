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

Training runs on the shared harness (:func:`tfvideo.training.train`: run folder with ``--resume``,
``metrics.jsonl``, TensorBoard, last checkpoint) as a Keras model ``(frame0, frame1) -> flow`` with
:func:`tfvideo.losses.endpoint_error_loss`. Batch gradient descent: when all training pairs have one
size, every step is one batch of all of them; when sizes differ (real Middlebury), every step is
``len(pairs)`` micro-batches of one pair with Keras's ``gradient_accumulation_steps`` (the same
gradient: the mean of the per-pair EPE gradients) and ``u0`` is one flow vector (``u0_size`` (1, 1),
since a per-pixel ``u0`` has no meaning across sizes).

Ends by exporting the trained TVNet as a flow model (signature ``serving_default``: uint8 ``frame0``,
``frame1`` of any size -> ``flow``) in TF Serving's layout.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from tfvideo import cli
from tfvideo.files import atomic_write_json


def build_parser():
    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog="python -m recipes.tvnet_middlebury",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="Middlebury root; default: the built-in pairs")
    p.add_argument("--steps", type=pos, help="gradient steps (paper: 3000; built-in default 100)")
    p.add_argument("--steps-per-epoch", type=pos, help="steps between log lines and backups "
                                                       "(default: a tenth of --steps)")
    p.add_argument("--lr", type=cli.float_type(), default=0.05, help="learning rate (batch gradient descent)")
    p.add_argument("--iterations", type=pos, default=50, help="TVNet iterations (TVNet-50)")
    p.add_argument("--scales", type=pos, default=1)
    p.add_argument("--warps", type=pos, default=1)
    p.add_argument("--pairs", type=pos, default=8, help="built-in: training pairs (and held-out)")
    p.add_argument("--size", type=cli.size_type(16), default=(96, 128),
                   help="built-in: HEIGHTxWIDTH of the pairs (height first)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="default runs/tvnet_middlebury/<time>")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--export", default="saved_models/tvnet_flow",
                   help="TF Serving export: <base_dir>/<model name>")
    p.add_argument("--dry-run", action="store_true", help="build everything, one step")
    cli.add_output_flags(p)
    return p


def check_args(args):
    """Problems found before any work (reads only)."""
    from tfvideo.checks import check_model_name
    from tfvideo.training.run_dir import RunDir

    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if args.data_dir is not None and not os.listdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: the folder is empty (expected Middlebury's other-data/ "
                "and other-gt-flow/)"]
    try:
        check_model_name(os.path.basename(os.path.normpath(args.export)), "--export's last part")
    except ValueError as err:
        return [str(err)]
    if args.run_dir is None:
        args.run_dir = os.path.join("runs", "tvnet_middlebury", time.strftime("%Y%m%d-%H%M%S"))
    problem = RunDir.check_new_or_resume(args.run_dir, args.resume)
    return [problem] if problem else []


def builtin_pairs(count, size, seed, offset):
    """``count`` (frame0, frame1, flow, valid, name) pairs from motion clips ``offset..offset+count``."""
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


def pair_dataset(pairs, batch):
    """``((frame0, frame1), flow + validity)`` of every pair, ``batch`` pairs per element, repeated."""
    import tensorflow as tf

    def element(p):
        f0, f1, gt, valid = (np.asarray(v, np.float32) for v in p[:4])
        return (f0, f1), np.concatenate([np.nan_to_num(gt), valid[..., None]], axis=-1)

    if batch > 1:  # one size: one tensor per field
        (f0, f1), y = zip(*(element(p) for p in pairs))
        return tf.data.Dataset.from_tensor_slices(((np.stack(f0), np.stack(f1)), np.stack(y))) \
            .batch(batch).repeat()
    parts = [tf.data.Dataset.from_tensors(element(p)).batch(1) for p in pairs]
    data = parts[0]
    for part in parts[1:]:
        data = data.concatenate(part)
    return data.repeat()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for problem in check_args(args):
        parser.error(problem)
    log = cli.timed_log()

    from tfvideo import training  # the strategy first (before anything starts TensorFlow's runtime)

    strategy = training.resolve_strategy("auto")
    if args.data_dir:
        train_pairs, test_pairs, problems = middlebury_pairs(args.data_dir)
        if not train_pairs:
            parser.error(f"--data-dir {args.data_dir}: no Middlebury scene with ground truth "
                         "(other-data/<scene>/frame10.png, frame11.png + other-gt-flow/<scene>/flow10.flo)")
        source = f"Middlebury ({args.data_dir})"
        steps = args.steps or 3000
        for path, reason in problems:
            log(f"skipped {path}: {reason}")
    else:
        train_pairs = builtin_pairs(args.pairs, args.size, args.seed, 0)
        test_pairs = builtin_pairs(args.pairs, args.size, args.seed, 1000)
        h, w = args.size
        source = (f"built-in pairs (motion clips, exact flow, {h}x{w}) -- NOT Middlebury; pass "
                  "--data-dir for the real data")
        steps = args.steps or 100
    if args.dry_run:
        steps = 1
    chief = training.is_chief(strategy)
    try:
        run_dir = training.RunDir(args.run_dir).claim(chief)
    except RuntimeError as err:  # another live process trains there
        parser.error(str(err))

    import keras
    import tensorflow as tf

    from tfvideo import export
    from tfvideo.layers import TVNet
    from tfvideo.losses import endpoint_error_loss
    from tfvideo.ops import endpoint_error

    keras.utils.set_random_seed(args.seed)
    log(f"data: {source}: {len(train_pairs)} training pairs, {len(test_pairs)} held out")
    sizes = {p[0].shape[:2] for p in train_pairs}
    one_size = len(sizes) == 1
    n = len(train_pairs)
    per_epoch = args.steps_per_epoch or max(1, steps // 10)
    epochs = math.ceil(steps / per_epoch)
    micro = 1 if one_size else n  # micro-batches per gradient step
    cfg = {"source": source, "steps": epochs * per_epoch, "steps_per_epoch": per_epoch, "lr": args.lr,
           "tvnet": [args.scales, args.warps, args.iterations], "pairs": n, "one_size": one_size,
           "seed": args.seed}
    with strategy.scope():
        shape = (*next(iter(sizes)), 3) if one_size else (None, None, 3)
        frame0, frame1 = keras.Input(shape, name="frame0"), keras.Input(shape, name="frame1")
        tvnet = TVNet(scales=args.scales, warps=args.warps, iterations=args.iterations,
                      check_finite=True, name="tvnet")
        model = keras.Model([frame0, frame1], tvnet([frame0, frame1]), name="tvnet_flow")
        model.compile(keras.optimizers.SGD(args.lr, gradient_accumulation_steps=micro if micro > 1 else None),
                      loss=endpoint_error_loss, jit_compile=False)
    flow_fn = tf.function(lambda a, b: tvnet([a, b]), reduce_retracing=True)

    def mean_epe(pairs):
        return float(np.mean([float(endpoint_error(flow_fn(f0[None].astype(np.float32), f1[None].astype(np.float32)),
                                                   gt[None], mask=valid[None]))
                              for f0, f1, gt, valid, _ in pairs]))

    before = {"train": mean_epe(train_pairs), "held_out": mean_epe(test_pairs)}
    reference = {"train": opencv_epe(train_pairs), "held_out": opencv_epe(test_pairs)}
    log(f"EPE before training: train {before['train']:.3f} px, held out {before['held_out']:.3f} px "
        f"(OpenCV TV-L1: {reference['train']:.3f} / {reference['held_out']:.3f})")
    log(f"training TVNet-{args.iterations} ({args.scales}-{args.warps}-{args.iterations}) with the "
        f"EPE loss: {cfg['steps']} steps of batch gradient descent over {n} pairs"
        f"{'' if one_size else f' ({n} accumulated micro-batches each: sizes differ)'}, lr {args.lr}; "
        f"run dir {run_dir.path}")
    training.train(model, pair_dataset(train_pairs, n if one_size else 1), run_dir=run_dir,
                   epochs=epochs, steps_per_epoch=per_epoch * micro, config=cfg, monitor=None,
                   backup_every_steps=per_epoch * micro, verbose=0 if args.quiet else "auto")
    after = {"train": mean_epe(train_pairs), "held_out": mean_epe(test_pairs)}
    log(f"EPE after training:  train {after['train']:.3f} px, held out {after['held_out']:.3f} px "
        f"(before: {before['train']:.3f} / {before['held_out']:.3f}; OpenCV TV-L1: "
        f"{reference['train']:.3f} / {reference['held_out']:.3f})")
    results = {"source": source, "steps": cfg["steps"], "before": before, "after": after,
               "opencv_tvl1": reference}
    if not chief:
        return {**results, "run_dir": str(run_dir.path), "tvnet": tvnet}
    atomic_write_json(run_dir.eval / "results.json", results)

    spec = tf.TensorSpec((None, None, None, 3), tf.uint8)  # any frame size: TVNet takes any
    signature = export.function_signature(
        lambda a, b: tvnet([tf.cast(a, tf.float32), tf.cast(b, tf.float32)]),
        {"frame0": spec, "frame1": spec}, "flow")
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export.export_for_serving(model, base_dir or ".", name,
                                     signatures={"serving_default": signature},
                                     print_signatures=not args.quiet)
    log(f"exported TVNet to {path}; done in {(time.time() - log.started) / 60:.1f} min")
    return {**results, "export": path, "run_dir": str(run_dir.path), "tvnet": tvnet}


if __name__ == "__main__":
    cli.run_main(main)
