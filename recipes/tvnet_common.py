"""The TVNet action-recognition recipe shared by ``recipes.tvnet_hmdb`` and ``recipes.tvnet_ucf101``.

prepare shards (if absent) -> train the temporal stream (TVNet + CNN, Eq. 13 loss, TVNet lr / 255)
-> train the RGB stream with the same budget -> evaluate both and their 1:2 fusion -> export the
two-stream model in TF Serving's layout.

Two profiles:

* ``paper`` (default with ``--data-dir``): seed 002 Sec. 5.2 -- TVNet-50 trained end to end, 224 x 224
  crops with TSN corner cropping and scale jittering, 3 segments, SGD momentum 0.9, lr 0.005, batch
  128, HMDB51 7000 iterations (lr / 10 at 4000 and 6000), UCF101 18000 (at 10000 and 16000); test:
  25 stacks x (centre + 4 corners) x flips.
* ``cpu`` (default without ``--data-dir``, on the built-in ``motion`` set): the same code path sized
  for 2 CPU cores and < 15 minutes -- 48 x 48 crops, the small CNN, batch 16 and a shorter schedule
  with the same shape (lr / 10 at 4/7 and 6/7 of the steps); test: 5 stacks x centre crop. Each value
  can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

PROFILES = {
    "paper": dict(size=224, batch_size=128, lr=0.005, backbone="inception_v3", iterations=50,
                  train_tvnet=True, segments=3, eval_segments=25, eval_crops=5, eval_flips=True,
                  short_side=256, steps_per_epoch=100),
    "cpu": dict(size=48, batch_size=16, lr=0.02, backbone="small", iterations=50,
                train_tvnet=True, segments=3, eval_segments=5, eval_crops=1, eval_flips=False,
                short_side=None, steps=126, steps_per_epoch=14),
}
SCHEDULES = {"hmdb51": (7000, (4000, 6000)), "ucf101": (18000, (10000, 16000))}


def build_parser(dataset, description):
    p = argparse.ArgumentParser(prog=f"python -m recipes.tvnet_{'hmdb' if dataset == 'hmdb51' else dataset}",
                                description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    name = "HMDB51" if dataset == "hmdb51" else "UCF101"
    p.add_argument("--data-dir", help=f"{name} root in its official layout; without it the built-in "
                                      "'motion' dataset (HMDB51 layout) is generated and used")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split")
    p.add_argument("--profile", choices=tuple(PROFILES), help="'paper' (default with --data-dir) "
                   "or 'cpu' (default on the built-in data); the flags below override it")
    p.add_argument("--steps", type=int, help="training iterations of each stream (paper: "
                   f"{SCHEDULES[dataset][0]})")
    p.add_argument("--epochs", type=int, help="alternative to --steps: passes of --steps-per-epoch")
    p.add_argument("--steps-per-epoch", type=int, help="steps between logs/checkpoints")
    p.add_argument("--batch-size", type=int, help="global batch (paper: 128, scaled to what fits)")
    p.add_argument("--lr", type=float, help="initial learning rate of the CNNs (TVNet: lr / 255)")
    p.add_argument("--size", type=int, help="crop size (square) fed to the networks")
    p.add_argument("--backbone", choices=("small", "inception_v3", "resnet50", "mobilenet_v2"))
    p.add_argument("--weights", help="ImageNet weights file of the backbone (3 channels; 'imagenet' "
                                     "downloads them) -- cross-modality initialised for TVNet")
    p.add_argument("--iterations", type=int, help="TVNet iterations (TVNet-50: 50)")
    p.add_argument("--no-flow-loss", action="store_true", help="drop L_f (ablation)")
    p.add_argument("--freeze-tvnet", action="store_true", help="exact TV-L1, no training (ablation)")
    p.add_argument("--segments", type=int, help="TSN segments in training")
    p.add_argument("--eval-segments", type=int, help="stacks per video at test")
    p.add_argument("--eval-crops", type=int, choices=(1, 3, 5, 10), help="crops per stack at test")
    p.add_argument("--eval-flips", action=argparse.BooleanOptionalAction, help="flipped test views")
    p.add_argument("--videos-per-class", type=int, default=40, help="size of the built-in set")
    p.add_argument("--strategy", default="auto",
                   help="auto | default | mirrored | multiworker | onedevice")
    p.add_argument("--devices", help="comma-separated devices for --strategy mirrored, e.g. "
                                     "/cpu:0,/cpu:1")
    p.add_argument("--run-dir", help="experiment folder (default runs/tvnet_<dataset>/<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its "
                                                        "last backup")
    p.add_argument("--data-out", help="shard folder (default tfrecords/<dataset>[/splitN])")
    p.add_argument("--export", default=f"saved_models/tvnet_{'hmdb' if dataset == 'hmdb51' else dataset}",
                   help="TF Serving export: <base_dir>/<model name>")
    p.add_argument("--workers", type=int, default=1, help="decoding processes for preparing shards")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true",
                   help="build everything and run one training step of each stream")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def resolve(args, dataset):
    """Merge the profile with the flags into the run's config dict."""
    builtin = args.data_dir is None
    profile = args.profile or ("cpu" if builtin else "paper")
    cfg = dict(PROFILES[profile])
    total, boundaries = SCHEDULES[dataset]
    cfg.setdefault("steps", total)
    for key in ("steps", "steps_per_epoch", "batch_size", "lr", "size", "backbone", "iterations",
                "segments", "eval_segments", "eval_crops", "eval_flips"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    if args.epochs is not None:
        cfg["steps"] = args.epochs * cfg["steps_per_epoch"]
    if args.dry_run:
        cfg.update(steps=1, steps_per_epoch=1)
    cfg["steps_per_epoch"] = min(cfg["steps_per_epoch"], cfg["steps"])
    cfg["epochs"] = math.ceil(cfg["steps"] / cfg["steps_per_epoch"])
    cfg["steps"] = cfg["epochs"] * cfg["steps_per_epoch"]
    # the paper's schedule shape: lr / 10 at 4/7 and 6/7 (HMDB51) of the run
    cfg["lr_boundaries"] = [max(1, round(cfg["steps"] * b / total)) for b in boundaries]
    cfg.update(dataset="motion" if builtin else dataset, profile=profile, split=args.split,
               train_tvnet=cfg["train_tvnet"] and not args.freeze_tvnet,
               flow_loss_weight=0.0 if args.no_flow_loss else 0.1, weights=args.weights,
               seed=args.seed, strategy=args.strategy, frames_per_stack=6,
               videos_per_class=args.videos_per_class if builtin else None)
    return cfg


def prepare_data(args, cfg, dataset, log):
    from tfvideo.data.prepare import prepare

    if cfg["dataset"] == "motion":
        out = args.data_out or "tfrecords/motion"
        log(f"data: the built-in 'motion' dataset (8 camera-motion classes filmed on scikit-image "
            f"photographs, HMDB51 layout, split {cfg['split']}) -- NOT {dataset.upper()}; pass "
            f"--data-dir for the real data")
        summary = prepare("motion", out, split=cfg["split"], workers=args.workers,
                          progress=not args.quiet, log=None,
                          motion_options=dict(videos_per_class=cfg["videos_per_class"]))
    else:
        out = args.data_out or os.path.join("tfrecords", dataset, f"split{cfg['split']}")
        log(f"data: {dataset.upper()} split {cfg['split']} from {args.data_dir}")
        summary = prepare(dataset, out, args.data_dir, split=cfg["split"], workers=args.workers,
                          short_side=cfg["short_side"], progress=not args.quiet, log=log)
    counts = {k: v["videos"] for k, v in summary["splits"].items()}
    log(f"shards: {out} ({counts.get('train', 0)} train / {counts.get('test', 0)} test videos, "
        f"{len(summary['classes'])} classes)")
    if not counts.get("train") or not counts.get("test"):
        raise SystemExit("error: the dataset has no train or no test videos")
    return out, summary["classes"]


def datasets(shards, cfg, eval_only_batches=None):
    from tfvideo.data import pipeline

    size = (cfg["size"], cfg["size"])
    train = pipeline.segment_dataset(shards, "train", training=True, batch_size=cfg["batch_size"],
                                     num_segments=cfg["segments"], frames_per_segment=6, size=size,
                                     seed=cfg["seed"], crop="tsn")
    views = cfg["eval_crops"] * (2 if cfg["eval_flips"] else 1)
    test = pipeline.segment_dataset(shards, "test", training=False, batch_size=max(1, min(views, 10)),
                                    num_segments=cfg["eval_segments"], frames_per_segment=6,
                                    size=size, num_crops=cfg["eval_crops"],
                                    flip_views=cfg["eval_flips"], with_video_id=True,
                                    resize_short_side=cfg["short_side"] and round(cfg["size"] * 256 / 224))
    if eval_only_batches:
        test = test.take(eval_only_batches)
    return train, test


def compile_model(model, cfg, *, tvnet):
    import keras

    from tfvideo import optimizers

    values = [cfg["lr"], cfg["lr"] / 10, cfg["lr"] / 100]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(cfg["lr_boundaries"], values)
    multipliers = {"tvnet": 1 / 255} if tvnet and cfg["train_tvnet"] else None
    model.compile(optimizer=optimizers.SGD(schedule, momentum=0.9, lr_multipliers=multipliers),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    return model


def flow_images(model, batch):
    """TensorBoard images: the first flow of each video's first stack, Middlebury colours."""
    import keras

    from tfvideo.ops import flow_to_color

    flows = keras.Model(model.input, model.get_layer("flow_stack").output)

    def image_fn(_):
        f = flows(batch, training=False)[:, 0, ..., :2]
        return {"flow": np.asarray(flow_to_color(f, max_flow=3.0)),
                "frame": np.asarray(batch[:, 0, 0])}

    return image_fn


def run(argv, dataset, description):
    args = build_parser(dataset, description).parse_args(argv)
    started = time.time()

    def log(msg):
        print(f"[{time.time() - started:6.0f}s] {msg}", flush=True)

    import keras
    import tensorflow as tf

    from tfvideo import evaluation, export, training
    from tfvideo.models import tvnet as tvmodels

    cfg = resolve(args, dataset)
    keras.utils.set_random_seed(cfg["seed"])
    shards, classes = prepare_data(args, cfg, dataset, log)
    run_dir = args.run_dir or os.path.join("runs", f"tvnet_{cfg['dataset']}",
                                           time.strftime("%Y%m%d-%H%M%S"))
    if os.path.exists(os.path.join(run_dir, "config.json")) and not args.resume:
        raise SystemExit(f"error: {run_dir} holds a run already; pass --resume to continue it or "
                         "choose another --run-dir")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    devices = args.devices.split(",") if args.devices else None
    strategy = training.resolve_strategy(args.strategy, devices)
    log(f"strategy: {training.describe_strategy(strategy)}; global batch {cfg['batch_size']}")
    training.replica_batch(cfg["batch_size"], strategy)
    train_ds, test_ds = datasets(shards, cfg, eval_only_batches=1 if args.dry_run else None)
    size = (cfg["size"], cfg["size"])
    tv = {"iterations": cfg["iterations"], "xla_iterations": True}
    with strategy.scope():
        temporal = tvmodels.temporal_stream(
            len(classes), size=size, backbone_name=cfg["backbone"], weights=cfg["weights"],
            tvnet=tv, flow_loss_weight=cfg["flow_loss_weight"], train_tvnet=cfg["train_tvnet"])
        spatial = tvmodels.spatial_stream(len(classes), size=size, backbone_name=cfg["backbone"],
                                          weights=cfg["weights"])
        compile_model(temporal, cfg, tvnet=True)
        compile_model(spatial, cfg, tvnet=False)
    fixed = next(iter(test_ds))[0]["frames"][:4, :1].numpy()
    log(f"run dir: {run_dir}; {cfg['steps']} steps x batch {cfg['batch_size']} per stream "
        f"({cfg['epochs']} epochs of {cfg['steps_per_epoch']}), lr {cfg['lr']} "
        f"(/10 at {cfg['lr_boundaries']}), TVNet-{cfg['iterations']} "
        f"{'trained (lr / 255)' if cfg['train_tvnet'] else 'frozen'}, L_f weight "
        f"{cfg['flow_loss_weight']}, backbone {cfg['backbone']}, {cfg['size']}px crops")
    results = {}
    for name, model in (("temporal", temporal), ("spatial", spatial)):
        log(f"training the {name} stream ({'TVNet flows' if name == 'temporal' else 'RGB frames'})")
        training.train(model, train_ds, run_dir=os.path.join(run_dir, name), epochs=cfg["epochs"],
                       steps_per_epoch=cfg["steps_per_epoch"], config=cfg, monitor=None,
                       backup_every_steps=cfg["steps_per_epoch"],
                       image_fn=flow_images(model, fixed) if name == "temporal" else None,
                       verbose=0 if args.quiet else "auto")
        log(f"evaluating the {name} stream")
        results[name] = evaluation.evaluate(model, test_ds, class_names=classes, softmax=True,
                                            out_dir=os.path.join(run_dir, "eval", name),
                                            progress=not args.quiet)
    fused = evaluation.fuse_scores([results["spatial"]["videos"], results["temporal"]["videos"]],
                                   evaluation.TWO_STREAM_WEIGHTS)
    results["two_stream"] = evaluation.classification_metrics(fused["scores"], fused["labels"],
                                                              classes)
    chance = 1 / len(classes)
    lines = [f"results on {cfg['dataset']} split {cfg['split']} test "
             f"({results['temporal']['num_videos']} videos, {cfg['eval_segments']} stacks x "
             f"{cfg['eval_crops']} crops{' x 2 flips' if cfg['eval_flips'] else ''}; chance "
             f"{100 * chance:.1f}%):"]
    for name, label in (("spatial", "RGB stream"), ("temporal", f"TVNet-{cfg['iterations']} stream"),
                        ("two_stream", "two-stream 1:2")):
        r = results[name]
        lines.append(f"  {label:22s} top-1 {100 * r['top1']:5.1f}%  top-5 {100 * r['top5']:5.1f}%  "
                     f"mean class {100 * r['mean_class_accuracy']:5.1f}%")
        paper = evaluation.paper_comparison(cfg["dataset"], cfg["split"], r,
                                            "TVNet-50" if name == "temporal" else "Ours")
        if paper and name != "spatial":
            lines.append("    " + paper)
    for line in lines:
        log(line)
    summary = {k: {m: results[k][m] for m in ("top1", "top5", "mean_class_accuracy", "num_videos")}
               for k in results}
    with open(os.path.join(run_dir, "eval", "summary.json"), "w") as f:
        json.dump({"config": cfg, "results": summary}, f, indent=2, default=str)

    # export: the two-stream model, TVNet without XLA (stock TF Serving), plus a "flow" signature
    plain = tvmodels.without_xla(tvmodels.two_stream(spatial, temporal))
    tvnet_layer = plain.get_layer("temporal").get_layer("flow_stack").tvnet
    pair = tf.TensorSpec((None, *size, 3), tf.uint8)
    signatures = {
        "serving_default": export.classifier_signature(plain),
        "flow": export.function_signature(
            lambda f0, f1: tvnet_layer([tf.cast(f0, tf.float32), tf.cast(f1, tf.float32)]),
            {"frame0": pair, "frame1": pair}, "flow"),
    }
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export.export_for_serving(plain, base_dir or ".", name, signatures=signatures,
                                     print_signatures=not args.quiet)
    log(f"exported the two-stream model to {path} (TF Serving layout; {base_dir}/models.config)")
    log(f"done in {(time.time() - started) / 60:.1f} min")
    return {"config": cfg, "results": summary, "export": path, "run_dir": run_dir,
            "model": plain}
