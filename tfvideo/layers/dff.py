"""Layers of Deep Feature Flow's segmentation head (seed 003, Sec. 4)."""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["CropToFrame"]


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
