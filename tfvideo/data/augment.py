"""Clip-consistent spatial and colour augmentation for ``tf.data`` (pure TensorFlow, stateless RNG).

A **sample** is a dict of tensors:

================  =========  ==================  =============================================
key               dtype      shape               meaning
================  =========  ==================  =============================================
``frames``        uint8      ``(T, H, W, 3)``    RGB frames (required)
``flow``          float32    ``(F, H, W, 2)``    optional flow, pixels, ``[..., 0] = u`` (x)
``flow_valid``    bool       ``(F, H, W)``       optional validity of ``flow`` (needs ``flow``)
``segmentation``  uint8      ``(L, H, W)``       optional label maps, ``255`` = ignore
================  =========  ==================  =============================================

Any other key (label, video id, frame indices...) is passed through untouched. Every transform
applies the **same** geometric or colour change to all frames and to the dense targets, and returns a
dict with the same keys. ``T``, ``H``, ``W`` may be unknown until run time (``tf.data`` maps).

Transforms are split into *box samplers*, which only draw a crop box ``(y, x, h, w)`` (int32, pixels)
from the frame size, and :func:`crop_and_resize`, which applies a box. Random functions take an
explicit ``seed`` (int32/int64 tensor of shape ``[2]``) and are deterministic given it; use
:func:`tfvideo.data.sampling.split_seed` to derive independent seeds for the steps of a pipeline.

Example (training-time TSN augmentation of one sample):
  >>> import tensorflow as tf
  >>> sample = {"frames": tf.zeros([8, 120, 160, 3], tf.uint8)}
  >>> seeds = split_seed(tf.constant([7, 0]), 3)
  >>> box = tsn_crop_box(120, 160, 112, seed=seeds[0])
  >>> out = random_flip_left_right(crop_and_resize(sample, box, (112, 112)), seeds[1])
  >>> out["frames"] = color_jitter(out["frames"], brightness=0.2, contrast=0.2, seed=seeds[2])
  >>> out["frames"].shape
  TensorShape([8, 112, 112, 3])
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfvideo.data.sampling import randint, split_seed
from tfvideo.ops.image import to_grey

__all__ = [
    "FRAMES", "FLOW", "FLOW_VALID", "SEGMENTATION", "crop_and_resize", "resize_short_side",
    "flip_left_right", "random_flip_left_right", "color_jitter", "tsn_crop_box",
    "random_resized_crop_box", "center_crop_box", "view_crop_boxes",
]

#: the sample keys this module transforms
FRAMES, FLOW, FLOW_VALID, SEGMENTATION = "frames", "flow", "flow_valid", "segmentation"
_SPEC = {  # key -> (dtype, rank, last dimension or None)
    FRAMES: (tf.uint8, 4, 3),
    FLOW: (tf.float32, 4, 2),
    FLOW_VALID: (tf.bool, 3, None),
    SEGMENTATION: (tf.uint8, 3, None),
}


# ------------------------------------------------------------------------------------- helpers ----
def _check_sample(sample) -> dict:
    """Validates the known keys of ``sample``; returns a shallow copy whose targets carry a run-time
    check that their (H, W) equals the frames'."""
    if not isinstance(sample, dict) or FRAMES not in sample:
        raise ValueError(f"`sample` must be a dict with a '{FRAMES}' entry, got {type(sample).__name__} "
                         f"with keys {sorted(sample) if isinstance(sample, dict) else None}")
    if FLOW_VALID in sample and FLOW not in sample:
        raise ValueError(f"`sample['{FLOW_VALID}']` is given without `sample['{FLOW}']`")
    out = dict(sample)
    for key, (dtype, rank, last) in _SPEC.items():
        if key not in out:
            continue
        t = tf.convert_to_tensor(out[key])
        if t.dtype != dtype:
            raise TypeError(f"`sample['{key}']` must be {dtype.name}, got {t.dtype.name}")
        if t.shape.rank not in (None, rank) or (last and t.shape.rank and t.shape[-1] not in (None, last)):
            want = "(N, H, W" + (f", {last})" if last else ")")
            raise ValueError(f"`sample['{key}']` must have shape {want}, got {t.shape}")
        out[key] = t
    hw = tf.shape(out[FRAMES])[1:3]
    for key in (FLOW, FLOW_VALID, SEGMENTATION):
        if key in out:
            check = tf.debugging.assert_equal(tf.shape(out[key])[1:3], hw, message=(
                f"`sample['{key}']` must have the same height and width as the frames"))
            with tf.control_dependencies([check]):
                out[key] = tf.identity(out[key])
    return out


def _dim(value, arg: str) -> tf.Tensor:
    value = tf.convert_to_tensor(value)
    if not value.dtype.is_integer or value.shape.rank not in (None, 0):
        raise TypeError(f"`{arg}` must be an integer scalar, got {value.dtype.name} of shape {value.shape}")
    return tf.cast(value, tf.int32)


def _size(size, arg: str = "size") -> tf.Tensor:
    """``size`` (one int, ``(h, w)``, or an int tensor of shape [] or [2]) -> positive int32 ``[h, w]``."""
    t = tf.convert_to_tensor(size)
    if t.shape.rank == 0:
        t = tf.stack([t, t])
    if not t.dtype.is_integer or not t.shape.is_compatible_with([2]):
        raise ValueError(f"`{arg}` must be an int or (height, width) ints, got {size!r}")
    static = tf.get_static_value(t)
    if static is None:
        return tf.cast(t, tf.int32)
    if (static <= 0).any():
        raise ValueError(f"`{arg}` must be positive, got {size!r}")
    return tf.constant(static, tf.int32)


def _box(y, x, h, w) -> tf.Tensor:
    return tf.stack([y, x, h, w])


# ------------------------------------------------------------------------------------ resizing ----
def crop_and_resize(sample, box, size, *, antialias: bool = False) -> dict:
    """Crops the same box out of every frame and target and resizes it to ``size``.

    * frames: bilinear (``tf.image.resize``, half-pixel centres), rounded, saturate-cast to uint8;
    * flow: bilinear, then ``u *= out_w / w`` and ``v *= out_h / h`` (vectors are in pixels). With
      ``flow_valid``, invalid vectors get zero weight (normalised interpolation:
      ``resize(flow * valid) / resize(valid)``), so the zeros stored at unknown pixels never leak into
      valid neighbours; where every neighbour is valid this equals plain bilinear;
    * flow_valid and segmentation: nearest neighbour (labels stay in the original label set).

    Args:
      sample: dict, see the module docstring.
      box: ``(y, x, h, w)`` in pixels (ints or an int tensor of shape [4]); must lie inside the frame.
      size: output ``(out_h, out_w)`` (or one int for a square); Python ints give static shapes.
      antialias: low-pass filter when shrinking (``tf.image.resize``'s option; frames and flow only).

    Returns:
      A new dict with the same keys; spatial size ``(out_h, out_w)``.
    """
    out = _check_sample(sample)
    box = tf.cast(tf.convert_to_tensor(box), tf.int32)
    if not box.shape.is_compatible_with([4]):
        raise ValueError(f"`box` must be (y, x, h, w), got shape {box.shape}")
    size = _size(size)
    y, x, h, w = tf.unstack(tf.ensure_shape(box, [4]))
    frame_hw = tf.shape(out[FRAMES])[1:3]
    check = tf.debugging.assert_equal(
        (y >= 0) & (x >= 0) & (h >= 1) & (w >= 1) & (y + h <= frame_hw[0]) & (x + w <= frame_hw[1]),
        True, message="`box` (y, x, h, w) must lie inside the frame")
    with tf.control_dependencies([check]):
        y = tf.identity(y)

    def crop(t):
        return t[:, y:y + h, x:x + w]

    def resize(t, method="bilinear"):
        return tf.image.resize(t, size, method=method, antialias=antialias and method == "bilinear")

    frames = resize(crop(out[FRAMES]))
    out[FRAMES] = tf.saturate_cast(tf.round(frames), tf.uint8)
    if FLOW in out:
        flow = crop(out[FLOW])
        if FLOW_VALID in out:
            weight = tf.cast(crop(out[FLOW_VALID]), tf.float32)[..., None]
            flow = tf.math.divide_no_nan(resize(flow * weight), resize(weight))
            valid = resize(tf.cast(crop(out[FLOW_VALID]), tf.uint8)[..., None], "nearest")
            out[FLOW_VALID] = tf.cast(valid[..., 0], tf.bool)
        else:
            flow = resize(flow)
        scale = tf.cast(size[::-1], tf.float32) / tf.cast(tf.stack([w, h]), tf.float32)  # (u, v)
        out[FLOW] = flow * scale
    if SEGMENTATION in out:
        out[SEGMENTATION] = resize(crop(out[SEGMENTATION])[..., None], "nearest")[..., 0]
    return out


def resize_short_side(sample, short_side: int) -> dict:
    """Resizes the whole sample so that its shorter side is ``short_side``, keeping the aspect ratio.

    The longer side is ``round(long * short_side / short)`` (ties to even, at least 1), the same size
    as :func:`tfvideo.data.video.resize_short_side`. Frames and flow are resized bilinearly *with*
    antialiasing (it only acts when shrinking; OpenCV's INTER_AREA plays that role in ``video.py``), flow
    vectors are scaled, ``flow_valid`` and ``segmentation`` use nearest neighbour
    (see :func:`crop_and_resize`).

    Args:
      sample: dict, see the module docstring.
      short_side: target length of the shorter side (Python int >= 1, or scalar int tensor).

    Returns:
      A new dict with the same keys.
    """
    if isinstance(short_side, int) and short_side < 1:
        raise ValueError(f"`short_side` must be a positive int, got {short_side}")
    out = _check_sample(sample)
    hw = tf.shape(out[FRAMES])[1:3]
    scale = tf.cast(_dim(short_side, "short_side"), tf.float64) / tf.cast(tf.reduce_min(hw), tf.float64)
    new_hw = tf.maximum(tf.cast(tf.round(tf.cast(hw, tf.float64) * scale), tf.int32), 1)
    return crop_and_resize(out, _box(0, 0, hw[0], hw[1]), new_hw, antialias=True)


# ------------------------------------------------------------------------------------- flipping ----
def flip_left_right(sample) -> dict:
    """Mirrors every frame and target horizontally; flow's ``u`` changes sign (``v`` is kept).

    Returns a new dict with the same keys. Flipping twice is the identity.
    """
    out = _check_sample(sample)
    for key in (FRAMES, FLOW, FLOW_VALID, SEGMENTATION):
        if key in out:
            out[key] = tf.reverse(out[key], axis=[2])
    if FLOW in out:
        out[FLOW] = out[FLOW] * tf.constant([-1.0, 1.0])
    return out


def flip_draw(seed, probability: float = 0.5) -> tf.Tensor:
    """The one draw of :func:`random_flip_left_right` (bool scalar): whether ``seed`` flips, for
    whatever else must follow the frames (e.g. boxes)."""
    return tf.random.stateless_uniform([], split_seed(seed)) < probability


def random_flip_left_right(sample, seed, probability: float = 0.5) -> dict:
    """:func:`flip_left_right` with the given ``probability`` (one draw per sample, from ``seed``)."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"`probability` must be in [0, 1], got {probability}")
    out = _check_sample(sample)
    spatial = {k: out[k] for k in _SPEC if k in out}
    flip = flip_draw(seed, probability)
    out.update(tf.cond(flip, lambda: flip_left_right(spatial), lambda: dict(spatial)))
    return out


# ---------------------------------------------------------------------------------------- colour ----
def color_jitter(frames, *, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, seed) -> tf.Tensor:
    """Random brightness, contrast, saturation and hue: one set of factors for the whole clip.

    Applied in this fixed order, in float32 on ``[0, 255]``, clipping to ``[0, 255]`` after each step
    (as torchvision's ``ColorJitter`` does on float images, but without its random order):

    * brightness: ``x + delta``, ``delta ~ U[-b, b] * 255``;
    * contrast: ``(x - m) * f + m``, ``f ~ U[1 - c, 1 + c]``, ``m`` = mean BT.601 grey level of the
      **whole clip** (torchvision uses the mean of one image; a clip-wide mean keeps the change
      identical for every frame);
    * saturation: ``(x - g) * f + g``, ``f ~ U[max(0, 1 - s), 1 + s]``, ``g`` = the pixel's grey level;
    * hue: ``tf.image.adjust_hue`` by ``delta ~ U[-h, h]`` (fraction of a full turn).

    A zero strength skips its step (zero everywhere returns ``frames`` unchanged). Each step always
    uses its own sub-seed, so changing one strength does not change the other draws.

    Args:
      frames: uint8 ``(..., H, W, 3)`` RGB, e.g. ``(T, H, W, 3)``.
      brightness, contrast, saturation: non-negative floats; ``contrast <= 1``.
      hue: float in ``[0, 0.5]``.
      seed: int32/int64 ``[2]`` stateless seed.

    Returns:
      uint8 tensor with the shape of ``frames``.
    """
    frames = tf.convert_to_tensor(frames)
    if frames.dtype != tf.uint8:
        raise TypeError(f"`frames` must be uint8, got {frames.dtype.name}")
    if frames.shape.rank is not None and (frames.shape.rank < 3 or frames.shape[-1] not in (None, 3)):
        raise ValueError(f"`frames` must have shape (..., H, W, 3), got {frames.shape}")
    for arg, value, top in (("brightness", brightness, math.inf), ("contrast", contrast, 1.0),
                            ("saturation", saturation, math.inf), ("hue", hue, 0.5)):
        if not 0.0 <= value <= top:
            raise ValueError(f"`{arg}` must be in [0, {top}], got {value}")
    seeds = split_seed(seed, 4)
    if not (brightness or contrast or saturation or hue):
        return frames

    def uniform(i, low, high):
        return tf.random.stateless_uniform([], seeds[i], minval=low, maxval=high)

    def clip(t):
        return tf.clip_by_value(t, 0.0, 255.0)

    x = tf.cast(frames, tf.float32)
    if brightness:
        x = clip(x + uniform(0, -brightness, brightness) * 255.0)
    if contrast:
        mean = tf.reduce_mean(to_grey(x, "frames"))
        x = clip((x - mean) * uniform(1, 1.0 - contrast, 1.0 + contrast) + mean)
    if saturation:
        grey = to_grey(x, "frames")
        x = clip((x - grey) * uniform(2, max(0.0, 1.0 - saturation), 1.0 + saturation) + grey)
    if hue:
        x = clip(tf.image.adjust_hue(x / 255.0, uniform(3, -hue, hue)) * 255.0)
    return tf.saturate_cast(tf.round(x), tf.uint8)


# ------------------------------------------------------------------------------------ crop boxes ----
def tsn_crop_box(height, width, size, *, scales=(1.0, 0.875, 0.75, 0.66), max_distort: int = 1,
                 fix_crop: bool = True, seed) -> tf.Tensor:
    """TSN's multi-scale corner cropping (``GroupMultiScaleCrop``): returns a box ``(y, x, h, w)``.

    Temporal Segment Networks (Wang et al., ECCV 2016, Sec 3.2, "corner cropping and scale
    jittering"), transcribed from the reference ``transforms.py``:

    * ``base = min(height, width)``; candidate sides ``int(base * s)`` for ``s`` in ``scales``; a
      candidate within 3 px of the target height (width) snaps to it, separately for heights and
      widths;
    * a ``(height_i, width_j)`` pair with ``|i - j| <= max_distort`` is chosen uniformly among all such
      pairs (aspect-ratio jitter);
    * position: with ``fix_crop``, one of 5 offsets chosen uniformly -- top-left, top-right,
      bottom-left, bottom-right, centre -- on TSN's grid ``step = (size_left_over) // 4`` (so "right"
      and "bottom" are ``4 * step``, up to 3 px from the border, exactly like ``fill_fix_offset`` with
      ``more_fix_crop=False``); otherwise uniform over all positions.

    Choice: a snapped side larger than the frame (e.g. base 222 snapping to 224) is clamped to the
    frame, where TSN's PIL crop would pad with black.

    Args:
      height, width: frame size, scalar int (tensors).
      size: target ``(out_h, out_w)`` of the later resize, or one int (Python ints).
      scales: crop side / ``min(height, width)`` candidates.
      max_distort: largest index distance between the chosen height and width scales.
      fix_crop: corner/centre positions (True) or uniformly random ones.
      seed: int32/int64 ``[2]`` stateless seed.

    Returns:
      int32 box ``(y, x, h, w)``, shape ``(4,)``; apply it with :func:`crop_and_resize` to ``size``.
    """
    static_size = tf.get_static_value(_size(size))
    if static_size is None:
        raise ValueError(f"`size` must be known when tracing (Python ints), got {size!r}")
    target_h, target_w = (int(v) for v in static_size)
    if not scales or any(not 0 < s <= 1 for s in scales):
        raise ValueError(f"`scales` must be a non-empty sequence of floats in (0, 1], got {scales!r}")
    if not isinstance(max_distort, int) or max_distort < 0:
        raise ValueError(f"`max_distort` must be an int >= 0, got {max_distort!r}")
    height, width = _dim(height, "height"), _dim(width, "width")
    seeds = split_seed(seed, 3)
    base = tf.cast(tf.minimum(height, width), tf.float64)
    sides = tf.cast(tf.floor(base * tf.constant(scales, tf.float64)), tf.int32)
    crop_h = tf.minimum(tf.where(tf.abs(sides - target_h) < 3, target_h, sides), height)
    crop_w = tf.minimum(tf.where(tf.abs(sides - target_w) < 3, target_w, sides), width)
    pairs = [(i, j) for i in range(len(scales)) for j in range(len(scales)) if abs(i - j) <= max_distort]
    pick = tf.gather(tf.constant(pairs, tf.int32), randint(seeds[0], len(pairs)))
    h, w = tf.gather(crop_h, pick[0]), tf.gather(crop_w, pick[1])
    if fix_crop:
        h_step, w_step = (height - h) // 4, (width - w) // 4
        ys = tf.stack([0, 0, 4 * h_step, 4 * h_step, 2 * h_step])
        xs = tf.stack([0, 4 * w_step, 0, 4 * w_step, 2 * w_step])
        k = randint(seeds[1], 5)
        return _box(ys[k], xs[k], h, w)
    return _box(randint(seeds[1], height - h + 1), randint(seeds[2], width - w + 1), h, w)


def random_resized_crop_box(height, width, *, area=(0.25, 1.0), aspect=(3 / 4, 4 / 3), seed,
                            num_tries: int = 10) -> tf.Tensor:
    """Inception-style random crop box (Szegedy et al. 2015; torchvision's ``RandomResizedCrop``).

    ``num_tries`` candidates are drawn at once: area fraction ``~ U(area)`` of ``height * width``,
    aspect ratio ``w / h`` log-uniform in ``aspect``, ``w = round(sqrt(A * r))``,
    ``h = round(sqrt(A / r))``, position uniform. The first candidate that fits in the frame is used;
    if none fits, the fallback is torchvision's: a centred crop of the whole frame with its aspect ratio
    clamped into ``aspect``.

    Args:
      height, width: frame size, scalar int (tensors).
      area: ``(min, max)`` fraction of the frame area, ``0 < min <= max``.
      aspect: ``(min, max)`` width / height ratio, ``0 < min <= max``.
      seed: int32/int64 ``[2]`` stateless seed.
      num_tries: candidates drawn before the fallback.

    Returns:
      int32 box ``(y, x, h, w)``, shape ``(4,)``.
    """
    for arg, (lo, hi) in (("area", area), ("aspect", aspect)):
        if not 0 < lo <= hi:
            raise ValueError(f"`{arg}` must be (min, max) with 0 < min <= max, got {(lo, hi)!r}")
    height, width = _dim(height, "height"), _dim(width, "width")
    seeds = split_seed(seed, 4)
    hf, wf = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    n = [num_tries]
    target = tf.random.stateless_uniform(n, seeds[0], area[0], area[1], tf.float64) * hf * wf
    ratio = tf.exp(tf.random.stateless_uniform(n, seeds[1], math.log(aspect[0]), math.log(aspect[1]),
                                               tf.float64))
    ws = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    hs = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    ok = (ws >= 1) & (ws <= width) & (hs >= 1) & (hs <= height)
    first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
    h, w = hs[first], ws[first]
    uy, ux = tf.unstack(tf.random.stateless_uniform([2], seeds[2], dtype=tf.float64))
    y = tf.minimum(tf.cast(uy * tf.cast(height - h + 1, tf.float64), tf.int32), height - h)
    x = tf.minimum(tf.cast(ux * tf.cast(width - w + 1, tf.float64), tf.int32), width - w)
    # fallback: whole frame, aspect clamped into range, centred
    in_ratio = wf / hf
    fw = tf.where(in_ratio > aspect[1], tf.round(hf * aspect[1]), wf)
    fh = tf.where(in_ratio < aspect[0], tf.round(wf / aspect[0]), hf)
    fh, fw = tf.maximum(tf.cast(fh, tf.int32), 1), tf.maximum(tf.cast(fw, tf.int32), 1)
    fallback = _box((height - fh) // 2, (width - fw) // 2, fh, fw)
    return tf.where(tf.reduce_any(ok), _box(y, x, h, w), fallback)


def center_crop_box(height, width, size) -> tf.Tensor:
    """Centred box of ``size`` (``(h, w)`` or one int): ``y = (height - h) // 2``, ``x = (width - w) // 2``.

    Returns int32 ``(y, x, h, w)``, shape ``(4,)``. The crop must fit in the frame (checked at run time).
    """
    return view_crop_boxes(height, width, size, 1)[0]


def view_crop_boxes(height, width, size, num_crops: int) -> tf.Tensor:
    """Evaluation crops ("views") of ``size`` (``(h, w)`` or one int), as boxes ``(y, x, h, w)``.

    * 1: the centre crop (``(height - h) // 2``, ``(width - w) // 2``);
    * 3: start, centre, end along the **longer** side, centred along the shorter one; after
      ``resize_short_side(sample, h)`` the crops span the full shorter side (the 3-crop protocol of
      SlowFast-style 3D-CNN testing). When ``height == width`` the crops move along the width;
    * 5: four corners and centre, in TSN's order top-left, top-right, bottom-left, bottom-right,
      centre (TVNet Sec 5.2 tests on centre + 4 corners). Choice: exact corners (flush with the
      borders), unlike TSN's ``fill_fix_offset`` grid used by :func:`tsn_crop_box`;
    * 10: the 5 boxes twice (rows 5-9 repeat rows 0-4): TSN's 10-crop testing mirrors the second five,
      which the caller does with :func:`flip_left_right`.

    Args:
      height, width: frame size, scalar int (tensors).
      size: crop ``(h, w)`` or one int for a square.
      num_crops: 1, 3, 5 or 10.

    Returns:
      int32 tensor of shape ``(num_crops, 4)``.
    """
    if num_crops not in (1, 3, 5, 10):
        raise ValueError(f"`num_crops` must be 1, 3, 5 or 10, got {num_crops!r}")
    height, width = _dim(height, "height"), _dim(width, "width")
    size = _size(size)
    fits = tf.debugging.assert_less_equal(size, tf.stack([height, width]), message=(
        "the crop `size` is larger than the frame; resize the frames first"))
    with tf.control_dependencies([fits]):
        h, w = tf.unstack(tf.identity(size))
    dy, dx = height - h, width - w  # room left over
    if num_crops == 1:
        ys, xs = [dy // 2], [dx // 2]
    elif num_crops == 3:
        along_h = height > width
        ys = [tf.where(along_h, v, dy // 2) for v in (0, dy // 2, dy)]
        xs = [tf.where(along_h, dx // 2, v) for v in (0, dx // 2, dx)]
    else:
        ys, xs = [0, 0, dy, dy, dy // 2], [0, dx, 0, dx, dx // 2]
    boxes = tf.stack([_box(y, x, h, w) for y, x in zip(ys, xs)])
    return tf.tile(boxes, [2, 1]) if num_crops == 10 else boxes
