"""Ng & Davis 2018 Temporal Difference Network (TDN): Ng's thesis, chapter 5 (digest 5.1-5.7).

Not the 2021 TDN of Wang et al. A TSN-style two-branch network on ``s`` snippets of a video
(digest 5.2, Figures 5.1-5.2):

* **Image subnetwork**: a ResNet-50 (``keras.applications`` layer names and weights) applied to every
  snippet with the *same* weights ("essential", digest 5.2); global average pooling, dropout, a Dense
  classifier per snippet; the ``s`` per-snippet logits are averaged before the softmax (TSN
  consensus).
* **Difference subnetwork**: a second ResNet-50-shaped stack with its *own* weights, initialised as a
  copy of the image subnetwork (cross-modality pretraining, digest 5.4: with ``weights="imagenet"``
  both start from ImageNet). Its input is the difference ``I_{t+1} - I_t`` of the (preprocessed)
  snippets (the ``"input"`` tap), and at every further tap ``l`` the difference of the image
  subnetwork's features, ``f_l(I_{t+1}) - f_l(I_t)``, is *added* element-wise to its own activations
  at the same depth (digest 5.2, "combination is a plain sum"). One difference subnetwork (shared
  weights, digest 5.7 q3: "Figure 5.2 suggests they do") runs on the ``s - 1`` adjacent pairs; its
  logits are averaged over the pairs before the softmax.
* **Output**: the average of the two branches' consensus logits ``(B, num_classes)`` (digest 5.2,
  "simple averaging").

Choices where the thesis is silent (each cited):

* **Tap points** (digest 5.7 q1): ``input`` = the preprocessed snippet (224x224 for a 224 input);
  ``conv1`` = conv1's ReLU output *before* the max-pool (112x112), the layer "right before" that
  reduction of spatial resolution (digest 5.2's rule). The text's list of resolutions (224, 56, 28,
  14) omits 112; the alternative, the max-pooled 56x56 map, breaks the rule and would only be a
  max-pool of this tap at the resolution of ``res2``. ``res2``, ``res3``, ``res4`` = the outputs
  (after the final ReLU) of the last block of conv2, conv3, conv4 (56, 28, 14), each right before the
  next stage's stride-2 block. conv5's 7x7 output is never a tap (digest 5.2).
* **Default taps** ``("input", "conv1", "res2", "res3")``: Table 5.4's best row (83.8 mAP on FCVID),
  and cheaper than ``input - res4`` (no 14x14x1024 difference); the thesis's main FCVID model is
  ``input - res4`` (83.7, within 0.1 of it): pass ``taps=TAPS`` for that one. ``taps`` is any set of tap names that holds ``"input"`` (the difference
  subnetwork needs an input; every row of Table 5.4 has it).
* **Injection point** (digest 5.7 q2): the image difference at tap ``l`` is added to the difference
  subnetwork's activation at the *same* layer (after its ReLU, the same point the tap is taken from),
  and the sum enters layer ``l + 1``; the input difference is the difference subnetwork's input. The
  add layers are named ``diff_{tap}_inject`` inside the difference subnetwork, whose layers are the
  stock names prefixed with ``diff_`` (:data:`DIFF_PREFIX`; the image subnetwork keeps the stock names).
* **Loss** (digest 5.7 q4): the model has one output, the average of the two branches' consensus
  *logits*; train it with one cross-entropy (``from_logits=True``) on that average, the simplest
  reading of "simple averaging", used identically at test time (averaging is over logits, not
  probabilities). The branch logits are the outputs of the layers ``image_consensus`` and
  ``difference_consensus`` (e.g. ``keras.Model(model.input, model.get_layer("image_consensus")
  .output)``) if two losses are wanted.
* **Dropout** (digest 5.4 / 5.7 q8): ``dropout`` (0.8, digest 5.4 for HMDB51 and ACT) before each
  branch's Dense classifier, as in TSN; use 0 for FCVID (digest 5.4, "no dropout").
* **Input** (uint8, named ``frames``): ``modality="rgb"``: ``(B, S, H, W, 3)``, one frame per segment
  (k = 1, digest 5.4); ``modality="flow"``: ``(B, S, 5, H, W, 2)``, 5 consecutive flow images per
  segment, channel 0 = x, 1 = y, discretised to [0, 255] with 128 = zero flow (digest 5.4, [46]),
  stacked by :class:`tfvideo.layers.tdn.StackChannels` into 10 channels ``(x1, y1, ..., x5, y5)``
  (TSN's order). ``S >= 2`` snippets (any number, unknown in signatures; 3 for ACT/FCVID, 2 for
  HMDB51). Preprocessing: RGB as keras.applications' ResNet ("caffe": BGR minus the ImageNet mean);
  flow minus 128 (TSN's flow mean). The ``"small"`` backbone scales both to [-1, 1].
* **Flow initialisation** (digest 5.7 q6): with ``weights`` given, both 10-channel first convolutions
  get TSN's cross-modality initialisation (the RGB kernel averaged over its 3 input channels and
  replicated over the 10); every other weight is copied. Digest 5.4 initialises the flow image
  subnetwork from a flow TSN: load that after building (``model.get_layer("image_subnetwork")``, stock
  layer names).
* **Partial BN** (digest 5.4, 5.7 q11): :func:`set_phase` ``partial_bn=True`` freezes
  (``trainable=False``: inference statistics, fixed gamma/beta, as TSN's partial BN) every
  BatchNormalization of *each* subnetwork except its first one (``conv1_bn``, ``diff_conv1_bn``),
  which keeps batch statistics: the difference subnetwork sees differences, whose statistics are
  unlike ImageNet's, as TSN's flow network does. Off by default (FCVID: "no partial-BN").
* **Two-phase training** (digest 5.4): :func:`set_phase` 1 = the image subnetwork frozen (all of it,
  BN statistics included) except its classifier ``image_logits``; the difference subnetwork and its
  classifier train. Phase 2 = everything trains. Compile after every :func:`set_phase`.
* **Late fusion** (digest 5.3): :func:`fuse_l1` / :class:`tfvideo.layers.tdn.L1FuseScores` and
  :func:`fused_two_stream`.
* **"small" backbone**: a CPU-sized ResNet of the same shape and layer names (conv1 3x3/2 with 32
  filters, max-pool 3x3/2, one bottleneck block per stage with 16, 32, 32, 64 filters, i.e. 64, 128,
  128, 256 output channels, strides 1, 2, 2, 2), for tests and CPU recipes (a quarter of these widths,
  12k parameters, did not learn the built-in set's motion classes: TDN 12.5% vs 31.2% at these). It trains from scratch or from a
  ``.weights.h5`` file of :func:`resnet` ``("small", (H, W, 3))``.

Example
-------
>>> import numpy as np
>>> model = tdn(5, backbone="small", input_shape=(32, 32, 3), dropout=0.0)
>>> model(np.zeros((2, 3, 32, 32, 3), np.uint8)).shape      # 3 snippets
TensorShape([2, 5])
>>> model(np.zeros((2, 2, 32, 32, 3), np.uint8)).shape      # 2 snippets
TensorShape([2, 5])
>>> model = set_phase(model, 1)                            # phase 1: image subnetwork frozen
>>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> fuse_l1([[1.0, -3.0]], [[1.0, 3.0]])                     # late fusion, RGB:flow = 1:1.5
array([[0.25, 0.15]])
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tfvideo.layers.segments import RGBPreprocess, SegmentConsensus
from tfvideo.layers.tdn import (TDN_FUSION_WEIGHTS, FoldSegments, L1FuseScores, StackChannels,
                                TemporalDifference, UnfoldSegments)
from tfvideo.models.resnet import BN_EPSILON as _BN_EPSILON
from tfvideo.models.resnet import Bottleneck

__all__ = ["BACKBONES", "TAPS", "DEFAULT_TAPS", "MODALITIES", "FLOW_FRAMES", "TDN_FUSION_WEIGHTS",
           "DIFF_PREFIX",
           "resnet", "tdn", "set_phase", "partial_bn_layers", "fuse_l1", "fused_two_stream"]

BACKBONES = ("resnet50", "small")
TAPS = ("input", "conv1", "res2", "res3", "res4")
"""Every tap, in depth order (Table 5.4's rows add them one by one)."""
DEFAULT_TAPS = ("input", "conv1", "res2", "res3")
"""Table 5.4's best configuration, ``input - res3`` (83.8 mAP)."""
MODALITIES = ("rgb", "flow")
FLOW_FRAMES = 5
"""Flow images stacked per segment (digest 5.4, k = 5)."""

# (stem filters, stem kernel, ((filters, blocks, stride) of conv2..conv5))
_SPECS = {
    "resnet50": (64, 7, ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))),
    "small": (32, 3, ((16, 1, 1), (32, 1, 2), (32, 1, 2), (64, 1, 2))),
}
_STAGES = ("conv2", "conv3", "conv4", "conv5")
_STAGE_TAP = {"conv2": "res2", "conv3": "res3", "conv4": "res4"}
_IMAGE, _DIFF = "image_subnetwork", "difference_subnetwork"
DIFF_PREFIX = "diff_"
"""Prefix of the difference subnetwork's layer names (``diff_conv1_conv``, ...), so that its variable
paths differ from the image subnetwork's stock ones (e.g. for ``tfvideo.optimizers`` keys)."""


# ----------------------------------------------------------------------------------- backbone ----
def _resnet_graph(backbone, x, *, taps=(), injections=None, prefix=""):
    """Apply a new ResNet (keras.applications layer names after ``prefix``) to ``x``: ``(conv5 map,
    {tap: activation})``.

    ``injections[tap]`` (a tensor) is added to the activation at ``tap`` (layer
    ``{prefix}{tap}_inject``) before it enters the next layer; the returned ``{tap: ...}`` are the
    activations before it."""
    stem, kernel, stages = _SPECS[backbone]
    injections = injections or {}
    found = {}

    def tap(name, y):
        if name in taps:
            found[name] = y
        if name in injections:
            y = keras.layers.Add(name=f"{prefix}{name}_inject")([y, injections[name]])
        return y

    pad = kernel // 2
    x = keras.layers.ZeroPadding2D(pad, name=f"{prefix}conv1_pad")(x)
    x = keras.layers.Conv2D(stem, kernel, strides=2, name=f"{prefix}conv1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{prefix}conv1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{prefix}conv1_relu")(x)
    x = tap("conv1", x)
    x = keras.layers.ZeroPadding2D(1, name=f"{prefix}pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name=f"{prefix}pool1_pool")(x)
    for stage, (filters, blocks, stride) in zip(_STAGES, stages):
        for b in range(1, blocks + 1):
            x = Bottleneck.new(f"{prefix}{stage}_block{b}", filters,
                                stride=stride if b == 1 else 1, shortcut=b == 1)(x)
        if stage in _STAGE_TAP:
            x = tap(_STAGE_TAP[stage], x)
    return x, found


def resnet(backbone="resnet50", input_shape=(None, None, 3), *, name=None):
    """A ResNet without classifier, ``(B, H, W, C) -> (B, H/32, W/32, channels)`` (2048 for ResNet-50,
    64 for ``"small"``), with keras.applications' layer names, random weights.

    For ``"resnet50"`` it is ``keras.applications.ResNet50(include_top=False)`` rebuilt (same layers,
    same names: weights copy across by name). For ``"small"`` its ``.weights.h5`` files are what
    :func:`tdn` accepts as ``weights``."""
    _check_backbone(backbone)
    inputs = keras.Input(tuple(input_shape), name="image")
    x, _ = _resnet_graph(backbone, inputs)
    return keras.Model(inputs, x, name=name or f"{backbone}_resnet")


def _source(backbone, weights, input_shape):
    """The pretrained 3-channel network ``weights`` names (stock layer names), or None."""
    if weights is None:
        return None
    h, w = input_shape[:2]
    if backbone == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(h, w, 3))
    model = resnet("small", (h, w, 3), name="small_source")
    model.load_weights(str(weights))
    return model


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def _copy_weights(source, target, *, prefix="", cross_modality=False):
    """Copy every weighted layer of ``source`` into the layer of the same name (after ``prefix``) of
    ``target``; with ``cross_modality`` the first conv's kernel is averaged over its input channels
    and replicated over the target's (TSN's cross-modality initialisation, digest 5.7 q6)."""
    src = _weighted_layers(source)
    for target_name, layer in _weighted_layers(target).items():
        name = target_name[len(prefix):] if target_name.startswith(prefix) else target_name
        if name not in src:
            raise ValueError(f"{source.name} has no layer {name!r} to copy into {target.name}")
        values = src[name].get_weights()
        if cross_modality and name == "conv1_conv":
            channels = layer.weights[0].shape[2]
            values[0] = np.repeat(values[0].mean(axis=2, keepdims=True), channels, axis=2)
        layer.set_weights(values)


# ------------------------------------------------------------------------------------ checks ----
def _check_backbone(backbone):
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}; got {backbone!r}")


def _normalise_taps(taps):
    if isinstance(taps, str) or not isinstance(taps, (list, tuple)):
        raise ValueError(f"taps must be a list or tuple of names from {TAPS}; got {taps!r}")
    unknown = [t for t in taps if t not in TAPS]
    if unknown or len(set(taps)) != len(taps):
        raise ValueError(f"taps must be distinct names from {TAPS}; got {taps!r}")
    if "input" not in taps:
        raise ValueError(f"taps must contain 'input' (the difference subnetwork's input, digest 5.2); "
                         f"got {taps!r}")
    return tuple(t for t in TAPS if t in taps)


def _check_args(num_classes, backbone, taps, segments, dropout, weights, input_shape, modality):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
    _check_backbone(backbone)
    taps = _normalise_taps(taps)
    if segments is not None and (not isinstance(segments, int) or isinstance(segments, bool)
                                 or segments < 2):
        raise ValueError(f"segments must be an int >= 2 or None (any number); got {segments!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1); got {dropout!r}")
    if weights is not None and not (weights == "imagenet" and backbone == "resnet50") \
            and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
        allowed = "None, 'imagenet' or" if backbone == "resnet50" else "None or"
        raise ValueError(f"weights must be {allowed} an existing weights file for backbone "
                         f"{backbone!r}; got {weights!r}")
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or input_shape[2] != 3
            or any(d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 32)
                   for d in input_shape[:2])):
        raise ValueError(f"input_shape must be (height, width, 3) with ints >= 32 or None; got "
                         f"{input_shape!r}")
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}; got {modality!r}")
    return taps


# ------------------------------------------------------------------------------------- model ----
def _subnetworks(backbone, taps, image_shape, weights):
    """(image subnetwork, difference subnetwork) as functional models, initialised (digest 5.4)."""
    image_in = keras.Input(image_shape, name="snippet")
    conv5, found = _resnet_graph(backbone, image_in, taps=taps)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(conv5)
    feature_taps = [t for t in taps if t != "input"]
    image = keras.Model(image_in, [found[t] for t in feature_taps] + [pooled], name=_IMAGE)

    diff_inputs = {"input": keras.Input(image_shape, name="input_difference")}
    for t, y in zip(feature_taps, image.outputs[:-1]):
        diff_inputs[t] = keras.Input(tuple(y.shape[1:]), name=f"{t}_difference")
    conv5, _ = _resnet_graph(backbone, diff_inputs["input"], prefix=DIFF_PREFIX,
                             injections={t: diff_inputs[t] for t in feature_taps})
    pooled = keras.layers.GlobalAveragePooling2D(name=f"{DIFF_PREFIX}avg_pool")(conv5)
    difference = keras.Model([diff_inputs[t] for t in taps], pooled, name=_DIFF)

    source = _source(backbone, weights, image_shape)
    if source is not None:
        _copy_weights(source, image, cross_modality=image_shape[2] != 3)
    _copy_weights(image, difference, prefix=DIFF_PREFIX)  # starts as the image one (digest 5.4)
    return image, difference


def tdn(num_classes, *, backbone="resnet50", taps=DEFAULT_TAPS, segments=None, dropout=0.8, weights=None,
        input_shape=(224, 224, 3), modality="rgb", name=None):
    """The Ng & Davis 2018 TDN (module docstring): uint8 ``frames`` -> logits ``(B, num_classes)``.

    Args:
      num_classes: number of classes (>= 2).
      backbone: ``"resnet50"`` (digest 5.2) or ``"small"`` (CPU-sized, same layer names and taps).
      taps: tap names from :data:`TAPS` (must hold ``"input"``); default :data:`DEFAULT_TAPS`.
      segments: the number of snippets ``S >= 2`` the ``frames`` input fixes, or None (default):
        any ``S >= 2``, as exported signatures need (the thesis trains with 3 for ACT/FCVID and 2 for
        HMDB51, digest 5.2: that is the data pipeline's choice; a fixed ``S`` refuses other counts).
      dropout: drop probability before both classifiers (0.8, digest 5.4).
      weights: None (random), ``"imagenet"`` (resnet50; downloads through keras.applications), or a
        weights file of the 3-channel stock network (``keras.applications.ResNet50(include_top=False)``
        or :func:`resnet` ``("small")``); both subnetworks start from it (digest 5.4), 10-channel
        first convolutions by cross-modality averaging (digest 5.7 q6). With None the difference
        subnetwork still starts as a copy of the (random) image subnetwork.
      input_shape: ``(H, W, 3)`` of one frame (ints >= 32 or None); for flow the frame is 2 channels
        (the 3 stands for the RGB network the weights come from).
      modality: ``"rgb"``: frames ``(B, S, H, W, 3)``; ``"flow"``: ``(B, S, 5, H, W, 2)``.
      name: model name (default ``tdn_{modality}``).

    Returns:
      A ``keras.Model``; its layers ``image_subnetwork`` and ``difference_subnetwork`` are the two
      subnetworks (functional models), ``image_logits``/``difference_logits`` their classifiers,
      ``image_consensus``/``difference_consensus`` the branch logits ``(B, num_classes)``.
    """
    taps = _check_args(num_classes, backbone, taps, segments, dropout, weights, input_shape, modality)
    h, w = input_shape[:2]
    if modality == "rgb":
        frames = keras.Input((segments, h, w, 3), dtype="uint8", name="frames")
        x = RGBPreprocess("caffe" if backbone == "resnet50" else "tf", name="preprocess")(frames)
        channels = 3
    else:
        frames = keras.Input((segments, FLOW_FRAMES, h, w, 2), dtype="uint8", name="frames")
        x = StackChannels(name="stack_flow")(frames)
        scale, offset = (1.0, -128.0) if backbone == "resnet50" else (1 / 127.5, -1.0)
        x = keras.layers.Rescaling(scale, offset, name="preprocess")(x)
        channels = 2 * FLOW_FRAMES
    image, difference = _subnetworks(backbone, taps, (h, w, channels), weights)

    outs = image(FoldSegments(name="fold_snippets")(x))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    *tap_maps, features = outs
    input_diff = TemporalDifference(name="input_difference")(x)
    diffs = [FoldSegments(name="fold_input_difference")(input_diff)]
    for t, y in zip([t for t in taps if t != "input"], tap_maps):
        y = UnfoldSegments(name=f"unfold_{t}")([y, x])
        y = TemporalDifference(name=f"{t}_difference")(y)
        diffs.append(FoldSegments(name=f"fold_{t}_difference")(y))
    diff_features = difference(diffs)

    def head(branch, feats, reference):
        y = keras.layers.Dropout(dropout, name=f"{branch}_dropout")(feats)
        y = keras.layers.Dense(num_classes, name=f"{branch}_logits")(y)
        y = UnfoldSegments(name=f"unfold_{branch}_logits")([y, reference])
        return SegmentConsensus(name=f"{branch}_consensus")(y)

    image_logits = head("image", features, x)
    diff_logits = head("difference", diff_features, input_diff)
    logits = keras.layers.Average(name="logits")([image_logits, diff_logits])
    return keras.Model(frames, logits, name=name or f"tdn_{modality}")


# -------------------------------------------------------------------------------- training ----
def partial_bn_layers(subnetwork):
    """The BatchNormalization layers partial BN freezes in ``subnetwork``: all but the first."""
    bns = [layer for layer in subnetwork.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return bns[1:]


def set_phase(model, phase, *, partial_bn=False):
    """Set the trainable flags of a :func:`tdn` model for a training phase (digest 5.4); returns it.

    * ``phase=1``: the image subnetwork frozen (``trainable=False``: its BN layers run in inference
      mode too); its classifier ``image_logits``, the difference subnetwork and its classifier train.
    * ``phase=2``: everything trains (joint fine-tuning).
    * ``partial_bn=True``: in addition every BatchNormalization of each subnetwork except the first
      (``conv1_bn`` / ``diff_conv1_bn``) is frozen: inference statistics, fixed gamma/beta (digest
      5.4, 5.7 q11).

    Compile (again) after calling it: Keras fixes the trainable variables when it compiles."""
    if phase not in (1, 2) or isinstance(phase, bool):
        raise ValueError(f"phase must be 1 (image subnetwork frozen) or 2 (joint); got {phase!r}")
    if partial_bn not in (True, False):
        raise ValueError(f"partial_bn must be True or False; got {partial_bn!r}")
    try:
        image, difference = model.get_layer(_IMAGE), model.get_layer(_DIFF)
    except ValueError:
        raise ValueError("model must be built by tfvideo.models.tdn.tdn (no image_subnetwork / "
                         "difference_subnetwork layers)") from None
    # every layer, recursively; TF's AutoTrackable skips `x.trainable = True` when it already is
    # True (an `x.attr = x.attr` short cut), which would leave frozen sub-layers frozen
    model.trainable = False
    model.trainable = True
    if partial_bn:
        for sub in (image, difference):
            for layer in partial_bn_layers(sub):
                layer.trainable = False
    if phase == 1:
        image.trainable = False
    return model


# ----------------------------------------------------------------------------------- fusion ----
def fuse_l1(rgb_scores, flow_scores, weights=TDN_FUSION_WEIGHTS, *, epsilon=1e-12):
    """Late two-stream fusion (digest 5.3): ``(w_rgb s_rgb / ||s_rgb||_1 + w_flow s_flow /
    ||s_flow||_1) / (w_rgb + w_flow)`` per example, on pre-softmax scores ``(N, C)`` (or ``(C,)``).

    The scores of each stream are l1-normalised per example (``epsilon`` guards zeros), then averaged
    with weights RGB:flow = 1:1.5 by default. Returns float64 NumPy scores of the input shape."""
    rgb, flow = np.asarray(rgb_scores, np.float64), np.asarray(flow_scores, np.float64)
    if rgb.shape != flow.shape or rgb.ndim not in (1, 2):
        raise ValueError(f"rgb_scores and flow_scores must have the same shape (N, C) or (C,); got "
                         f"{rgb.shape} and {flow.shape}")
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (2,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be two non-negative numbers (rgb, flow) with a positive sum; "
                         f"got {weights!r}")

    def normalise(s):
        return s / np.maximum(np.abs(s).sum(axis=-1, keepdims=True), epsilon)

    return (w[0] * normalise(rgb) + w[1] * normalise(flow)) / w.sum()


def fused_two_stream(rgb_model, flow_model, *, weights=TDN_FUSION_WEIGHTS, name="tdn_two_stream"):
    """One model of an RGB and a flow TDN: inputs ``frames`` (the RGB model's) and ``flows`` (the flow
    model's), output their :class:`~tfvideo.layers.tdn.L1FuseScores` (digest 5.3), for export."""
    frames = keras.Input(rgb_model.input.shape[1:], dtype="uint8", name="frames")
    flows = keras.Input(flow_model.input.shape[1:], dtype="uint8", name="flows")
    fused = L1FuseScores(weights, name="fusion")([rgb_model(frames), flow_model(flows)])
    return keras.Model([frames, flows], fused, name=name)
