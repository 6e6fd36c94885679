"""Deep Feature Flow for video segmentation (seed 003): ``python -m recipes.dff_cityscapes``.

prepare shards (if absent) -> train the per-frame network ("Frame") -> pretrain the flow network on
exact flow (our stand-in for Flying Chairs) -> train the DFF variants on frame pairs (Sec. 3) -> stream
the test videos through Algorithm 1 (:class:`tfvideo.models.dff_runner.DFFVideoRunner`) with key frames
every l = 5 and 10 frames and with the adaptive scheduler -> mIoU and measured frames/s side by side with
the paper's Table 4 -> a GIF -> export in TF Serving's layout with the key-frame signatures
(:func:`tfvideo.models.dff_runner.signatures`).

Table 3's variants (``--variants``; "Frame" always runs, it is the reference):

* ``dff``: N (= N_feat + N_task) and F trained together on pairs ``(I_k, I_i)``, ``0 <= i - k <= 9``;
* ``fix_n``: "DFF fix N": N from Frame, fixed; F trained on pairs;
* ``fix_f``: "DFF fix F": F pretrained then fixed; N trained on pairs;
* ``separate``: "DFF separate": N from Frame and the pretrained F put together, no joint training.

Evaluation (the paper's Sec. 5.2: "For each snippet we evaluate l image pairs, (k, i), k = i - l + 1,
..., i, for each frame i with ground truth annotation"):

* on Cityscapes (one annotated frame per 30-frame snippet, the 20th) exactly that: for each key offset
  ``d = 0 .. l - 1`` the runner starts a key frame at ``19 - d`` and propagates to 19, where it is scored;
  the adaptive scheduler streams the snippet from its first frame and is scored at the 20th;
* on the built-in set (every frame labelled) each test video is streamed once and every frame is scored:
  with a key frame every l frames each offset ``0 .. l - 1`` occurs equally often, which is the same
  average as the paper's protocol.
* frames/s: wall time of the runner loop (N_feat, F, W, N_task and the arg-max, batch of one frame,
  after a warm-up), over whole videos; "Frame" is the same runner with ``l = 1`` (N_feat + N_task on
  every frame). The paper's figures are a K40 GPU's on 1024 x 2048 frames (Table 4): compare speed-ups,
  not frames/s.

Two profiles:

* ``paper`` (default with ``--data-dir``): ResNet-101 (ImageNet weights, downloaded by Keras: needs
  network; ``--weights none`` opts out) + FlowNetS, frames with a short side of 1024 (2048 x 1024) for
  N_feat and half that for F (inside the flow network, Sec. 5.1), SGD momentum 0.9, weight decay 0.0005
  (the DFF code's config), batch 8 (Sec. 5.1: 8 GPUs x 1), lr 1e-3 for 15K and 1e-4 for 5K iterations
  (20K), the same schedule for Frame. DFF, fix F start from ImageNet like Frame; fix N and separate from
  Frame (Table 3). F starts from ``--flownet-weights`` (the DFF release's FlowNetS,
  :func:`tfvideo.models.flownet.load_flownet_weights`) or, without it, from our pretraining on the
  built-in set's exact flow.
* ``cpu`` (default on the built-in ``objects`` set, ~10 minutes on 2 cores): the ``small`` feature net
  (:mod:`tfvideo.models.dff`) + the ``tiny`` flow net (:mod:`tfvideo.models.flownet`; with FlowNet Half
  the flow net would cost more than this feature net, r > 1, and DFF could not be faster), the set
  generated at 128 x 256 (FlowNet needs multiples of 128), batch 8, Adam with the paper's schedule shape
  (1e-3 for 3/4 of the steps, then 1e-4); every DFF variant starts from Frame's N (the budget does not
  allow training N twice from scratch: said in the results' header).

Every value can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from tfvideo.files import atomic_write_json

NAME = "dff_cityscapes"
VARIANTS = ("dff", "fix_n", "fix_f", "separate")
LABELS = {"frame": "Frame", "dff": "DFF", "fix_n": "DFF fix N", "fix_f": "DFF fix F", "separate": "DFF separate"}
#: Table 3's "fix" argument of :func:`tfvideo.models.dff.dff_segmenter` per variant.
FIX = {"dff": None, "fix_n": "n", "fix_f": "f"}
PROFILES = {
    "paper": dict(backbone="resnet101", flow="s", weights="imagenet", short_side=1024, size=None,
                  batch_size=8, optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4,
                  frame_steps=20000, steps=20000, flow_steps=2000, steps_per_epoch=1000, init="paper"),
    "cpu": dict(backbone="small", flow="tiny", weights=None, short_side=None, size=(128, 256),
                batch_size=8, optimizer="adam", lr=1e-3, momentum=None, weight_decay=0.0,
                frame_steps=1000, steps=500, flow_steps=600, steps_per_epoch=100, init="frame"),
}
#: The flags of :func:`add_dff_flags` that override a profile's value (both DFF recipes).
SHARED_KEYS = ("backbone", "flow", "frame_steps", "flow_steps", "steps", "steps_per_epoch", "batch_size", "lr",
               "short_side")
#: Size of the built-in set for this recipe: FlowNet needs multiples of 128.
OBJECTS_SIZE = (128, 256)
#: The paper's Table 4 (Cityscapes, l = 5; mIoU %, frames/s on a K40 GPU, 1024 x 2048 frames).
PAPER_TABLE4 = {"frame": (71.1, 1.52), "dff": (69.2, 5.60), "fix_n": (68.8, 5.60), "fix_f": (67.0, 5.60),
                "separate": (66.9, 5.60)}
#: Cityscapes' 19 evaluation classes (``labelTrainIds`` order).
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                      "bus", "train", "motorcycle", "bicycle")


# ------------------------------------------------------------------------------------ arguments ----
def add_dff_flags(p, profiles, *, key_intervals, lr_help):
    """The flags both DFF recipes have (this one and :mod:`recipes.dff_vid`): profile, Table 3 variants,
    networks and weights, the training budget and the key-frame schedulers."""
    from tfvideo import cli
    from tfvideo.models.dff import BACKBONES
    from tfvideo.models.flownet import VARIANTS as FLOWS

    pos = cli.int_type(1)
    p.add_argument("--profile", choices=tuple(profiles), help="'paper' (default with --data-dir) or 'cpu' "
                                                               "(default on the built-in set)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["dff", "separate"],
                   help="Table 3 variants trained and compared with Frame; the first is exported")
    p.add_argument("--backbone", choices=BACKBONES, help="feature network N_feat")
    p.add_argument("--flow", choices=FLOWS, help="flow network F (paper: s, half, inception; tiny: ours)")
    p.add_argument("--weights", help="N_feat's ResNet weights: 'imagenet' (downloads), 'none', or a file")
    p.add_argument("--flownet-weights", help="pretrained FlowNetS (.npz/.params of the DFF release, "
                                             "tfvideo.models.flownet.load_flownet_weights); default: "
                                             "pretrained here on the built-in set's exact flow")
    p.add_argument("--flow-order", choices=("paper", "dff_code"), default="paper",
                   help="F's last flow prediction at 1/8 then halved (Sec. 4; FlowNet's own, e.g. Flying-Chairs "
                        "weights) or on the averaged Concat5 (the DFF code's: its fine-tuned checkpoints)")
    p.add_argument("--frame-steps", type=pos, help="training steps of Frame")
    p.add_argument("--flow-steps", type=cli.int_type(0), help="pretraining steps of F on exact flow (0: none)")
    p.add_argument("--steps", type=pos, help="training steps of each DFF variant on pairs")
    p.add_argument("--steps-per-epoch", type=pos, help="steps between logs/checkpoints")
    p.add_argument("--batch-size", type=pos, help="global batch of pairs")
    p.add_argument("--lr", type=cli.float_type(), help=lr_help)
    p.add_argument("--key-intervals", type=pos, nargs="+", default=list(key_intervals),
                   help="l of the fixed scheduler")
    p.add_argument("--adaptive-interval", type=pos, default=min(key_intervals),
                   help="the adaptive scheduler's threshold is set on training videos so that it starts a "
                        "key frame every this many frames on average")
    p.add_argument("--eval-videos", type=pos, help="test videos evaluated (default: all)")
    return p


def check_dff_args(args, cfg):
    """The argument problems both DFF recipes share (weights files, devices), as texts."""
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if args.flownet_weights is not None:
        if not os.path.isfile(args.flownet_weights):
            return [f"--flownet-weights {args.flownet_weights}: no such file"]
        if cfg["flow"] != "s":
            return [f"--flownet-weights: released weights exist for FlowNetS only (--flow s); got --flow "
                    f"{cfg['flow']}"]
    weights = cfg["weights"]
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        return [f"--weights {weights}: expected 'imagenet', 'none' or an existing weights file"]
    if args.devices and args.strategy not in ("mirrored", "onedevice"):
        return ["--devices goes with --strategy mirrored or onedevice"]
    return []



def build_parser():
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.{NAME}", description=(
        "Deep Feature Flow (Zhu et al. 2017) for video segmentation: Frame vs DFF with key frames every "
        "l = 5, 10 frames and an adaptive scheduler, mIoU and frames/s beside the paper's Table 4."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="Cityscapes root (leftImg8bit_sequence/ and gtFine/ with "
                                      "*_gtFine_labelTrainIds.png); without it the built-in 'objects' set "
                                      "(objects cut from photographs moving over photographs, exact labels "
                                      "and flow) is generated and used")
    add_dff_flags(p, PROFILES, key_intervals=(5, 10), lr_help="initial learning rate (/10 for the last quarter)")
    p.add_argument("--task-layers", type=int, default=1, help="layers in N_task (Table 5: 0, 1, 5, 12, 21)")
    p.add_argument("--size", type=cli.size_type(128), help="built-in set: frame size HxW (multiples of 128; "
                                                            "default 128x256)")
    p.add_argument("--short-side", type=pos, help="Cityscapes frames resized to this short side (a multiple "
                                                  "of 128; paper 1024)")
    from recipes.harness import add_run_flags

    return add_run_flags(p, NAME, data_out="shard folder (default tfrecords/cityscapes or tfrecords/objects-128x256)",
                         dry_run="build everything, one training step each, one test video")


def resolve(args):
    """The run's config: the profile, then the flags."""
    from recipes.harness import profile_config

    builtin, profile, cfg = profile_config(args, PROFILES, SHARED_KEYS,
                                           real_data_cpu={"short_side": 256, "size": None})
    if builtin:
        cfg["short_side"] = None
        cfg["size"] = tuple(args.size or OBJECTS_SIZE)
    else:
        cfg["size"] = (cfg["short_side"], 2 * cfg["short_side"])  # Cityscapes: 2048 x 1024
    if args.dry_run:
        cfg.update(frame_steps=1, flow_steps=min(cfg["flow_steps"], 1), steps=1, steps_per_epoch=1)
    cfg.update(profile=profile, dataset="objects" if builtin else "cityscapes", variants=list(args.variants),
               flownet_weights=args.flownet_weights, task_layers=args.task_layers, flow_order=args.flow_order,
               key_intervals=sorted(set(args.key_intervals)), adaptive_interval=args.adaptive_interval,
               eval_videos=1 if args.dry_run else args.eval_videos, seed=args.seed, strategy=args.strategy,
               videos=(args.videos or 48) if builtin else None)
    return cfg


def check_args(args, cfg):
    """Problems found before any work (reads only), as texts for ``parser.error``."""
    from tfvideo.data.prepare import check_reusable
    from tfvideo.models.dff import split_networks
    from tfvideo.models.flownet import SIZE_MULTIPLE

    problems = check_dff_args(args, cfg)
    if problems:
        return problems
    if args.size is not None and args.data_dir is not None:
        return ["--size is for the built-in set; Cityscapes frames are sized by --short-side"]
    h, w = cfg["size"]
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        if args.data_dir is None:
            return [f"--size {h}x{w}: frames must be multiples of {SIZE_MULTIPLE} (FlowNet's size rule)"]
        return [f"--short-side {cfg['short_side']}: frames {h}x{w} must be multiples of {SIZE_MULTIPLE} "
                "(FlowNet's size rule)"]
    try:
        split_networks("small", 2, task_layers=cfg["task_layers"]) if cfg["backbone"] == "small" else None
    except ValueError as err:
        return [f"--task-layers: {err}"]
    from recipes.harness import check_run_args

    problems = check_run_args(args, NAME)
    if problems:
        return problems
    try:
        for name, out, data_dir, options in sources(args, cfg):  # writer settings are the writer's to check
            check_reusable(name, out, data_dir, **{k: v for k, v in options.items() if k != "short_side"})
    except ValueError as err:
        return [str(err)]
    return []


# ------------------------------------------------------------------------------------------ data ----
def _objects_options(cfg, size):
    videos = cfg["videos"] or 48
    return {"objects_options": {"train_videos": videos, "test_videos": max(2, videos // 3), "size": tuple(size)}}


def sources(args, cfg):
    """``[(prepare name, shard folder, data dir, prepare options)]``: the segmentation set, then (when F
    is pretrained here) the built-in set whose exact flow pretrains F."""
    size = cfg["size"] if cfg["dataset"] == "objects" else OBJECTS_SIZE
    builtin_base = os.path.join("tfrecords", "objects-{}x{}".format(*size))
    out = []
    if cfg["dataset"] == "objects":
        base = args.data_out or builtin_base
        out.append(("objects", base, os.path.join(base, "videos"), _objects_options(cfg, size)))
    else:
        out.append(("cityscapes", args.data_out or os.path.join("tfrecords", "cityscapes"), args.data_dir,
                    {"short_side": cfg["short_side"]}))
        if cfg["flownet_weights"] is None and cfg["flow_steps"]:
            out.append(("objects", builtin_base, os.path.join(builtin_base, "videos"),
                        _objects_options({**cfg, "videos": 48}, size)))
    return out


def prepare_data(args, cfg, log, chief=True, workers=1):
    """Writes the shards (chief; others wait). Returns ``{"seg": folder, "flow": folder or None,
    "classes": [...], "test_split": "test" | "val"}``."""
    if cfg["dataset"] == "objects":
        log("data: the built-in 'objects' set at {}x{} (objects cut from photographs moving over "
            "photographs, exact labels and flow) -- pass --data-dir for Cityscapes".format(*cfg["size"]))
    else:
        log(f"data: Cityscapes from {args.data_dir}, short side {cfg['short_side']}")
    result = {"flow": None}
    for index, (name, out, summary, test_split) in enumerate(prepare_sources(args, sources(args, cfg), log,
                                                                            chief, workers)):
        if index == 0:
            result.update(seg=out, classes=list(summary["classes"]) or list(CITYSCAPES_CLASSES),
                          test_split=test_split)
            if name == "objects":
                result["flow"] = out
        else:
            result["flow"] = out
    return result


def prepare_sources(args, sources_list, log, chief, workers):
    """Writes (chief) or waits for (other workers) the shards of ``sources_list`` (``[(prepare name,
    folder, data dir, options)]``, the first one the task's set); yields ``(name, folder, summary,
    test split)`` each; exits when a set has no training videos or the first one no test/val videos.
    Shared by both DFF recipes."""
    from tfvideo.data.prepare import prepare, wait_until_prepared

    for index, (name, out, data_dir, options) in enumerate(sources_list):
        if not chief:
            wait_until_prepared(out, splits=("train",), log=log)
        builtin = name in ("objects", "objects_detection")
        summary = prepare(name, out, data_dir, workers=args.workers, min_shards=workers,
                          progress=not args.quiet and chief, log=log if chief and not builtin else None, **options)
        counts = {k: v["videos"] for k, v in summary["splits"].items()}
        log(f"shards: {out} ({', '.join(f'{n} {k}' for k, n in counts.items())} videos)")
        if not counts.get("train"):
            raise SystemExit(f"error: {out} has no training videos")
        test_split = "test" if counts.get("test") else "val"
        if index == 0 and not counts.get(test_split):
            raise SystemExit(f"error: {out} has no test/val videos to evaluate on")
        yield name, out, summary, test_split


def pair_data(shards, cfg, *, max_offset, frames_only=False):
    """Training pairs (Sec. 3: a random annotated frame i and a key frame k, 0 <= i - k <= max_offset);
    ``frames_only``: the current frame alone, for Frame (Fig. 2a)."""
    from tfvideo.data import pipeline

    ds = pipeline.pair_dataset(shards, "train", training=True, size=tuple(cfg["size"]),
                               batch_size=cfg["batch_size"], max_offset=max_offset, crop="random", flip=True,
                               seed=cfg["seed"])
    return ds.map(lambda x, y, w: (x[:, 1], y, w)) if frames_only else ds


def flow_data(shards, cfg, split="train", training=True):
    """Pairs ``(t, t + 1)`` of the built-in set as F's (current, key) with the exact flow ``t -> t + 1``
    (F's ``M_{i->k}``: ``key(p + M(p)) = current(p)``) averaged to 1/8 over the pixels where it is known
    (the target of F's ``flow_stride8``), with the validity as a third channel
    (:func:`tfvideo.losses.endpoint_error_loss`)."""
    import tensorflow as tf

    from tfvideo.data import pipeline

    ds = pipeline.dense_dataset(shards, split, target="flow", training=training, size=tuple(cfg["size"]),
                                batch_size=cfg["batch_size"], num_frames=2, crop="random" if training else "center",
                                flip=training, seed=cfg["seed"], **({} if training else {"num_clips": 4}))

    @tf.autograph.experimental.do_not_convert  # no Python control flow; AutoGraph trips on the closure
    def to_stride8(frames, flows, valid):
        known = valid[:, 0, ..., None]
        count = tf.nn.avg_pool2d(known, 8, 8, "VALID")
        flow8 = tf.math.divide_no_nan(tf.nn.avg_pool2d(flows[:, 0] * known, 8, 8, "VALID"), count)
        return frames, tf.concat([flow8, tf.cast(count > 0.99, tf.float32)], -1)

    return ds.map(to_stride8)


def flow_check(model, shards, cfg, batches=25):
    """F's end-point error (frame pixels, at 1/8) on the test split's adjacent pairs, and zero flow's."""
    import tensorflow as tf

    from tfvideo.losses import endpoint_error_loss

    epe, zero, n = 0.0, 0.0, 0
    for frames, target in flow_data(shards, cfg, split="test", training=False).take(batches):
        pred = model(frames, training=False)
        epe += float(tf.reduce_mean(endpoint_error_loss(target, pred)))
        zero += float(tf.reduce_mean(endpoint_error_loss(target, tf.zeros_like(pred))))
        n += 1
    return epe / max(n, 1), zero / max(n, 1)


# ------------------------------------------------------------------------------------ the models ----
def optimizer(cfg, steps):
    """The paper's schedule shape: ``lr`` for the first 3/4 of ``steps`` (15K of 20K), then ``lr / 10``."""
    import keras

    boundary = max(0, (3 * steps) // 4 - 1)  # PiecewiseConstantDecay: the first value while step <= boundary
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [cfg["lr"], cfg["lr"] / 10])
    if cfg["optimizer"] == "sgd":
        return keras.optimizers.SGD(schedule, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"] or None)
    return keras.optimizers.Adam(schedule, weight_decay=cfg["weight_decay"] or None)


def compile_segmenter(model, cfg, steps):
    """Softmax cross-entropy on the logits, weighted by the pipeline's weights (0 on ignored pixels);
    accuracy is measured by the runner afterwards, not during training."""
    import keras

    model.compile(optimizer=optimizer(cfg, steps), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def build_frame(cfg, num_classes):
    from tfvideo.models.dff import frame_segmenter

    model = frame_segmenter(cfg["backbone"], num_classes, task_layers=cfg["task_layers"], weights=cfg["weights"],
                            input_shape=(*cfg["size"], 3))
    return compile_segmenter(model, cfg, cfg["frame_steps"])


def build_flow_pretraining(cfg, feature_channels):
    """F with its 1/8 flow as the output, compiled with the end-point error (FlowNet's loss, Sec. 4 of
    Dosovitskiy et al., on its finest prediction only: our simplification)."""
    import keras

    from tfvideo import losses
    from tfvideo.models.flownet import flownet

    flow_net = flownet(cfg["flow"], feature_channels=feature_channels, frame_size=tuple(cfg["size"]),
                       flow_order=cfg["flow_order"], name="flownet")
    flow_net.get_layer("scale_conv").trainable = False  # not in this loss (trained with the features later)
    frames = keras.Input((2, *cfg["size"], 3), dtype="uint8", name="frames")
    model = keras.Model(frames, flow_net(frames)["flow_stride8"], name="flow_pretraining")
    model.compile(optimizer=keras.optimizers.Adam(1e-4 if cfg["optimizer"] == "sgd" else cfg["lr"]),
                  loss=losses.endpoint_error_loss)
    return model, flow_net


def build_dff(variant, cfg, num_classes, frame_model, flow_net):
    """A DFF model of ``variant`` with its starting weights (Table 3): N from Frame (``fix_n``,
    ``separate``, and every variant in the ``cpu`` profile) or fresh (ImageNet) otherwise; F from the
    pretrained flow network."""
    from tfvideo.models.dff import dff_segmenter, transfer_weights

    model = dff_segmenter(cfg["backbone"], num_classes, flow=cfg["flow"], task_layers=cfg["task_layers"],
                          fix=FIX.get(variant), weights=cfg["weights"], frame_size=tuple(cfg["size"]),
                          flow_order=cfg["flow_order"], name=variant)
    if variant in ("fix_n", "separate") or cfg["init"] == "frame":
        transfer_weights(frame_model, [model.get_layer("n_feat"), model.get_layer("n_task")])
    transfer_weights(flow_net, model.get_layer("flownet"))
    return compile_segmenter(model, cfg, cfg["steps"])


def train_all(args, cfg, data, strategy, run_dir, log):
    """Frame, F's pretraining, then each DFF variant; returns ``{variant: model}`` with ``"frame"``."""
    from tfvideo import training

    num_classes = len(data["classes"])
    verbose = 0 if args.quiet else "auto"

    def fit(model, dataset, steps, sub):
        per_epoch = min(cfg["steps_per_epoch"], steps)
        epochs = math.ceil(steps / per_epoch)
        training.train(model, dataset, run_dir=os.path.join(run_dir.path, sub), epochs=epochs,
                       steps_per_epoch=per_epoch, config=cfg, monitor=None, backup_every_steps=per_epoch,
                       verbose=verbose)

    with strategy.scope():
        frame = build_frame(cfg, num_classes)
    log(f"training Frame ({frame.count_params():,} parameters, {cfg['frame_steps']} steps on single frames)")
    fit(frame, pair_data(data["seg"], cfg, max_offset=0, frames_only=True), cfg["frame_steps"], "frame")

    channels = int(frame.get_layer("dff_feature").output.shape[-1])  # what F's scale field multiplies
    with strategy.scope():
        # F is pretrained on the built-in set's frames (its size, OBJECTS_SIZE on Cityscapes runs): its
        # weights do not depend on the frame size
        flow_cfg = cfg if cfg["dataset"] == "objects" else {**cfg, "size": OBJECTS_SIZE}
        pretraining, flow_net = build_flow_pretraining(flow_cfg, channels)
    if cfg["flownet_weights"]:
        from tfvideo.models.flownet import load_flownet_weights

        load_flownet_weights(flow_net, cfg["flownet_weights"])
        log(f"F: FlowNetS weights from {cfg['flownet_weights']}")
    elif cfg["flow_steps"]:
        log(f"pretraining F ({cfg['flow']}, {flow_net.count_params():,} parameters) on the built-in set's "
            f"exact flow, {cfg['flow_steps']} steps (our stand-in for Flying Chairs)")
        fit(pretraining, flow_data(data["flow"], flow_cfg), cfg["flow_steps"], "flow")
        epe, zero = flow_check(pretraining, data["flow"], flow_cfg)
        log(f"F after pretraining: EPE {epe:.3f} px at 1/8 of the frame on test pairs (zero flow: {zero:.3f})")
    else:
        log("F: random initialisation (--flow-steps 0)")
    models = {"frame": frame}
    for variant in cfg["variants"]:
        with strategy.scope():
            model = build_dff(variant, cfg, num_classes, frame, flow_net)
        models[variant] = model
        if variant == "separate":
            continue
        log(f"training {LABELS[variant]} on pairs 0 <= i - k <= 9, {cfg['steps']} steps")
        fit(model, pair_data(data["seg"], cfg, max_offset=9), cfg["steps"], variant)
    return models


# ------------------------------------------------------------------------------------ evaluation ----
def frame_as_dff(cfg, num_classes, frame_model, flow_net):
    """Frame's weights in a DFF model (for the runner with ``l = 1``, which never runs F)."""
    return build_dff("separate", cfg, num_classes, frame_model, flow_net)


class _ZeroMotion:
    """F replaced by zero flow and S = 1: the key frame's features copied (the "no flow" ablation)."""

    def __init__(self, motion):
        self.motion = motion

    def __call__(self, current, key):
        import tensorflow as tf

        flow, scale = self.motion(current, key)
        return tf.zeros_like(flow), tf.ones_like(scale)


def runner_for(model, **kwargs):
    from tfvideo.models.dff_runner import DFFVideoRunner

    return DFFVideoRunner.from_model(model, **kwargs)


def stream(runner, frames):
    """Runs ``runner`` over ``frames``; returns (outputs (T, H, W, K), key flags, seconds in the loop)."""
    outputs, keys, seconds = [], [], 0.0
    iterator = runner.run(frames)
    while True:
        start = time.perf_counter()
        try:
            _, out, is_key = next(iterator)
        except StopIteration:
            break
        labels = np.argmax(out, -1)  # part of the per-frame work timed
        seconds += time.perf_counter() - start
        outputs.append(labels)
        keys.append(is_key)
    return np.stack(outputs), np.array(keys), seconds


def evaluate(make_runner, videos, num_classes, protocol, interval):
    """mIoU / pixel accuracy (confusion matrix over the scored frames), frames/s and key-frame share of a
    runner (``make_runner()`` -> a fresh :class:`DFFVideoRunner`) on ``videos`` (dicts of
    :func:`tfvideo.data.pipeline.read_videos`).

    ``protocol``: ``"stream"`` (every video streamed once, every labelled frame scored) or ``"offsets"``
    (the paper's: for each labelled frame i and key offset d < ``interval``, a key frame at i - d
    propagated to i; speed from streaming each video once). ``interval`` None: the runner's own schedule
    from the video's first frame up to each labelled frame (adaptive)."""
    confusion = np.zeros((num_classes, num_classes))
    frames_timed, seconds, keys, frames_seen = 0, 0.0, 0, 0
    runner = make_runner()
    warm = videos[0]["frames"][:2]
    stream(runner, warm)  # trace the tf.functions before timing
    for video in videos:
        frames = video["frames"]
        labelled = dict(zip(video["segmentation_frame_index"].tolist(), video["segmentations"]))
        predicted = {}
        out, key, sec = stream(runner, frames)
        frames_timed, seconds = frames_timed + len(frames), seconds + sec
        keys, frames_seen = keys + int(key.sum()), frames_seen + len(frames)
        if protocol == "stream" or interval is None:
            predicted = {i: [out[i]] for i in labelled}
        else:
            fixed = make_runner_fixed(runner)
            for i in labelled:
                predicted[i] = [stream(fixed, frames[i - d:i + 1])[0][-1] for d in range(min(interval, i + 1))]
        for i, truth in labelled.items():
            known = truth != 255
            for pred in predicted[i]:
                confusion += np.bincount(num_classes * truth[known].astype(np.int64) + pred[known],
                                         minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = tp[union > 0] / union[union > 0]
    return {"mean_iou": float(iou.mean()) if iou.size else 0.0,
            "accuracy": float(tp.sum() / max(confusion.sum(), 1)),
            "fps": frames_timed / max(seconds, 1e-9), "key_share": keys / max(frames_seen, 1)}


def make_runner_fixed(runner):
    """The same callables with a key frame only at the first frame (the offsets protocol's runs)."""
    from tfvideo.models.dff_runner import DFFVideoRunner

    return DFFVideoRunner(runner.key_features, runner.motion, runner.task, scheduler="fixed",
                          key_interval=10 ** 9)


def calibrate_threshold(model, videos, target_interval, measure="warp_error", rounds=12):
    """The adaptive scheduler's threshold, set on training videos so that it starts a key frame every
    ``target_interval`` frames on average (bisection on a log scale; our choice: the paper leaves the
    scheduler to future work, Sec. 6)."""
    low, high = 1e-4, 1.0
    frames = sum(len(v["frames"]) for v in videos)
    for _ in range(rounds):
        mid = math.sqrt(low * high)
        runner = runner_for(model, scheduler="adaptive", measure=measure, threshold=mid)
        keys = 0
        for v in videos:
            for _ in runner.run(v["frames"]):
                pass
            keys += len(runner.key_frames)
        if frames / keys > target_interval:  # too few key frames: lower the threshold
            high = mid
        else:
            low = mid
    return math.sqrt(low * high)


def most_frequent_row(videos, classes_count, num_classes):
    """The scale of the numbers: the most frequent training class everywhere."""
    common = int(np.argmax(classes_count))
    confusion = np.zeros((num_classes, num_classes))
    for v in videos:
        for truth in v["segmentations"]:
            known = truth != 255
            confusion[:, common] += np.bincount(truth[known].astype(np.int64), minlength=num_classes)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = tp[union > 0] / union[union > 0]
    return common, {"mean_iou": float(iou.mean()), "accuracy": float(tp.sum() / confusion.sum()),
                    "fps": None, "key_share": None}


def evaluate_all(models, cfg, data, log, progress):
    """Every row of the results table: ``[(name, row)]``, the GIF's predictions and the threshold."""
    from tqdm.auto import tqdm

    from tfvideo.data import pipeline
    from tfvideo.models.dff import cost_model, speedup

    num_classes = len(data["classes"])
    protocol = "stream" if cfg["dataset"] == "objects" else "offsets"
    videos = list(pipeline.read_videos(data["seg"], data["test_split"], segmentation=True,
                                       limit=cfg["eval_videos"]))
    train_videos = list(pipeline.read_videos(data["seg"], "train", segmentation=True, limit=4))
    flow_net = (models.get("dff") or next(m for k, m in models.items() if k != "frame")).get_layer("flownet")
    frame = frame_as_dff(cfg, num_classes, models["frame"], flow_net)
    first = cfg["variants"][0]
    cost = cost_model(*(models[first].get_layer(n) for n in ("n_feat", "n_task", "flownet")))
    jobs = [("Frame", "frame", lambda: runner_for(frame, key_interval=1), 1)]
    if first != "separate":  # the DFF-trained N on every frame: what propagation costs, apart from training
        jobs.append((f"{LABELS[first]}, l = 1 (its N on every frame)", first,
                     lambda: runner_for(models[first], key_interval=1), 1))
    for variant in cfg["variants"]:
        for l in cfg["key_intervals"]:  # noqa: E741
            jobs.append((f"{LABELS[variant]}, l = {l}", variant,
                         lambda m=models[variant], l=l: runner_for(m, key_interval=l), l))
    threshold = calibrate_threshold(models[first], train_videos, cfg["adaptive_interval"])
    log(f"adaptive scheduler: warp error threshold {threshold:.4f} (set on {len(train_videos)} training videos "
        f"for a key frame every {cfg['adaptive_interval']} frames on average)")
    jobs.append((f"{LABELS[first]}, adaptive", first,
                 lambda: runner_for(models[first], scheduler="adaptive", measure="warp_error", threshold=threshold),
                 None))

    def copied():
        r = runner_for(models[first], key_interval=5)
        r.motion = _ZeroMotion(r.motion)
        return r

    jobs.append((f"{LABELS[first]}, l = 5, no flow (features copied)", first, copied, 5))
    rows = []
    for name, variant, make, l in tqdm(jobs, desc="evaluating", unit="row", disable=not progress, leave=False):
        row = evaluate(make, videos, num_classes, protocol, l)
        row["eq7"] = speedup(cost["r"], l) if l else None
        row["variant"] = variant
        rows.append((name, row))
    counts = np.zeros(num_classes)
    for v in train_videos:
        for truth in v["segmentations"]:
            counts += np.bincount(truth[truth != 255].astype(np.int64), minlength=num_classes)
    common, row = most_frequent_row(videos, counts, num_classes)
    row["variant"] = None
    rows.append((f"'{data['classes'][common]}' everywhere", row))
    gif_runners = {"Frame": runner_for(frame, key_interval=1),
                   f"{LABELS[first]} l=5": runner_for(models[first], key_interval=5),
                   f"{LABELS[first]} adaptive": runner_for(models[first], scheduler="adaptive",
                                                           measure="warp_error", threshold=threshold)}
    return rows, cost, threshold, videos[0], gif_runners


def results_table(rows, cfg):
    frame_fps = rows[0][1]["fps"]
    paper = cfg["dataset"] == "cityscapes"
    head = (f"  {'method':44s} {'mIoU':>6s} {'pixel acc':>9s} {'frames/s':>9s} {'speed-up':>8s} {'Eq. 7':>6s} "
            f"{'keys':>5s}   the paper's Table 4 (Cityscapes, l = 5, K40 GPU): mIoU, frames/s")
    lines = [head]
    for name, r in rows:
        fps = "-" if r["fps"] is None else f"{r['fps']:.1f}"
        up = "-" if r["fps"] is None else f"{r['fps'] / frame_fps:.2f}x"
        eq7 = "-" if r.get("eq7") is None else f"{r['eq7']:.2f}x"
        keys = "-" if r["key_share"] is None else f"{100 * r['key_share']:.0f}%"
        ref = ""
        if r["variant"] in PAPER_TABLE4 and (name.endswith("l = 5") or r["variant"] == "frame"):
            ref = "{:.1f}, {:.2f}".format(*PAPER_TABLE4[r["variant"]])
        lines.append(f"  {name:44s} {100 * r['mean_iou']:5.1f}% {100 * r['accuracy']:8.1f}% {fps:>9s} {up:>8s} "
                     f"{eq7:>6s} {keys:>5s}   {ref}")
    lines.append("  (speed-up: measured frames/s over Frame's; Eq. 7: l / (1 + (l - 1) r) with r from FLOPs, which "
                 "small CPU networks do not run at the same rate: benchmarks/dff.py measures r from times)")
    if not paper:
        lines.append("  (the paper's figures are Cityscapes' at 1024 x 2048 on a GPU, printed for the "
                     "pattern -- Frame > DFF > separate in mIoU, DFF 3.7x faster -- not as a target for the "
                     "built-in set)")
    return lines


# ------------------------------------------------------------------------------------- pictures ----
def video_gif(path, video, runners, num_classes):
    """Frame | truth | Frame's / DFF's / adaptive DFF's labels over a test video ("key" marks key frames)."""
    from tfvideo import viz

    frames = video["frames"]
    labels = dict(zip(video["segmentation_frame_index"].tolist(), video["segmentations"]))
    results = {name: stream(r, frames)[:2] for name, r in runners.items()}
    pictures = []
    for t, x in enumerate(frames):
        panels, titles = [x], ["frame"]
        if t in labels:
            panels.append(viz.label_overlay(x, labels[t], num_classes))
            titles.append("truth")
        else:  # the same panels in every picture (Cityscapes labels one frame of 30)
            panels.append(x // 2)
            titles.append("(no label)")
        for name, (out, keys) in results.items():
            panels.append(viz.label_overlay(x, out[t], num_classes))
            titles.append(name + (" (key)" if keys[t] and name != "Frame" else ""))
        pictures.append(viz.side_by_side(panels, titles))
    return viz.save_gif(path, pictures, fps=4)


# ----------------------------------------------------------------------------------------- export ----
def export_model(model, cfg, num_classes, export, quiet):
    """The trained DFF model rebuilt for any frame size (multiples of 128) and exported with
    :func:`tfvideo.models.dff_runner.signatures` (``key_features``, ``motion``, ``propagate``, ``task``,
    ``serving_default`` = Frame)."""
    from tfvideo import export as ex
    from tfvideo.models.dff import dff_segmenter
    from tfvideo.models.dff_runner import signatures

    plain = dff_segmenter(cfg["backbone"], num_classes, flow=cfg["flow"], task_layers=cfg["task_layers"],
                          frame_size=(None, None), flow_order=cfg["flow_order"], name=model.name)
    plain.set_weights(model.get_weights())
    base_dir, name = os.path.split(os.path.normpath(export))
    path = ex.export_for_serving(plain, base_dir or ".", name, signatures=signatures(plain),
                                 print_signatures=not quiet)
    return path, plain


# -------------------------------------------------------------------------------------------- run ----
def main(argv=None):
    import sys

    from recipes.harness import open_recipe

    args, cfg, log, strategy, chief, run_dir, data = open_recipe(sys.modules[__name__], argv)

    from tfvideo import training
    from tfvideo.models.dff import speedup

    h, w = cfg["size"]
    log(f"run dir: {run_dir.path}; N_feat {cfg['backbone']} ({cfg['weights'] or 'random init'}), F {cfg['flow']}, "
        f"frames {h}x{w}, batch {cfg['batch_size']}, {cfg['optimizer']} lr {cfg['lr']:g} (/10 after 3/4); "
        f"DFF variants start from {'Frame' if cfg['init'] == 'frame' else 'ImageNet (fix N, separate: Frame)'}")
    models = train_all(args, cfg, data, strategy, run_dir, log)
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "run_dir": str(run_dir.path), "chief": False}

    num_classes = len(data["classes"])
    rows, cost, threshold, gif_video, gif_runners = evaluate_all(models, cfg, data, log, not args.quiet)
    protocol = ("each test video streamed, every frame scored" if cfg["dataset"] == "objects" else
                "the annotated 20th frame of each snippet, one pair per key offset (Sec. 5.2)")
    lines = [f"results on {cfg['dataset']} {data['test_split']} ({protocol}; frames/s of the runner on this "
             f"machine, batch 1):"] + results_table(rows, cfg)
    lines.append(f"  cost model (FLOPs of the built networks at {h}x{w}): N_feat {cost['feat'] / 1e9:.3f} G, "
                 f"F {cost['flow'] / 1e9:.3f} G, r = {cost['r']:.3f} (Eq. 5); Eq. 7 speed-up "
                 + ", ".join(f"l = {l}: {speedup(cost['r'], l):.2f}x" for l in cfg["key_intervals"]))
    for line in lines:
        log(line)
    gif = video_gif(run_dir.eval / "dff.gif", gif_video, gif_runners, num_classes)
    log(f"picture: {gif}")
    results = {name: {k: v for k, v in row.items()} for name, row in rows}
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": results, "cost": cost,
                                                      "adaptive_threshold": threshold, "classes": data["classes"]})
    exported = models[cfg["variants"][0]]
    path, plain = export_model(exported, cfg, num_classes, args.export, args.quiet)
    log(f"exported {LABELS[cfg['variants'][0]]} to {path} (signatures key_features, motion, propagate, task, "
        "serving_default; TF Serving layout)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": results, "export": path, "run_dir": str(run_dir.path), "model": plain,
            "trained": models, "gif": gif}


if __name__ == "__main__":
    from tfvideo.cli import run_main

    run_main(main)
