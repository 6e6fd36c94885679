"""Keras-usable losses of the seed papers.

``tvl1_energy`` is the TV-L1 energy of the TVNet paper (seed 002, Eq. 1), used as the flow loss L_f of
Eq. 13. ``endpoint_error_loss`` is the EPE of Eq. 14 as a Keras loss with a validity channel (TVNet's
training on ground-truth flow, Sec. 5.1). Other losses (scaled Huber, ...) join this module with the
issues that need them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.ops.differences import forward_gradient
from tfvideo.ops.flow import endpoint_error
from tfvideo.ops.image import to_grey
from tfvideo.ops.warp import backward_warp

__all__ = ["endpoint_error_loss", "tvl1_energy"]


def tvl1_energy(frame0, frame1, flow, lbda: float = 0.15, epsilon: float = 1e-12, reduction: str = "mean"):
    """TV-L1 energy of ``flow`` between two frames (seed 002, Eq. 1), with the exact data term.

    ``E = mean over pixels of ( |grad u_1| + |grad u_2| + lbda * |rho(u)| )`` where
    ``rho(u)(x) = I1(x + u(x)) - I0(x)`` is computed exactly by bilinear warping of ``I1`` (not by the
    Taylor approximation), and ``|grad u_d| = sqrt(u_dx^2 + u_dy^2 + epsilon)`` uses the *fixed*
    forward differences of Eq. 4 (never TVNet's trainable kernels, so training cannot shrink its own
    penalty). Eq. 1 sums over pixels; we take the mean over pixels (Eq. 1 divided by |Omega|) so that
    the loss does not grow with the image size, then the mean over the batch. ``epsilon`` keeps the
    gradient of the norm finite where the flow is locally constant.

    Args:
      frame0, frame1: ``(batch, H, W, C)`` frames with C = 1 or 3 (RGB is converted to grey with the
        ITU-R 601 luma weights), values in [0, 255].
      flow: ``(batch, H, W, 2)`` flow, ``[..., 0]`` horizontal, meaning ``frame1(p + flow(p)) ~ frame0(p)``.
      lbda: weight of the data term (lambda of Eq. 1).
      reduction: ``"mean"`` (scalar) or ``"none"`` (one value per batch element).

    Returns:
      float32 scalar (or ``(batch,)``).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"`reduction` must be 'mean' or 'none'; got {reduction!r}")
    i0 = to_grey(frame0, "frame0")
    i1 = to_grey(frame1, "frame1")
    flow = tf.cast(tf.convert_to_tensor(flow), tf.float32)
    if flow.shape.rank is not None and (flow.shape.rank != 4 or flow.shape[-1] not in (None, 2)):
        raise ValueError(f"`flow` must have shape (batch, H, W, 2); got {flow.shape}")
    if i0.shape.rank != 4:
        raise ValueError(f"`frame0` must have shape (batch, H, W, C); got {tf.convert_to_tensor(frame0).shape}")
    rho = backward_warp(i1, flow) - i0
    ux, uy = forward_gradient(flow)
    smooth = tf.reduce_sum(tf.sqrt(tf.square(ux) + tf.square(uy) + epsilon), axis=-1)
    per_pixel = smooth + lbda * tf.abs(rho[..., 0])
    per_sample = tf.reduce_mean(per_pixel, axis=[1, 2])
    if reduction == "none":
        return per_sample
    return tf.reduce_mean(per_sample)


@keras.saving.register_keras_serializable(package="tfvideo")
def endpoint_error_loss(y_true, y_pred):
    """Per-sample EPE (seed 002, Eq. 14) over the valid pixels, as a Keras loss.

    Args:
      y_true: ``(batch, H, W, 3)``: the ground-truth flow ``(u, v)`` and a validity channel (1 valid,
        0 unknown; unknown pixels may hold NaN flow). Stacking validity into the target keeps the
        mean over the *valid* pixels of each sample exact (a Keras ``sample_weight`` would divide by
        all pixels).
      y_pred: ``(batch, H, W, 2)`` predicted flow.

    Returns:
      ``(batch,)``: each sample's mean EPE over its valid pixels (0 if it has none); Keras then
      averages over the batch.
    """
    y_true = tf.convert_to_tensor(y_true)
    y_pred = tf.convert_to_tensor(y_pred)
    if y_true.shape.rank is not None and (y_true.shape.rank != 4 or y_true.shape[-1] not in (None, 3)):
        raise ValueError(f"y_true must be (batch, H, W, 3) = flow (u, v) + validity; got {y_true.shape}")
    valid = tf.cast(y_true[..., 2], y_pred.dtype)
    per_pixel = endpoint_error(y_pred, y_true[..., :2], mask=valid, reduce=False)
    count = tf.reduce_sum(valid, axis=[1, 2])
    return tf.math.divide_no_nan(tf.reduce_sum(per_pixel, axis=[1, 2]), count)
