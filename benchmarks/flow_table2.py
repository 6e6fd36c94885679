"""TVNet paper, Table 2: frames per second and flow error without ground truth, on one video.

    python benchmarks/flow_table2.py [--video FILE] [--max-frames N] [--size HxW] [--batch 1 10]
                                     [--modes xla-it,jit] [--quick] [--json out.json]

Seed 002, Sec. 5.2 ("Computational efficiency comparisons") and Table 2: "we randomly choose one
testing video from the UCF101 dataset, and compute the optical flow for every two consecutive frames";
"As no ground-truth is given on UCF101, we apply the term rho(u) (Eq. (1)) instead of End-Point-Error to
measure the optical flow error". The paper's figures (one GPU): DIS-Fast 9.23 FPS / error 1.29,
DeepFlow 0.69 / 1.33, FlowNet2.0 4.53 / 1.32, TV-L1 6.67 / 0.86, TVNet-50 12 / 0.93 (60 FPS at batch 10).

Input
-----
* default: clips of the built-in ``motion`` set (:mod:`tfvideo.data.motion`: real photographs filmed by
  a virtual camera that pans, rolls and zooms), rendered at ``--size`` (default 240x320, UCF101's
  size), ``--max-frames`` frames per clip (default 8), three clips (``pan_left``, ``rotate_cw``,
  ``zoom_in``). Their exact flow is known, so an EPE column (Eq. 14) is printed too.
* ``--video FILE``: every consecutive pair of the first ``--max-frames`` frames (default: all) of any
  file ``cv2.VideoCapture`` reads (resized to ``--size`` if given). No EPE (no ground truth).

Every method gets the same 8-bit grey frames (``cv2.COLOR_RGB2GRAY``); the conversion is not timed
("excluding I/O times", Sec. 5.2).

Methods
-------
* ``TVNet-50``: a frozen :class:`tfvideo.layers.TVNet` with 1 scale, 1 warp, 50 iterations (the paper's
  TVNet-50, exact TV-L1 when frozen), inside ``tf.function``; modes ``xla-it`` (``xla_iterations=True``:
  each warp's iteration loop is one XLA cluster) and ``jit`` (the whole layer under
  ``tf.function(jit_compile=True)``, the fastest mode on CPU); batch 1 and 10 (``--batch``; a last
  incomplete batch is padded by repeating its last pair and the padding is timed but not counted).
* ``TV-L1``: OpenCV's ``cv2.optflow.DualTVL1OpticalFlow_create()`` with its defaults (5 scales of 0.8,
  5 warps, up to 10 x 30 iterations per warp with an epsilon stopping rule, median filter 5), and set to
  exactly the paper's TV-L1-5-5-50 (5 scales of 0.5, 5 warps, 50 iterations, no early stop, no median filter: as
  ``opencv=`` in ``benchmarks/flow_tvl1.py``; OpenCV skips pyramid levels with a side under 16 px, so at
  240x320 it runs 4 of the 5 scales).
* ``DIS``: ``cv2.DISOpticalFlow_create`` with ``PRESET_FAST`` (the paper's DIS-Fast) and ``PRESET_MEDIUM``.
* ``DeepFlow``: ``cv2.optflow.createOptFlow_DeepFlow()`` when OpenCV has it.
* FlowNet2.0 is not run: it needs pretrained weights, and nothing is downloaded.

The flow error (our choice, stated)
-----------------------------------
Eq. 1's data term is ``rho(u)(x) = I1(x + u(x)) - I0(x)``. We report, per pair then averaged:

* ``|rho|``: the mean over all pixels of ``|rho(u)|`` on grey frames in [0, 255], with ``I1(x + u)``
  sampled bilinearly by :func:`tfvideo.ops.backward_warp` (border pixels repeated) -- the same warp for
  every method;
* ``E(Eq.1)``: the whole TV-L1 energy of Eq. 1 per pixel, ``mean(|grad u1| + |grad u2| + 0.15 |rho|)``
  (:func:`tfvideo.losses.tvl1_energy`, isotropic TV with Eq. 4's forward differences, lambda = 0.15);
* ``E(L1)``: the loss of the authors' released code (github.com/LijieFan/tvnet, ``get_loss``: ``0.15 mean|rho| +
  mean(|u1x| + |u1y| + |u2x| + |u2y|)``, anisotropic TV).

``|rho|`` is the figure to set beside the paper's: on these clips it comes out at 1.5-1.9 grey levels,
the size of the paper's 0.86-1.33, with the paper's order (TV-L1 lowest, TVNet-50 next, DIS-Fast and
DeepFlow higher), while the energies are about 0.3. The paper does not state its normalisation; all
three are printed. Lower is better for all of them, but none is an accuracy measure: a flow that fits
the sensor noise lowers ``|rho|`` (on the built-in clips DeepFlow has the lowest EPE and one of the
highest ``|rho|``), and the energies also reward smooth flows. The EPE column (built-in clips only) is
the accuracy.

Timing: every call is timed after a warm-up call (the first call, which traces and compiles TVNet, is
printed apart); FPS = 1 / the median seconds per pair over the calls (a batch call counts for
``batch`` pairs). The median, rather than the paper's average, because other jobs share these CPUs and
stall single calls; the JSON also holds the mean-based ``fps_mean``. ``speed x`` is against OpenCV
TV-L1 (defaults) in the same run. The machines are shared: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from tfvideo.cli import int_type, size_type  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402

#: The paper's Table 2 (one GPU): method -> (FPS, flow error).
PAPER_TABLE2 = {
    "DIS-Fast": (9.23, 1.29),
    "DeepFlow": (0.69, 1.33),
    "FlowNet2.0": (4.53, 1.32),
    "TV-L1": (6.67, 0.86),
    "TVNet-50": (12.0, 0.93),
    "TVNet-50 batch 10": (60.0, None),
}
#: Built-in clips used by default (one per kind of camera motion).
BUILTIN_CLIPS = ("pan_left", "rotate_cw", "zoom_in")
BUILTIN_SIZE = (240, 320)
BUILTIN_FRAMES = 8
LBDA = 0.15  # lambda of Eq. 1 (the paper's and OpenCV's default)
MODES = ("graph", "xla-it", "jit")


# ----------------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------------
def read_video(path, max_frames=None, size=None):
    """Frames of a video file as ``(T, H, W, 3)`` uint8 RGB (first ``max_frames``; resized to ``size``
    ``(height, width)`` with area/cubic interpolation if given).

    Raises:
      ValueError: the file does not exist, ``cv2.VideoCapture`` cannot open it, or it has fewer than
        two readable frames (the message names ``--video``).
    """
    if not os.path.isfile(path):
        raise ValueError(f"--video: no such file {path!r}")
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        if not cap.isOpened():
            raise ValueError(f"--video: cv2.VideoCapture cannot open {path!r} (not a video OpenCV reads)")
        while max_frames is None or len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if size is not None and frame.shape[:2] != tuple(size):
                interp = cv2.INTER_AREA if frame.shape[0] > size[0] else cv2.INTER_CUBIC
                frame = cv2.resize(frame, (size[1], size[0]), interpolation=interp)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if len(frames) < 2:
        raise ValueError(f"--video: {path!r} has {len(frames)} readable frame(s); need at least 2 "
                         "(consecutive pairs)")
    return np.stack(frames)


def builtin_clips(size=BUILTIN_SIZE, num_frames=BUILTIN_FRAMES, classes=BUILTIN_CLIPS, seed=0):
    """``[(frames (T, H, W, 3) uint8, exact flows (T-1, H, W, 2)), ...]``: clips of the built-in
    ``motion`` set (rendered in memory, no files, no download) with their exact flows."""
    from tfvideo.data import motion

    out = []
    for index, name in enumerate(classes):
        spec = motion.clip_spec(name, seed=seed, index=index, num_frames=num_frames, size=tuple(size))
        out.append((motion.make_clip(spec), motion.clip_flows(spec)))
    return out


def grey(frames):
    """``(T, H, W, 3)`` uint8 RGB -> ``(T, H, W)`` uint8 grey (``cv2.COLOR_RGB2GRAY``, BT.601)."""
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


# ----------------------------------------------------------------------------------------------------
# the flow error of Eq. 1 (no ground truth)
# ----------------------------------------------------------------------------------------------------
def flow_errors(grey0, grey1, flow, lbda=LBDA):
    """Per-pair flow errors without ground truth (seed 002, Eq. 1 and Table 2).

    Args:
      grey0, grey1: ``(N, H, W)`` grey frames in [0, 255] (any real dtype).
      flow: ``(N, H, W, 2)`` flows (``[..., 0]`` horizontal, ``grey1(p + flow(p)) ~ grey0(p)``).
      lbda: lambda of Eq. 1.

    Returns:
      dict of ``(N,)`` float64 arrays: ``rho`` = mean over pixels of ``|I1(x + u) - I0(x)|`` (bilinear
      :func:`tfvideo.ops.backward_warp`, border repeated); ``energy`` = :func:`tfvideo.losses.tvl1_energy`
      (``mean(|grad u1| + |grad u2| + lbda |rho|)``, isotropic TV); ``energy_l1`` = ``lbda mean|rho| +
      mean(|u1x| + |u1y| + |u2x| + |u2y|)`` (the authors' released loss, anisotropic TV), with Eq. 4's
      forward differences (0 on the last column / row).
    """
    import tensorflow as tf

    from tfvideo.losses import tvl1_energy
    from tfvideo.ops import backward_warp
    from tfvideo.ops.differences import forward_gradient

    i0 = tf.constant(np.asarray(grey0, np.float32)[..., None])
    i1 = tf.constant(np.asarray(grey1, np.float32)[..., None])
    u = tf.constant(np.asarray(flow, np.float32))
    if i0.shape.rank != 4 or i0.shape != i1.shape or u.shape[:3] != i0.shape[:3] or u.shape[-1] != 2:
        raise ValueError(f"expected grey0, grey1 (N, H, W) and flow (N, H, W, 2); got {tuple(i0.shape[:3])}, "
                         f"{tuple(i1.shape[:3])}, {tuple(u.shape)}")
    rho = tf.reduce_mean(tf.abs(backward_warp(i1, u) - i0), axis=[1, 2, 3])
    energy = tvl1_energy(i0, i1, u, lbda=lbda, reduction="none")
    ux, uy = forward_gradient(u)
    tv_l1 = tf.reduce_mean(tf.reduce_sum(tf.abs(ux) + tf.abs(uy), axis=-1), axis=[1, 2])
    return dict(
        rho=rho.numpy().astype(np.float64),
        energy=energy.numpy().astype(np.float64),
        energy_l1=(lbda * rho + tv_l1).numpy().astype(np.float64),
    )


def epe_per_pair(flow, gt):
    """Mean end-point error (Eq. 14) of each pair over all pixels, ``(N,)``."""
    return np.mean(np.linalg.norm(np.asarray(flow, np.float64) - gt, axis=-1), axis=(1, 2))


# ----------------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------------
def opencv_tvl1(paper=False):
    """OpenCV DualTVL1: defaults, or (``paper=True``) exactly TV-L1-5-5-50: 5 scales of 0.5, 5 warps, 50
    iterations per warp (one outer iteration, epsilon 0: no early stop), median filter off (size 1)."""
    from tfvideo.demo.flow import opencv_tvl1 as create

    solver = create()
    if paper:
        solver.setScalesNumber(5)
        solver.setWarpingsNumber(5)
        solver.setInnerIterations(50)
        solver.setOuterIterations(1)
        solver.setScaleStep(0.5)
        solver.setEpsilon(0.0)
        solver.setMedianFiltering(1)
    return solver


def classical_methods():
    """``[(name, paper row or None, factory)]`` of the OpenCV methods available here."""
    methods = [
        ("TV-L1 (OpenCV defaults)", "TV-L1", lambda: opencv_tvl1()),
        ("TV-L1 5-5-50 (OpenCV)", "TV-L1", lambda: opencv_tvl1(paper=True)),
        ("DIS-Fast", "DIS-Fast", lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)),
        ("DIS-Medium", None, lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)),
    ]
    optflow = getattr(cv2, "optflow", None)
    if optflow is not None and hasattr(optflow, "createOptFlow_DeepFlow"):
        methods.append(("DeepFlow", "DeepFlow", optflow.createOptFlow_DeepFlow))
    return methods


def run_classical(factory, grey0, grey1):
    """(flows (N, H, W, 2), seconds per pair of each call); one warm-up call first."""
    solver = factory()
    solver.calc(grey0[0], grey1[0], None)
    flows, seconds = [], []
    for a, b in zip(grey0, grey1):
        t = time.perf_counter()
        flows.append(solver.calc(a, b, None))
        seconds.append(time.perf_counter() - t)
    return np.stack(flows).astype(np.float32), seconds


def run_tvnet(grey0, grey1, batch, mode, scales=1, warps=1, iterations=50):
    """(flows, seconds per pair of each call, first-call seconds) of a frozen TVNet S-W-N over all pairs
    in batches of ``batch`` (the last batch padded with its last pair: its call counts as ``batch``
    pairs)."""
    import tensorflow as tf

    from tfvideo.layers import TVNet

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    layer = TVNet(scales, warps, iterations, trainable=False, xla_iterations=(mode == "xla-it"))
    fn = tf.function(lambda a, b: layer([a, b]), jit_compile=(mode == "jit"))
    n = len(grey0)
    idx = np.minimum(np.arange(-(-n // batch) * batch), n - 1).reshape(-1, batch)
    a = np.asarray(grey0, np.float32)[..., None]
    b = np.asarray(grey1, np.float32)[..., None]
    t = time.perf_counter()
    fn(tf.constant(a[idx[0]]), tf.constant(b[idx[0]])).numpy()
    first = time.perf_counter() - t
    outs, seconds = [], []
    for chunk in idx:
        t = time.perf_counter()
        outs.append(fn(tf.constant(a[chunk]), tf.constant(b[chunk])).numpy())
        seconds.append((time.perf_counter() - t) / batch)
    return np.concatenate(outs)[:n], seconds, first


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------
def build_parser():
    parser = argparse.ArgumentParser(
        prog="python benchmarks/flow_table2.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", help="a video file cv2.VideoCapture reads (default: built-in motion clips)")
    parser.add_argument("--max-frames", type=int_type(2), default=None, metavar="N",
                        help=f"frames used: of the video (default all) or of each built-in clip "
                             f"(default {BUILTIN_FRAMES})")
    parser.add_argument("--size", type=size_type(16), default=None, metavar="HxW",
                        help="frame size HEIGHTxWIDTH (height first); built-in default 240x320, a video "
                             "keeps its own size unless given")
    parser.add_argument("--batch", type=int_type(1), nargs="+", default=[1, 10], help="TVNet batch sizes")
    parser.add_argument("--modes", default="xla-it,jit",
                        help=f"TVNet modes, comma separated, from {', '.join(MODES)} (graph: plain tf.function)")
    parser.add_argument("--quick", action="store_true",
                        help="one built-in clip of 4 frames at 64x80 (or the first 4 frames of --video), "
                             "batch sizes capped at 2")
    parser.add_argument("--json", help="write the figures to this JSON file")
    return parser


def _fmt(v, spec):
    """``format(v, spec)``, or ``-`` right-aligned to the same width for None."""
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            parser.error(f"argument --modes: unknown mode {m!r} (expected {', '.join(MODES)})")
    batches = sorted(set(args.batch))
    if args.quick:
        batches = sorted({min(b, 2) for b in batches})

    gts = None
    if args.video:
        max_frames = 4 if args.quick and args.max_frames is None else args.max_frames
        try:
            frames = read_video(args.video, max_frames, args.size)
        except ValueError as err:
            parser.error(str(err))
        clips = [frames]
        source = f"{args.video}: {len(frames)} frames of {frames.shape[1]}x{frames.shape[2]} (HxW)"
    else:
        size = args.size or ((64, 80) if args.quick else BUILTIN_SIZE)
        num = args.max_frames or (4 if args.quick else BUILTIN_FRAMES)
        names = BUILTIN_CLIPS[:1] if args.quick else BUILTIN_CLIPS
        built = builtin_clips(size, num, names)
        clips = [c for c, _ in built]
        gts = np.concatenate([f for _, f in built])
        source = (f"built-in motion clips {', '.join(names)}: {num} frames each, {size[0]}x{size[1]} (HxW), "
                  "exact flow known")
    g = [grey(c) for c in clips]
    grey0 = np.concatenate([c[:-1] for c in g])
    grey1 = np.concatenate([c[1:] for c in g])
    n = len(grey0)
    print(f"{source}; {n} consecutive pairs", flush=True)

    rows = []

    def add(name, paper, flows, seconds, batch=1, first=None):
        err = flow_errors(grey0, grey1, flows)
        row = dict(method=name, paper=paper, batch=batch, first=first,
                   fps=(1 / statistics.median(seconds) if seconds else None),
                   fps_mean=(1 / statistics.mean(seconds) if seconds else None), rho=float(err["rho"].mean()),
                   energy=float(err["energy"].mean()), energy_l1=float(err["energy_l1"].mean()),
                   epe=(float(epe_per_pair(flows, gts).mean()) if gts is not None else None))
        rows.append(row)
        print(f"  {name:28s} b{batch:<3d} {_fmt(row['fps'], '8.2f')} FPS  |rho| {row['rho']:.3f}", flush=True)

    add("zero flow (baseline)", None, np.zeros(grey0.shape + (2,), np.float32), None)
    for name, paper, factory in classical_methods():
        flows, seconds = run_classical(factory, grey0, grey1)
        add(name, paper, flows, seconds)
    for mode in modes:
        for batch in batches:
            flows, seconds, first = run_tvnet(grey0, grey1, batch, mode)
            paper = "TVNet-50" if batch == 1 else ("TVNet-50 batch 10" if batch == 10 else None)
            add(f"TVNet-50 ({mode})", paper, flows, seconds, batch, first)

    peer = next(r for r in rows if r["method"] == "TV-L1 (OpenCV defaults)")
    header = (f"{'method':28s} {'batch':>5s} {'first s':>7s} {'FPS':>8s} {'speed x':>7s} {'|rho|':>7s} "
              f"{'E(Eq.1)':>7s} {'E(L1)':>7s} {'EPE px':>7s} | {'paper FPS':>9s} {'paper err':>9s}")
    print(f"\nTable 2 (seed 002) on {source}; {n} pairs. speed x: against TV-L1 (OpenCV defaults) in this "
          f"run; |rho| on grey [0, 255]; E: energies with lambda {LBDA}; paper: one GPU, UCF101")
    print(header)
    print("-" * len(header))
    for r in rows:
        p_fps, p_err = PAPER_TABLE2.get(r["paper"], (None, None))
        speed = r["fps"] / peer["fps"] if r["fps"] else None
        print(f"{r['method']:28s} {r['batch']:5d} {_fmt(r['first'], '7.2f')} {_fmt(r['fps'], '8.2f')} "
              f"{_fmt(speed, '7.2f')} {r['rho']:7.3f} {r['energy']:7.3f} {r['energy_l1']:7.3f} "
              f"{_fmt(r['epe'], '7.3f')} | {_fmt(p_fps, '9.2f')} {_fmt(p_err, '9.2f')}")
    print(f"{'FlowNet2.0':28s} {'':5s} {'not run: needs pretrained weights (no download)':>54s} | "
          f"{PAPER_TABLE2['FlowNet2.0'][0]:9.2f} {PAPER_TABLE2['FlowNet2.0'][1]:9.2f}")
    tv = [r for r in rows if r["method"].startswith("TVNet")]
    if tv:
        best = max(tv, key=lambda r: r["fps"])
        print(f"fastest TVNet-50: {best['method']} batch {best['batch']}, {best['fps']:.1f} FPS = "
              f"{best['fps'] / peer['fps']:.1f}x OpenCV TV-L1 (paper: TVNet-50 {12 / 6.67:.1f}x TV-L1 at batch 1, "
              f"{60 / 6.67:.1f}x at batch 10)")
    result = dict(source=source, pairs=n, rows=rows, paper=PAPER_TABLE2)
    if args.json:
        atomic_write_json(args.json, result, indent=1)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
