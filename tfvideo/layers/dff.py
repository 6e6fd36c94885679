"""Layers of Deep Feature Flow (seed 003): the segmentation head's crop (Sec. 4) and the frame-pair
plumbing of the DFF model (Sec. 3)."""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["BilinearUpsampling", "CropToFrame", "KeyOrPropagated", "PairFrame"]


@keras.saving.register_keras_serializable(package="tfvideo")
class CropToFrame(keras.layers.Layer):
    """``[scores (B, h, w, C), frames (B, H, W, ...)] -> scores[:, :H, :W]`` (requires ``h >= H``,
    ``w >= W``): the DFF code's ``Crop`` of the upsampled score map to the image (Sec. 4; its
    DeepLab symbol), which keeps the top-left part. ``frames`` gives only its size."""

    def call(self, inputs):
        scores, frames = inputs
        size = tf.shape(frames)[1:3]
        checks = [tf.debugging.assert_greater_equal(
            tf.shape(scores)[1:3], size, message="CropToFrame: scores smaller than the frames")]
        with tf.control_dependencies(checks):
            return scores[:, :size[0], :size[1]]

    def compute_output_shape(self, input_shape):
        scores, frames = input_shape
        return (scores[0], frames[1], frames[2], scores[3])


@keras.saving.register_keras_serializable(package="tfvideo")
class PairFrame(keras.layers.Layer):
    """``(B, 2, H, W, C)`` frame pairs -> one frame of each pair ``(B, H, W, C)`` (``index`` 0 or 1), or
    the pair with its two frames swapped (``index="swap"``: DFF's data order is (key k, current i), its
    FlowNet's (current i, key k))."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        if index not in (0, 1, "swap"):
            raise ValueError(f"`index` must be 0, 1 or 'swap'; got {index!r}")
        self.index = index

    def call(self, pairs):
        if self.index == "swap":
            return tf.stack([pairs[:, 1], pairs[:, 0]], axis=1)
        return pairs[:, self.index]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) if self.index == "swap" else (input_shape[0], *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="tfvideo")
class KeyOrPropagated(keras.layers.Layer):
    """``[pairs (B, 2, H, W, C), key_features, propagated]`` -> per example, the key frame's features
    where the two frames of the pair are identical (``i = k``), else the propagated ones.

    DFF Sec. 3: "When i > k, feature maps f_k are propagated to f_i as in Eq. (3). Otherwise, the feature
    maps are identical and no propagation is done": training on ``i = k`` pairs degenerates to per-frame
    training, whatever flow the flow network predicts for two identical frames."""

    def call(self, inputs):
        pairs, key, propagated = inputs
        same = tf.reduce_all(tf.equal(pairs[:, 0], pairs[:, 1]), axis=tf.range(1, tf.rank(pairs) - 1))
        return tf.where(tf.reshape(same, [-1, 1, 1, 1]), key, propagated)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])


@keras.saving.register_keras_serializable(package="tfvideo")
class BilinearUpsampling(keras.layers.Layer):
    """``(B, h, w, C)`` -> ``(B, factor h, factor w, C)``, bilinear with half-pixel centres: what
    ``keras.layers.UpSampling2D(factor, interpolation="bilinear")`` computes, also when ``h, w`` are
    unknown until run time (Keras 3.15's layer fails to trace then, as in an exported signature)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"`factor` must be a positive int; got {factor!r}")
        self.factor = factor

    def call(self, x):
        size = tf.shape(x)[1:3] * self.factor
        return tf.image.resize(x, size, method="bilinear")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
