"""Bilinear image warping: a drop-in replacement for ``tfa.image.dense_image_warp``.

tensorflow-addons is end-of-life; it does not import under Keras 3 and its C++ ops fail to load on
TF 2.21. The functions here are pure TensorFlow (``gather`` based), differentiable with respect to both
the image and the flow, and run eagerly, inside ``tf.function`` with unknown batch and spatial sizes,
and under XLA (``jit_compile=True``).

Two flow conventions meet in this project
-----------------------------------------
**tfa convention** (``dense_image_warp``): ``flow`` is ``(B, H, W, 2)`` with ``flow[..., 0] = dy``
(vertical) and ``flow[..., 1] = dx`` (horizontal), and the output is::

    output[b, y, x, c] = image[b, y - dy, x - dx, c]

sampled bilinearly, with query points clamped to the image border (as ``cv2.BORDER_REPLICATE``).

**OpenCV / project convention** (every flow that tfvideo layers and models return): ``flow`` is
``(..., 2)`` in pixels with ``flow[..., 0] = u`` (horizontal, x) and ``flow[..., 1] = v`` (vertical, y),
and means ``frame1(p + flow(p)) ~= frame0(p)`` (as ``cv2.calcOpticalFlowFarneback`` and
``cv2.optflow.DualTVL1OpticalFlow``). So the OpenCV flow ``(u, v)`` equals the tfa flow
``(dy, dx) = (-v, -u)``::

    dense_image_warp(frame1, opencv_flow_to_tfa(flow)) ~= frame0
    backward_warp(frame1, flow)                       ~= frame0      # the same thing

Example
-------
>>> import numpy as np, tensorflow as tf
>>> img = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
>>> flow = np.zeros((1, 4, 4, 2), np.float32); flow[..., 1] = 1.0     # dx = 1
>>> out = dense_image_warp(img, flow)            # out[:, y, x] = img[:, y, x - 1]
>>> float(out[0, 0, 2, 0])
1.0
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "dense_image_warp",
    "interpolate_bilinear",
    "interpolate_bicubic",
    "backward_warp",
    "opencv_flow_to_tfa",
    "tfa_flow_to_opencv",
]

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _check_float(t: tf.Tensor, arg: str) -> None:
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"`{arg}` must be a floating tensor (float16, bfloat16, float32 or float64); got {t.dtype.name}"
        )


def _check_rank(t: tf.Tensor, rank: int, arg: str, layout: str) -> None:
    if t.shape.rank is not None and t.shape.rank != rank:
        raise ValueError(f"`{arg}` must be a rank-{rank} tensor {layout}; got shape {t.shape}")


def _checked(x, arg: str, rank: int, layout: str, last: int | None = None, meaning: str = "") -> tf.Tensor:
    """``x`` as a float tensor of ``rank``, with an optional fixed last dimension."""
    x = tf.convert_to_tensor(x)
    _check_float(x, arg)
    _check_rank(x, rank, arg, layout)
    if last is not None and x.shape[-1] is not None and x.shape[-1] != last:
        raise ValueError(f"`{arg}` must have last dimension {last} {meaning}; got shape {x.shape}")
    return x


def _check_same_sizes(a, b, names, axes) -> None:
    """Static check that ``a`` and ``b`` agree on ``axes`` (pairs of axis and its name)."""
    for axis, what in axes:
        if a.shape[axis] is not None and b.shape[axis] is not None and a.shape[axis] != b.shape[axis]:
            raise ValueError(
                f"`{names[0]}` and `{names[1]}` must have the same {what}; got {names[0]} shape {a.shape} "
                f"and {names[1]} shape {b.shape}"
            )


def _check_grid_and_queries(grid, query_points):
    """Shared argument checks of the interpolation functions; returns the two tensors."""
    grid = _checked(grid, "grid", 4, "(batch, height, width, channels)")
    query_points = _checked(query_points, "query_points", 3, "(batch, n, 2)", 2, "(a coordinate pair)")
    for axis, what in ((1, "height"), (2, "width")):
        if grid.shape[axis] is not None and grid.shape[axis] < 2:
            raise ValueError(f"`grid` {what} must be at least 2 for interpolation; got shape {grid.shape}")
    _check_same_sizes(grid, query_points, ("grid", "query_points"), ((0, "batch size"),))
    return grid, query_points


def _query_yx(q, indexing):
    """``(qy, qx)`` of ``(..., 2)`` query points in ``"ij"`` (y first) or ``"xy"`` order. An unstack, not two
    slices: its gradient is one stack, a slice's a full-size zero tensor per slice."""
    first, second = tf.unstack(q, num=2, axis=-1)
    return (first, second) if indexing == "ij" else (second, first)


def interpolate_bilinear(grid, query_points, indexing: str = "ij", name: str | None = None) -> tf.Tensor:
    """Sample ``grid`` at real-valued ``query_points`` by bilinear interpolation (as tfa).

    Args:
      grid: ``(batch, height, width, channels)`` float tensor; height and width must be at least 2.
      query_points: ``(batch, n, 2)`` float tensor of coordinates. With ``indexing="ij"`` each point is
        ``(y, x)`` (row, column); with ``"xy"`` it is ``(x, y)``.
      indexing: ``"ij"`` or ``"xy"``.

    Returns:
      ``(batch, n, channels)`` tensor of ``grid``'s dtype. Query points outside the grid are clamped to
      the border (the edge pixel is repeated).
    """
    if indexing not in ("ij", "xy"):
        raise ValueError(f"`indexing` must be 'ij' or 'xy'; got {indexing!r}")
    with tf.name_scope(name or "interpolate_bilinear"):
        grid, query_points = _check_grid_and_queries(grid, query_points)
        shape = tf.shape(grid)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        num_queries = tf.shape(query_points)[1]
        # Coordinates are computed in float32 (float64 when given): float16 cannot index large images.
        qdtype = tf.float64 if query_points.dtype == tf.float64 else tf.float32
        q = tf.cast(query_points, qdtype)
        qy, qx = _query_yx(q, indexing)

        def corners(coord, size):
            size_f = tf.cast(size, qdtype)
            floor = tf.clip_by_value(tf.floor(coord), 0.0, size_f - 2.0)
            alpha = tf.clip_by_value(coord - floor, 0.0, 1.0)
            return tf.cast(floor, tf.int32), tf.expand_dims(tf.cast(alpha, grid.dtype), -1)

        y0, alpha_y = corners(qy, height)
        x0, alpha_x = corners(qx, width)

        flat = tf.reshape(grid, [-1, channels])
        base = tf.reshape(tf.range(batch) * height * width, [-1, 1])

        def gather(y, x):
            return tf.gather(flat, base + y * width + x)

        top_left = gather(y0, x0)
        top_right = gather(y0, x0 + 1)
        bottom_left = gather(y0 + 1, x0)
        bottom_right = gather(y0 + 1, x0 + 1)
        top = alpha_x * (top_right - top_left) + top_left
        bottom = alpha_x * (bottom_right - bottom_left) + bottom_left
        out = alpha_y * (bottom - top) + top
        return tf.reshape(out, [batch, num_queries, channels])


#: Keys' cubic-convolution parameter of OpenCV's ``INTER_CUBIC``
CUBIC_A = -0.75


def _cubic_weights(t, a=CUBIC_A):
    """Keys' cubic-convolution weights of the taps at offsets -1, 0, 1, 2 for fractional parts ``t``."""
    t1 = t + 1.0
    s = 1.0 - t
    s1 = s + 1.0
    w0 = ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
    w3 = ((a * s1 - 5.0 * a) * s1 + 8.0 * a) * s1 - 4.0 * a
    return tf.stack([w0, w1, w2, w3], axis=-1)


def interpolate_bicubic(grid, query_points, indexing: str = "ij", name: str | None = None) -> tf.Tensor:
    """Sample ``grid`` at ``query_points`` by bicubic (Keys, a = -0.75) interpolation.

    Same arguments and shapes as :func:`interpolate_bilinear`. The 4x4 neighbourhood's indices are
    clamped to the image (edge pixels repeated), which is what ``cv2.remap(..., cv2.INTER_CUBIC,
    borderMode=cv2.BORDER_REPLICATE)`` computes. Differentiable w.r.t. ``grid`` and ``query_points``.
    """
    if indexing not in ("ij", "xy"):
        raise ValueError(f"`indexing` must be 'ij' or 'xy'; got {indexing!r}")
    with tf.name_scope(name or "interpolate_bicubic"):
        grid, query_points = _check_grid_and_queries(grid, query_points)
        shape = tf.shape(grid)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        qdtype = tf.float64 if query_points.dtype == tf.float64 else tf.float32
        q = tf.cast(query_points, qdtype)
        qy, qx = _query_yx(q, indexing)
        y0, x0 = tf.floor(qy), tf.floor(qx)
        wy = tf.cast(_cubic_weights(qy - y0), grid.dtype)  # (B, N, 4)
        wx = tf.cast(_cubic_weights(qx - x0), grid.dtype)
        offsets = tf.constant([-1, 0, 1, 2], tf.int32)
        # clamp the query first so that int32 casts stay in range for far-away points
        big = tf.cast(tf.maximum(height, width) + 2, qdtype)
        iy = tf.clip_by_value(tf.cast(tf.clip_by_value(y0, -big, big), tf.int32)[..., None] + offsets, 0, height - 1)
        ix = tf.clip_by_value(tf.cast(tf.clip_by_value(x0, -big, big), tf.int32)[..., None] + offsets, 0, width - 1)
        flat = tf.reshape(grid, [-1, channels])
        base = tf.reshape(tf.range(batch) * height * width, [-1, 1, 1])
        out = None
        for i in range(4):
            vals = tf.gather(flat, base + iy[..., i : i + 1] * width + ix)  # (B, N, 4, C)
            row = tf.reduce_sum(vals * wx[..., None], axis=2) * wy[..., i : i + 1]
            out = row if out is None else out + row
        return out


def dense_image_warp(image, flow, name: str | None = None, interpolation: str = "bilinear") -> tf.Tensor:
    """Warp ``image`` by ``flow`` (tfa convention): ``out[b, y, x] = image[b, y - dy, x - dx]``.

    Args:
      image: ``(batch, height, width, channels)`` float tensor (float16, bfloat16, float32, float64);
        height and width at least 2.
      flow: ``(batch, height, width, 2)`` float tensor, ``flow[..., 0] = dy`` and ``flow[..., 1] = dx``
        in pixels. An OpenCV-style flow is converted with :func:`opencv_flow_to_tfa`.
      name: optional name scope.
      interpolation: ``"bilinear"`` (tfa's behaviour, the default) or ``"bicubic"`` (Keys a = -0.75,
        as ``cv2.INTER_CUBIC``; 16 taps, about 3x the cost).

    Returns:
      ``(batch, height, width, channels)`` tensor of ``image``'s dtype, sampled with query points
      clamped to the border.

    Raises:
      ValueError: wrong ranks, mismatched batch or spatial sizes, last dimension of ``flow`` not 2.
      TypeError: non-floating inputs.
    """
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(f"`interpolation` must be 'bilinear' or 'bicubic'; got {interpolation!r}")
    with tf.name_scope(name or "dense_image_warp"):
        image = _checked(image, "image", 4, "(batch, height, width, channels)")
        flow = _checked(flow, "flow", 4, "(batch, height, width, 2) holding (dy, dx)", 2, "holding (dy, dx)")
        _check_same_sizes(image, flow, ("image", "flow"), ((0, "batch size"), (1, "height"), (2, "width")))
        shape = tf.shape(image)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        if not (image.shape[:3].is_fully_defined() and flow.shape[:3].is_fully_defined()):
            # Sizes only known at run time (tf.function with None dims): check them in the graph.
            with tf.control_dependencies([
                tf.debugging.assert_equal(
                    tf.shape(flow)[:3], shape[:3],
                    message="`image` and `flow` must have the same batch size, height and width",
                )
            ]):
                flow = tf.identity(flow)
        qdtype = tf.float64 if flow.dtype == tf.float64 else tf.float32
        flow_q = tf.cast(flow, qdtype)
        gy, gx = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
        grid = tf.cast(tf.stack([gy, gx], axis=-1), qdtype)
        query = tf.reshape(grid[tf.newaxis] - flow_q, [batch, height * width, 2])
        interpolate = interpolate_bilinear if interpolation == "bilinear" else interpolate_bicubic
        out = interpolate(image, query, indexing="ij")
        out = tf.reshape(out, [batch, height, width, channels])
        out = tf.ensure_shape(out, image.shape)
        return out


def opencv_flow_to_tfa(flow) -> tf.Tensor:
    """Convert an OpenCV-style flow ``(u, v)`` (``frame1(p + flow) ~ frame0``) to tfa's ``(dy, dx)``.

    With the result, ``dense_image_warp(frame1, opencv_flow_to_tfa(flow)) ~= frame0``.
    """
    flow = tf.convert_to_tensor(flow)
    if flow.shape.rank is not None and (flow.shape.rank < 1 or flow.shape[-1] not in (None, 2)):
        raise ValueError(f"`flow` must have last dimension 2 holding (u, v); got shape {flow.shape}")
    return -tf.reverse(flow, axis=[-1])


def tfa_flow_to_opencv(flow) -> tf.Tensor:
    """Inverse of :func:`opencv_flow_to_tfa`: tfa ``(dy, dx)`` to OpenCV ``(u, v) = (-dx, -dy)``."""
    flow = tf.convert_to_tensor(flow)
    if flow.shape.rank is not None and (flow.shape.rank < 1 or flow.shape[-1] not in (None, 2)):
        raise ValueError(f"`flow` must have last dimension 2 holding (dy, dx); got shape {flow.shape}")
    return -tf.reverse(flow, axis=[-1])


def backward_warp(image, flow, name: str | None = None, interpolation: str = "bilinear") -> tf.Tensor:
    """Sample ``image`` at ``p + flow(p)`` for an OpenCV-style flow: ``out(p) = image(p + flow(p))``.

    This is how a flow in the project's convention is checked: ``backward_warp(frame1, flow) ~= frame0``.
    Same shapes, dtypes and border rule as :func:`dense_image_warp`; ``flow[..., 0]`` is horizontal.
    """
    with tf.name_scope(name or "backward_warp"):
        flow = tf.convert_to_tensor(flow)
        _check_rank(flow, 4, "flow", "(batch, height, width, 2) holding (u, v)")
        return dense_image_warp(image, opencv_flow_to_tfa(flow), interpolation=interpolation)
