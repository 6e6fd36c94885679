"""The TVNet action-recognition recipe shared by ``recipes.tvnet_hmdb`` and ``recipes.tvnet_ucf101``.

prepare shards (if absent) -> train the temporal stream (TVNet + CNN, Eq. 13 loss, TVNet lr / 255)
-> train the RGB stream with the same budget -> evaluate both and their 1:2 fusion -> export the
two-stream model in TF Serving's layout.

Two profiles:

* ``paper`` (default with ``--data-dir``): seed 002 Sec. 5.2 -- TVNet-50 trained end to end, 224 x 224
  crops with TSN corner cropping and scale jittering, 3 segments, SGD momentum 0.9, lr 0.005, batch
  128, HMDB51 7000 iterations (lr / 10 at 4000 and 6000), UCF101 18000 (at 10000 and 16000); both
  CNNs from ImageNet weights (the flow network by cross-modality initialisation; ``--weights none``
  opts out, ``--weights FILE`` loads a file); test: 25 stacks x (centre + 4 corners) x flips, the
  per-video score being the mean logits of those 250 snippets.
* ``cpu`` (default without ``--data-dir``, on the built-in ``motion`` set): the same code path sized
  for 2 CPU cores and < 15 minutes -- 48 x 48 crops, the small CNN, batch 16 and a shorter schedule
  with the same shape (lr / 10 at 4/7 and 6/7 of the steps), random initial weights (nothing is
  downloaded); test: 5 stacks x centre crop. Each value can be overridden by a flag.

``--split all`` runs splits 1, 2, 3 one after another and reports their mean (:mod:`recipes.tvnet_splits`);
``--preprocess official`` applies the TVNet authors' frame preprocessing before TVNet.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from tfvideo.files import atomic_write_json

#: the cpu profile's flow bound (px mapped to the RGB extremes): motions of the built-in set at 48-px crops are
#: ~1 px, so TSN's 20 px would feed the CNN flows of a few hundredths, where the first BatchNorm's epsilon
#: (1e-3) swamps their variance. Measured 2026-12-06 (`python -m recipes.tvnet_hmdb --flow-bound B`, TVNet
#: stream top-1 on the built-in set): B = 20: 64.6%, 4: 94.8%, 0.5: 99.0%
FLOW_BOUND_CPU = 0.5
PROFILES = {
    "paper": dict(size=224, batch_size=128, lr=0.005, backbone="inception_v3", iterations=50,
                  train_tvnet=True, segments=3, eval_segments=25, eval_crops=5, eval_flips=True,
                  short_side=256, steps_per_epoch=100, weights="imagenet", flow_bound=20.0),
    "cpu": dict(size=48, batch_size=16, lr=0.02, backbone="small", iterations=50,
                train_tvnet=True, segments=3, eval_segments=5, eval_crops=1, eval_flips=False,
                short_side=None, steps=126, steps_per_epoch=14, weights=None, flow_bound=FLOW_BOUND_CPU),
}


def flow_input_scale(cfg):
    """The flow multiplier before the CNN: ``+-flow_bound`` px reaches the first convolution with the extremes
    RGB 0 / 255 have for the backbone (:func:`tfvideo.models.tvnet.flow_scale` is this rule for TSN's bound,
    20 px at 224-px crops)."""
    from tfvideo.models.tvnet import flow_scale

    return flow_scale(cfg["backbone"]) * 20.0 / cfg["flow_bound"]


SCHEDULES = {"hmdb51": (7000, (4000, 6000)), "ucf101": (18000, (10000, 16000))}


def build_parser(dataset, description):
    from tfvideo import cli

    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog=f"python -m recipes.tvnet_{'hmdb' if dataset == 'hmdb51' else dataset}",
                                description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    name = "HMDB51" if dataset == "hmdb51" else "UCF101"
    p.add_argument("--data-dir", help=f"{name} root in its official layout; without it the built-in "
                                      "'motion' dataset (HMDB51 layout) is generated and used")
    p.add_argument("--split", type=_split_type, default=1, help="official split: 1, 2, 3, or 'all' (the three "
                   "one after another, each in <run-dir>/splitN with its own shards, then their mean: "
                   "the paper's Table 4 protocol)")
    p.add_argument("--profile", choices=tuple(PROFILES), help="'paper' (default with --data-dir) "
                   "or 'cpu' (default on the built-in data); the flags below override it")
    p.add_argument("--steps", type=pos, help="training iterations of each stream (paper: "
                   f"{SCHEDULES[dataset][0]})")
    p.add_argument("--epochs", type=pos, help="alternative to --steps: passes of --steps-per-epoch")
    p.add_argument("--steps-per-epoch", type=pos, help="steps between logs/checkpoints")
    p.add_argument("--batch-size", type=pos, help="global batch (paper: 128, scaled to what fits)")
    p.add_argument("--lr", type=cli.float_type(), help="initial learning rate of the CNNs (TVNet: lr / 255)")
    p.add_argument("--size", type=cli.int_type(16), help="crop size (square, >= 16) fed to the networks")
    p.add_argument("--backbone", choices=("small", "inception_v3", "resnet50", "mobilenet_v2"))
    p.add_argument("--weights", help="CNN initialisation: 'imagenet' (Keras downloads the weights; the "
                   "paper profile's default), 'none' (random; the cpu profile's), or a .weights.h5 file of the "
                   "backbone with 3 input channels -- cross-modality initialised for the flow network")
    p.add_argument("--flow-bound", type=cli.float_type(), help="flow (px) mapped to the backbone's RGB "
                   "input extremes before the CNN (paper profile: TSN's 20; cpu profile: see recipes/README.md)")
    p.add_argument("--preprocess", choices=("none", "official"), default="none",
                   help="frames before TVNet: 'official' = the authors' code (grey, each pair normalised to "
                        "[0, 255] jointly, 5x5 Gaussian); 'none' = as they are")
    p.add_argument("--iterations", type=pos, help="TVNet iterations (TVNet-50: 50)")
    p.add_argument("--no-flow-loss", action="store_true", help="drop L_f (ablation)")
    p.add_argument("--freeze-tvnet", action="store_true", help="exact TV-L1, no training (ablation)")
    p.add_argument("--segments", type=pos, help="TSN segments in training")
    p.add_argument("--eval-segments", type=pos, help="stacks per video at test")
    p.add_argument("--eval-crops", type=int, choices=(1, 3, 5, 10), help="crops per stack at test")
    p.add_argument("--eval-flips", action=argparse.BooleanOptionalAction, help="flipped test views")
    p.add_argument("--videos-per-class", type=cli.int_type(2), default=40, help="size of the built-in set")
    p.add_argument("--strategy", default="auto",
                   choices=("auto", "default", "mirrored", "multiworker", "onedevice"),
                   help="tf.distribute strategy; auto: MultiWorkerMirroredStrategy when TF_CONFIG lists "
                        "several workers, MirroredStrategy on >= 2 GPUs, else the default")
    p.add_argument("--devices", help="comma-separated devices for --strategy mirrored/onedevice, e.g. "
                                     "/cpu:0,/cpu:1")
    p.add_argument("--run-dir", help="experiment folder (default runs/tvnet_<dataset>/<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its "
                                                        "last backup")
    p.add_argument("--data-out", help="shard folder (default tfrecords/<dataset>[/splitN]); a folder "
                                      "holds the shards of one dataset and source settings")
    p.add_argument("--export", default=f"saved_models/tvnet_{'hmdb' if dataset == 'hmdb51' else dataset}",
                   help="TF Serving export: <base_dir>/<model name>")
    p.add_argument("--workers", type=pos, default=1, help="decoding processes for preparing shards")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true",
                   help="build everything and run one training step of each stream")
    from recipes.tvnet_tables import add_table_flags
    add_table_flags(p)  # --table 3|4, --streams (recipes/tvnet_tables.py)
    cli.add_output_flags(p)
    return p


def _split_type(text):
    if str(text).lower() == "all":
        return "all"
    if str(text) in ("1", "2", "3"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 1, 2, 3 or all, got {text!r}")


def _weights_of(args, cfg):
    """``--weights`` over the profile's default ('imagenet' for paper, None for cpu); 'none' is None and
    the ``small`` backbone (no pretrained weights) always starts from random weights."""
    weights = cfg.get("weights") if args.weights is None else args.weights
    if weights is None or str(weights).lower() == "none" or cfg["backbone"] == "small":
        return None
    return weights


def check_weights(cfg, log):
    """Loads the CNN's initial weights once, before any data or training work: ``imagenet`` is downloaded
    into Keras' cache (``~/.keras/models``; the models built later read it from there), a file is
    checked to fit the backbone. Raises ``ValueError`` (the harness makes it ``error: ...``, exit 2)."""
    if cfg["weights"] is None:
        return
    from tfvideo.models import tvnet as tvmodels

    shape = (cfg["size"], cfg["size"], 3)
    try:
        tvmodels.backbone(cfg["backbone"], shape, weights=cfg["weights"], model_name="weights_check")
    except tvmodels.ImageNetWeightsUnavailable as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        raise ValueError(f"--weights imagenet: Keras could not download the ImageNet weights of "
                         f"{cfg['backbone']} ({type(cause).__name__}: {cause}); pass --weights FILE with a "
                         f"saved .weights.h5 (keras.applications.{tvmodels._APPS[cfg['backbone']]}("
                         "include_top=False, weights='imagenet').save_weights(FILE) where there is "
                         "network), or --weights none") from err
    except Exception as err:  # a file of another architecture or not a weights file
        raise ValueError(f"--weights {cfg['weights']}: cannot be loaded into the {cfg['backbone']} "
                         f"backbone ({type(err).__name__}: {err})") from err
    log(f"weights: {cfg['backbone']} initialised from {cfg['weights']} (flow network: cross-modality "
        "initialisation, first-layer RGB kernels averaged over the 10 flow channels)")


def check_args(args, cfg, dataset):
    """Every problem of the arguments that can be found before any work, as ``error: ...`` texts
    (reads only: no file is written, TensorFlow's runtime is not started)."""
    from tfvideo.checks import check_model_name
    from tfvideo.data.prepare import check_reusable
    from tfvideo.training.run_dir import RunDir
    from tfvideo.training.strategy import tf_config_workers

    if args.data_dir is not None:
        if not os.path.isdir(args.data_dir):
            return [f"--data-dir {args.data_dir}: not a folder"]
        if not os.listdir(args.data_dir):
            return [f"--data-dir {args.data_dir}: the folder is empty (expected {dataset.upper()} in "
                    "its official layout)"]
    if args.weights not in (None, "imagenet", "none") and not os.path.isfile(args.weights):
        return [f"--weights {args.weights}: no such file (expected 'imagenet', 'none' or a .weights.h5 file)"]
    if args.weights not in (None, "none") and cfg["backbone"] == "small":
        return [f"--weights {args.weights}: the 'small' backbone has no pretrained weights (use --backbone "
                "inception_v3, resnet50 or mobilenet_v2, or --weights none)"]
    if args.devices and args.strategy not in ("mirrored", "onedevice"):
        return ["--devices goes with --strategy mirrored or onedevice"]
    try:
        check_model_name(os.path.basename(os.path.normpath(args.export)), "--export's last part")
    except ValueError as err:
        return [str(err)]
    if tf_config_workers() > 1 and args.run_dir is None:
        return ["a multi-worker run (TF_CONFIG lists several workers) needs --run-dir: the same folder, "
                "on a file system every worker sees, in every worker's command"]
    problem = RunDir.check_new_or_resume(run_dir_of(args, cfg), args.resume)
    if problem:
        return [problem]
    try:
        check_reusable(*data_source(args, cfg, dataset), split=cfg["split"],
                       motion_options=motion_options(cfg))
    except ValueError as err:
        return [str(err)]
    return []


def run_dir_of(args, cfg):
    if args.run_dir is None:
        args.run_dir = os.path.join("runs", f"tvnet_{cfg['dataset']}", time.strftime("%Y%m%d-%H%M%S"))
    return args.run_dir


def data_source(args, cfg, dataset):
    """``(dataset name for prepare, shard folder, data_dir)``."""
    if cfg["dataset"] == "motion":
        default = "tfrecords/motion" if cfg["split"] == 1 else f"tfrecords/motion_split{cfg['split']}"
        return "motion", args.data_out or default, None
    return dataset, args.data_out or os.path.join("tfrecords", dataset, f"split{cfg['split']}"), args.data_dir


def motion_options(cfg):
    return dict(videos_per_class=cfg["videos_per_class"]) if cfg["dataset"] == "motion" else None


def resolve(args, dataset):
    """Merge the profile with the flags into the run's config dict."""
    builtin = args.data_dir is None
    profile = args.profile or ("cpu" if builtin else "paper")
    cfg = dict(PROFILES[profile])
    total, boundaries = SCHEDULES[dataset]
    cfg.setdefault("steps", total)
    for key in ("steps", "steps_per_epoch", "batch_size", "lr", "size", "backbone", "iterations",
                "segments", "eval_segments", "eval_crops", "eval_flips", "flow_bound"):
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
               flow_loss_weight=0.0 if args.no_flow_loss else 0.1, weights=_weights_of(args, cfg),
               preprocess=args.preprocess,
               seed=args.seed, strategy=args.strategy, frames_per_stack=6,
               videos_per_class=args.videos_per_class if builtin else None)
    from recipes.tvnet_tables import apply_table
    apply_table(args, cfg)  # table, segments (unless --segments), streams: recipes/tvnet_tables.py
    return cfg


def prepare_data(args, cfg, dataset, log, chief=True, workers=1):
    """Writes the shards (the chief of a multi-worker run; the others wait for them). With several
    workers each split gets at least one shard per worker (tf.distribute shards the input by file)."""
    from tfvideo.data.prepare import prepare, wait_until_prepared

    check_weights(cfg, log)
    name, out, data_dir = data_source(args, cfg, dataset)
    if name == "motion":
        log(f"data: the built-in 'motion' dataset (8 camera-motion classes filmed on scikit-image "
            f"photographs, HMDB51 layout, split {cfg['split']}) -- NOT {dataset.upper()}; pass "
            f"--data-dir for the real data")
    else:
        log(f"data: {dataset.upper()} split {cfg['split']} from {data_dir}")
    if not chief:
        wait_until_prepared(out, log=log)
    summary = prepare(name, out, data_dir, split=cfg["split"], workers=args.workers, min_shards=workers,
                      short_side=None if name == "motion" else cfg["short_side"],
                      progress=not args.quiet and chief,
                      log=None if name == "motion" or not chief else log,
                      motion_options=motion_options(cfg))
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
                                     seed=cfg["seed"], crop="tsn",
                                     # a flip turns the motion set's pan_left into pan_right (and rotate_cw
                                     # into rotate_ccw): its labels are directions
                                     flip=cfg["dataset"] != "motion")
    views = cfg["eval_crops"] * (2 if cfg["eval_flips"] else 1)
    test = pipeline.segment_dataset(shards, "test", training=False, batch_size=max(1, min(views, 10)),
                                    num_segments=cfg["eval_segments"], frames_per_segment=6,
                                    size=size, num_crops=cfg["eval_crops"],
                                    flip_views=cfg["eval_flips"], with_video_id=True,
                                    resize_short_side=cfg["short_side"] and round(cfg["size"] * 256 / 224))
    if eval_only_batches:
        test = test.take(eval_only_batches)
    return train, test


def compile_model(model, cfg, *, tvnet, jit_compile=True):
    import keras

    from tfvideo import optimizers

    values = [cfg["lr"], cfg["lr"] / 10, cfg["lr"] / 100]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(cfg["lr_boundaries"], values)
    multipliers = {"tvnet": 1 / 255} if tvnet and cfg["train_tvnet"] else None
    model.compile(optimizer=optimizers.SGD(schedule, momentum=0.9, lr_multipliers=multipliers),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)
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
    parser = build_parser(dataset, description)
    args = parser.parse_args(argv)
    if args.split == "all":  # splits 1, 2, 3 one after another, then their mean: recipes/tvnet_splits.py
        from recipes.tvnet_splits import run_all_splits
        return run_all_splits(parser, args, dataset, run_parsed)
    return run_parsed(parser, args, dataset)


def run_parsed(parser, args, dataset):
    """One split's run from parsed arguments (``--split 1|2|3``)."""
    from recipes.harness import begin  # the strategy first: multi-worker needs it before TF starts

    cfg = resolve(args, dataset)
    from recipes import tvnet_tables
    if cfg["table"] == 3:  # one temporal network per motion descriptor: recipes/tvnet_tables.py
        return tvnet_tables.run_table3(parser, args, cfg, dataset)
    log, strategy, chief, run_dir, (shards, classes) = begin(
        parser, args, cfg, tvnet_tables.table_problems(args) or check_args(args, cfg, dataset),
        lambda log, chief, workers: prepare_data(args, cfg, dataset, log, chief=chief, workers=workers))

    import tensorflow as tf

    from tfvideo import evaluation, export, training
    from tfvideo.models import tvnet as tvmodels
    train_ds, test_ds = datasets(shards, cfg, eval_only_batches=1 if args.dry_run else None)
    size = (cfg["size"], cfg["size"])
    # no check_finite here: the frames are uint8 (decoded JPEG), which cannot hold NaN or inf, and
    # the check would keep the model out of XLA (tvnet_middlebury, whose frames are float, checks)
    tv = {"iterations": cfg["iterations"], "xla_iterations": True}
    with strategy.scope():
        temporal = tvmodels.temporal_stream(
            len(classes), size=size, backbone_name=cfg["backbone"], weights=cfg["weights"],
            tvnet=tv, flow_loss_weight=cfg["flow_loss_weight"], train_tvnet=cfg["train_tvnet"],
            preprocess=cfg["preprocess"], flow_scale=flow_input_scale(cfg))
        spatial = tvmodels.spatial_stream(len(classes), size=size, backbone_name=cfg["backbone"],
                                          weights=cfg["weights"])
        # XLA has no CPU collectives: multi-worker steps run as graphs (TVNet's iterations keep XLA)
        jit = training.num_workers(strategy) == 1
        compile_model(temporal, cfg, tvnet=True, jit_compile=jit)
        compile_model(spatial, cfg, tvnet=False, jit_compile=jit)
    fixed = next(iter(test_ds))[0]["frames"][:4, :1].numpy()
    log(f"reproducing {tvnet_tables.table_title(cfg)}")
    log(f"run dir: {run_dir.path}; {cfg['steps']} steps x batch {cfg['batch_size']} per stream "
        f"({cfg['epochs']} epochs of {cfg['steps_per_epoch']}), lr {cfg['lr']} "
        f"(/10 at {cfg['lr_boundaries']}), TVNet-{cfg['iterations']} "
        f"{'trained (lr / 255)' if cfg['train_tvnet'] else 'frozen'}, L_f weight "
        f"{cfg['flow_loss_weight']}, backbone {cfg['backbone']}, {cfg['size']}px crops")
    for name, model in (("temporal", temporal), ("spatial", spatial)):
        log(f"training the {name} stream ({'TVNet flows' if name == 'temporal' else 'RGB frames'})")
        training.train(model, train_ds, run_dir=os.path.join(run_dir.path, name), epochs=cfg["epochs"],
                       steps_per_epoch=cfg["steps_per_epoch"], config=cfg, monitor=None,
                       backup_every_steps=cfg["steps_per_epoch"],
                       image_fn=flow_images(model, fixed) if name == "temporal" else None,
                       verbose=0 if args.quiet else "auto")
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "run_dir": str(run_dir.path), "chief": False}
    results = {}
    for name, model in (("temporal", temporal), ("spatial", spatial)):
        log(f"evaluating the {name} stream")
        # every view's output (logits, already averaged over its stacks by the consensus) is averaged:
        # the per-video score is the mean of all stacks x crops x flips snippet logits (Sec. 5.2's 250)
        results[name] = evaluation.evaluate(model, test_ds, class_names=classes, softmax=False,
                                            out_dir=run_dir.eval / name,
                                            progress=not args.quiet)
    fused = evaluation.fuse_scores([results["spatial"]["videos"], results["temporal"]["videos"]],
                                   evaluation.TWO_STREAM_WEIGHTS)
    results["two_stream"] = evaluation.classification_metrics(fused["scores"], fused["labels"],
                                                              classes)
    chance = 1 / len(classes)
    lines = [f"results ({tvnet_tables.table_title(cfg)}) on {cfg['dataset']} split {cfg['split']} test "
             f"({results['temporal']['num_videos']} videos, {cfg['eval_segments']} stacks x "
             f"{cfg['eval_crops']} crops{' x 2 flips' if cfg['eval_flips'] else ''} = "
             f"{cfg['eval_segments'] * results['temporal']['num_views'] // results['temporal']['num_videos']} "
             f"snippets per video, their logits averaged; chance {100 * chance:.1f}%):"]
    for name, label in (("spatial", "RGB stream"), ("temporal", f"TVNet-{cfg['iterations']} stream"),
                        ("two_stream", "two-stream 1:2")):
        r = results[name]
        lines.append(f"  {label:22s} top-1 {100 * r['top1']:5.1f}%  top-5 {100 * r['top5']:5.1f}%  "
                     f"mean class {100 * r['mean_class_accuracy']:5.1f}%")
        # Table 4 compares the two-stream result only (the temporal stream alone is Table 3's row)
        paper = (evaluation.paper_comparison(cfg["dataset"], cfg["split"], r, "Ours")
                 if name == "two_stream" else None)
        if paper:
            lines.append("    " + paper)
    for line in lines:
        log(line)
    summary = {k: {m: results[k][m] for m in ("top1", "top5", "mean_class_accuracy", "num_videos")}
               for k in results}
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": summary})

    # export: the two-stream model, TVNet without XLA (stock TF Serving), plus a "flow" signature
    plain = tvmodels.without_xla(tvmodels.two_stream(spatial, temporal))
    flow_stack = plain.get_layer("temporal").get_layer("flow_stack")  # its --preprocess, then TVNet
    pair = tf.TensorSpec((None, None, None, 3), tf.uint8)  # any frame size: TVNet takes any
    signatures = {
        "serving_default": export.classifier_signature(plain),
        "flow": export.function_signature(
            flow_stack.pair_flow,  # casts the uint8 frames itself
            {"frame0": pair, "frame1": pair}, "flow"),
    }
    base_dir, name = os.path.split(os.path.normpath(args.export))
    path = export.export_for_serving(plain, base_dir or ".", name, signatures=signatures,
                                     print_signatures=not args.quiet)
    log(f"exported the two-stream model to {path} (TF Serving layout; {base_dir}/models.config)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": summary, "export": path, "run_dir": str(run_dir.path),
            "model": plain}

