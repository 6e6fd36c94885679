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
* **Flow input scale per backbone** (our choice, documented): TSN stores +-20 px of flow as [0, 255]
  images and its Caffe networks take them minus 128, i.e. +-20 px -> +-128, the range its RGB input
  has. We keep that rule -- *a +-20 px flow reaches the first convolution with the extremes RGB 0 / 255
  have for that backbone* -- so a cross-modality initialised first layer sees flow at the scale of the
  images its ImageNet weights were trained on (:func:`flow_scale`, :data:`FLOW_SCALES`):

  ==============  =======================================  ===========================  ===========
  backbone        RGB preprocessing (spatial stream)       RGB 0 .. 255 reaches conv1   flow scale
  ==============  =======================================  ===========================  ===========
  small           ``"tf"``: ``x / 127.5 - 1``              -1 .. 1                      1 / 20
  inception_v3    ``"tf"`` (keras ``preprocess_input``)    -1 .. 1                      1 / 20
  mobilenet_v2    ``"tf"`` (keras ``preprocess_input``)    -1 .. 1                      1 / 20
  resnet50        ``"caffe"``: BGR minus the ImageNet      -123.7 .. 151.1 (span 255)   128 / 20
                  mean (keras ``preprocess_input``)
  ==============  =======================================  ===========================  ===========

  (Before this table every backbone got ``128 / 20`` (:data:`FLOW_SCALE`, kept for the Caffe-range
  case), which fed the [-1, 1] backbones flows 128 times larger than their RGB.) Flows are not
  clipped (clipping would stop the gradient into TVNet).
* **Frame preprocessing** (``preprocess``): ``"none"`` (default: TVNet gets the frames as they are,
  its own grey conversion) or ``"official"``: the authors' code's grey / joint [0, 255] normalisation
  of each pair / 5x5 Gaussian before TVNet (:func:`tfvideo.ops.image.tvnet_official_preprocess`,
  applied by :class:`FlowStack`). The paper does not describe it (Sec. 4-5); the default stays
  ``"none"`` so that TVNet-layer flows, exports and earlier models are unchanged and TVNet-50 at
  initialisation is exactly the TV-L1 of Sec. 3 on the frames; choose ``"official"`` to follow the
  authors' code.
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

from tfvideo.layers import TVNet  # noqa: F401  (importable from here before the move)
from tfvideo.layers.flow_stack import DEFAULT_TVNET, FlowStack
from tfvideo.layers.segments import (TWO_STREAM_WEIGHTS, FuseScores, PerSegment, RGBPreprocess,
                                     SegmentConsensus, TakeFrame)

# The layers live in tfvideo.layers (flow_stack, segments) and are re-exported here, so names like
# ``tfvideo.models.tvnet.FlowStack`` keep working.
__all__ = ["BACKBONES", "FLOW_SCALES", "RGB_PREPROCESSING", "flow_scale", "FlowStack", "PerSegment",
           "SegmentConsensus", "TakeFrame", "FuseScores", "RGBPreprocess", "backbone",
           "cross_modality_weights", "temporal_stream", "spatial_stream", "two_stream",
           "DEFAULT_TVNET", "FLOW_SCALE", "ImageNetWeightsUnavailable", "without_xla"]

BACKBONES = ("small", "inception_v3", "resnet50", "mobilenet_v2")
FLOW_SCALE = 128.0 / 20.0  # TSN: +-20 px -> +-128 grey levels around 128 (Caffe-range backbones)
#: how each backbone's RGB input is scaled (:class:`RGBPreprocess` modes, keras ``preprocess_input``)
RGB_PREPROCESSING = {"small": "tf", "inception_v3": "tf", "mobilenet_v2": "tf", "resnet50": "caffe"}
#: flow multiplier per backbone: +-20 px reaches conv1 with the extremes of RGB 0 / 255 (module doc)
FLOW_SCALES = {name: (FLOW_SCALE if mode == "caffe" else 1.0 / 20.0)
               for name, mode in RGB_PREPROCESSING.items()}
_APPS = {"inception_v3": "InceptionV3", "resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2"}


# ---------------------------------------------------------------------------------- backbones ----
def flow_scale(backbone_name):
    """The factor flows (pixels) are multiplied by before ``backbone_name``'s first convolution:
    ``1 / 20`` for the [-1, 1] backbones, ``128 / 20`` for ``resnet50`` (Caffe range); see the table in
    the module docstring."""
    return FLOW_SCALES[_check_backbone(backbone_name)]


def _check_backbone(name):
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {name!r}")
    return name


_backbone_flow_scale = flow_scale  # temporal_stream's `flow_scale` argument shadows the name


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
        try:
            rgb = _application(name, (h, w, 3), "imagenet", f"{model_name}_rgb")
        except Exception as err:  # keras' get_file raises a bare Exception on a failed fetch
            raise ImageNetWeightsUnavailable(
                f"weights='imagenet': Keras could not download the ImageNet weights of {name} "
                f"({type(err).__name__}: {err}); pass the path of a saved .weights.h5 file of "
                f"keras.applications.{_APPS[name]}(include_top=False) instead, or weights=None") from err
    else:
        rgb = _application(name, (h, w, 3), None, f"{model_name}_rgb")
        rgb.load_weights(str(weights))
    if c == 3:
        target = _application(name, input_shape, None, model_name)
        target.set_weights(rgb.get_weights())
        return target
    return cross_modality_weights(rgb, _application(name, input_shape, None, model_name))


class ImageNetWeightsUnavailable(RuntimeError):
    """``weights="imagenet"`` could not be loaded (no network, or a failed download)."""


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
                    dropout=0.7, flow_scale=None, preprocess="none", name="temporal"):
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
      flow_scale: the flow multiplier before the CNN; ``None``: :func:`flow_scale` of the backbone
        (+-20 px -> the backbone's RGB input range).
      preprocess: ``"none"`` or ``"official"`` (the authors' frame preprocessing before TVNet; see
        :class:`FlowStack` and the module docstring).
    """
    _check(num_classes, size, frames_per_stack)
    scale = _backbone_flow_scale(backbone_name) if flow_scale is None else flow_scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"flow_scale must be a number > 0 or None; got {flow_scale!r}")
    config = dict(DEFAULT_TVNET if tvnet is None else tvnet)
    config["flow_loss_weight"] = float(flow_loss_weight)
    h, w = size
    frames = keras.Input((None, frames_per_stack, h, w, 3), dtype="uint8", name="frames")
    stack = FlowStack(config, preprocess=preprocess, name="flow_stack")
    stack.trainable = bool(train_tvnet)
    flows = stack(frames)
    x = keras.layers.Rescaling(float(scale), name="flow_scale")(flows)
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
    x = RGBPreprocess(RGB_PREPROCESSING[_check_backbone(backbone_name)], name="preprocess")(x)
    net = backbone(backbone_name, (h, w, 3), weights=weights, model_name=f"{name}_{backbone_name}")
    features = PerSegment(net, name=f"{name}_cnn")(x)
    logits = _head(features, num_classes, dropout, name)
    return keras.Model(frames, SegmentConsensus(name="consensus")(logits), name=name)


def two_stream(spatial, temporal, *, weights=TWO_STREAM_WEIGHTS, name="two_stream"):
    """Fuse a spatial and a temporal stream (same ``frames`` input) with score weights
    ``(spatial, temporal)``, by default the paper's 1:2 (:data:`TWO_STREAM_WEIGHTS`)."""
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
