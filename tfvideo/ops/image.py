"""Small image helpers shared by layers and losses."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["to_grey", "LUMA_601", "TVNET_SMOOTHING_KERNEL", "tvnet_official_preprocess"]

#: ITU-R BT.601 luma weights for R, G, B
LUMA_601 = (0.299, 0.587, 0.114)


def to_grey(images, arg: str = "images", dtype=tf.float32) -> tf.Tensor:
    """Convert ``(..., H, W, C)`` images with C = 1 (grey) or 3 (RGB) to ``(..., H, W, 1)`` grey.

    RGB is converted with the ITU-R BT.601 luma weights ``0.299 R + 0.587 G + 0.114 B``; values keep
    their range (e.g. [0, 255]). Any numeric dtype is accepted and cast to ``dtype``.
    """
    images = tf.convert_to_tensor(images)
    if not (images.dtype.is_floating or images.dtype.is_integer):
        raise TypeError(f"`{arg}` must be numeric (uint8 or float); got {images.dtype.name}")
    channels = images.shape[-1] if images.shape.rank else None
    if channels not in (1, 3):
        raise ValueError(
            f"`{arg}` must have 1 (grey) or 3 (RGB) channels in the last axis; got shape {images.shape}"
        )
    images = tf.cast(images, dtype)
    if channels == 1:
        return images
    weights = tf.constant(LUMA_601, dtype=dtype)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True)


#: The 5x5 smoothing kernel of the TVNet authors' code (github.com/LijieFan/tvnet, ``tvnet.py``,
#: ``TVNet.gaussian_smooth``), as printed there: the outer product of the taps (0.02956, 0.23601,
#: 0.46886, 0.23601, 0.02956), a normalised 5-tap Gaussian of sigma ~0.85 px (sum 1.000001).
TVNET_SMOOTHING_KERNEL = (
    (0.000874, 0.006976, 0.01386, 0.006976, 0.000874),
    (0.006976, 0.0557, 0.110656, 0.0557, 0.006976),
    (0.01386, 0.110656, 0.219833, 0.110656, 0.01386),
    (0.006976, 0.0557, 0.110656, 0.0557, 0.006976),
    (0.000874, 0.006976, 0.01386, 0.006976, 0.000874),
)


def tvnet_official_preprocess(frame0, frame1):
    """The frame preprocessing of the TVNet authors' code (``TVNet.tvnet_flow``), before the pyramid.

    For every pair ``(frame0[b], frame1[b])`` of ``(B, H, W, C)`` frames (C = 1 or 3, values in
    [0, 255], any numeric dtype):

    1. grey: ``floor(0.299 R + 0.587 G + 0.114 B)`` (``grey_scale_image``: a 1x1 convolution with
       weights (0.114, 0.587, 0.299) on OpenCV's BGR frames, then ``tf.floor``; our frames are RGB);
       a one-channel frame is only floored;
    2. joint normalisation (``normalize_images``): ``min``/``max`` over *both* frames of the pair, then
       ``255 (x - min) / (max - min)``, or the frames unchanged when ``max == min``;
    3. smoothing (``gaussian_smooth``): a 5x5 convolution with :data:`TVNET_SMOOTHING_KERNEL` and
       zero padding (``tf.layers.conv2d(padding="same")``: border pixels darken), applied even with
       one pyramid scale.

    Returns ``(grey0, grey1)``, float32 ``(B, H, W, 1)``. Differentiable almost everywhere (the
    floor's gradient is 0: no gradient reaches the frames, as in the authors' graph); XLA-compatible.
    """
    g0, g1 = tf.floor(to_grey(frame0, "frame0")), tf.floor(to_grey(frame1, "frame1"))
    lo = tf.minimum(tf.reduce_min(g0, axis=[1, 2, 3], keepdims=True),
                    tf.reduce_min(g1, axis=[1, 2, 3], keepdims=True))
    hi = tf.maximum(tf.reduce_max(g0, axis=[1, 2, 3], keepdims=True),
                    tf.reduce_max(g1, axis=[1, 2, 3], keepdims=True))
    den = hi - lo
    safe = tf.where(den > 0, den, tf.ones_like(den))
    n0 = tf.where(den > 0, 255.0 * (g0 - lo) / safe, g0)
    n1 = tf.where(den > 0, 255.0 * (g1 - lo) / safe, g1)
    kernel = tf.constant(TVNET_SMOOTHING_KERNEL, tf.float32)[:, :, None, None]
    smooth = tf.nn.conv2d(tf.concat([n0, n1], axis=0), kernel, strides=1, padding="SAME")
    return smooth[:tf.shape(n0)[0]], smooth[tf.shape(n0)[0]:]
