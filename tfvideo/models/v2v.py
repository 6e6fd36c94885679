"""V2V: voxel-to-voxel prediction with a 3D ConvNet and 3D deconvolutions (seed 000, Tran et al.).

``frames`` uint8 ``(B, T, H, W, C)`` -> ``(B, T, H, W, K)``: C3D's encoder
(:mod:`tfvideo.models.c3d`) and the decoder of Fig. 3 (Sec. 3), with the channel counts of the
authors' released prototxts (``C3D-v1.0/examples/v2v/*/deconv3d_*.prototxt``)::

    conv5b (T/8, H/16, W/16, 512) -> deconv5  4x4x4 /2, 64, ReLU -> (T/4, H/8, W/8, 64)
    conv4b (T/4, H/8,  W/8,  512) -> conv4c   3x3x3, 64, linear  -> concat5 (.., 128)
    concat5                        -> deconv4  4x4x4 /2, 64, ReLU -> (T/2, H/4, W/4, 64)
    conv3b (T/2, H/4,  W/4,  256) -> conv3c   3x3x3, 64, linear  -> concat4 (.., 128)
    concat4                        -> deconv3  (4, 8, 8) /(2, 4, 4), 64, ReLU -> (T, H, W, 64)
    deconv3                        -> conv_pre 3x3x3, K, linear  -> (T, H, W, K)

For the paper's clip ``(16, 112, 112)``: conv5b ``(2, 7, 7)``, deconv5 ``(4, 14, 14)``, deconv4
``(8, 28, 28)``, deconv3 ``(16, 112, 112)``.

Choices and where they come from:

* **Conv3c / Conv4c** are the prototxt's ``predict3b`` / ``predict4b``: 64 filters and *no* ReLU
  (Sec. 3: "feature-map reducers"). The concatenations put the deconvolution first
  (``concat1: deconv5b, predict4b``), as the prototxt.
* **Deconv3 kernel order**. Sec. 3 writes Deconv3 as "8 x 4 x 4, output stride 4 x 2 x 2, padding
  2 x 1 x 1". Caffe's C3D writes the *spatial* size first: the prototxt has ``kernel_size: 8,
  kernel_depth: 4, stride: 4, temporal_stride: 2, pad: 2, temporal_pad: 1``, i.e. in (time, height,
  width) order kernel ``(4, 8, 8)``, stride ``(2, 4, 4)``, padding ``(1, 2, 2)``. The output sizes
  confirm it: Caffe's deconvolution gives ``(in - 1) * stride + k - 2 * pad``: spatially
  ``27 * 4 + 8 - 4 = 112`` from 28, temporally ``7 * 2 + 4 - 2 = 16`` from 8 (the paper's order
  would give ``7 * 4 + 8 - 4 = 32`` frames). Deconv5 / Deconv4: ``(in - 1) * 2 + 4 - 2 = 2 in``.
* **Padding of the transposed convolutions**: Keras' ``Conv3DTranspose(padding="same")`` outputs
  ``in * stride`` and crops ``(k - s) // 2`` at the start, the rest at the end; for these
  ``(k, s)`` = (4, 2) and (8, 4), ``k - s = 2 pad`` is even, so it crops ``pad`` at both ends exactly
  as Caffe's deconvolution (``col2vol`` with ``pad``): the same layer, weight for weight (tested in
  ``tests/models/test_v2v.py`` against a NumPy scatter-add of Caffe's deconvolution).
* **Size rule** (:class:`tfvideo.layers.v2v.ClipSizeCheck`): the output has the input's size when
  ``T`` is a multiple of 8 and ``H, W`` of 16; other sizes raise a ``ValueError`` (known sizes) or an
  ``InvalidArgumentError`` with the same message (sizes unknown until run time).
* **Initialisation** (our choice): new layers get He-normal kernels where a ReLU follows (deconv5,
  deconv4, deconv3) and Keras' Glorot-uniform where none does (conv3c, conv4c, conv_pre); biases 0;
  the encoder's as in :mod:`tfvideo.models.c3d` (conv1a scaled for the unscaled 0..255 input).
  The prototxts fill every weight with Gaussian ``std 0.01`` and biases with 1, paired with Caffe's
  *summed* Euclidean loss and learning rates of ``1e-8`` (flow) or ``1e-4`` (segmentation); our
  losses are means over voxels, for which variance-preserving initialisations train from scratch.

Where the released prototxts differ from the paper (we follow the paper):

* The GATECH prototxt feeds ``deconv5b`` from **conv5a**; Fig. 3 and the flow prototxt from conv5b.
* The GATECH prototxt freezes the C3D layers (``blobs_lr: 0``); Sec. 4 "fine-tune[s] the full V2V
  network". Freezing is a recipe choice (``layer.trainable``), not a model one.
* The flow prototxt uses a Euclidean loss on targets scaled by ``truth_scale: 0.125``; Sec. 5 states
  the Huber loss of Eq. 1 on flow divided by ``alpha = 15``
  (:func:`tfvideo.losses.huber_flow_loss`).

Heads (``task``; Sec. 4-6):

* ``"segmentation"``: ``K`` class logits per voxel; :func:`tfvideo.losses.voxel_softmax_cross_entropy`
  does the voxel-wise softmax (Sec. 4).
* ``"flow"``: ``K = 2``; Conv-pre predicts ``flow / alpha`` and :class:`tfvideo.layers.v2v.AlphaScale`
  (layer ``flow``) multiplies by ``alpha`` (15, Sec. 5), so the model outputs pixels.
  :func:`tfvideo.losses.huber_flow_loss` divides prediction and target by the same ``alpha``: the
  gradient reaching Conv-pre is the paper's.
* ``"colour"``: grey in (``C = 1``), RGB out (``K = 3``) in ``[0, 1]`` (Sec. 6): Conv-pre stays
  linear, trained by :func:`tfvideo.losses.colour_l2_loss` on targets / 255, and
  :class:`tfvideo.layers.v2v.ClipAtInference` (layer ``colour``) clips to ``[0, 1]`` at inference
  only. Our choice over a sigmoid: the paper's head is the same linear prediction layer for every
  task with a plain L2 regression, and a sigmoid would change that regression (its gradient vanishes
  for saturated, e.g. white or black, targets); clipping can only bring a prediction closer to a
  target in ``[0, 1]``.
* ``None``: the bare linear Conv-pre output.

Baselines of Table 1 (``variant``, :data:`VARIANTS`); V2V-0 / V2V-remove-skip-0 ("from scratch")
differ from V2V / V2V-remove-skip only by not loading C3D weights
(:func:`tfvideo.models.c3d.load_c3d_weights`): a recipe choice, not a variant.

* ``"v2v"``: Fig. 3.
* ``"v2v_no_skip"``: V2V-remove-skip, "a single stream from conv5b followed by a few deconv layers and
  a prediction layer": deconv5 -> deconv4 -> deconv3 -> conv_pre (no conv3c / conv4c).
* ``"conv3b_up"``, ``"conv4b_up"``, ``"conv5b_up"``: C3D up to that layer, a prediction layer
  ``conv_pre`` (3x3x3 -> K, "analogous to Conv-pre") and :class:`tfvideo.layers.v2v.TrilinearUpsampling`
  (layer ``upsample``) to the input size: bilinear in space as the paper says, linear in time (the
  paper does not say; half-pixel centres). Their size rule only asks that the poolings before the
  tapped layer divide exactly (``conv3b``: T % 2, H, W % 4; ``conv4b``: 4 and 8; ``conv5b``: 8, 16).
* ``"2d_v2v"``: every 3D layer replaced by its 2D counterpart on single frames (Sec. 4): time folded
  into the batch (:class:`tfvideo.layers.segments.PerSegment` around a 2D model named
  ``v2v_2d``, layer ``per_frame``), 3x3 convolutions with C3D's channel counts, 2x2 pools (pool1
  too), deconvolutions 4x4 / 2, 4x4 / 2, 8x8 / 4 and the same skips; any ``T``, ``H, W`` multiples
  of 16.
"""

from __future__ import annotations

import keras

from tfvideo.layers.segments import PerSegment
from tfvideo.layers.v2v import AlphaScale, ClipAtInference, ClipSizeCheck, SubtractMean, TrilinearUpsampling
from tfvideo.models.c3d import apply_c3d_encoder, default_mean

__all__ = ["VARIANTS", "TASKS", "FLOW_ALPHA", "SIZE_RULES", "v2v"]

#: Model variants of Table 1 (Sec. 4).
VARIANTS = ("v2v", "2d_v2v", "conv3b_up", "conv4b_up", "conv5b_up", "v2v_no_skip")
#: Heads (Sec. 4-6); ``None`` (the bare Conv-pre) is accepted too.
TASKS = ("segmentation", "flow", "colour")
#: alpha of Sec. 5: flow / alpha is what Conv-pre predicts and what Eq. 1 is applied to.
FLOW_ALPHA = 15.0
#: (time multiple, space multiple) each variant needs for an output of the input's size.
SIZE_RULES = {"v2v": (8, 16), "v2v_no_skip": (8, 16), "2d_v2v": (1, 16), "conv3b_up": (2, 4),
              "conv4b_up": (4, 8), "conv5b_up": (8, 16)}
_UP_FACTORS = {"conv3b_up": (2, 4, 4), "conv4b_up": (4, 8, 8), "conv5b_up": (8, 16, 16)}


def _decoder(taps, num_outputs, *, skips=True, spatial_only=False):
    """Fig. 3's upper part on the encoder ``taps`` (conv3b, conv4b, conv5b) -> Conv-pre output."""
    if spatial_only:
        conv, deconv = keras.layers.Conv2D, keras.layers.Conv2DTranspose
        k2, s2, k3, s3 = 4, 2, 8, 4
    else:
        conv, deconv = keras.layers.Conv3D, keras.layers.Conv3DTranspose
        k2, s2, k3, s3 = 4, 2, (4, 8, 8), (2, 4, 4)

    def up(x, kernel, strides, name):
        return deconv(64, kernel, strides=strides, padding="same", activation="relu",
                      kernel_initializer="he_normal", name=name)(x)

    x = up(taps["conv5b"], k2, s2, "deconv5")
    if skips:
        x = keras.layers.Concatenate(name="concat5")(
            [x, conv(64, 3, padding="same", name="conv4c")(taps["conv4b"])])
    x = up(x, k2, s2, "deconv4")
    if skips:
        x = keras.layers.Concatenate(name="concat4")(
            [x, conv(64, 3, padding="same", name="conv3c")(taps["conv3b"])])
    x = up(x, k3, s3, "deconv3")
    return conv(num_outputs, 3, padding="same", name="conv_pre")(x)


def _check_args(num_outputs, input_channels, task, variant, clip_shape, alpha):
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(f"`num_outputs` (K) must be a positive int; got {num_outputs!r}")
    if isinstance(input_channels, bool) or not isinstance(input_channels, int) or input_channels < 1:
        raise ValueError(f"`input_channels` (C) must be a positive int; got {input_channels!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"`task` must be None or one of {TASKS}; got {task!r}")
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}; got {variant!r}")
    if task == "segmentation" and num_outputs < 2:
        raise ValueError(f"`num_outputs` must be the number of classes (>= 2) for segmentation; got "
                         f"{num_outputs}")
    if task == "flow" and num_outputs != 2:
        raise ValueError(f"`num_outputs` must be 2 (u, v) for task='flow'; got {num_outputs}")
    if task == "colour" and (num_outputs != 3 or input_channels != 1):
        raise ValueError(f"task='colour' needs input_channels=1 (grey) and num_outputs=3 (RGB); got "
                         f"input_channels={input_channels}, num_outputs={num_outputs}")
    if (not isinstance(clip_shape, (tuple, list)) or len(clip_shape) != 3
            or not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1)
                       for d in clip_shape)):
        raise ValueError(f"`clip_shape` must be (T, H, W) with positive ints or None; got "
                         f"{clip_shape!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number; got {alpha!r}")


def v2v(num_outputs, *, input_channels=3, task=None, variant="v2v", clip_shape=(16, 112, 112),
        alpha=FLOW_ALPHA, mean=None, name=None):
    """A V2V model (or a Table 1 baseline): ``frames`` uint8 ``(B, T, H, W, C)`` -> ``(B, T, H, W, K)``.

    Args:
      num_outputs: ``K``: classes (segmentation), 2 (flow), 3 (colour).
      input_channels: ``C``: 3 (RGB) or 1 (grey, colouring).
      task: ``"segmentation"`` (logits), ``"flow"`` (pixels: Conv-pre x ``alpha``), ``"colour"``
        (RGB in [0, 1], clipped at inference) or ``None`` (bare Conv-pre). See the module docstring.
      variant: one of :data:`VARIANTS`.
      clip_shape: ``(T, H, W)`` of the input; ``None`` entries for sizes known only at run time
        (exported signatures). ``(16, 112, 112)``: the paper's clips.
      alpha: the flow scale of Sec. 5 (15).
      mean: per-channel mean subtracted from the frames (default C3D's,
        :func:`tfvideo.models.c3d.default_mean`).
      name: model name (default ``variant``, with the task appended when given).

    Layer names: C3D's ``conv1a`` ... ``conv5b`` / ``pool1`` ... ``pool4`` (so
    :func:`tfvideo.models.c3d.load_c3d_weights` fills them), ``conv4c``, ``conv3c``, ``deconv5``,
    ``concat5``, ``deconv4``, ``concat4``, ``deconv3``, ``conv_pre``, then ``flow`` / ``colour`` for
    those heads, ``upsample`` for the ``*_up`` baselines; ``size_check`` and ``mean`` first.
    """
    _check_args(num_outputs, input_channels, task, variant, clip_shape, alpha)
    frames = keras.Input((*clip_shape, input_channels), dtype="uint8", name="frames")
    time_multiple, space_multiple = SIZE_RULES[variant]
    x = ClipSizeCheck(time_multiple, space_multiple, name="size_check")(frames)
    x = SubtractMean(default_mean(input_channels) if mean is None else mean, name="mean")(x)
    if variant == "2d_v2v":
        inner_in = keras.Input((clip_shape[1], clip_shape[2], input_channels), name="frame")
        taps = apply_c3d_encoder(inner_in, spatial_only=True)
        inner = keras.Model(inner_in, _decoder(taps, num_outputs, spatial_only=True), name="v2v_2d")
        x = PerSegment(inner, name="per_frame")(x)
    elif variant in _UP_FACTORS:
        tap = variant[:-3]
        x = apply_c3d_encoder(x, up_to=tap)[tap]
        x = keras.layers.Conv3D(num_outputs, 3, padding="same", name="conv_pre")(x)
        x = TrilinearUpsampling(_UP_FACTORS[variant], name="upsample")(x)
    else:
        x = _decoder(apply_c3d_encoder(x), num_outputs, skips=variant == "v2v")
    if task == "flow":
        x = AlphaScale(alpha, name="flow")(x)
    elif task == "colour":
        x = ClipAtInference(0.0, 1.0, name="colour")(x)
    if name is None:
        name = variant if task is None else f"{variant}_{task}"
    return keras.Model(frames, x, name=name)
