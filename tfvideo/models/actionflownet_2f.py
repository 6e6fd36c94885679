"""ActionFlowNet's two-frame models (Ng's thesis, chapter 4.3, digest 4.3): FlowNet on a 2D ResNet-18,
ActionFlowNet-2F, the Stacked model and the "Scratch" baseline of Table 4.1.

Public names:

* :func:`flownet_resnet18`: the two-frame flow estimator (digest 4.3, "FlowNet"): ``frames`` uint8
  ``(B, 2, H, W, 3)`` -> four flows ``{"flow_1": (B, H/4, W/4, 2), "flow_2": H/8, "flow_3": H/16,
  "flow_4": H/32}`` in pixels of the input frames.
* :func:`actionflownet_2f`: the same network plus a classifier on the encoder's last map (digest 4.3,
  Figure 4.3): outputs ``{"logits", "flow_1", ..., "flow_4"}``; Eq. 4.4 via :func:`flow_losses`.
* :func:`classifier_model` (from :mod:`tfvideo.models.actionflownet`): encoder + classifier only,
  the decoder dropped, same weights.
* :func:`stacked`: a frozen FlowNet's finest flow feeding a ResNet-18 without conv1/pool1 (digest 4.3,
  "Stacked Model", Figure 4.2).
* :func:`resnet18_classifier`: the "Scratch" baseline (Table 4.1): a 2D ResNet-18 classifier on one RGB
  frame or on the 6-channel frame pair.
* :data:`MULTISCALE_ALPHAS`, :func:`flow_losses`: the weights ``alpha_r`` of Eq. 4.3 and the
  ``loss`` / ``loss_weights`` dicts for ``model.compile``.

Train ActionFlowNet-2F with Eq. 4.4 (``CE + lam sum_r alpha_r EPE_r``)::

    model = actionflownet_2f(101, input_size=(64, 64), widths=(8, 16, 32, 64))
    loss, loss_weights = flow_losses(MULTISCALE_ALPHAS, lam=1.0, classification=True)
    model.compile(keras.optimizers.Adam(1e-4), loss=loss, loss_weights=loss_weights)
    # y = {"logits": labels (B,), "flow_1" ... "flow_4": the SAME (B, H, W, 3) = (u, v, valid) target}

Choices where the thesis is silent (digest 4.7; each cited):

* **Encoder** (digest 4.3): the two frames, ``x / 127.5 - 1`` each (the multi-frame model's
  normalisation, :class:`tfvideo.layers.RGBPreprocess` ``"tf"``, digest 4.7 q10), are stacked along
  channels ``[frame0 RGB, frame1 RGB]`` (6 channels, FlowNet-S style; layers ``preprocess``,
  ``pair_permute``, ``pair``) and fed to ResNet-18 in 2D (:func:`tfvideo.models.actionflownet.
  resnet18_encoder`, its blocks, padding and BN): conv1 7x7/2 (6 input channels), pool1 3x3/2,
  conv2_x ... conv5_x, two basic blocks each. ``input_size`` must be multiples of 32.
* **Decoder** (digest 4.7 q1; FlowNet-S's refinement, :mod:`tfvideo.models.flownet`, on ResNet's
  skips): ``predict_flow5`` (3x3 conv to 2 channels) on conv5 (1/32); then for level ``l`` = 4, 3, 2:
  ``deconv{l}`` = ``Conv2DTranspose(4x4, stride 2)`` of the previous level's features + LeakyReLU 0.1
  (widths ``widths[2], widths[1], widths[0]``: those of the skip it meets, as the multi-frame decoder),
  ``upsample_flow{l+1}to{l}`` = ``Conv2DTranspose(2, 4x4, stride 2)`` of the previous raw flow,
  ``concat{l}`` = ``[conv{l} skip, deconv{l}, upsampled flow]`` (FlowNet-S's order) and
  ``predict_flow{l}`` (3x3 conv to 2). No batch norm in the decoder (FlowNet has none).
* **Which four flows** (digest 4.3 "four flow outputs", finest 1/4 = "4 times lower resolution";
  digest 4.7 q1): the levels of conv5, conv4, conv3 and conv2, i.e. 1/32, 1/16, 1/8, 1/4 of the input
  (conv1's 1/2 level would give a fifth, finer flow than the thesis's finest). Names: ``flow_1`` is the
  finest (1/4), ``flow_4`` the coarsest (1/32): ``r`` of Eq. 4.3 counts from the finest.
* **Flow units** (digest 4.7 q4): each ``predict_flow{l}`` (kernel initialised to zero: training starts
  from the zero flow, our choice, see :mod:`tfvideo.models.actionflownet`) predicts ``flow / flow_scale`` (FlowNet's
  20); the outputs ``flow_r`` (:class:`tfvideo.layers.v2v.AlphaScale` ``x flow_scale``) are flows in
  **pixels of the input frames** at every resolution (not divided by the level's stride), project
  convention (``[..., 0]`` = x, ``frame1(p + flow(p)) ~= frame0(p)``). The upsampled flow passed to
  the next level is the raw ``flow / flow_scale``, as in FlowNet. The target is the full-resolution
  ``(B, H, W, 3)`` = ``(u, v, valid)``; :class:`tfvideo.losses.FlowEndPointError` block-averages it to
  each head's resolution (valid vectors only, values not rescaled).
* **alpha_r** (digest 4.7 q3, q5): :data:`MULTISCALE_ALPHAS` ``= {flow_1: 1, flow_2: 0.5, flow_3:
  0.25, flow_4: 0.25}``. FlowNet's weights (0.005, 0.01, 0.02, 0.08 for its 1/4 ... 1/32 flows, then
  0.32 at 1/64) multiply EPEs *summed* over pixels; a level has 4 times fewer pixels than the next
  finer one, so with our per-pixel *means* (``FlowEndPointError``'s default) the same weighting is
  ``0.005 N, 0.01 N/4, 0.02 N/16, 0.08 N/64`` = ``N (0.005, 0.0025, 0.00125, 0.00125)``, normalised to
  the finest: (1, 0.5, 0.25, 0.25). lambda (``lam``) defaults to 1.
* **Classifier** (digest 4.3, 4.5): global average pool of conv5, Dropout(0.5), Dense ``logits``
  (softmax in the loss), layer names ``avg_pool``, ``dropout``, ``logits`` as the multi-frame model.
* **Stacked** (digest 4.3, Figure 4.2; Table 4.1: FlowNet trained on UCF101 and *fixed*): the given
  FlowNet becomes ``trainable = False`` (its BN runs in inference mode) and is nested as one layer;
  its finest flow ``flow_1`` ``(H/4, W/4, 2)`` is divided by ``flow_scale`` (back to FlowNet's raw
  ``flow / 20`` scale, values ~ [-1, 1] like the normalised RGB inputs; layer ``flow_input``) and goes
  to ResNet-18 without conv1 and pool1 (``resnet18_encoder(stem=False)``, layer names prefixed
  ``stacked_``). The 2 -> ``widths[0]`` channel entry is the first block's own projection shortcut
  (``stacked_conv2_block1_0_conv``, 1x1 + BN; its 3x3 convolution takes the 2 channels too): no extra
  layer, so the classifier is exactly ResNet-18 minus conv1/pool1.
* **Scratch** (Table 4.1): :func:`resnet18_classifier` with ``in_frames=1`` takes ``(B, 1, H, W, 3)``
  (one RGB frame; the thesis's Scratch), ``in_frames=2`` the pair stacked to 6 channels like FlowNet
  (FlowNet fine-tune's architecture: :func:`classifier_model` of :func:`actionflownet_2f` is the same
  network).
* Parameters at ResNet-18 widths (``tests/models/test_actionflownet_2f.py``): encoder 11.19 M,
  decoder 3.44 M; ActionFlowNet-2F / Stacked = 0.57 ("about half", digest 4.3), Stacked / ResNet-18
  = 2.3 ("about 2x", digest 4.3).
* **Small widths on CPU**: TF 2.21's oneDNN ``Conv2D`` corrupts the heap (random aborts) when it
  computes the gradients of a 1x1 stride-2 convolution with fewer than 16 input channels; the projection
  shortcuts of :class:`~tfvideo.models.actionflownet.BasicBlock` therefore subsample first and convolve
  1x1 at stride 1 (the same function and weights), so ``SMALL_WIDTHS`` ``(8, 16, 32, 64)`` train safely.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from tfvideo.layers.segments import RGBPreprocess
from tfvideo.layers.v2v import AlphaScale
from tfvideo.losses import FlowEndPointError
from tfvideo.models.actionflownet import RESNET18_WIDTHS, classifier_model, resnet18_encoder

__all__ = ["FLOW_OUTPUTS", "FLOW_STRIDES", "MULTISCALE_ALPHAS", "flow_losses", "flownet_resnet18",
           "actionflownet_2f", "classifier_model", "stacked", "resnet18_classifier"]

FLOW_OUTPUTS = ("flow_1", "flow_2", "flow_3", "flow_4")
"""Output names of the four flows, finest first (Eq. 4.3's r = 1 ... 4)."""
FLOW_STRIDES = {"flow_1": 4, "flow_2": 8, "flow_3": 16, "flow_4": 32}
"""Each flow's resolution as a stride of the input (1/4 ... 1/32)."""
MULTISCALE_ALPHAS = {"flow_1": 1.0, "flow_2": 0.5, "flow_3": 0.25, "flow_4": 0.25}
"""alpha_r of Eq. 4.3 for per-pixel mean EPEs: FlowNet's weights converted from sums (module docstring)."""

# decoder level (encoder stage l, at 1/2^l) of each output
_LEVEL = {"flow_1": 2, "flow_2": 3, "flow_3": 4, "flow_4": 5}


# ------------------------------------------------------------------------------ argument checks ----
def _check_int(value, arg, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{arg}` must be an int >= {minimum}; got {value!r}")
    return value


def _check_number(value, arg, lo=None, hi=None, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{arg}` must be a number; got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"`{arg}` must be a positive number; got {value!r}")
    if lo is not None and not lo <= value < hi:
        raise ValueError(f"`{arg}` must be in [{lo}, {hi}); got {value!r}")
    return float(value)


def _check_size(input_size):
    if (not isinstance(input_size, (list, tuple)) or len(input_size) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 32 and d % 32 == 0
                       for d in input_size)):
        raise ValueError(f"`input_size` must be (H, W), positive multiples of 32 (the encoder's stride); "
                         f"got {input_size!r}")
    return tuple(input_size)


def _check_widths(widths):
    if not isinstance(widths, (list, tuple)) or len(widths) != 4:
        raise ValueError(f"`widths` must be 4 positive ints (conv2_x ... conv5_x); got {widths!r}")
    for w in widths:
        _check_int(w, "widths")
    return tuple(widths)


# ------------------------------------------------------------------------------------- pieces ----
def _frames_input(input_size, in_frames):
    """``frames`` uint8 ``(B, in_frames, H, W, 3)`` -> ``x / 127.5 - 1`` stacked along channels:
    ``(B, H, W, 3 in_frames)`` = ``[frame0 RGB, frame1 RGB, ...]`` (digest 4.3, 6 x 224 x 224)."""
    frames = keras.Input((in_frames, *input_size, 3), dtype="uint8", name="frames")
    x = RGBPreprocess("tf", name="preprocess")(frames)
    x = keras.layers.Permute((2, 3, 1, 4), name="pair_permute")(x)          # (B, H, W, F, 3)
    x = keras.layers.Reshape((*input_size, 3 * in_frames), name="pair")(x)  # frame-major channels
    return frames, x


def _classifier(x, num_classes, dropout, prefix=""):
    y = keras.layers.GlobalAveragePooling2D(name=f"{prefix}avg_pool")(x)
    y = keras.layers.Dropout(dropout, name=f"{prefix}dropout")(y)
    return keras.layers.Dense(num_classes, name=f"{prefix}logits")(y)


def _flow_decoder(taps, widths, flow_scale):
    """FlowNet-S refinement on ResNet-18's skips (module docstring, "Decoder") -> ``{flow_r: tensor}``
    in input pixels, ``flow_4`` at conv5's 1/32 ... ``flow_1`` at conv2's 1/4."""
    x = taps["conv5"]
    # zero-initialised heads: training starts from the zero flow (as actionflownet.py's predict_flow)
    raw = {5: keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", name="predict_flow5")(x)}
    for level in (4, 3, 2):
        x = keras.layers.Conv2DTranspose(widths[level - 2], 4, strides=2, padding="same",
                                         kernel_initializer="he_normal", name=f"deconv{level}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"deconv{level}_relu")(x)
        up = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same",
                                          name=f"upsample_flow{level + 1}to{level}")(raw[level + 1])
        x = keras.layers.Concatenate(name=f"concat{level}")([taps[f"conv{level}"], x, up])
        raw[level] = keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros",
                                         name=f"predict_flow{level}")(x)
    return {out: AlphaScale(flow_scale, name=out)(raw[_LEVEL[out]]) for out in FLOW_OUTPUTS}


# ------------------------------------------------------------------------------------- losses ----
def flow_losses(alphas=None, lam=1.0, *, classification=False, reduction_over_pixels="mean"):
    """The ``loss`` and ``loss_weights`` dicts of Eq. 4.3 (flow only) or Eq. 4.4 (``classification``).

    Every flow output ``flow_r`` gets :class:`tfvideo.losses.FlowEndPointError` with weight
    ``lam * alpha_r``; Keras then minimises ``sum_r lam alpha_r EPE_r`` (+ the cross-entropy of
    ``logits`` with weight 1 when ``classification``: Eq. 4.4). Feed the same full-resolution target
    ``(B, H, W, 3)`` = ``(u, v, valid)`` (input pixels) to every ``flow_r``: the loss block-averages it
    to the head's resolution.

    Args:
      alphas: ``{"flow_1": a1, ..., "flow_4": a4}`` or 4 numbers finest first; default
        :data:`MULTISCALE_ALPHAS` (digest 4.7 q3: the thesis gives none).
      lam: lambda of Eq. 4.4 (not given, digest 4.7 q3; 1 by default).
      classification: add ``"logits"``: ``SparseCategoricalCrossentropy(from_logits=True)``, weight 1.
      reduction_over_pixels: ``FlowEndPointError``'s ``"mean"`` (default; the alphas above assume it)
        or ``"sum"`` (Eq. 4.3 literally).

    Returns:
      ``(loss, loss_weights)``: two dicts keyed by output name.

    >>> loss, weights = flow_losses(lam=0.5)
    >>> weights
    {'flow_1': 0.5, 'flow_2': 0.25, 'flow_3': 0.125, 'flow_4': 0.125}
    """
    if alphas is None:
        alphas = MULTISCALE_ALPHAS
    if isinstance(alphas, Mapping):
        if set(alphas) != set(FLOW_OUTPUTS):
            raise ValueError(f"`alphas` must have the keys {FLOW_OUTPUTS}; got {sorted(alphas)}")
        alphas = [alphas[k] for k in FLOW_OUTPUTS]
    elif not isinstance(alphas, (list, tuple)) or len(alphas) != 4:
        raise ValueError(f"`alphas` must be a dict over {FLOW_OUTPUTS} or 4 numbers (finest first); "
                         f"got {alphas!r}")
    alphas = [_check_number(a, "alphas") for a in alphas]
    if min(alphas) < 0:
        raise ValueError(f"`alphas` must be >= 0; got {alphas}")
    lam = _check_number(lam, "lam")
    if lam < 0:
        raise ValueError(f"`lam` must be >= 0; got {lam}")
    loss = {k: FlowEndPointError(reduction_over_pixels=reduction_over_pixels, name=f"{k}_epe")
            for k in FLOW_OUTPUTS}
    weights = {k: lam * a for k, a in zip(FLOW_OUTPUTS, alphas)}
    if classification:
        loss = {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True), **loss}
        weights = {"logits": 1.0, **weights}
    return loss, weights


# ------------------------------------------------------------------------------------- models ----
def flownet_resnet18(*, input_size=(224, 224), widths=RESNET18_WIDTHS, flow_scale=20.0,
                     name="flownet_resnet18"):
    """The two-frame FlowNet of digest 4.3 on a 2D ResNet-18 encoder (module docstring for every choice).

    ``frames`` uint8 ``(B, 2, H, W, 3)`` (two consecutive RGB frames; flow from ``frames[:, 0]`` to
    ``frames[:, 1]``) -> ``x / 127.5 - 1``, stacked to ``(B, H, W, 6)`` -> ResNet-18 (conv5
    ``(H/32, W/32, widths[3])``) -> deconvolutional decoder with skips -> four flows in pixels of the
    input frames:

    ``flow_1`` ``(B, H/4, W/4, 2)`` (finest, digest 4.3), ``flow_2`` ``H/8``, ``flow_3`` ``H/16``,
    ``flow_4`` ``(B, H/32, W/32, 2)``.

    Args:
      input_size: ``(H, W)``, multiples of 32 (224 x 224, digest 4.3).
      widths: conv2_x ... conv5_x channels (ResNet-18's (64, 128, 256, 512); (8, 16, 32, 64) on CPU).
      flow_scale: each head predicts ``flow / flow_scale`` (FlowNet's 20, digest 4.7 q4).
      name: model name.

    Returns:
      ``keras.Model`` with dict output ``{"flow_1", "flow_2", "flow_3", "flow_4"}``; compile with
      ``flow_losses()`` (Eq. 4.3).

    >>> m = flownet_resnet18(input_size=(64, 64), widths=(4, 4, 4, 4))
    >>> {k: tuple(v.shape) for k, v in m.output.items()}
    {'flow_1': (None, 16, 16, 2), 'flow_2': (None, 8, 8, 2), 'flow_3': (None, 4, 4, 2), 'flow_4': (None, 2, 2, 2)}
    """
    input_size = _check_size(input_size)
    widths = _check_widths(widths)
    flow_scale = _check_number(flow_scale, "flow_scale", positive=True)
    frames, x = _frames_input(input_size, 2)
    taps = resnet18_encoder(x, dims=2, widths=widths)
    return keras.Model(frames, _flow_decoder(taps, widths, flow_scale), name=name)


def actionflownet_2f(num_classes, *, input_size=(224, 224), widths=RESNET18_WIDTHS, dropout=0.5,
                     flow_scale=20.0, name="actionflownet_2f"):
    """ActionFlowNet-2F (digest 4.3, Figure 4.3): :func:`flownet_resnet18` plus a classifier on conv5.

    ``frames`` uint8 ``(B, 2, H, W, 3)`` -> ``{"logits": (B, num_classes), "flow_1": (B, H/4, W/4, 2),
    ..., "flow_4": (B, H/32, W/32, 2)}`` (flows in input pixels). The classifier is global average
    pooling of conv5, Dropout(``dropout``), Dense (``avg_pool``, ``dropout``, ``logits``). Train with
    Eq. 4.4 per frame pair: ``flow_losses(alphas, lam, classification=True)``. At inference drop the
    decoder: :func:`classifier_model` (identical logits, shared weights).

    Args:
      num_classes: >= 2 (101 for UCF101).
      input_size, widths, flow_scale: as :func:`flownet_resnet18`.
      dropout: rate before the classifier (0.5, digest 4.5).
      name: model name.

    >>> m = actionflownet_2f(5, input_size=(64, 64), widths=(4, 4, 4, 4))
    >>> sorted(m.output)
    ['flow_1', 'flow_2', 'flow_3', 'flow_4', 'logits']
    >>> classifier_model(m).output.shape
    (None, 5)
    """
    _check_int(num_classes, "num_classes", 2)
    input_size = _check_size(input_size)
    widths = _check_widths(widths)
    dropout = _check_number(dropout, "dropout", 0.0, 1.0)
    flow_scale = _check_number(flow_scale, "flow_scale", positive=True)
    frames, x = _frames_input(input_size, 2)
    taps = resnet18_encoder(x, dims=2, widths=widths)
    logits = _classifier(taps["conv5"], num_classes, dropout)
    flows = _flow_decoder(taps, widths, flow_scale)
    return keras.Model(frames, {"logits": logits, **flows}, name=name)


def stacked(num_classes, flownet, *, widths=RESNET18_WIDTHS, dropout=0.5, flow_scale=None, name="stacked"):
    """The Stacked model (digest 4.3, Figure 4.2): a fixed FlowNet, then a ResNet-18 on its flow.

    ``frames`` uint8 ``(B, 2, H, W, 3)`` -> ``flownet`` (set ``trainable = False`` here: Table 4.1
    trains only the classifier) -> ``flow_1`` ``(B, H/4, W/4, 2)`` / ``flow_scale`` -> ResNet-18 from
    conv2_x on (conv1 and pool1 removed, digest 4.3; the first block's projection takes 2 ->
    ``widths[0]`` channels) -> conv5 ``(B, H/32, W/32, widths[3])`` -> average pool, Dropout, Dense
    ``logits`` ``(B, num_classes)``. Single output (not a dict).

    Args:
      num_classes: >= 2.
      flownet: a :func:`flownet_resnet18` (or :func:`actionflownet_2f`) model with input ``frames``
        ``(B, 2, H, W, 3)`` and a ``flow_1`` output; nested as a layer of this model (named by its own
        name) and frozen in place.
      widths: the classifier ResNet's conv2_x ... conv5_x channels.
      dropout: rate before the classifier (0.5).
      flow_scale: the flow is divided by it before the classifier; None: ``flownet``'s own (the
        ``alpha`` of its ``flow_1`` layer), so the classifier sees FlowNet's raw ``flow / 20``.
      name: model name.

    >>> fn = flownet_resnet18(input_size=(64, 64), widths=(4, 4, 4, 4))
    >>> m = stacked(5, fn, widths=(4, 4, 4, 4))
    >>> m.output.shape, fn.trainable
    ((None, 5), False)
    """
    _check_int(num_classes, "num_classes", 2)
    widths = _check_widths(widths)
    dropout = _check_number(dropout, "dropout", 0.0, 1.0)
    if not isinstance(flownet, keras.Model) or not isinstance(flownet.output, dict) \
            or "flow_1" not in flownet.output:
        raise ValueError("`flownet` must be a keras.Model from flownet_resnet18() or actionflownet_2f() "
                         f"(dict output with 'flow_1'); got {getattr(flownet, 'name', type(flownet).__name__)!r}")
    shape = tuple(flownet.input.shape)
    if len(shape) != 5 or shape[1] != 2 or shape[-1] != 3:
        raise ValueError(f"`flownet` must take frames (B, 2, H, W, 3); its input is {shape}")
    if flow_scale is None:
        layer = flownet.get_layer("flow_1")
        flow_scale = layer.alpha if isinstance(layer, AlphaScale) else 20.0
    flow_scale = _check_number(flow_scale, "flow_scale", positive=True)
    flownet.trainable = False
    frames = keras.Input(shape[1:], dtype="uint8", name="frames")
    flow = flownet(frames)["flow_1"]
    x = AlphaScale(1.0 / flow_scale, name="flow_input")(flow)
    taps = resnet18_encoder(x, dims=2, widths=widths, stem=False, prefix="stacked_")
    logits = _classifier(taps["conv5"], num_classes, dropout)
    return keras.Model(frames, logits, name=name)


def resnet18_classifier(num_classes, *, input_size=(224, 224), widths=RESNET18_WIDTHS, in_frames=1,
                        dropout=0.5, name="resnet18_classifier"):
    """The "Scratch" baseline of Table 4.1: a 2D ResNet-18 classifier trained from random weights.

    ``frames`` uint8 ``(B, in_frames, H, W, 3)`` -> ``x / 127.5 - 1``, frames stacked along channels
    (``3 in_frames`` channels) -> ResNet-18 (conv1 ... conv5) -> average pool, Dropout, Dense ``logits``
    ``(B, num_classes)``. ``in_frames=1``: one RGB frame (the thesis's Scratch); ``in_frames=2``: the
    6-channel pair, the architecture of :func:`classifier_model` of :func:`actionflownet_2f`.

    >>> resnet18_classifier(5, input_size=(64, 64), widths=(4, 4, 4, 4)).output.shape
    (None, 5)
    """
    _check_int(num_classes, "num_classes", 2)
    input_size = _check_size(input_size)
    widths = _check_widths(widths)
    if in_frames not in (1, 2) or isinstance(in_frames, bool):
        raise ValueError(f"`in_frames` must be 1 (one RGB frame) or 2 (the frame pair); got {in_frames!r}")
    dropout = _check_number(dropout, "dropout", 0.0, 1.0)
    frames, x = _frames_input(input_size, in_frames)
    taps = resnet18_encoder(x, dims=2, widths=widths)
    return keras.Model(frames, _classifier(taps["conv5"], num_classes, dropout), name=name)
