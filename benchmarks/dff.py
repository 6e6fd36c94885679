"""Deep Feature Flow's speed-up over per-frame inference, measured beside Eq. 7, in one run.

    python benchmarks/dff.py [--quick] [--task detection] [--backbone small --flow tiny --size 128x256] [--frames N]
                             [--repeats R] [--intervals 1,2,5,10] [--warp runner,eager] [--json out.json]

Seed 003 (Zhu et al., CVPR 2017), Sec. 3: with a key frame every ``l`` frames, Algorithm 1 runs the
feature network N_feat on key frames only and the flow network F, the warp W (Eq. 3) and the task
network N_task on the others. Eq. 5 ``r = (O(F) + O(W) + O(N_task)) / (O(N_feat) + O(N_task))`` and
Eq. 7 ``s = l / (1 + (l - 1) r)`` predict its speed-up over per-frame inference. This script measures
that speed-up and sets it beside Eq. 7 computed from a *measured* r, all in the same run:

* **measured speed-up**: ``DFFVideoRunner(...).run(frames)`` (Algorithm 1 as the package runs it, the
  outputs fetched to NumPy) over the same sequence for each ``l``, all runners on the three
  ``tf.function`` s of one ``DFFVideoRunner.from_model(model)`` (traced once); time per frame. The **per-frame baseline is the runner with l = 1** (N_feat + N_task on every frame,
  the same loop, so the loop's own overhead is in both). ``s(l) = t(l = 1) / t(l)``.
* **measured r**: the runner's own three parts (the very ``tf.function`` s it calls) timed separately
  on the same frames, after a warm-up, the median of the rounds: ``t_feat`` (N_feat on a frame),
  ``t_F`` (the flow network on the frame and its key frame), ``t_W`` (the runner's warp of the key
  features), ``t_task`` (N_task cropped to the frame, fetched to NumPy);
  ``r_measured = (t_F + t_W + t_task) / (t_feat + t_task)``. Each call is timed on its own, but in one
  pass over the frames in the runner's order (N_feat, F, W, N_task on each frame): timing each part
  in a pass of its own (one network over and over, its weights hot in the cache) made Eq. 7 overshoot
  the measured speed-up of the small networks by 12-27% at l = 2-10 in a first version of this script.
* beside it, r from FLOPs (:func:`tfvideo.models.dff.cost_model` on the same built networks) and, for
  the paper's configurations (ResNet-50/101 x FlowNet S/Half/Inception), Table 2's ``1 / r`` (its
  Eq. 6 approximation ``O(F) / O(N_feat)``, at 1024 x 2048).

``--task detection``: N_task is R-FCN (:mod:`tfvideo.models.rfcn`) with its detection head (RPN
proposals, PS-RoI pooling, per-class NMS), whose cost, not in the FLOPs of Eq. 5 (it has no
parameters), is in ``t_task``: on CPU-sized networks it is what limits DFF's speed-up.

``--warp``: ``runner`` (the default) is the runner as it is (its warp ``runner._warp``, a
``tf.function`` like the other parts); ``eager`` adds, in the same rounds, the same runner with the
warp replaced by a :class:`~tfvideo.layers.FeatureWarp` layer called eagerly, op by op (what the
runner did before it wrapped W in a ``tf.function``): the cost of Python and per-op overhead in one
small part, which shows how fast it eats DFF's speed-up when the networks are small.

Each round interleaves everything frame by frame (``--chunk 1``): the part timings and every runner
(each mode and ``l``) advance one frame in turn, in an order that rotates, so that the load of a shared
machine, which changes over seconds, falls on all of them alike (``--chunk 0`` runs whole sequences one
after the other: with other jobs on the machine, the ResNet-50 rows then scattered by up to 2x from
round to round and meas/pred reached 1.3). The table gives medians over rounds. Weights are random
(``weights=None``, no download): the speed does not depend on them. Frames: a ``motion``-set clip
(a real photograph filmed by a moving camera). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.checks import parse_size  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402

DEFAULT_CONFIGS = (("resnet50", "s", (256, 512)), ("small", "tiny", (128, 256)))
DEFAULT_FLOW = {"resnet50": "s", "resnet101": "s", "small": "tiny"}
DEFAULT_SIZE = {"resnet50": (256, 512), "resnet101": (256, 512), "small": (128, 256)}
# per backbone: (frames, rounds); the small net is cheap, so it gets more of both (less noise)
DEFAULT_WORK = {"resnet50": (20, 3), "resnet101": (20, 3), "small": (40, 15)}
QUICK_WORK = {"resnet50": (10, 1), "resnet101": (10, 1), "small": (20, 5)}
WARP_MODES = ("runner", "eager")
WARP_LABEL = {"runner": "runner", "eager": "eager W"}


def log(msg):
    print(msg, flush=True)


def clip(num_frames, size):
    from tfvideo.data import motion

    spec = motion.clip_spec(motion.CLASSES[0], seed=0, index=0, num_frames=num_frames, size=size)
    return motion.make_clip(spec)


def table2_r(backbone, flow):
    """Table 2's r (Eq. 6: ``1 / TABLE2``) for a paper configuration, else None."""
    from tfvideo.models.dff import TABLE2

    ratio = TABLE2.get(backbone, {}).get(flow)
    return None if ratio is None else 1.0 / ratio


def measured_r(t_feat, t_flow, t_warp, t_task):
    """Eq. 5 with times in place of FLOPs."""
    return (t_flow + t_warp + t_task) / (t_feat + t_task)


def part_steps(runner, frames, key_every, warps, totals):
    """Times the parts of ``runner`` on ``frames``, one frame per step (a generator: it yields after each
    frame), adding seconds to ``totals[part]``. The callables are the runner's, with the inputs it gives
    them (key frame = the first of each interval of ``key_every``), each call timed on its own but all
    of them on each frame in the runner's order N_feat -> F -> W -> N_task (so caches and the machine's
    load are the runner's)."""
    clock = time.perf_counter
    key = key_features = None
    for i, frame in enumerate(frames):
        frame = tf.convert_to_tensor(np.asarray(frame)[None])
        t = clock()
        features = runner.key_features(frame)
        totals["feat"] += clock() - t
        if i % key_every == 0:
            key, key_features = frame, features
        t = clock()
        flow, scale = runner.motion(frame, key)
        totals["flow"] += clock() - t
        for mode, warp in warps.items():
            t = clock()
            warped = warp(key_features, flow, scale)
            totals[f"warp_{mode}"] += clock() - t
        t = clock()
        np.asarray(runner.task(warped, frame))
        totals["task"] += clock() - t
        yield i


def interleaved(steppers, steps, chunk, shift):
    """Advances every iterator of ``steppers`` by ``chunk`` steps in turn (the order rotating by one at
    each turn, starting at ``shift``) until each has made ``steps``; returns the seconds spent inside
    each one's ``next``."""
    clock = time.perf_counter
    names = list(steppers)
    spent = dict.fromkeys(names, 0.0)
    for turn, first in enumerate(range(0, steps, chunk)):
        k = (shift + turn) % len(names)
        for name in names[k:] + names[:k]:
            it = steppers[name]
            for _ in range(min(chunk, steps - first)):
                t = clock()
                next(it)
                spent[name] += clock() - t
    return spent


def measure(backbone, flow, size, *, frames, rounds, intervals, warp_modes, num_classes, chunk=1,
            task="segmentation"):
    """Everything for one configuration: FLOPs, part times, runner times per mode and ``l``."""
    import keras

    from tfvideo.models.dff import cost_model, dff_segmenter, speedup
    from tfvideo.layers.feature_warp import FeatureWarp
    from tfvideo.models.dff_runner import DFFVideoRunner
    from tfvideo.models.rfcn import dff_detector

    label = f"{backbone}+{flow} {size[0]}x{size[1]}" + (" R-FCN" if task == "detection" else "")
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    build = dff_detector if task == "detection" else dff_segmenter
    model = build(backbone, num_classes, flow=flow, frame_size=size, weights=None)
    cost = cost_model(*(model.get_layer(n) for n in ("n_feat", "n_task", "flownet")))
    video = clip(frames, size)
    ragged = [l for l in intervals if frames % l]
    if ragged:
        log(f"[{label}] warning: {frames} frames is not a whole number of key intervals for l = "
            f"{ragged}: Eq. 7 assumes one key frame per l frames")

    # one set of tf.functions (traced once) for every runner and for the part timings
    base = DFFVideoRunner.from_model(model, key_interval=1)
    layer = FeatureWarp()
    warps = {"runner": base._warp, "eager": lambda f, flow, s: layer([f, flow, s])}  # runner._warp's call
    warps = {m: warps[m] for m in warp_modes}
    runners = {}
    for mode in warp_modes:
        for l in intervals:
            runner = DFFVideoRunner(base.key_features, base.motion, base.task, key_interval=l)
            runner._warp = warps[mode]
            runners[mode, l] = runner
    key_every = max(intervals)
    # warm-up: trace every tf.function, then one untimed pass of each runner
    warm = dict.fromkeys(("feat", "flow", "task", *(f"warp_{m}" for m in warp_modes)), 0.0)
    for _ in part_steps(base, video[:2], 2, warps, warm):
        pass
    for runner in runners.values():
        for _ in runner.run(video[:3]):
            pass
    log(f"[{label}] built and warmed up in {time.perf_counter() - t0:.1f} s: "
        f"{frames} frames, {rounds} round{'s' * (rounds != 1)}, l = {', '.join(map(str, intervals))}, "
        f"W {', '.join(warp_modes)}, interleaved every {chunk or frames} frame(s)")

    parts = {k: [] for k in ("feat", "flow", "task", *(f"warp_{m}" for m in warp_modes))}
    runs = {key: [] for key in runners}
    for k in range(rounds):
        start = time.perf_counter()
        totals = dict.fromkeys(parts, 0.0)
        steppers = {"parts": part_steps(base, video, key_every, warps, totals)}
        steppers.update((key, runner.run(video)) for key, runner in runners.items())
        spent = interleaved(steppers, frames, chunk or frames, k)
        for name, value in totals.items():
            parts[name].append(value / frames)
        for key in runners:
            runs[key].append(spent[key] / frames)
        log(f"[{label}] round {k + 1}/{rounds} in {time.perf_counter() - start:.1f} s: per frame "
            + ", ".join(f"l={l} ({WARP_LABEL[m]}) {1e3 * runs[m, l][-1]:.1f} ms" for m, l in runners)
            + f"; N_feat {1e3 * parts['feat'][-1]:.1f} ms")

    med = {name: statistics.median(v) for name, v in parts.items()}
    t2 = table2_r(backbone, flow)
    result = {"task": task, "backbone": backbone, "flow": flow, "size": list(size), "frames": frames, "rounds": rounds,
              "chunk": chunk or frames,
              "num_classes": num_classes, "gflops": {k: cost[k] / 1e9 for k in ("feat", "task", "flow",
                                                                               "scale", "warp")},
              "r_flops": cost["r"], "r_approx_flops": cost["r_approx"], "r_table2": t2,
              "ms_per_frame_parts": {k: 1e3 * v for k, v in med.items()}, "modes": {}}
    for mode in warp_modes:
        r_meas = measured_r(med["feat"], med["flow"], med[f"warp_{mode}"], med["task"])
        per_l = {l: statistics.median(runs[mode, l]) for l in intervals}
        baseline = per_l[1] if 1 in per_l else med["feat"] + med["task"]
        rows = []
        for l in intervals:
            s_meas, s_pred = baseline / per_l[l], speedup(r_meas, l)
            rows.append({"l": l, "ms_per_frame": 1e3 * per_l[l], "s_measured": s_meas,
                         "s_eq7_r_measured": s_pred, "measured_over_predicted": s_meas / s_pred,
                         "s_eq7_r_flops": speedup(cost["r"], l),
                         "s_eq7_r_table2": None if t2 is None else speedup(t2, l),
                         "ms_per_frame_rounds": [1e3 * t for t in runs[mode, l]]})
        result["modes"][mode] = {
            "r_measured": r_meas, "rows": rows,
            "baseline": "runner with l = 1" if 1 in per_l else "t_feat + t_task (no l = 1 run)",
            # what the loop adds per frame beyond N_feat + N_task (frame conversion, generator, fetch)
            "loop_overhead_ms": 1e3 * (baseline - med["feat"] - med["task"]) if 1 in per_l else None}
    return result


def report(res):
    fmt = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    h, w = res["size"]
    p = res["ms_per_frame_parts"]
    g = res["gflops"]
    task = " (R-FCN detection: N_task includes its parameter-free head)" if res.get("task") == "detection" else ""
    print(f"\n{res['backbone']} + flownet {res['flow']}, {h}x{w}{task}, {res['frames']} frames, "
          f"{res['rounds']} round{'s' * (res['rounds'] != 1)} (medians)")
    warps = " ".join(f"{p[f'warp_{m}']:.1f} ({WARP_LABEL[m]})" for m in res["modes"])
    print(f"  ms per frame: N_feat {p['feat']:.1f} | F {p['flow']:.1f} | W {warps} | N_task {p['task']:.1f}")
    print(f"  GFLOP per frame: N_feat {g['feat']:.3f} | F {g['flow']:.3f} | W {g['warp']:.4f} | "
          f"N_task {g['task']:.4f}")
    t2 = res["r_table2"]
    t2_text = "- (not a paper configuration)" if t2 is None else f"{t2:.3f} (1/{1 / t2:.2f}, Eq. 6)"
    meas = " | ".join(f"{m['r_measured']:.3f} ({WARP_LABEL[k]})" for k, m in res["modes"].items())
    print(f"  r: FLOPs {res['r_flops']:.3f} (Eq. 6 approx {res['r_approx_flops']:.3f}) | Table 2 {t2_text}"
          f" | measured {meas}")
    for mode, m in res["modes"].items():
        if m["loop_overhead_ms"] is not None:
            print(f"  loop overhead at l = 1 ({WARP_LABEL[mode]}): {m['loop_overhead_ms']:+.1f} ms per frame "
                  f"(runner l=1 minus N_feat + N_task)")
    header = (f"  {'runner':15s} {'l':>3s} {'ms/frame':>9s} {'s meas':>7s} {'s(r_meas)':>9s} {'meas/pred':>9s} "
              f"{'s(r_FLOPs)':>10s} {'s(Table2)':>9s}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for mode, m in res["modes"].items():
        for row in m["rows"]:
            print(f"  {WARP_LABEL[mode]:15s} {row['l']:3d} {row['ms_per_frame']:9.1f} {row['s_measured']:7.2f} "
                  f"{row['s_eq7_r_measured']:9.2f} {row['measured_over_predicted']:9.2f} "
                  f"{row['s_eq7_r_flops']:10.2f} {fmt(row['s_eq7_r_table2'], '.2f'):>9s}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: 10 frames, 1 round (small: 20 frames, 5 rounds)")
    p.add_argument("--backbone", choices=("resnet50", "resnet101", "small"),
                   help="one configuration instead of the defaults (resnet50+s 256x512, small+tiny 128x256)")
    p.add_argument("--flow", choices=("s", "half", "inception", "tiny"),
                   help="flow network (default: s for the ResNets, tiny for small)")
    p.add_argument("--size", type=parse_size, help="HxW, multiples of 128 (default: 256x512 for the ResNets, "
                                                   "128x256 for small)")
    p.add_argument("--frames", type=int, help="frames in the sequence (default 20 for the ResNets, 40 for small; "
                                              "a multiple of every l)")
    p.add_argument("--repeats", type=int, help="timed rounds (default 3 for the ResNets, 15 for small)")
    p.add_argument("--intervals", default="1,2,5,10", help="key intervals l (1 = the per-frame baseline)")
    p.add_argument("--warp", default="runner", help="W modes: runner (the runner as it is), eager (its W "
                                                     "replaced by an eager FeatureWarp layer), or both")
    p.add_argument("--chunk", type=int, default=1,
                   help="interleave the runners and the part timings every this many frames (default 1: "
                        "frame by frame; 0: whole sequences one after the other)")
    p.add_argument("--task", choices=("segmentation", "detection"), default="segmentation",
                   help="N_task: the 1x1 score conv + upsampling (Cityscapes) or R-FCN with its detection head "
                        "(proposals, PS-RoI pooling, NMS: ImageNet VID, l = 10 in the paper)")
    p.add_argument("--num-classes", type=int, help="classes (default: Cityscapes' 19, ImageNet VID's 30 for "
                                                   "--task detection)")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)

    intervals = sorted({int(v) for v in args.intervals.split(",")})
    warp_modes = tuple(m for m in WARP_MODES if m in args.warp.split(","))
    if not intervals or intervals[0] < 1 or not warp_modes:
        p.error("--intervals needs positive ints, --warp runner and/or eager")
    if args.backbone or args.flow or args.size:
        backbone = args.backbone or "small"
        configs = [(backbone, args.flow or DEFAULT_FLOW[backbone], args.size or DEFAULT_SIZE[backbone])]
    else:
        configs = list(DEFAULT_CONFIGS)
    for _, _, (h, w) in configs:
        if h % 128 or w % 128:
            p.error(f"--size must be multiples of 128 (FlowNet); got {h}x{w}")

    import keras

    log(f"{os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}; "
        f"baseline = the runner with l = 1 (N_feat + N_task every frame)")
    out = {"argv": sys.argv[1:] if argv is None else list(argv), "tf": tf.__version__, "keras": keras.__version__,
           "cpus": os.cpu_count(), "configs": []}
    start = time.perf_counter()
    for backbone, flow, size in configs:
        frames, rounds = (QUICK_WORK if args.quick else DEFAULT_WORK)[backbone]
        frames = args.frames or frames
        rounds = args.repeats or rounds
        out["configs"].append(measure(backbone, flow, size, frames=frames, rounds=rounds, intervals=intervals,
                                      warp_modes=warp_modes, chunk=args.chunk, task=args.task,
                                      num_classes=args.num_classes or (30 if args.task == "detection" else 19)))
    for res in out["configs"]:
        report(res)
    total = time.perf_counter() - start
    print(f"\n{total:.0f} s in all. s meas = t(l=1) / t(l); s(r) = Eq. 7 = l / (1 + (l - 1) r); "
          "meas/pred = s meas / s(r_meas)")
    out["seconds"] = total
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
