"""Optical-flow tensor ops: end-point error, flow resizing and Middlebury colour coding.

Flow convention
---------------
Throughout ``tfvideo`` a flow field is a float tensor of shape ``(..., 2)`` measured in **pixels**
(OpenCV convention, as returned by ``cv2.calcOpticalFlowFarneback``):

* ``flow[..., 0]`` is the horizontal component ``u`` (x, positive to the right, along the width axis);
* ``flow[..., 1]`` is the vertical component ``v`` (y, positive downwards, along the height axis).

Pixel ``(y, x)`` of the first frame moves to ``(y + v, x + u)`` in the second frame. Image-shaped flows
are ``(H, W, 2)`` or batched ``(B, H, W, 2)``.

``endpoint_error`` and ``resize_flow`` are differentiable TensorFlow ops that also work inside
``tf.function`` with dynamic (``None``) spatial dimensions. ``flow_to_color`` and ``make_colorwheel`` are
NumPy visualisation helpers (not differentiable) that accept NumPy arrays or eager tensors.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = [
    "UNKNOWN_FLOW_THRESH",
    "endpoint_error",
    "flow_to_color",
    "make_colorwheel",
    "resize_flow",
    "quantize_flow",
    "dequantize_flow",
]

#: Flow components whose absolute value exceeds this are "unknown" (Middlebury ``.flo`` convention).
UNKNOWN_FLOW_THRESH = 1e9


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _as_float_tensor(x, arg: str, dtype=None) -> tf.Tensor:
    """Converts ``x`` to a floating tensor (integers are cast to float32, or to ``dtype`` if given)."""
    x = tf.convert_to_tensor(x)
    if dtype is not None:
        if not (x.dtype.is_floating or x.dtype.is_integer):
            raise TypeError(f"`{arg}` must have a real numeric dtype, got {x.dtype.name}")
        return tf.cast(x, dtype)
    if x.dtype.is_floating:
        return x
    if x.dtype.is_integer:
        return tf.cast(x, tf.float32)
    raise TypeError(f"`{arg}` must have a floating (or integer) dtype, got {x.dtype.name}")


def _check_flow_last_dim(x: tf.Tensor, arg: str) -> None:
    """Raises ValueError unless ``x`` has a known rank >= 1 whose last dimension is 2 (or unknown)."""
    if x.shape.rank is None:
        return
    if x.shape.rank < 1 or (x.shape[-1] is not None and x.shape[-1] != 2):
        raise ValueError(
            f"`{arg}` must have shape (..., 2) (last axis = (u, v) flow components), got shape {x.shape}"
        )


def _safe_norm(diff: tf.Tensor) -> tf.Tensor:
    """Euclidean norm over the last axis with a finite gradient where the norm is exactly 0.

    ``sqrt`` has an infinite derivative at 0 (and ``0 * inf = NaN`` under the chain rule), so the square
    root is only evaluated on strictly positive inputs (the *double where trick*): zero-norm pixels get the
    exact value 0 and the (sub)gradient 0. Unlike ``sqrt(x + eps)`` this adds no bias to the value.
    """
    sq = tf.reduce_sum(tf.square(diff), axis=-1)
    positive = sq > 0
    safe_sq = tf.where(positive, sq, tf.ones_like(sq))
    return tf.where(positive, tf.sqrt(safe_sq), tf.zeros_like(sq))


# ----------------------------------------------------------------------------------------------------
# end-point error
# ----------------------------------------------------------------------------------------------------
def endpoint_error(flow, flow_gt, mask=None, reduce: bool = True, name: str | None = None) -> tf.Tensor:
    """Average end-point error (EPE) between two flow fields (TVNet paper, Eq. 14).

    ``EPE = mean_over_pixels sqrt((u - u_gt)^2 + (v - v_gt)^2)``

    The mean runs over every leading position of ``flow`` (batch and spatial axes alike).

    Args:
      flow: estimated flow, float tensor ``(..., 2)`` (e.g. ``(B, H, W, 2)``), pixels, ``[..., 0] = u``.
      flow_gt: ground-truth flow with the same shape as ``flow``; cast to ``flow``'s dtype.
      mask: optional validity mask of shape ``flow.shape[:-1]`` or ``flow.shape[:-1] + (1,)``, bool or
        numeric (any non-zero value = valid). Only valid pixels enter the mean; if no pixel is valid the
        result is 0 (not NaN). Invalid pixels may hold NaN/inf ground truth without poisoning the value
        or the gradient.
      reduce: if True return the scalar mean EPE; if False return the per-pixel EPE map of shape
        ``flow.shape[:-1]`` (0 at masked pixels).
      name: optional name scope.

    Returns:
      A scalar (``reduce=True``) or a ``flow.shape[:-1]`` tensor, with ``flow``'s dtype.

    Raises:
      ValueError: if ``flow``/``flow_gt`` do not have last dimension 2, their shapes differ, or ``mask``
        has an incompatible shape.
      TypeError: for non-numeric inputs.

    The gradient w.r.t. ``flow`` is ``(flow - flow_gt) / |flow - flow_gt| / N`` and is finite (0) at
    pixels where the error is exactly zero (see ``_safe_norm``: square root evaluated only on positive
    inputs via ``tf.where``, so the value carries no ``sqrt(eps)`` bias).

    Example:
      >>> f = tf.zeros([1, 2, 2, 2])
      >>> gt = tf.concat([tf.fill([1, 2, 2, 1], 3.0), tf.fill([1, 2, 2, 1], 4.0)], axis=-1)
      >>> float(endpoint_error(f, gt))
      5.0
    """
    with tf.name_scope(name or "endpoint_error"):
        flow = _as_float_tensor(flow, "flow")
        flow_gt = _as_float_tensor(flow_gt, "flow_gt", dtype=flow.dtype)
        _check_flow_last_dim(flow, "flow")
        _check_flow_last_dim(flow_gt, "flow_gt")
        if not flow.shape.is_compatible_with(flow_gt.shape):
            raise ValueError(
                f"`flow` and `flow_gt` must have the same shape (..., 2); got flow {flow.shape} and "
                f"flow_gt {flow_gt.shape}"
            )
        asserts = []
        if not (flow.shape.is_fully_defined() and flow_gt.shape.is_fully_defined()):
            asserts.append(
                tf.debugging.assert_equal(
                    tf.shape(flow), tf.shape(flow_gt), message="`flow` and `flow_gt` shapes differ"
                )
            )

        valid = None
        if mask is not None:
            mask = tf.convert_to_tensor(mask)
            if not (mask.dtype.is_bool or mask.dtype.is_floating or mask.dtype.is_integer):
                raise TypeError(f"`mask` must be bool or numeric, got dtype {mask.dtype.name}")
            lead = flow.shape[:-1] if flow.shape.rank is not None else tf.TensorShape(None)
            if (
                mask.shape.rank is not None
                and lead.rank is not None
                and mask.shape.rank == lead.rank + 1
                and mask.shape[-1] in (1, None)
            ):
                mask = tf.squeeze(mask, axis=-1)
            if not mask.shape.is_compatible_with(lead):
                raise ValueError(
                    f"`mask` must have shape flow.shape[:-1] = {lead} (optionally with a trailing 1), "
                    f"got shape {mask.shape}"
                )
            if not (mask.shape.is_fully_defined() and flow.shape.is_fully_defined()):
                asserts.append(
                    tf.debugging.assert_equal(
                        tf.shape(mask), tf.shape(flow)[:-1], message="`mask` shape != flow.shape[:-1]"
                    )
                )
            valid = mask if mask.dtype.is_bool else tf.not_equal(mask, tf.zeros_like(mask))

        with tf.control_dependencies(asserts):
            diff = flow - flow_gt
        if valid is not None:
            # Zero the difference (not the result) at invalid pixels so NaN/inf ground truth there cannot
            # leak into the value or the gradient.
            diff = tf.where(valid[..., tf.newaxis], diff, tf.zeros_like(diff))
        epe = _safe_norm(diff)

        if not reduce:
            return epe
        if valid is None:
            return tf.reduce_mean(epe)
        count = tf.reduce_sum(tf.cast(valid, epe.dtype))
        return tf.math.divide_no_nan(tf.reduce_sum(epe), count)


# ----------------------------------------------------------------------------------------------------
# resizing
# ----------------------------------------------------------------------------------------------------
def resize_flow(flow, size, method: str = "bilinear", name: str | None = None) -> tf.Tensor:
    """Resizes a flow field spatially and rescales its vectors to the new pixel grid.

    The field is resampled with ``tf.image.resize`` (half-pixel centres) and the components are scaled
    so that they stay in units of *new* pixels: ``u *= new_w / W`` and ``v *= new_h / H``.

    Args:
      flow: float tensor ``(B, H, W, 2)`` or ``(H, W, 2)``; ``H``/``W``/``B`` may be dynamic (``None``).
      size: ``(new_h, new_w)``: Python ints (must be positive) or an int tensor of shape ``(2,)``.
      method: any ``tf.image.resize`` method (``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``...).
      name: optional name scope.

    Returns:
      The resized flow, ``(B, new_h, new_w, 2)`` or ``(new_h, new_w, 2)``, with ``flow``'s dtype.

    Raises:
      ValueError: if ``flow`` is not rank 3/4 with last dimension 2, or ``size`` is not two positive ints.

    Example:
      >>> f = tf.fill([16, 20, 2], 1.0)
      >>> resize_flow(f, (32, 10))[0, 0].numpy()   # u * 10/20, v * 32/16
      array([0.5, 2. ], dtype=float32)
    """
    with tf.name_scope(name or "resize_flow"):
        flow = _as_float_tensor(flow, "flow")
        rank = flow.shape.rank
        if rank not in (3, 4):
            raise ValueError(
                f"`flow` must have shape (B, H, W, 2) or (H, W, 2) with a known rank, got shape {flow.shape}"
            )
        _check_flow_last_dim(flow, "flow")

        asserts = []
        if isinstance(size, tf.Tensor) and tf.get_static_value(size) is None:
            size_t = tf.cast(size, tf.int32)
            if size_t.shape.rank is not None and size_t.shape.as_list() not in ([2], [None]):
                raise ValueError(f"`size` must be (new_h, new_w), got a tensor of shape {size_t.shape}")
            asserts.append(
                tf.debugging.assert_positive(size_t, message="`size` must be two positive ints")
            )
            asserts.append(tf.debugging.assert_equal(tf.size(size_t), 2, message="`size` must have 2 values"))
        else:
            static = tf.get_static_value(size) if isinstance(size, tf.Tensor) else size
            try:
                values = [v for v in np.asarray(static).reshape(-1)]
            except Exception:  # pragma: no cover - exotic inputs
                values = []
            if len(values) != 2 or not all(float(v) == int(v) and int(v) > 0 for v in values):
                raise ValueError(f"`size` must be two positive ints (new_h, new_w), got {size!r}")
            size_t = tf.constant([int(values[0]), int(values[1])], tf.int32)

        with tf.control_dependencies(asserts):
            size_t = tf.identity(size_t)
        shape = tf.shape(flow)
        old_h = tf.cast(shape[-3], flow.dtype)
        old_w = tf.cast(shape[-2], flow.dtype)
        new_h = tf.cast(size_t[0], flow.dtype)
        new_w = tf.cast(size_t[1], flow.dtype)

        resized = tf.image.resize(flow, size_t, method=method)
        resized = tf.cast(resized, flow.dtype)
        scale = tf.stack([new_w / old_w, new_h / old_h])  # (u scale, v scale)
        return resized * scale


# ----------------------------------------------------------------------------------------------------
# Middlebury colour coding (NumPy)
# ----------------------------------------------------------------------------------------------------
def make_colorwheel() -> np.ndarray:
    """The 55-colour Middlebury flow colour wheel (Baker et al., IJCV 2011, ``makeColorwheel``).

    Six hue segments, sampled with ``RY=15, YG=6, GC=4, CB=11, BM=13, MR=6`` entries: red -> yellow ->
    green -> cyan -> blue -> magenta -> (back to) red. Entry 0 is pure red ``(255, 0, 0)``.

    Returns:
      ``(55, 3)`` uint8 array of RGB colours.

    Example:
      >>> make_colorwheel()[0]
      array([255,   0,   0], dtype=uint8)
    """
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    wheel = np.zeros((ry + yg + gc + cb + bm + mr, 3), np.float64)
    col = 0
    wheel[col : col + ry, 0] = 255  # red -> yellow
    wheel[col : col + ry, 1] = np.floor(255 * np.arange(ry) / ry)
    col += ry
    wheel[col : col + yg, 0] = 255 - np.floor(255 * np.arange(yg) / yg)  # yellow -> green
    wheel[col : col + yg, 1] = 255
    col += yg
    wheel[col : col + gc, 1] = 255  # green -> cyan
    wheel[col : col + gc, 2] = np.floor(255 * np.arange(gc) / gc)
    col += gc
    wheel[col : col + cb, 1] = 255 - np.floor(255 * np.arange(cb) / cb)  # cyan -> blue
    wheel[col : col + cb, 2] = 255
    col += cb
    wheel[col : col + bm, 2] = 255  # blue -> magenta
    wheel[col : col + bm, 0] = np.floor(255 * np.arange(bm) / bm)
    col += bm
    wheel[col : col + mr, 2] = 255 - np.floor(255 * np.arange(mr) / mr)  # magenta -> red
    wheel[col : col + mr, 0] = 255
    return wheel.astype(np.uint8)


def _compute_color(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Middlebury ``computeColor`` on normalised float64 components (unknown pixels already zeroed)."""
    wheel = make_colorwheel().astype(np.float64)
    ncols = wheel.shape[0]
    rad = np.sqrt(u * u + v * v)
    a = np.arctan2(-v, -u) / math.pi  # in [-1, 1]
    fk = (a + 1) / 2 * (ncols - 1)  # 0 .. ncols-1 (0-based port of the MATLAB "+1")
    k0 = np.floor(fk).astype(np.int64)
    k1 = k0 + 1
    k1[k1 == ncols] = 0
    f = fk - k0
    img = np.empty(u.shape + (3,), np.uint8)
    inside = rad <= 1
    for c in range(3):
        col0 = wheel[k0, c] / 255.0
        col1 = wheel[k1, c] / 255.0
        col = (1 - f) * col0 + f * col1
        col = np.where(inside, 1 - rad * (1 - col), col * 0.75)  # desaturate towards white near 0
        img[..., c] = np.floor(255 * col).astype(np.uint8)
    return img


def flow_to_color(flow, max_flow: float | None = None) -> np.ndarray:
    """Middlebury colour coding of a flow field (Baker et al. 2011, ``flowToColor``/``computeColor``).

    Hue encodes direction and saturation encodes magnitude: zero flow is white, a flow of magnitude
    ``max_flow`` is the fully saturated wheel colour, and larger flows are the wheel colour darkened by
    0.75. Direction: with ``a = atan2(-v, -u) / pi``, the wheel index is ``(a + 1) / 2 * 54`` (linear
    interpolation between neighbouring entries), so ``+x`` (right) is red, ``+y`` (down) orange-yellow,
    ``-x`` (left) cyan-blue and ``-y`` (up) blue-violet. Colour values are truncated (``floor``) like the
    reference C++ code.

    Args:
      flow: NumPy array or tensor of shape ``(..., H, W, 2)`` (pixels, ``[..., 0] = u``).
      max_flow: magnitude mapped to full saturation. If None, each image is normalised by its own
        maximum magnitude over known pixels (an all-zero image is white, no division by zero).

    Returns:
      uint8 RGB array of shape ``(..., H, W, 3)``. Unknown pixels (NaN, inf, or ``|component| > 1e9``) are
      black ``(0, 0, 0)``.

    Raises:
      ValueError: if ``flow`` does not have shape ``(..., H, W, 2)`` or ``max_flow`` is not positive.

    Example:
      >>> flow_to_color(np.array([[[1.0, 0.0]]]))  # one pixel moving right at full magnitude
      array([[[255,   0,   0]]], dtype=uint8)
    """
    if hasattr(flow, "numpy"):
        flow = flow.numpy()
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"`flow` must have shape (..., H, W, 2), got shape {flow.shape}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise TypeError(f"`flow` must be a real numeric array, got dtype {flow.dtype}")
    if max_flow is not None:
        max_flow = float(max_flow)
        if not (max_flow > 0 and math.isfinite(max_flow)):
            raise ValueError(f"`max_flow` must be a positive finite number or None, got {max_flow}")

    flow = flow.astype(np.float64)
    u, v = flow[..., 0], flow[..., 1]
    unknown = ~np.isfinite(u) | ~np.isfinite(v)
    with np.errstate(invalid="ignore"):
        unknown |= (np.abs(u) > UNKNOWN_FLOW_THRESH) | (np.abs(v) > UNKNOWN_FLOW_THRESH)
    u = np.where(unknown, 0.0, u)
    v = np.where(unknown, 0.0, v)

    if max_flow is None:
        rad = np.sqrt(u * u + v * v)
        maxrad = rad.max(axis=(-2, -1), keepdims=True)  # per image (unknown pixels are 0 here)
    else:
        maxrad = max_flow
    denom = maxrad + np.finfo(np.float64).eps
    img = _compute_color(u / denom, v / denom)
    img[unknown] = 0
    return img


# ----------------------------------------------------------------------------------------------------
# flow as 8-bit images
# ----------------------------------------------------------------------------------------------------
def quantize_flow(flow, bound: float = 40.0, third_channel: bool = True, name: str | None = None) -> tf.Tensor:
    """Flow stored as an 8-bit image, as Ng et al. (thesis Sec. 3.6; digest 3.6) and the two-stream /
    TSN line of work store TV-L1 flow: each component clipped to ``[-bound, bound]`` (thesis: 40 pixels)
    and mapped linearly to ``[0, 255]``, ``q = floor((clip(f) + bound) * 255 / (2 bound) + 0.5)`` (rounding
    half up: zero flow, 127.5, becomes 128). ``third_channel``: a zero third
    channel, so the result is an RGB-shaped image "treated exactly like image frames" (thesis); without
    it the two channels ``(u, v)`` as TSN stacks them.

    Args:
      flow: ``(..., 2)`` float flow in pixels.
      bound: the clipping bound in pixels (> 0).

    Returns:
      uint8 ``(..., 3)`` (or ``(..., 2)``).

    Example:
      >>> quantize_flow([[0.0, -40.0], [40.0, 100.0]]).numpy().tolist()
      [[128, 0, 0], [255, 255, 0]]
    """
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
        raise ValueError(f"`bound` must be a number > 0; got {bound!r}")
    with tf.name_scope(name or "quantize_flow"):
        flow = _as_float_tensor(flow, "flow", tf.float32)
        _check_flow_last_dim(flow, "flow")
        scaled = (tf.clip_by_value(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
        q = tf.cast(tf.clip_by_value(tf.floor(scaled + 0.5), 0.0, 255.0), tf.uint8)
        if third_channel:
            q = tf.concat([q, tf.zeros_like(q[..., :1])], axis=-1)
        return q


def dequantize_flow(image, bound: float = 40.0, name: str | None = None) -> tf.Tensor:
    """The inverse of :func:`quantize_flow` (up to its rounding, ``bound / 255`` pixels at most, and its
    clipping): uint8 ``(..., 2)`` or ``(..., 3)`` (third channel ignored) -> float32 flow ``(..., 2)``,
    ``f = q * 2 bound / 255 - bound``."""
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
        raise ValueError(f"`bound` must be a number > 0; got {bound!r}")
    with tf.name_scope(name or "dequantize_flow"):
        image = tf.convert_to_tensor(image)
        if image.shape.rank is not None and (image.shape.rank == 0 or image.shape[-1] not in (None, 2, 3)):
            raise ValueError(f"`image` must have 2 or 3 channels (u, v[, 0]); got shape {image.shape}")
        return tf.cast(image[..., :2], tf.float32) * (2.0 * bound / 255.0) - bound
