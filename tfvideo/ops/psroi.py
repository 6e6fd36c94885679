"""Position-sensitive RoI pooling of R-FCN (Dai et al. 2016), as used by Deep Feature Flow (seed 003, Sec. 4).

A pure-TensorFlow transcription of the MXNet op ``PSROIPooling`` (``dff_rfcn/operator_cxx/
psroi_pooling.cu`` of github.com/msracver/Deep-Feature-Flow, the same kernel as R-FCN's Caffe
``psroi_pooling_layer.cu``), channels-last. No custom C++: box sums come from a summed-area table
(integral image) and ``gather_nd``, so the op runs eagerly and in ``tf.function`` with an unknown
number of RoIs, and is differentiable with respect to ``score_maps`` (the gradient is the kernel's
backward pass: each pixel of a bin receives ``grad / bin_area``). It is **not** differentiable with
respect to ``rois`` (the kernel rounds them; gradients stop there, as in the reference).

Conventions
-----------
* ``score_maps``: ``(B, H, W, output_dim * k * k)`` channels-last. Channel
  ``(c * k + bin_y) * k + bin_x`` holds class (or box coordinate) ``c`` for bin ``(bin_y, bin_x)`` --
  **the channel index of R-FCN's channels-first maps, unchanged**, so a 1x1 conv converted from the
  released MXNet weights (``(O, I, 1, 1) -> (1, 1, I, O)``) feeds this op with no channel permutation.
* ``rois``: ``(N, 5)`` = ``(batch_index, x1, y1, x2, y2)`` in input-image pixels (the +1 / inclusive
  convention of :mod:`tfvideo.ops.boxes`); ``batch_index`` is truncated to an int.
* Output: ``(N, k, k, output_dim)`` channels-last, ``out[n, bin_y, bin_x, c]``.
* Bins, exactly as the kernel: ``x_start = round(x1) * scale``, ``x_end = (round(x2) + 1) * scale``
  (``round`` = half away from zero, C's ``round``), likewise in y; ``roi_w = max(x_end - x_start, 0.1)``
  (tiny or inverted RoIs become 0.1 feature pixels); ``bin_w = roi_w / k``; bin ``j`` covers the integer
  pixel columns ``floor(j * bin_w + x_start) <= x < ceil((j + 1) * bin_w + x_start)``, clipped to
  ``[0, W]``; rows likewise. The value is the **average** over those pixels, **0 for an empty bin**
  (e.g. a bin entirely outside the map). Bins of neighbouring cells may overlap by one pixel.
* ``pooled_size`` of the MXNet op is taken equal to ``group_size`` (DFF: both 7).

Arithmetic: the bin boundaries are computed as the kernel does, in the map's dtype (float32, or
float64 for float64 maps), in the same order of operations (the CUDA compiler may fuse
``j * bin + start`` into one FMA; that can only matter when a boundary is within one rounding of an
integer, which never happens for a prime ``k`` such as DFF's 7 with a power-of-two ``spatial_scale``:
the boundary is then either an exact dyadic number or at least ``scale / k`` away from an integer).
The bin sums come from a float64 summed-area table, so long cumulative sums lose no precision; the
result is cast back to the map's dtype.

Example
-------
>>> import numpy as np
>>> maps = np.ones((1, 8, 8, 2 * 3 * 3), np.float32)
>>> out = psroi_pool(maps, [[0, 0, 0, 63, 63]], output_dim=2, group_size=3, spatial_scale=1 / 8)
>>> out.shape, float(out[0, 1, 2, 1])
(TensorShape([1, 3, 3, 2]), 1.0)
"""

from __future__ import annotations

import tensorflow as tf

from tfvideo.checks import positive_float, positive_int

__all__ = ["psroi_pool", "ps_vote"]

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _round_half_away(x):
    """C ``round``: halves away from zero (``tf.round`` rounds half to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def psroi_pool(score_maps, rois, output_dim: int, group_size: int = 7, spatial_scale: float = 1.0 / 16,
               name: str | None = None) -> tf.Tensor:
    """Position-sensitive RoI average pooling (R-FCN's ``PSROIPooling``); see the module docstring.

    Args:
      score_maps: ``(B, H, W, output_dim * group_size**2)`` float tensor, channel
        ``(c * k + bin_y) * k + bin_x``. DFF: ``rfcn_cls`` with ``output_dim = C + 1 = 31`` and
        ``rfcn_bbox`` with ``output_dim = 8`` (class-agnostic: 4 deltas x {background, object}).
      rois: ``(N, 5)`` ``(batch_index, x1, y1, x2, y2)`` in input-image pixels; ``N`` may be unknown.
      output_dim: number of output channels (classes or box coordinates).
      group_size: ``k``, bins per side (DFF / R-FCN: 7).
      spatial_scale: feature pixels per image pixel (DFF: ``1 / 16``).

    Returns:
      ``(N, k, k, output_dim)`` in the dtype of ``score_maps``.
    """
    output_dim = positive_int(output_dim, "output_dim")
    k = positive_int(group_size, "group_size")
    spatial_scale = positive_float(spatial_scale, "spatial_scale")
    with tf.name_scope(name or "psroi_pool"):
        score_maps = tf.convert_to_tensor(score_maps)
        if score_maps.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"`score_maps` must be a floating tensor; got {score_maps.dtype.name}")
        if score_maps.shape.rank is not None and score_maps.shape.rank != 4:
            raise ValueError(f"`score_maps` must be a rank-4 tensor (batch, height, width, output_dim * "
                             f"group_size**2); got shape {score_maps.shape}")
        if score_maps.shape[-1] is not None and score_maps.shape[-1] != output_dim * k * k:
            raise ValueError(f"`score_maps` must have output_dim * group_size**2 = {output_dim} * {k}**2 = "
                             f"{output_dim * k * k} channels; got shape {score_maps.shape}")
        rois = tf.convert_to_tensor(rois)
        if not (rois.dtype.is_floating or rois.dtype.is_integer):
            raise TypeError(f"`rois` must be a numeric tensor; got {rois.dtype.name}")
        if rois.shape.rank is not None and (rois.shape.rank != 2 or (rois.shape[-1] is not None
                                                                     and rois.shape[-1] != 5)):
            raise ValueError(f"`rois` must be (num_rois, 5) as (batch_index, x1, y1, x2, y2); got shape "
                             f"{rois.shape}")
        cdtype = tf.float64 if score_maps.dtype == tf.float64 else tf.float32  # the kernel's DType
        rois = tf.stop_gradient(tf.cast(rois, cdtype))
        shape = tf.shape(score_maps)
        batch, height, width = shape[0], shape[1], shape[2]
        batch_index = tf.cast(rois[:, 0], tf.int32)  # C's float -> int conversion truncates
        tf.debugging.assert_less(batch_index, batch, message="`rois` batch index must be < batch size")
        tf.debugging.assert_non_negative(batch_index, message="`rois` batch index must be >= 0")

        scale = tf.constant(spatial_scale, cdtype)
        x_start = _round_half_away(rois[:, 1]) * scale
        y_start = _round_half_away(rois[:, 2]) * scale
        x_end = (_round_half_away(rois[:, 3]) + 1.0) * scale
        y_end = (_round_half_away(rois[:, 4]) + 1.0) * scale
        bin_w = tf.maximum(x_end - x_start, 0.1) / float(k)
        bin_h = tf.maximum(y_end - y_start, 0.1) / float(k)
        p = tf.range(k, dtype=cdtype)

        def edges(bin_size, start, size):  # (N, k) int32 [lo, hi), clipped to [0, size]
            lo = tf.floor(p[None] * bin_size[:, None] + start[:, None])  # as the kernel: ph * bin + start
            hi = tf.math.ceil((p[None] + 1.0) * bin_size[:, None] + start[:, None])
            top = tf.cast(size, cdtype)
            return (tf.cast(tf.clip_by_value(lo, 0.0, top), tf.int32),
                    tf.cast(tf.clip_by_value(hi, 0.0, top), tf.int32))

        h0, h1 = edges(bin_h, y_start, height)
        w0, w1 = edges(bin_w, x_start, width)

        # summed-area table, (B, H + 1, W + 1, k, k, output_dim), with the (c, bin_y, bin_x) channels
        # moved to (bin_y, bin_x, c) so one gather_nd per corner picks each bin's own channel group
        maps = tf.reshape(tf.cast(score_maps, tf.float64), [batch, height, width, output_dim, k, k])
        maps = tf.transpose(maps, [0, 1, 2, 4, 5, 3])
        table = tf.cumsum(tf.cumsum(maps, axis=1), axis=2)
        table = tf.pad(table, [[0, 0], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]])

        n = tf.shape(rois)[0]
        grid_y, grid_x = tf.meshgrid(tf.range(k), tf.range(k), indexing="ij")  # (k, k)
        bidx = tf.broadcast_to(batch_index[:, None, None], [n, k, k])
        gy = tf.broadcast_to(grid_y[None], [n, k, k])
        gx = tf.broadcast_to(grid_x[None], [n, k, k])
        ys0, ys1 = h0[:, :, None] + 0 * gx, h1[:, :, None] + 0 * gx  # (N, k, k), varying along bin_y
        xs0, xs1 = w0[:, None, :] + 0 * gy, w1[:, None, :] + 0 * gy  # varying along bin_x

        def corner(ys, xs):
            return tf.gather_nd(table, tf.stack([bidx, ys, xs, gy, gx], axis=-1))  # (N, k, k, output_dim)

        total = corner(ys1, xs1) - corner(ys0, xs1) - corner(ys1, xs0) + corner(ys0, xs0)
        area = (ys1 - ys0) * (xs1 - xs0)
        empty = (ys1 <= ys0) | (xs1 <= xs0)
        mean = total / tf.cast(tf.maximum(area, 1), tf.float64)[..., None]
        out = tf.where(empty[..., None], tf.zeros_like(mean), mean)
        return tf.cast(out, score_maps.dtype)


def ps_vote(pooled, name: str | None = None) -> tf.Tensor:
    """R-FCN's voting: the average of the ``k x k`` position-sensitive bins, ``(N, k, k, C) -> (N, C)``
    (DFF's ``mx.sym.Pooling(pool_type='avg', global_pool=True)`` after ``PSROIPooling``). Apply a
    softmax over the classes afterwards for probabilities."""
    with tf.name_scope(name or "ps_vote"):
        pooled = tf.convert_to_tensor(pooled)
        if pooled.shape.rank is not None and pooled.shape.rank != 4:
            raise ValueError(f"`pooled` must be (num_rois, k, k, channels) from psroi_pool; got shape "
                             f"{pooled.shape}")
        if isinstance(pooled.dtype, tf.DType) and pooled.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"`pooled` must be a floating tensor; got {pooled.dtype.name}")
        return tf.reduce_mean(pooled, axis=[1, 2])

