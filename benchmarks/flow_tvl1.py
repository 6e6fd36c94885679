"""TVNet against the classical TV-L1 solvers of OpenCV and scikit-image, in one run.

    python benchmarks/flow_tvl1.py [--quick] [--sizes 125x185,250x370] [--pairs 3] [--repeats 5]
                                   [--configs 1-1-50,3-1-10,5-5-50,...] [--all] [--json out.json]

Frame pairs are real photographs from scikit-image moved by known smooth motions (rotation + zoom +
translation, up to 4 px; :func:`tfvideo.demo.flow.make_frame_pair`), so every method gets an exact
end-point error (EPE, Eq. 14 of the TVNet paper; a 10-pixel border is ignored). All methods see the same
8-bit grey frames.

Methods
-------
* ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow_create()`` with its defaults (5 scales of 0.8, 5 warps,
  up to 300 iterations with an epsilon stopping rule), one pair at a time.
* ``skimage``: ``skimage.registration.optical_flow_tvl1`` with its defaults (attachment 15, 5 warps,
  10 iterations, pyramid down to ~16 px; bilinear warps), one pair at a time.
* ``opencv=``: OpenCV's DualTVL1 set to *the same algorithm* as the TVNet configuration on the same
  line block: S scales of ``zfactor`` (0.5 unless ``@z``), W warps, exactly N iterations per warp, no median filter. The two then
  differ only in the warp interpolation (OpenCV bicubic, TVNet bilinear as in the paper, Sec. 4.1) and
  the pyramid smoothing.
* ``tvnet S-W-N``: a frozen :class:`tfvideo.layers.TVNet` (exact TV-L1) with S scales, W warps and N
  iterations (``S-W-Nc``: with ``interpolation="bicubic"`` warps instead of the paper's bilinear;
  ``@z``: pyramid factor ``zfactor=z`` instead of 0.5), in four modes: ``eager`` (layer called directly), ``graph`` (``tf.function``),
  ``graph+xla-it`` (``tf.function`` with ``xla_iterations=True``: each warp's iteration loop is one XLA
  cluster) and ``jit`` (the whole layer under ``tf.function(jit_compile=True)``); batch 1 and 8.

For each row: the first call (trace/compile + run), steady-state pairs per second (median of
``--repeats`` timed calls), EPE over the pairs, and the speed and EPE ratios against the *faster* of the
two classical solvers. The last lines name the fastest TVNet configuration whose EPE is no worse than
that classical solver ("TV-L1-equivalent") and its speed ratio.

Timings are ratios measured in the same run on the same machine; absolute times on shared machines are
noisy.
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
from tfvideo.demo.flow import MAX_SIDE, MIN_SIDE, epe, make_frame_pair, opencv_tvl1  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402
from tfvideo.layers import TVNet  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# Configurations that are slow in a mode, skipped unless --all (with the reason printed)
SLOW_EAGER_ITERS = 300  # total iterations above which eager mode is skipped
SLOW_JIT_ITERS = 5000  # ... and whole-layer XLA (compiles in ~10 s for 5-5-50 on 2 cores)


def parse_sizes(text):
    """``"125x185,250x370"`` -> ``[(125, 185), (250, 370)]``: each item ``HxW`` (height first) or ``N``
    (square), as every size in tfvideo (:func:`tfvideo.checks.parse_size`); each side within the
    demo's limits."""
    sizes = []
    for item in text.split(","):
        try:
            size = parse_size(item, "--sizes", MIN_SIDE)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        if max(size) > MAX_SIDE:
            raise SystemExit(f"--sizes: each side must be at most {MAX_SIDE} pixels, got {item!r}")
        sizes.append(size)
    return sizes


def parse_configs(text):
    """``"1-1-50,5-5-30c@0.8"`` -> ``[((1, 1, 50), "bilinear", 0.5), ((5, 5, 30), "bicubic", 0.8)]``."""
    configs = []
    for item in text.split(","):
        body, _, z = item.partition("@")
        interp = "bicubic" if body.endswith("c") else "bilinear"
        try:
            s, w, n = (int(v) for v in body.rstrip("c").split("-"))
            zfactor = float(z) if z else 0.5
        except ValueError:
            raise SystemExit(
                f"--configs: expected S-W-N[c][@zfactor][,...], e.g. 1-1-50 or 5-5-30c@0.8; got {item!r}"
            ) from None
        configs.append(((s, w, n), interp, zfactor))
    return configs


def timed(fn, repeats):
    """(first-call seconds, median steady-state seconds, last output)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), out


def opencv_matched(config, zfactor=0.5):
    """OpenCV's DualTVL1 set to the same algorithm as a TVNet config: S scales of ``zfactor``, W warps,
    exactly N iterations per warp (one outer iteration, epsilon 0: no early stop), no median filter."""
    s, w, n = config
    solver = opencv_tvl1()
    solver.setScalesNumber(s)
    solver.setWarpingsNumber(w)
    solver.setInnerIterations(n)
    solver.setOuterIterations(1)
    solver.setScaleStep(zfactor)
    solver.setEpsilon(0.0)
    solver.setMedianFiltering(1)
    return solver


def run_classical(name, pairs, repeats, config=None, zfactor=0.5):
    if name in ("opencv", "opencv-matched"):
        solver = opencv_tvl1() if name == "opencv" else opencv_matched(config, zfactor)

        def one(p):
            return solver.calc(p.grey0, p.grey1, None)

    else:
        from skimage.registration import optical_flow_tvl1

        def one(p):
            v, u = optical_flow_tvl1(p.grey0, p.grey1)  # (row, col) order; same meaning as ours
            return np.stack([u, v], axis=-1)

    firsts, steadies, errors = [], [], []
    for p in pairs:
        first, steady, flow = timed(lambda p=p: one(p), repeats)
        firsts.append(first)
        steadies.append(steady)
        errors.append(epe(flow, p.flow))
    return dict(first=firsts[0], seconds_per_pair=statistics.mean(steadies), epe=float(np.mean(errors)))


def run_tvnet(config, mode, batch, pairs, repeats, interpolation="bilinear", zfactor=0.5):
    s, w, n = config
    layer = TVNet(
        s, w, n, zfactor=zfactor, trainable=False, xla_iterations=(mode == "graph+xla-it"),
        interpolation=interpolation,
    )
    frames0 = np.stack([p.grey0 for p in pairs])[..., None].astype(np.float32)
    frames1 = np.stack([p.grey1 for p in pairs])[..., None].astype(np.float32)
    gts = np.stack([p.flow for p in pairs])
    if mode == "eager":
        fn = lambda a, b: layer([a, b])  # noqa: E731
    else:
        fn = tf.function(lambda a, b: layer([a, b]), jit_compile=(mode == "jit"))
    idx = [i % len(pairs) for i in range(batch)]
    a, b = tf.constant(frames0[idx]), tf.constant(frames1[idx])
    first, steady, out = timed(lambda: fn(a, b).numpy(), repeats)
    if batch == 1:  # EPE over all pairs, one at a time (same shape: no retrace)
        flows = [out[0]] + [
            fn(tf.constant(frames0[i : i + 1]), tf.constant(frames1[i : i + 1])).numpy()[0]
            for i in range(1, len(pairs))
        ]
        err = float(np.mean([epe(f, g) for f, g in zip(flows, gts)]))
    else:
        err = float(np.mean([epe(f, gts[i]) for f, i in zip(out, idx)]))
    return dict(first=first, seconds_per_pair=steady / batch, epe=err)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 pairs, 3 repeats, eager mode only for 1-1-50")
    parser.add_argument("--sizes", default="125x185,250x370",
                        help="frame sizes HxW (height first) or N (square), comma separated")
    parser.add_argument("--pairs", type=int, default=3, help="frame pairs per size (different photos/motions)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument(
        "--configs", default="1-1-50,3-1-10,5-5-50,3-3-10,3-5-10c,3-5-40c,4-5-30c,5-5-30c@0.8",
        help="TVNet scales-warps-iterations list; a trailing 'c' selects bicubic warps and '@z' the "
        "pyramid factor (e.g. 5-5-30c@0.8, OpenCV's default scale step)"
    )
    parser.add_argument("--modes", default="eager,graph,graph+xla-it,jit", help="TVNet modes to run")
    parser.add_argument("--batches", default="1,8", help="TVNet batch sizes")
    parser.add_argument("--all", action="store_true", help="also run the slow combinations skipped by default")
    parser.add_argument("--json", help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeats < 1:
        raise SystemExit("--pairs and --repeats must be >= 1")
    sizes = parse_sizes(args.sizes)
    configs = parse_configs(args.configs)
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("eager", "graph", "graph+xla-it", "jit"):
            raise SystemExit(f"--modes: unknown mode {m!r}")
    batches = [int(b) for b in args.batches.split(",")]
    if args.quick:
        args.pairs, args.repeats = min(args.pairs, 2), min(args.repeats, 3)

    results = []
    for height, width in sizes:
        pairs = [make_frame_pair((height, width), seed=i, photo=PHOTOS[i % len(PHOTOS)]) for i in range(args.pairs)]
        print(f"\n== {height}x{width}: {len(pairs)} pairs, max motion "
              f"{max(p.motion['max_px'] for p in pairs):.2f} px, zero-flow EPE "
              f"{np.mean([epe(np.zeros_like(p.flow), p.flow) for p in pairs]):.3f} px ==", flush=True)
        rows = []
        for name in ("opencv", "skimage"):
            r = run_classical(name, pairs, args.repeats)
            rows.append(dict(method=name, config="defaults", mode="-", batch=1, **r))
            print(f"  {name:8s} done: {1 / r['seconds_per_pair']:.1f} pairs/s, EPE {r['epe']:.3f}", flush=True)
        matched = set()
        for config, interp, zfactor in configs:
            total = config[0] * config[1] * config[2]
            label = "-".join(map(str, config)) + ("" if zfactor == 0.5 else f"@{zfactor:g}")
            if (config, zfactor) not in matched:
                matched.add((config, zfactor))
                r = run_classical("opencv-matched", pairs, args.repeats, config, zfactor)
                rows.append(dict(method="opencv=", config=label, mode="-", batch=1, **r))
            if interp == "bicubic":
                label = label.replace("@", "c@") if "@" in label else label + "c"
            for mode in modes:
                for batch in batches:
                    reason = None
                    if args.quick and mode == "eager" and config != (1, 1, 50):
                        reason = "eager only for 1-1-50 with --quick"
                    elif not args.all and mode == "eager" and total > SLOW_EAGER_ITERS:
                        reason = f"eager with {total} iterations is slow (--all runs it)"
                    elif not args.all and mode == "jit" and total > SLOW_JIT_ITERS:
                        reason = f"whole-layer XLA with {total} iterations compiles slowly (--all runs it)"
                    elif mode == "eager" and batch > 1 and args.quick:
                        reason = "eager batch 8 skipped with --quick"
                    if reason:
                        rows.append(dict(method="tvnet", config=label, mode=mode, batch=batch, skipped=reason))
                        continue
                    try:
                        r = run_tvnet(config, mode, batch, pairs, args.repeats, interp, zfactor)
                    except Exception as err:  # report and go on: one failing mode must not hide the rest
                        reason = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
                        rows.append(dict(method="tvnet", config=label, mode=mode, batch=batch, skipped=reason))
                        print(f"  tvnet {label} {mode} b{batch}: {reason}", flush=True)
                        continue
                    rows.append(dict(method="tvnet", config=label, mode=mode, batch=batch, **r))
                    print(f"  tvnet {label} {mode} b{batch}: {1 / r['seconds_per_pair']:.1f} pairs/s", flush=True)

        classical = [r for r in rows if r["method"] in ("opencv", "skimage")]
        peer = min(classical, key=lambda r: r["seconds_per_pair"])
        print(f"\n{height}x{width} (peer = {peer['method']}, the faster classical TV-L1: "
              f"{1 / peer['seconds_per_pair']:.1f} pairs/s, EPE {peer['epe']:.3f} px)")
        header = f"{'method':8s} {'config':11s} {'mode':13s} {'batch':>5s} {'first call':>10s} {'pairs/s':>9s} " \
                 f"{'EPE px':>7s} {'speed x':>8s} {'EPE x':>6s}"
        print(header)
        print("-" * len(header))
        for r in rows:
            if "skipped" in r:
                print(f"{r['method']:8s} {r['config']:11s} {r['mode']:13s} {r['batch']:5d}  skipped ({r['skipped']})")
                continue
            speed = peer["seconds_per_pair"] / r["seconds_per_pair"]
            e = f"{r['epe']:7.3f}" if r["epe"] is not None else f"{'':>7s}"
            ratio = f"{r['epe'] / peer['epe']:6.2f}" if r["epe"] is not None else f"{'':>6s}"
            print(f"{r['method']:8s} {r['config']:11s} {r['mode']:13s} {r['batch']:5d} {r['first']:9.2f}s "
                  f"{1 / r['seconds_per_pair']:9.1f} {e} {speed:8.1f} {ratio}")
        # TV-L1 equivalent: the fastest TVNet row whose EPE is no worse than a classical solver's
        tv_rows = [r for r in rows if r["method"] == "tvnet" and "skipped" not in r]
        for ref in classical:
            for batch in sorted({r["batch"] for r in tv_rows}):
                ok = [r for r in tv_rows if r["batch"] == batch and r["epe"] <= ref["epe"] * 1.001]
                if ok:
                    best = min(ok, key=lambda r: r["seconds_per_pair"])
                    print(f"TV-L1-equivalent vs {ref['method']} (EPE {ref['epe']:.3f}), batch {batch}: "
                          f"tvnet {best['config']} {best['mode']}, EPE {best['epe']:.3f}, "
                          f"{ref['seconds_per_pair'] / best['seconds_per_pair']:.1f}x faster, first call {best['first']:.2f} s")
                else:
                    print(f"TV-L1-equivalent vs {ref['method']} (EPE {ref['epe']:.3f}), batch {batch}: no measured "
                          f"TVNet configuration reaches this EPE (best {min(r['epe'] for r in tv_rows if r['batch'] == batch):.3f})")
        results.append(dict(size=[height, width], peer=peer["method"], rows=rows))
    if args.json:
        atomic_write_json(args.json, results, indent=1)
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
