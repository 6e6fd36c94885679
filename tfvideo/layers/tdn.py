"""Layers of the Ng & Davis 2018 Temporal Difference Network (Ng's thesis, chapter 5; digest 5.1-5.3).

Not the 2021 TDN of Wang et al.: this is the chapter-5 model of Joe Yue-Hei Ng's thesis, whose
"Eulerian motion" is the difference of two snippets' images or CNN features (digest 5.1).

* :class:`TemporalDifference`: ``(B, S, ...) -> (B, S - 1, ...)``, ``x[:, 1:] - x[:, :-1]``: the
  features of snippet ``t + 1`` minus those of snippet ``t`` (digest 5.1, ``v = I2 - I1`` and
  ``v(l) = f(l)(I2) - f(l)(I1)``).
* :class:`FoldSegments` / :class:`UnfoldSegments`: ``(B, S, ...) <-> (B * S, ...)``, so that a
  multi-input / multi-output sub-model (the TDN's image and difference subnetworks) runs once on all
  snippets with shared weights (:class:`tfvideo.layers.PerSegment` does this for a single-input,
  single-output layer).
* :class:`StackChannels`: ``(B, S, K, H, W, C) -> (B, S, H, W, K * C)``: K consecutive flow images
  of a segment stacked along the channels (TSN's flow input, digest 5.4).
* :class:`L1FuseScores`: late fusion of the RGB and flow TDNs: pre-softmax scores l1-normalised per
  example, then a weighted average, RGB:flow = 1:1.5 (digest 5.3).

Example
-------
>>> import numpy as np
>>> x = np.arange(12, dtype=np.float32).reshape(1, 3, 4) ** 2
>>> TemporalDifference()(x).numpy()[0, :, 0]
array([16., 48.], dtype=float32)
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["TDN_FUSION_WEIGHTS", "TemporalDifference", "FoldSegments", "UnfoldSegments",
           "StackChannels", "L1FuseScores"]

#: (RGB, flow) weights of the late fusion of two TDN streams (digest 5.3: "RGB:Flow = 1:1.5").
TDN_FUSION_WEIGHTS = (1.0, 1.5)


def _known(d):
    return None if d is None else int(d)


@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalDifference(keras.layers.Layer):
    """Differences of adjacent snippets: ``(B, S, ...) -> (B, S - 1, ...)``, ``x[:, 1:] - x[:, :-1]``.

    Output ``t`` is the input (image, or CNN feature map) of snippet ``t + 1`` minus that of snippet
    ``t``: the "Eulerian motion" ``v = I2 - I1`` / ``v(l) = f(l)(I2) - f(l)(I1)`` of digest 5.1, for
    the ``S - 1`` adjacent pairs of TSN segments (digest 5.2, "TDN as TSN"). Integer inputs (uint8
    frames) are cast to the layer's float compute dtype first, so differences are signed; float inputs
    keep their dtype. ``S`` (and every later axis) may be unknown; a known ``S < 2`` is refused at
    build time (with an unknown ``S = 1`` at run time the output has zero snippets). No weights.

    Example::

        >>> TemporalDifference()(np.zeros((2, 3, 7, 7, 64), np.float32)).shape
        TensorShape([2, 2, 7, 7, 64])
    """

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"TemporalDifference expects inputs (batch, snippets, ...); got shape "
                             f"{tuple(input_shape)}")
        if input_shape[1] is not None and input_shape[1] < 2:
            raise ValueError(f"TemporalDifference needs at least 2 snippets on axis 1; got shape "
                             f"{tuple(input_shape)}")
        self.built = True

    def call(self, x):
        if not x.dtype.is_floating:
            x = tf.cast(x, self.compute_dtype)
        return x[:, 1:] - x[:, :-1]

    def compute_output_shape(self, input_shape):
        s = input_shape[1]
        return (input_shape[0], None if s is None else s - 1, *input_shape[2:])

    def compute_output_spec(self, x):
        dtype = x.dtype if "float" in str(x.dtype) else self.compute_dtype
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype=dtype)


@keras.saving.register_keras_serializable(package="tfvideo")
class FoldSegments(keras.layers.Layer):
    """``(B, S, ...) -> (B * S, ...)``: snippets folded into the batch (snippet-major per example:
    row ``b * S + s`` is snippet ``s`` of example ``b``). Sizes after the snippet axis may be unknown.
    Undo with :class:`UnfoldSegments`. No weights.

    Example::

        >>> FoldSegments()(np.zeros((2, 3, 5), np.float32)).shape
        TensorShape([6, 5])
    """

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"FoldSegments expects inputs (batch, segments, ...); got shape "
                             f"{tuple(input_shape)}")
        self.built = True

    def call(self, x):
        shape = tf.shape(x)
        inner = [d if d is not None else shape[i + 2] for i, d in enumerate(x.shape[2:])]
        return tf.reshape(x, [-1, *inner])

    def compute_output_shape(self, input_shape):
        b, s = input_shape[0], input_shape[1]
        return (None if b is None or s is None else b * s, *input_shape[2:])

    def compute_output_spec(self, x):
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="tfvideo")
class UnfoldSegments(keras.layers.Layer):
    """``[folded (B * S, ...), reference (B, S, ...)] -> (B, S, ...)``: the inverse of
    :class:`FoldSegments`; ``reference`` only gives ``B`` and ``S`` (its values are not read, its
    later axes may differ from ``folded``'s). No weights.

    Example::

        >>> UnfoldSegments()([np.zeros((6, 4), np.float32), np.zeros((2, 3, 9), np.float32)]).shape
        TensorShape([2, 3, 4])
    """

    def build(self, input_shape):
        if len(input_shape) != 2 or len(input_shape[1]) < 2:
            raise ValueError(f"UnfoldSegments expects [folded (B * S, ...), reference (B, S, ...)]; "
                             f"got shapes {input_shape}")
        self.built = True

    def call(self, inputs):
        folded, reference = inputs
        ref = tf.shape(reference)
        shape = tf.shape(folded)
        inner = [d if d is not None else shape[i + 1] for i, d in enumerate(folded.shape[1:])]
        return tf.reshape(folded, [ref[0], ref[1], *inner])

    def compute_output_shape(self, input_shape):
        folded, reference = input_shape
        return (reference[0], reference[1], *folded[1:])

    def compute_output_spec(self, inputs):
        folded, reference = inputs
        return keras.KerasTensor(self.compute_output_shape([folded.shape, reference.shape]),
                                 dtype=folded.dtype)


@keras.saving.register_keras_serializable(package="tfvideo")
class StackChannels(keras.layers.Layer):
    """``(B, S, K, H, W, C) -> (B, S, H, W, K * C)``: the K frames of every segment stacked on the
    channel axis, frame-major: channels ``(f0c0, f0c1, ..., f1c0, ...)``. For K = 5 flow images of 2
    channels (x, y) that is TSN's 10-channel stack ``(x1, y1, x2, y2, ..., x5, y5)`` (digest 5.4, "5
    consecutive flow frames are stacked"). ``K`` and ``C`` must be known; the other sizes may be
    unknown. Dtype kept. No weights.

    Example::

        >>> StackChannels()(np.zeros((2, 3, 5, 8, 8, 2), np.uint8)).shape
        TensorShape([2, 3, 8, 8, 10])
    """

    def build(self, input_shape):
        if len(input_shape) != 6 or input_shape[2] is None or input_shape[5] is None:
            raise ValueError(f"StackChannels expects (batch, segments, K, H, W, C) with known K and C; "
                             f"got shape {tuple(input_shape)}")
        self.built = True

    def call(self, x):
        shape = tf.shape(x)
        k, c = x.shape[2], x.shape[5]
        x = tf.transpose(x, [0, 1, 3, 4, 2, 5])  # (B, S, H, W, K, C)
        sizes = [d if d is not None else shape[i] for i, d in enumerate(x.shape[:2])]
        hw = [x.shape[2] if x.shape[2] is not None else shape[3],
              x.shape[3] if x.shape[3] is not None else shape[4]]
        return tf.reshape(x, [*sizes, *hw, k * c])

    def compute_output_shape(self, input_shape):
        b, s, k, h, w, c = input_shape
        return (b, s, h, w, None if k is None or c is None else k * c)

    def compute_output_spec(self, x):
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype=x.dtype)


@keras.saving.register_keras_serializable(package="tfvideo")
class L1FuseScores(keras.layers.Layer):
    """Late fusion of pre-softmax scores (digest 5.3): ``[scores_1, ..., scores_n]`` (each ``(B, C)``)
    -> ``sum_i w_i s_i / max(||s_i||_1, epsilon) / sum_i w_i``, ``(B, C)``.

    Each stream's scores are l1-normalised per example (``||s||_1 = sum_c |s_c|``) and the normalised
    scores averaged with ``weights``, by default :data:`TDN_FUSION_WEIGHTS` (RGB, flow) = (1, 1.5).
    The result is a score to rank classes (argmax), not a logit: no softmax follows in the thesis.
    ``epsilon`` guards all-zero scores. No weights (variables).

    Example::

        >>> # (1, -3) -> (0.25, -0.75); (1, 3) -> (0.25, 0.75); weights 1 : 1.5
        >>> L1FuseScores()([np.array([[1.0, -3.0]]), np.array([[1.0, 3.0]])]).numpy()
        array([[0.25, 0.15]], dtype=float32)
    """

    def __init__(self, weights=TDN_FUSION_WEIGHTS, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        try:
            weights = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise ValueError(f"weights must be a sequence of numbers; got {weights!r}") from None
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative numbers with a positive sum; got {weights}")
        if not float(epsilon) > 0:
            raise ValueError(f"epsilon must be > 0; got {epsilon!r}")
        self.fusion_weights = weights
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != len(self.fusion_weights) \
                or any(not isinstance(s, (list, tuple)) or len(s) != 2 for s in input_shape):
            raise ValueError(f"L1FuseScores expects {len(self.fusion_weights)} score tensors (batch, "
                             f"classes), one per weight; got shapes {input_shape}")
        self.built = True

    def call(self, scores_list):
        total = sum(self.fusion_weights)
        fused = 0.0
        for w, s in zip(self.fusion_weights, scores_list):
            s = tf.cast(s, self.compute_dtype)
            norm = tf.maximum(tf.reduce_sum(tf.abs(s), axis=-1, keepdims=True), self.epsilon)
            fused += (w / total) * s / norm
        return fused

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "weights": self.fusion_weights, "epsilon": self.epsilon}
