"""Per-segment (TSN-style) layers for video classification heads.

Inputs are ``(batch, segments, ...)``: a video cut into segments (TSN's snippets, or stacks of
frames), every segment scored by the same network, the scores combined over segments and then over
streams. These layers are shared by the TVNet action model (:mod:`tfvideo.models.tvnet`) and the
later video heads (feature pooling, LSTM):

* :class:`TakeFrame`: one frame of every stack, ``(B, S, K, H, W, C) -> (B, S, H, W, C)``.
* :class:`RGBPreprocess`: RGB in [0, 255] -> the input scaling of a backbone.
* :class:`PerSegment`: a layer applied to every segment by folding segments into the batch.
* :class:`SegmentConsensus`: TSN's average consensus over segments.
* :class:`FuseScores`: weighted two-stream (or n-stream) fusion of softmax scores;
  :data:`TWO_STREAM_WEIGHTS` is the TVNet paper's fixed 1:2 spatial:temporal weighting.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["TWO_STREAM_WEIGHTS", "TakeFrame", "RGBPreprocess", "PerSegment", "SegmentConsensus",
           "FuseScores"]

#: (spatial RGB, temporal flow) score weights: the TVNet paper (seed 002, Sec. 5.2) combines "the
#: predictions of the spatial and temporal networks with a fixed weight (i.e., 1:2)". The one source
#: of these weights (:class:`FuseScores`, :func:`tfvideo.models.tvnet.two_stream`,
#: :mod:`tfvideo.evaluation`).
TWO_STREAM_WEIGHTS = (1.0, 2.0)


@keras.saving.register_keras_serializable(package="tfvideo")
class TakeFrame(keras.layers.Layer):
    """``(B, S, K, H, W, C)`` -> ``(B, S, H, W, C)``: frame ``index`` of every stack."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, frames):
        return frames[:, :, self.index]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *input_shape[3:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="tfvideo")
class RGBPreprocess(keras.layers.Layer):
    """RGB in [0, 255] (any dtype) -> the input scaling a backbone was trained with: ``"tf"``
    ([-1, 1]: Inception, MobileNet, our small CNN) or ``"caffe"`` (BGR minus the ImageNet mean:
    ResNet50). Output float32, same shape."""

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe"):
            raise ValueError(f"mode must be 'tf' or 'caffe'; got {mode!r}")
        self.mode = mode

    def call(self, x):
        x = tf.cast(x, tf.float32)
        if self.mode == "caffe":
            return x[..., ::-1] - tf.constant([103.939, 116.779, 123.68])
        return x / 127.5 - 1.0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="tfvideo")
class PerSegment(keras.layers.Wrapper):
    """Apply ``layer`` to every segment: ``(B, S, ...) -> (B, S, ...)`` by folding the segments into
    the batch (one call on ``B * S`` items).

    Used instead of ``keras.layers.TimeDistributed``, which in Keras 3.15 loops over the *batch*
    size when the segment count is unknown at trace time (as in an exported signature with
    ``(None, None, ...)`` inputs) and then fails or silently drops segments. Dimensions after the
    segment axis may be unknown (``None``) too, when ``layer`` accepts that.
    """

    def build(self, input_shape):
        if not self.layer.built:  # from_config / .keras loading gives an inner layer built already
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, x, training=None):
        shape = tf.shape(x)
        # static sizes where known (keeps the static shape), dynamic ones where not
        inner = [d if d is not None else shape[i + 2] for i, d in enumerate(x.shape[2:])]
        folded = tf.reshape(x, [-1, *inner])
        y = self.layer(folded, training=training)
        return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], 0))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (*input_shape[:2], *inner[1:])


@keras.saving.register_keras_serializable(package="tfvideo")
class SegmentConsensus(keras.layers.Layer):
    """TSN's average consensus: ``(B, S, C)`` segment scores -> ``(B, C)``."""

    def call(self, scores):
        return tf.reduce_mean(scores, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="tfvideo")
class FuseScores(keras.layers.Layer):
    """Weighted average of softmax scores of several streams, returned as log-probabilities.

    ``[logits_1, ..., logits_n]`` (each ``(B, C)``) -> ``log(sum_i w_i softmax(logits_i) / sum_i w_i)``,
    so ``softmax`` of the output is the fused distribution. ``weights`` defaults to
    :data:`TWO_STREAM_WEIGHTS` (spatial, temporal).
    """

    def __init__(self, weights=TWO_STREAM_WEIGHTS, **kwargs):
        super().__init__(**kwargs)
        weights = [float(w) for w in weights]
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum; got {weights}")
        self.fusion_weights = weights

    def call(self, logits_list):
        if len(logits_list) != len(self.fusion_weights):
            raise ValueError(f"{len(self.fusion_weights)} fusion weights for {len(logits_list)} "
                             "streams")
        total = sum(self.fusion_weights)
        probs = sum(w / total * tf.nn.softmax(x) for w, x in zip(self.fusion_weights, logits_list))
        return tf.math.log(tf.maximum(probs, 1e-30))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.fusion_weights}
