"""Beyond Short Snippets (Ng's thesis, chapter 3): ``python -m recipes.snippets_ucf101``.

prepare shards (if absent) -> train Conv Pooling and the deep LSTM head on the same per-frame CNN and the
same budget, on raw frames and on flow images (:class:`tfvideo.layers.FlowImages`: TVNet-50 flow of
consecutive frames clipped to +-40 and mapped to [0, 255], digest 3.6; each flow model starts from its
raw-frame model, as the thesis's do) -> clip Hit@1, video Hit@1 / Hit@5 of each, and the late fusion of
the image and flow models (softmax scores averaged 1:1: the thesis does not give its weights, digest 3.9
q12) -> the thesis's Table 3.6/3.7 figures beside ours when the data is UCF101 -> export (signatures
``conv_pooling`` and ``lstm``: uint8 frames ``(B, T, H, W, 3)`` of any T -> ``probabilities``;
``serving_default`` = ``lstm``).

* Conv Pooling (:func:`tfvideo.models.snippets.pooling_model`, head ``"conv"``): max over time of the
  last conv maps, two FC layers, softmax; softmax cross-entropy.
* LSTM (:func:`tfvideo.models.snippets.lstm_model`): stacked peephole LSTM (5 x 512 in the thesis) on
  the per-frame CNN's vectors, a softmax at every step, the loss weighted by the gain g_t rising from 0
  to 1 over the clip (:class:`tfvideo.losses.GainWeightedCrossEntropy`) and the same weighting of the
  per-step predictions at inference (:class:`tfvideo.layers.lstm.GainWeightedAverage`, digest 3.5).
* Hit@k (digest 3.7): clip Hit@1 scores single clips (the centre clip of each test video); video
  Hit@k averages the probabilities of ``eval_clips`` clips per video.

Two profiles:

* ``paper`` (default with ``--data-dir``, UCF101): InceptionV3 from ImageNet (GoogLeNet is not in
  keras.applications: our stand-in), frames resized to 256 and cropped to 220 (digest 3.7), 30-frame
  clips at 6 fps (stride 5 on 30 fps video, Table 3.6's best), 2 x 4096 FC, dropout 0.6, 5 x 512 LSTM;
  SGD momentum 0.9, weight decay 0.0005, lr 1e-5 for pooling and 30 x 1e-5 for the LSTM (digest 3.4,
  "N x 1e-5"), exponentially decayed (rate not given: x 0.1 over the run, our choice); batch 32 and
  20000 steps (not given either). Downloads ImageNet weights through Keras (``--weights none``).
* ``cpu`` (default on the built-in ``motion`` set, ~10 minutes on 2 cores): the small CNN, 48 x 48
  crops, 8-frame clips, FC 64 without dropout (dropout 0.6 on 64 units made the Conv Pooling model collapse to
  a constant output: measured, loss stuck at ln 8 on the built-in set, learning without it), LSTM 2 x 64
  (5 x 512 cannot learn on this budget: said in the log), Adam, 300 steps per model, and flow images clipped
  to +-4 px instead of the thesis's +-40: its bound is for full-resolution video, while the built-in set's
  48-px crops move by a pixel or two per frame, which +-40 maps to a few grey levels around 128; the
  BatchNorm of the small CNN then amplifies a signal smaller than its batch-to-batch mean shift and the
  net learns each clip relative to its batch (measured: Conv Pooling on flow images 15.6% video Hit@1
  with +-40, 57.3% with +-4; with +-40 the same trained net scored 53% on the test clips in BN's
  training mode against 20% with its moving statistics).

Every value can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from tfvideo.files import atomic_write_json

NAME = "snippets_ucf101"
MODELS = ("conv", "lstm")
LABELS = {"conv": "Conv Pooling", "lstm": "LSTM"}
PROFILES = {
    "paper": dict(backbone="inception_v3", weights="imagenet", size=220, short_side=256, frames=30, stride=5,
                  fc_units=4096, dropout=0.6, spatial_pooling="avg_first", lstm_layers=5, lstm_units=512,
                  batch_size=32, optimizer="sgd", lr=1e-5,
                  lstm_lr=30e-5, steps=20000, steps_per_epoch=500, eval_clips=10, tvnet_iterations=50,
                  flow_bound=40.0),
    "cpu": dict(backbone="small", weights=None, size=48, short_side=None, frames=8, stride=1, fc_units=64,
                dropout=0.0, spatial_pooling="avg", lstm_layers=2, lstm_units=64, batch_size=16,
                optimizer="adam", lr=1e-3, lstm_lr=1e-3,
                steps=300, steps_per_epoch=50, eval_clips=3, tvnet_iterations=10, flow_bound=4.0),
}
#: The thesis's UCF101 figures (3-fold accuracy %, digest 3.8, Tables 3.6-3.7).
PAPER = {"conv": {"rgb": 82.6, "fusion": 88.2,
                  "note": "Conv Pooling 120 frames (Table 3.6/3.7; 30 frames at 6 fps: 82.0)"},
         "lstm": {"rgb": None, "fusion": 88.6, "note": "LSTM 30-frame unroll, image + flow (Table 3.7)"}}


def build_parser():
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "Beyond Short Snippets (Ng et al. 2015; Ng's thesis ch. 3): Conv Pooling vs the deep LSTM head on the "
        "same budget, raw frames and flow images, clip and video Hit@k, late fusion."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="UCF101 root (UCF-101/ and ucfTrainTestlist/); without it the built-in "
                                      "'motion' set (8 camera-motion classes on real photographs) is used")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1, help="UCF101 split")
    p.add_argument("--profile", choices=tuple(PROFILES))
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--streams", nargs="+", choices=("rgb", "flow"), default=["rgb", "flow"],
                   help="raw frames and/or TVNet flow images (digest 3.6); both: late fusion too")
    p.add_argument("--backbone", help="per-frame CNN: 'small' or a keras.applications name")
    p.add_argument("--weights", help="backbone weights: 'imagenet' (downloads), 'none', or a file")
    p.add_argument("--frames", type=pos, help="frames per training clip (T)")
    p.add_argument("--stride", type=pos, help="frames between clip frames (5 on 30 fps video = 6 fps)")
    p.add_argument("--size", type=pos, help="square crop")
    p.add_argument("--no-peepholes", action="store_true", help="plain LSTM cells instead of peepholes")
    p.add_argument("--lstm-layers", type=pos)
    p.add_argument("--lstm-units", type=pos)
    p.add_argument("--fc-units", type=pos)
    p.add_argument("--flow-bound", type=cli.float_type(), help="flow images clip the flow to +-this many pixels "
                                                               "(thesis 40, digest 3.6)")
    p.add_argument("--spatial-pooling", choices=("flatten", "avg", "avg_first", "auto"),
                   help="Conv Pooling's maps -> vector (tfvideo.models.snippets.pooling_model; the thesis's "
                        "GoogLeNet: avg_first, max over time after the average pool)")
    p.add_argument("--dropout", type=cli.float_type(allow_zero=True), help="dropout after the FC layers (thesis 0.6)")
    p.add_argument("--steps", type=pos, help="training steps of each model")
    p.add_argument("--steps-per-epoch", type=pos)
    p.add_argument("--batch-size", type=pos)
    p.add_argument("--lr", type=cli.float_type(), help="learning rate of the pooling models")
    p.add_argument("--lstm-lr", type=cli.float_type(), help="learning rate of the LSTM models")
    p.add_argument("--eval-clips", type=pos, help="clips per test video for video Hit@k")
    p.add_argument("--eval-frames", type=pos, help="frames per test clip (default: --frames; any length works)")
    from recipes.harness import add_run_flags

    p = add_run_flags(p, NAME, data_out="shard folder (default tfrecords/motion or tfrecords/ucf101/split<N>)",
                      dry_run="build everything, one training step each, one test batch")
    p.add_argument("--videos-per-class", type=cli.int_type(2), default=None, help="built-in set size")
    return p


def resolve(args):
    from recipes.harness import profile_config

    builtin, profile, cfg = profile_config(args, PROFILES, (
        "backbone", "frames", "stride", "size", "lstm_layers", "lstm_units", "fc_units", "dropout",
        "spatial_pooling", "flow_bound", "steps", "steps_per_epoch", "batch_size", "lr", "lstm_lr", "eval_clips"))
    if args.dry_run:
        cfg.update(steps=1, steps_per_epoch=1)
    cfg["steps_per_epoch"] = min(cfg["steps_per_epoch"], cfg["steps"])
    cfg.update(profile=profile, dataset="motion" if builtin else "ucf101", split=args.split,
               models=list(args.models), streams=list(args.streams), peepholes=not args.no_peepholes,
               eval_frames=args.eval_frames or cfg["frames"], seed=args.seed, strategy=args.strategy,
               videos_per_class=args.videos_per_class if builtin else None, dry_run=args.dry_run)
    return cfg


def check_args(args, cfg):

    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if cfg["weights"] not in (None, "imagenet") and not os.path.isfile(cfg["weights"]):
        return [f"--weights {cfg['weights']}: expected 'imagenet', 'none' or an existing weights file"]
    from recipes.harness import check_run_args

    return check_run_args(args, NAME)


# ------------------------------------------------------------------------------------------ data ----
def prepare_data(args, cfg, log, chief=True, workers=1):
    from recipes.harness import prepare_action_set

    return prepare_action_set(args, cfg, log, dataset="ucf101", chief=chief, workers=workers)


def flips(cfg):
    """Random horizontal flips in training, except on the built-in ``motion`` set: a flip turns its
    ``pan_left`` into ``pan_right`` and ``rotate_cw`` into ``rotate_ccw`` (the label is the direction)."""
    return cfg["dataset"] != "motion"


def clips(shards, cfg, stream, *, training, num_clips=1, frames=None):
    """Clips of ``T`` frames (``T + 1`` for the flow stream: T flow images)."""
    from tfvideo.data import pipeline

    t = (frames or cfg["frames"]) + (stream == "flow")
    size = (cfg["size"], cfg["size"])
    if training:
        return pipeline.clip_dataset(shards, "train", training=True, size=size, batch_size=cfg["batch_size"],
                                     num_frames=t, stride=cfg["stride"], seed=cfg["seed"],
                                     resize_short_side=cfg["short_side"], flip=flips(cfg))
    return pipeline.clip_dataset(shards, "test", training=False, size=size, batch_size=max(1, min(8, num_clips)),
                                 num_frames=t, stride=cfg["stride"], num_clips=num_clips, with_video_id=True,
                                 resize_short_side=cfg["short_side"])


# ------------------------------------------------------------------------------------ the models ----
def build(kind, stream, cfg, num_classes):
    """``(training model, inference model -> probabilities)`` of one head on one stream, sharing weights."""
    import keras

    from tfvideo.layers.flow_stack import FlowImages
    from tfvideo.layers.lstm import GainWeightedAverage
    from tfvideo.losses import GainWeightedCrossEntropy
    from tfvideo.models import snippets

    shape = (None, cfg["size"], cfg["size"], 3)
    if kind == "conv":
        core = snippets.pooling_model(num_classes, "conv", backbone=cfg["backbone"], weights=cfg["weights"],
                                      input_shape=shape, fc_units=cfg["fc_units"], dropout=cfg["dropout"],
                                      spatial_pooling=cfg["spatial_pooling"], name=f"conv_{stream}")
    else:
        core = snippets.lstm_model(num_classes, backbone=cfg["backbone"], weights=cfg["weights"], input_shape=shape,
                                   layers=cfg["lstm_layers"], units=cfg["lstm_units"], use_peepholes=cfg["peepholes"],
                                   name=f"lstm_{stream}")
    frames = keras.Input(shape, dtype="uint8", name="frames")
    x = frames
    if stream == "flow":
        x = FlowImages({"scales": 1, "warps": 1, "iterations": cfg["tvnet_iterations"]}, bound=cfg["flow_bound"],
                       name="flow_images")(x)
    out = core(x)
    train = keras.Model(frames, out, name=f"{kind}_{stream}")
    if kind == "conv":
        probs = keras.layers.Softmax(name="probabilities")(out)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        probs = GainWeightedAverage("weighted", from_logits=True, name="probabilities")(out)
        loss = GainWeightedCrossEntropy()
    infer = keras.Model(frames, probs, name=f"{kind}_{stream}_probabilities")
    lr = cfg["lstm_lr"] if kind == "lstm" else cfg["lr"]
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, cfg["steps"], 0.1)  # x 0.1 over the run
    opt = (keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4) if cfg["optimizer"] == "sgd"
           else keras.optimizers.Adam(schedule))
    train.compile(optimizer=opt, loss=loss)
    return train, infer, core


def evaluate(infer, shards, cfg, stream, progress):
    """clip Hit@1 (the centre clip of each video), video Hit@1 / Hit@5 (``eval_clips`` clips averaged) and
    the per-video probabilities (for the fusion)."""
    from tfvideo.evaluation import average_per_video, predict_views
    from tfvideo.metrics import hit_at_k

    take = 1 if cfg["dry_run"] else None
    single = clips(shards, cfg, stream, training=False, num_clips=1, frames=cfg["eval_frames"])
    many = clips(shards, cfg, stream, training=False, num_clips=cfg["eval_clips"], frames=cfg["eval_frames"])
    if take:
        single, many = single.take(take), many.take(take)
    one = predict_views(infer, single, progress=progress)
    views = predict_views(infer, many, progress=progress)
    ids, scores, labels = average_per_video(views["scores"], views["video_ids"], views["labels"])
    return {"clip_hit1": hit_at_k(one["scores"], one["labels"], 1), "hit1": hit_at_k(scores, labels, 1),
            "hit5": hit_at_k(scores, labels, min(5, scores.shape[1])), "ids": ids, "scores": scores,
            "labels": labels}


def main(argv=None):
    import sys

    from recipes.harness import open_recipe

    args, cfg, log, strategy, chief, run_dir, (shards, classes) = open_recipe(sys.modules[__name__], argv)

    from tfvideo import training
    from tfvideo.export import export_for_serving, function_signature
    from tfvideo.metrics import hit_at_k

    import tensorflow as tf

    num_classes = len(classes)
    log(f"run dir: {run_dir.path}; per-frame CNN {cfg['backbone']} ({cfg['weights'] or 'random init'}), "
        f"{cfg['frames']}-frame clips (stride {cfg['stride']}) at {cfg['size']}x{cfg['size']}, FC {cfg['fc_units']} "
        f"(dropout {cfg['dropout']:g}), "
        f"LSTM {cfg['lstm_layers']} x {cfg['lstm_units']} ({'peephole' if cfg['peepholes'] else 'plain'}; the thesis: "
        f"5 x 512), {cfg['steps']} steps each, batch {cfg['batch_size']}")
    results, infer_models = {}, {}
    for kind in cfg["models"]:
        rgb_core = None
        for stream in cfg["streams"]:
            with strategy.scope():
                train, infer, core = build(kind, stream, cfg, num_classes)
            if stream == "flow" and rgb_core is not None:  # digest 3.6: flow models start from the RGB model
                core.set_weights(rgb_core.get_weights())
            log(f"training {LABELS[kind]} on {'flow images' if stream == 'flow' else 'raw frames'} "
                f"({train.count_params():,} parameters"
                f"{', from the raw-frame model' if stream == 'flow' and rgb_core else ''})")
            per_epoch = cfg["steps_per_epoch"]
            training.train(train, clips(shards, cfg, stream, training=True),
                           run_dir=os.path.join(run_dir.path, f"{kind}_{stream}"),
                           epochs=math.ceil(cfg["steps"] / per_epoch), steps_per_epoch=per_epoch, config=cfg,
                           monitor=None, backup_every_steps=per_epoch, verbose=0 if args.quiet else "auto")
            if not chief:
                continue
            results[f"{kind}_{stream}"] = evaluate(infer, shards, cfg, stream, not args.quiet)
            infer_models[f"{kind}_{stream}"] = infer
            if stream == "rgb":
                rgb_core = core
        if chief and len(cfg["streams"]) == 2:
            a, b = results[f"{kind}_rgb"], results[f"{kind}_flow"]
            assert list(a["ids"]) == list(b["ids"])
            fused = (a["scores"] + b["scores"]) / 2
            results[f"{kind}_fusion"] = {"clip_hit1": None, "hit1": hit_at_k(fused, a["labels"], 1),
                                         "hit5": hit_at_k(fused, a["labels"], min(5, num_classes))}
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "chief": False}

    paper = cfg["dataset"] == "ucf101"
    lines = [f"results on {cfg['dataset']} test ({cfg['eval_clips']} clips of {cfg['eval_frames']} frames per video "
             f"for video Hit@k; clip Hit@1 on the centre clip):",
             f"  {'model':34s} {'clip Hit@1':>10s} {'Hit@1':>7s} {'Hit@5':>7s}"
             + ("   the thesis (UCF101, 3-fold %)" if paper else "")]
    for key, r in results.items():
        kind, stream = key.split("_")
        name = f"{LABELS[kind]}, " + {"rgb": "raw frames", "flow": "flow images", "fusion": "raw + flow (1:1)"}[stream]
        clip = "-" if r["clip_hit1"] is None else f"{100 * r['clip_hit1']:.1f}%"
        ref = ""
        if paper and PAPER[kind].get(stream if stream != "fusion" else "fusion") is not None and stream != "flow":
            ref = f"   {PAPER[kind]['fusion' if stream == 'fusion' else 'rgb']:.1f} ({PAPER[kind]['note']})"
        lines.append(f"  {name:34s} {clip:>10s} {100 * r['hit1']:6.1f}% {100 * r['hit5']:6.1f}%{ref}")
    lines.append(f"  (chance: {100 / num_classes:.1f}%; video Hit@k averages the clips' probabilities, digest 3.7)")
    if paper:
        lines.append("  (the thesis trained on Sports-1M first and reports 3-split averages; run --split 1, 2, 3)")
    for line in lines:
        log(line)
    summary = {k: {m: v for m, v in r.items() if m not in ("ids", "scores", "labels")} for k, r in results.items()}
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": summary, "classes": classes})

    spec = {"frames": tf.TensorSpec((None, None, cfg["size"], cfg["size"], 3), tf.uint8)}
    def probabilities(model):
        def call(frames):
            return {"probabilities": model(frames, training=False)}
        return call

    sigs = {}
    for kind in cfg["models"]:
        model = infer_models.get(f"{kind}_rgb") or infer_models.get(f"{kind}_flow")
        sigs["conv_pooling" if kind == "conv" else "lstm"] = function_signature(probabilities(model), spec,
                                                                                ("probabilities",))
    sigs["serving_default"] = sigs.get("lstm") or sigs["conv_pooling"]
    import keras

    frames = keras.Input((None, cfg["size"], cfg["size"], 3), dtype="uint8", name="frames")
    export_model = keras.Model(frames, {k: m(frames) for k, m in infer_models.items()}, name=NAME)  # tracks all
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export_for_serving(export_model, base_dir or ".", name, signatures=sigs, print_signatures=not args.quiet)
    log(f"exported to {path} (signatures {', '.join(sorted(sigs))}: frames (B, T, H, W, 3), any T -> probabilities)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": summary, "export": path, "models": infer_models, "run_dir": str(run_dir.path)}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
