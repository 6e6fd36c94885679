"""The V2V recipes' shared steps (seed 000): ``recipes.v2v_gatech``, ``recipes.v2v_flow``,
``recipes.v2v_colouring``.

prepare shards (if absent) -> train each compared model on the same budget through the shared harness
-> evaluate them side by side on the test split -> a GIF of one test clip -> export the V2V model in TF
Serving's layout with a signature named after the task (``segmentation``, ``flow``, ``colour``; uint8
frames in, any clip size that the size rule admits).

Two profiles:

* ``paper`` (default with ``--data-dir``): frames resized to a short side of 128 (128 x 171, Sec. 4),
  16-frame clips, random 112 x 112 crops + mirroring in training (the released data layers' ``crop_size:
  112, mirror: true``), centre 112 x 112 crops of non-overlapping clips at test (Sec. 4: "all
  non-overlapping clips"), batch 1, SGD momentum 0.9 with the paper's learning rates and step schedules
  (segmentation: 1e-4, / 10 every 30K, 100K iterations; flow: 1e-8, / 10 every 200K, 800K; colouring:
  1e-8, / 10 every 200K, 600K) and the released solvers' weight decay (0.005 segmentation, 0.0005 the
  others). Caffe's Euclidean loss *sums* over voxels where ours average (Keras' mean over
  ``B x T x H x W``), so the flow and colouring learning rates are multiplied by the voxels of a clip
  (``16 x 112 x 112``), which gives the same update; the voxel-wise softmax loss of the released code
  is a mean already (``voxel_wise_softmax_loss_layer.cpp`` divides by ``num x length x height x
  width``).
* ``cpu`` (default on the built-in ``objects`` set): the same code path sized for 2 CPU cores and < 15
  minutes per recipe: the set's 96 x 128 frames stored at 48 x 64 (so the teacher runs at the size the
  student sees), 8-frame clips of the whole frame, batch 4, Adam at a constant 1e-4 (1e-3 made V2V
  collapse to a constant output within its first steps: measured, see issue 10's note), 300 steps per
  model (500 for flow, which trains one model).
  Every value can be overridden by a flag.

Length: one module for three recipes (parser, profiles, data, training, evaluation, export), each step a
short function; the recipe modules only name the task.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from tfvideo.files import atomic_write_json

TASKS = ("segmentation", "flow", "colour")
RECIPES = {"segmentation": "v2v_gatech", "flow": "v2v_flow", "colour": "v2v_colouring"}
#: (lr, lr step, iterations, weight decay) of Sec. 4-6 and the released solvers.
PAPER_SCHEDULES = {"segmentation": (1e-4, 30000, 100000, 0.005), "flow": (1e-8, 200000, 800000, 0.0005),
                   "colour": (1e-8, 200000, 600000, 0.0005)}
PROFILES = {
    "paper": dict(frames=16, size=(112, 112), short_side=128, resize=None, batch_size=1, optimizer="sgd",
                  steps_per_epoch=1000, eval_batch=1),
    "cpu": dict(frames=8, size=(48, 64), short_side=48, resize=None, batch_size=4, optimizer="adam",
                lr=1e-4, lr_step=None, weight_decay=0.0, steps_per_epoch=50, eval_batch=4),
}
#: cpu profile steps per model: two models share the segmentation and colouring budgets, flow trains one
CPU_STEPS = {"segmentation": 300, "flow": 500, "colour": 300}
#: Published figures (labelled as the paper's when printed; only for the matching real dataset).
PAPER_RESULTS = {
    "gatech": {"V2V (fine-tuned)": 76.0, "V2V-0 (scratch)": 66.7, "2D-V2V": 55.7, "Conv3b+Up": 69.7,
               "Conv4b+Up": 72.7, "Conv5b+Up": 72.1, "V2V-remove-skip": 74.7, "V2V-remove-skip-0": 60.8},
    "sintel": {"Brox (teacher)": 8.89, "V2V": 8.86, "finetuned-V2V": 8.38, "FlowFields": 5.81},
    "ucf101": {"V2V": 0.1375, "2D-V2V": 0.1495},
}
#: Real datasets each task reads with --data-dir.
DATASETS = {"segmentation": ("gatech",), "flow": ("ucf101", "sintel"), "colour": ("ucf101", "hmdb51")}


def build_parser(task, description):
    from tfvideo import cli

    pos = cli.int_type(1)
    name = RECIPES[task]
    p = argparse.ArgumentParser(prog=f"python -m recipes.{name}", description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="a real dataset's root (see --dataset); without it the built-in "
                                      "'objects' set (photographed objects moving over photographs, exact "
                                      "labels and flow) is generated and used")
    p.add_argument("--dataset", choices=DATASETS[task], default=DATASETS[task][0],
                   help="layout of --data-dir")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (UCF101/HMDB51)")
    p.add_argument("--profile", choices=tuple(PROFILES), help="'paper' (default with --data-dir) or 'cpu' "
                                                               "(default on the built-in set)")
    if task == "segmentation":
        from tfvideo.models.v2v import VARIANTS

        p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["v2v", "2d_v2v"],
                       help="models compared side by side (Table 1); the first is exported")
    elif task == "colour":
        p.add_argument("--variants", nargs="+", choices=("v2v", "2d_v2v"), default=["v2v", "2d_v2v"],
                       help="models compared side by side (Sec. 6); the first is exported")
    else:
        from tfvideo.teachers import TEACHERS

        p.add_argument("--teacher", choices=TEACHERS, default="tvl1",
                       help="flow method whose output V2V learns (the paper used Brox, not in OpenCV's CPU "
                            "build): OpenCV TV-L1, our TVNet (frozen: exact TV-L1) or OpenCV DIS")
        p.add_argument("--teacher-iterations", type=pos, help="TVNet teacher: iterations (default 50)")
    p.add_argument("--c3d-weights", help="converted C3D weights (.npz, tfvideo.models.c3d.load_c3d_weights) "
                                         "to fine-tune from; default: from scratch (V2V-0)")
    p.add_argument("--freeze-c3d", action="store_true", help="keep the loaded C3D layers fixed (the released "
                                                               "GATECH prototxt's blobs_lr 0)")
    p.add_argument("--steps", type=pos, help="training iterations of each model")
    p.add_argument("--steps-per-epoch", type=pos, help="steps between logs/checkpoints")
    p.add_argument("--batch-size", type=pos, help="global batch (paper: 1)")
    p.add_argument("--lr", type=cli.float_type(), help="initial learning rate")
    p.add_argument("--frames", type=pos, help="frames per clip (V2V: a multiple of 8; paper 16)")
    p.add_argument("--size", type=cli.size_type(16), help="HxW of the clips fed to the networks (multiples "
                                                            "of 16; paper 112x112)")
    p.add_argument("--eval-clips", type=pos, default=None, help="test clips per video (default: as many "
                                                               "non-overlapping clips as the shortest "
                                                               "test video holds)")
    from recipes.harness import add_run_flags

    return add_run_flags(p, name, data_out="shard folder (default tfrecords/<dataset>)",
                         dry_run="build everything and run one training step each")


def resolve(args, task):
    """The run's config: the profile, then the flags."""
    builtin = args.data_dir is None
    profile = args.profile or ("cpu" if builtin else "paper")
    cfg = dict(PROFILES[profile])
    if profile == "paper":
        lr, step, total, decay = PAPER_SCHEDULES[task]
        if task != "segmentation":  # Caffe's Euclidean loss sums over the voxels of a clip
            lr *= cfg["frames"] * cfg["size"][0] * cfg["size"][1]
        cfg.update(lr=lr, lr_step=step, steps=total, weight_decay=decay)
    else:
        cfg["steps"] = CPU_STEPS[task]
    for key in ("steps", "steps_per_epoch", "batch_size", "lr", "frames", "size"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.dry_run:
        cfg.update(steps=1, steps_per_epoch=1)
    cfg["steps_per_epoch"] = min(cfg["steps_per_epoch"], cfg["steps"])
    cfg["epochs"] = math.ceil(cfg["steps"] / cfg["steps_per_epoch"])
    cfg["steps"] = cfg["epochs"] * cfg["steps_per_epoch"]
    variants = list(getattr(args, "variants", None) or ["v2v"])
    cfg.update(task=task, profile=profile, dataset="objects" if builtin else args.dataset, split=args.split,
               variants=variants, c3d_weights=args.c3d_weights, freeze_c3d=args.freeze_c3d, seed=args.seed,
               strategy=args.strategy, eval_clips=args.eval_clips,
               videos=(args.videos or 48) if builtin else None,
               teacher=getattr(args, "teacher", None), teacher_iterations=getattr(args, "teacher_iterations", None))
    return cfg


def check_args(args, cfg):
    """Problems found before any work (reads only), as ``error: ...`` texts."""
    from tfvideo.checks import check_model_name
    from tfvideo.data.prepare import check_reusable
    from tfvideo.models.v2v import SIZE_RULES
    from tfvideo.training.run_dir import RunDir

    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        return [f"--data-dir {args.data_dir}: not a folder"]
    if args.c3d_weights is not None and not os.path.isfile(args.c3d_weights):
        return [f"--c3d-weights {args.c3d_weights}: no such file"]
    if args.freeze_c3d and args.c3d_weights is None:
        return ["--freeze-c3d needs --c3d-weights (freezing random layers trains nothing)"]
    if args.teacher_iterations is not None if hasattr(args, "teacher_iterations") else False:
        if args.teacher != "tvnet":
            return ["--teacher-iterations goes with --teacher tvnet"]
    if args.devices and args.strategy not in ("mirrored", "onedevice"):
        return ["--devices goes with --strategy mirrored or onedevice"]
    for variant in cfg["variants"]:
        t_mult, s_mult = SIZE_RULES[variant]
        h, w = cfg["size"]
        if cfg["frames"] % t_mult or h % s_mult or w % s_mult:
            return [f"--frames {cfg['frames']} / --size {h}x{w}: {variant} needs frames a multiple of {t_mult} "
                    f"and height, width multiples of {s_mult}"]
    try:
        check_model_name(os.path.basename(os.path.normpath(args.export)), "--export's last part")
    except ValueError as err:
        return [str(err)]
    if args.run_dir is None:
        args.run_dir = os.path.join("runs", RECIPES[cfg["task"]], time.strftime("%Y%m%d-%H%M%S"))
    problem = RunDir.check_new_or_resume(args.run_dir, args.resume)
    if problem:
        return [problem]
    try:
        for name, out, data_dir, transform in sources(args, cfg):
            check_reusable(name, out, data_dir, split=cfg["split"], item_transform=transform,
                           **_options(cfg, name))
    except ValueError as err:
        return [str(err)]
    return []


def _options(cfg, name):
    return {"objects_options": {"train_videos": cfg["videos"], "test_videos": max(2, cfg["videos"] // 3)}} \
        if name == "objects" else {}


def teacher_of(cfg):
    from tfvideo.teachers import FlowTeacher

    extra = {"iterations": cfg["teacher_iterations"]} if cfg["teacher_iterations"] else {}
    return FlowTeacher(cfg["teacher"], **extra)


def sources(args, cfg):
    """``[(prepare name, shard folder, data dir, item_transform)]``: the set itself (exact targets when it
    has them) and, for flow, the same frames with the teacher's flows."""
    name = cfg["dataset"]
    base = args.data_out or os.path.join("tfrecords", name if name in ("objects", "gatech", "sintel")
                                         else f"{name}/split{cfg['split']}")
    # the built-in set is generated once, beside the exact shards; the teacher shards read the same videos
    data_dir = args.data_dir or (os.path.join(base, "videos") if name == "objects" else None)
    out = []
    if not (cfg["task"] == "flow" and name == "ucf101"):  # UCF101 has no exact flow: teacher shards only
        out.append((name, base, data_dir, None))
    if cfg["task"] == "flow":
        teacher = teacher_of(cfg)
        tag = "-".join(str(v) for v in teacher.settings().values())
        out.append((name, f"{base.rstrip('/')}-teacher-{tag}", data_dir, teacher))
    return out


def prepare_data(args, cfg, log, chief=True, workers=1):
    """Writes the shards (chief; others wait). Returns ``{"exact": folder or None, "teacher": folder or
    None, "classes": [...]}``."""
    from tfvideo.data.prepare import prepare, wait_until_prepared

    if cfg["dataset"] == "objects":
        log("data: the built-in 'objects' set (objects cut from photographs moving over photographs, exact "
            "labels and flow) -- pass --data-dir for real data")
    else:
        log(f"data: {cfg['dataset']} from {args.data_dir}")
    result = {"exact": None, "teacher": None, "classes": []}
    for name, out, data_dir, transform in sources(args, cfg):
        if transform is not None:
            log(f"teacher flow: {transform.describe()} on every frame pair, stored in {out}")
        if not chief:
            wait_until_prepared(out, log=log)
        summary = prepare(name, out, data_dir, split=cfg["split"], workers=args.workers, min_shards=workers,
                          short_side=cfg["short_side"], progress=not args.quiet and chief,
                          log=log if chief and name != "objects" else None, item_transform=transform,
                          **_options(cfg, name))
        counts = {k: v["videos"] for k, v in summary["splits"].items()}
        test = "test" if "test" in counts else ("val" if "val" in counts else None)
        log(f"shards: {out} ({counts.get('train', 0)} train / {counts.get(test, 0)} test videos)")
        if not counts.get("train"):
            raise SystemExit(f"error: {out} has no training videos")
        result["teacher" if transform is not None else "exact"] = out
        result["classes"] = summary["classes"]
        result["test_split"] = test or "train"
    return result


# ------------------------------------------------------------------------------------------ data ----
def datasets(shards, cfg, *, training, split="train", target=None, take=None):
    """``dense_dataset`` of the task on ``shards``; evaluation: centre crops of non-overlapping clips."""
    from tfvideo.data import pipeline

    target = target or cfg["task"]
    common = dict(target=target, size=tuple(cfg["size"]), num_frames=cfg["frames"], seed=cfg["seed"],
                  resize_short_side=cfg["resize"])
    if training:
        return pipeline.dense_dataset(shards, split, training=True, batch_size=cfg["batch_size"], crop="random",
                                      flip=True, **common)
    ds = pipeline.dense_dataset(shards, split, training=False, batch_size=cfg["eval_batch"], crop="center",
                                num_clips=cfg["eval_clips"], with_video_id=True, deterministic=True, **common)
    return ds.take(take) if take else ds


def eval_clips(shards, split, cfg):
    """Test clips per video: ``--eval-clips``, else the mean video length of ``split`` // clip length
    (>= 1): uniformly spaced clips, non-overlapping in videos of at least that length (Sec. 4 tests on
    "all non-overlapping clips"; the pipeline takes a fixed number per video)."""
    from tfvideo.data.shards import read_manifest

    if cfg["eval_clips"]:
        return cfg["eval_clips"]
    record = read_manifest(shards)["splits"].get(split, {})
    mean = record.get("num_frames", 0) / max(1, record.get("num_videos", 0))
    return max(1, int(mean // cfg["frames"]))


# ------------------------------------------------------------------------------------ the models ----
def build(variant, cfg, num_classes):
    """A compiled model of ``variant`` for the task (inside the strategy's scope)."""
    import keras

    from tfvideo import losses, metrics
    from tfvideo.models import c3d
    from tfvideo.models.v2v import v2v

    task = cfg["task"]
    k = {"segmentation": num_classes, "flow": 2, "colour": 3}[task]
    model = v2v(k, input_channels=1 if task == "colour" else 3, task=task, variant=variant,
                clip_shape=(cfg["frames"], *cfg["size"]), name=variant)
    if cfg["c3d_weights"]:
        loaded = c3d.load_c3d_weights(model, cfg["c3d_weights"])
        if cfg["freeze_c3d"]:
            for layer_name in loaded:
                model.get_layer(layer_name).trainable = False
    schedule = cfg["lr"] if not cfg["lr_step"] else keras.optimizers.schedules.ExponentialDecay(
        cfg["lr"], cfg["lr_step"], 0.1, staircase=True)
    if cfg["optimizer"] == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=cfg["weight_decay"] or None)
    else:
        opt = keras.optimizers.Adam(schedule, weight_decay=cfg["weight_decay"] or None)
    if task == "segmentation":
        loss, mets = losses.voxel_softmax_cross_entropy(), [metrics.VoxelAccuracy(name="accuracy"),
                                                            metrics.MeanIoU(num_classes, name="mean_iou")]
    elif task == "flow":
        loss, mets = losses.huber_flow_loss(), [metrics.EndPointError(name="epe")]
    else:
        loss, mets = losses.colour_l2_loss(), [metrics.AverageDistanceError(name="ade")]
    model.compile(optimizer=opt, loss=loss, weighted_metrics=mets)
    return model


# ------------------------------------------------------------------------------------ evaluation ----
def _metric_objects(task, num_classes):
    from tfvideo import metrics

    if task == "segmentation":
        return {"accuracy": metrics.VoxelAccuracy(), "mean_iou": metrics.MeanIoU(num_classes)}
    if task == "flow":
        return {"epe": metrics.EndPointError()}
    return {"ade": metrics.AverageDistanceError()}


def evaluate(predict, dataset, task, num_classes, *, progress=False, keep=1):
    """Runs ``predict(frames) -> outputs`` over ``dataset`` and returns ``(metrics, seconds, frames,
    kept)``: the task's metrics (weighted by the pipeline's sample weights), the time spent in
    ``predict``, the number of frames it processed, and the first ``keep`` batches
    ``(inputs, labels, weights, outputs, video_ids)`` for pictures."""
    from tqdm.auto import tqdm

    mets = _metric_objects(task, num_classes)
    seconds, frames, kept = 0.0, 0, []
    for inputs, labels, weights in tqdm(dataset, desc="evaluating", unit="batch", disable=not progress,
                                        leave=False):
        ids = None
        if isinstance(inputs, dict):
            inputs, ids = inputs["frames"], inputs["video_id"].numpy()
        start = time.perf_counter()
        outputs = np.asarray(predict(inputs))
        seconds += time.perf_counter() - start
        frames += int(np.prod(inputs.shape[:2]))
        for m in mets.values():
            m.update_state(labels, outputs, sample_weight=weights)
        if len(kept) < keep:
            kept.append((inputs.numpy(), labels.numpy(), weights.numpy(), outputs, ids))
    return {k: float(m.result()) for k, m in mets.items()}, seconds, frames, kept


def class_counts(shards, num_classes, batches=20):
    """Labelled voxels per class in (the first ``batches`` batches of) the training split."""
    from tfvideo.data import pipeline

    counts = np.zeros(num_classes)
    ds = pipeline.dense_dataset(shards, "train", target="segmentation", training=False, size=(16, 16),
                                batch_size=8, crop="center", num_frames=1, num_clips=4)
    for _, labels, weights in ds.take(batches):
        counts += np.bincount(labels.numpy().ravel(), weights=weights.numpy().ravel(), minlength=num_classes)
    return counts


def predictor(model):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


# ------------------------------------------------------------------------------------- pictures ----
def clip_gif(path, task, kept, names, num_classes, extra=None):
    """A GIF of the first test clip: input | (truth) | each model's output, one panel per frame."""
    from tfvideo import viz

    inputs, labels = kept[0][0], kept[0][1]
    outputs = [k[3][0] for k in kept]
    frames = []
    for t in range(inputs.shape[1]):
        x = inputs[0, t]
        if task == "segmentation":
            panels = [x, viz.label_overlay(x, labels[0, t], num_classes)]
            panels += [viz.label_overlay(x, np.argmax(o[t], -1), num_classes) for o in outputs]
            titles = ["frame", "truth"] + list(names)
        elif task == "flow":
            scale = max(1.0, float(np.percentile(np.linalg.norm(labels[0], axis=-1), 99)))
            panels = [x] + [viz.flow_image(o[t], max_flow=scale) for o in outputs]
            titles = ["frame"] + list(names)
            for title, flow in (extra or {}).items():
                panels.append(viz.flow_image(flow[t], max_flow=scale))
                titles.append(title)
        else:
            panels = [x[..., 0]] + [np.uint8(np.clip(o[t], 0, 1) * 255 + 0.5) for o in outputs]
            panels.append(labels[0, t])
            titles = ["grey input"] + list(names) + ["true colour"]
        zoom = max(1, -(-128 // panels[0].shape[0]))  # panels at least 128 px high (side_by_side follows the first)
        panels[0] = np.repeat(np.repeat(panels[0], zoom, 0), zoom, 1)
        frames.append(viz.side_by_side(panels, titles))
    return viz.save_gif(path, frames, fps=4)


# ----------------------------------------------------------------------------------------- export ----
SIGNATURE_OUTPUTS = {"segmentation": ("logits", "probabilities", "labels"), "flow": ("flow",),
                     "colour": ("colour",)}


def export_model(model, cfg, num_classes, export, quiet):
    """The trained model rebuilt for any clip size (``None`` time/space, checked by the size rule at run
    time), exported with a signature named after the task (also ``serving_default``)."""
    import tensorflow as tf

    from tfvideo import export as ex
    from tfvideo.models.v2v import v2v

    task = cfg["task"]
    channels = 1 if task == "colour" else 3
    plain = v2v(model.output.shape[-1], input_channels=channels, task=task, variant=model.name,
                clip_shape=(None, None, None), name=model.name)
    plain.set_weights(model.get_weights())

    def serve(frames):
        out = plain(frames, training=False)
        if task == "segmentation":
            return {"logits": out, "probabilities": tf.nn.softmax(out),
                    "labels": tf.argmax(out, axis=-1, output_type=tf.int32)}
        return {task: out}

    spec = {"frames": tf.TensorSpec((None, None, None, None, channels), tf.uint8)}
    signature = ex.function_signature(serve, spec, SIGNATURE_OUTPUTS[task])
    base_dir, name = os.path.split(os.path.normpath(export))
    path = ex.export_for_serving(plain, base_dir or ".", name, signatures={task: signature,
                                                                          "serving_default": signature},
                                 print_signatures=not quiet)
    return path, plain


# -------------------------------------------------------------------------------------------- run ----
LABELS = {"v2v": "V2V", "2d_v2v": "2D-V2V", "conv3b_up": "Conv3b+Up", "conv4b_up": "Conv4b+Up",
          "conv5b_up": "Conv5b+Up", "v2v_no_skip": "V2V-remove-skip"}


def _table(task, rows):
    """Result lines: one per model / method."""
    if task == "segmentation":
        head = f"  {'model':22s} {'voxel acc':>10s} {'mean IoU':>9s} {'frames/s':>9s}"
        body = [f"  {n:22s} {100 * r['accuracy']:9.1f}% {100 * r['mean_iou']:8.1f}% {_fps(r):>9s}"
                for n, r in rows]
    elif task == "flow":
        head = f"  {'method':22s} {'EPE vs teacher':>15s} {'EPE vs truth':>13s} {'frames/s':>9s}"
        body = [f"  {n:22s} {_num(r.get('epe_teacher')):>15s} {_num(r.get('epe_truth')):>13s} {_fps(r):>9s}"
                for n, r in rows]
    else:
        head = f"  {'model':22s} {'ADE':>8s} {'frames/s':>9s}"
        body = [f"  {n:22s} {r['ade']:8.4f} {_fps(r):>9s}" for n, r in rows]
    return [head] + body


def _num(x):
    return "-" if x is None else f"{x:.3f}"


def _fps(row):
    return "-" if row.get("fps") is None else f"{row['fps']:.1f}"


def _paper_lines(cfg):
    paper = PAPER_RESULTS.get(cfg["dataset"]) if cfg["dataset"] != "objects" else None
    if not paper or (cfg["task"], cfg["dataset"]) not in (("segmentation", "gatech"), ("flow", "sintel"),
                                                           ("colour", "ucf101")):
        return []
    what = {"segmentation": "GATECH voxel accuracy %, Table 1", "flow": "Sintel EPE, Table 2",
            "colour": "UCF101 ADE, Sec. 6"}[cfg["task"]]
    return [f"  the paper's figures ({what}): " + ", ".join(f"{k} {v}" for k, v in paper.items())]


def run(argv, task, description):
    from recipes.harness import begin  # the strategy first: multi-worker needs it before TF starts

    parser = build_parser(task, description)
    args = parser.parse_args(argv)
    cfg = resolve(args, task)
    log, strategy, chief, run_dir, data = begin(
        parser, args, cfg, check_args(args, cfg),
        lambda log, chief, workers: prepare_data(args, cfg, log, chief=chief, workers=workers))

    from tfvideo import training
    classes = data["classes"]
    num_classes = len(classes) if task == "segmentation" else 0
    train_shards = data["teacher"] if task == "flow" else data["exact"]
    split = data["test_split"]
    cfg["eval_clips"] = eval_clips(train_shards, split, cfg)
    train_ds = datasets(train_shards, cfg, training=True)
    with strategy.scope():
        models = {v: build(v, cfg, num_classes) for v in cfg["variants"]}
    h, w = cfg["size"]
    log(f"run dir: {run_dir.path}; {cfg['steps']} steps x batch {cfg['batch_size']} per model "
        f"({cfg['epochs']} epochs of {cfg['steps_per_epoch']}), {cfg['optimizer']} lr {cfg['lr']:g} "
        f"({'/10 every ' + str(cfg['lr_step']) if cfg['lr_step'] else 'constant'}), clips {cfg['frames']}x{h}x{w}, "
        f"{'fine-tuned from ' + cfg['c3d_weights'] if cfg['c3d_weights'] else 'from scratch'}")
    for variant, model in models.items():
        log(f"training {LABELS[variant]} ({model.count_params():,} parameters)")
        training.train(model, train_ds, run_dir=os.path.join(run_dir.path, variant), epochs=cfg["epochs"],
                       steps_per_epoch=cfg["steps_per_epoch"], config=cfg, monitor=None,
                       backup_every_steps=cfg["steps_per_epoch"], verbose=0 if args.quiet else "auto")
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates and exports")
        return {"config": cfg, "run_dir": str(run_dir.path), "chief": False}

    take = 1 if args.dry_run else None
    progress = not args.quiet
    rows, kept, extra = [], [], {}
    if task == "flow":
        teacher = teacher_of(cfg)
        t_test = datasets(data["teacher"], cfg, training=False, split=split, take=take)
        e_test = datasets(data["exact"], cfg, training=False, split=split, take=take) if data["exact"] else None
        for variant, model in models.items():
            pred = predictor(model)
            res, sec, frames, k = evaluate(pred, t_test, task, 0, progress=progress)
            row = {"epe_teacher": res["epe"], "fps": frames / max(sec, 1e-9)}
            if e_test is not None:
                row["epe_truth"] = evaluate(pred, e_test, task, 0, progress=progress)[0]["epe"]
            rows.append((f"{LABELS[variant]} (student)", row))
            kept.append(k[0])
        rows.append((f"{teacher.describe()} (teacher)", teacher_row(teacher, t_test, e_test)))
        zero = lambda x: np.zeros((*x.shape[:-1], 2), np.float32)  # noqa: E731  (the scale of the errors)
        rows.append(("zero flow (no model)", {
            "epe_teacher": evaluate(zero, t_test, task, 0)[0]["epe"],
            "epe_truth": evaluate(zero, e_test, task, 0)[0]["epe"] if e_test is not None else None, "fps": None}))
        extra[teacher.describe()] = kept[0][1][0]
        if e_test is not None:
            extra["truth"] = next(iter(e_test))[1].numpy()[0]
    else:
        test = datasets(data["exact"], cfg, training=False, split=split, take=take)
        for variant, model in models.items():
            res, sec, frames, k = evaluate(predictor(model), test, task, num_classes, progress=progress)
            rows.append((LABELS[variant], {**res, "fps": frames / max(sec, 1e-9)}))
            kept.append(k[0])
        if task == "segmentation":  # scale: the most frequent class of the training labels everywhere
            common = int(np.argmax(class_counts(data["exact"], num_classes)))
            res = evaluate(lambda x: np.eye(num_classes, dtype=np.float32)[np.full(x.shape[:-1], common)], test,
                           task, num_classes)[0]
            rows.append((f"'{classes[common]}' everywhere", {**res, "fps": None}))
        if task == "colour":  # scale: "colouring" by copying the grey value to r, g, b
            res = evaluate(lambda x: np.repeat(np.asarray(x, np.float32) / 255, 3, -1), test, task, 0)[0]
            rows.append(("grey copied (no model)", {**res, "fps": None}))
    views = f"{cfg['eval_clips']} clips x {cfg['frames']} frames {h}x{w} per video, centre crop"
    lines = [f"results on {cfg['dataset']} {split} ({views}):"] + _table(task, rows) + _paper_lines(cfg)
    for line in lines:
        log(line)
    gif = clip_gif(run_dir.eval / f"{task}.gif", task, kept,
                   [n for n, _ in rows[:len(kept)]], num_classes, extra)
    log(f"picture: {gif}")
    atomic_write_json(run_dir.eval / "summary.json", {"config": cfg, "results": dict(rows),
                                                      "classes": classes})
    path, plain = export_model(models[cfg["variants"][0]], cfg, num_classes, args.export, args.quiet)
    log(f"exported {LABELS[cfg['variants'][0]]} to {path} (signature '{task}'; TF Serving layout)")
    log(f"done in {(time.time() - log.started) / 60:.1f} min")
    return {"config": cfg, "results": dict(rows), "export": path, "run_dir": str(run_dir.path),
            "model": plain, "trained": models, "gif": gif}


def teacher_row(teacher, t_test, e_test):
    """The teacher's EPE against the exact flow on the same clips, and its speed (flow pairs per second
    on the test clips' frames, as the student's frames per second)."""
    from tfvideo import metrics

    epe = metrics.EndPointError()
    seconds, pairs = 0.0, 0
    iterator = zip(t_test, e_test) if e_test is not None else ((b, None) for b in t_test)
    for t_batch, e_batch in iterator:
        frames = t_batch[0]["frames"].numpy()
        if e_batch is not None:
            if not np.array_equal(t_batch[0]["video_id"].numpy(), e_batch[0]["video_id"].numpy()):
                raise RuntimeError("teacher and exact test shards hold different videos in a different order")
            epe.update_state(e_batch[1], t_batch[1], sample_weight=e_batch[2] * t_batch[2])
        if seconds < 20:  # the teacher's speed on the first clips
            for clip in frames:
                start = time.perf_counter()
                teacher(clip)
                seconds += time.perf_counter() - start
                pairs += len(clip) - 1
    return {"epe_teacher": 0.0, "epe_truth": float(epe.result()) if e_test is not None else None,
            "fps": pairs / max(seconds, 1e-9)}
