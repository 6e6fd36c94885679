"""TVNet action recognition: TVNet flow stacks + a 2D CNN, TSN consensus, two-stream fusion.

Seed 002 (Fan et al., "End-to-End Learning of Motion Representation for Video Understanding"):

* **Temporal stream** (Sec. 4.3, 5.2): "We sample a stack of 6 consecutive images from each video and
  extract 5 flow frames for every consecutive pair. The resulting stack of optical flows are fed to the
  BN-Inception network". :class:`FlowStack` runs one TVNet (default TVNet-50: 1 scale, 1 warp, 50
  iterations) on the 5 consecutive pairs of every stack and interleaves the flows into 10 channels
  ``(u_1, v_1, u_2, v_2, ..., u_5, v_5)``, as TSN stacks its flow images.
* **Backbone**: the paper uses BN-Inception, which ``keras.applications`` does not have;
  ``inception_v3`` is the nearest, ``resnet50`` and ``mobilenet_v2`` are offered too, and ``small``
  (four stride-2 conv/BN/ReLU blocks) is the CPU-friendly default. ImageNet weights go to the
  10-channel flow network by TSN's *cross-modality initialisation* (Wang et al. 2016, Sec. 3.2;
  TVNet Sec. 5.2): the first convolution's RGB kernels are averaged over the 3 input channels and the
  average replicated over the 10 flow channels (:func:`cross_modality_weights`).
* **Flow input scale** (our choice, documented): the flows reach the CNN multiplied by
  ``128 / 20 = 6.4``, the factor by which TSN maps +-20 px flow to the [0, 255] images its flow
  networks are trained on (minus the mean 128), so ImageNet-initialised first layers see the value
  range TSN's do. Flows are not clipped (clipping would stop the gradient into TVNet).
* **TSN consensus** (Sec. 5.2, "temporal pooling of 3 sampled segments"): the CNN scores every
  segment and the logits are averaged over segments; the number of segments is free (3 in training,
  25 stacks at test), so inputs are ``(batch, segments, 6, H, W, 3)`` uint8.
* **Spatial stream**: the same backbone on one RGB frame per segment (our choice: the middle frame
  of each stack, index ``frames_per_stack // 2``, so one input feeds both streams).
* **Two-stream fusion** (Sec. 5.2): "we combine the predictions of the spatial and temporal networks
  with a fixed weight (i.e., 1:2)"; :func:`two_stream` averages the softmax scores with weights 1:2
  and returns their log as ``logits`` (so ``softmax(logits)`` is the fused distribution).
* **Loss** (Eq. 13): ``L = L_c + 0.1 L_f``: cross-entropy plus ``flow_loss_weight`` times the TV-L1
  energy of the produced flows (added by the TVNet layer with ``add_loss``, averaged over all pairs);
  ``flow_loss_weight=0`` is the paper's "no flow loss" ablation and ``train_tvnet=False`` its "no
  training" one. TVNet's learning rate is the network's divided by 255 (Sec. 5.2): the optimizer side
  of that lives in :mod:`tfvideo.optimizers` (``lr_multipliers={"tvnet": 1 / 255}``).

Example
-------
>>> model = temporal_stream(8, size=(64, 64), tvnet={"iterations": 5})           # doctest: +SKIP
>>> model(np.zeros((2, 3, 6, 64, 64, 3), np.uint8)).shape                       # doctest: +SKIP
TensorShape([2, 8])
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from tfvideo.layers import TVNet

__all__ = ["BACKBONES", "FlowStack", "PerSegment", "SegmentConsensus", "TakeFrame", "FuseScores", "RGBPreprocess",
           "backbone",
           "cross_modality_weights", "temporal_stream", "spatial_stream", "two_stream",
           "DEFAULT_TVNET", "FLOW_SCALE", "without_xla"]

BACKBONES = ("small", "inception_v3", "resnet50", "mobilenet_v2")
DEFAULT_TVNET = {"scales": 1, "warps": 1, "iterations": 50}  # "TVNet-50"
FLOW_SCALE = 128.0 / 20.0  # TSN: +-20 px -> +-128 grey levels around 128
_APPS = {"inception_v3": "InceptionV3", "resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2"}


# ------------------------------------------------------------------------------------- layers ----
@keras.saving.register_keras_serializable(package="tfvideo")
class FlowStack(keras.layers.Layer):
    """``(B, S, K, H, W, 3)`` frames -> ``(B, S, H, W, 2 (K - 1))`` TVNet flows of consecutive pairs.

    Channels are ``(u_1, v_1, ..., u_{K-1}, v_{K-1})``: flow ``i`` goes from frame ``i - 1`` to ``i``
    (project convention, pixels). All ``B * S * (K - 1)`` pairs go through one TVNet call. The TVNet
    sub-layer is named ``tvnet`` (the key for learning-rate multipliers); ``tvnet`` holds its
    constructor arguments.
    """

    def __init__(self, tvnet=None, **kwargs):
        super().__init__(**kwargs)
        self.tvnet_config = dict(DEFAULT_TVNET if tvnet is None else tvnet)
        self.tvnet = TVNet(**self.tvnet_config, name="tvnet")

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
        h, w, c = frames.shape[3], frames.shape[4], frames.shape[5]
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
class PerSegment(keras.layers.Wrapper):
    """Apply ``layer`` to every segment: ``(B, S, ...) -> (B, S, ...)`` by folding the segments into
    the batch (one call on ``B * S`` items).

    Used instead of ``keras.layers.TimeDistributed``, which in Keras 3.15 loops over the *batch*
    size when the segment count is unknown at trace time (as in an exported signature with
    ``(None, None, ...)`` inputs) and then fails or silently drops segments.
    """

    def build(self, input_shape):
        self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, x, training=None):
        shape = tf.shape(x)
        folded = tf.reshape(x, [-1, *x.shape[2:]])
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
    """Weighted average of softmax scores of several streams, returned as log-probabilities."""

    def __init__(self, weights=(1.0, 2.0), **kwargs):
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


# ---------------------------------------------------------------------------------- backbones ----
def _small_cnn(input_shape, name):
    """Four stride-2 3x3 conv / BN / ReLU blocks (32, 64, 128, 256) and global average pooling."""
    x = inputs = keras.Input(input_shape)
    for i, filters in enumerate((32, 64, 128, 256)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                                name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


def _application(name, input_shape, weights, model_name):
    return getattr(keras.applications, _APPS[name])(
        include_top=False, weights=weights, input_shape=input_shape, pooling="avg", name=model_name)


def _first_conv(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise ValueError(f"{model.name} has no Conv2D layer")


def cross_modality_weights(rgb_model, target_model):
    """Copy ``rgb_model``'s weights into ``target_model`` (same architecture, C input channels).

    TSN's cross-modality initialisation: the first convolution's kernel ``(kh, kw, 3, out)`` is
    averaged over its 3 input channels and the average is replicated over the target's ``C``
    channels; every other weight is copied as is.
    """
    src, dst = _first_conv(rgb_model), _first_conv(target_model)
    channels = dst.kernel.shape[2]
    for a, b in zip(rgb_model.weights, target_model.weights):
        value = a.numpy()
        if a is src.kernel:
            value = np.repeat(value.mean(axis=2, keepdims=True), channels, axis=2)
        if tuple(value.shape) != tuple(b.shape):
            raise ValueError(f"weights do not match: {a.path} {value.shape} vs {b.path} {b.shape}")
        b.assign(value)
    return target_model


def backbone(name, input_shape, *, weights=None, model_name=None):
    """A feature extractor ``(H, W, C) -> (features,)`` (global average pooled).

    Args:
      name: one of :data:`BACKBONES`.
      input_shape: ``(H, W, C)``; ``C`` = 3 (RGB) or 10 (a TVNet flow stack).
      weights: ``None`` (random init), ``"imagenet"`` (Keras downloads the file: needs network) or the
        path of a weights file of the same application with 3 input channels (``.weights.h5``, e.g.
        saved with ``model.save_weights``). For ``C != 3`` the RGB weights are transferred by
        :func:`cross_modality_weights`. The ``small`` backbone has no pretrained weights.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {name!r}")
    model_name = model_name or f"{name}_backbone"
    h, w, c = input_shape
    if name == "small":
        if weights is not None:
            raise ValueError("the 'small' backbone has no pretrained weights: use weights=None")
        return _small_cnn(input_shape, model_name)
    if weights is None:
        return _application(name, input_shape, None, model_name)
    if weights != "imagenet" and not os.path.isfile(str(weights)):
        raise ValueError(f"weights must be None, 'imagenet' or an existing weights file; got "
                         f"{weights!r}")
    if weights == "imagenet":
        rgb = _application(name, (h, w, 3), "imagenet", f"{model_name}_rgb")
    else:
        rgb = _application(name, (h, w, 3), None, f"{model_name}_rgb")
        rgb.load_weights(str(weights))
    if c == 3:
        target = _application(name, input_shape, None, model_name)
        target.set_weights(rgb.get_weights())
        return target
    return cross_modality_weights(rgb, _application(name, input_shape, None, model_name))


@keras.saving.register_keras_serializable(package="tfvideo")
class RGBPreprocess(keras.layers.Layer):
    """RGB in [0, 255] (any dtype) -> the input scaling a backbone was trained with: ``"tf"``
    ([-1, 1]: Inception, MobileNet, our small CNN) or ``"caffe"`` (BGR minus the ImageNet mean:
    ResNet50)."""

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

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _head(features, num_classes, dropout, name):
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(features)
    return keras.layers.Dense(num_classes, name=f"{name}_logits")(x)


def _check(num_classes, size, frames_per_stack):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, int) and v >= 16 for v in size)):
        raise ValueError(f"size must be (height, width) ints >= 16; got {size!r}")
    if not isinstance(frames_per_stack, int) or frames_per_stack < 2:
        raise ValueError(f"frames_per_stack must be an int >= 2; got {frames_per_stack!r}")


# ------------------------------------------------------------------------------------- models ----
def temporal_stream(num_classes, *, size=(112, 112), frames_per_stack=6, backbone_name="small",
                    weights=None, tvnet=None, flow_loss_weight=0.1, train_tvnet=True,
                    dropout=0.7, name="temporal"):
    """TVNet + CNN on stacks of frames: ``frames`` uint8 ``(B, S, K, H, W, 3)`` -> logits ``(B, C)``.

    Args:
      num_classes: number of classes.
      size: ``(H, W)`` of the frames.
      frames_per_stack: ``K`` (6 in the paper: 5 flows, 10 channels).
      backbone_name, weights: see :func:`backbone`.
      tvnet: TVNet constructor arguments (default TVNet-50, :data:`DEFAULT_TVNET`); add
        ``xla_iterations=True`` for fast CPU training.
      flow_loss_weight: lambda of Eq. 13 (0.1; 0 = "no flow loss").
      train_tvnet: False freezes TVNet (exact TV-L1: "no training").
      dropout: before the classifier (TSN uses 0.7 for the flow network).
    """
    _check(num_classes, size, frames_per_stack)
    config = dict(DEFAULT_TVNET if tvnet is None else tvnet)
    config["flow_loss_weight"] = float(flow_loss_weight)
    h, w = size
    frames = keras.Input((None, frames_per_stack, h, w, 3), dtype="uint8", name="frames")
    stack = FlowStack(config, name="flow_stack")
    stack.trainable = bool(train_tvnet)
    flows = stack(frames)
    x = keras.layers.Rescaling(FLOW_SCALE, name="flow_scale")(flows)
    net = backbone(backbone_name, (h, w, 2 * (frames_per_stack - 1)), weights=weights,
                   model_name=f"{name}_{backbone_name}")
    features = PerSegment(net, name=f"{name}_cnn")(x)
    logits = _head(features, num_classes, dropout, name)
    return keras.Model(frames, SegmentConsensus(name="consensus")(logits), name=name)


def spatial_stream(num_classes, *, size=(112, 112), frames_per_stack=6, backbone_name="small",
                   weights=None, dropout=0.8, name="spatial"):
    """RGB CNN on one frame per segment (the middle frame of each stack): same input as
    :func:`temporal_stream`, logits ``(B, C)`` averaged over segments (TSN uses dropout 0.8 here)."""
    _check(num_classes, size, frames_per_stack)
    h, w = size
    frames = keras.Input((None, frames_per_stack, h, w, 3), dtype="uint8", name="frames")
    x = TakeFrame(frames_per_stack // 2, name="middle_frame")(frames)
    x = RGBPreprocess("caffe" if backbone_name == "resnet50" else "tf", name="preprocess")(x)
    net = backbone(backbone_name, (h, w, 3), weights=weights, model_name=f"{name}_{backbone_name}")
    features = PerSegment(net, name=f"{name}_cnn")(x)
    logits = _head(features, num_classes, dropout, name)
    return keras.Model(frames, SegmentConsensus(name="consensus")(logits), name=name)


def two_stream(spatial, temporal, *, weights=(1.0, 2.0), name="two_stream"):
    """Fuse a spatial and a temporal stream (same ``frames`` input) with score weights 1:2."""
    frames = keras.Input(spatial.input.shape[1:], dtype="uint8", name="frames")
    fused = FuseScores(weights, name="fusion")([spatial(frames), temporal(frames)])
    return keras.Model(frames, fused, name=name)


def without_xla(model):
    """A copy of ``model`` whose TVNet layers run without XLA (``xla_iterations=False``), same
    weights: for export to TF Serving builds that may lack XLA."""
    def strip(config):
        if isinstance(config, dict):
            return {k: False if k == "xla_iterations" else strip(v) for k, v in config.items()}
        if isinstance(config, list):
            return [strip(v) for v in config]
        return config

    clone = model.__class__.from_config(strip(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone
