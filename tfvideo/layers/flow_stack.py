"""TVNet flow stacks: the temporal-stream input of the TVNet action model (seed 002, Sec. 4.3, 5.2).

"We sample a stack of 6 consecutive images from each video and extract 5 flow frames for every
consecutive pair": :class:`FlowStack` runs one :class:`~tfvideo.layers.TVNet` on the ``K - 1``
consecutive pairs of every stack and interleaves the flows into ``2 (K - 1)`` channels
``(u_1, v_1, ..., u_{K-1}, v_{K-1})``, as TSN stacks its flow images.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.layers.tvnet import TVNet

__all__ = ["DEFAULT_TVNET", "FlowStack"]

DEFAULT_TVNET = {"scales": 1, "warps": 1, "iterations": 50}  # "TVNet-50"


@keras.saving.register_keras_serializable(package="tfvideo")
class FlowStack(keras.layers.Layer):
    """``(B, S, K, H, W, 3)`` frames -> ``(B, S, H, W, 2 (K - 1))`` TVNet flows of consecutive pairs.

    Channels are ``(u_1, v_1, ..., u_{K-1}, v_{K-1})``: flow ``i`` goes from frame ``i - 1`` to ``i``
    (project convention, pixels). All ``B * S * (K - 1)`` pairs go through one TVNet call. The TVNet
    sub-layer is named ``tvnet`` (the key for learning-rate multipliers); ``tvnet`` holds its
    constructor arguments (default :data:`DEFAULT_TVNET`, TVNet-50). ``K`` must be known when the
    layer is built; batch, segments, ``H`` and ``W`` may be unknown (``None``).
    """

    def __init__(self, tvnet=None, **kwargs):
        super().__init__(**kwargs)
        self.tvnet_config = dict(DEFAULT_TVNET if tvnet is None else tvnet)
        self.tvnet = TVNet(**self.tvnet_config, name="tvnet")
        # `trainable=False` given to the constructor (as from_config does) must reach the sub-layer:
        # Keras propagates only later assignments of `trainable`, not the constructor argument.
        if not self.trainable:
            self.tvnet.trainable = False

    def build(self, input_shape):
        if len(input_shape) != 6 or input_shape[-1] not in (1, 3) or input_shape[2] is None \
                or input_shape[2] < 2:
            raise ValueError("FlowStack expects frames (batch, segments, frames_per_stack >= 2, H, W, "
                             f"1 or 3); got {input_shape}")
        h, w, c = input_shape[3:]
        self.tvnet.build([(None, h, w, c), (None, h, w, c)])

    def call(self, frames):
        frames = tf.cast(frames, tf.float32)
        shape = tf.shape(frames)
        b, s, k = shape[0], shape[1], frames.shape[2]
        h, w, c = [d if d is not None else shape[i] for i, d in enumerate(frames.shape[3:], 3)]
        stacks = tf.reshape(frames, [-1, k, h, w, c])
        frame0 = tf.reshape(stacks[:, :-1], [-1, h, w, c])
        frame1 = tf.reshape(stacks[:, 1:], [-1, h, w, c])
        flows = self.tvnet([frame0, frame1])  # (B*S*(K-1), H, W, 2)
        flows = tf.reshape(flows, [-1, k - 1, h, w, 2])
        flows = tf.transpose(flows, [0, 2, 3, 1, 4])  # (B*S, H, W, K-1, 2): u, v interleaved
        return tf.reshape(flows, [b, s, h, w, 2 * (k - 1)])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *input_shape[3:5], 2 * (input_shape[2] - 1))

    def get_config(self):
        return {**super().get_config(), "tvnet": self.tvnet_config}
