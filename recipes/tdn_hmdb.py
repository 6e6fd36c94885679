"""Ng & Davis 2018 Temporal Difference Networks (Ng's thesis, chapter 5): ``python -m recipes.tdn_hmdb``.

prepare shards (if absent) -> train the image branch alone (a ResNet TSN: the TDN's image subnetwork with
its consensus, digest 5.4's baseline) -> build the TDN from it (both subnetworks start from the trained
image subnetwork: our stand-in for the thesis's ImageNet weights on the built-in set) and train it in two
phases (digest 5.4: image subnetwork frozen, then all) -> top-1 of the image branch alone, of the TDN and
of its difference branch alone, side by side (the thesis: 51.1 -> 55.5 RGB on HMDB51, printed labelled
when the data is HMDB51) -> export the TDN (``serving_default``: uint8 ``frames`` ``(B, S, H, W, 3)``,
any ``S >= 2`` -> ``logits``, ``probabilities``).

Two profiles:

* ``paper`` (default with ``--data-dir``, HMDB51): ResNet-50 from ImageNet (Keras downloads it;
  ``--weights none`` opts out), 224 crops of frames resized to 256 (TSN corner cropping and scale
  jitter), s = 2 snippets (digest 5.2 for HMDB51), dropout 0.8, partial BN, SGD momentum 0.9, weight
  decay 0.0005, batch 128 (digest 5.4); the schedule "roughly follows" TSN's (digest 5.4, 5.7 q7: no
  numbers): our choice, TSN's RGB schedule, lr 0.001 divided by 10 at 2000 and 4000 of 4500 steps for the
  image branch and for TDN's phase 1, then phase 2 (all trained) 2000 steps at lr 0.0001.
* ``cpu`` (default on the built-in ``motion`` set, where the class is in the camera motion, so single
  frames cannot tell it and the image branch stays near chance): the ``small`` ResNet at 48 x 48, s = 8
  (closer snippets: the differences of far-apart frames of a moving camera are hard to read), no dropout,
  Adam, 200 + 400 + 200 steps.

Every value can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from tfvideo.files import atomic_write_json

NAME = "tdn_hmdb"
PROFILES = {
    "paper": dict(backbone="resnet50", weights="imagenet", size=224, short_side=256, segments=2, batch_size=128,
                  optimizer="sgd", lr=1e-3, image_steps=4500, phase1_steps=4500, phase2_steps=2000,
                  steps_per_epoch=250, dropout=0.8, partial_bn=True, eval_crops=5, eval_flips=True),
    "cpu": dict(backbone="small", weights=None, size=48, short_side=None, segments=8, batch_size=16,
                optimizer="adam", lr=1e-3, image_steps=200, phase1_steps=400, phase2_steps=200,
                steps_per_epoch=50, dropout=0.0, partial_bn=False, eval_crops=1, eval_flips=False),
}
#: The thesis's Table 5.1 (HMDB51, 3-split average top-1 %, RGB).
PAPER = {"image": 51.1, "tdn": 55.5}


def build_parser():
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "Ng & Davis 2018 Temporal Difference Networks (Ng's thesis ch. 5): the image branch alone (TSN) vs "
        "TDN on the same data, top-1 side by side."), formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="HMDB51 root (videos in class folders + testTrainMulti_7030_splits/); "
                                      "without it the built-in 'motion' set is used")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--profile", choices=tuple(PROFILES))
    p.add_argument("--backbone", choices=("resnet50", "small"))
    p.add_argument("--weights", help="'imagenet' (downloads), 'none', or a weights file of the stock network")
    p.add_argument("--taps", nargs="+", help="difference taps (default input conv1 res2 res3; the thesis's "
                                             "main model: input conv1 res2 res3 res4)")
    p.add_argument("--segments", type=cli.int_type(2), help="snippets s per video")
    p.add_argument("--size", type=cli.int_type(32), help="square crop")
    p.add_argument("--image-steps", type=pos, help="steps of the image branch alone")
    p.add_argument("--phase1-steps", type=pos, help="TDN steps with the image subnetwork frozen")
    p.add_argument("--phase2-steps", type=cli.int_type(0), help="TDN steps with everything trained")
    p.add_argument("--steps-per-epoch", type=pos)
    p.add_argument("--batch-size", type=pos)
    p.add_argument("--lr", type=cli.float_type())
    p.add_argument("--dropout", type=cli.float_type(allow_zero=True))
    from recipes.harness import add_run_flags

    p = add_run_flags(p, NAME, data_out="shard folder (default tfrecords/motion or tfrecords/hmdb51/split<N>)",
                      dry_run="build everything, one training step each, one test batch")
    p.add_argument("--videos-per-class", type=cli.int_type(2), default=None, help="built-in set size")
    return p


def resolve(args):
    from tfvideo.models.tdn import DEFAULT_TAPS

    from recipes.harness import profile_config

    builtin, profile, cfg = profile_config(args, PROFILES, (
        "backbone", "segments", "size", "image_steps", "phase1_steps", "phase2_steps", "steps_per_epoch",
        "batch_size", "lr", "dropout"))
    if args.dry_run:
        cfg.update(image_steps=1, phase1_steps=1, phase2_steps=1, steps_per_epoch=1)
    cfg.update(profile=profile, dataset="motion" if builtin else "hmdb51", split=args.split,
               taps=list(args.taps or DEFAULT_TAPS), seed=args.seed, strategy=args.strategy,
               videos_per_class=args.videos_per_class if builtin else None, dry_run=args.dry_run)
    return cfg


def check_args(args, cfg):
    from tfvideo.models.tdn import TAPS

    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if cfg["weights"] not in (None, "imagenet") and not os.path.isfile(cfg["weights"]):
        return [f"--weights {cfg['weights']}: expected 'imagenet', 'none' or an existing weights file"]
    if "input" not in cfg["taps"] or any(t not in TAPS for t in cfg["taps"]):
        return [f"--taps must hold 'input' and only names of {TAPS}; got {cfg['taps']}"]
    if not 0 <= cfg["dropout"] < 1:
        return [f"--dropout must be in [0, 1); got {cfg['dropout']}"]
    from recipes.harness import check_run_args

    return check_run_args(args, NAME)


# ------------------------------------------------------------------------------------------ data ----
def prepare_data(args, cfg, log, chief=True, workers=1):
    from recipes.harness import prepare_action_set

    return prepare_action_set(args, cfg, log, dataset="hmdb51", chief=chief, workers=workers)


def snippets(shards, cfg, *, training):
    """TSN sampling: s segments, one frame each (k = 1 for RGB, digest 5.4), ``(B, S, H, W, 3)``."""
    from tfvideo.data import pipeline

    size = (cfg["size"], cfg["size"])
    short = cfg["short_side"] and round(cfg["size"] * cfg["short_side"] / 224)
    if training:
        ds = pipeline.segment_dataset(shards, "train", training=True, size=size, batch_size=cfg["batch_size"],
                                      num_segments=cfg["segments"], seed=cfg["seed"], resize_short_side=short,
                                      flip=cfg["dataset"] != "motion")  # motion: a flip swaps pan_left/right
        return ds.map(lambda x, y: (x[:, :, 0], y))
    ds = pipeline.segment_dataset(shards, "test", training=False, size=size, batch_size=8,
                                  num_segments=cfg["segments"], num_crops=cfg["eval_crops"],
                                  flip_views=cfg["eval_flips"], with_video_id=True, resize_short_side=short)
    ds = ds.map(lambda x, y: ({**x, "frames": x["frames"][:, :, 0]}, y))
    return ds.take(1) if cfg["dry_run"] else ds


# ------------------------------------------------------------------------------------ the models ----
def compile_model(model, cfg, steps, lr):
    import keras

    if cfg["optimizer"] == "sgd":
        bounds = [max(1, round(steps * 2000 / 4500)), max(2, round(steps * 4000 / 4500))]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [lr, lr / 10, lr / 100])
        opt = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
    else:
        opt = keras.optimizers.Adam(lr)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def branch(model, layer):
    """The model's input -> one branch's consensus logits (the same weights)."""
    import keras

    return keras.Model(model.input, model.get_layer(layer).output, name=layer)


def top1(model, shards, cfg, progress):
    from tfvideo.evaluation import average_per_video, classification_metrics, predict_views

    views = predict_views(model, snippets(shards, cfg, training=False), progress=progress)
    _, scores, labels = average_per_video(views["scores"], views["video_ids"], views["labels"])
    return classification_metrics(scores, labels)["top1"]


def main(argv=None):
    import sys

    from recipes.harness import open_recipe

    args, cfg, log, strategy, chief, run_dir, (shards, classes) = open_recipe(sys.modules[__name__], argv)

    from tfvideo import training
    from tfvideo.export import classifier_signature, export_for_serving
    from tfvideo.models.tdn import set_phase, tdn

    num_classes = len(classes)

    def fit(model, steps, sub):
        per_epoch = min(cfg["steps_per_epoch"], steps)
        training.train(model, snippets(shards, cfg, training=True), run_dir=os.path.join(run_dir.path, sub),
                       epochs=math.ceil(steps / per_epoch), steps_per_epoch=per_epoch, config=cfg, monitor=None,
                       backup_every_steps=per_epoch, verbose=0 if args.quiet else "auto")

    def build():
        return tdn(num_classes, backbone=cfg["backbone"], taps=tuple(cfg["taps"]), dropout=cfg["dropout"],
                   weights=cfg["weights"], input_shape=(cfg["size"], cfg["size"], 3))

    log(f"run dir: {run_dir.path}; {cfg['backbone']} ({cfg['weights'] or 'random init'}), s = {cfg['segments']} "
        f"snippets at {cfg['size']}x{cfg['size']}, taps {'-'.join(cfg['taps'])}, dropout {cfg['dropout']}, "
        f"batch {cfg['batch_size']}, {cfg['optimizer']} lr {cfg['lr']:g}")
    with strategy.scope():
        base = build()
        image = compile_model(branch(base, "image_consensus"), cfg, cfg["image_steps"], cfg["lr"])
    log(f"training the image branch alone (TSN, {image.count_params():,} parameters), {cfg['image_steps']} steps")
    fit(image, cfg["image_steps"], "image")
    with strategy.scope():
        model = build()
        source = base.get_layer("image_subnetwork")
        model.get_layer("image_subnetwork").set_weights(source.get_weights())
        model.get_layer("image_logits").set_weights(base.get_layer("image_logits").get_weights())
        # both subnetworks start from the same weights (digest 5.4: from ImageNet); the difference
        # subnetwork's layers are the stock names prefixed diff_, in the same order
        model.get_layer("difference_subnetwork").set_weights(source.get_weights())
        model = set_phase(model, 1, partial_bn=cfg["partial_bn"])
        compile_model(model, cfg, cfg["phase1_steps"], cfg["lr"])
    log(f"training TDN phase 1 (image subnetwork frozen except its classifier; {model.count_params():,} "
        f"parameters), {cfg['phase1_steps']} steps")
    fit(model, cfg["phase1_steps"], "tdn_phase1")
    if cfg["phase2_steps"]:
        with strategy.scope():
            model = set_phase(model, 2, partial_bn=cfg["partial_bn"])
            compile_model(model, cfg, cfg["phase2_steps"], cfg["lr"] / 10)
        log(f"training TDN phase 2 (everything), {cfg['phase2_steps']} steps at lr {cfg['lr'] / 10:g}")
        fit(model, cfg["phase2_steps"], "tdn_phase2")
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "chief": False}

    progress = not args.quiet
    results = {"image": top1(image, shards, cfg, progress), "tdn": top1(model, shards, cfg, progress),
               "difference": top1(branch(model, "difference_consensus"), shards, cfg, progress)}
    paper = cfg["dataset"] == "hmdb51"
    head = f"  {'model':44s} {'top-1':>7s}" + ("   the thesis (HMDB51 RGB, 3-split average)" if paper else "")
    lines = [f"results on {cfg['dataset']} test ({cfg['segments']} snippets per video, "
             f"{cfg['eval_crops'] * (2 if cfg['eval_flips'] else 1)} view(s), averaged):", head]
    for key, name in (("image", "image branch alone (ResNet TSN)"), ("tdn", "Ng & Davis 2018 TDN"),
                      ("difference", "TDN's difference branch alone")):
        ref = f"   {PAPER[key]:.1f}" if paper and key in PAPER else ""
        lines.append(f"  {name:44s} {100 * results[key]:6.1f}%{ref}")
    lines.append(f"  (chance {100 / num_classes:.1f}%; TDN trained {cfg['phase1_steps'] + cfg['phase2_steps']} "
                 "steps more, from the image branch's weights)")
    for line in lines:
        log(line)
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": results, "classes": classes})
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, cfg["size"], cfg["size"], 3), tf.uint8)
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export_for_serving(model, base_dir or ".", name, print_signatures=not args.quiet,
                              signatures={"serving_default": classifier_signature(model, spec)})
    log(f"exported TDN to {path} (serving_default: frames (B, S, H, W, 3), any S >= 2 -> logits, probabilities)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": results, "export": path, "model": model, "image_model": image,
            "run_dir": str(run_dir.path)}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
