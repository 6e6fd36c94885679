"""Small image helpers shared by layers and losses."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["to_grey", "LUMA_601"]

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
