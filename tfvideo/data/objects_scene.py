"""Scenes of the built-in ``objects`` set (:mod:`tfvideo.data.objects`): specs, geometry, rendering.

A scene (:class:`ClipSpec`) is a photographic background filmed by a moving camera with objects cut
from other photographs moving in front of it. For every frame the per-pixel class label is known
exactly, and for every frame pair the exact optical flow and occlusion mask. This module holds the
deterministic scene model (no randomness, no files); :mod:`tfvideo.data.objects` draws the random
scenes of the dataset, writes it, and re-exports everything public here.

Classes
-------
:data:`CLASSES`: index 0 ``background``, then 7 object classes (8 in all, as GATECH). An object's
class is decided by its *appearance* only: its texture is cut from the class's photo region
(:data:`CLASS_REGIONS`, the subject and little of its surroundings, chosen by looking at the
photos). The random clips of :func:`tfvideo.data.objects.clip_spec` draw shape, size, position,
depth order and motion from the same distribution for every class. Object and background photos are
disjoint, so a label never has two meanings; backgrounds are textured everywhere, so their motion is
visible.

==  ============  ===========================  =======================================
 #  class         photo                        region ``(x0, y0, x1, y1)``, photo px
==  ============  ===========================  =======================================
 0  background    ``brick``, ``grass``,        the whole photo (the camera view)
                  ``gravel``
 1  astronaut     ``astronaut``                the astronaut (hair, face, orange suit)
 2  cameraman     ``camera``                   the cameraman (coat, face, camera)
 3  cat           ``chelsea``                  the cat's face and fur
 4  cells         ``immunohistochemistry``     the whole stained tissue
 5  coffee        ``coffee``                   the cup and saucer
 6  coins         ``coins``                    the coins on black
 7  retina        ``retina``                   the square inside the fundus disc
==  ============  ===========================  =======================================

Geometry
--------
Pixel centres at integer coordinates (as OpenCV), ``x`` right, ``y`` down; ``e = t - anchor``
(``anchor`` = mid-clip, ``(T - 1) / 2``). Each *layer* ``L`` (0 = background, ``j = 1..n`` the
objects, back to front) has an affine map ``A_{L,t}`` from frame-``t`` pixels to its photo's pixels
(:func:`frame_transform`):

* background (a camera as in :mod:`tfvideo.data.motion`)::

      A_{0,t}(p) = c_t + z_t R(phi_t) (p - o),   o = ((W-1)/2, (H-1)/2),
      z_t = zoom exp(-zoom_rate e),  phi_t = angle - spin e,  c_t = center - zoom R(angle) velocity e

* object ``j`` (object coordinates ``q``, frame px at scale 1)::

      frame  p = M_{j,t}(q) = c_t + s_t R(theta_t) q,
             c_t = position + velocity e + acceleration e^2 / 2,
             theta_t = angle + spin e,   s_t = exp(scale_rate e)
      photo  = texture_center + texture_zoom q,      so  A_{j,t} = (photo map) o M_{j,t}^-1

  and the object is the star-shaped blob ``|q| < radius (1 + sum_k a_k cos(k atan2(q_y, q_x) +
  phase_k))``, ``k = 2, 3, 4`` (``a = 0``: a disc), tested at pixel centres: the mask is hard-edged,
  so labels and flow are exact.

``R(a) = [[cos a, -sin a], [sin a, cos a]]`` (``a > 0`` turns clockwise on screen). The visible layer
at pixel ``p`` and time ``t`` is the front-most object whose mask contains ``p``, else the background.

Exact flow and occlusion
------------------------
For a pixel ``p`` whose visible layer at ``t`` is ``L``::

    flow_t(p) = A_{L,t+1}^-1(A_{L,t}(p)) - p          (project convention: frame1(p + flow) = frame0(p))

(every layer is rigid in its photo, so this is the motion of the surface point seen at ``p``). The
flow is defined, and stored, at every pixel, occluded or not. ``p`` is **occluded** at ``t`` when its
point is not visible at ``t + 1``: ``p' = p + flow_t(p)`` lies outside ``[0, W-1] x [0, H-1]`` (the
region where frame ``t + 1`` can be interpolated from pixel centres), or the mask of an object in
front of ``L`` (a larger layer index) contains ``p'`` at ``t + 1`` (the analytic mask, evaluated at
the sub-pixel point ``p'``). A point never hides behind its own layer (layers are planar), so these
are the only two cases (:func:`clip_geometry`).

Rendering
---------
Each layer is sampled from its photo at ``A_{L,t}`` as in :mod:`tfvideo.data.motion`: the photo is
area-averaged (``cv2.INTER_AREA``, via a pyramid) to the layer's scale so that shrinking does not
alias, then ``cv2.warpAffine`` (bilinear) does the sub-pixel rotation and translation; objects are
rendered only over the bounding box of their visible pixels (the cost stays proportional to the
object) and pasted there. Outlines stay hard (a pixel is wholly one layer) so that labels, flow and
occlusions are exact per pixel; only the textures are anti-aliased. Then the clip's colour gain
(``ClipSpec.color``, the same for every frame) and Gaussian sensor noise (``ClipSpec.noise``) are
applied; there is no per-frame flicker, so brightness constancy holds up to noise and resampling.

Example
-------
A cat disc moving right by 2 px/frame over grass panned right by 1 px/frame:

>>> bg = BackgroundSpec("grass", center=(256, 256), velocity=(1.0, 0.0))
>>> cat = ObjectSpec("cat", position=(30, 20), radius=10, velocity=(2.0, 0.0))
>>> geo = clip_geometry(ClipSpec(3, (40, 64), bg, (cat,)))
>>> geo["flows"][0, 20, 30].tolist(), geo["flows"][0, 5, 5].tolist(), int(geo["labels"][0, 20, 30])
([2.0, 0.0], [1.0, 0.0], 3)
>>> render_frames(ClipSpec(3, (40, 64), bg, (cat,)), geo["layers"]).shape
(3, 40, 64, 3)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# The anti-aliased photo sampler of the camera-motion set (pyramid + INTER_AREA + bilinear warp):
# one implementation for both built-in sets.
from tfvideo.data.motion import _check_clip_shape, _compose, _view

__all__ = [
    "CLASSES", "CLASS_PHOTOS", "CLASS_REGIONS", "BACKGROUNDS",
    "BackgroundSpec", "ObjectSpec", "ClipSpec", "frame_transform", "layer_motion",
    "object_contains", "clip_geometry", "render_frames", "render_clip",
]

#: Class names; label index = position (0 = background).
CLASSES = ("background", "astronaut", "cameraman", "cat", "cells", "coffee", "coins", "retina")
#: The photo each object class is cut from.
CLASS_PHOTOS = {"astronaut": "astronaut", "cameraman": "camera", "cat": "chelsea",
                "cells": "immunohistochemistry", "coffee": "coffee", "coins": "coins",
                "retina": "retina"}
#: The part of the photo that shows the class, ``(x0, y0, x1, y1)`` in photo pixels (chosen by
#: looking at the photos: the subject, little of its surroundings).
CLASS_REGIONS = {"astronaut": (40, 20, 360, 512), "cameraman": (0, 60, 340, 512),
                 "cat": (30, 0, 400, 300), "cells": (0, 0, 512, 512), "coffee": (100, 25, 460, 370),
                 "coins": (0, 0, 384, 303), "retina": (300, 300, 1110, 1110)}
#: Background photos (disjoint from the object photos; textured everywhere, so motion is visible).
BACKGROUNDS = ("brick", "grass", "gravel")



def _rot(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def _pair(value, name):
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers (x, y), got {value!r}") from None
    return x, y


# ----------------------------------------------------------------------------------------------------
# specification
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(eq=False)
class BackgroundSpec:
    """The background layer: a camera filming ``photo`` (formulas in the module doc).

    Attributes:
      photo: one of :data:`BACKGROUNDS`.
      center: ``(x, y)`` photo pixel seen at the frame centre at ``anchor``.
      zoom: photo pixels per frame pixel at ``anchor`` (> 0).
      angle: camera roll at ``anchor``, radians.
      velocity: ``(vx, vy)`` content motion on screen, px per frame.
      zoom_rate: log magnification of the content per frame (> 0: zooming in).
      spin: content rotation per frame, radians (> 0: clockwise on screen).
      anchor: the time at which ``center``/``zoom``/``angle`` hold.
    """

    photo: str
    center: tuple
    zoom: float = 1.0
    angle: float = 0.0
    velocity: tuple = (0.0, 0.0)
    zoom_rate: float = 0.0
    spin: float = 0.0
    anchor: float = 0.0

    def __post_init__(self):
        if self.photo not in BACKGROUNDS:
            raise ValueError(f"photo must be one of {', '.join(BACKGROUNDS)}, got {self.photo!r}")
        self.center, self.velocity = _pair(self.center, "center"), _pair(self.velocity, "velocity")
        if not self.zoom > 0:
            raise ValueError(f"zoom must be > 0, got {self.zoom}")


@dataclasses.dataclass(eq=False)
class ObjectSpec:
    """One object layer (formulas in the module doc).

    Attributes:
      class_name: one of ``CLASSES[1:]``; its texture comes from ``CLASS_PHOTOS[class_name]``.
      position: ``(x, y)`` frame position of the object's centre at ``anchor``.
      radius: base radius at ``anchor``, frame px (> 0).
      amplitudes, phases: ``a_k`` and ``phase_k`` of the harmonics ``k = 2, 3, 4`` of the outline
        (``sum |a_k| < 0.9`` keeps it star-shaped around the centre); zeros give a disc.
      velocity: ``(vx, vy)`` px per frame at ``anchor``; acceleration: px per frame^2.
      angle: orientation at ``anchor``, radians; spin: radians per frame (> 0 clockwise on screen).
      scale_rate: log scale change per frame.
      anchor: the time at which ``position``, ``angle`` and unit scale hold.
      texture_center: ``(x, y)`` photo pixel at the object's centre; default: the class region's centre.
      texture_zoom: photo pixels per object unit (> 0).
    """

    class_name: str
    position: tuple
    radius: float
    amplitudes: tuple = (0.0, 0.0, 0.0)
    phases: tuple = (0.0, 0.0, 0.0)
    velocity: tuple = (0.0, 0.0)
    acceleration: tuple = (0.0, 0.0)
    angle: float = 0.0
    spin: float = 0.0
    scale_rate: float = 0.0
    anchor: float = 0.0
    texture_center: tuple | None = None
    texture_zoom: float = 1.0

    def __post_init__(self):
        if self.class_name not in CLASS_PHOTOS:
            raise ValueError(f"class_name must be one of {', '.join(CLASSES[1:])}, got "
                             f"{self.class_name!r}")
        self.position = _pair(self.position, "position")
        self.velocity = _pair(self.velocity, "velocity")
        self.acceleration = _pair(self.acceleration, "acceleration")
        if self.texture_center is None:
            x0, y0, x1, y1 = CLASS_REGIONS[self.class_name]
            self.texture_center = ((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
        self.texture_center = _pair(self.texture_center, "texture_center")
        self.amplitudes = tuple(float(a) for a in self.amplitudes)
        self.phases = tuple(float(a) for a in self.phases)
        if len(self.amplitudes) != 3 or len(self.phases) != 3:
            raise ValueError(f"amplitudes and phases must hold 3 numbers (k = 2, 3, 4), got "
                             f"{self.amplitudes} and {self.phases}")
        if sum(abs(a) for a in self.amplitudes) >= 0.9:
            raise ValueError(f"amplitudes must have sum |a_k| < 0.9 (a star-shaped outline), got "
                             f"{self.amplitudes}")
        if not self.radius > 0 or not self.texture_zoom > 0:
            raise ValueError(f"radius and texture_zoom must be > 0, got {self.radius} and "
                             f"{self.texture_zoom}")

    @property
    def photo(self) -> str:
        return CLASS_PHOTOS[self.class_name]

    @property
    def label(self) -> int:
        return CLASSES.index(self.class_name)

    @property
    def outer_radius(self) -> float:
        """Radius of the disc holding the outline, in object units."""
        return self.radius * (1.0 + sum(abs(a) for a in self.amplitudes))

    def placement(self, t):
        """``(centre (2,), scale, angle)`` of the object at frame ``t``."""
        e = t - self.anchor
        c = np.asarray(self.position) + np.asarray(self.velocity) * e \
            + 0.5 * np.asarray(self.acceleration) * e * e
        return c, math.exp(self.scale_rate * e), self.angle + self.spin * e


@dataclasses.dataclass(eq=False)
class ClipSpec:
    """Everything that defines one clip.

    Attributes:
      num_frames: ``T`` (>= 2).
      size: ``(height, width)`` (each >= 16).
      background: the :class:`BackgroundSpec`.
      objects: :class:`ObjectSpec` s, back to front (layer ``j`` = ``objects[j - 1]``).
      color: ``(3,)`` per-channel gain of the clip.
      noise: sensor noise std (grey levels).
      noise_seed: seed of the noise.
    """

    num_frames: int
    size: tuple
    background: BackgroundSpec
    objects: tuple = ()
    color: tuple = (1.0, 1.0, 1.0)
    noise: float = 0.0
    noise_seed: int = 0

    def __post_init__(self):
        self.num_frames, self.size = _check_clip_shape(self.num_frames, self.size)
        if not isinstance(self.background, BackgroundSpec):
            raise TypeError(f"background must be a BackgroundSpec, got {type(self.background).__name__}")
        self.objects = tuple(self.objects)
        if not all(isinstance(o, ObjectSpec) for o in self.objects) or len(self.objects) > 254:
            raise TypeError("objects must be a sequence of at most 254 ObjectSpec")
        if len(self.color) != 3 or not self.noise >= 0:
            raise ValueError(f"color must be 3 gains and noise >= 0, got {self.color} and {self.noise}")




# ----------------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------------
def _affine(lin, origin_in, origin_out):
    """``(2, 3)`` map ``p -> origin_out + lin (p - origin_in)``."""
    lin = np.asarray(lin, np.float64)
    return np.concatenate([lin, (np.asarray(origin_out) - lin @ np.asarray(origin_in))[:, None]], 1)


def frame_transform(spec: ClipSpec, layer: int, t: int) -> np.ndarray:
    """The ``(2, 3)`` affine map ``A_{layer,t}`` from frame-``t`` pixels to the layer's photo pixels
    (``layer`` 0 = background, ``j`` = ``spec.objects[j - 1]``)."""
    if not 0 <= layer <= len(spec.objects):
        raise ValueError(f"layer must be in [0, {len(spec.objects)}], got {layer}")
    if layer == 0:
        b = spec.background
        h, w = spec.size
        e = t - b.anchor
        lin = b.zoom * math.exp(-b.zoom_rate * e) * _rot(b.angle - b.spin * e)
        centre = np.asarray(b.center) - b.zoom * _rot(b.angle) @ np.asarray(b.velocity) * e
        return _affine(lin, ((w - 1) / 2.0, (h - 1) / 2.0), centre)
    o = spec.objects[layer - 1]
    c, s, theta = o.placement(t)
    return _affine(o.texture_zoom / s * _rot(-theta), c, o.texture_center)


def _inverse(a):
    lin = np.linalg.inv(a[:, :2])
    return np.concatenate([lin, -(lin @ a[:, 2:])], axis=1)


def layer_motion(spec: ClipSpec, layer: int, t: int) -> np.ndarray:
    """The ``(2, 3)`` map ``A_{layer,t+1}^-1 o A_{layer,t}``: where a frame-``t`` pixel of the layer
    is at ``t + 1``."""
    return _compose(_inverse(frame_transform(spec, layer, t + 1)), frame_transform(spec, layer, t))


def object_contains(obj: ObjectSpec, t, x, y) -> np.ndarray:
    """Whether the frame points ``(x, y)`` (arrays, sub-pixel allowed) lie inside ``obj`` at time
    ``t``: ``|q| < radius (1 + sum a_k cos(k phi + phase_k))`` with ``q = M_t^-1(p)``."""
    c, s, theta = obj.placement(t)
    dx, dy = (np.asarray(x, np.float64) - c[0]) / s, (np.asarray(y, np.float64) - c[1]) / s
    cs, sn = math.cos(theta), math.sin(theta)
    qx, qy = cs * dx + sn * dy, -sn * dx + cs * dy  # R(-theta) (p - c) / s
    r2 = qx * qx + qy * qy
    inside = r2 < obj.outer_radius ** 2  # cheap pre-test: atan2 only where it can matter
    if not inside.any():
        return inside
    phi = np.arctan2(qy[inside], qx[inside])
    rho = 1.0 + sum(a * np.cos(k * phi + ph) for k, a, ph in zip((2, 3, 4), obj.amplitudes, obj.phases))
    inside[inside] = r2[inside] < (obj.radius * rho) ** 2
    return inside


def _apply(m, xs, ys):
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def clip_geometry(spec: ClipSpec) -> dict:
    """Labels, visible layers, exact flows and occlusions of the clip (no rendering).

    Returns:
      dict: ``layers`` uint8 ``(T, H, W)`` (visible layer index, 0 = background), ``labels`` uint8
      ``(T, H, W)`` (class index), ``flows`` float32 ``(T-1, H, W, 2)`` (frame ``t -> t+1``, project
      convention), ``occlusions`` bool ``(T-1, H, W)`` (module doc: "Exact flow and occlusion").
    """
    t_len, (h, w) = spec.num_frames, spec.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    n = len(spec.objects)
    layers = np.zeros((t_len, h, w), np.uint8)
    for t in range(t_len):
        for j, obj in enumerate(spec.objects, 1):
            layers[t][object_contains(obj, t, xs, ys)] = j
    lut = np.array([0] + [o.label for o in spec.objects], np.uint8)
    flows = np.empty((t_len - 1, h, w, 2), np.float32)
    occlusions = np.empty((t_len - 1, h, w), bool)
    for t in range(t_len - 1):
        x1, y1 = np.empty((h, w)), np.empty((h, w))
        for j in range(n + 1):
            sel = layers[t] == j
            if sel.any():
                x1[sel], y1[sel] = _apply(layer_motion(spec, j, t), xs[sel], ys[sel])
        flows[t, ..., 0], flows[t, ..., 1] = x1 - xs, y1 - ys
        occ = (x1 < 0) | (x1 > w - 1) | (y1 < 0) | (y1 > h - 1)
        for j, obj in enumerate(spec.objects, 1):
            behind = layers[t] < j
            if behind.any():
                occ[behind] |= object_contains(obj, t + 1, x1[behind], y1[behind])
        occlusions[t] = occ
    return {"layers": layers, "labels": lut[layers], "flows": flows, "occlusions": occlusions}


# ----------------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------------
def render_frames(spec: ClipSpec, layers: np.ndarray | None = None) -> np.ndarray:
    """Render the clip: uint8 RGB ``(T, H, W, 3)``. ``layers``: the visible layers from
    :func:`clip_geometry` (computed when not given)."""
    t_len, (h, w) = spec.num_frames, spec.size
    if layers is None:
        layers = clip_geometry(spec)["layers"]
    rng = np.random.default_rng(spec.noise_seed)
    gain = np.asarray(spec.color, np.float32)
    frames = np.empty((t_len, h, w, 3), np.uint8)
    for t in range(t_len):
        f = _view(spec.background.photo, frame_transform(spec, 0, t), (h, w))
        for j, obj in enumerate(spec.objects, 1):
            sel = layers[t] == j
            if not sel.any():
                continue
            rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            shift = np.array([[1.0, 0, x0], [0, 1.0, y0]])  # window pixel -> frame pixel
            patch = _view(obj.photo, _compose(frame_transform(spec, j, t), shift), (y1 - y0, x1 - x0))
            window = sel[y0:y1, x0:x1]
            f[y0:y1, x0:x1][window] = patch[window]
        f *= gain
        if spec.noise:
            f += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(spec.noise)
        frames[t] = np.clip(np.rint(f), 0, 255)
    return frames


def render_clip(spec: ClipSpec) -> dict:
    """:func:`clip_geometry` plus ``frames`` (uint8 RGB ``(T, H, W, 3)``, before JPEG)."""
    out = clip_geometry(spec)
    out["frames"] = render_frames(spec, out["layers"])
    return out
