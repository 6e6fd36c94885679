"""TVNet vs OpenCV TV-L1 on a real photograph with a known, exact motion.

Run::

    python -m tfvideo.demo.flow [--out outputs/demo_flow] [--size 173x256] \
        [--scales 3 --warps 3 --iterations 50] [--seed 0] [--photo astronaut] [--max-motion 4]

``--size`` is ``HEIGHTxWIDTH``, height first like every size in tfvideo
(:func:`tfvideo.checks.parse_size`), or one number ``N`` for an ``N x N`` frame.

What it does
------------
1. Builds a frame pair from a photograph that ships with scikit-image (no download,
   :func:`tfvideo.data.photos.photo`): ``frame0`` is a crop of the photo (resized to the frame size
   ``--size``) and ``frame1`` is the same crop moved by a random smooth similarity motion (small
   rotation + zoom + translation about the frame centre, at most ``--max-motion`` pixels anywhere in
   the frame). ``frame1`` is resampled with ``cv2.remap`` (bicubic) from the *larger* photo, so its
   borders hold real image content rather than padding. The ground-truth flow is exact, in the
   project's (OpenCV) convention ``frame1(p + flow(p)) = frame0(p)``: see :func:`make_frame_pair`.
2. Computes the flow with a frozen :class:`tfvideo.layers.TVNet` (``layer.trainable = False``: exact
   TV-L1 with the ``--scales``/``--warps``/``--iterations`` given) inside ``tf.function``, and with
   OpenCV's ``cv2.optflow.DualTVL1OpticalFlow_create()`` (default parameters). Both see the same 8-bit
   grey images.
3. Prints the average end-point error (EPE) of each against the ground truth (ignoring a 10-pixel
   border), the EPE of predicting zero motion (a baseline), the EPE between TVNet and OpenCV, and
   timings; writes ``<out>/flow_comparison.png``: frame0 | frame1 | ground truth | TVNet | OpenCV |
   colour legend, every flow colour-coded (Middlebury) with one common ``max_flow``.

:func:`main` takes an ``argv`` list and returns a dict of the numbers, so tests can call it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from typing import Sequence

import cv2
import numpy as np

from tfvideo.checks import parse_size
from tfvideo.cli import float_type, int_type, size_type
from tfvideo.data import photos

__all__ = [
    "PHOTOS",
    "EPE_MARGIN",
    "FramePair",
    "DEFAULT_SIZE",
    "make_frame_pair",
    "border_mask",
    "opencv_tvl1",
    "build_parser",
    "main",
]

#: The photographs offered by ``--photo`` (any of :data:`tfvideo.data.photos.PHOTOS` works in Python).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
#: Pixels ignored at each border when computing EPE.
EPE_MARGIN = 10
#: Default frame size ``(height, width)``: 256 wide with the 250:370 aspect of the benchmark's sizes.
DEFAULT_SIZE = (173, 256)
#: Smallest accepted frame side (the 10-pixel EPE margin must leave an interior).
MIN_SIDE = 32
#: Largest accepted frame side (memory / run time guard).
MAX_SIDE = 2048
#: Fraction of the photo (per side) that the frame covers: the rest is real content around the frame.
_CROP_FRACTION = 0.85


# ----------------------------------------------------------------------------------------------------
# frame pair with exact ground truth
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FramePair:
    """Two frames with an exact ground-truth flow.

    Attributes:
      frame0, frame1: ``(H, W, 3)`` uint8 RGB frames.
      grey0, grey1: ``(H, W)`` uint8 grey versions (``cv2.COLOR_RGB2GRAY``, BT.601 weights) — what every
        flow method is given.
      flow: ``(H, W, 2)`` float32 ground truth, ``[..., 0]`` horizontal, with
        ``frame1(p + flow(p)) = frame0(p)``.
      motion: the motion parameters (``angle_deg``, ``zoom``, ``tx``, ``ty``, ``max_px``, ``photo``,
        ``seed``).
    """

    frame0: np.ndarray
    frame1: np.ndarray
    grey0: np.ndarray
    grey1: np.ndarray
    flow: np.ndarray
    motion: dict

    @property
    def height(self) -> int:
        return int(self.frame0.shape[0])

    @property
    def width(self) -> int:
        return int(self.frame0.shape[1])


def _check_frame_size(size) -> tuple[int, int]:
    """``(height, width)`` from a size (:func:`tfvideo.checks.parse_size`), each side in
    ``MIN_SIDE..MAX_SIDE``."""
    height, width = parse_size(size, "size")
    for what, v in (("height", height), ("width", width)):
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise ValueError(
                f"frame {what} must be between {MIN_SIDE} and {MAX_SIDE} pixels (the EPE ignores a "
                f"{EPE_MARGIN}-pixel border); got {v}"
            )
    return height, width


def make_frame_pair(
    size=DEFAULT_SIZE,
    *,
    seed: int = 0,
    photo: str = "astronaut",
    max_motion: float = 4.0,
) -> FramePair:
    """A real frame pair moved by a known smooth motion, with its exact ground-truth flow.

    The motion is a similarity transform about the frame centre ``c``::

        M(p) = p + A (p - c) + t,     A = [[a, -b], [b, a]]

    i.e. a rotation by ``atan2(b, 1 + a)`` and a zoom by ``hypot(1 + a, b)`` about ``c``, then a
    translation ``t``. A pixel ``p`` of ``frame0`` is seen at ``M(p)`` in ``frame1``, so the exact flow
    (OpenCV convention, ``frame1(p + flow(p)) = frame0(p)``) is ``flow(p) = A (p - c) + t``. The
    parameters are random (``seed``) and scaled so that the largest displacement in the frame is between
    0.6 and 1 times ``max_motion`` (capped at 5 % of the smaller frame side for tiny frames).

    The photo is first resized (area interpolation) so that its central ``85 %`` maps to the frame size;
    ``frame0`` is the central crop and ``frame1(q) = photo(M^-1(q) + offset)`` is resampled bicubically
    from the whole resized photo, so content moving in at the borders is real.

    Args:
      size: frame size ``(height, width)``, ``"HxW"`` (height first) or one int for a square; each
        side 32..2048 pixels.
      seed: random seed of the motion.
      photo: a scikit-image photograph, one of :data:`tfvideo.data.photos.PHOTOS`.
      max_motion: upper bound of the displacement in pixels (> 0).

    Returns:
      A :class:`FramePair`.
    """
    height, width = _check_frame_size(size)
    if isinstance(max_motion, bool) or not isinstance(max_motion, (int, float, np.number)) or not (
        0 < float(max_motion) <= 0.25 * min(width, height)
    ):
        raise ValueError(
            f"`max_motion` must be a number in (0, {0.25 * min(width, height):g}] (a quarter of the smaller "
            f"frame side); got {max_motion!r}"
        )
    src = photos.photo(photo)
    ph, pw = src.shape[:2]

    # Resize the photo so that a crop of _CROP_FRACTION of it (with the frame's aspect) is width x height.
    crop_w = min(pw * _CROP_FRACTION, ph * _CROP_FRACTION * width / height)
    scale = width / crop_w
    ww, wh = max(width, int(round(pw * scale))), max(height, int(round(ph * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    work = cv2.resize(src, (ww, wh), interpolation=interp)
    ox, oy = (ww - width) // 2, (wh - height) // 2

    # Random similarity motion, exactly linear in (a, b, tx, ty): scale it to the wanted maximum.
    rng = np.random.default_rng(seed)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    half_diag = math.hypot(cx, cy)
    a, b = 1.5 * rng.normal(size=2) / half_diag  # rotation / zoom: visible, non-uniform field
    t = rng.normal(size=2)
    corners = np.array([[-cx, -cy], [cx, -cy], [-cx, cy], [cx, cy]])
    A = np.array([[a, -b], [b, a]])
    peak = np.max(np.linalg.norm(corners @ A.T + t, axis=1))  # |affine| is convex: max at a corner
    target = min(float(max_motion), 0.05 * min(width, height)) * rng.uniform(0.6, 1.0)
    k = target / peak
    A, t = A * k, t * k

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    d = np.stack([xs - cx, ys - cy], axis=-1)
    flow = d @ A.T + t  # (H, W, 2): (u, v)

    # frame1(q) = frame0(M^-1(q)); M^-1(q) = c + (I + A)^-1 (q - c - t)
    inv = np.linalg.inv(np.eye(2) + A)
    src_xy = (d - t) @ inv.T + np.array([cx, cy])
    map_x = (src_xy[..., 0] + ox).astype(np.float32)
    map_y = (src_xy[..., 1] + oy).astype(np.float32)
    f1 = cv2.remap(work, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    f0 = work[oy : oy + height, ox : ox + width]
    frame0 = np.clip(np.rint(f0), 0, 255).astype(np.uint8)
    frame1 = np.clip(np.rint(f1), 0, 255).astype(np.uint8)
    motion = dict(
        photo=photo,
        seed=int(seed),
        angle_deg=float(np.degrees(np.arctan2(A[1, 0], 1.0 + A[0, 0]))),
        zoom=float(np.hypot(1.0 + A[0, 0], A[1, 0])),
        tx=float(t[0]),
        ty=float(t[1]),
        max_px=float(np.max(np.linalg.norm(flow, axis=-1))),
    )
    return FramePair(
        frame0=frame0,
        frame1=frame1,
        grey0=cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY),
        grey1=cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY),
        flow=flow.astype(np.float32),
        motion=motion,
    )


def border_mask(height: int, width: int, margin: int = EPE_MARGIN) -> np.ndarray:
    """``(H, W)`` bool mask that is False within ``margin`` pixels of the border."""
    mask = np.zeros((height, width), bool)
    mask[margin : height - margin, margin : width - margin] = True
    return mask


def epe(flow, flow_gt, margin: int = EPE_MARGIN) -> float:
    """Mean end-point error of ``(..., H, W, 2)`` flows, ignoring ``margin`` pixels at the borders."""
    from tfvideo.ops.flow import endpoint_error

    flow = np.asarray(flow, np.float32)
    flow_gt = np.asarray(flow_gt, np.float32)
    h, w = flow.shape[-3:-1]
    mask = np.broadcast_to(border_mask(h, w, margin), flow.shape[:-1])
    return float(endpoint_error(flow, flow_gt, mask=mask))


def opencv_tvl1():
    """``cv2.optflow.DualTVL1OpticalFlow_create()`` with default parameters (needs opencv-contrib)."""
    optflow = getattr(cv2, "optflow", None)
    if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
        raise RuntimeError(
            "cv2.optflow.DualTVL1OpticalFlow_create is missing: install opencv-contrib-python(-headless)"
        )
    return optflow.DualTVL1OpticalFlow_create()


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfvideo.demo.flow",
        description=(
            "TVNet (frozen = exact TV-L1) vs OpenCV's DualTVL1 on a real photograph moved by a known smooth "
            "motion. Prints EPEs against the exact ground truth and timings, and writes a side-by-side PNG."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default=os.path.join("outputs", "demo_flow"),
                        help="output directory; the PNG is written to OUT/flow_comparison.png")
    parser.add_argument("--size", type=size_type(MIN_SIDE), default="x".join(map(str, DEFAULT_SIZE)),
                        metavar="HxW",
                        help=f"frame size HEIGHTxWIDTH (height first, e.g. 173x256), or N for an N x N "
                             f"square; each side {MIN_SIDE}..{MAX_SIDE} pixels")
    parser.add_argument("--scales", type=int_type(), default=3, help="TVNet pyramid levels")
    parser.add_argument("--warps", type=int_type(), default=3, help="TVNet warps per level")
    parser.add_argument("--iterations", type=int_type(), default=50, help="TVNet iterations per warp")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic motion")
    parser.add_argument("--photo", choices=PHOTOS, default="astronaut",
                        help="scikit-image sample photograph to use")
    parser.add_argument("--max-motion", type=float_type(), default=4.0, metavar="PX",
                        help="largest displacement in the frame, in pixels (capped at 5%% of the smaller "
                             "frame side)")
    return parser


def _stage(i: int, n: int, text: str) -> None:
    print(f"[{i}/{n}] {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the demo; returns a dict of the numbers (EPEs in pixels, times in seconds, PNG path).

    Raises ``SystemExit`` (exit status 2, message on stderr) for bad arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    height, width = args.size
    if max(height, width) > MAX_SIDE:
        parser.error(f"argument --size: each side must be at most {MAX_SIDE} pixels, got "
                     f"{height}x{width}")
    if args.max_motion > 0.25 * min(width, height):
        parser.error(f"--max-motion {args.max_motion:g} is too large for a {height}x{width} frame "
                     f"(at most {0.25 * min(width, height):g})")
    n = 5

    _stage(1, n, f"building a {height}x{width} (height x width) frame pair from skimage.data.{args.photo}() "
                 f"(seed {args.seed})")
    pair = make_frame_pair((height, width), seed=args.seed, photo=args.photo, max_motion=args.max_motion)
    m = pair.motion
    print(f"      motion: rotation {m['angle_deg']:+.3f} deg, zoom {m['zoom']:.4f}, translation "
          f"({m['tx']:+.2f}, {m['ty']:+.2f}) px; max displacement {m['max_px']:.2f} px", flush=True)

    import tensorflow as tf

    from tfvideo.layers import TVNet
    from tfvideo.ops.flow import flow_to_color
    from tfvideo.viz import flow_legend, save_png, side_by_side

    cfg = f"{args.scales}-{args.warps}-{args.iterations}"
    _stage(2, n, f"TVNet {cfg} (frozen: exact TV-L1), tf.function")
    layer = TVNet(scales=args.scales, warps=args.warps, iterations=args.iterations)
    layer.trainable = False

    @tf.function
    def fn(frame0, frame1):
        return layer([frame0, frame1])

    g0 = tf.constant(pair.grey0[None, ..., None], tf.float32)
    g1 = tf.constant(pair.grey1[None, ..., None], tf.float32)
    t0 = time.perf_counter()
    flow_tv = fn(g0, g1).numpy()[0]
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    flow_tv = fn(g0, g1).numpy()[0]
    t_tv = time.perf_counter() - t0
    print(f"      first call (trace + run) {t_first:.2f} s, second call {t_tv:.3f} s", flush=True)

    _stage(3, n, "OpenCV DualTVL1 (default parameters)")
    tvl1 = opencv_tvl1()
    t0 = time.perf_counter()
    flow_cv = tvl1.calc(pair.grey0, pair.grey1, None)
    t_cv = time.perf_counter() - t0
    print(f"      {t_cv:.3f} s", flush=True)

    _stage(4, n, f"end-point errors (ignoring a {EPE_MARGIN}-pixel border)")
    res = dict(
        width=width,
        height=height,
        config=cfg,
        motion=m,
        epe_zero=epe(np.zeros_like(pair.flow), pair.flow),
        epe_tvnet=epe(flow_tv, pair.flow),
        epe_opencv=epe(flow_cv, pair.flow),
        epe_tvnet_vs_opencv=epe(flow_tv, flow_cv),
        time_tvnet_first_s=t_first,
        time_tvnet_s=t_tv,
        time_opencv_s=t_cv,
    )
    rows = [
        ("zero flow (baseline)", res["epe_zero"], "-"),
        (f"TVNet {cfg}", res["epe_tvnet"], f"{t_tv:.3f} s (first call {t_first:.2f} s)"),
        ("OpenCV DualTVL1", res["epe_opencv"], f"{t_cv:.3f} s"),
        ("TVNet vs OpenCV", res["epe_tvnet_vs_opencv"], "-"),
    ]
    print(f"      {'method':<22} {'EPE [px]':>9}  time", flush=True)
    for name, e, t in rows:
        print(f"      {name:<22} {e:>9.4f}  {t}", flush=True)

    _stage(5, n, "writing the side-by-side PNG")
    max_flow = max(float(np.max(np.linalg.norm(pair.flow, axis=-1))), 1e-3)
    panels = [
        pair.frame0,
        pair.frame1,
        flow_to_color(pair.flow, max_flow=max_flow),
        flow_to_color(flow_tv, max_flow=max_flow),
        flow_to_color(flow_cv, max_flow=max_flow),
        flow_legend(height),
    ]
    labels = [
        "frame 0",
        "frame 1",
        "ground truth",
        f"TVNet {cfg} EPE {res['epe_tvnet']:.2f}",
        f"OpenCV TV-L1 EPE {res['epe_opencv']:.2f}",
        f"legend ({max_flow:.1f} px)",
    ]
    image = side_by_side(panels, labels=labels)
    png = save_png(os.path.join(args.out, "flow_comparison.png"), image)
    res.update(png=png, png_shape=tuple(int(s) for s in image.shape), max_flow=max_flow)
    print(
        f"done: EPE TVNet {cfg} {res['epe_tvnet']:.3f} px, OpenCV TV-L1 {res['epe_opencv']:.3f} px, zero flow "
        f"{res['epe_zero']:.3f} px; TVNet {t_tv:.2f} s vs OpenCV {t_cv:.2f} s -> {png}",
        flush=True,
    )
    return res


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
    sys.exit(0)
