"""Large displacements (20-40 px): TVNet configurations against OpenCV TV-L1 and DIS, ranked by EPE.

    python benchmarks/flow_large.py [--quick] [--size 240x320] [--pairs 4] [--motion 20,40]
                                    [--configs 1-1-50,3-3-10,5-5-50c,...] [--json out.json]

``benchmarks/flow_tvl1.py`` moves its photographs by 1-4 px, where one pyramid level is enough. Here the
pairs move by 20 px and more, with an exact ground truth, and the configurations are ranked by
end-point error (EPE, seed 002 Eq. 14).

Frame pairs (:func:`make_large_pair`)
-------------------------------------
Real photographs that ship with scikit-image (:mod:`tfvideo.data.photos`, no download):

* ``global``: the whole frame moves by a similarity motion about the frame centre: a translation of
  ``--motion`` px (20-40 by default, random direction) plus a small rotation (1-3 degrees) and zoom
  (1-4 %). ``frame1`` is resampled (bicubic) from the larger photo, so content entering at the borders
  is real; only pixels of ``frame0`` whose match leaves the frame are occluded.
* ``piecewise``: the background moves like ``global``, and two objects (elliptic crops of another
  photograph, pasted with a hard mask, the second above the first) each translate independently by
  ``--motion`` px in a direction at least 60 degrees away from the background's. Pixels of ``frame0``
  hidden in ``frame1`` (behind an object, or out of the frame) are occluded; they are known exactly.

The flow is exact in the project's convention ``frame1(p + flow(p)) = frame0(p)`` on non-occluded
pixels, up to the bicubic interpolation that renders ``frame1`` (``tests/test_benchmarks_flow_large.py``
checks it by warping ``frame1`` back).

Methods (all see the same 8-bit grey frames, one pair at a time)
-----------------------------------------------------------------
* ``tvnet S-W-N``: frozen :class:`tfvideo.layers.TVNet` (exact TV-L1) with S scales, W warps, N
  iterations, whole layer under ``tf.function(jit_compile=True)`` (the fastest mode on CPU); a trailing
  ``c`` selects ``interpolation="bicubic"`` warps, ``@z`` the pyramid factor ``zfactor=z`` (0.5
  otherwise). The paper's TVNet-50 is 1-1-50; its TV-L1 baseline is 5-5-50.
* ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow_create()`` with its defaults (5 scales of 0.8, so the
  coarsest level is 0.41 of the frame; 5 warps; up to 10 x 30 iterations per warp with an epsilon
  stopping rule; median filter 5).
* ``opencv-5-5-50``: the same solver as the paper's TV-L1 (5 scales of 0.5, 5 warps, 50 iterations per
  warp, no early stop, no median filter). OpenCV skips pyramid levels with a side under 16 px: at
  240x320 the fifth level (15x20) is not built and it runs 4 scales.
* ``dis-*``: ``cv2.DISOpticalFlow_create`` with ``PRESET_ULTRAFAST``, ``PRESET_FAST``, ``PRESET_MEDIUM``.

Printed per method: EPE over all pixels, over non-occluded pixels (``noc``), over occluded ones, over
non-occluded pixels by size of the true displacement (buckets ``<20``, ``20-30``, ``30-40``, ``>=40``
px), separately for the two kinds of pairs, and pairs per second: 1 / the median time of the calls
(after a warm-up call for TVNet, printed as ``first s``), because other jobs share the CPUs and stall
single calls; ``speed x`` is against the first OpenCV TV-L1 row (its defaults) in the same run. Rows are
ranked by non-occluded EPE over all pairs. EPEs are pooled over the pixels of all pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from tfvideo.cli import int_type, size_type  # noqa: E402
from tfvideo.data import photos  # noqa: E402
from tfvideo.files import atomic_write_json  # noqa: E402

KINDS = ("global", "piecewise")
#: Background photos and object photos (textured, distinct).
BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket")
OBJECTS = ("brick", "gravel", "camera", "immunohistochemistry")
#: Edges (px) of the displacement buckets.
BUCKETS = (20.0, 30.0, 40.0)
DEFAULT_CONFIGS = "1-1-50,3-1-10,1-3-10,3-3-10,5-5-50,5-5-50c,5-5-50@0.8,4-5-30c,8-5-30c@0.7"
OPENCV_METHODS = ("opencv", "opencv-5-5-50", "dis-ultrafast", "dis-fast", "dis-medium")
_PHOTO_FRACTION = 0.6  # the frame covers this fraction of the (resized) photo per side


@dataclasses.dataclass
class LargePair:
    """Two frames with an exact flow and occlusion mask.

    Attributes:
      frame0, frame1: ``(H, W, 3)`` uint8 RGB.
      grey0, grey1: ``(H, W)`` uint8 (``cv2.COLOR_RGB2GRAY``).
      flow: ``(H, W, 2)`` float32, ``[..., 0]`` horizontal, ``frame1(p + flow(p)) = frame0(p)`` where
        ``valid``.
      valid: ``(H, W)`` bool, True where the pixel of ``frame0`` is visible in ``frame1`` (non-occluded).
      layers0: ``(H, W)`` int8 layer index of each ``frame0`` pixel (0 background, k the k-th object).
      kind: ``"global"`` or ``"piecewise"``; params: the motion parameters.
    """

    frame0: np.ndarray
    frame1: np.ndarray
    grey0: np.ndarray
    grey1: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    layers0: np.ndarray
    kind: str
    params: dict


def _resized(name, height, width):
    """The photo resized (keeping its aspect) so that the frame covers ``_PHOTO_FRACTION`` of it per
    side (at least): float32 RGB."""
    src = photos.photo(name)
    ph, pw = src.shape[:2]
    scale = max(width / (_PHOTO_FRACTION * pw), height / (_PHOTO_FRACTION * ph))
    size = (int(math.ceil(pw * scale)), int(math.ceil(ph * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(src), size, interpolation=interp)


def _sample(image, x, y):
    """``image`` sampled bicubically at float coordinates ``(x, y)`` (arrays of one shape), borders
    mirrored."""
    return cv2.remap(image, x.astype(np.float32), y.astype(np.float32), interpolation=cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT_101)


def _in_ellipse(x, y, ellipse):
    cx, cy, a, b = ellipse
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def make_large_pair(size=(240, 320), kind="global", *, seed=0, photo=None, object_photo=None,
                    motion=(20.0, 40.0), objects=2):
    """A frame pair with large displacements, its exact flow and occlusion mask.

    Background (both kinds): a similarity motion about the frame centre ``c``,
    ``B(p) = c + s R(a) (p - c) + t`` with ``|t|`` uniform in ``motion`` (random direction), rotation
    ``a`` of 1-3 degrees and zoom ``s`` of 1-4 % (either sign); its flow is ``B(p) - p``. ``frame0`` is
    the central crop of the resized photo and ``frame1(q) = photo(B^-1(q))`` (bicubic ``cv2.remap``).

    ``piecewise`` adds ``objects`` elliptic crops of ``object_photo``: object ``k`` covers the ellipse
    ``E_k`` in ``frame0`` (texture ``T_k(p)``) and ``E_k + d_k`` in ``frame1`` (texture ``T_k(q - d_k)``),
    with ``|d_k|`` uniform in ``motion`` and a direction at least 60 degrees from ``t``'s; object ``k+1``
    is drawn above object ``k``. A ``frame0`` pixel's flow is that of its top layer; it is valid
    (non-occluded) when its match ``q = p + flow(p)`` lies inside ``frame1`` and the top layer of
    ``frame1`` at ``q`` is the same layer.

    Args:
      size: ``(height, width)``, each side >= 64.
      kind: ``"global"`` or ``"piecewise"``.
      seed: random seed.
      photo, object_photo: :data:`tfvideo.data.photos.PHOTOS` names (default: chosen by ``seed``).
      motion: ``(low, high)`` range of the translations in pixels, ``0 < low <= high <= min(size) / 3``.
      objects: number of objects (``piecewise`` only), 1 or 2.

    Returns:
      :class:`LargePair`.
    """
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"`size` must be (height, width); got {size!r}") from None
    if min(height, width) < 64:
        raise ValueError(f"`size` sides must be >= 64 pixels; got {size!r}")
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}")
    lo, hi = (float(v) for v in motion)
    if not 0 < lo <= hi <= min(height, width) / 3:
        raise ValueError(f"`motion` must be (low, high) with 0 < low <= high <= {min(height, width) / 3:g} "
                         f"(a third of the smaller side); got {motion!r}")
    if objects not in (1, 2):
        raise ValueError(f"`objects` must be 1 or 2; got {objects!r}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    photo = photo or BACKGROUNDS[seed % len(BACKGROUNDS)]
    object_photo = object_photo or OBJECTS[seed % len(OBJECTS)]

    # Background: similarity motion B(p) = c + L (p - c) + t.
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    t_dir = rng.uniform(0, 2 * math.pi)
    t = rng.uniform(lo, hi) * np.array([math.cos(t_dir), math.sin(t_dir)])
    angle = math.radians(rng.uniform(1.0, 3.0) * rng.choice([-1, 1]))
    zoom = 1.0 + rng.uniform(0.01, 0.04) * rng.choice([-1, 1])
    lin = zoom * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    d = np.stack([xs - cx, ys - cy], axis=-1)
    flow = d @ lin.T + t - d  # B(p) - p
    work = _resized(photo, height, width)
    ox, oy = (work.shape[1] - width) / 2.0, (work.shape[0] - height) / 2.0
    frame0 = _sample(work, xs + ox, ys + oy)  # integer positions: an exact copy
    src = (d - t) @ np.linalg.inv(lin).T  # B^-1(q) - c
    frame1 = _sample(work, src[..., 0] + cx + ox, src[..., 1] + cy + oy)
    layers0 = np.zeros((height, width), np.int8)
    layers1 = np.zeros((height, width), np.int8)
    ellipses, shifts = [], []

    if kind == "piecewise":
        texture = _resized(object_photo, height, width)
        for k in range(1, objects + 1):
            a = rng.uniform(0.12, 0.2) * width
            b = rng.uniform(0.15, 0.25) * height
            ecx = rng.uniform(a, width - 1 - a)
            ecy = rng.uniform(b, height - 1 - b)
            d_dir = t_dir + rng.choice([-1, 1]) * rng.uniform(math.radians(60), math.pi)
            shift = rng.uniform(lo, hi) * np.array([math.cos(d_dir), math.sin(d_dir)])
            tox = rng.uniform(0, texture.shape[1] - width)
            toy = rng.uniform(0, texture.shape[0] - height)
            ellipse = (ecx, ecy, a, b)
            in0 = _in_ellipse(xs, ys, ellipse)
            in1 = _in_ellipse(xs - shift[0], ys - shift[1], ellipse)
            frame0[in0] = _sample(texture, xs + tox, ys + toy)[in0]
            frame1[in1] = _sample(texture, xs - shift[0] + tox, ys - shift[1] + toy)[in1]
            layers0[in0] = k
            layers1[in1] = k
            flow[in0] = shift
            ellipses.append(ellipse)
            shifts.append(shift)

    # Valid: the match q = p + flow(p) is inside frame1 and frame1's top layer at q is p's layer.
    qx, qy = xs + flow[..., 0], ys + flow[..., 1]
    valid = (qx >= 0) & (qx <= width - 1) & (qy >= 0) & (qy <= height - 1)
    top1 = np.zeros((height, width), np.int8)  # top layer of frame1 at q (real coordinates)
    for k, (ellipse, shift) in enumerate(zip(ellipses, shifts), start=1):
        top1[_in_ellipse(qx - shift[0], qy - shift[1], ellipse)] = k
    valid &= top1 == layers0

    frame0 = np.clip(np.rint(frame0), 0, 255).astype(np.uint8)
    frame1 = np.clip(np.rint(frame1), 0, 255).astype(np.uint8)
    params = dict(kind=kind, seed=int(seed), photo=photo, translation=[float(v) for v in t],
                  angle_deg=math.degrees(angle), zoom=zoom,
                  objects=[dict(ellipse=[float(v) for v in e], shift=[float(v) for v in s])
                           for e, s in zip(ellipses, shifts)],
                  object_photo=object_photo if kind == "piecewise" else None,
                  max_px=float(np.max(np.linalg.norm(flow, axis=-1))),
                  occluded=float(1.0 - valid.mean()))
    return LargePair(frame0, frame1, cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY),
                     cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY), flow.astype(np.float32), valid, layers0,
                     kind, params)


# ----------------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------------
def epe_sums(flow, pair):
    """Sums and counts of the end-point error (Eq. 14) of one pair: ``{"all": (sum, n), "noc": ...,
    "occ": ..., "<20": ..., "20-30": ..., ...}`` (buckets over non-occluded pixels by true
    displacement)."""
    err = np.linalg.norm(np.asarray(flow, np.float64) - pair.flow, axis=-1)
    mag = np.linalg.norm(pair.flow, axis=-1)
    masks = {"all": np.ones_like(pair.valid), "noc": pair.valid, "occ": ~pair.valid}
    edges = (0.0,) + BUCKETS + (np.inf,)
    for lo, hi in zip(edges[:-1], edges[1:]):
        name = f"<{hi:g}" if lo == 0 else (f">={lo:g}" if hi == np.inf else f"{lo:g}-{hi:g}")
        masks[name] = pair.valid & (mag >= lo) & (mag < hi)
    return {k: (float(err[m].sum()), int(m.sum())) for k, m in masks.items()}


def pooled(sums_list, key):
    s = sum(d[key][0] for d in sums_list)
    n = sum(d[key][1] for d in sums_list)
    return s / n if n else None


# ----------------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------------
def parse_configs(text):
    """``"1-1-50,5-5-50c,5-5-50@0.8"`` -> ``[(label, (s, w, n), interpolation, zfactor), ...]``."""
    out = []
    for item in (t for t in text.split(",") if t):
        body, _, z = item.partition("@")
        interp = "bicubic" if body.endswith("c") else "bilinear"
        try:
            s, w, n = (int(v) for v in body.rstrip("c").split("-"))
            zfactor = float(z) if z else 0.5
            if min(s, w, n) < 1 or not 0 < zfactor < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"--configs: expected S-W-N[c][@zfactor] (positive integers, 0 < zfactor < 1), "
                             f"e.g. 1-1-50 or 5-5-50c@0.8; got {item!r}") from None
        out.append((item, (s, w, n), interp, zfactor))
    return out


def tvnet_method(config, interpolation, zfactor):
    """A function ``(grey0, grey1) -> flow`` running a frozen TVNet under whole-layer XLA."""
    import tensorflow as tf

    from tfvideo.layers import TVNet

    layer = TVNet(*config, zfactor=zfactor, interpolation=interpolation, trainable=False)
    fn = tf.function(lambda a, b: layer([a, b]), jit_compile=True)

    def run(g0, g1):
        a = tf.constant(g0[None, ..., None].astype(np.float32))
        b = tf.constant(g1[None, ..., None].astype(np.float32))
        return fn(a, b).numpy()[0]

    return run


def classical_method(name):
    """``(grey0, grey1) -> flow`` of an OpenCV method: ``opencv`` (DualTVL1 defaults), ``opencv-5-5-50``
    (DualTVL1 as the paper's TV-L1: 5 scales of 0.5, 5 warps, 50 iterations, no early stop, no median
    filter) or ``dis-<preset>``."""
    if name.startswith("opencv"):
        from tfvideo.demo.flow import opencv_tvl1

        solver = opencv_tvl1()
        if name == "opencv-5-5-50":
            solver.setScalesNumber(5)
            solver.setScaleStep(0.5)
            solver.setWarpingsNumber(5)
            solver.setInnerIterations(50)
            solver.setOuterIterations(1)
            solver.setEpsilon(0.0)
            solver.setMedianFiltering(1)
    else:
        solver = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{name.split('-')[1].upper()}"))
    return lambda g0, g1: solver.calc(g0, g1, None)


def measure(run, pairs, warmup=True):
    """(first-call seconds, median seconds per pair, per-pair EPE sums). With ``warmup`` (TVNet: tracing
    and XLA compilation) the first call is an extra call, not counted in the median; without it (OpenCV)
    the first call is the first pair's."""
    flows, seconds = [], []
    for i, p in enumerate(([pairs[0]] if warmup else []) + list(pairs)):
        t = time.perf_counter()
        flow = run(p.grey0, p.grey1)
        seconds.append(time.perf_counter() - t)
        if i >= warmup:
            flows.append(flow)
    first = seconds[0]
    median = statistics.median(seconds[1:] if warmup else seconds)
    return first, median, [epe_sums(f, p) for f, p in zip(flows, pairs)]


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------
def build_parser():
    parser = argparse.ArgumentParser(prog="python benchmarks/flow_large.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_type(64), default=(240, 320), metavar="HxW",
                        help="frame size HEIGHTxWIDTH (height first), each side >= 64")
    parser.add_argument("--pairs", type=int_type(1), default=4, help="pairs of each kind (global, piecewise)")
    parser.add_argument("--motion", default="20,40", metavar="LOW,HIGH",
                        help="range of the translations in pixels")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="TVNet S-W-N list; trailing 'c': bicubic warps; '@z': pyramid factor z")
    parser.add_argument("--opencv", default=",".join(OPENCV_METHODS),
                        help=f"OpenCV methods, comma separated, from {', '.join(OPENCV_METHODS)}")
    parser.add_argument("--quick", action="store_true",
                        help="one pair of each kind at 96x128 with 20-30 px motion; TVNet 1-1-50 and "
                             "5-5-50 only; no OpenCV defaults (which take seconds per pair on large motion)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        motion = tuple(float(v) for v in args.motion.split(","))
        if len(motion) != 2:
            raise ValueError
    except ValueError:
        parser.error(f"argument --motion: expected LOW,HIGH in pixels, e.g. 20,40; got {args.motion!r}")
    for name in (n for n in args.opencv.split(",") if n):
        if name not in OPENCV_METHODS:
            parser.error(f"argument --opencv: unknown method {name!r} (expected {', '.join(OPENCV_METHODS)})")
    try:
        configs = parse_configs(args.configs)
    except ValueError as err:
        parser.error(str(err))
    size = args.size
    if args.quick:
        size, args.pairs, motion = (96, 128), 1, (20.0, 30.0)
        configs = parse_configs("1-1-50,5-5-50")
        args.opencv = ",".join(m for m in args.opencv.split(",") if m != "opencv")  # minutes per pair here
    try:
        pairs = [make_large_pair(size, kind, seed=i, motion=motion)
                 for kind in KINDS for i in range(args.pairs)]
    except ValueError as err:
        parser.error(f"--size / --motion: {err}")
    occ = np.mean([1 - p.valid.mean() for p in pairs])
    print(f"{len(pairs)} pairs of {size[0]}x{size[1]} (HxW): {args.pairs} global + {args.pairs} piecewise, "
          f"translations {motion[0]:g}-{motion[1]:g} px, largest displacement "
          f"{max(p.params['max_px'] for p in pairs):.1f} px, {100 * occ:.1f}% occluded pixels", flush=True)

    methods = [("zero flow", False, lambda: (lambda g0, g1: np.zeros(g0.shape + (2,), np.float32)))]
    methods += [(name, False, lambda n=name: classical_method(n)) for name in args.opencv.split(",") if name]
    methods += [(f"tvnet {label}", True, lambda c=c, i=i, z=z: tvnet_method(c, i, z))
                for label, c, i, z in configs]

    rows = []
    for name, warmup, make in methods:
        first, per_pair, sums = measure(make(), pairs, warmup)
        row = dict(method=name, first=first if warmup else None,
                   pairs_per_s=(1 / per_pair if name != "zero flow" else None))
        for kind in KINDS:
            ks = [s for s, p in zip(sums, pairs) if p.kind == kind]
            row[kind] = {k: pooled(ks, k) for k in ks[0]}
        row["all"] = {k: pooled(sums, k) for k in sums[0]}
        rows.append(row)
        speed = "" if row["pairs_per_s"] is None else f"{row['pairs_per_s']:.2f} pairs/s"
        print(f"  {name:22s} EPE noc {row['all']['noc']:7.3f}  {speed}", flush=True)

    peer = next((r for r in rows if r["method"].startswith("opencv")), None)
    bucket_keys = [k for k in rows[0]["all"] if k not in ("all", "noc", "occ")]
    ranked = sorted(rows, key=lambda r: r["all"]["noc"])

    def fmt(v, w=6):
        return f"{v:{w}.2f}" if v is not None else f"{'-':>{w}s}"

    header = (f"{'rank':>4s} {'method':22s} {'all':>6s} {'noc':>6s} {'occ':>6s} | "
              + " ".join(f"{k:>6s}" for k in bucket_keys)
              + f" | {'glob':>6s} {'piece':>6s} {'piece':>6s} | {'pairs/s':>7s} {'speed x':>7s} {'first s':>7s}")
    print("\nEPE in px (pooled over pixels; 'noc' = non-occluded; buckets: non-occluded pixels by true "
          "displacement; glob/piece = noc EPE of the global / piecewise pairs, last 'piece' = all pixels)")
    print(header)
    print("-" * len(header))
    for i, r in enumerate(ranked, 1):
        a = r["all"]
        speed = r["pairs_per_s"] / peer["pairs_per_s"] if r["pairs_per_s"] and peer else None
        print(f"{i:4d} {r['method']:22s} {fmt(a['all'])} {fmt(a['noc'])} {fmt(a['occ'])} | "
              + " ".join(fmt(a[k]) for k in bucket_keys)
              + f" | {fmt(r['global']['noc'])} {fmt(r['piecewise']['noc'])} {fmt(r['piecewise']['all'])} | "
              f"{fmt(r['pairs_per_s'], 7)} {fmt(speed, 7)} {fmt(r['first'], 7)}")
    result = dict(size=list(size), motion=list(motion), pairs=[p.params for p in pairs], rows=rows)
    if args.json:
        atomic_write_json(args.json, result, indent=1)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
