"""Deep Feature Flow for video object detection (seed 003): ``python -m recipes.dff_vid``.

prepare shards (if absent) -> train the per-frame R-FCN detector ("Frame") -> pretrain the flow network
on exact flow (our stand-in for Flying Chairs) -> train the DFF variants on frame pairs (Sec. 3, R-FCN's
losses on the propagated features of the current frame) -> stream the test videos through Algorithm 1
(:class:`tfvideo.models.dff_runner.DFFVideoRunner`) with a key frame every l = 10 frames (Sec. 5) and
with the adaptive scheduler -> ImageNet VID mAP (:func:`tfvideo.detection_eval.vid_map`, the devkit's
protocol) and measured frames/s side by side with the paper's Table 4 -> a GIF with boxes -> export in
TF Serving's layout with the detection signature and the key-frame signatures
(:func:`tfvideo.models.dff_runner.signatures`: ``serving_default`` and ``task`` answer ``boxes``,
``classes``, ``scores``, ``num_detections``).

The models are :mod:`tfvideo.models.rfcn` (R-FCN on the 1024-d features: RPN on the first 512
channels, position-sensitive maps on the second, Sec. 4), trained with :class:`~tfvideo.models.rfcn.
DetectionTrainer` (the DFF code's four losses with OHEM). Table 3's variants (``--variants``; "Frame"
always runs): ``dff`` (N and F trained together on pairs ``0 <= i - k <= 9``), ``fix_n``, ``fix_f``,
``separate``, as in :mod:`recipes.dff_cityscapes`.

Evaluation: every test video is streamed from its first frame, as the DFF code's ``pred_eval`` does on
ImageNet VID (a key frame every l frames), and every annotated frame is scored; frames are padded at the
bottom and right to multiples of 128 (FlowNet's size rule), which leaves pixel coordinates unchanged, so
the detections are in stored-frame pixels, clipped to the frame, as :func:`~tfvideo.detection_eval.
vid_map`'s size-dependent IoU thresholds need. frames/s: wall time of the runner loop (N_feat, F, W,
N_task and the detection head, batch of one frame, after a warm-up).

Two profiles:

* ``paper`` (default with ``--data-dir``): ResNet-101 (ImageNet weights, downloaded by Keras: needs
  network; ``--weights none`` opts out) + FlowNetS; frames with a short side of 600 (Sec. 5.1; F sees
  them at half that, inside the flow network); SGD momentum 0.9, weight decay 0.0005, batch 8 (8 GPUs x
  1), lr 1e-3 for 40K and 1e-4 for 20K iterations (60K, Sec. 5.1). Our deviations, said in the log:
  training crops of 512 x 768 (FlowNet needs multiples of 128; whole frames at test), and ImageNet VID
  alone (the paper mixes in ImageNet DET 1:2, which has no adapter here).
* ``cpu`` (default on the built-in ``objects_detection`` set, ~10 minutes on 2 cores): the ``small``
  feature net + the ``tiny`` flow net at 128 x 256, batch 8, Adam with the paper's schedule shape; every
  DFF variant starts from Frame's N.

Every value can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from recipes import dff_cityscapes as seg
from tfvideo.files import atomic_write_json

NAME = "dff_vid"
VARIANTS = seg.VARIANTS
LABELS = seg.LABELS
FIX = seg.FIX
PROFILES = {
    "paper": dict(backbone="resnet101", flow="s", weights="imagenet", short_side=600, size=(512, 768),
                  batch_size=8, optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4,
                  frame_steps=60000, steps=60000, flow_steps=2000, steps_per_epoch=1000, init="paper"),
    "cpu": dict(backbone="small", flow="tiny", weights=None, short_side=None, size=(128, 256),
                batch_size=8, optimizer="adam", lr=1e-3, momentum=None, weight_decay=0.0,
                frame_steps=800, steps=400, flow_steps=600, steps_per_epoch=100, init="frame"),
}
OBJECTS_SIZE = seg.OBJECTS_SIZE
#: The paper's Table 4 (ImageNet VID, l = 10; mAP %, frames/s on a K40 GPU, short side 600).
PAPER_TABLE4 = {"frame": (73.9, 4.05), "dff": (73.1, 20.25), "fix_n": (72.3, 20.25), "fix_f": (68.8, 20.25),
                "separate": (67.4, 20.25)}
PAD = 128  # FlowNet's size rule


# ------------------------------------------------------------------------------------ arguments ----
def build_parser():
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "Deep Feature Flow (Zhu et al. 2017) for video object detection with R-FCN: Frame vs DFF with a key "
        "frame every l = 10 frames, ImageNet VID mAP and frames/s beside the paper's Table 4."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="ImageNet VID root (ILSVRC2015/ with Data/VID/{train,val} and "
                                      "Annotations/VID/...); without it the built-in 'objects_detection' set "
                                      "(objects cut from photographs moving over photographs, boxes from their "
                                      "exact masks) is generated and used")
    seg.add_dff_flags(p, PROFILES, key_intervals=(10,), lr_help="initial learning rate (/10 for the last third)")
    p.add_argument("--size", type=cli.size_type(128), help="built-in set: frame size HxW (multiples of 128; "
                                                            "default 128x256); VID: the training crop (512x768)")
    p.add_argument("--short-side", type=pos, help="ImageNet VID frames resized to this short side (paper 600)")
    p.add_argument("--min-score", type=cli.float_type(), default=0.1, help="boxes drawn in the GIF from this score")
    p.add_argument("--gif-boxes", type=pos, default=3, help="at most this many boxes per frame in the GIF (best first)")
    from recipes.harness import add_run_flags

    return add_run_flags(p, NAME, data_out="shard folder (default tfrecords/imagenet_vid or "
                                           "tfrecords/objects_detection-128x256)",
                         dry_run="build everything, one training step each, one test video")


def resolve(args):
    """The run's config: the profile, then the flags."""
    from recipes.harness import profile_config

    builtin, profile, cfg = profile_config(args, PROFILES, seg.SHARED_KEYS, real_data_cpu={"short_side": 300})
    if builtin:
        cfg["short_side"] = None
        cfg["size"] = tuple(args.size or OBJECTS_SIZE)
    elif args.size is not None:
        cfg["size"] = tuple(args.size)
    elif profile == "cpu":
        cfg["size"] = (256, 384)
    if args.dry_run:
        cfg.update(frame_steps=1, flow_steps=min(cfg["flow_steps"], 1), steps=1, steps_per_epoch=1)
    cfg.update(profile=profile, dataset="objects_detection" if builtin else "imagenet_vid",
               variants=list(args.variants), flownet_weights=args.flownet_weights, flow_order=args.flow_order,
               key_intervals=sorted(set(args.key_intervals)), adaptive_interval=args.adaptive_interval,
               eval_videos=1 if args.dry_run else args.eval_videos, seed=args.seed, strategy=args.strategy,
               videos=(args.videos or 48) if builtin else None, min_score=args.min_score, gif_boxes=args.gif_boxes,
               task_layers=1)
    return cfg


def check_args(args, cfg):
    """Problems found before any work (reads only), as texts for ``parser.error``."""
    from tfvideo.data.prepare import check_reusable
    from tfvideo.models.flownet import SIZE_MULTIPLE

    problems = seg.check_dff_args(args, cfg)
    if problems:
        return problems
    h, w = cfg["size"]
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        return [f"--size {h}x{w}: frames must be multiples of {SIZE_MULTIPLE} (FlowNet's size rule)"]
    if cfg["short_side"] is not None and cfg["short_side"] < h:
        return [f"--size {h}x{w}: the training crop must fit in frames of short side {cfg['short_side']}"]
    from recipes.harness import check_run_args

    problems = check_run_args(args, NAME)
    if problems:
        return problems
    try:
        for name, out, data_dir, options in sources(args, cfg):
            check_reusable(name, out, data_dir, **{k: v for k, v in options.items() if k != "short_side"})
    except ValueError as err:
        return [str(err)]
    return []


# ------------------------------------------------------------------------------------------ data ----
def sources(args, cfg):
    """``[(prepare name, shard folder, data dir, prepare options)]``: the detection set, then (when F is
    pretrained here) the built-in ``objects`` set, whose exact flow pretrains F (the same generated clips
    as ``objects_detection``: one folder of videos serves both)."""
    size = cfg["size"] if cfg["dataset"] == "objects_detection" else OBJECTS_SIZE
    videos = os.path.join("tfrecords", "objects-{}x{}".format(*size), "videos")
    options = seg._objects_options({**cfg, "videos": cfg["videos"] or 48}, size)
    out = []
    if cfg["dataset"] == "objects_detection":
        out.append(("objects_detection", args.data_out or os.path.join(
            "tfrecords", "objects_detection-{}x{}".format(*size)), videos, options))
    else:
        out.append(("imagenet_vid", args.data_out or os.path.join("tfrecords", "imagenet_vid"), args.data_dir,
                    {"short_side": cfg["short_side"]}))
    if cfg["flownet_weights"] is None and cfg["flow_steps"]:
        out.append(("objects", os.path.join("tfrecords", "objects-{}x{}".format(*size)), videos, options))
    return out


def prepare_data(args, cfg, log, chief=True, workers=1):
    """Writes the shards (chief; others wait). Returns ``{"det": folder, "flow": folder or None,
    "classes": [...], "test_split": "test" | "val"}``."""
    if cfg["dataset"] == "objects_detection":
        log("data: the built-in 'objects_detection' set at {}x{} (objects cut from photographs moving over "
            "photographs, boxes from their exact masks) -- pass --data-dir for ImageNet VID".format(*cfg["size"]))
    else:
        log(f"data: ImageNet VID from {args.data_dir}, short side {cfg['short_side']} (VID only: the paper's "
            "DET images have no adapter here)")
    result = {"flow": None}
    for index, (name, out, summary, test_split) in enumerate(seg.prepare_sources(args, sources(args, cfg), log,
                                                                                chief, workers)):
        if index == 0:
            result.update(det=out, classes=list(summary["classes"]), test_split=test_split)
        else:
            result["flow"] = out
    return result


def pair_data(shards, cfg, *, max_offset, frames_only=False):
    """Training pairs (key k, annotated frame i), ``0 <= i - k <= max_offset`` with frame i's boxes;
    ``frames_only``: the annotated frame alone, for Frame."""
    from tfvideo.data import pipeline

    ds = pipeline.detection_pair_dataset(shards, "train", training=True, size=tuple(cfg["size"]),
                                         batch_size=cfg["batch_size"], max_offset=max_offset, crop="random",
                                         flip=True, seed=cfg["seed"])
    return ds.map(lambda x, y: (x[:, 1], y)) if frames_only else ds


# ------------------------------------------------------------------------------------ the models ----
def optimizer(cfg, steps):
    """The paper's schedule shape for detection: ``lr`` for the first 2/3 of ``steps`` (40K of 60K), then
    ``lr / 10``."""
    import keras

    boundary = max(0, (2 * steps) // 3 - 1)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [cfg["lr"], cfg["lr"] / 10])
    if cfg["optimizer"] == "sgd":
        return keras.optimizers.SGD(schedule, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"] or None)
    return keras.optimizers.Adam(schedule, weight_decay=cfg["weight_decay"] or None)


def build_frame(cfg, num_classes):
    from tfvideo.models.rfcn import DetectionTrainer, frame_detector

    model = frame_detector(cfg["backbone"], num_classes, weights=cfg["weights"], input_shape=(*cfg["size"], 3))
    trainer = DetectionTrainer(model, name="frame")
    trainer.compile(optimizer(cfg, cfg["frame_steps"]))
    return trainer


def build_dff(variant, cfg, num_classes, frame_model, flow_net, frame_size=None):
    """A DFF detector of ``variant`` with its starting weights (Table 3), wrapped for training."""
    from tfvideo.models.dff import transfer_weights
    from tfvideo.models.rfcn import DetectionTrainer, dff_detector

    model = dff_detector(cfg["backbone"], num_classes, flow=cfg["flow"], fix=FIX.get(variant), weights=cfg["weights"],
                         frame_size=tuple(frame_size or cfg["size"]), flow_order=cfg["flow_order"], name=variant)
    if variant in ("fix_n", "separate") or cfg["init"] == "frame":
        transfer_weights(frame_model, [model.get_layer("n_feat"), model.get_layer("n_task")])
    transfer_weights(flow_net, model.get_layer("flownet"))
    trainer = DetectionTrainer(model, name=f"{variant}_trainer")
    trainer.compile(optimizer(cfg, cfg["steps"]))
    return trainer


def train_all(args, cfg, data, strategy, run_dir, log):
    """Frame, F's pretraining, then each DFF variant; returns ``{variant: detector}`` with ``"frame"``."""
    from tfvideo import training

    num_classes = len(data["classes"])
    verbose = 0 if args.quiet else "auto"

    def fit(model, dataset, steps, sub):
        per_epoch = min(cfg["steps_per_epoch"], steps)
        training.train(model, dataset, run_dir=os.path.join(run_dir.path, sub), epochs=math.ceil(steps / per_epoch),
                       steps_per_epoch=per_epoch, config=cfg, monitor=None, backup_every_steps=per_epoch,
                       verbose=verbose)

    with strategy.scope():
        frame = build_frame(cfg, num_classes)
    log(f"training Frame ({frame.detector.count_params():,} parameters, {cfg['frame_steps']} steps on single "
        "frames; losses: RPN cls + box, R-FCN cls + box with OHEM 128)")
    fit(frame, pair_data(data["det"], cfg, max_offset=0, frames_only=True), cfg["frame_steps"], "frame")
    channels = int(frame.detector.get_layer("n_feat").output.shape[-1])
    # F is pretrained on the built-in set's frames (its size): its weights do not depend on the frame size
    flow_cfg = {**cfg, "size": OBJECTS_SIZE} if cfg["dataset"] != "objects_detection" else cfg
    with strategy.scope():
        pretraining, flow_net = seg.build_flow_pretraining(flow_cfg, channels)
    if cfg["flownet_weights"]:
        from tfvideo.models.flownet import load_flownet_weights

        load_flownet_weights(flow_net, cfg["flownet_weights"])
        log(f"F: FlowNetS weights from {cfg['flownet_weights']}")
    elif cfg["flow_steps"]:
        log(f"pretraining F ({cfg['flow']}, {flow_net.count_params():,} parameters) on the built-in set's "
            f"exact flow, {cfg['flow_steps']} steps (our stand-in for Flying Chairs)")
        fit(pretraining, seg.flow_data(data["flow"], flow_cfg), cfg["flow_steps"], "flow")
        epe, zero = seg.flow_check(pretraining, data["flow"], flow_cfg)
        log(f"F after pretraining: EPE {epe:.3f} px at 1/8 of the frame on test pairs (zero flow: {zero:.3f})")
    else:
        log("F: random initialisation (--flow-steps 0)")
    detectors = {"frame": frame.detector}
    for variant in cfg["variants"]:
        with strategy.scope():
            trainer = build_dff(variant, cfg, num_classes, frame.detector, flow_net)
        detectors[variant] = trainer.detector
        if variant == "separate":
            continue
        log(f"training {LABELS[variant]} on pairs 0 <= i - k <= 9, {cfg['steps']} steps")
        fit(trainer, pair_data(data["det"], cfg, max_offset=9), cfg["steps"], variant)
    return detectors, flow_net


# ------------------------------------------------------------------------------------ evaluation ----
def for_any_size(detector, cfg, num_classes, variant):
    """The trained weights in a DFF detector for frames of any size (multiples of 128)."""
    from tfvideo.models.dff import transfer_weights
    from tfvideo.models.rfcn import dff_detector

    plain = dff_detector(cfg["backbone"], num_classes, flow=cfg["flow"], frame_size=(None, None),
                         flow_order=cfg["flow_order"], name=variant)
    transfer_weights(detector, plain)
    return plain


def padded(frames, multiple=PAD):
    """Frames ``(T, H, W, 3)`` zero-padded at the bottom and right to multiples of ``multiple``: pixel
    coordinates are unchanged."""
    t, h, w, c = frames.shape
    hh, ww = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (hh, ww) == (h, w):
        return frames
    out = np.zeros((t, hh, ww, c), frames.dtype)
    out[:, :h, :w] = frames
    return out


def stream(runner, frames):
    """Runs ``runner`` over ``frames`` (padded to multiples of 128); returns (per-frame detections as
    ``(boxes, scores, labels)`` clipped to the frame, key flags, seconds in the loop)."""
    h, w = frames.shape[1:3]
    outputs, keys, seconds = [], [], 0.0
    iterator = runner.run(padded(frames))
    while True:
        start = time.perf_counter()
        try:
            _, out, is_key = next(iterator)
        except StopIteration:
            break
        seconds += time.perf_counter() - start
        used = out[out[:, 5] >= 0]
        boxes = np.stack([np.clip(used[:, 0], 0, w - 1), np.clip(used[:, 1], 0, h - 1),
                          np.clip(used[:, 2], 0, w - 1), np.clip(used[:, 3], 0, h - 1)], -1)
        outputs.append((boxes, used[:, 4], used[:, 5].astype(np.int64)))
        keys.append(is_key)
    return outputs, np.array(keys), seconds


def ground_truth(video):
    """``{frame index: {"boxes", "labels"}}`` of a video of :func:`tfvideo.data.pipeline.read_videos`."""
    return {int(t): {"boxes": video["boxes"][video["box_frames"] == t],
                     "labels": video["box_labels"][video["box_frames"] == t]} for t in video["box_frame_index"]}


def evaluate(make_runner, videos, num_classes, class_names):
    """mAP (:func:`tfvideo.detection_eval.vid_map` over the annotated frames), frames/s and key-frame
    share of a runner streamed over each video from its first frame."""
    from tfvideo.detection_eval import vid_map

    runner = make_runner()
    stream(runner, videos[0]["frames"][:2])  # trace the tf.functions before timing
    detections, truth, frames_timed, seconds, keys = {}, {}, 0, 0.0, 0
    for video in videos:
        outputs, key, sec = stream(runner, video["frames"])
        frames_timed, seconds, keys = frames_timed + len(outputs), seconds + sec, keys + int(key.sum())
        for t, gt in ground_truth(video).items():
            truth[(video["video_id"], t)] = gt
            boxes, scores, labels = outputs[t]
            detections[(video["video_id"], t)] = {"boxes": boxes, "scores": scores, "labels": labels}
    result = vid_map(detections, truth, num_classes, class_names=class_names)
    return {"map": float(result["map"]), "per_class": {k: float(v) for k, v in result["per_class"].items()},
            "fps": frames_timed / max(seconds, 1e-9), "key_share": keys / max(frames_timed, 1)}


def evaluate_all(detectors, cfg, data, flow_net, log, progress):
    """Every row of the results table: ``[(name, row)]``, the GIF's runners and the threshold."""
    from tqdm.auto import tqdm

    from tfvideo.data import pipeline
    from tfvideo.models.dff import cost_model, speedup

    num_classes, names = len(data["classes"]), data["classes"]
    videos = list(pipeline.read_videos(data["det"], data["test_split"], detection=True, limit=cfg["eval_videos"]))
    train_videos = list(pipeline.read_videos(data["det"], "train", limit=4))
    plain = {v: for_any_size(detectors[v], cfg, num_classes, v) for v in cfg["variants"]}
    frame = for_any_size(build_dff("separate", cfg, num_classes, detectors["frame"], flow_net).detector, cfg,
                         num_classes, "frame")
    first = cfg["variants"][0]
    h, w = padded(videos[0]["frames"][:1]).shape[1:3]
    sized = build_dff(first, cfg, num_classes, detectors[first], flow_net, frame_size=(h, w)).detector
    cost = cost_model(*(sized.get_layer(n) for n in ("n_feat", "n_task", "flownet")))
    jobs = [("Frame", "frame", lambda: seg.runner_for(frame, key_interval=1), 1)]
    if first != "separate":
        jobs.append((f"{LABELS[first]}, l = 1 (its N on every frame)", first,
                     lambda: seg.runner_for(plain[first], key_interval=1), 1))
    for variant in cfg["variants"]:
        for l in cfg["key_intervals"]:  # noqa: E741
            jobs.append((f"{LABELS[variant]}, l = {l}", variant,
                         lambda m=plain[variant], l=l: seg.runner_for(m, key_interval=l), l))
    threshold = seg.calibrate_threshold(plain[first], [{"frames": padded(v["frames"])} for v in train_videos],
                                        cfg["adaptive_interval"])
    log(f"adaptive scheduler: warp error threshold {threshold:.4f} (set on {len(train_videos)} training videos "
        f"for a key frame every {cfg['adaptive_interval']} frames on average)")
    jobs.append((f"{LABELS[first]}, adaptive", first, lambda: seg.runner_for(
        plain[first], scheduler="adaptive", measure="warp_error", threshold=threshold), None))
    l_copy = max(cfg["key_intervals"])

    def copied():
        r = seg.runner_for(plain[first], key_interval=l_copy)
        r.motion = seg._ZeroMotion(r.motion)
        return r

    jobs.append((f"{LABELS[first]}, l = {l_copy}, no flow (features copied)", first, copied, l_copy))
    rows = []
    for name, variant, make, l in tqdm(jobs, desc="evaluating", unit="row", disable=not progress, leave=False):
        row = evaluate(make, videos, num_classes, names)
        row["eq7"] = speedup(cost["r"], l) if l else None
        row["variant"] = variant
        rows.append((name, row))
    gif_runners = {"Frame": seg.runner_for(frame, key_interval=1),
                   f"{LABELS[first]} l={l_copy}": seg.runner_for(plain[first], key_interval=l_copy)}
    return rows, cost, threshold, videos[0], gif_runners, plain[first]


def results_table(rows, cfg):
    frame_fps = rows[0][1]["fps"]
    head = (f"  {'method':44s} {'mAP':>6s} {'frames/s':>9s} {'speed-up':>8s} {'Eq. 7':>6s} {'keys':>5s}   "
            "the paper's Table 4 (ImageNet VID, l = 10, K40 GPU): mAP, frames/s")
    lines = [head]
    for name, r in rows:
        up = f"{r['fps'] / frame_fps:.2f}x"
        eq7 = "-" if r.get("eq7") is None else f"{r['eq7']:.2f}x"
        ref = ""
        if r["variant"] in PAPER_TABLE4 and (name.endswith("l = 10") or r["variant"] == "frame"):
            ref = "{:.1f}, {:.2f}".format(*PAPER_TABLE4[r["variant"]])
        lines.append(f"  {name:44s} {100 * r['map']:5.1f}% {r['fps']:9.1f} {up:>8s} {eq7:>6s} "
                     f"{100 * r['key_share']:4.0f}%   {ref}")
    lines.append("  (mAP: ImageNet VID devkit protocol at IoU 0.5 with its small-object thresholds; speed-up: "
                 "measured frames/s over Frame's, the detection head included; Eq. 7 from FLOPs)")
    if cfg["dataset"] != "imagenet_vid":
        lines.append("  (the paper's figures are ImageNet VID's with ResNet-101 on a GPU, printed for the pattern "
                     "-- Frame >= DFF > fix F > separate in mAP, DFF 5x faster -- not as a target for the built-in "
                     "set)")
    return lines


# ------------------------------------------------------------------------------------- pictures ----
def video_gif(path, video, runners, class_names, min_score, max_boxes=3):
    """Frame with its true boxes | Frame's detections | DFF's detections ("key" marks key frames): the
    ``max_boxes`` best detections of each frame with a score of at least ``min_score``."""
    from tfvideo import viz

    frames = video["frames"]
    truth = ground_truth(video)
    results = {name: stream(r, frames)[:2] for name, r in runners.items()}
    count = len(class_names)
    pictures = []
    for t, x in enumerate(frames):
        gt = truth.get(t, {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)})
        panels = [viz.draw_boxes(x, gt["boxes"], gt["labels"], class_names=class_names, num_classes=count)]
        titles = ["truth"]
        for name, (outputs, keys) in results.items():
            boxes, scores, labels = (a[:max_boxes] for a in outputs[t])  # rows are sorted by score
            panels.append(viz.draw_boxes(x, boxes, labels, scores, class_names, count, min_score=min_score))
            titles.append(name + (" (key)" if keys[t] and name != "Frame" else ""))
        pictures.append(viz.side_by_side(panels, titles))
    return viz.save_gif(path, pictures, fps=4)


# ----------------------------------------------------------------------------------------- export ----
def export_model(plain, export, quiet):
    """The DFF detector for any frame size exported with :func:`tfvideo.models.dff_runner.signatures`
    (``key_features``, ``motion``, ``propagate``, ``task`` and ``serving_default`` = Frame: boxes,
    classes, scores, num_detections, detections)."""
    from tfvideo import export as ex
    from tfvideo.models.dff_runner import signatures

    base_dir, name = os.path.split(os.path.normpath(export))
    return ex.export_for_serving(plain, base_dir or ".", name, signatures=signatures(plain),
                                 print_signatures=not quiet)


# -------------------------------------------------------------------------------------------- run ----
def main(argv=None):
    import sys

    from recipes.harness import open_recipe

    args, cfg, log, strategy, chief, run_dir, data = open_recipe(sys.modules[__name__], argv)

    from tfvideo import training
    from tfvideo.models.dff import speedup

    h, w = cfg["size"]
    crop = "" if cfg["dataset"] == "objects_detection" else " training crops (whole frames at test)"
    log(f"run dir: {run_dir.path}; N_feat {cfg['backbone']} ({cfg['weights'] or 'random init'}), F {cfg['flow']}, "
        f"frames {h}x{w}{crop}, batch {cfg['batch_size']}, {cfg['optimizer']} lr {cfg['lr']:g} (/10 after 2/3); "
        f"DFF variants start from {'Frame' if cfg['init'] == 'frame' else 'ImageNet (fix N, separate: Frame)'}")
    detectors, flow_net = train_all(args, cfg, data, strategy, run_dir, log)
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "run_dir": str(run_dir.path), "chief": False}

    rows, cost, threshold, gif_video, gif_runners, plain = evaluate_all(detectors, cfg, data, flow_net, log,
                                                                        not args.quiet)
    lines = [f"results on {cfg['dataset']} {data['test_split']} (each video streamed from its first frame, every "
             "annotated frame scored; frames/s of the runner on this machine, batch 1):"] + results_table(rows, cfg)
    lines.append(f"  cost model (FLOPs at the test frames' size): N_feat {cost['feat'] / 1e9:.3f} G, N_task "
                 f"{cost['task'] / 1e9:.3f} G, F {cost['flow'] / 1e9:.3f} G, r = {cost['r']:.3f} (Eq. 5); Eq. 7 "
                 "speed-up " + ", ".join(f"l = {l}: {speedup(cost['r'], l):.2f}x" for l in cfg["key_intervals"]))
    for name, row in rows[:1] + [r for r in rows if r[0].endswith(f"l = {max(cfg['key_intervals'])}")][:1]:
        lines.append(f"  per-class AP, {name}: " + ", ".join(f"{c} {100 * ap:.1f}" if ap == ap else f"{c} -"
                                                           for c, ap in row["per_class"].items()))
    for line in lines:
        log(line)
    gif = video_gif(run_dir.eval / "dff_vid.gif", gif_video, gif_runners, data["classes"], cfg["min_score"],
                    cfg["gif_boxes"])
    log(f"picture: {gif}")
    results = {name: dict(row) for name, row in rows}
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": results, "cost": cost,
                                                      "adaptive_threshold": threshold, "classes": data["classes"]})
    path = export_model(plain, args.export, args.quiet)
    log(f"exported {LABELS[cfg['variants'][0]]} to {path} (signatures key_features, motion, propagate, task, "
        "serving_default: boxes, classes, scores, num_detections; TF Serving layout)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": results, "export": path, "run_dir": str(run_dir.path), "model": plain,
            "trained": detectors, "gif": gif}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
