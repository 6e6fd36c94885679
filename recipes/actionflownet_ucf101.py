"""ActionFlowNet (Ng's thesis, chapter 4): ``python -m recipes.actionflownet_ucf101``.

prepare shards with flow targets (if absent) -> train ActionFlowNet (classification + flow, Eq. 4.2) and
the SAME network without the flow loss (lambda = 0), same data, steps, seed and initialisation -> video
top-1 of both side by side (25 clips x 10 crops averaged on real data, digest 4.5), the flow EPE of
ActionFlowNet's decoder on the test clips (next to the zero-flow EPE) and a picture of its flow and
future flow -> export the classifier alone (the decoder dropped, digest 4.2 "Inference":
``serving_default``: uint8 ``frames`` ``(B, T, H, W, 3)`` -> ``logits``, ``probabilities``).

Models (``--model``):

* ``multi`` (default): the multi-frame ActionFlowNet, a 3D ResNet-18 on ``T = 16`` consecutive frames
  with a 3D deconvolution decoder predicting the flow of every frame, the last one the future flow
  (digest 4.1-4.2). The thesis: 83.9% UCF101 / 56.4% HMDB51 (split 1).
* ``2f``: ActionFlowNet-2F, the two-frame model (2D ResNet-18 FlowNet on a 6-channel frame pair, four
  flow heads weighted by ``alpha_r``, Eq. 4.4; digest 4.3). The thesis: 70.0 / 42.4 (pretrained for flow
  on UCF101).

Flow targets (``--flow``): the thesis used EpicFlow (not available here: no OpenCV implementation,
digest 4.7 q13). On the built-in ``motion`` set the default is its **exact** flow (the renderer's,
:class:`tfvideo.data.motion.ExactFlow`); on UCF101 / HMDB51 **OpenCV TV-L1** computed once when the
shards are written (:class:`tfvideo.teachers.FlowTeacher`; ``--flow tvnet`` or ``dis`` for the others).

lambda (``--lam``, Eq. 4.2): not given by the thesis (digest 4.7 q3). Our EPE is the mean over valid
pixels and frames (in input pixels), so lambda = 1 weighs one pixel of flow error like one nat of
cross entropy; that is our default (see recipes/README.md for the ablation: ``--ablate-lam 0.1 1 10``
trains one more network per value, same budget).

Two profiles:

* ``paper`` (default with ``--data-dir``): widths 64-128-256-512, 224 x 224 crops (TSN multi-scale
  corners, flips, colour jitter for actions, digest 4.5) of frames resized to 256, batch 128, Adam lr 1e-4,
  40,000 iterations, constant rate (digest 4.5: no schedule given); test: 25 clips x 10 crops averaged.
* ``cpu`` (default on the built-in ``motion`` set, where the class is the camera motion): widths 8-16-32-64,
  T = 8 frames (the 16 of the thesis cost twice as much and, in 600 steps, learnt nothing: 11.5% against
  42.7% without the flow loss, measured), 64 x 64 random crops, no flips (a flip turns pan_left into
  pan_right), no dropout (0.5 on the 64-d pooled vector slowed learning; as the chapter-3 heads, DESIGN.md),
  batch 8, Adam lr 1e-3 decayed to 0 on a cosine over 1000 steps per network (runs with a constant rate
  differed by up to 20 points from one code change to the next); test: 2 clips x 1 centre crop.

HMDB51 (``--dataset hmdb51``): the thesis initialises from the UCF101 model and fine-tunes (digest 4.4);
pass that run's weights with ``--init <run>/eval/actionflownet.weights.h5``.

Every value can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from tfvideo.files import atomic_write_json

NAME = "actionflownet_ucf101"
LAMBDA = 1.0
PROFILES = {
    "paper": dict(model="multi", widths=[64, 128, 256, 512], size=224, short_side=256, frames=16, batch_size=128,
                  lr=1e-4, schedule="constant", steps=40000, steps_per_epoch=500, dropout=0.5, lam=LAMBDA, crop="tsn",
                  color_jitter=True, eval_clips=25, eval_crops=5, eval_flips=True),
    "cpu": dict(model="multi", widths=[8, 16, 32, 64], size=64, short_side=None, frames=8, batch_size=8,
                lr=1e-3, schedule="cosine", steps=1000, steps_per_epoch=100, dropout=0.0, lam=LAMBDA, crop="random",
                color_jitter=False, eval_clips=2, eval_crops=1, eval_flips=False),
}
#: The thesis's Table 4.1 (split 1, top-1 %): ActionFlowNet's rows.
PAPER = {("multi", "ucf101"): 83.9, ("multi", "hmdb51"): 56.4, ("2f", "ucf101"): 70.0, ("2f", "hmdb51"): 42.4}
#: colour jitter for the action task (digest 4.5: "colour jittering [9]"; strengths not stated: ours)
COLOR_JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.02}


def build_parser():
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "ActionFlowNet (Ng's thesis ch. 4): the network trained for actions and flow vs the same network "
        "without the flow loss, same budget, top-1 side by side."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="UCF101 (or, with --dataset hmdb51, HMDB51) root; without it the built-in "
                                      "'motion' set is used")
    p.add_argument("--dataset", choices=("ucf101", "hmdb51"), default="ucf101",
                   help="layout of --data-dir")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--profile", choices=tuple(PROFILES))
    p.add_argument("--model", choices=("multi", "2f"), help="multi-frame ActionFlowNet or ActionFlowNet-2F")
    p.add_argument("--flow", choices=("exact", "tvl1", "tvnet", "dis"),
                   help="flow targets stored in the shards (default: exact on the built-in set, tvl1 otherwise)")
    p.add_argument("--lam", type=cli.float_type(allow_zero=True), help=f"lambda of Eq. 4.2 (default {LAMBDA})")
    p.add_argument("--ablate-lam", type=cli.float_type(allow_zero=True), nargs="+", default=[],
                   help="also train one network per lambda value (same budget) and add them to the table")
    p.add_argument("--widths", type=pos, nargs=4, help="channels of ResNet-18's four stages")
    p.add_argument("--frames", type=cli.int_type(8), help="T frames per clip (multiple of 8; multi only)")
    p.add_argument("--size", type=cli.int_type(32), help="square crop (multiple of 32)")
    p.add_argument("--steps", type=pos)
    p.add_argument("--steps-per-epoch", type=pos)
    p.add_argument("--batch-size", type=pos)
    p.add_argument("--lr", type=cli.float_type())
    p.add_argument("--dropout", type=cli.float_type(allow_zero=True))
    p.add_argument("--repeats", type=pos, default=1, help="train every network with this many seeds (seed, seed + 1, "
                                                         "...) and report the mean and spread")
    p.add_argument("--init", help="weights file to start both networks from (e.g. the UCF101 run's, for HMDB51)")
    from recipes.harness import add_run_flags

    p = add_run_flags(p, NAME, data_out="shard folder (default tfrecords/motion-<flow> or "
                                        "tfrecords/<dataset>/split<N>-<flow>)",
                      dry_run="build everything, one training step each, one test batch")
    p.add_argument("--videos-per-class", type=cli.int_type(2), default=None, help="built-in set size")
    return p


def resolve(args):
    from recipes.harness import profile_config

    builtin, profile, cfg = profile_config(args, PROFILES, (
        "model", "widths", "frames", "size", "steps", "steps_per_epoch", "batch_size", "lr", "dropout", "lam"))
    if args.dry_run:
        cfg.update(steps=1, steps_per_epoch=1)
    if cfg["model"] == "2f":
        cfg["frames"] = 2
    cfg.update(profile=profile, dataset="motion" if builtin else args.dataset, split=args.split,
               flow=args.flow or ("exact" if builtin else "tvl1"), ablate_lam=list(args.ablate_lam),
               init=args.init, seed=args.seed, repeats=args.repeats, strategy=args.strategy,
               videos_per_class=args.videos_per_class if builtin else None, dry_run=args.dry_run)
    return cfg


def check_args(args, cfg):
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if cfg["flow"] == "exact" and cfg["dataset"] != "motion":
        return ["--flow exact: only the built-in motion set has exact flow; use tvl1, tvnet or dis"]
    if cfg["model"] == "multi" and cfg["frames"] % 8:
        return [f"--frames must be a multiple of 8 (three temporal halvings, digest 4.1); got {cfg['frames']}"]
    if cfg["size"] % 32:
        return [f"--size must be a multiple of 32 (ResNet-18's total stride); got {cfg['size']}"]
    if not 0 <= cfg["dropout"] < 1:
        return [f"--dropout must be in [0, 1); got {cfg['dropout']}"]
    if args.init is not None and not os.path.isfile(args.init):
        return [f"--init {args.init}: not a file"]
    from recipes.harness import check_run_args

    return check_run_args(args, NAME)


# ------------------------------------------------------------------------------------------ data ----
def flow_source(cfg):
    """The ``prepare`` hook that writes the flow targets into the shards."""
    if cfg["flow"] == "exact":
        from tfvideo.data.motion import ExactFlow

        return ExactFlow()
    from tfvideo.teachers import FlowTeacher

    return FlowTeacher(cfg["flow"])


def prepare_data(args, cfg, log, chief=True, workers=1):
    from recipes.harness import prepare_action_set

    source = flow_source(cfg)
    log(f"flow targets: {source.describe()} (the thesis: EpicFlow, digest 4.4)")
    return prepare_action_set(args, cfg, log, dataset=args.dataset, chief=chief, workers=workers,
                              item_transform=source, suffix=f"-{cfg['flow']}")


def _short_side(cfg):
    return cfg["short_side"] and round(cfg["size"] * cfg["short_side"] / 224)


def train_data(shards, cfg, *, flow_outputs):
    """Training clips with labels and flow targets, keyed by the model's outputs."""
    from tfvideo.data import pipeline

    ds = pipeline.action_flow_dataset(
        shards, "train", training=True, size=(cfg["size"], cfg["size"]), batch_size=cfg["batch_size"],
        num_frames=cfg["frames"], seed=cfg["seed"], resize_short_side=_short_side(cfg), crop=cfg["crop"],
        color_jitter=COLOR_JITTER if cfg["color_jitter"] else None,
        flip=cfg["dataset"] != "motion")  # motion: a flip swaps pan_left and pan_right
    if cfg["model"] == "multi":
        return ds
    # ActionFlowNet-2F: one pair, the flow of its first frame is the target of every head (Eq. 4.4)
    return ds.map(lambda x, y: (x, {"logits": y["logits"], **{k: y["flow"][:, 0] for k in flow_outputs}}))


def test_clips(shards, cfg):
    from tfvideo.data import pipeline

    ds = pipeline.clip_dataset(shards, "test", training=False, size=(cfg["size"], cfg["size"]), batch_size=4,
                               num_frames=cfg["frames"], num_clips=cfg["eval_clips"], num_crops=cfg["eval_crops"],
                               flip_views=cfg["eval_flips"], with_video_id=True, resize_short_side=_short_side(cfg))
    return ds.take(1) if cfg["dry_run"] else ds


def test_flows(shards, cfg):
    """One centre clip per test video with its flow targets (for the decoder's EPE)."""
    from tfvideo.data import pipeline

    ds = pipeline.action_flow_dataset(shards, "test", training=False, size=(cfg["size"], cfg["size"]),
                                      batch_size=4, num_frames=cfg["frames"], resize_short_side=_short_side(cfg))
    return ds.take(1) if cfg["dry_run"] else ds


# ------------------------------------------------------------------------------------ the models ----
def build_model(cfg, num_classes):
    if cfg["model"] == "multi":
        from tfvideo.models.actionflownet import actionflownet

        return actionflownet(num_classes, num_frames=cfg["frames"], input_size=(cfg["size"], cfg["size"]),
                             widths=tuple(cfg["widths"]), dropout=cfg["dropout"])
    from tfvideo.models.actionflownet_2f import actionflownet_2f

    return actionflownet_2f(num_classes, input_size=(cfg["size"], cfg["size"]), widths=tuple(cfg["widths"]),
                            dropout=cfg["dropout"])


def flow_output_names(model):
    return [k for k in model.output if k != "logits"] if isinstance(model.output, dict) else []


def compile_model(model, cfg, lam):
    """Eq. 4.2 (multi) / 4.4 (2F): cross entropy + lam x EPE (2F: sum_r alpha_r EPE_r)."""
    import keras

    from tfvideo.losses import FlowEndPointError

    losses = {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    weights = {"logits": 1.0}
    if cfg["model"] == "multi":
        losses["flow"], weights["flow"] = FlowEndPointError(), float(lam)
    else:
        from tfvideo.models.actionflownet_2f import flow_losses

        flow_loss, flow_weights = flow_losses(lam=float(lam))
        losses.update(flow_loss)
        weights.update(flow_weights)
    lr = cfg["lr"]
    if cfg.get("schedule") == "cosine":  # ours for short CPU runs; the thesis gives no schedule (digest 4.5)
        lr = keras.optimizers.schedules.CosineDecay(lr, max(1, cfg["steps"]))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=losses, loss_weights=weights,
                  metrics={"logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]})
    return model


def top1(classifier, shards, cfg, progress):
    from tfvideo.evaluation import average_per_video, classification_metrics, predict_views

    views = predict_views(classifier, test_clips(shards, cfg), progress=progress)
    _, scores, labels = average_per_video(views["scores"], views["video_ids"], views["labels"])
    return classification_metrics(scores, labels)["top1"]


def flow_epe(model, shards, cfg):
    """Mean EPE (px) of the decoder's flow on the test clips, every frame (the last one the future flow),
    and of the zero flow, over the valid target vectors. Also returns one clip for the picture."""
    import numpy as np
    import tensorflow as tf

    step = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    total = zero = count = 0.0
    sample = None
    for frames, targets in test_flows(shards, cfg):
        out = step(frames)
        target = np.asarray(targets["flow"])
        if "flow" in out:
            pred = np.asarray(out["flow"])
        else:  # 2F: the finest head (1/4 resolution, input pixels) brought to the input size, one pair
            finest = out[flow_output_names(model)[0]]
            pred = np.asarray(tf.image.resize(finest, target.shape[2:4], method="bilinear"))[:, None]
            target = target[:, :1]
        valid = target[..., 2] > 0
        total += float(np.linalg.norm(pred - target[..., :2], axis=-1)[valid].sum())
        zero += float(np.linalg.norm(target[..., :2], axis=-1)[valid].sum())
        count += float(valid.sum())
        if sample is None:
            sample = (np.asarray(frames[0]), target[0], pred[0])
    return total / max(count, 1.0), zero / max(count, 1.0), sample


def flow_picture(path, sample, cfg):
    """Frame 0, the target and predicted flow 0 -> 1, and the target and predicted future flow of the last
    frame (multi-frame model), tiles at least 128 px wide."""
    import cv2
    import numpy as np

    from tfvideo.viz import flow_image, flow_legend, save_png, side_by_side

    frames, target, pred = sample
    top = float(np.percentile(np.linalg.norm(target[..., :2], axis=-1), 99)) or 1.0
    images = [frames[0], flow_image(target[0, ..., :2], max_flow=top), flow_image(pred[0], max_flow=top)]
    labels = ["frame 0", "target 0>1", "ours 0>1"]
    if cfg["model"] == "multi":
        images += [flow_image(target[-1, ..., :2], max_flow=top), flow_image(pred[-1], max_flow=top)]
        labels += ["target future", "ours future"]
    zoom = max(1, -(-128 // frames.shape[2]))
    images = [cv2.resize(np.asarray(im), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) for im in images]
    images.append(flow_legend(images[0].shape[0]))
    labels.append(f"{top:.2g} px")
    return save_png(path, side_by_side(images, labels=labels))


def main(argv=None):
    import sys

    from recipes.harness import open_recipe

    args, cfg, log, strategy, chief, run_dir, (shards, classes) = open_recipe(sys.modules[__name__], argv)

    import keras

    from tfvideo import training
    from tfvideo.export import classifier_signature, export_for_serving
    from tfvideo.models.actionflownet import classifier_model  # both models' (actionflownet_2f re-exports it)

    num_classes = len(classes)
    runs = [("actionflownet", f"ActionFlowNet{'-2F' if cfg['model'] == '2f' else ''} (lambda {cfg['lam']:g})",
             cfg["lam"]),
            ("no_flow_loss", "the same network without the flow loss (lambda 0)", 0.0)]
    runs += [(f"lam_{lam:g}", f"ActionFlowNet, lambda {lam:g} (ablation)", lam)
             for lam in cfg["ablate_lam"] if lam not in (cfg["lam"], 0.0)]
    log(f"run dir: {run_dir.path}; {cfg['model']} model, widths {'-'.join(map(str, cfg['widths']))}, "
        f"{cfg['frames']} frames at {cfg['size']}x{cfg['size']}, batch {cfg['batch_size']}, Adam lr {cfg['lr']:g}, "
        f"{cfg['steps']} steps per network")
    progress = not args.quiet
    seeds = [cfg["seed"] + r for r in range(cfg["repeats"])]
    models, scores = {}, {key: [] for key, _, _ in runs}
    epes = []
    for seed in seeds:
        initial = None
        for key, title, lam in runs:
            with strategy.scope():
                keras.utils.set_random_seed(seed)  # the same initialisation and data order for every network
                model = build_model(cfg, num_classes)
                if cfg["init"]:
                    model.load_weights(cfg["init"])
                if initial is None:
                    initial = model.get_weights()
                model.set_weights(initial)
                compile_model(model, cfg, lam)
            log(f"training {title}{f', seed {seed}' if len(seeds) > 1 else ''}: {model.count_params():,} "
                f"parameters, {cfg['steps']} steps")
            per_epoch = min(cfg["steps_per_epoch"], cfg["steps"])
            sub = key if len(seeds) == 1 else os.path.join(f"seed{seed}", key)
            training.train(model, train_data(shards, dict(cfg, seed=seed), flow_outputs=flow_output_names(model)),
                           run_dir=os.path.join(run_dir.path, sub), epochs=math.ceil(cfg["steps"] / per_epoch),
                           steps_per_epoch=per_epoch, config=cfg, monitor=None, backup_every_steps=per_epoch,
                           verbose=0 if args.quiet else "auto")
            models[key] = model
        if not chief:
            continue
        for key, _, _ in runs:
            scores[key].append(top1(classifier_model(models[key]), shards, cfg, progress))
        epes.append(flow_epe(models["actionflownet"], shards, cfg))
        if len(seeds) > 1:
            log(f"seed {seed}: " + ", ".join(f"{key} {100 * scores[key][-1]:.1f}%" for key, _, _ in runs))
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "chief": False}

    import numpy as np

    results = {key: {"top1": float(np.mean(v)), "top1_per_seed": v} for key, v in scores.items()}
    epe, zero = float(np.mean([e[0] for e in epes])), epes[0][1]
    results["actionflownet"].update(flow_epe=epe, zero_flow_epe=zero)
    picture = flow_picture(run_dir.eval / "flow.png", epes[-1][2], cfg)
    ref = PAPER.get((cfg["model"], cfg["dataset"]))
    views = cfg["eval_clips"] * cfg["eval_crops"] * (2 if cfg["eval_flips"] else 1)
    many = len(seeds) > 1
    lines = [f"results on {cfg['dataset']} test ({views} view(s) per video averaged; flow targets: "
             f"{flow_source(cfg).describe()}" + (f"; mean +- std over seeds {seeds}" if many else "") + "):",
             f"  {'model':58s} {'top-1':>7s}" + ("        " if many else "") + ("   the thesis (split 1)" if ref else "")]
    for key, title, _ in runs:
        paper = f"   {ref:.1f}" if ref and key == "actionflownet" else ""
        spread = f" +- {100 * np.std(scores[key]):4.1f}" if many else ""
        lines.append(f"  {title:58s} {100 * results[key]['top1']:6.1f}%{spread}{paper}")
    lines.append(f"  (chance {100 / num_classes:.1f}%; the thesis has no lambda-0 row for this network"
                 + ("" if many else "; one seed: on the built-in set runs differ by up to 20 points, pass --repeats 3")
                 + ")")
    lines.append(f"  ActionFlowNet's flow on the test clips: EPE {epe:.3f} px (zero flow: {zero:.3f} px); "
                 f"picture: {picture}")
    for line in lines:
        log(line)
    model = models["actionflownet"]
    model.save_weights(os.fspath(run_dir.eval / "actionflownet.weights.h5"))
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": results, "classes": classes})
    import tensorflow as tf

    classifier = classifier_model(model)
    spec = tf.TensorSpec((None, cfg["frames"], cfg["size"], cfg["size"], 3), tf.uint8)
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export_for_serving(classifier, base_dir or ".", name, print_signatures=not args.quiet,
                              signatures={"serving_default": classifier_signature(classifier, spec)})
    log(f"exported the classifier (decoder dropped) to {path} (serving_default: frames (B, {cfg['frames']}, "
        f"{cfg['size']}, {cfg['size']}, 3) uint8 -> logits, probabilities)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": results, "export": path, "models": models, "classifier": classifier,
            "run_dir": str(run_dir.path)}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
