"""Deep Feature Flow (seed 003, Zhu et al., CVPR 2017): feature network, segmentation task network.

This first part holds the per-frame networks of Sec. 4; the key-frame / propagation model of Sec. 3
(Alg. 1, Eq. 3) builds on them.

* **N_feat** (Sec. 4, "Feature Network"): ResNet-50 / ResNet-101 (``keras.applications``) without the
  1000-way classifier, output stride 32 -> 16: "The first block of the conv5 layers are modified to
  have a stride of 1 instead of 2. The holing algorithm is applied on all the 3x3 convolutional kernels
  in conv5 (dilation=2)", then "a randomly initialized 3x3 convolution ... to reduce the feature
  channel dimension to 1024, where the holing algorithm is also applied (dilation=6)". The DFF code
  (``feat_conv_3x3`` in ``dff_rfcn/symbols/resnet_v1_101_flownet_rfcn.py``, ``fc6`` in its DeepLab
  symbol) follows it by a ReLU and initialises it N(0, 0.01) with zero bias: so do we.
* ``keras.applications`` cannot build a dilated ResNet, so conv1-conv4 are the stock network's layers
  (weights ``None``, ``"imagenet"`` or a file, loaded by keras.applications' own code into
  ``include_top=False``), and conv5 is rebuilt with the *same layer names*, stride 1 and dilation 2 on
  its 3x3 convolutions, and the stock conv5 weights copied in (dilation does not change a kernel's
  shape). Keras' ResNet puts the stride of a bottleneck on its first 1x1 convolution (``_1_conv``, and
  the ``_0_conv`` projection), exactly as MSRA's ResNet-v1 of the DFF code (``res5a_branch2a`` /
  ``res5a_branch1``); it is not the "v1.5" variant (stride on the 3x3). The one difference: Keras'
  convolutions carry biases (Caffe's have none, their BN/Scale absorbs it) and its BN epsilon is
  1.001e-5 (DFF: 1e-5); weights converted from Caffe fill the biases with zeros.
  The stride-2 1x1 of a stock block samples the even positions, so the dilated conv5 evaluated at
  even positions *is* the stock conv5 (the "holing" identity: ``ours[:, ::2, ::2] == stock``), which the
  tests check.
* **Input**: uint8 RGB frames ``(B, H, W, 3)``; the ResNets get keras.applications' ResNet
  ``preprocess_input`` ("caffe" mode: RGB -> BGR minus the ImageNet mean, no scaling;
  :class:`tfvideo.layers.RGBPreprocess` ``mode="caffe"``), the weights they were trained with. The
  feature map of an ``H x W`` frame is ``ceil(H / 16) x ceil(W / 16)``.
* **Batch normalisation**: the DFF code runs ResNet's BN with ``use_global_stats=True`` and fixes
  ``gamma``/``beta`` (``FIXED_PARAMS``, batches of one image per GPU): ``frozen_batch_norm=None`` means
  frozen (``trainable=False``, inference statistics) for the ResNets and batch statistics for
  ``"small"``, which trains from scratch. The DFF code also fixes conv1 and res2: that is left to the
  recipe (``layer.trainable``).
* ``"small"``: a CPU-sized net of the same shape (stride-2 conv 3x3 + BN + ReLU, stride-2 max-pool,
  bottleneck stages conv2 (1 block), conv3 (1, stride 2), conv4 (4, stride 2), conv5 (3, stride 1,
  dilation 2), the same layer names, then the dilation-6 3x3 conv to **128** channels instead of 1024)
  for the built-in runs and tests: output stride 16 and every Table-5 split point (conv4 has four units
  so that 21 layers stay inside it). Its input is scaled to [-1, 1] (``RGBPreprocess`` ``"tf"``).
* **N_task for segmentation** (Sec. 4, "Semantic Segmentation"): "A randomly initialized 1x1
  convolutional layer ... to produce (C+1) score maps", then a softmax. Our label sets count the
  background as one of their classes, so the layer has ``num_classes`` outputs (pass C + 1 for the
  paper's sets). The model outputs **logits** (the softmax goes into the loss, ``from_logits=True``).
  Upsampling (where the DFF DeepLab symbol puts it: after ``score``, parameter-free): a fixed bilinear
  ``Deconvolution`` (kernel 32, stride 16, ``lr_mult 0``) then ``Crop(offset=8)`` to the image. That
  places feature pixel ``i`` at output pixel ``16 i + 7.5``, which is half-pixel bilinear upsampling
  by 16 (:class:`tfvideo.layers.BilinearUpsampling`, = ``keras.layers.UpSampling2D(16, "bilinear")``); the only difference is the outer 8 pixels,
  where the deconvolution fades towards its zero padding and ours repeats the edge (tested against a
  NumPy transcription of the deconvolution). The upsampled map is ``16 ceil(H/16)`` high; like the
  DFF ``Crop`` to the image, :class:`CropToFrame` keeps its top-left ``H x W``.
* **Split point** (Sec. 5, Table 5): N_task keeps ``task_layers`` learnable weight layers (convolutions;
  BN is counted with its convolution as Caffe folds it): 1 (default, the score conv), 5 (+ the
  1024-d conv + conv5c, 3 convs), 12 (+ conv5a with its projection, 4, and conv5b, 3), 21 (+ the last
  three conv4 units), 0 (the score conv moved into N_feat: the propagated "features" are the score
  maps). Every other unit boundary (2, 8, 15, 18, ...) is accepted too. N_task always ends with the
  parameter-free upsampling.

Example
-------
>>> n_feat, n_task = split_networks("small", 5, task_layers=1)                 # doctest: +SKIP
>>> n_task(n_feat(np.zeros((1, 64, 96, 3), np.uint8))).shape                   # doctest: +SKIP
TensorShape([1, 64, 96, 5])
"""

from __future__ import annotations

import keras

from tfvideo.layers.dff import BilinearUpsampling, CropToFrame, KeyOrPropagated, PairFrame
from tfvideo.layers.feature_warp import FeatureWarp
from tfvideo.layers.segments import RGBPreprocess
from tfvideo.models.flownet import flownet
from tfvideo.models.resnet import BN_EPSILON as _BN_EPSILON
from tfvideo.models.resnet import Bottleneck

__all__ = [
    "BACKBONES", "FEATURE_STRIDE", "TABLE5_SPLITS", "CropToFrame", "feature_network",
    "split_networks", "frame_segmenter", "segmenter_from_split", "split_points", "transfer_weights",
    "FIX", "dff_segmenter", "propagated_features", "apply_fix", "TABLE2", "cost_model", "speedup",
]

BACKBONES = ("resnet50", "resnet101", "small")
FEATURE_STRIDE = 16
"""Output stride of every N_feat (Sec. 4: "reduced from 32 to 16")."""
TABLE5_SPLITS = (0, 1, 5, 12, 21)
"""The numbers of N_task layers of Table 5."""
FEATURE_CHANNELS = {"resnet50": 1024, "resnet101": 1024, "small": 128}
"""Channels of the dilation-6 3x3 conv (Sec. 4: 1024; 128 for the CPU-sized ``small`` net)."""

_CONV4_BLOCKS = {"resnet50": 6, "resnet101": 23, "small": 4}
_SMALL_STAGES = (  # (stage, bottleneck filters, blocks, stride, dilation)
    ("conv2", 16, 1, 1, 1), ("conv3", 32, 1, 2, 1), ("conv4", 32, 4, 2, 1), ("conv5", 64, 3, 1, 2))


class _Unit:
    """One step of the per-frame network: a callable on a tensor and its learnable conv count."""

    def __init__(self, name, apply, weight_layers):
        self.name, self.apply, self.weight_layers = name, apply, weight_layers


def _sequence(*layers):
    def apply(x):
        for layer in layers:
            x = layer(x)
        return x
    return apply


def _check_common(backbone, weights, input_shape, channels, frozen_batch_norm):
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}; got {backbone!r}")
    if backbone == "small" and weights is not None:
        raise ValueError(f"weights must be None for backbone 'small' (trained from scratch); "
                         f"got {weights!r}")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or input_shape[2] != 3
            or any(d is not None and (not isinstance(d, int) or d < 1) for d in input_shape[:2])):
        raise ValueError(f"input_shape must be (height, width, 3) with positive ints or None; "
                         f"got {input_shape!r}")
    if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool)
                                 or channels < 1):
        raise ValueError(f"channels must be a positive int or None; got {channels!r}")
    if frozen_batch_norm not in (None, True, False):
        raise TypeError(f"frozen_batch_norm must be None, True or False; got {frozen_batch_norm!r}")


def _feature_units(backbone, *, weights, input_shape, channels):
    """(preprocessing layer, units of N_feat in order, conv5 layer names to fill from ``source``,
    ``source``: the stock keras.applications model or None)."""
    units = []
    source = None
    if backbone == "small":
        preprocess = RGBPreprocess("tf", name="preprocess")
        units.append(_Unit("stem", _sequence(
            keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv1_conv"),
            keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name="conv1_bn"),
            keras.layers.Activation("relu", name="conv1_relu"),
            keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")), 1))
        for stage, filters, blocks, stride, dilation in _SMALL_STAGES:
            for b in range(1, blocks + 1):
                name = f"{stage}_block{b}"
                block = Bottleneck.new(name, filters, stride=stride if b == 1 else 1,
                                        dilation=dilation, shortcut=b == 1)
                units.append(_Unit(name, block, block.weight_layers))
    else:
        application = {"resnet50": keras.applications.ResNet50,
                       "resnet101": keras.applications.ResNet101}[backbone]
        source = application(include_top=False, weights=weights, input_shape=tuple(input_shape))
        preprocess = RGBPreprocess("caffe", name="preprocess")
        get = source.get_layer
        units.append(_Unit("stem", _sequence(
            get("conv1_pad"), get("conv1_conv"), get("conv1_bn"), get("conv1_relu"),
            get("pool1_pad"), get("pool1_pool")), 1))
        for stage, blocks in (("conv2", 3), ("conv3", 4), ("conv4", _CONV4_BLOCKS[backbone])):
            for b in range(1, blocks + 1):
                block = Bottleneck.stock(source, f"{stage}_block{b}")
                units.append(_Unit(f"{stage}_block{b}", block, block.weight_layers))
        for b in (1, 2, 3):  # conv5 rebuilt: stride 1, dilation 2 (Sec. 4), stock weights copied later
            block = Bottleneck.new(f"conv5_block{b}", 512, dilation=2, shortcut=b == 1)
            units.append(_Unit(f"conv5_block{b}", block, block.weight_layers))
    width = FEATURE_CHANNELS[backbone] if channels is None else channels
    units.append(_Unit("feat_conv_3x3", keras.layers.Conv2D(
        width, 3, padding="same", dilation_rate=6, activation="relu",
        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
        bias_initializer="zeros", name="feat_conv_3x3"), 1))
    return preprocess, units, source


def _score_unit(num_classes):
    return _Unit("score", keras.layers.Conv2D(
        num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
        bias_initializer="zeros", name="score"), 1)


def _finish(models, backbone, source, frozen_batch_norm):
    """Copy the stock conv5 weights into the rebuilt conv5 (by layer name) and freeze BN."""
    layers = _flat_layers(models)
    if source is not None:
        for name, layer in layers.items():
            if name.startswith("conv5_") and layer.weights:
                layer.set_weights(source.get_layer(name).get_weights())
    frozen = backbone != "small" if frozen_batch_norm is None else frozen_batch_norm
    if frozen:
        for layer in layers.values():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def _flat_layers(models):
    out = {}
    stack = list(models)
    while stack:
        for layer in stack.pop(0).layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif layer.name not in out or not out[layer.name].weights:  # a weighted layer wins a name
                out[layer.name] = layer
    return out


def _frames_input(input_shape):
    return keras.Input(shape=tuple(input_shape), dtype="uint8", name="frames")


def split_points(units):
    """``{task_layers: index}``: N_task = ``units[index:]`` keeps ``task_layers`` conv layers; every
    unit boundary after the stem (Sec. 5, Table 5)."""
    points, count = {}, 0
    for index in range(len(units), 0, -1):
        if index < len(units):
            count += units[index].weight_layers
        points[count] = index
    return points


def feature_network(backbone="resnet50", *, weights=None, input_shape=(None, None, 3), channels=None,
                    frozen_batch_norm=None, name=None):
    """N_feat of Sec. 4: uint8 frames ``(B, H, W, 3)`` -> ReLU features ``(B, ceil(H/16), ceil(W/16),
    channels)`` (1024 for the ResNets, 128 for ``"small"``; ``channels`` overrides).

    Args:
      backbone: ``"resnet50"``, ``"resnet101"`` (keras.applications, conv5 dilated) or ``"small"``.
      weights: ``None`` (random), ``"imagenet"`` (downloads through keras.applications) or the path of a
        weights file of the stock ``include_top=False`` network; conv5 gets the stock conv5 weights,
        ``feat_conv_3x3`` is always random N(0, 0.01) (Sec. 4). Only ``None`` for ``"small"``.
      input_shape: ``(H, W, 3)``, ``None`` for unknown sizes.
      frozen_batch_norm: ``None`` = frozen for the ResNets (DFF's ``use_global_stats``), batch
        statistics for ``"small"``.
    """
    _check_common(backbone, weights, input_shape, channels, frozen_batch_norm)
    preprocess, units, source = _feature_units(
        backbone, weights=weights, input_shape=input_shape, channels=channels)
    frames = _frames_input(input_shape)
    x = preprocess(frames)
    for unit in units:
        x = unit.apply(x)
    model = keras.Model(frames, x, name=name or f"dff_feature_{backbone}")
    _finish([model], backbone, source, frozen_batch_norm)
    return model


def split_networks(backbone, num_classes, *, task_layers=1, weights=None,
                   input_shape=(None, None, 3), channels=None, frozen_batch_norm=None):
    """``(n_feat, n_task)`` of the per-frame segmentation network split after ``task_layers`` learnable
    layers from its end (Sec. 5, Table 5: 0, 1 (default), 5, 12, 21; other unit boundaries too).

    ``n_feat``: uint8 frames -> the propagated tensor at stride 16 (the 1024-d features for
    ``task_layers=1``, the score maps for 0, a ResNet block output for more). ``n_task``: that tensor ->
    logits ``(B, 16 h, 16 w, num_classes)`` (1x1 score conv then parameter-free bilinear upsampling by
    16; crop to the frame with :class:`CropToFrame`, as :func:`segmenter_from_split` does). Layer names
    do not depend on the split, so :func:`transfer_weights` moves weights between splits.

    Args (others as :func:`feature_network`):
      num_classes: score maps of the 1x1 conv (the paper's C + 1; our label sets include background).
      task_layers: learnable layers kept in N_task.
    """
    _check_common(backbone, weights, input_shape, channels, frozen_batch_norm)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    preprocess, units, source = _feature_units(
        backbone, weights=weights, input_shape=input_shape, channels=channels)
    units.append(_score_unit(num_classes))
    points = split_points(units)
    if isinstance(task_layers, bool) or task_layers not in points:
        raise ValueError(f"task_layers must be one of {sorted(points)} for backbone {backbone!r} "
                         f"(Table 5: {TABLE5_SPLITS}); got {task_layers!r}")
    cut = points[task_layers]
    frames = _frames_input(input_shape)
    x = preprocess(frames)
    for unit in units[:cut]:
        x = unit.apply(x)
    n_feat = keras.Model(frames, x, name="dff_feature")
    features = keras.Input(shape=tuple(x.shape[1:]), name="features")
    y = features
    for unit in units[cut:]:
        y = unit.apply(y)
    y = BilinearUpsampling(FEATURE_STRIDE, name="upsampling")(y)
    n_task = keras.Model(features, y, name="dff_task")
    _finish([n_feat, n_task], backbone, source, frozen_batch_norm)
    return n_feat, n_task


def segmenter_from_split(n_feat, n_task, *, name="dff_frame"):
    """The per-frame network ``N_task(N_feat(frame))`` cropped to the frame (:class:`CropToFrame`),
    sharing the weights of ``n_feat`` and ``n_task``."""
    if not isinstance(n_feat, keras.Model) or not isinstance(n_task, keras.Model):
        raise TypeError(f"n_feat and n_task must be keras Models; got {type(n_feat).__name__}, "
                        f"{type(n_task).__name__}")
    frames = keras.Input(shape=tuple(n_feat.input.shape[1:]), dtype="uint8", name="frames")
    scores = n_task(n_feat(frames))
    return keras.Model(frames, CropToFrame(name="crop")([scores, frames]), name=name)


def frame_segmenter(backbone, num_classes, *, task_layers=1, weights=None,
                    input_shape=(None, None, 3), channels=None, frozen_batch_norm=None):
    """The "Frame" baseline of Tables 3-4: uint8 frames ``(B, H, W, 3)`` -> logits ``(B, H, W,
    num_classes)`` at the frame's resolution; ``N_task(N_feat(frame))`` of :func:`split_networks`
    (arguments as there; ``task_layers`` only chooses how the two nested models are cut)."""
    n_feat, n_task = split_networks(
        backbone, num_classes, task_layers=task_layers, weights=weights, input_shape=input_shape,
        channels=channels, frozen_batch_norm=frozen_batch_norm)
    return segmenter_from_split(n_feat, n_task, name=f"dff_frame_{backbone}")


def transfer_weights(source, targets):
    """Copy every weighted layer of ``targets`` (models, nested models included) from the layer of the
    same name in ``source``; returns the number of layers copied. ``ValueError`` when a layer is
    missing from ``source``."""
    if isinstance(targets, keras.Model):
        targets = [targets]
    available = _flat_layers([source])
    copied = 0
    for name, layer in _flat_layers(targets).items():
        if not layer.weights:
            continue
        if name not in available:
            raise ValueError(f"source has no layer named {name!r} for targets")
        layer.set_weights(available[name].get_weights())
        copied += 1
    return copied


#: Table 3 variants by what is kept fixed: ``None`` (DFF, everything trained end to end), ``"n"`` ("DFF
#: fix N": N_feat and N_task fixed, only the flow network trained), ``"f"`` ("DFF fix F": the flow network
#: fixed).
FIX = (None, "n", "f")


def dff_segmenter(backbone, num_classes, *, flow="s", task_layers=1, fix=None, weights=None,
                  frame_size=(None, None), channels=None, frozen_batch_norm=None, flow_order="paper", name=None):
    """Deep Feature Flow for segmentation on frame pairs (Sec. 3, Fig. 2b; training as in Sec. 3).

    ``frames`` uint8 ``(B, 2, H, W, 3)`` = (key frame ``I_k``, current frame ``I_i``), the order of
    :func:`tfvideo.data.pipeline.pair_dataset`, -> logits ``(B, H, W, num_classes)`` of frame ``i``:

        f_k = N_feat(I_k);  (M_{i->k}, S_{i->k}) = F(I_i, I_k);  f_i = W(f_k, M, S)  (Eq. 3);
        y_i = N_task(f_i)

    where the pair's two frames are identical (``i = k``) ``f_i = f_k`` (no propagation, Sec. 3: the
    per-frame training of Fig. 2a; :class:`tfvideo.layers.KeyOrPropagated`). ``F`` is
    :func:`tfvideo.models.flownet.flownet` (``flow``: ``"s"``, ``"half"``, ``"inception"``) with a
    scale field of N_feat's channels, fed (current, key) as the DFF code does; ``W`` is
    :class:`tfvideo.layers.FeatureWarp`. ``H, W`` must be multiples of 128 (FlowNet's size rule), so
    the flow at stride 16 matches the feature map.

    Args (others as :func:`split_networks`):
      flow: the flow network variant.
      fix: ``None``, ``"n"`` or ``"f"`` (:data:`FIX`): Table 3's "DFF", "DFF fix N", "DFF fix F".
        ("SFF" and "DFF separate" train the parts apart: a recipe choice; "Frame" is
        :func:`frame_segmenter`.)
      frame_size: ``(H, W)``, ``None`` for sizes known only at run time.
      flow_order: where F's last flow prediction sits (:data:`tfvideo.models.flownet.FLOW_ORDERS`):
        ``"paper"`` (Sec. 4) or ``"dff_code"`` (the released code's, for its checkpoints).

    Nested models (for weights and the runner): N_feat is layer ``n_feat``, N_task ``n_task``, F
    ``flownet``.
    """
    if fix not in FIX:
        raise ValueError(f"`fix` must be one of {FIX}; got {fix!r}")
    try:
        height, width = frame_size
    except (TypeError, ValueError):
        raise ValueError(f"`frame_size` must be (H, W) with ints or None; got {frame_size!r}") from None
    n_feat, n_task = split_networks(backbone, num_classes, task_layers=task_layers, weights=weights,
                                    input_shape=(height, width, 3), channels=channels,
                                    frozen_batch_norm=frozen_batch_norm)
    n_feat.name, n_task.name = "n_feat", "n_task"
    flow_net = flownet(flow, feature_channels=int(n_feat.output.shape[-1]), frame_size=(height, width),
                       flow_order=flow_order, name="flownet")
    pairs = keras.Input((2, height, width, 3), dtype="uint8", name="frames")
    f_i, current = propagated_features(n_feat, flow_net, pairs)
    logits = CropToFrame(name="crop")([n_task(f_i), current])
    apply_fix(fix, n_feat, n_task, flow_net)
    return keras.Model(pairs, logits, name=name or f"dff_{backbone}_{flow}")


def propagated_features(n_feat, flow_net, pairs):
    """Sec. 3 on symbolic frame pairs ``(B, 2, H, W, 3)`` = (key ``I_k``, current ``I_i``): returns
    ``(f_i, I_i)`` with ``f_i = W(N_feat(I_k), F(I_i, I_k))`` (Eq. 3), or ``N_feat(I_k)`` itself where
    the two frames are identical (:class:`tfvideo.layers.KeyOrPropagated`). Shared by the segmentation
    and the detection models (:mod:`tfvideo.models.rfcn`); the layer names are part of the contract
    (``key_frame``, ``current_frame``, ``current_key``, ``propagate``, ``key_or_propagated``)."""
    key = PairFrame(0, name="key_frame")(pairs)
    current = PairFrame(1, name="current_frame")(pairs)
    f_k = n_feat(key)
    motion = flow_net(PairFrame("swap", name="current_key")(pairs))
    f_i = FeatureWarp(name="propagate")([f_k, motion["flow"], motion["scale"]])
    return KeyOrPropagated(name="key_or_propagated")([pairs, f_k, f_i]), current


def apply_fix(fix, n_feat, n_task, flow_net):
    """Table 3's variants by what is kept fixed (:data:`FIX`): ``"n"`` freezes N_feat and N_task,
    ``"f"`` the flow network, ``None`` nothing."""
    if fix not in FIX:
        raise ValueError(f"`fix` must be one of {FIX}; got {fix!r}")
    if fix == "n":
        n_feat.trainable = n_task.trainable = False
    elif fix == "f":
        flow_net.trainable = False


#: Table 2 of the paper: ``1 / r`` (Eq. 6, FLOPs of N_feat over FLOPs of F) per feature and flow network.
TABLE2 = {"resnet50": {"s": 9.20, "half": 33.56, "inception": 68.97},
          "resnet101": {"s": 12.71, "half": 46.30, "inception": 95.24}}


def cost_model(n_feat, n_task, flow_net):
    """The inference cost of Sec. 3 ("Inference Complexity Analysis") from the built networks' FLOPs
    (:func:`tfvideo.cost.flops`; build them with fixed sizes, e.g. ``dff_segmenter(...,
    frame_size=(1024, 2048))``'s layers ``n_feat``, ``n_task``, ``flownet``).

    Returns a dict of FLOPs per frame: ``feat`` O(N_feat), ``task`` O(N_task), ``flow`` O(F) (the flow
    network with its scale-field branch), ``scale`` O(S) (the scale field's 1x1 conv alone, part of
    ``flow``), ``warp`` O(W) (bilinear: 4 multiply-adds per feature value, plus the multiplication by S:
    ``9 C h w``); ``r`` of Eq. 5 ``(O(F) + O(W) + O(N_task)) / (O(N_feat) + O(N_task))`` and ``r_approx``
    of Eq. 6 ``O(F) / O(N_feat)``."""
    from tfvideo.cost import flops

    h, w, c = (int(d) for d in n_feat.output.shape[1:])
    out = {"feat": flops(n_feat), "task": flops(n_task), "flow": flops(flow_net),
           "scale": flops(flow_net, by_layer=True)[1].get("scale_conv", 0), "warp": 9 * c * h * w}
    out["r"] = (out["flow"] + out["warp"] + out["task"]) / (out["feat"] + out["task"])
    out["r_approx"] = out["flow"] / out["feat"]
    return out


def speedup(r, l):  # noqa: E741  (the paper's name)
    """Eq. 7: the speed-up of Algorithm 1 over per-frame inference with one key frame every ``l``
    frames, ``s = l / (1 + (l - 1) r)``."""
    if isinstance(l, bool) or not isinstance(l, int) or l < 1:
        raise ValueError(f"`l` must be a positive int; got {l!r}")
    return l / (1 + (l - 1) * r)
