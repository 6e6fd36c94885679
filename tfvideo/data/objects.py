"""``objects``: the built-in, offline labelled video set with exact optical flow and occlusions.

Objects cut from real photographs (scikit-image, no download) move -- translation, rotation and
scale, each smooth over the clip -- over real photographic backgrounds filmed by a slowly panning and
zooming camera. Every frame has its per-pixel class label, every frame pair its exact optical flow and
occlusion mask. Classes (:data:`CLASSES`, 0 = ``background``, 8 in all as GATECH) are decided by the
object's appearance only; shape, size and motion have the same distribution for every class. The
deterministic scene model -- the classes and their photo regions, the equations of the layer maps,
the flow ``flow_t(p) = A_{L,t+1}^-1(A_{L,t}(p)) - p``, how occlusions are decided, the rendering --
is documented and implemented in :mod:`tfvideo.data.objects_scene`; everything public there is
re-exported here. This module draws the random clips of the dataset, writes it, draws the preview
sheet and holds the command line.

Random clips
------------
:func:`clip_spec` draws clip ``k`` of a split from two independent streams:
``default_rng([seed, split, k, 1])`` draws the geometry (object count, shapes, sizes, positions,
depth order, object and camera motion) and ``default_rng([seed, split, k, 2])`` the appearance
(object classes, distinct within a clip; textures; background photo and placement; colour gain;
noise). The geometry is therefore independent of the classes by construction: shape, size and
motion never tell the class (``test_objects.py`` also checks the per-class statistics of many specs).
Distributions, at the stored resolution (``m = min(H, W)``, ``D`` = half the frame diagonal), and why:

* objects: count ``1..3`` uniform (GATECH-like scenes with a few objects that can overlap, which is
  where most occlusions come from); ``radius ~ U(0.12, 0.28) m`` (at 96 x 128: 12-27 px, large
  enough to show recognisable texture, small enough to leave background around); outline harmonics
  ``a_k ~ U(0, 0.3 / k)``, ``k = 2, 3, 4``, random phases (smooth, varied blobs; ``sum a_k < 0.33``
  keeps them star-shaped around their centre); mid-clip position uniform in the central 60 % of the frame (objects
  start inside and may leave it);
* object motion: speed ``U(0.25, 1.5)`` px/frame and acceleration ``U(0, 0.04)`` px/frame^2 in random
  directions (a curved path; flows of a few pixels, the range V2V's and DFF's flow heads are trained
  on), angle ``U(-30, 30)`` degrees (photos stay roughly upright), spin ``U(-1.5, 1.5)``
  degrees/frame, scale rate ``U(-0.01, 0.01)`` per frame (up to 17 % growth or shrinking over 32
  frames);
* textures: the object's bounding disc covers a fraction ``U(0.35, 0.8)`` of the class region's
  short side, placed uniformly inside the region, so an object always shows a sizeable part of its
  subject (whatever its size) and never anything outside the region;
* background: photo uniform over :data:`BACKGROUNDS`; zoom ``U(1, 2)`` photo px per frame px
  (log-uniform; never magnified: magnifying blurs), tilt ``U(-10, 10)`` degrees; pan ``U(0.4, 1.0)``
  px/frame in a random direction, zoom rate and spin each at most ``0.3 |pan| / D`` per frame, so
  the camera alone moves every background pixel by at least ``0.4 |pan|`` (the flow is non-zero
  everywhere); the camera path is placed uniformly inside the photo where it fits;
* per clip: colour gain ``U(0.95, 1.05)`` per channel and noise std ``U(0.5, 1.5)`` grey levels
  (small, and the same for every class); no per-frame flicker, so brightness constancy holds up to
  noise and resampling.

On disk (GATECH-style, read by :func:`tfvideo.data.segmentation_sets.gatech_items`, which also loads
the flows; ``python -m tfvideo.data.prepare objects`` makes shards of it)::

    <root>/<split>/clip_<k:03d>/frames/00000.jpg ...      split = train / test; JPEG quality 95
    <root>/<split>/clip_<k:03d>/labels/00000.png ...      every frame; uint8 class index
    <root>/<split>/clip_<k:03d>/flows/00000.flo ...       frame t -> t + 1 (T - 1 files, Middlebury
                                                          .flo, :mod:`tfvideo.data.flo`), all valid
    <root>/<split>/clip_<k:03d>/occlusions/00000.png ...  255 = occluded at t, 0 = visible (T - 1)
    <root>/objects.json     the generator parameters (a later call with the same ones skips)
    <root>/README.txt       classes, layout, conventions

Clip ``k`` of a split is :func:`clip_spec` ``(seed=seed, split=split, index=k, ...)``: the train clips
do not depend on the number of test clips and vice versa. Writing: ``objects.json`` first (after the
clips of other parameters are removed), then every clip into a temporary folder renamed when complete
(:func:`tfvideo.files.atomic_directory`), so a folder with a clip's name is always whole and an
interrupted run resumes where it stopped.

Defaults (48 train + 16 test clips of 32 frames at 96 x 128: sizes multiples of 16 and ``T`` a
multiple of 16, as V2V needs) take about 8 s on one core and 230 MB on disk, mostly the 1984
``.flo`` files of 98 KB each (float32; the shards keep flows as float16, half that).

Example
-------
>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> s = generate_objects(root, train_videos=2, test_videos=1, num_frames=3, size=(32, 48),
...                      progress=False)
>>> s["splits"], s["skipped"]
({'train': 2, 'test': 1}, False)
>>> sorted(os.listdir(os.path.join(root, "train", "clip_000")))
['flows', 'frames', 'labels', 'occlusions']

Command line: ``python -m tfvideo.data.objects --out data/objects [--preview sheet.png]``
(``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time

import cv2
import numpy as np

from tfvideo.cli import int_type, size_type
from tfvideo.data.motion import _corners
from tfvideo.data.objects_scene import (  # noqa: F401  (re-exported)
    BACKGROUNDS, CLASS_PHOTOS, CLASS_REGIONS, CLASSES, BackgroundSpec, ClipSpec, ObjectSpec,
    _check_clip_shape, clip_geometry, frame_transform, layer_motion, object_contains, render_clip,
    render_frames)
from tfvideo.data.photos import photo as load_photo
from tfvideo.files import atomic_directory, atomic_write_text

__all__ = [
    "CLASSES", "CLASS_PHOTOS", "CLASS_REGIONS", "BACKGROUNDS", "SPLITS", "VERSION", "JPEG_QUALITY",
    "PALETTE", "BackgroundSpec", "ObjectSpec", "ClipSpec", "clip_spec", "frame_transform",
    "layer_motion", "object_contains", "clip_geometry", "render_frames", "render_clip", "video_name",
    "write_clip", "generate_objects", "label_image", "preview", "build_parser", "main",
]

SPLITS = ("train", "test")
#: Bumped whenever the generated content changes (part of ``objects.json``).
VERSION = 1
#: JPEG quality of the stored frames (high: the frames are the input of dense models).
JPEG_QUALITY = 95
#: Preview colour of each class (RGB), in :data:`CLASSES` order.
PALETTE = np.array([(40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                    (245, 130, 48), (145, 30, 180), (70, 240, 240)], np.uint8)  # = viz.label_palette(8)
_META = "objects.json"
_VIDEO = re.compile(r"clip_\d+")
_TEMP = ".tmp-"  # atomic_directory's prefix

# the distributions of the module doc ("Random clips")
RADIUS = (0.12, 0.28)  # x min(H, W)
MAX_OBJECTS = 3
SPEED = (0.25, 1.5)  # px / frame
ACCELERATION = 0.04  # px / frame^2
ANGLE_DEG = 30.0
SPIN_DEG = 1.5  # per frame
SCALE_RATE = 0.01  # log scale per frame
FOOTPRINT = (0.35, 0.8)  # texture footprint / class region short side
BG_ZOOM = (1.0, 2.0)
BG_TILT_DEG = 10.0
BG_SPEED = (0.4, 1.0)
BG_TURN = 0.3  # |zoom_rate| * D and |spin| * D at most BG_TURN * |pan|
GAIN = 0.05
NOISE = (0.5, 1.5)


# ----------------------------------------------------------------------------------------------------
# random clips
# ----------------------------------------------------------------------------------------------------
def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def _direction(rng, low, high):
    a = rng.uniform(0, 2 * math.pi)
    return rng.uniform(low, high) * np.array([math.cos(a), math.sin(a)])


def clip_spec(*, seed: int = 0, split: str = "train", index: int = 0, num_frames: int = 32,
              size=(96, 128)) -> ClipSpec:
    """The random :class:`ClipSpec` of clip ``index`` of ``split`` (deterministic in ``seed``).

    Two independent streams (module doc, "Random clips"): ``default_rng([seed, split, index, 1])``
    draws the geometry of everything (object count, shapes, sizes, depth order, motions, camera
    motion) and ``default_rng([seed, split, index, 2])`` the appearance (object classes, distinct
    within a clip, textures, background photo and placement, colour gain, noise). The geometry is
    therefore independent of the classes by construction.
    """
    _check_split(split)
    num_frames, (h, w) = _check_clip_shape(num_frames, size)
    geo = np.random.default_rng([int(seed), SPLITS.index(split), int(index), 1])
    app = np.random.default_rng([int(seed), SPLITS.index(split), int(index), 2])
    anchor = (num_frames - 1) / 2.0
    m, half_diag = min(h, w), math.hypot(w - 1, h - 1) / 2.0

    shapes = []
    for _ in range(int(geo.integers(1, MAX_OBJECTS + 1))):
        shapes.append(dict(
            radius=geo.uniform(*RADIUS) * m,
            amplitudes=tuple(geo.uniform(0, 0.3 / k) for k in (2, 3, 4)),
            phases=tuple(geo.uniform(0, 2 * math.pi, 3)),
            position=(geo.uniform(0.2, 0.8) * (w - 1), geo.uniform(0.2, 0.8) * (h - 1)),
            velocity=tuple(_direction(geo, *SPEED)),
            acceleration=tuple(_direction(geo, 0, ACCELERATION)),
            angle=math.radians(geo.uniform(-ANGLE_DEG, ANGLE_DEG)),
            spin=math.radians(geo.uniform(-SPIN_DEG, SPIN_DEG)),
            scale_rate=geo.uniform(-SCALE_RATE, SCALE_RATE), anchor=anchor))
    pan = _direction(geo, *BG_SPEED)
    turn = BG_TURN * float(np.linalg.norm(pan)) / half_diag
    camera = dict(zoom=math.exp(geo.uniform(*np.log(BG_ZOOM))),
                  angle=math.radians(geo.uniform(-BG_TILT_DEG, BG_TILT_DEG)), velocity=tuple(pan),
                  zoom_rate=geo.uniform(-turn, turn), spin=geo.uniform(-turn, turn), anchor=anchor)

    names = [CLASSES[1 + i] for i in app.permutation(len(CLASSES) - 1)[:len(shapes)]]
    objects = []
    for name, shape in zip(names, shapes):
        x0, y0, x1, y1 = CLASS_REGIONS[name]
        short = min(x1 - x0, y1 - y0)
        foot = app.uniform(*FOOTPRINT) * short / 2.0  # photo px covered by the outer radius
        zoom = foot / (shape["radius"] * (1.0 + sum(shape["amplitudes"])))
        cx = x0 + foot + app.uniform() * (x1 - x0 - 1 - 2 * foot)
        cy = y0 + foot + app.uniform() * (y1 - y0 - 1 - 2 * foot)
        objects.append(ObjectSpec(name, texture_center=(cx, cy), texture_zoom=zoom, **shape))
    background = BackgroundSpec(BACKGROUNDS[int(app.integers(len(BACKGROUNDS)))], (0.0, 0.0),
                                **camera)
    spec = ClipSpec(num_frames, (h, w), background, tuple(objects),
                    color=tuple(app.uniform(1 - GAIN, 1 + GAIN, 3)), noise=app.uniform(*NOISE),
                    noise_seed=int(app.integers(2**31)))
    # Place the camera path inside the photo, uniformly where it fits (else centred: the photo is
    # continued by mirroring, a static world, so the flow stays exact), as motion.clip_spec does.
    ph, pw = load_photo(background.photo).shape[:2]
    pts = np.concatenate([_corners(frame_transform(spec, 0, t), (h, w)) for t in range(num_frames)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    room = np.array([pw - 1.0, ph - 1.0]) - (hi - lo)
    offset = -lo + np.where(room >= 0, app.uniform(size=2), 0.5) * room
    background.center = tuple(float(v) for v in offset)
    return spec


def video_name(index: int) -> str:
    """Folder name of clip ``index`` of a split: ``clip_<index:03d>``."""
    return f"clip_{int(index):03d}"


# ----------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------
def _imwrite(path, image, params=()):
    if not cv2.imwrite(path, image, list(params)):
        raise OSError(f"cannot write {path}")


def write_clip(folder, clip: dict, jpeg_quality: int = JPEG_QUALITY) -> None:
    """Write one rendered clip (:func:`render_clip`) into ``folder`` in the layout of the module doc
    (``folder`` is created; files are written directly: callers make the folder atomic)."""
    from tfvideo.data.flo import write_flo

    folder = os.fspath(folder)
    for sub in ("frames", "labels", "flows", "occlusions"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for t, (frame, label) in enumerate(zip(clip["frames"], clip["labels"])):
        _imwrite(os.path.join(folder, "frames", f"{t:05d}.jpg"),
                 cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), (cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)))
        _imwrite(os.path.join(folder, "labels", f"{t:05d}.png"), label)
    for t, (flow, occ) in enumerate(zip(clip["flows"], clip["occlusions"])):
        write_flo(os.path.join(folder, "flows", f"{t:05d}.flo"), flow)
        _imwrite(os.path.join(folder, "occlusions", f"{t:05d}.png"), occ.astype(np.uint8) * 255)


def _read_meta(root):
    try:
        with open(os.path.join(root, _META), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _remove_ours(root, keep_videos: bool) -> None:
    """Remove interrupted temporary folders and (unless ``keep_videos``) every clip folder of the
    split folders: only names this module writes are ever removed."""
    for split in SPLITS:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith(_TEMP) or (not keep_videos and _VIDEO.fullmatch(name)):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _readme(params: dict) -> str:
    h, w = params["size"]
    classes = "\n".join(f"  {i}  {c}" + (f"  (photo {CLASS_PHOTOS[c]})" if i else
                                         f"  (photos {', '.join(BACKGROUNDS)})")
                        for i, c in enumerate(CLASSES))
    return (
        f"objects: built-in labelled video set with exact optical flow (tfvideo.data.objects, version "
        f"{params['version']}).\n\n"
        f"{params['train_videos']} train + {params['test_videos']} test clips of {params['num_frames']} "
        f"frames, {h} x {w} px, seed {params['seed']}.\n"
        "1-3 objects cut from scikit-image photographs move (translation, rotation, scale) over a\n"
        "photographic background filmed by a slowly moving camera. An object's class is decided by\n"
        "its appearance only (shape, size and motion have the same distribution for every class).\n\n"
        f"Classes (label value, name):\n{classes}\n\n"
        "Layout (GATECH-style, tfvideo.data.segmentation_sets.gatech_items):\n"
        "  <split>/clip_<k>/frames/00000.jpg ...      RGB frames, JPEG quality "
        f"{params['jpeg_quality']}\n"
        "  <split>/clip_<k>/labels/00000.png ...      every frame, single-channel uint8 class index\n"
        "  <split>/clip_<k>/flows/00000.flo ...       exact flow frame t -> t+1 (Middlebury .flo)\n"
        "  <split>/clip_<k>/occlusions/00000.png ...  255 = the point at t is not visible at t+1\n"
        "  objects.json: the generator parameters.\n\n"
        "Flow convention: pixels, [..., 0] = x (right), [..., 1] = y (down),\n"
        "frame[t+1](p + flow(p)) = frame[t](p). Occluded: p + flow(p) leaves [0, W-1] x [0, H-1],\n"
        "or an object in front of p's layer covers it at t+1. Flow is exact also at occluded\n"
        "pixels.\n")


def generate_objects(root, *, seed: int = 0, train_videos: int = 48, test_videos: int = 16,
                     num_frames: int = 32, size=(96, 128), overwrite: bool = False,
                     progress: bool = True) -> dict:
    """Write the ``objects`` dataset to ``root`` (layout in the module doc).

    If ``root/objects.json`` holds the same parameters and every clip folder exists, nothing is
    written (``summary["skipped"] = True``). Clip folders of other parameters are removed and
    regenerated; with the same parameters, missing clips are written (resuming an interrupted run);
    ``overwrite`` regenerates everything. A non-empty ``root`` without ``objects.json`` is refused
    unless ``overwrite``. Only names this module writes are ever removed.

    Args:
      root: output folder (created).
      seed: everything is deterministic in it.
      train_videos, test_videos: clips per split (>= 1 and >= 0).
      num_frames: frames per clip (>= 2).
      size: ``(height, width)``, each >= 16.
      overwrite: regenerate even if the folder already holds the same dataset.
      progress: show a tqdm progress bar.

    Returns:
      dict: ``root``, ``classes``, ``num_videos``, ``splits`` (``{"train": n, "test": n}``),
      ``num_frames``, ``size``, ``seed``, ``skipped``, ``written`` (clips written by this call),
      ``seconds``.
    """
    start = time.perf_counter()
    root = os.fspath(root)
    num_frames, size = _check_clip_shape(num_frames, size)
    for name, v, low in (("train_videos", train_videos, 1), ("test_videos", test_videos, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    counts = {"train": int(train_videos), "test": int(test_videos)}
    params = dict(version=VERSION, seed=int(seed), train_videos=counts["train"],
                  test_videos=counts["test"], num_frames=num_frames, size=list(size),
                  jpeg_quality=JPEG_QUALITY, classes=list(CLASSES), backgrounds=list(BACKGROUNDS))
    paths = [(split, k, os.path.join(root, split, video_name(k)))
             for split in SPLITS for k in range(counts[split])]
    summary = dict(root=root, classes=list(CLASSES), num_videos=len(paths), splits=counts,
                   num_frames=num_frames, size=size, seed=int(seed))
    meta = _read_meta(root)
    if not overwrite and meta == params and all(os.path.isdir(p) for _, _, p in paths):
        return dict(summary, skipped=True, written=0, seconds=time.perf_counter() - start)
    if os.path.isdir(root) and meta is None and os.listdir(root) and not overwrite:
        raise ValueError(f"root {root!r} is not empty and is not an objects dataset (no {_META}; it "
                         f"holds {', '.join(sorted(os.listdir(root))[:3])}...); choose an empty "
                         "folder or pass overwrite=True")

    same = meta == params and not overwrite
    if not same and os.path.exists(os.path.join(root, _META)):
        os.remove(os.path.join(root, _META))  # first out: the clips below are no longer ours
    _remove_ours(root, keep_videos=same)
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, _META), json.dumps(params, indent=1) + "\n")
    atomic_write_text(os.path.join(root, "README.txt"), _readme(params))
    todo = [(s, k, p) for s, k, p in paths if not os.path.isdir(p)]
    from tqdm import tqdm

    for split, k, path in tqdm(todo, desc="objects", unit="clip", disable=not progress):
        clip = render_clip(clip_spec(seed=int(seed), split=split, index=k, num_frames=num_frames,
                                     size=size))
        with atomic_directory(path, prefix=_TEMP) as tmp:
            write_clip(tmp, clip)
    return dict(summary, skipped=False, written=len(todo), seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------
# preview and command line
# ----------------------------------------------------------------------------------------------------
def label_image(labels) -> np.ndarray:
    """Class-index map ``(H, W)`` -> RGB ``uint8`` in :data:`PALETTE` colours (255 = white)."""
    from tfvideo.viz import label_image as colour  # lazily: viz imports TensorFlow

    return colour(labels, len(PALETTE))


def _class_legend(height: int) -> np.ndarray:
    """A white image listing every class with its palette colour."""
    row = max(12, height // len(CLASSES))
    img = np.full((row * len(CLASSES), 150, 3), 255, np.uint8)
    for i, name in enumerate(CLASSES):
        y = i * row
        img[y + 2:y + row - 2, 2:row] = PALETTE[i]
        cv2.putText(img, f"{i} {name}", (row + 4, y + row - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * row / 16, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def preview(path, *, seed: int = 0, split: str = "train", videos: int = 4, num_frames: int = 32,
            size=(96, 128), max_flow: float = 2.0) -> str:
    """Write a PNG contact sheet; returns the path.

    One row per clip (the first ``videos`` clips of ``split``): first and last frame, label map of
    frame 0 (:data:`PALETTE` colours), exact flow 0 -> 1 (Middlebury colours saturating at
    ``max_flow`` px) and the occlusion mask 0 -> 1 (white = occluded); a last row holds the class
    legend and the flow colour legend.
    """
    from tfvideo.viz import flow_image, flow_legend, save_png, side_by_side

    if isinstance(videos, bool) or not isinstance(videos, (int, np.integer)) or videos < 1:
        raise ValueError(f"videos must be an integer >= 1, got {videos!r}")
    rows = []
    for k in range(videos):
        clip = render_clip(clip_spec(seed=seed, split=split, index=k, num_frames=num_frames,
                                     size=size))
        occ = np.where(clip["occlusions"][0], 255, 0).astype(np.uint8)
        rows.append(side_by_side(
            [clip["frames"][0], clip["frames"][-1], label_image(clip["labels"][0]),
             flow_image(clip["flows"][0], max_flow=max_flow), occ],
            labels=[f"{video_name(k)} t=0", f"t={num_frames - 1}", "labels t=0", "flow 0->1",
                    "occluded 0->1"]))
    legend = _class_legend(2 * size[0])
    rows.append(side_by_side([legend, flow_legend(legend.shape[0])],
                             labels=["classes", f"flow, {max_flow:g} px at the circle"]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return save_png(path, np.concatenate(rows, axis=0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfvideo.data.objects",
        description="Generate the built-in 'objects' set (objects cut from scikit-image photographs "
                    "moving over photographic backgrounds; per-pixel class labels, exact flow and "
                    "occlusions for every frame) in the GATECH-style layout OUT/<split>/clip_<k>/"
                    "{frames,labels,flows,occlusions}/. Skips if OUT already holds the same dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int_type(minimum=0), default=0,
                        help="random seed (everything depends on it)")
    parser.add_argument("--train-videos", type=int_type(minimum=1), default=48, help="train clips")
    parser.add_argument("--test-videos", type=int_type(minimum=0), default=16, help="test clips")
    parser.add_argument("--num-frames", type=int_type(minimum=2), default=32, help="frames per clip")
    parser.add_argument("--size", type=size_type(minimum=16), default=(96, 128), metavar="HxW",
                        help="frame size HEIGHTxWIDTH (height first), or N for N x N; each side >= 16")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if OUT already holds the same dataset")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--preview", metavar="PNG",
                        help="also write a contact sheet (one row per clip: frames, labels, exact "
                             "flow, occlusions) to this PNG")
    parser.add_argument("--preview-videos", type=int_type(minimum=1), default=4,
                        help="clips shown in the preview")
    return parser


def main(argv=None) -> dict:
    """CLI entry point; returns the summary of :func:`generate_objects`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        s = generate_objects(args.out, seed=args.seed, train_videos=args.train_videos,
                             test_videos=args.test_videos, num_frames=args.num_frames,
                             size=args.size, overwrite=args.overwrite,
                             progress=not args.no_progress)
    except ValueError as err:
        parser.error(str(err))
    if args.preview:
        sheet = preview(args.preview, seed=args.seed, videos=args.preview_videos,
                        num_frames=args.num_frames, size=args.size)
        print(f"preview: {sheet}")
    h, w = s["size"]
    print(f"objects: {'already complete, skipped' if s['skipped'] else 'wrote'} {s['num_videos']} "
          f"clips (train {s['splits']['train']} / test {s['splits']['test']}, {s['num_frames']} "
          f"frames {h}x{w}, {len(CLASSES)} classes, seed {s['seed']}) in {s['root']} "
          f"[{s['seconds']:.1f} s]", flush=True)
    return s


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
