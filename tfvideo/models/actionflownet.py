"""ActionFlowNet, multi-frame (Ng's thesis, chapter 4.1-4.2): a 3D-ResNet-18 trained for action
classification and optical flow at once, and the ResNet-18 basic blocks (2D and 3D) it is built from.

Public names:

* :class:`BasicBlock`, :func:`basic_block`: ResNet-18's basic block (two 3x3 convolutions + BN + ReLU,
  identity or 1x1 projection shortcut) in 2D (``dims=2``) or 3D (``dims=3``: ``3x3`` becomes ``3x3x3``,
  digest 4.1), with keras.applications' layer names ``{name}_1_conv`` ... ``{name}_out``.
* :func:`resnet18_encoder`: the ResNet-18 trunk (conv1, pool1, conv2_x ... conv5_x) in 2D or 3D,
  returning the tensor of every stage by name (``"conv1"`` ... ``"conv5"``) for decoders with skips.
  :mod:`tfvideo.models.actionflownet_2f` (the two-frame models, digest 4.3) builds on it with ``dims=2``.
* :func:`actionflownet`: the multi-frame ActionFlowNet (digest 4.1, 4.2): ``frames`` uint8
  ``(B, T, H, W, 3)`` -> ``{"logits": (B, C), "flow": (B, T, H, W, 2)}``.
* :func:`classifier_model`: the inference model, encoder + classifier with the decoder dropped
  (digest 4.2, "Inference"), sharing the weights of the full model.

Train it with the multitask loss of Eq. 4.2 (lambda is not given, digest 4.7 q3)::

    model = actionflownet(101, widths=(8, 16, 32, 64), num_frames=16, input_size=(64, 64))
    model.compile(keras.optimizers.Adam(1e-4),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "flow": tfvideo.losses.FlowEndPointError()},
                  loss_weights={"logits": 1.0, "flow": 0.1})
    # y = {"logits": labels (B,), "flow": flow targets (B, T, H, W, 3) = (u, v, valid)}

Choices where the thesis is silent (each is marked in the code too):

* **Blocks** (torchvision's ResNet-18, the usual source of ImageNet ResNet-18 weights, digest 4.7 q14):
  the stride sits on the first 3x3 convolution; strided convolutions (and conv1, pool1) pad ``k // 2``
  on every side (``ZeroPadding`` layer ``{name}_pad`` + ``"valid"`` convolution; Keras' ``"same"``
  would pad one pixel less at the top/left for even sizes); convolutions carry no bias (a batch
  normalisation follows); BN epsilon 1e-5; He-normal kernels. The projection shortcut is a ``1x1``
  (``1x1x1`` in 3D) convolution + BN, used when the stride or the channel count changes; its kernel
  stays ``1x1x1`` in 3D (a projection; digest 4.1's "k x k becomes k x k x 3" is read for the 3x3 and
  7x7 kernels).
* **3D-ResNet-18 strides** (digest 4.7 q2): conv1 is ``7x7x3`` (temporal extent 3, stride ``(1, 2, 2)``),
  pool1 ``(1, 3, 3)/(1, 2, 2)`` (no temporal pooling, digest 4.1), temporal stride 2 together with the
  spatial stride 2 at conv3_1, conv4_1 and conv5_1: ``16 x 224 x 224`` gives conv5 ``2 x 7 x 7 x 512``
  (digest 4.1).
* **Input normalisation** (digest 4.7 q10): ``x / 127.5 - 1`` (:class:`tfvideo.layers.RGBPreprocess`
  ``"tf"``), RGB, no mean image.
* **Decoder** (digest 4.7 q1, q6; FlowNetS's refinement, :mod:`tfvideo.models.flownet`, extended to 3D
  as digest 4.1 says): from conv5, three ``Conv3DTranspose(4x4x4, stride (2, 2, 2))`` + LeakyReLU 0.1
  (``deconv4``, ``deconv3``, ``deconv2``, widths of the skip they meet: 256, 128, 64), each
  concatenated with the encoder skip of the same size (``concat4``: conv4, ``concat3``: conv3,
  ``concat2``: conv2 at ``(T, H/4, W/4)``); then ``predict_flow``, a ``3x3x3`` convolution to 2
  channels at the conv2 level. The loss is at the highest resolution only (digest 4.1), so there are
  no intermediate flow predictions (FlowNet's coarse heads would get no loss). Temporal upsampling:
  the same strided deconvolutions double time too, from ``T/8`` back to ``T``.
* **Output resolution and scale** (digest 4.7 q4, q6): ``predict_flow`` is upsampled bilinearly x4
  (half-pixel centres, :class:`tfvideo.layers.TrilinearUpsampling` ``(1, 4, 4)``) to ``(T, H, W)``
  and multiplied by ``flow_scale`` (20: FlowNet divides flow by 20): the head predicts
  ``flow / flow_scale`` (its kernel starts at zero, so training starts from the zero flow: our choice;
  with the default initialiser the first flows are ``flow_scale`` x noise, ~20 px of EPE, measured on the
  built-in set), and the output ``flow`` is in pixels of the input frames (project convention,
  ``[..., 0]`` = x). Output ``t`` is the flow from frame ``t`` to ``t + 1``; the last one
  (``t = T - 1``) is the future flow to the unseen frame ``T`` (digest 4.1).
* **Classifier** (digest 4.2): global average pooling over ``(T, H, W)``, Dropout(0.5), ``Dense``
  logits (the softmax lives in the loss).
"""

from __future__ import annotations

import keras

from tfvideo.layers.segments import RGBPreprocess
from tfvideo.layers.v2v import AlphaScale, TrilinearUpsampling

__all__ = ["BN_EPSILON", "RESNET18_WIDTHS", "SMALL_WIDTHS", "TEMPORAL_STRIDES", "STAGES", "BasicBlock",
           "basic_block", "resnet18_encoder", "actionflownet", "classifier_model"]

BN_EPSILON = 1e-5
"""Batch-norm epsilon of torchvision's ResNet-18 (the source of ImageNet ResNet-18 weights)."""
RESNET18_WIDTHS = (64, 128, 256, 512)
"""Channels of conv2_x ... conv5_x in ResNet-18 (conv1 has ``widths[0]``)."""
SMALL_WIDTHS = (8, 16, 32, 64)
"""The CPU-sized configuration of tests and the CPU recipe (every width / 8)."""
TEMPORAL_STRIDES = (1, 1, 2, 2, 2)
"""3D temporal strides of conv1, conv2_1, conv3_1, conv4_1, conv5_1 (digest 4.7 q2: 16 -> 2 frames)."""
STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")
"""Keys of :func:`resnet18_encoder`'s result."""


# ------------------------------------------------------------------------------ argument checks ----
def _positive_int(value, arg):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{arg}` must be a positive int; got {value!r}")
    return value


def _check_dims(dims):
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ValueError(f"`dims` must be 2 (images) or 3 (clips); got {dims!r}")
    return dims


def _tuple(value, dims, arg):
    """An int or a ``dims``-tuple of positive ints -> a ``dims``-tuple."""
    if isinstance(value, (list, tuple)):
        value = tuple(value)
        if len(value) != dims:
            raise ValueError(f"`{arg}` must be an int or {dims} ints "
                             f"({'(t, h, w)' if dims == 3 else '(h, w)'}); got {value!r}")
    else:
        value = (value,) * dims
    for v in value:
        _positive_int(v, arg)
    return value


def _check_widths(widths):
    if not isinstance(widths, (list, tuple)) or len(widths) != 4:
        raise ValueError(f"`widths` must be 4 positive ints (conv2_x ... conv5_x); got {widths!r}")
    for w in widths:
        _positive_int(w, "widths")
    return tuple(widths)


def _layers(dims):
    if dims == 3:
        return keras.layers.Conv3D, keras.layers.ZeroPadding3D, keras.layers.MaxPooling3D
    return keras.layers.Conv2D, keras.layers.ZeroPadding2D, keras.layers.MaxPooling2D


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _padded_conv(filters, kernel, strides, dims, name, layers):
    """``[(pad k//2), conv]``: a strided convolution padding ``k // 2`` on every side (module docstring),
    or a ``"same"`` one when it has stride 1 (identical for odd kernels)."""
    conv, pad, _ = _layers(dims)
    if all(s == 1 for s in strides):
        layers.append(conv(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal",
                           name=f"{name}_conv"))
    else:
        layers.append(pad(tuple(k // 2 for k in kernel), name=f"{name}_pad"))
        layers.append(conv(filters, kernel, strides=strides, padding="valid", use_bias=False,
                           kernel_initializer="he_normal", name=f"{name}_conv"))


# ------------------------------------------------------------------------------ the basic block ----
class BasicBlock:
    """ResNet-18's basic block in 2D or 3D with keras.applications-style layer names.

    ``out = relu(shortcut(x) + bn2(conv2(relu(bn1(conv1(x))))))`` where ``conv1`` is ``3x3`` (``3x3x3``
    for ``dims=3``, digest 4.1) with ``stride`` and ``conv2`` ``3x3`` (``3x3x3``) with stride 1, both
    ``filters`` channels; ``shortcut`` is the identity, or (``shortcut=True``) a ``1x1`` (``1x1x1``)
    convolution with ``stride`` + BN. Layers: ``{name}_0_conv``, ``{name}_0_bn`` (projection),
    ``{name}_1_pad`` (only when strided), ``{name}_1_conv``, ``{name}_1_bn``, ``{name}_1_relu``,
    ``{name}_2_conv``, ``{name}_2_bn``, ``{name}_add``, ``{name}_out``. Padding, bias and initialisers:
    module docstring ("Blocks").

    ``BasicBlock.new(...)`` creates the layers; calling the block applies them (again, if called twice:
    shared weights). Shapes: ``(B, H, W, C) -> (B, ceil(H/s), ceil(W/s), filters)`` (2D),
    ``(B, T, H, W, C) -> (B, ceil(T/st), ceil(H/sh), ceil(W/sw), filters)`` (3D).

    >>> x = keras.Input((8, 16, 16, 4))
    >>> BasicBlock.new("b", 8, stride=(2, 2, 2), dims=3, shortcut=True)(x).shape
    (None, 4, 8, 8, 8)
    """

    def __init__(self, layers):
        self.layers = layers

    @classmethod
    def new(cls, name, filters, *, stride=1, dims=2, shortcut=False):
        """New layers for a block named ``name``: ``filters`` channels, ``stride`` an int or a
        ``(h, w)`` / ``(t, h, w)`` tuple, ``dims`` 2 or 3, ``shortcut`` True for the projection."""
        dims = _check_dims(dims)
        _positive_int(filters, "filters")
        strides = _tuple(stride, dims, "stride")
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string; got {name!r}")
        conv, _, _ = _layers(dims)
        layers = {}
        if shortcut:
            if any(s != 1 for s in strides):
                # the strided 1x1 projection as "take every s-th pixel, then a 1x1 convolution" (the same
                # function and weights): TF 2.21's oneDNN kernel for the gradient of a strided 1x1 Conv2D with
                # fewer than 16 input channels corrupts memory (measured: aborts, segfaults)
                pool = keras.layers.MaxPooling2D if dims == 2 else keras.layers.MaxPooling3D
                layers["0_subsample"] = pool(pool_size=1, strides=strides, name=f"{name}_0_subsample")
            layers["0_conv"] = conv(filters, 1, use_bias=False, kernel_initializer="he_normal",
                                    name=f"{name}_0_conv")
            layers["0_bn"] = _bn(f"{name}_0_bn")
        first = []
        _padded_conv(filters, (3,) * dims, strides, dims, f"{name}_1", first)
        if len(first) == 2:
            layers["1_pad"] = first[0]
        layers["1_conv"] = first[-1]
        layers["1_bn"] = _bn(f"{name}_1_bn")
        layers["1_relu"] = keras.layers.Activation("relu", name=f"{name}_1_relu")
        layers["2_conv"] = conv(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                                name=f"{name}_2_conv")
        layers["2_bn"] = _bn(f"{name}_2_bn")
        layers["add"] = keras.layers.Add(name=f"{name}_add")
        layers["out"] = keras.layers.Activation("relu", name=f"{name}_out")
        return cls(layers)

    def __call__(self, x):
        lay = self.layers
        shortcut = x
        if "0_subsample" in lay:
            shortcut = lay["0_subsample"](shortcut)
        if "0_conv" in lay:
            shortcut = lay["0_bn"](lay["0_conv"](shortcut))
        y = lay["1_pad"](x) if "1_pad" in lay else x
        y = lay["1_relu"](lay["1_bn"](lay["1_conv"](y)))
        y = lay["2_bn"](lay["2_conv"](y))
        return lay["out"](lay["add"]([shortcut, y]))


def basic_block(x, filters, *, stride=1, name, dims=2):
    """Apply a new :class:`BasicBlock` to ``x``; the projection shortcut is used when ``stride`` is not 1
    or ``x``'s channel count differs from ``filters`` (ResNet-18's rule).

    Args:
      x: ``(B, H, W, C)`` (``dims=2``) or ``(B, T, H, W, C)`` (``dims=3``) tensor, ``C`` known.
      filters: output channels.
      stride: int or ``(h, w)`` / ``(t, h, w)`` tuple, on the first convolution and the shortcut.
      name: layer name prefix (``{name}_1_conv`` ...).
      dims: 2 or 3 (kernels ``3x3`` or ``3x3x3``).

    Returns:
      The block's output tensor ``(B, [T/st,] H/sh, W/sw, filters)`` (sizes rounded up).

    >>> basic_block(keras.Input((32, 32, 64)), 128, stride=2, name="conv3_block1").shape
    (None, 16, 16, 128)
    """
    dims = _check_dims(dims)
    strides = _tuple(stride, dims, "stride")
    if len(x.shape) != dims + 2:
        raise ValueError(f"`x` must be {'(B, T, H, W, C)' if dims == 3 else '(B, H, W, C)'} for "
                         f"dims={dims}; got shape {x.shape}")
    shortcut = any(s != 1 for s in strides) or x.shape[-1] != filters
    return BasicBlock.new(name, filters, stride=strides, dims=dims, shortcut=shortcut)(x)


# ----------------------------------------------------------------------------- ResNet-18 trunk ----
def resnet18_encoder(x, *, dims=2, widths=RESNET18_WIDTHS, temporal_strides=None, temporal_kernel=3,
                     stem=True, prefix=""):
    """ResNet-18's convolutional trunk on ``x``, in 2D or 3D; returns every stage's output by name.

    Layers (``prefix`` prepended to every name, so two trunks can live in one model)::

        conv1  7x7 (7x7x``temporal_kernel`` in 3D) /2, widths[0], BN, ReLU    "conv1"  (H/2)
        pool1  max 3x3 /2 (1x3x3 /(1,2,2) in 3D: no temporal pooling)
        conv2_block1, conv2_block2  widths[0]                                 "conv2"  (H/4)
        conv3_block1 /2, conv3_block2  widths[1]                              "conv3"  (H/8)
        conv4_block1 /2, conv4_block2  widths[2]                              "conv4"  (H/16)
        conv5_block1 /2, conv5_block2  widths[3]                              "conv5"  (H/32)

    keras.applications' names: ``conv1_pad``, ``conv1_conv``, ``conv1_bn``, ``conv1_relu``,
    ``pool1_pad``, ``pool1_pool``, then the :class:`BasicBlock` names ``conv{s}_block{b}_*``.
    In 3D (digest 4.1, 4.7 q2) the temporal strides of conv1, conv2_1, conv3_1, conv4_1, conv5_1 are
    ``temporal_strides`` (default :data:`TEMPORAL_STRIDES` ``(1, 1, 2, 2, 2)``: ``16 x 224 x 224``
    -> conv5 ``2 x 7 x 7 x 512``); every ``3x3`` kernel is ``3x3x3``.

    Args:
      x: ``(B, H, W, C)`` (``dims=2``; e.g. FlowNet's 6-channel frame pair, digest 4.3) or
        ``(B, T, H, W, C)`` (``dims=3``) float tensor, already normalised.
      dims: 2 or 3.
      widths: channels of conv2_x ... conv5_x (:data:`RESNET18_WIDTHS`; :data:`SMALL_WIDTHS` on CPU).
      temporal_strides: ``dims=3`` only: 5 positive ints (above). Must be None for ``dims=2``.
      temporal_kernel: ``dims=3`` only: temporal extent of conv1 (3, digest 4.7 q2).
      stem: False drops conv1 and pool1 (the Stacked model's classifier on 1/4-resolution flow,
        digest 4.3); the result then has no ``"conv1"``.
      prefix: string prepended to every layer name.

    Returns:
      dict ``{"conv1": ..., "conv2": ..., ..., "conv5": ...}`` of tensors (block outputs after ReLU;
      ``"conv1"`` after conv1's ReLU, before pool1).

    >>> taps = resnet18_encoder(keras.Input((64, 64, 6)), dims=2, widths=(8, 16, 32, 64))
    >>> [tuple(taps[k].shape[1:]) for k in ("conv1", "conv5")]
    [(32, 32, 8), (2, 2, 64)]
    """
    dims = _check_dims(dims)
    widths = _check_widths(widths)
    if not isinstance(prefix, str):
        raise ValueError(f"`prefix` must be a string; got {prefix!r}")
    if dims == 2:
        if temporal_strides is not None:
            raise ValueError(f"`temporal_strides` is for dims=3 only; got {temporal_strides!r} with dims=2")
        t_strides = (1,) * 5
    else:
        t_strides = TEMPORAL_STRIDES if temporal_strides is None else temporal_strides
        if not isinstance(t_strides, (list, tuple)) or len(t_strides) != 5:
            raise ValueError(f"`temporal_strides` must be 5 positive ints (conv1, conv2_1 ... conv5_1); "
                             f"got {temporal_strides!r}")
        for s in t_strides:
            _positive_int(s, "temporal_strides")
        _positive_int(temporal_kernel, "temporal_kernel")
    if len(x.shape) != dims + 2:
        raise ValueError(f"`x` must be {'(B, T, H, W, C)' if dims == 3 else '(B, H, W, C)'} for "
                         f"dims={dims}; got shape {x.shape}")

    def stride(t, s):
        return (t, s, s) if dims == 3 else (s, s)

    out = {}
    if stem:
        _, pad, pool = _layers(dims)
        kernel = (temporal_kernel, 7, 7) if dims == 3 else (7, 7)
        layers = []
        _padded_conv(widths[0], kernel, stride(t_strides[0], 2), dims, f"{prefix}conv1", layers)
        for layer in layers:
            x = layer(x)
        x = _bn(f"{prefix}conv1_bn")(x)
        x = keras.layers.Activation("relu", name=f"{prefix}conv1_relu")(x)
        out["conv1"] = x
        # zero padding = -inf padding here: the input is >= 0 after the ReLU
        x = pad((0, 1, 1) if dims == 3 else (1, 1), name=f"{prefix}pool1_pad")(x)
        x = pool(stride(1, 3), strides=stride(1, 2), name=f"{prefix}pool1_pool")(x)
    for stage, (filters, t_stride) in enumerate(zip(widths, t_strides[1:]), start=2):
        s = 1 if stage == 2 else 2
        x = basic_block(x, filters, stride=stride(t_stride, s), dims=dims,
                        name=f"{prefix}conv{stage}_block1")
        x = basic_block(x, filters, stride=1, dims=dims, name=f"{prefix}conv{stage}_block2")
        out[f"conv{stage}"] = x
    return out


# ------------------------------------------------------------------------------ ActionFlowNet ----
def _check_model_args(num_classes, num_frames, input_size, dropout, flow_scale):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2; got {num_classes!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 8 or num_frames % 8:
        raise ValueError(f"`num_frames` must be a positive multiple of 8 (three temporal halvings, then "
                         f"the decoder doubles back to T); got {num_frames!r}")
    if (not isinstance(input_size, (list, tuple)) or len(input_size) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 32 and d % 32 == 0
                       for d in input_size)):
        raise ValueError(f"`input_size` must be (H, W), positive multiples of 32 (the encoder's stride); "
                         f"got {input_size!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}")
    if isinstance(flow_scale, bool) or not isinstance(flow_scale, (int, float)) or not flow_scale > 0:
        raise ValueError(f"`flow_scale` must be a positive number; got {flow_scale!r}")


def _flow_decoder(taps, widths, flow_scale):
    """The 3D deconvolutional decoder with skips (module docstring, "Decoder") -> flow in pixels."""
    x = taps["conv5"]
    for level in (4, 3, 2):
        x = keras.layers.Conv3DTranspose(widths[level - 2], 4, strides=(2, 2, 2), padding="same",
                                         kernel_initializer="he_normal", name=f"deconv{level}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"deconv{level}_relu")(x)
        x = keras.layers.Concatenate(name=f"concat{level}")([taps[f"conv{level}"], x])
    # zero-initialised: training starts from the zero flow (EPE = the mean motion) instead of flow_scale x
    # noise (measured: ~20 px of EPE at the start, which the first hundreds of steps only shrink)
    x = keras.layers.Conv3D(2, 3, padding="same", kernel_initializer="zeros", name="predict_flow")(x)
    x = TrilinearUpsampling((1, 4, 4), name="upsample_flow")(x)
    return AlphaScale(flow_scale, name="flow")(x)


def actionflownet(num_classes, *, num_frames=16, input_size=(224, 224), widths=RESNET18_WIDTHS,
                  dropout=0.5, flow_head=True, flow_scale=20.0, name="actionflownet"):
    """The multi-frame ActionFlowNet (digest 4.1, 4.2): 3D-ResNet-18 + classifier + 3D flow decoder.

    ``frames`` uint8 ``(B, T, H, W, 3)`` RGB (T = ``num_frames``, a multiple of 8; ``(H, W)`` =
    ``input_size``, multiples of 32) -> ``x / 127.5 - 1`` -> 3D-ResNet-18 (:func:`resnet18_encoder`,
    ``dims=3``; conv5 ``(T/8, H/32, W/32, widths[3])``, ``2 x 7 x 7 x 512`` for ``16 x 224 x 224``)
    ->

    * ``"logits"`` ``(B, num_classes)``: global average pool over ``(T, H, W)``, Dropout(``dropout``),
      Dense (layer names ``avg_pool``, ``dropout``, ``logits``);
    * ``"flow"`` ``(B, T, H, W, 2)`` in pixels of the input frames (``[..., 0]`` = x): output ``t`` is
      the flow from frame ``t`` to ``t + 1``, the last one the future flow (digest 4.1). Decoder
      ``deconv4``/``concat4`` ... ``deconv2``/``concat2``, ``predict_flow`` (``flow / flow_scale`` at
      ``(T, H/4, W/4)``), ``upsample_flow`` (bilinear x4), ``flow`` (x ``flow_scale``).

    Every choice where the thesis is silent is listed in the module docstring.

    Args:
      num_classes: number of action classes (>= 2; 101 for UCF101).
      num_frames: T (16 in the thesis, digest 4.2).
      input_size: ``(H, W)`` (224 x 224, digest 4.5).
      widths: conv2_x ... conv5_x channels (:data:`RESNET18_WIDTHS`; :data:`SMALL_WIDTHS` for CPU
        runs); the decoder's deconvolutions use ``widths[2], widths[1], widths[0]``.
      dropout: dropout rate before the classifier (0.5, digest 4.2).
      flow_head: False builds the classifier alone (output ``logits`` only, not a dict).
      flow_scale: the flow head predicts ``flow / flow_scale`` (20, FlowNet's, digest 4.7 q4).
      name: model name.

    Returns:
      ``keras.Model``: ``{"logits", "flow"}`` outputs (a dict) with ``flow_head``, else ``logits``.

    >>> m = actionflownet(5, num_frames=8, input_size=(32, 32), widths=(4, 4, 4, 4))
    >>> {k: tuple(v.shape) for k, v in m.output.items()}
    {'logits': (None, 5), 'flow': (None, 8, 32, 32, 2)}
    """
    _check_model_args(num_classes, num_frames, input_size, dropout, flow_scale)
    widths = _check_widths(widths)
    frames = keras.Input((num_frames, *input_size, 3), dtype="uint8", name="frames")
    x = RGBPreprocess("tf", name="preprocess")(frames)
    taps = resnet18_encoder(x, dims=3, widths=widths)
    y = keras.layers.GlobalAveragePooling3D(name="avg_pool")(taps["conv5"])
    y = keras.layers.Dropout(dropout, name="dropout")(y)
    logits = keras.layers.Dense(num_classes, name="logits")(y)
    if not flow_head:
        return keras.Model(frames, logits, name=name)
    flow = _flow_decoder(taps, widths, flow_scale)
    return keras.Model(frames, {"logits": logits, "flow": flow}, name=name)


def classifier_model(model, name=None):
    """The inference model of digest 4.2: ``frames -> logits`` made of ``model``'s own layers (shared
    weights: training one trains the other), the flow decoder dropped.

    Args:
      model: a model from :func:`actionflownet` (also one loaded from ``.keras``), with layers
        ``frames`` (input) and ``logits``.
      name: default ``f"{model.name}_classifier"``.

    >>> m = actionflownet(5, num_frames=8, input_size=(32, 32), widths=(4, 4, 4, 4))
    >>> classifier_model(m).output.shape
    (None, 5)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model from actionflownet(); got {type(model).__name__}")
    try:
        logits = model.get_layer("logits").output
    except ValueError:
        raise ValueError(f"`model` {model.name!r} has no layer named 'logits'; pass a model built by "
                         f"actionflownet()") from None
    return keras.Model(model.input, logits, name=name or f"{model.name}_classifier")
