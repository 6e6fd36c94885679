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
from tfvideo.ops.image import tvnet_official_preprocess

__all__ = ["DEFAULT_TVNET", "FlowStack", "FlowImages", "PREPROCESSING"]

DEFAULT_TVNET = {"scales": 1, "warps": 1, "iterations": 50}  # "TVNet-50"
#: FlowStack ``preprocess`` values: ``"none"`` (frames go to TVNet as they are) or ``"official"`` (the
#: authors' code: :func:`tfvideo.ops.image.tvnet_official_preprocess` on every pair)
PREPROCESSING = ("none", "official")


@keras.saving.register_keras_serializable(package="tfvideo")
class FlowStack(keras.layers.Layer):
    """``(B, S, K, H, W, 3)`` frames -> ``(B, S, H, W, 2 (K - 1))`` TVNet flows of consecutive pairs.

    Channels are ``(u_1, v_1, ..., u_{K-1}, v_{K-1})``: flow ``i`` goes from frame ``i - 1`` to ``i``
    (project convention, pixels). All ``B * S * (K - 1)`` pairs go through one TVNet call. The TVNet
    sub-layer is named ``tvnet`` (the key for learning-rate multipliers); ``tvnet`` holds its
    constructor arguments (default :data:`DEFAULT_TVNET`, TVNet-50). ``K`` must be known when the
    layer is built; batch, segments, ``H`` and ``W`` may be unknown (``None``).

    ``preprocess="official"`` applies the TVNet authors' frame preprocessing to every pair before
    TVNet (grey, joint min/max normalisation of the pair to [0, 255], 5x5 Gaussian:
    :func:`tfvideo.ops.image.tvnet_official_preprocess`); ``"none"`` (default) gives TVNet the frames
    as they are (TVNet converts them to grey), as before this option existed.
    """

    def __init__(self, tvnet=None, preprocess="none", **kwargs):
        super().__init__(**kwargs)
        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}; got {preprocess!r}")
        self.preprocess = preprocess
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
        c = 1 if self.preprocess == "official" else c
        self.tvnet.build([(None, h, w, c), (None, h, w, c)])

    def pair_flow(self, frame0, frame1):
        """TVNet flow of ``(N, H, W, C)`` frame pairs, after this layer's ``preprocess``."""
        if self.preprocess == "official":
            frame0, frame1 = tvnet_official_preprocess(frame0, frame1)
        return self.tvnet([tf.cast(frame0, tf.float32), tf.cast(frame1, tf.float32)])

    def call(self, frames):
        frames = tf.cast(frames, tf.float32)
        shape = tf.shape(frames)
        b, s, k = shape[0], shape[1], frames.shape[2]
        h, w, c = [d if d is not None else shape[i] for i, d in enumerate(frames.shape[3:], 3)]
        stacks = tf.reshape(frames, [-1, k, h, w, c])
        frame0 = tf.reshape(stacks[:, :-1], [-1, h, w, c])
        frame1 = tf.reshape(stacks[:, 1:], [-1, h, w, c])
        flows = self.pair_flow(frame0, frame1)  # (B*S*(K-1), H, W, 2)
        flows = tf.reshape(flows, [-1, k - 1, h, w, 2])
        flows = tf.transpose(flows, [0, 2, 3, 1, 4])  # (B*S, H, W, K-1, 2): u, v interleaved
        return tf.reshape(flows, [b, s, h, w, 2 * (k - 1)])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *input_shape[3:5], 2 * (input_shape[2] - 1))

    def get_config(self):
        return {**super().get_config(), "tvnet": self.tvnet_config, "preprocess": self.preprocess}


@keras.saving.register_keras_serializable(package="tfvideo")
class FlowImages(keras.layers.Layer):
    """``(B, T, H, W, 3)`` frames -> ``(B, T - 1, H, W, 3)`` flow images: TVNet flow between consecutive
    frames, stored as Ng et al. store TV-L1 flow (thesis Sec. 3.6, digest 3.6): each component clipped
    to ``[-bound, bound]`` (40 pixels) and mapped linearly to ``[0, 255]``, the third channel 0 (128, 128,
    0 is zero motion), so that "flow frames are otherwise treated exactly like image frames" (the same
    per-frame CNN and input scaling). Without :func:`tfvideo.ops.flow.quantize_flow`'s rounding to
    integers, so the layer stays differentiable (TVNet trainable or not). ``T`` may be unknown; a clip of
    one frame gives zero flow images. ``tvnet``: :class:`~tfvideo.layers.TVNet` arguments (default
    TVNet-50, :data:`DEFAULT_TVNET`); frozen by default (``trainable=False``: exact TV-L1)."""

    def __init__(self, tvnet=None, bound=40.0, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
            raise ValueError(f"`bound` must be a number > 0; got {bound!r}")
        self.bound = float(bound)
        self.tvnet_config = dict(DEFAULT_TVNET if tvnet is None else tvnet)
        self.tvnet = TVNet(**self.tvnet_config, name="tvnet")
        if not self.trainable:
            self.tvnet.trainable = False

    def build(self, input_shape):
        if len(input_shape) != 5 or input_shape[-1] not in (1, 3):
            raise ValueError(f"FlowImages expects frames (batch, frames, H, W, 1 or 3); got {input_shape}")
        h, w, c = input_shape[2:]
        self.tvnet.build([(None, h, w, c), (None, h, w, c)])

    def call(self, frames):
        frames = tf.cast(frames, tf.float32)
        shape = tf.shape(frames)
        h, w, c = [d if d is not None else shape[i] for i, d in enumerate(frames.shape[2:], 2)]
        first = tf.reshape(frames[:, :-1], [-1, h, w, c])
        second = tf.reshape(frames[:, 1:], [-1, h, w, c])
        flows = self.tvnet([first, second])  # (B * (T - 1), H, W, 2); empty when T = 1
        images = (tf.clip_by_value(flows, -self.bound, self.bound) + self.bound) * (255.0 / (2.0 * self.bound))
        images = tf.concat([images, tf.zeros_like(images[..., :1])], axis=-1)
        return tf.reshape(images, [shape[0], shape[1] - 1, h, w, 3])

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else t - 1, *input_shape[2:4], 3)

    def get_config(self):
        return {**super().get_config(), "tvnet": self.tvnet_config, "bound": self.bound}
