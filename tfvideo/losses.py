"""Keras-usable losses of the seed papers.

``tvl1_energy`` is the TV-L1 energy of the TVNet paper (seed 002, Eq. 1), used as the flow loss L_f of
Eq. 13. ``endpoint_error_loss`` is the EPE of Eq. 14 as a Keras loss with a validity channel (TVNet's
training on ground-truth flow, Sec. 5.1).

The V2V losses (seed 000, Sec. 4-6) are Keras ``Loss`` objects returning per-voxel values
``(B, T, H, W)``, so Keras applies ``dense_dataset``'s per-voxel ``sample_weight`` (weight 0 where the
target is unknown) and reduces: ``voxel_softmax_cross_entropy`` (segmentation), ``huber_flow_loss``
(Eq. 1 on flow / alpha), ``colour_l2_loss`` (colouring).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfvideo.ops.differences import forward_gradient
from tfvideo.ops.flow import endpoint_error
from tfvideo.ops.image import to_grey
from tfvideo.ops.warp import backward_warp

__all__ = ["endpoint_error_loss", "tvl1_energy", "VoxelSoftmaxCrossEntropy", "HuberFlowLoss",
           "ColourL2Loss", "voxel_softmax_cross_entropy", "huber_flow_loss", "colour_l2_loss",
           "linear_gain", "gain_weighted_cross_entropy", "GainWeightedCrossEntropy"]


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
    if y_true.shape.rank is not None and (y_true.shape.rank != 4 or y_true.shape[-1] not in (None, 3)):
        raise ValueError(f"y_true must be (batch, H, W, 3) = flow (u, v) + validity; got {y_true.shape}")
    return flow_endpoint_error(y_true, y_pred)  # the one masked EPE (its rank-4, same-size case)


# ------------------------------------------------------------------------------- V2V (seed 000) ----
def _check_rank(y_pred, rank, arg, what):
    if y_pred.shape.rank is not None and y_pred.shape.rank != rank:
        raise ValueError(f"`{arg}` must be {what}; got shape {y_pred.shape}")


def _check_channels(x, channels, arg, what):
    if x.shape.rank is not None and (x.shape.rank != 5 or x.shape[-1] not in (None, channels)):
        raise ValueError(f"`{arg}` must be {what}; got shape {x.shape}")


def _dense_pair(y_true, y_pred, channels, what):
    """``(y_true, y_pred)`` as tensors of ``y_pred``'s dtype, both checked to be ``(B, T, H, W, channels)``."""
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.cast(tf.convert_to_tensor(y_true), y_pred.dtype)
    _check_channels(y_pred, channels, "y_pred", what)
    _check_channels(y_true, channels, "y_true", what)
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="tfvideo")
class VoxelSoftmaxCrossEntropy(keras.losses.Loss):
    """Voxel-wise softmax cross-entropy (V2V Sec. 4): ``-log softmax(logits)[label]`` at every voxel.

    ``y_true``: labels ``(B, T, H, W)`` (any numeric dtype; Keras casts them to float, we cast back);
    ``y_pred``: logits ``(B, T, H, W, K)``. Unknown labels: ``dense_dataset(target="segmentation")``
    replaces them by 0 with ``sample_weight`` 0, so nothing is needed here; raw labels may carry
    ``ignore_label`` (e.g. 255), whose voxels get loss 0 (and count in Keras' mean as weight-0
    voxels do). ``call`` returns the per-voxel values ``(B, T, H, W)``.
    """

    def __init__(self, ignore_label=None, reduction="sum_over_batch_size",
                 name="voxel_softmax_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if ignore_label is not None and (isinstance(ignore_label, bool) or not isinstance(ignore_label, int)):
            raise ValueError(f"`ignore_label` must be None or an int label; got {ignore_label!r}")
        self.ignore_label = ignore_label

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.convert_to_tensor(y_true)
        _check_rank(y_pred, 5, "y_pred", "logits (batch, T, H, W, K)")
        if y_true.shape.rank == 5 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        _check_rank(y_true, 4, "y_true", "labels (batch, T, H, W)")
        labels = tf.cast(tf.round(tf.cast(y_true, tf.float32)), tf.int32)
        if self.ignore_label is not None:
            known = tf.not_equal(labels, self.ignore_label)
            labels = tf.where(known, labels, 0)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
        if self.ignore_label is not None:
            losses = tf.where(known, losses, tf.zeros_like(losses))
        return losses

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="tfvideo")
class HuberFlowLoss(keras.losses.Loss):
    """Eq. 1 of V2V (Sec. 5) on ``(pred - true) / alpha``, summed over the two flow components.

    ``H(x) = x^2 / 2`` for ``|x| <= 1``, ``|x|`` otherwise, exactly as the paper writes it. Note that
    this ``H`` jumps at ``|x| = 1`` (from 1/2 to 1), unlike the continuous Huber / smooth-L1 loss
    (``|x| - 1/2`` outside); the two differ by the constant 1/2 there, so their gradients are
    identical (``x`` inside, ``sign(x)`` outside) and training is the same. We implement the paper's
    form by default (``continuous=False``) so that reported loss values are Eq. 1's;
    ``continuous=True`` gives smooth-L1.

    The model (:func:`tfvideo.models.v2v.v2v`, ``task="flow"``) outputs flow in pixels, ``alpha``
    times its Conv-pre output; dividing prediction and target by ``alpha`` here applies Eq. 1 to
    Conv-pre's output and ``flow / alpha`` as in the paper ("the optical flow values are divided by
    a constant (alpha = 15)"), hence the same gradient w.r.t. Conv-pre.

    ``y_true``, ``y_pred``: ``(B, T, H, W, 2)`` in pixels. Non-finite target vectors (unknown flow,
    e.g. NaN read from a ``.flo`` file) get loss 0; give them ``sample_weight`` 0 too (as
    ``dense_dataset`` does), since Keras' mean counts them. ``call`` returns ``(B, T, H, W)``.
    """

    def __init__(self, alpha=15.0, continuous=False, reduction="sum_over_batch_size",
                 name="huber_flow_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"`alpha` must be a positive number; got {alpha!r}")
        self.alpha = float(alpha)
        self.continuous = bool(continuous)

    def call(self, y_true, y_pred):
        y_true, y_pred = _dense_pair(y_true, y_pred, 2, "flow (batch, T, H, W, 2)")
        finite = tf.reduce_all(tf.math.is_finite(y_true), axis=-1)
        y_true = tf.where(finite[..., None], y_true, tf.zeros_like(y_true))
        x = (y_pred - y_true) / self.alpha
        ax = tf.abs(x)
        outside = ax - 0.5 if self.continuous else ax
        h = tf.where(ax <= 1.0, 0.5 * tf.square(x), outside)
        return tf.where(finite, tf.reduce_sum(h, axis=-1), tf.zeros_like(h[..., 0]))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "continuous": self.continuous}


@keras.saving.register_keras_serializable(package="tfvideo")
class ColourL2Loss(keras.losses.Loss):
    """L2 regression of colours (V2V Sec. 6): ``1/2 ||pred - true / target_max||^2`` per voxel.

    ``y_pred``: RGB ``(B, T, H, W, 3)`` in ``[0, 1]``; ``y_true``: RGB ``(B, T, H, W, 3)`` in
    ``[0, target_max]``. ``target_max`` defaults to 255: the uint8 labels of
    ``dense_dataset(target="colour")``. Keras casts every ``y_true`` to float32 before a loss sees
    it, so the dtype cannot tell 0..255 from [0, 1]: pass ``target_max=1.0`` for float targets
    already in [0, 1]. The factor 1/2 is Caffe's ``EuclideanLoss`` convention (the paper's
    framework; the scale does not change the minimiser). ``call`` returns ``(B, T, H, W)``.
    """

    def __init__(self, target_max=255.0, reduction="sum_over_batch_size", name="colour_l2_loss",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(target_max, bool) or not isinstance(target_max, (int, float)) or not target_max > 0:
            raise ValueError(f"`target_max` must be a positive number; got {target_max!r}")
        self.target_max = float(target_max)

    def call(self, y_true, y_pred):
        y_true, y_pred = _dense_pair(y_true, y_pred, 3, "RGB (batch, T, H, W, 3)")
        return 0.5 * tf.reduce_sum(tf.square(y_pred - y_true / self.target_max), axis=-1)

    def get_config(self):
        return {**super().get_config(), "target_max": self.target_max}


def voxel_softmax_cross_entropy(ignore_label=None, **kwargs):
    """A :class:`VoxelSoftmaxCrossEntropy` (V2V Sec. 4): sparse labels, logits, per-voxel values."""
    return VoxelSoftmaxCrossEntropy(ignore_label=ignore_label, **kwargs)


def huber_flow_loss(alpha=15.0, **kwargs):
    """A :class:`HuberFlowLoss`: Eq. 1 of V2V on ``(pred - true) / alpha`` (Sec. 5, alpha = 15)."""
    return HuberFlowLoss(alpha=alpha, **kwargs)


def colour_l2_loss(target_max=255.0, **kwargs):
    """A :class:`ColourL2Loss`: the L2 colour regression of V2V Sec. 6 on targets / ``target_max``."""
    return ColourL2Loss(target_max=target_max, **kwargs)


# ------------------------------------------- Ng's thesis, chapter 3: the deep LSTM head's loss ----
def linear_gain(num_frames, dtype="float32"):
    """The thesis's gain ``g``: ``(T,)`` values rising linearly from 0 to 1 over the frames of a clip.

    ``g_t = t / (T - 1)`` for ``t = 0 .. T - 1``, and ``g = [1]`` when ``T = 1``.

    The thesis (digest 3.4) interpolates g "linearly from 0 to 1 over frames t = 0...T", which
    counts T + 1 values for T frames (digest 3.9 q10). We index the T frames of a clip from 0 and
    put both end points on frames: the first frame gets weight exactly 0, the last exactly 1, which
    is what "from 0 to 1" says. (The alternatives ``t / T`` or ``(t + 1) / T`` miss one end point.)
    A one-frame clip gets g = 1 (its only frame is the last one; g = 0 would give no gradient at all).
    The same gain weights the training loss (:class:`GainWeightedCrossEntropy`) and the weighted
    inference (:class:`tfvideo.layers.lstm.GainWeightedAverage`, digest 3.5, aggregation 4).

    Args:
      num_frames: T >= 1, a Python int or an integer scalar tensor (e.g. ``tf.shape(x)[1]`` of a
        clip of unknown length in a traced or exported function).
      dtype: float dtype of the result.

    Returns:
      ``(T,)`` tensor of ``dtype``.

    >>> linear_gain(5).numpy().tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if isinstance(num_frames, bool) or isinstance(num_frames, float):
        raise TypeError(f"`num_frames` must be an integer (the number of frames T); got {num_frames!r}")
    if isinstance(num_frames, (int, np.integer)):
        if num_frames < 1:
            raise ValueError(f"`num_frames` must be >= 1; got {num_frames}")
    n = tf.convert_to_tensor(num_frames)
    if not n.dtype.is_integer:
        raise TypeError(f"`num_frames` must be an integer scalar; got dtype {n.dtype.name}")
    if n.shape.rank is not None and n.shape.rank != 0:
        raise ValueError(f"`num_frames` must be a scalar; got shape {n.shape}")
    n = tf.cast(n, tf.int32)
    dtype = tf.as_dtype(keras.backend.standardize_dtype(dtype))
    t = tf.cast(tf.range(n), dtype)
    return tf.where(n > 1, t / tf.cast(tf.maximum(n - 1, 1), dtype), tf.ones_like(t))


def gain_weighted_cross_entropy(y_true, y_pred, from_logits=True):
    """Per-video loss ``(B,)``: ``sum_t g_t CE_t / sum_t g_t`` (see :class:`GainWeightedCrossEntropy`).

    Args:
      y_true: ``(B,)`` (or ``(B, 1)``) integer video labels, the same label at every frame; or
        ``(B, T)`` per-frame labels. Any numeric dtype (rounded to int).
      y_pred: ``(B, T, C)`` per-frame logits (``from_logits=True``) or probabilities.
      from_logits: whether ``y_pred`` are logits.

    Returns:
      ``(B,)`` float tensor of ``y_pred``'s dtype.
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = tf.cast(y_pred, keras.backend.floatx())
    _check_rank(y_pred, 3, "y_pred", "per-frame scores (batch, T, classes)")
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == 2 and y_true.shape[-1] == 1:
        y_true = y_true[:, 0]
    if y_true.shape.rank not in (None, 1, 2):
        raise ValueError(f"`y_true` must be (batch,) video labels or (batch, T) frame labels; got "
                         f"shape {y_true.shape}")
    labels = tf.cast(tf.round(tf.cast(y_true, tf.float64)), tf.int32)
    num_frames = tf.shape(y_pred)[1]
    if labels.shape.rank == 1:  # the video label back-propagated at every frame (digest 3.4)
        labels = tf.broadcast_to(labels[:, None], tf.shape(y_pred)[:2])
    if from_logits:
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
    else:
        ce = keras.ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=False)
    gain = linear_gain(num_frames, y_pred.dtype)
    return tf.reduce_sum(ce * gain, axis=1) / tf.reduce_sum(gain)


@keras.saving.register_keras_serializable(package="tfvideo")
class GainWeightedCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy at every frame, weighted by the gain ``g_t`` (digest 3.4).

    The thesis trains its LSTM by back-propagating the video label at every frame and scaling each
    frame's gradient by a gain g rising linearly from 0 to 1 over the clip (digest 3.4, "LSTM
    training modifications"); scaling frame t's gradient by g_t is the same as weighting frame t's
    loss by g_t. Per video::

        loss = sum_t g_t * CE(label, y_pred[t]) / sum_t g_t,   g_t = linear_gain(T)[t]

    and Keras's reduction (default ``"sum_over_batch_size"``) averages the ``(B,)`` values over the
    batch (``sample_weight`` weighs videos).

    Normalisation (the thesis is silent): we divide by ``sum_t g_t`` (= T / 2 for T > 1, 1 for T = 1),
    so the loss is a weighted *mean* of per-frame cross-entropies, on the scale of one frame's CE
    whatever T is, and a constant prediction gives the same loss for any clip length. The first frame
    has weight 0 (it only influences the loss through the recurrence). The thesis's LSTM learning
    rate of N x 1e-5 (digest 3.4) suggests gradients *averaged* over the N frames; to reproduce a sum
    over frames instead, multiply the learning rate by ``sum_t g_t``.

    ``y_true``: ``(B,)`` (or ``(B, 1)``) integer video labels (Keras casts them to float; we round back),
    or ``(B, T)`` per-frame labels. ``y_pred``: ``(B, T, C)`` per-frame logits (``from_logits=True``,
    the default: tfvideo models output logits) or probabilities. Any T, also unknown at trace time.

    Example::

        loss = GainWeightedCrossEntropy()
        loss(np.array([1]), np.random.normal(size=(1, 30, 487)))   # a scalar
    """

    def __init__(self, from_logits=True, reduction="sum_over_batch_size",
                 name="gain_weighted_cross_entropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(from_logits, bool):
            raise ValueError(f"`from_logits` must be a bool; got {from_logits!r}")
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return gain_weighted_cross_entropy(y_true, y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


# ------------------------------------------------- ActionFlowNet (thesis ch. 4): flow losses ----
__all__ += ["flow_endpoint_error", "FlowEndPointError"]

_PIXEL_REDUCTIONS = ("mean", "sum")


def _block_average_target(y_true, h, w):
    """``(N, H, W, 3)`` flow + validity -> ``(N, h, w, 3)``: per ``(H/h x W/w)`` block, the mean of the
    *valid* vectors (values not rescaled) and validity 1 where the block has any valid vector."""
    shape = tf.shape(y_true)
    big_h, big_w = shape[1], shape[2]
    fh, fw = big_h // h, big_w // w
    valid = tf.not_equal(y_true[..., 2], 0)
    flow = tf.where(valid[..., None], y_true[..., :2], tf.zeros_like(y_true[..., :2]))
    weight = tf.cast(valid, y_true.dtype)
    flow = tf.reshape(flow, [-1, h, fh, w, fw, 2])
    weight = tf.reshape(weight, [-1, h, fh, w, fw])
    count = tf.reduce_sum(weight, axis=[2, 4])
    mean = tf.math.divide_no_nan(tf.reduce_sum(flow, axis=[2, 4]), count[..., None])
    return tf.concat([mean, tf.cast(count > 0, y_true.dtype)[..., None]], axis=-1)


def flow_endpoint_error(y_true, y_pred, reduction_over_pixels="mean"):
    """Per-sample end-point error of ActionFlowNet's flow head (thesis Eq. 4.1, digest 4.1), ``(B,)``.

    ``EPE_j = sum_t sum_p valid_{t,p} ||o_{j,t,p} - ô_{j,t,p}||_2`` (``"sum"``: Eq. 4.1 literally), or
    that sum divided by the number of valid pixels of the sample over all its time steps (``"mean"``,
    0 when none is valid). The thesis sums (Eq. 4.1); the practical normalisation is unknown (digest
    4.7 q5): ``"mean"`` keeps the loss on the scale of one pixel's error whatever the resolution and
    clip length, so lambda of Eq. 4.2 does not depend on them.

    Args:
      y_true: ``(B, [T,] H, W, 3)``: flow ``(u, v)`` in pixels of the input frames, then validity
        (non-zero = known, 0 = unknown; unknown vectors may be NaN/inf: they reach neither the value
        nor the gradient), the project's convention (:func:`endpoint_error_loss`).
      y_pred: ``(B, [T,] h, w, 2)`` predicted flow, in pixels of the input frames too. When
        ``(h, w) != (H, W)`` (a coarser head of a multi-resolution decoder, thesis Eq. 4.3), ``y_true``
        is first brought to ``(h, w)``: each ``(H/h x W/w)`` block's flow is the mean of its valid
        vectors, the block is valid if any of its vectors is, and the values are *not* rescaled (both
        sides are in input pixels; digest 4.7 q4 leaves the target resolution open). ``H % h == 0`` and
        ``W % w == 0`` are required.
      reduction_over_pixels: ``"mean"`` or ``"sum"`` (above).

    Returns:
      ``(B,)`` tensor of ``y_pred``'s dtype.

    >>> import numpy as np
    >>> y_true = np.zeros((1, 4, 4, 3), "float32"); y_true[..., 0] = 3.0; y_true[..., 2] = 1.0
    >>> y_pred = np.zeros((1, 2, 2, 2), "float32"); y_pred[..., 1] = 4.0
    >>> flow_endpoint_error(y_true, y_pred).numpy().tolist()
    [5.0]
    """
    if reduction_over_pixels not in _PIXEL_REDUCTIONS:
        raise ValueError(f"`reduction_over_pixels` must be 'mean' or 'sum'; got {reduction_over_pixels!r}")
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = tf.cast(y_pred, keras.backend.floatx())
    y_true = tf.cast(tf.convert_to_tensor(y_true), y_pred.dtype)
    rank = y_pred.shape.rank
    if rank not in (4, 5) or y_pred.shape[-1] not in (None, 2):
        raise ValueError(f"`y_pred` must be flow (batch, [T,] h, w, 2); got shape {y_pred.shape}")
    if y_true.shape.rank != rank or y_true.shape[-1] not in (None, 3):
        raise ValueError(f"`y_true` must be (batch, [T,] H, W, 3) = flow (u, v) + validity, of the rank "
                         f"of `y_pred` {y_pred.shape}; got shape {y_true.shape}")
    big_h, big_w = y_true.shape[-3], y_true.shape[-2]
    h, w = y_pred.shape[-3], y_pred.shape[-2]
    if None not in (big_h, big_w, h, w) and (big_h % h or big_w % w):
        raise ValueError(f"the target's size (H, W) = ({big_h}, {big_w}) must be a multiple of the "
                         f"prediction's (h, w) = ({h}, {w}); got y_true {y_true.shape}, y_pred "
                         f"{y_pred.shape}")
    for a, b in zip(y_true.shape[:-3], y_pred.shape[:-3]):
        if a is not None and b is not None and a != b:
            raise ValueError(f"`y_true` {y_true.shape} and `y_pred` {y_pred.shape} must agree on the "
                             f"batch and time axes")
    pred_shape = tf.shape(y_pred)
    true_shape = tf.shape(y_true)
    flat_true = tf.reshape(y_true, tf.concat([[-1], true_shape[-3:]], 0))
    if None in (big_h, big_w, h, w) or (big_h, big_w) != (h, w):
        ph, pw = pred_shape[-3], pred_shape[-2]
        checks = [tf.debugging.assert_equal(
            tf.stack([true_shape[-3] % ph, true_shape[-2] % pw]), 0,
            message="the target's size (H, W) must be a multiple of the prediction's (h, w)")]
        with tf.control_dependencies(checks):
            flat_true = _block_average_target(flat_true, ph, pw)
    flat_true = tf.reshape(flat_true, tf.concat([pred_shape[:-1], [3]], 0))
    valid = tf.not_equal(flat_true[..., 2], 0)
    per_pixel = endpoint_error(y_pred, flat_true[..., :2], mask=valid, reduce=False)
    axes = list(range(1, rank - 1))
    total = tf.reduce_sum(per_pixel, axis=axes)
    if reduction_over_pixels == "sum":
        return total
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(valid, per_pixel.dtype), axis=axes))


@keras.saving.register_keras_serializable(package="tfvideo")
class FlowEndPointError(keras.losses.Loss):
    """ActionFlowNet's flow loss (thesis Eq. 4.1, digest 4.1) as a Keras loss: :func:`flow_endpoint_error`.

    ``y_true`` ``(B, [T,] H, W, 3)`` = flow in input pixels + validity (unknown vectors may be NaN);
    ``y_pred`` ``(B, [T,] h, w, 2)`` in input pixels, with ``H, W`` multiples of ``h, w`` (coarser
    heads get a block-averaged target, values not rescaled). ``call`` returns one value per sample
    ``(B,)`` (``"mean"``: mean EPE over the sample's valid pixels and time steps; ``"sum"``: Eq. 4.1's
    plain sum), then Keras' ``reduction`` (default ``"sum_over_batch_size"``) averages over the batch.

    The multitask loss of Eq. 4.2 (``CE + lambda EPE``; lambda is not given, digest 4.7 q3) is a
    compile-time combination, no class needed::

        model.compile("adam",
                      loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            "flow": FlowEndPointError()},
                      loss_weights={"logits": 1.0, "flow": lam})

    Args:
      reduction_over_pixels: ``"mean"`` (default) or ``"sum"`` (digest 4.7 q5).
      reduction, name, dtype: as for every ``keras.losses.Loss``.
    """

    def __init__(self, reduction_over_pixels="mean", reduction="sum_over_batch_size", name="flow_epe",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if reduction_over_pixels not in _PIXEL_REDUCTIONS:
            raise ValueError(f"`reduction_over_pixels` must be 'mean' or 'sum'; got "
                             f"{reduction_over_pixels!r}")
        self.reduction_over_pixels = reduction_over_pixels

    def call(self, y_true, y_pred):
        return flow_endpoint_error(y_true, y_pred, reduction_over_pixels=self.reduction_over_pixels)

    def get_config(self):
        return {**super().get_config(), "reduction_over_pixels": self.reduction_over_pixels}
