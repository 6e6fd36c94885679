"""Train TVNet alone on optical-flow ground truth (seed 002, Sec. 5.1): ``python -m recipes.tvnet_middlebury``.

TVNet-50 (1 scale, 1 warp, 50 iterations) starts as exact TV-L1 and is trained with the end-point
error against ground truth by *batch* gradient descent (every training pair in every step), lr 0.05,
3000 iterations (Sec. 5.1). The EPE is reported before and after training, on the training pairs and
on held-out pairs, beside OpenCV's TV-L1 on the same pairs.

Data: ``--data-dir`` = a Middlebury root (``other-data/<scene>/frame10.png, frame11.png`` +
``other-gt-flow/<scene>/flow10.flo``; :func:`tfvideo.data.flow_sets.middlebury_items`), split
alternately into training and held-out scenes (``--table 1``: every scene trains and is evaluated, as
in the paper). Without it: built-in pairs -- consecutive frames of the ``motion`` set's clips (real
photographs, exact similarity-motion ground truth, :func:`tfvideo.data.motion.exact_flow`), ``--pairs``
for training and as many held out, and a shorter default schedule (``--steps 100``; the paper's is
3000) so the run takes minutes on a CPU.

Table 1 (``--table 1``)
-----------------------
The paper's Table 1: for each TVNet configuration S-W-N (S scales, W warps, N iterations; rows TVNet-10,
-30, -50 = 1-1-N, TVNet-3-1-10, TVNet-1-3-10) the average EPE (Eq. 14, the mean of the per-pair EPEs)
in three modes: ``none`` = "No training" (the frozen layer: exact TV-L1 with the paper's bilinear warps,
``u0 = 0``), ``u0`` = "Training u0" (only ``u0`` learns, the finite-difference kernels stay at their
initial taps: ``TVNet(trainable_kernels=False)``) and ``all`` = "All training" (``u0`` and the forward /
divergence kernels). Every trained row starts from the TV-L1 initialisation and is trained on the
training pairs with the EPE loss; the paper evaluates on its training pairs (the 8 Middlebury pairs with
ground truth), so do we, and the built-in data also gives the EPE on as many held-out pairs. The TV-L1
counterparts (TV-L1-S-W-N for every chosen configuration, plus TV-L1-5-5-50, the paper's reference) are
computed two ways, one column each: OpenCV's ``DualTVL1`` set to exactly S scales of 0.5, W warps and N
iterations per warp (one outer iteration, epsilon 0: no early stop, median filtering 1: none) and a
frozen ``TVNet(interpolation="bicubic")`` (the classical TV-L1, bicubic warps, which is what the paper's
TV-L1 rows differ by from "No training", Sec. 5.1). ``--configs 1-1-10,1-1-50`` and ``--modes none,u0,all``
choose rows and columns. The table is printed with the paper's figures beside ours (labelled) and written
to ``<run dir>/eval/table1.json`` and ``table1.md``; every trained row is its own harness run in
``<run dir>/rows/<S-W-N>_<mode>/`` (``--resume`` keeps the finished rows and resumes the unfinished one).
The table run exports nothing.

u0 (one field shared by all pairs). :class:`tfvideo.layers.TVNet` stores ``u0`` as a flow field at
``u0_size`` and resizes it, with its vectors scaled, to the coarsest pyramid level of each input. Here
``u0_size`` is the coarsest-level size of the largest training pair (by area), so ``u0`` is a per-pixel
field whatever the pair sizes: for pairs of that size (all of them on the built-in data) it is used as
it is; smaller pairs (Middlebury: 388x584 beside 480x640) get it resized to their own coarsest level.
This is one model for all pairs, as in the authors' code (one ``u0`` variable of the coarsest-level size
tiled over the batch; they resize every pair to 240x240 instead). It is *not* collapsed to one global
flow vector, and not one ``u0`` per pair (which would make "Training u0" a per-pair fit and leave nothing
for held-out pairs). The run's header says what ``u0`` is in each mode.

Optimiser. The paper's text says batch gradient descent, lr 0.05 (``--optimizer sgd``; the batch is every
training pair): the default with ``--data-dir`` (3000 steps) and without ``--table``. The authors' released
training script (github.com/LijieFan/tvnet, ``tvnet_supervised_training.py``) uses Adam, lr 0.005, 2000
iterations of random batches of 32 (``--optimizer adam``, lr 0.005 by default): the default of ``--table``
on the built-in pairs, whose schedule is short (50 steps). It matters for "Training u0": the loss is a
*mean* over pixels, so the gradient of each pixel of the ``u0`` field is about ``1 / (pixels of the
coarsest level)`` of a kernel tap's, and plain gradient descent barely moves it (measured on the built-in
pairs, 64x80, 60 steps of SGD lr 0.05: mean ``|u0|`` 2e-4 px, every EPE within 0.01 px of "No training";
Adam lr 0.005: TVNet-10 0.65 -> 0.54 (u0) -> 0.49 (all)); Adam normalises each weight's step.

Training runs on the shared harness (:func:`tfvideo.training.train`: run folder with ``--resume``,
``metrics.jsonl``, TensorBoard, last checkpoint) as a Keras model ``(frame0, frame1) -> flow`` with
:func:`tfvideo.losses.endpoint_error_loss`. Batch gradient descent: when all training pairs have one
size, every step is one batch of all of them; when sizes differ (real Middlebury), every step is
``len(pairs)`` micro-batches of one pair with Keras's ``gradient_accumulation_steps`` (the same
gradient: the mean of the per-pair EPE gradients), with the shared ``u0`` field described above.

Without ``--table`` the run ends by exporting the trained TVNet as a flow model (signature
``serving_default``: uint8 ``frame0``, ``frame1`` of any size -> ``flow``) in TF Serving's layout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from tfvideo import cli
from tfvideo.files import atomic_write_json, atomic_write_text

# ---------------------------------------------------------------------------------- the paper ----
PAPER_TABLE1 = {
    "caption": "seed 002, Table 1: average EPE (px) on the 8 Middlebury training pairs with ground truth; "
               "TVNets trained on those pairs with the EPE loss (Eq. 14), batch gradient descent, lr 0.05, "
               "3000 iterations (Sec. 5.1)",
    "columns": {"none": "No training", "u0": "Training u0", "all": "All training"},
    # S-W-N -> (No training, Training u0, All training)
    "tvnet": {"1-1-10": (3.47, 2.92, 1.24), "1-1-30": (3.01, 2.04, 0.40), "1-1-50": (2.93, 1.58, 0.35),
              "3-1-10": (2.00, 0.82, 0.52), "1-3-10": (2.81, 2.17, 0.46)},
    "tvl1": {"1-1-10": 3.48, "1-1-30": 3.02, "1-1-50": 2.86, "3-1-10": 1.79, "1-3-10": 2.74, "5-5-50": 0.66},
}
TABLE1_CONFIGS = ((1, 1, 10), (1, 1, 30), (1, 1, 50), (3, 1, 10), (1, 3, 10))  # the paper's TVNet rows
TVL1_REFERENCE = (5, 5, 50)  # the paper's TV-L1 (Sec. 5: "TV-L1" = TV-L1-5-5-50)
MODES = ("none", "u0", "all")
MODE_NAMES = {"none": "no training", "u0": "training u0", "all": "all training"}
ZFACTOR = 0.5  # TVNet's and the paper's pyramid factor


def config_key(config) -> str:
    return "-".join(str(v) for v in config)


def method_name(prefix, config) -> str:
    """The paper's row names: ``TVNet-10`` for 1-1-10, ``TVNet-3-1-10`` otherwise (Sec. 5)."""
    s, w, n = config
    return f"{prefix}-{n}" if s == w == 1 else f"{prefix}-{s}-{w}-{n}"


def parse_configs(text):
    """argparse ``type=``: ``S-W-N[,S-W-N...]`` -> tuple of (scales, warps, iterations)."""
    configs = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            values = tuple(int(v) for v in part.split("-"))
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) < 1:
            raise argparse.ArgumentTypeError(
                f"expected S-W-N[,S-W-N...] (scales-warps-iterations, integers >= 1, e.g. 1-1-10,3-1-10); "
                f"got {part!r}")
        if values not in configs:
            configs.append(values)
    return tuple(configs)


def parse_modes(text):
    """argparse ``type=``: a comma list of ``none``, ``u0``, ``all`` (kept in that order)."""
    modes = {m.strip() for m in str(text).split(",")}
    unknown = sorted(modes - set(MODES))
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"expected a comma list of none, u0, all; got {text!r}")
    return tuple(m for m in MODES if m in modes)


def build_parser():
    pos = cli.int_type(1)
    p = argparse.ArgumentParser(prog="python -m recipes.tvnet_middlebury",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", help="Middlebury root; default: the built-in pairs")
    p.add_argument("--table", type=int, choices=(1,),
                   help="reproduce the paper's Table 1 (every configuration x mode, TV-L1 rows, the paper's "
                        "figures beside) instead of training one configuration")
    p.add_argument("--configs", type=parse_configs,
                   help="--table: TVNet rows S-W-N,... (default: the paper's 1-1-10,1-1-30,1-1-50,3-1-10,"
                        "1-3-10)")
    p.add_argument("--modes", type=parse_modes, help="--table: columns among none,u0,all (default: all three)")
    p.add_argument("--steps", type=pos, help="gradient steps (paper: 3000; built-in default 100, --table 50)")
    p.add_argument("--steps-per-epoch", type=pos, help="steps between log lines and backups "
                                                       "(default: a tenth of --steps)")
    p.add_argument("--optimizer", choices=("sgd", "adam"),
                   help="sgd: the paper's batch gradient descent; adam: the authors' released script "
                        "(default: sgd, except adam for --table on the built-in pairs' short schedule)")
    p.add_argument("--lr", type=cli.float_type(), help="learning rate (default: 0.05 for sgd as in the paper, "
                                                       "0.005 for adam as in the authors' script)")
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
                   help="TF Serving export: <base_dir>/<model name> (not with --table)")
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
    if args.table is None:
        for flag, value in (("--configs", args.configs), ("--modes", args.modes)):
            if value is not None:
                return [f"{flag} goes with --table 1"]
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


def middlebury_pairs(root, split=True):
    """``(train, held_out, problems)``: scenes alternately (``split``) or all in ``train`` (and no held-out)."""
    from tfvideo.data.flow_sets import middlebury_items

    items, problems = middlebury_items(root)
    pairs = []
    for item in items:
        d = item.load()
        t = int(d["flow_frame_index"][0])
        pairs.append((d["frames"][t], d["frames"][t + 1], d["flows"][0], d["flow_valid"][0],
                      item.video_id))
    if not split:
        return pairs, [], problems
    return pairs[0::2], pairs[1::2] or pairs[:1], problems


def _grey(frame):
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 and frame.shape[-1] == 3 else frame


def opencv_matched(config):
    """OpenCV's DualTVL1 set to the algorithm of TVNet S-W-N: S scales of 0.5, W warps, exactly N
    iterations per warp (one outer iteration, epsilon 0: no early stop), median filtering 1 (= none);
    the other parameters (tau 0.25, lambda 0.15, theta 0.3) are OpenCV's defaults = TVNet's."""
    import cv2

    s, w, n = config
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    solver.setScalesNumber(s)
    solver.setWarpingsNumber(w)
    solver.setInnerIterations(n)
    solver.setOuterIterations(1)
    solver.setScaleStep(ZFACTOR)
    solver.setEpsilon(0.0)
    solver.setMedianFiltering(1)
    return solver


def opencv_epe(pairs, config=None):
    """Mean EPE of OpenCV's DualTVL1 (its defaults, or :func:`opencv_matched` to ``config``) on ``pairs``."""
    import cv2

    from tfvideo.ops import endpoint_error

    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if config is None else opencv_matched(config)
    errors = []
    for f0, f1, gt, valid, _ in pairs:
        g0, g1 = (_grey(np.asarray(f, np.uint8)) for f in (f0, f1))
        errors.append(float(endpoint_error(tvl1.calc(g0, g1, None), gt, mask=valid)))
    return float(np.mean(errors))


def pair_dataset(pairs, batch):
    """``((frame0, frame1), flow + validity)`` of every pair, ``batch`` pairs per element, repeated."""
    import tensorflow as tf

    def element(p):
        f0, f1, gt, valid = (np.asarray(v, np.float32) for v in p[:4])
        return (f0, f1), np.concatenate([np.nan_to_num(gt), valid[..., None]], axis=-1)

    if batch > 1:  # one size: one tensor per field
        xs, ys = zip(*(element(p) for p in pairs))
        f0, f1 = zip(*xs)
        return tf.data.Dataset.from_tensor_slices(((np.stack(f0), np.stack(f1)), np.stack(ys))) \
            .batch(batch).repeat()
    parts = [tf.data.Dataset.from_tensors(element(p)).batch(1) for p in pairs]
    data = parts[0]
    for part in parts[1:]:
        data = data.concatenate(part)
    return data.repeat()


def u0_field_size(sizes, scales):
    """``u0_size`` for pairs of ``sizes``: the coarsest-level size of the largest pair (module docstring)."""
    from tfvideo.layers.tvnet import pyramid_sizes

    h, w = max(sizes, key=lambda hw: (hw[0] * hw[1], hw))
    return pyramid_sizes(h, w, scales, ZFACTOR)[-1]


def make_optimizer(name, lr, micro):
    import keras

    accumulate = micro if micro > 1 else None
    if name == "adam":
        return keras.optimizers.Adam(lr, gradient_accumulation_steps=accumulate)
    return keras.optimizers.SGD(lr, gradient_accumulation_steps=accumulate)


def build_flow_model(config, mode, sizes, *, optimizer, lr, strategy, micro=1, interpolation="bilinear"):
    """``(model, tvnet)``: Keras model ``(frame0, frame1) -> flow`` around a TVNet S-W-N in ``mode``.

    ``mode``: ``"none"`` (frozen: exact TV-L1, ``u0 = 0``), ``"u0"`` (only ``u0`` trainable) or ``"all"``
    (``u0`` and the kernels). ``u0`` is a field of :func:`u0_field_size` (module docstring). Compiled with
    the EPE loss and ``optimizer``; ``micro`` > 1: that many micro-batches per step (gradient accumulation,
    for pairs of different sizes: one pair per micro-batch).
    """
    import keras

    from tfvideo.layers import TVNet
    from tfvideo.losses import endpoint_error_loss

    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; got {mode!r}")
    s, w, n = config
    sizes = sorted(set(sizes))
    one_size = len(sizes) == 1
    with strategy.scope():
        shape = (*sizes[0], 3) if one_size else (None, None, 3)
        frame0, frame1 = keras.Input(shape, name="frame0"), keras.Input(shape, name="frame1")
        tvnet = TVNet(scales=s, warps=w, iterations=n, trainable_kernels=mode == "all",
                      u0_size=u0_field_size(sizes, s), interpolation=interpolation, check_finite=True,
                      name="tvnet")
        model = keras.Model([frame0, frame1], tvnet([frame0, frame1]), name="tvnet_flow")
        if mode == "none":
            tvnet.trainable = False
        model.compile(make_optimizer(optimizer, lr, micro), loss=endpoint_error_loss,
                      jit_compile=False)
    return model, tvnet


def mean_epe(tvnet, pairs):
    """Mean over ``pairs`` of each pair's EPE over its valid pixels (Eq. 14); pairs of one size run as one
    batch. ``None`` for no pairs."""
    import tensorflow as tf

    from tfvideo.ops import endpoint_error

    if not pairs:
        return None
    flow_fn = tf.function(lambda a, b: tvnet([a, b]), reduce_retracing=True)
    errors = {}
    by_size = {}
    for k, p in enumerate(pairs):
        by_size.setdefault(tuple(p[0].shape[:2]), []).append(k)
    for ks in by_size.values():
        f0, f1, gt, valid = (np.stack([np.asarray(pairs[k][i], np.float32) for k in ks]) for i in range(4))
        per_pixel = endpoint_error(flow_fn(f0, f1), np.nan_to_num(gt), mask=valid, reduce=False).numpy()
        for k, epe, v in zip(ks, per_pixel, valid):
            errors[k] = float(epe[v > 0].mean()) if (v > 0).any() else 0.0
    return float(np.mean([errors[k] for k in range(len(pairs))]))


# ------------------------------------------------------------------------------------ Table 1 ----
def u0_description(mode, u0_size, sizes):
    """What ``u0`` is in ``mode`` (printed in the run's header); ``u0_size`` an (h, w) or ``{row name: (h, w)}``."""
    if mode == "none":
        return "u0 = 0 (exact TV-L1; kernels at their initial taps, nothing trained)"
    if isinstance(u0_size, dict):
        field = "(" + ", ".join(f"{name} {h}x{w}x2" for name, (h, w) in u0_size.items()) + ")"
    else:
        field = f"of {u0_size[0]}x{u0_size[1]}x2"
    where = ("the coarsest pyramid level of the pairs" if len(set(sizes)) == 1 else
             "the coarsest level of the largest pair, resized with its vectors scaled to each pair's coarsest "
             "level")
    return (f"one trainable u0 field {field} at {where}, shared by all pairs, starting at 0"
            + ("; kernels fixed at their initial taps" if mode == "u0" else
               "; plus the forward and divergence kernels of every (scale, warp, iteration)"))


def run_table(train_pairs, held_out, *, configs=TABLE1_CONFIGS, modes=MODES, steps, lr, optimizer="sgd",
              run_dir, strategy, steps_per_epoch=None, resume=False, verbose=0, log=print,
              data="", tvl1_configs=None):
    """The paper's Table 1 on ``train_pairs`` (and ``held_out``); see the module docstring.

    Every trained row is a harness run (:func:`tfvideo.training.train`) in ``run_dir/rows/<S-W-N>_<mode>``
    (with ``resume``, a row whose ``eval/row.json`` exists is read back instead of trained again).

    Returns:
      ``(table, layers)``: ``table`` a JSON-able dict (``tvnet`` rows: ``{config: {"name", "paper", mode:
      {"train", "held_out", "seconds"}}}``, ``tvl1`` rows: ``{config: {"name", "paper", "opencv": {...},
      "tvnet_bicubic": {...}}}``, and the settings); ``layers`` maps ``(config, mode)`` to the TVNet layer
      of each row computed in this call.
    """
    from tfvideo import training

    run_dir = training.RunDir(run_dir) if not isinstance(run_dir, training.RunDir) else run_dir
    sizes = sorted({tuple(p[0].shape[:2]) for p in train_pairs})
    one_size = len(sizes) == 1
    n = len(train_pairs)
    micro = 1 if one_size else n
    per_epoch = steps_per_epoch or max(1, steps // 10)
    epochs = math.ceil(steps / per_epoch)
    configs = tuple(tuple(c) for c in configs)
    tvl1_configs = tuple(tuple(c) for c in (tvl1_configs if tvl1_configs is not None
                                             else configs + ((TVL1_REFERENCE,) if TVL1_REFERENCE not in configs
                                                             else ())))
    u0 = {config_key(c): {m: u0_description(m, u0_field_size(sizes, c[0]), sizes) for m in modes}
          for c in configs}
    table = {"caption": "Table 1 (seed 002, Sec. 5.1) reproduced", "data": data, "training_pairs": n,
             "held_out_pairs": len(held_out), "sizes": [list(hw) for hw in sizes],
             "steps": epochs * per_epoch, "optimizer": optimizer, "lr": lr,
             "micro_batches_per_step": micro, "modes": list(modes), "u0": u0,
             "paper": PAPER_TABLE1, "tvnet": {}, "tvl1": {}}
    layers = {}
    train_data = None
    for config in configs:
        key = config_key(config)
        row = {"name": method_name("TVNet", config), "paper": PAPER_TABLE1["tvnet"].get(key)}
        for mode in modes:
            started = time.time()
            row_dir = run_dir.path / "rows" / f"{key}_{mode}"
            saved = row_dir / "eval" / "row.json"
            if resume and saved.exists():
                row[mode] = json.loads(saved.read_text(encoding="utf-8"))
                log(f"{row['name']:<14} {MODE_NAMES[mode]:<13} read back from {saved}")
                continue
            model, tvnet = build_flow_model(config, mode, sizes, optimizer=optimizer, lr=lr,
                                            strategy=strategy, micro=micro)
            if mode != "none":
                if train_data is None:
                    train_data = pair_dataset(train_pairs, n if one_size else 1)
                cfg = {"table": 1, "tvnet": list(config), "mode": mode, "steps": epochs * per_epoch,
                       "steps_per_epoch": per_epoch, "optimizer": optimizer, "lr": lr, "pairs": n,
                       "one_size": one_size, "u0_size": list(tvnet.u0_size), "data": data}
                training.train(model, train_data, run_dir=training.RunDir(row_dir), epochs=epochs,
                               steps_per_epoch=per_epoch * micro, config=cfg, monitor=None,
                               backup_every_steps=per_epoch * micro, tensorboard=False, verbose=verbose)
                tvnet.trainable = False  # evaluation: the plain forward loop (same flow, no adjoint storage)
            result = {"train": mean_epe(tvnet, train_pairs), "held_out": mean_epe(tvnet, held_out),
                      "seconds": round(time.time() - started, 1), "u0_size": list(tvnet.u0_size),
                      "u0_mean_abs": float(np.mean(np.abs(tvnet.u0.numpy())))}
            if mode != "none":
                atomic_write_json(row_dir / "eval" / "row.json", result)
            row[mode] = result
            layers[(config, mode)] = tvnet
            ours = f"train {result['train']:.3f}" + (f", held out {result['held_out']:.3f}"
                                                     if result["held_out"] is not None else "")
            paper = (f" (paper {row['paper'][MODES.index(mode)]:.2f})" if row["paper"] else "")
            log(f"{row['name']:<14} {MODE_NAMES[mode]:<13} EPE {ours}{paper}  [{result['seconds']:.0f} s]")
        table["tvnet"][key] = row
    for config in tvl1_configs:
        key = config_key(config)
        started = time.time()
        _, bicubic = build_flow_model(config, "none", sizes, optimizer=optimizer, lr=lr, strategy=strategy,
                                      interpolation="bicubic")
        row = {"name": method_name("TV-L1", config), "paper": PAPER_TABLE1["tvl1"].get(key),
               "opencv": {"train": opencv_epe(train_pairs, config),
                          "held_out": opencv_epe(held_out, config) if held_out else None},
               "tvnet_bicubic": {"train": mean_epe(bicubic, train_pairs), "held_out": mean_epe(bicubic, held_out)}}
        table["tvl1"][key] = row
        paper = f" (paper {row['paper']:.2f})" if row["paper"] is not None else ""
        log(f"{row['name']:<14} OpenCV {row['opencv']['train']:.3f}, frozen bicubic TVNet "
            f"{row['tvnet_bicubic']['train']:.3f}{paper}  [{time.time() - started:.0f} s]")
    return table, layers


def _fmt(value, width=6):
    return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"


def _ours(result, held):
    if result is None:
        return "-"
    text = f"{result['train']:.2f}"
    return text + (f" [{result['held_out']:.2f}]" if held and result.get("held_out") is not None else "")


def table_lines(table, markdown=False):
    """The table as text lines (or a markdown table): ours beside the paper's figures, labelled."""
    modes = table["modes"]
    held = bool(table["held_out_pairs"])
    where = (f"ours: {table['data']}; {table['training_pairs']} training pairs"
             + (f" [{table['held_out_pairs']} held out]" if held else "")
             + f", {table['steps']} steps of {table['optimizer']} lr {table['lr']:g}"
             + (f" ({table['micro_batches_per_step']} micro-batches each)" if table["micro_batches_per_step"] > 1
                else ""))
    paper = "paper: Middlebury, 8 training pairs, 3000 steps of batch gradient descent lr 0.05 (Table 1)"
    unit = ("average EPE in px on the training pairs" + (" [on the held-out pairs]" if held else "")
            + "; '-' = not in the paper")
    cols = [PAPER_TABLE1["columns"][m] for m in modes]
    lines = [f"Table 1 (seed 002, Sec. 5.1): {unit}", where, paper]
    if markdown:
        lines = [f"**{lines[0]}**", "", f"- {where}", f"- {paper}", ""]
        lines.append("| method | " + " | ".join(f"ours: {c}" for c in cols) + " | "
                     + " | ".join(f"paper: {c}" for c in cols) + " |")
        lines.append("|---" * (1 + 2 * len(cols)) + "|")
        for row in table["tvnet"].values():
            p = row["paper"]
            lines.append(f"| {row['name']} | " + " | ".join(_ours(row.get(m), held) for m in modes) + " | "
                         + " | ".join(_fmt(p[MODES.index(m)], 0) if p else "-" for m in modes) + " |")
        lines += ["", "| method | ours: OpenCV DualTVL1 S-W-N | ours: frozen bicubic TVNet | paper |",
                  "|---|---|---|---|"]
        for row in table["tvl1"].values():
            lines.append(f"| {row['name']} | {_ours(row['opencv'], held)} | {_ours(row['tvnet_bicubic'], held)} | "
                         f"{_fmt(row['paper'], 0).strip()} |")
        return lines
    w = 16 if held else 8
    lines.append(f"  {'method':<14}" + "".join(f"{'ours: ' + c:>{max(w, len(c) + 6) + 2}}" for c in cols)
                 + "   " + "".join(f"{'paper: ' + c:>{len(c) + 9}}" for c in cols))
    for row in table["tvnet"].values():
        p = row["paper"]
        lines.append(f"  {row['name']:<14}"
                     + "".join(f"{_ours(row.get(m), held):>{max(w, len(c) + 6) + 2}}" for m, c in zip(modes, cols))
                     + "   " + "".join(f"{_fmt(p[MODES.index(m)] if p else None):>{len(c) + 9}}"
                                       for m, c in zip(modes, cols)))
    head = ["ours: OpenCV DualTVL1 S-W-N", "ours: frozen bicubic TVNet"]
    lines.append(f"  {'method':<14}" + "".join(f"{h:>{len(h) + 2}}" for h in head) + f"{'paper':>9}")
    for row in table["tvl1"].values():
        lines.append(f"  {row['name']:<14}" + f"{_ours(row['opencv'], held):>{len(head[0]) + 2}}"
                     + f"{_ours(row['tvnet_bicubic'], held):>{len(head[1]) + 2}}" + f"{_fmt(row['paper']):>9}")
    return lines


def main_table(args, parser, log, strategy):
    """``--table 1`` (module docstring)."""
    from tfvideo import training

    if args.data_dir:
        train_pairs, held_out, problems = middlebury_pairs(args.data_dir, split=False)
        if not train_pairs:
            parser.error(f"--data-dir {args.data_dir}: no Middlebury scene with ground truth "
                         "(other-data/<scene>/frame10.png, frame11.png + other-gt-flow/<scene>/flow10.flo)")
        for path, reason in problems:
            log(f"skipped {path}: {reason}")
        data = f"Middlebury ({args.data_dir}), trained and evaluated on the same pairs as in the paper"
        steps = args.steps or 3000
    else:
        size = args.size
        train_pairs = builtin_pairs(args.pairs, size, args.seed, 0)
        held_out = builtin_pairs(args.pairs, size, args.seed, 1000)
        data = (f"built-in pairs (motion clips, exact flow, {size[0]}x{size[1]}) -- NOT Middlebury, not "
                "comparable with the paper in absolute terms")
        steps = args.steps or 50
    if args.dry_run:
        steps = 1
    args.optimizer = args.optimizer or ("sgd" if args.data_dir else "adam")
    lr = args.lr or (0.005 if args.optimizer == "adam" else 0.05)
    configs = args.configs or TABLE1_CONFIGS
    modes = args.modes or MODES
    chief = training.is_chief(strategy)
    try:
        run_dir = training.RunDir(args.run_dir).claim(chief)
    except RuntimeError as err:
        parser.error(str(err))
    import keras

    keras.utils.set_random_seed(args.seed)
    sizes = sorted({tuple(p[0].shape[:2]) for p in train_pairs})
    run_dir.write_config({"table": 1, "data": data, "configs": [config_key(c) for c in configs],
                          "modes": list(modes), "steps": steps, "optimizer": args.optimizer, "lr": lr,
                          "pairs": len(train_pairs), "seed": args.seed})
    log(f"Table 1: {data}: {len(train_pairs)} training pairs {', '.join('x'.join(map(str, s)) for s in sizes)}"
        f", {len(held_out)} held out; {steps} steps of {args.optimizer} lr {lr:g} per trained row (paper: "
        f"3000, lr 0.05); run dir {run_dir.path}")
    fields = {method_name("TVNet", c): u0_field_size(sizes, c[0]) for c in configs}
    for mode in modes:
        log(f"  {MODE_NAMES[mode]}: {u0_description(mode, fields, sizes)}")
    table, layers = run_table(train_pairs, held_out, configs=configs, modes=modes, steps=steps, lr=lr,
                         optimizer=args.optimizer, run_dir=run_dir, strategy=strategy,
                         steps_per_epoch=args.steps_per_epoch, resume=args.resume,
                         verbose=0 if args.quiet else 2, log=log, data=data)
    table["minutes"] = round((time.time() - log.started) / 60, 1)
    print("\n".join(table_lines(table)), flush=True)
    if chief:
        atomic_write_json(run_dir.eval / "table1.json", table)
        atomic_write_text(run_dir.eval / "table1.md", "\n".join(table_lines(table, markdown=True)) + "\n")
        log(f"wrote {run_dir.eval / 'table1.json'} and table1.md; done in {table['minutes']:.1f} min")
    return {"table": table, "run_dir": str(run_dir.path), "layers": layers}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for problem in check_args(args):
        parser.error(problem)
    log = cli.timed_log()

    from tfvideo import training  # the strategy first (before anything starts TensorFlow's runtime)

    strategy = training.resolve_strategy("auto")
    if args.table:
        return main_table(args, parser, log, strategy)
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
        h, w = args.size
        train_pairs = builtin_pairs(args.pairs, (h, w), args.seed, 0)
        test_pairs = builtin_pairs(args.pairs, (h, w), args.seed, 1000)
        source = (f"built-in pairs (motion clips, exact flow, {h}x{w}) -- NOT Middlebury; pass "
                  "--data-dir for the real data")
        steps = args.steps or 100
    if args.dry_run:
        steps = 1
    args.optimizer = args.optimizer or "sgd"
    lr = args.lr or (0.005 if args.optimizer == "adam" else 0.05)
    chief = training.is_chief(strategy)
    try:
        run_dir = training.RunDir(args.run_dir).claim(chief)
    except RuntimeError as err:  # another live process trains there
        parser.error(str(err))

    import keras
    import tensorflow as tf

    from tfvideo import export

    keras.utils.set_random_seed(args.seed)
    log(f"data: {source}: {len(train_pairs)} training pairs, {len(test_pairs)} held out")
    sizes = sorted({tuple(p[0].shape[:2]) for p in train_pairs})
    one_size = len(sizes) == 1
    n = len(train_pairs)
    per_epoch = args.steps_per_epoch or max(1, steps // 10)
    epochs = math.ceil(steps / per_epoch)
    micro = 1 if one_size else n  # micro-batches per gradient step
    config = (args.scales, args.warps, args.iterations)
    cfg = {"source": source, "steps": epochs * per_epoch, "steps_per_epoch": per_epoch, "lr": lr,
           "optimizer": args.optimizer, "tvnet": list(config), "pairs": n, "one_size": one_size,
           "seed": args.seed}
    model, tvnet = build_flow_model(config, "all", sizes, optimizer=args.optimizer, lr=lr, strategy=strategy,
                                    micro=micro)
    log(f"u0: {u0_description('all', tvnet.u0_size, sizes)}")
    before = {"train": mean_epe(tvnet, train_pairs), "held_out": mean_epe(tvnet, test_pairs)}
    reference = {"train": opencv_epe(train_pairs), "held_out": opencv_epe(test_pairs)}
    log(f"EPE before training: train {before['train']:.3f} px, held out {before['held_out']:.3f} px "
        f"(OpenCV TV-L1: {reference['train']:.3f} / {reference['held_out']:.3f})")
    log(f"training {method_name('TVNet', config)} ({config_key(config)}) with the "
        f"EPE loss: {cfg['steps']} steps of batch gradient descent ({args.optimizer}) over {n} pairs"
        f"{'' if one_size else f' ({n} accumulated micro-batches each: sizes differ)'}, lr {lr:g}; "
        f"run dir {run_dir.path}")
    training.train(model, pair_dataset(train_pairs, n if one_size else 1), run_dir=run_dir,
                   epochs=epochs, steps_per_epoch=per_epoch * micro, config=cfg, monitor=None,
                   backup_every_steps=per_epoch * micro, verbose=0 if args.quiet else "auto")
    after = {"train": mean_epe(tvnet, train_pairs), "held_out": mean_epe(tvnet, test_pairs)}
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
