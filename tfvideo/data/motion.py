"""``motion``: the built-in, offline action-recognition set of camera motions, in HMDB51's layout.

Every clip shows a real photograph that ships with scikit-image, filmed by a virtual camera that makes
one of 8 motions. The class is decided by the motion only: the photo, crop, scale, tilt, brightness and
noise are drawn from the same distribution for every class, so no single frame tells the class, while
the optical flow between two frames does. The exact ground-truth flow of every frame pair is known
(:func:`exact_flow`).

Classes
-------
Names describe the *camera*; the table gives what the image content does, in image coordinates
(``x`` right, ``y`` down, pixels) and in the project's flow convention (``frame1(p + flow(p)) =
frame0(p)``, ``flow[..., 0] = u`` horizontal). ``c`` is the frame centre; ``s`` the clip's speed.
Label index = position in the sorted list, as HMDB51 labels are the sorted class-folder names.

==  ============  =====================================  ============================================
 #  class         camera                                 content / flow
==  ============  =====================================  ============================================
 0  pan_down      tilts down                             moves up: ``flow = (0, -s)``
 1  pan_left      turns left                             moves right: ``flow = (+s, 0)``
 2  pan_right     turns right                            moves left: ``flow = (-s, 0)``
 3  pan_up        tilts up                               moves down: ``flow = (0, +s)``
 4  rotate_ccw    rolls counter-clockwise (seen from     turns clockwise on screen about ``c``:
                  behind the camera)                     curl ``dv/dx - du/dy > 0``
 5  rotate_cw     rolls clockwise                        turns counter-clockwise: curl ``< 0``
 6  zoom_in       zooms in                               expands from ``c``: ``flow = (m-1)(p-c)``,
                                                         ``m > 1``, divergence ``> 0``
 7  zoom_out      zooms out                              contracts towards ``c``: ``m < 1``,
                                                         divergence ``< 0``
==  ============  =====================================  ============================================

("Clockwise on screen" is as a viewer sees the image: top -> right -> bottom -> left. In ``y``-down
coordinates that is the matrix ``[[cos a, -sin a], [sin a, cos a]]`` with ``a > 0``.) Every frame
pair also carries a small random sub-pixel camera shake (included in the exact flow).

Speeds (at the stored resolution, per frame): pans ``s ~ U(0.5, 2.5)`` px; zooms and rotations move the
midpoints of the left/right borders (radius ``W/2``) by ``d ~ U(1, 2)`` px (corners ``1.25``-``2.5`` px
at 96 x 128; mean over the frame ``0.7``-``1.35`` px) -- the range TV-L1 with one pyramid scale
follows well.

Rendering
---------
Frame ``t`` samples the photo at the affine map ``A_t`` (:func:`frame_transform`) from frame pixels to
photo pixels (pixel centres at integer coordinates, as in OpenCV)::

    A_t(p) = c_t + z_t R(phi_t) (p - c - j_t),   e = t - anchor,
    z_t = zoom * exp(-zoom_rate e),  phi_t = angle - spin e,  c_t = center - zoom R(angle) velocity e

(``z``: photo pixels per frame pixel; ``j_t``: camera shake). Hence the exact flow
``flow_t(p) = A_{t+1}^-1(A_t(p)) - p``. To avoid aliasing each frame is rendered from the photo
area-averaged (``cv2.INTER_AREA``) to its own scale, then ``cv2.warpAffine`` (bilinear) does the
sub-pixel rotation / translation; then a per-clip colour gain, a per-frame brightness flicker
(1 % std) and Gaussian sensor noise are applied, and Motion-JPEG compresses the frames.

Choices made so that a single frame does not tell the class:

* photo: the photo of the ``k``-th clip is the same for every class (a seed-dependent permutation of
  :data:`PHOTOS`, repeated), so every class uses exactly the same photos, equally often;
* scale and tilt: a zoom clip's scale (a rotation clip's tilt) changes along the clip around a random
  anchor frame. Clips of the other classes get a *static* scale (tilt) offset drawn from exactly the
  same distribution as one frame of a zoom (rotation) clip, so the per-frame scale and tilt
  distributions are the same for all classes;
* the camera path is placed at a uniformly random position inside the photo where it stays inside the
  photo for the whole clip (when the photo is too small, it is centred and the photo is continued by
  mirroring, ``BORDER_REFLECT_101``; the mirrored world is static, so the flow stays exact);
* brightness, colour gain and noise never depend on the class.

Photos: ``astronaut brick camera chelsea coffee coins grass gravel hubble_deep_field
immunohistochemistry page retina text`` (grey ones as RGB). Left out: ``cat`` (the same image as
``chelsea``), ``clock``, ``colorwheel``, ``moon`` and ``rocket`` (too many crops with almost no texture:
their motion is invisible, and TV-L1 diverges on them), and the ones that need a download.

On disk (HMDB51's layout, read by the HMDB51 adapter)::

    <root>/<class>/<class>_<photo>_<k:03d>.avi           Motion-JPEG AVI, T frames, H x W, fps
    <root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
                                 lines "<video>.avi <id>", id 1 = train, 2 = test (0 = unused: none)
    <root>/motion.json           generator parameters (a later call with the same ones skips)
    <root>/README.txt

Each split puts ``round(0.7 n)`` videos of every class in train, the rest in test, with a different
random partition per split. The split files are written last and mark completion.

Example
-------
>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> summary = generate_motion(root, videos_per_class=2, num_frames=6, size=(48, 64), progress=False)
>>> summary["num_videos"], summary["skipped"]
(16, False)
>>> spec = clip_spec("zoom_in", seed=0, index=0, num_frames=6, size=(48, 64))
>>> make_clip(spec).shape, clip_flows(spec).shape
((6, 48, 64, 3), (5, 48, 64, 2))

Command line: ``python -m tfvideo.data.motion --out data/motion`` (``--help`` for the options).

Length (over 500 lines, on purpose): the camera-motion renderer, its exact ground-truth flow, the
dataset writer and its CLI must agree on one clip specification; keeping them together keeps that
specification in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time

import cv2
import numpy as np

from tfvideo.cli import size_type
from tfvideo.data import photos
from tfvideo.data.items import Item, ReadError
from tfvideo.files import atomic_write_text

__all__ = [
    "CLASSES", "PHOTOS", "VERSION", "SPLITS_DIR", "ClipSpec", "clip_spec",
    "frame_transform", "make_clip", "exact_flow", "clip_flows", "video_name", "generate_motion",
    "ExactFlow", "build_parser", "main", "preview",
]

#: Class names, sorted: label index = position.
CLASSES = ("pan_down", "pan_left", "pan_right", "pan_up", "rotate_ccw", "rotate_cw", "zoom_in",
           "zoom_out")
#: scikit-image photographs used (loaded by :func:`tfvideo.data.photos.photo`, no download).
PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
          "hubble_deep_field", "immunohistochemistry", "page", "retina", "text")
#: Bumped whenever the generated content changes (part of ``motion.json``).
VERSION = 1
SPLITS_DIR = "testTrainMulti_7030_splits"

PAN_SPEED = (0.5, 2.5)  # px / frame
BORDER_SPEED = (1.0, 2.0)  # px / frame at radius W / 2, zooms and rotations
VIEW_FRACTION = (0.25, 0.5)  # anchor view height / photo short side, log-uniform
BASE_TILT_DEG = 10.0  # anchor tilt ~ U(-10, 10) degrees
SHAKE_PX = 0.15  # camera shake, std of a per-frame translation, px
FLICKER = 0.01  # per-frame brightness gain std
_META = "motion.json"


# ----------------------------------------------------------------------------------------------------
# clip parameters and geometry
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(eq=False)
class ClipSpec:
    """Everything that defines one clip (see the module doc for the formulas).

    Attributes:
      class_name: one of :data:`CLASSES` (descriptive; the motion is in the fields below).
      photo: one of :data:`PHOTOS`.
      num_frames: ``T``.
      size: ``(height, width)`` of the frames.
      center: ``(x, y)``, photo pixel seen at the frame centre at the anchor time (without shake).
      zoom: photo pixels per frame pixel at the anchor time.
      angle: camera roll at the anchor time, radians.
      anchor: the (fractional) time at which ``center``/``zoom``/``angle`` hold.
      velocity: ``(vx, vy)`` content motion on screen, px per frame (pans).
      zoom_rate: log magnification of the content per frame (``> 0`` zoom in).
      spin: content rotation per frame, radians, ``> 0`` = clockwise on screen.
      shake: ``(T, 2)`` per-frame translation of the content, px.
      flicker: ``(T,)`` per-frame brightness gain.
      color: ``(3,)`` per-channel gain of the clip.
      noise: sensor noise std (grey levels).
      noise_seed: seed of the noise.
    """

    class_name: str
    photo: str
    num_frames: int
    size: tuple
    center: tuple
    zoom: float
    angle: float
    anchor: float
    velocity: tuple = (0.0, 0.0)
    zoom_rate: float = 0.0
    spin: float = 0.0
    shake: np.ndarray | None = None
    flicker: np.ndarray | None = None
    color: tuple = (1.0, 1.0, 1.0)
    noise: float = 0.0
    noise_seed: int = 0

    def __post_init__(self):
        if self.class_name not in CLASSES:
            raise ValueError(f"class_name must be one of {', '.join(CLASSES)}, got {self.class_name!r}")
        if self.photo not in PHOTOS:
            raise ValueError(f"photo must be one of {', '.join(PHOTOS)}, got {self.photo!r}")
        self.num_frames, self.size = _check_clip_shape(self.num_frames, self.size)
        t = self.num_frames
        self.shake = np.zeros((t, 2)) if self.shake is None else np.asarray(self.shake, np.float64)
        self.flicker = np.ones(t) if self.flicker is None else np.asarray(self.flicker, np.float64)
        if self.shake.shape != (t, 2) or self.flicker.shape != (t,):
            raise ValueError(f"shake must be ({t}, 2) and flicker ({t},), got {self.shake.shape} and "
                             f"{self.flicker.shape}")
        if not self.zoom > 0:
            raise ValueError(f"zoom must be > 0, got {self.zoom}")


def _check_clip_shape(num_frames, size):
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
        raise ValueError(f"num_frames must be an integer >= 2, got {num_frames!r}")
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 16 or w < 16 or (h, w) != tuple(size):
        raise ValueError(f"size must be two integers >= 16 (height, width), got {size!r}")
    return int(num_frames), (h, w)


def _rot(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def frame_transform(spec: ClipSpec, t: int) -> np.ndarray:
    """The ``(2, 3)`` affine map from frame-``t`` pixel ``(x, y, 1)`` to photo pixel coordinates."""
    h, w = spec.size
    e = t - spec.anchor
    lin = spec.zoom * math.exp(-spec.zoom_rate * e) * _rot(spec.angle - spec.spin * e)
    centre = np.asarray(spec.center) - spec.zoom * _rot(spec.angle) @ np.asarray(spec.velocity) * e
    origin = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) + spec.shake[t]
    return np.concatenate([lin, (centre - lin @ origin)[:, None]], axis=1)


def exact_flow(spec: ClipSpec, t: int) -> np.ndarray:
    """Exact flow ``f``, ``(H, W, 2)`` float32, from frame ``t`` to ``t + 1`` of the clip.

    Project convention: ``frame[t+1](p + f(p)) = frame[t](p)``, ``f[..., 0]`` horizontal, in pixels.
    ``f(p) = A_{t+1}^-1(A_t(p)) - p`` with ``A`` from :func:`frame_transform`; camera shake included.
    ``t`` must be in ``[0, T - 2]``.
    """
    if not 0 <= t < spec.num_frames - 1:
        raise ValueError(f"t must be in [0, {spec.num_frames - 2}], got {t}")
    a0, a1 = (np.vstack([frame_transform(spec, i), [0, 0, 1]]) for i in (t, t + 1))
    m = np.linalg.solve(a1, a0)[:2]  # frame t pixel -> frame t+1 pixel
    h, w = spec.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (m[0, 0] - 1) * xs + m[0, 1] * ys + m[0, 2]
    v = m[1, 0] * xs + (m[1, 1] - 1) * ys + m[1, 2]
    return np.stack([u, v], axis=-1).astype(np.float32)


def clip_flows(spec: ClipSpec) -> np.ndarray:
    """Exact flows of all consecutive frame pairs, ``(T - 1, H, W, 2)`` float32."""
    return np.stack([exact_flow(spec, t) for t in range(spec.num_frames - 1)])


def _corners(a: np.ndarray, size) -> np.ndarray:
    """Where the 4 outer corners of a ``size`` frame go under the ``(2, 3)`` map ``a``: ``(4, 2)``."""
    h, w = size
    pts = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [-0.5, h - 0.5, 1], [w - 0.5, h - 0.5, 1]])
    return pts @ a.T


# ----------------------------------------------------------------------------------------------------
# random clips
# ----------------------------------------------------------------------------------------------------
def _photo_order(seed: int) -> list:
    """The class-independent photo order: clip ``k`` of every class uses ``order[k % len(PHOTOS)]``."""
    return [PHOTOS[i] for i in np.random.default_rng([seed, 0x9407]).permutation(len(PHOTOS))]


def clip_spec(class_name: str, *, seed: int = 0, index: int = 0, num_frames: int = 24,
              size=(96, 128), photo: str | None = None) -> ClipSpec:
    """The random :class:`ClipSpec` of clip ``index`` of ``class_name`` (deterministic in ``seed``).

    Args:
      class_name: one of :data:`CLASSES`.
      seed, index: the clip is drawn from ``np.random.default_rng([seed, class index, index])``.
      num_frames: frames per clip (>= 2).
      size: ``(height, width)`` (each >= 16).
      photo: default: the class-independent choice of clip ``index`` (a seed-dependent permutation of
        :data:`PHOTOS`, repeated).

    Returns:
      A :class:`ClipSpec`; see the module doc for the distributions.
    """
    if class_name not in CLASSES:
        raise ValueError(f"class_name must be one of {', '.join(CLASSES)}, got {class_name!r}")
    num_frames, (h, w) = _check_clip_shape(num_frames, size)
    photo = _photo_order(seed)[index % len(PHOTOS)] if photo is None else photo
    if photo not in PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(PHOTOS)}, got {photo!r}")
    rng = np.random.default_rng([seed, CLASSES.index(class_name), index])
    last = num_frames - 1
    ph, pw = photos.photo(photo).shape[:2]

    # Class-independent appearance.
    view = math.exp(rng.uniform(*np.log(VIEW_FRACTION)))
    zoom = view * min(ph, pw) / h
    angle = math.radians(rng.uniform(-BASE_TILT_DEG, BASE_TILT_DEG))
    anchor = rng.uniform(0, last)
    exposure = rng.uniform(0.8, 1.2)
    color = tuple(exposure * rng.uniform(0.92, 1.08, size=3))
    noise = rng.uniform(0.5, 2.0)
    shake = rng.normal(0.0, SHAKE_PX, size=(num_frames, 2))
    flicker = 1.0 + rng.normal(0.0, FLICKER, size=num_frames)
    noise_seed = int(rng.integers(2**31))
    place = rng.uniform(size=2)

    # Motion. Zoom / rotation rates give the border midpoints (radius w/2) a displacement d.
    pan = rng.uniform(*PAN_SPEED)
    radius = w / 2.0
    expand = rng.uniform(*BORDER_SPEED) / radius
    turn = 2.0 * math.asin(rng.uniform(*BORDER_SPEED) / (2.0 * radius))
    kind, _, direction = class_name.partition("_")
    velocity, zoom_rate, spin = (0.0, 0.0), 0.0, 0.0
    if kind == "pan":
        velocity = {"left": (pan, 0.0), "right": (-pan, 0.0), "up": (0.0, pan), "down": (0.0, -pan)}[
            direction]
    if kind == "zoom":
        zoom_rate = math.log1p(expand if direction == "in" else -expand)
    else:  # static scale offset with the per-frame distribution of a zoom clip
        zoom *= math.exp(math.log1p(expand) * (rng.integers(num_frames) - rng.uniform(0, last)))
    if kind == "rotate":
        spin = turn if direction == "ccw" else -turn
    else:  # static tilt offset with the per-frame distribution of a rotation clip
        angle += turn * (rng.integers(num_frames) - rng.uniform(0, last))

    spec = ClipSpec(class_name, photo, num_frames, (h, w), (0.0, 0.0), zoom, angle, anchor, velocity,
                    zoom_rate, spin, shake, flicker, color, noise, noise_seed)
    # Place the whole camera path inside the photo if it fits (uniformly), else centre it.
    pts = np.concatenate([_corners(frame_transform(spec, t), (h, w)) for t in range(num_frames)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    room = np.array([pw - 1.0, ph - 1.0]) - (hi - lo)
    offset = -lo + np.where(room >= 0, place, 0.5) * room
    spec.center = tuple(float(v) for v in offset)
    return spec


def video_name(class_name: str, photo: str, index: int) -> str:
    """File stem of a clip: ``<class>_<photo>_<index:03d>``."""
    return f"{class_name}_{photo}_{index:03d}"


# ----------------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------------
def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices mapped into ``[0, n)`` like ``cv2.BORDER_REFLECT_101`` (any distance)."""
    period = 2 * n - 2
    idx = np.mod(idx, period)
    return np.where(idx < n, idx, period - idx)


def _area_map(sx: float, sy: float, x0: float = 0.0, y0: float = 0.0) -> np.ndarray:
    """``(2, 3)`` map from source pixels to the pixels of ``cv2.resize(src[y0:, x0:], INTER_AREA)``
    shrunk by ``(sx, sy)``: OpenCV's geometry ``dst = (src - x0 + 0.5) / sx - 0.5``."""
    return np.array([[1 / sx, 0, (0.5 - x0) / sx - 0.5], [0, 1 / sy, (0.5 - y0) / sy - 0.5]])


def _compose(m: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The affine map ``m(a(p))`` of two ``(2, 3)`` maps."""
    return np.concatenate([m[:, :2] @ a[:, :2], m[:, :2] @ a[:, 2:] + m[:, 2:]], axis=1)


@functools.lru_cache(maxsize=None)
def _pyramid(name: str) -> tuple:
    """Photo halved (``INTER_AREA``) until its short side is < 64: ``((image, sx, sy), ...)`` with the
    exact scale of each level relative to the photo."""
    levels = [(photos.photo(name), 1.0, 1.0)]
    ph, pw = levels[0][0].shape[:2]
    while min(levels[-1][0].shape[:2]) >= 64:
        img = levels[-1][0]
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        levels.append((img, pw / img.shape[1], ph / img.shape[0]))
    return tuple(levels)


@functools.lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """8 fixed fields of unit Gaussian noise, ``(8, h + 32, w + 32, 3)``; frames use random crops (fast
    and deterministic)."""
    return np.random.default_rng(0x5E5).standard_normal((8, h + 32, w + 32, 3), dtype=np.float32)


def _render(spec: ClipSpec, t: int) -> np.ndarray:
    """Frame ``t`` before gain / noise: float32 ``(H, W, 3)``, the photo sampled at ``A_t``
    (:func:`_view`)."""
    return _view(spec.photo, frame_transform(spec, t), spec.size)


def _view(name: str, a: np.ndarray, size) -> np.ndarray:
    """``photo(name)`` sampled at the frame->photo map ``a`` over a ``size`` window: float32
    ``(h, w, 3)``, the photo area-averaged to the map's scale (pyramid level, then ``INTER_AREA`` by the
    remaining factor < 2) and sampled bilinearly (mirrored beyond its borders). Shared by the built-in
    sets (``objects`` renders its layers with it)."""
    h, w = size
    z = math.sqrt(abs(np.linalg.det(a[:, :2])))  # photo px per frame px
    img, sx, sy = [lv for lv in _pyramid(name) if lv[1] <= max(z, 1.0)][-1]
    a = _compose(_area_map(sx, sy), a)  # frame -> pyramid level
    r = math.sqrt(abs(np.linalg.det(a[:, :2])))
    if r > 1.0 + 1e-3:
        ih, iw = img.shape[:2]
        pts = _corners(a, size)
        x0, y0 = np.floor(pts.min(axis=0) - 2 * r - 2).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0) + 2 * r + 2).astype(int)
        if x0 >= 0 and y0 >= 0 and x1 <= iw and y1 <= ih:
            img = img[y0:y1, x0:x1]
        else:
            img = img[np.ix_(_reflect(np.arange(y0, y1), ih), _reflect(np.arange(x0, x1), iw))]
        nw, nh = max(1, round((x1 - x0) / r)), max(1, round((y1 - y0) / r))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        a = _compose(_area_map((x1 - x0) / nw, (y1 - y0) / nh, x0, y0), a)
    return cv2.warpAffine(img, a, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def make_clip(spec: ClipSpec) -> np.ndarray:
    """Render the clip: uint8 RGB ``(T, H, W, 3)`` (before any video compression)."""
    h, w = spec.size
    bank = _noise_bank(h, w)
    rng = np.random.default_rng(spec.noise_seed)
    color = np.asarray(spec.color, np.float32)
    frames = np.empty((spec.num_frames, h, w, 3), np.uint8)
    for t in range(spec.num_frames):
        i, dy, dx = rng.integers(len(bank)), rng.integers(33), rng.integers(33)
        f = _render(spec, t) * (color * np.float32(spec.flicker[t]))
        f += bank[i, dy:dy + h, dx:dx + w] * np.float32(spec.noise)
        frames[t] = np.clip(np.rint(f), 0, 255)
    return frames


# ----------------------------------------------------------------------------------------------------
# exact flow into the shards
# ----------------------------------------------------------------------------------------------------
class ExactFlow:
    """The exact flow of every frame pair of a ``motion`` video, stored in its shards (the
    ``prepare(item_transform=...)`` hook, like :class:`tfvideo.teachers.FlowTeacher`).

    Each item's clip parameters are rebuilt from its file (``<root>/<class>/<class>_<photo>_<index>.avi``)
    and ``<root>/motion.json`` (the generator's seed, frame count and size), so the flows are the
    renderer's own (:func:`clip_flows`), not an estimate. Frames resized on the way in (``short_side``)
    get the flow resized with them (vectors scaled); frame-rate subsampling is refused (the exact flow
    is between consecutive rendered frames).

    >>> ExactFlow().settings()
    {'name': 'motion_exact_flow', 'version': 1}
    """

    def settings(self) -> dict:
        return {"name": "motion_exact_flow", "version": VERSION}

    def describe(self) -> str:
        return "exact flow (motion renderer)"

    def wrap(self, item):
        return _ExactFlowItem(video_id=item.video_id, label=item.label, label_text=item.label_text,
                              source=item.source, base=item)


def _spec_of(source: str, class_name: str) -> ClipSpec:
    """The :class:`ClipSpec` a ``motion`` video file was rendered from."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(source)))
    stem = os.path.splitext(os.path.basename(source))[0]
    try:
        with open(os.path.join(root, _META), encoding="utf-8") as f:
            params = json.load(f)
    except (OSError, ValueError) as err:
        raise ReadError(source, f"not a motion video: {os.path.join(root, _META)} unreadable ({err})") from None
    photo = stem[len(class_name) + 1:-4]
    if (params.get("version") != VERSION or not stem.startswith(class_name + "_") or photo not in PHOTOS
            or not stem[-3:].isdigit()):
        raise ReadError(source, f"not a motion video of version {VERSION} named <class>_<photo>_<index>")
    return clip_spec(class_name, seed=int(params["seed"]), index=int(stem[-3:]),
                     num_frames=int(params["num_frames"]), size=tuple(params["size"]), photo=photo)


@dataclasses.dataclass(kw_only=True)
class _ExactFlowItem(Item):
    base: Item

    def load(self, short_side=None, fps=None):
        out = dict(self.base.load(short_side=short_side, fps=fps))
        spec = _spec_of(self.source, self.label_text)
        frames = out["frames"]
        if len(frames) != spec.num_frames:
            raise ReadError(self.source, f"{len(frames)} frames read, {spec.num_frames} rendered: the exact "
                                         "flow needs every frame (no fps subsampling)")
        flows = clip_flows(spec)
        h, w = frames.shape[1:3]
        if (h, w) != spec.size:
            sy, sx = h / spec.size[0], w / spec.size[1]
            flows = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in flows])
            flows *= np.array([sx, sy], np.float32)
        out.update(flows=flows.astype(np.float32), flow_frame_index=np.arange(len(flows), dtype=np.int64),
                   flow_valid=None)
        return out


# ----------------------------------------------------------------------------------------------------
# the dataset on disk
# ----------------------------------------------------------------------------------------------------
def _split_file(root: str, class_name: str, split: int) -> str:
    return os.path.join(root, SPLITS_DIR, f"{class_name}_test_split{split}.txt")


def _render_and_write(task) -> None:
    spec, path, fps = task
    from tfvideo.data.video import write_video

    write_video(path, make_clip(spec), fps=fps)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _complete(root: str, params: dict, names: dict) -> bool:
    try:
        with open(os.path.join(root, _META), encoding="utf-8") as f:
            if json.load(f) != params:
                return False
    except (OSError, ValueError):
        return False
    return all(os.path.isfile(_split_file(root, c, s)) for c in CLASSES for s in (1, 2, 3)) and all(
        os.path.isfile(os.path.join(root, c, n + ".avi")) for c in CLASSES for n in names[c])


def _readme(params: dict) -> str:
    h, w = params["size"]
    return (
        f"motion: built-in camera-motion action-recognition set (tfvideo.data.motion, version "
        f"{params['version']}).\n\n"
        f"{len(CLASSES)} classes x {params['videos_per_class']} clips of {params['num_frames']} frames, "
        f"{h} x {w} px, {params['fps']:g} fps, Motion-JPEG AVI, seed {params['seed']}.\n"
        "Each clip films a scikit-image sample photograph with a virtual camera making one motion:\n"
        "  pan_down/up: content moves up/down; pan_left/right: content moves right/left;\n"
        "  rotate_cw/ccw: camera rolls clockwise/counter-clockwise (content turns the other way);\n"
        "  zoom_in/out: content expands from / contracts to the centre.\n"
        "Photo, crop, scale, tilt, brightness and noise have the same distribution for every class:\n"
        "only the motion tells the class. Exact ground-truth flow: tfvideo.data.motion.exact_flow.\n\n"
        "Layout (HMDB51): <class>/<video>.avi;\n"
        "testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt with lines '<video>.avi <id>'\n"
        "(1 = train, 2 = test), 70/30 per class; motion.json: the generator parameters.\n")


def generate_motion(root, *, seed: int = 0, videos_per_class: int = 40, num_frames: int = 24,
                    size=(96, 128), fps: float = 25, workers: int = 1, overwrite: bool = False,
                    progress: bool = True) -> dict:
    """Write the ``motion`` dataset to ``root`` in HMDB51's layout (see the module doc).

    If ``root/motion.json`` holds the same parameters and all videos and split files exist, nothing is
    written (``summary["skipped"] = True``). Otherwise (or with ``overwrite``) the split files are
    removed first, the videos written, stale ``.avi`` files of the class folders removed, and the split
    files written last. A non-empty ``root`` that is not a motion dataset is refused unless
    ``overwrite``; only the dataset's own files are ever removed.

    Args:
      root: output folder (created).
      seed: everything is deterministic in it.
      videos_per_class: clips per class (>= 2, so that train and test are not empty).
      num_frames: frames per clip (>= 2).
      size: ``(height, width)``, each >= 16.
      fps: frame rate written in the AVI files.
      workers: processes rendering clips (``>1``: a ``spawn`` pool).
      overwrite: regenerate even if the folder already holds the same dataset.
      progress: show a tqdm progress bar.

    Returns:
      dict: ``root``, ``classes``, ``num_videos``, ``videos_per_class``, ``num_frames``, ``size``,
      ``fps``, ``seed``, ``skipped``, ``seconds``, ``splits`` (``{1: {"train": n, "test": n}, ...}``).
    """
    start = time.perf_counter()
    root = os.fspath(root)
    num_frames, size = _check_clip_shape(num_frames, size)
    for name, v, low in (("videos_per_class", videos_per_class, 2), ("workers", workers, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if not (isinstance(fps, (int, float, np.number)) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    params = dict(version=VERSION, seed=int(seed), videos_per_class=int(videos_per_class),
                  num_frames=num_frames, size=list(size), fps=float(fps), classes=list(CLASSES),
                  photos=list(PHOTOS))
    order = _photo_order(int(seed))
    photos = [order[k % len(PHOTOS)] for k in range(videos_per_class)]
    names = {c: [video_name(c, p, k) for k, p in enumerate(photos)] for c in CLASSES}
    n_train = int(round(0.7 * videos_per_class))
    summary = dict(root=root, classes=list(CLASSES), num_videos=len(CLASSES) * videos_per_class,
                   videos_per_class=int(videos_per_class), num_frames=num_frames, size=size,
                   fps=float(fps), seed=int(seed),
                   splits={s: {"train": n_train * len(CLASSES),
                               "test": (videos_per_class - n_train) * len(CLASSES)} for s in (1, 2, 3)})
    if not overwrite and _complete(root, params, names):
        return dict(summary, skipped=True, seconds=time.perf_counter() - start)
    ours = set(CLASSES) | {SPLITS_DIR, _META, "README.txt"}
    if os.path.isdir(root) and not overwrite and not os.path.isfile(os.path.join(root, _META)):
        foreign = sorted(set(os.listdir(root)) - ours)
        if foreign:
            raise ValueError(f"root {root!r} is not empty and is not a motion dataset (it holds "
                             f"{', '.join(foreign[:3])}...); choose an empty folder or pass "
                             "overwrite=True")

    for c in CLASSES:  # incomplete from here on: split files first out, last in
        for s in (1, 2, 3):
            if os.path.exists(_split_file(root, c, s)):
                os.remove(_split_file(root, c, s))
        os.makedirs(os.path.join(root, c), exist_ok=True)
    os.makedirs(os.path.join(root, SPLITS_DIR), exist_ok=True)
    atomic_write_text(os.path.join(root, _META), json.dumps(params, indent=1) + "\n")
    atomic_write_text(os.path.join(root, "README.txt"), _readme(params))

    tasks = [(clip_spec(c, seed=int(seed), index=k, num_frames=num_frames, size=size, photo=p),
              os.path.join(root, c, names[c][k] + ".avi"), float(fps))
             for c in CLASSES for k, p in enumerate(photos)]
    from tqdm import tqdm

    with tqdm(total=len(tasks), desc="motion", unit="clip", disable=not progress) as bar:
        if workers == 1:
            for task in tasks:
                _render_and_write(task)
                bar.update()
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=_worker_init) as pool:
                for _ in pool.imap_unordered(_render_and_write, tasks, chunksize=4):
                    bar.update()

    for c in CLASSES:
        keep = {n + ".avi" for n in names[c]}
        for f in os.listdir(os.path.join(root, c)):
            if f.endswith(".avi") and f not in keep:
                os.remove(os.path.join(root, c, f))
        for s in (1, 2, 3):
            rng = np.random.default_rng([int(seed), 7030, s, CLASSES.index(c)])
            train = set(rng.permutation(videos_per_class)[:n_train].tolist())
            lines = sorted(f"{n}.avi {1 if k in train else 2}\n" for k, n in enumerate(names[c]))
            atomic_write_text(_split_file(root, c, s), "".join(lines))
    return dict(summary, skipped=False, seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfvideo.data.motion",
        description="Generate the built-in 'motion' action-recognition set (8 camera motions over "
                    "scikit-image photographs, class decided by the motion only) in HMDB51's layout: "
                    "OUT/<class>/<video>.avi and OUT/testTrainMulti_7030_splits/. Skips if OUT "
                    "already holds the same dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (everything depends on it)")
    parser.add_argument("--videos-per-class", type=int, default=40, help="clips per class (>= 2)")
    parser.add_argument("--num-frames", type=int, default=24, help="frames per clip (>= 2)")
    parser.add_argument("--size", type=size_type(minimum=16), default=(96, 128), metavar="HxW",
                        help="frame size HEIGHTxWIDTH (height first), or N for N x N; each side >= 16")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate stored in the AVI files")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate even if OUT already holds the same dataset")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--preview", metavar="PNG",
                        help="also write a contact sheet (one row per class: frames, difference, "
                             "exact flow) to this PNG")
    return parser


def preview(path, *, seed: int = 0, index: int = 0, num_frames: int = 24, size=(96, 128),
            max_flow: float = 3.0) -> str:
    """Write a PNG contact sheet: one row per class with its first and last frame, the frame
    difference, and the exact flow between frames 0 and 1 (Middlebury colours, saturating at
    ``max_flow`` px, legend in the last column). Returns the path."""
    from tfvideo.viz import flow_image, flow_legend, save_png, side_by_side

    rows = []
    for name in CLASSES:
        spec = clip_spec(name, seed=seed, index=index, num_frames=num_frames, size=size)
        clip = make_clip(spec)
        diff = np.abs(clip[-1].astype(np.int16) - clip[0]).astype(np.uint8)
        legend = flow_legend(min(size))
        rows.append(side_by_side(
            [clip[0], clip[-1], diff, flow_image(exact_flow(spec, 0), max_flow=max_flow), legend],
            labels=[f"{name}: t=0", f"t={num_frames - 1}", "|difference|", "exact flow 0->1",
                    f"{max_flow:g} px"]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return save_png(path, np.concatenate(rows, axis=0))


def main(argv=None) -> dict:
    """CLI entry point; returns the summary of :func:`generate_motion`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        s = generate_motion(args.out, seed=args.seed, videos_per_class=args.videos_per_class,
                            num_frames=args.num_frames, size=args.size, fps=args.fps,
                            workers=args.workers, overwrite=args.overwrite,
                            progress=not args.no_progress)
    except ValueError as err:
        parser.error(str(err))
    if args.preview:
        print(f"preview: {preview(args.preview, seed=args.seed, num_frames=args.num_frames, size=args.size)}")
    h, w = s["size"]
    print(f"motion: {'already complete, skipped' if s['skipped'] else 'wrote'} {s['num_videos']} videos "
          f"({len(CLASSES)} classes x {s['videos_per_class']}, {s['num_frames']} frames {h}x{w}, seed "
          f"{s['seed']}; split 1 train {s['splits'][1]['train']} / test {s['splits'][1]['test']}) in "
          f"{s['root']} [{s['seconds']:.1f} s]", flush=True)
    return s


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
