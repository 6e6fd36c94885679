"""DFF's flow networks with the scale field (seed 003, Zhu et al., "Deep Feature Flow", Sec. 3-4).

:func:`flownet` builds the flow function ``F`` and scale function ``S`` of DFF (Sec. 3, Eq. 3) as one
``keras.Model`` on a frame pair. Three variants (Sec. 4, Table 2):

* ``"s"``: FlowNet "Simple" (Dosovitskiy et al. 2015) exactly as the authors' ``get_flownet``
  (``dff_rfcn/symbols/resnet_v1_101_flownet_rfcn.py``) builds it: conv1 7x7/2 64, conv2 5x5/2 128,
  conv3 5x5/2 256, conv3_1 3x3 256, conv4 3x3/2 512, conv4_1 512, conv5 3x3/2 512, conv5_1 512,
  conv6 3x3/2 1024, conv6_1 1024 (LeakyReLU 0.1 after each, biases on); then the refinement: at each
  of the scales 1/64 -> 1/4 of the half-size input a 3x3 flow prediction (2 channels, linear), a 4x4/2
  deconvolution of the features (512, 256, 128, 64, LeakyReLU 0.1) and a 4x4/2 deconvolution of the
  flow (2, linear), concatenated ``[encoder skip, deconv, upsampled flow]``; it stops at conv2's scale,
  stride 4 of the half-size input, with the DFF code's ``Concat5`` (our layer ``concat2``,
  128 + 64 + 2 = 194 channels) and its flow prediction ``Convolution5`` (our ``predict_flow2``).
  Caffe/MXNet's deconvolution (``(in - 1) 2 + 4``, then ``Crop`` offset 1 to the skip's size) is
  Keras' ``Conv2DTranspose(4, 2, padding="same")`` weight for weight.
* ``"half"``: Sec. 4, "reduces the number of convolutional kernels in each layer of FlowNet by half":
  every width above halved (conv1 32 ... conv6_1 512, deconvolutions 256 ... 32); flow predictions keep
  their 2 channels. The DFF code for it is not public; this is the paper's sentence taken literally.
* ``"inception"``: Sec. 4, "adopts the Inception structure [42] and reduces the complexity to 1/8".
  The authors' network is not public either; ours (our design): FlowNet Half with conv2 ... conv6_1
  replaced by Inception-v3 blocks of the same output widths and strides (:func:`_inception_block`:
  1x1 reductions, 5x5 factorised into two 3x3, grid reduction as in Szegedy et al. 2016 Sec. 3 and
  Fig. 10), Half's conv1 and Half's refinement. Its FLOPs are 1/7.50 of FlowNetS's at 256 x 512
  frames, the paper's Table 2 ratio being 95.24 / 12.71 = 1/7.49 (``tests/models/test_flownet.py``
  asserts the ratios).

Input: ``frames``, uint8 ``(B, 2, H, W, 3)`` RGB, ``frames[:, 0]`` = the current frame ``I_i``,
``frames[:, 1]`` = the key frame ``I_k`` (DFF's ``get_flownet(img_cur, img_ref)`` order); ``H`` and ``W``
multiples of 128, unknown sizes allowed (:class:`tfvideo.layers.flownet.FlowNetInput`: RGB minus
DFF's pixel means, / 255, halved by 2 x 2 averaging as the DFF code does).

Outputs (a dict):

* ``"flow"``: ``(B, H/16, W/16, 2)``, ``M_{i->k}`` at the feature maps' resolution (feature stride
  16, Sec. 4) in **pixels of the feature map**, project convention (``[..., 0] = x``,
  ``key(p + flow(p)) ~= current(p)``, which is DFF's "projects back a location p in current frame i
  to p + dp in key frame k"): feed it to :class:`tfvideo.layers.FeatureWarp` as it is.
* ``"scale"``: ``(B, H/16, W/16, feature_channels)``, the scale field ``S_{i->k}``.
* ``"flow_stride8"``: ``(B, H/8, W/8, 2)``, the network's own flow at stride 4 of its half-size input
  (Sec. 4, "the resolution of flow field is therefore 1/8"), in **pixels of the full frame**, same
  convention (for supervising with a frame-resolution flow averaged down to 1/8).

Units. FlowNet predicts flow / 20 (its training targets are divided by 20) in pixels of its input;
so, with ``p`` the raw prediction of the last refinement level, ``flow_stride8 = 2 * 20 p = 40 p``
frame pixels, and ``flow = 20 p / 8 = 2.5 p`` feature pixels after halving, which is the DFF code's
``Convolution5 * 2.5``.

The resize to the feature maps (Sec. 4: "further down-sized by half using bilinear interpolation ...
a parameter-free layer"): a bilinear resize by exactly 1/2 with half-pixel centres and no antialias
samples between pixels ``2i`` and ``2i + 1``, i.e. it *is* the 2 x 2 average pooling of stride 2 (the
DFF code's ``resize_concat5``), which we use; the flow vectors are halved with it (pixels of the finer
grid -> pixels of the coarser one).

The scale field (Sec. 3: "a sibling output at the end of the network ... weights and biases in the
output layer are initialized as 0s and 1s"). The DFF code attaches it to ``Concat5`` after
``resize_concat5`` (the 2 x 2 average): ``Convolution5_scale``, a 1x1 convolution to 1024 channels
whose weights start at 0 and whose bias is 1 with ``lr_mult=0`` (never trained). We do the same: a
1x1 ``Conv2D(feature_channels, use_bias=False, kernel zeros)`` on the averaged ``Concat5`` plus a fixed 1
(``Rescaling(offset=1)``), so ``S = 1`` exactly for any input at initialisation. A 1x1 convolution
commutes with the 2 x 2 average, so this equals "S at 1/8, resized bilinearly by half" (Sec. 4) at a
quarter of the cost; that placement is what makes Table 2's ratios come out (FlowNetS / Half 3.6 vs
the paper's 46.30 / 12.71 = 3.64). The flow prediction instead is made at 1/8 and halved (the paper's
order; the DFF code predicts from the averaged ``Concat5``, a negligible difference in cost).
"""

from __future__ import annotations

import keras

from tfvideo.layers.flownet import DFF_MEAN_RGB, FlowNetInput

__all__ = ["flownet", "VARIANTS", "FLOW_DIV", "SIZE_MULTIPLE"]

#: FlowNet's flow scaling: the network predicts flow / 20 in pixels of its (half-size) input.
FLOW_DIV = 20.0
#: Frame height and width must be multiples of this (half-size input / 64, exact refinement).
SIZE_MULTIPLE = 128

#: Encoder (name, filters, kernel, stride) of FlowNetS as the DFF code builds it.
_ENCODER_S = (("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2), ("conv3_1", 256, 3, 1),
              ("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1), ("conv5", 512, 3, 2), ("conv5_1", 512, 3, 1),
              ("conv6", 1024, 3, 2), ("conv6_1", 1024, 3, 1))
#: Feature deconvolutions of the refinement, coarse to fine (deconv5 ... deconv2).
_DECONV_S = (512, 256, 128, 64)
#: Skips of the refinement, coarse to fine: the encoder outputs concatenated at 1/32 ... 1/4.
_SKIPS = ("conv5_1", "conv4_1", "conv3_1", "conv2")

VARIANTS = ("s", "half", "inception")


def _leaky(x, name):
    return keras.layers.LeakyReLU(negative_slope=0.1, name=name)(x)


def _conv(x, filters, kernel, stride, name, act=True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=name)(x)
    return _leaky(x, f"{name}_relu") if act else x


def _inception_block(x, filters, stride, name):
    """Inception-v3 block of ``filters`` output channels (Szegedy et al. 2016; our design, Sec. 4 of
    DFF gives no detail).

    ``stride == 1`` (their Fig. 5, 5x5 factorised into two 3x3): ``[1x1 f/4]``,
    ``[1x1 f/8 -> 3x3 f/2]``, ``[1x1 f/16 -> 3x3 f/8 -> 3x3 f/4]``.
    ``stride == 2`` (grid reduction, their Fig. 10): ``[1x1 f/8 -> 3x3/2 f/2]``,
    ``[1x1 f/16 -> 3x3 f/8 -> 3x3/2 f/4]``, ``[3x3/2 max pool -> 1x1 f/4]``.
    Every convolution is followed by FlowNet's LeakyReLU 0.1 (no batch normalisation: FlowNet has none).
    """
    if stride == 1:
        b0 = _conv(x, filters // 4, 1, 1, f"{name}_b0")
        b1 = _conv(_conv(x, filters // 8, 1, 1, f"{name}_b1_reduce"), filters // 2, 3, 1, f"{name}_b1")
        b2 = _conv(x, filters // 16, 1, 1, f"{name}_b2_reduce")
        b2 = _conv(_conv(b2, filters // 8, 3, 1, f"{name}_b2a"), filters // 4, 3, 1, f"{name}_b2")
    else:
        b0 = _conv(_conv(x, filters // 8, 1, 1, f"{name}_b0_reduce"), filters // 2, 3, 2, f"{name}_b0")
        b1 = _conv(x, filters // 16, 1, 1, f"{name}_b1_reduce")
        b1 = _conv(_conv(b1, filters // 8, 3, 1, f"{name}_b1a"), filters // 4, 3, 2, f"{name}_b1")
        b2 = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool")(x)
        b2 = _conv(b2, filters // 4, 1, 1, f"{name}_b2")
    return keras.layers.Concatenate(name=name)([b0, b1, b2])


def _encoder(x, variant):
    skips = {}
    if variant == "inception":
        x = _conv(x, 32, 7, 2, "conv1")                       # Half's conv1
        skips["conv1"] = x
        for name, filters, _, stride in _ENCODER_S[1:]:
            x = _inception_block(x, filters // 2, stride, name)
            skips[name] = x
        return x, skips
    div = 2 if variant == "half" else 1
    for name, filters, kernel, stride in _ENCODER_S:
        x = _conv(x, filters // div, kernel, stride, name)
        skips[name] = x
    return x, skips


def _refinement(x, skips, variant):
    """FlowNet's refinement from conv6_1 to conv2's scale; returns (Concat5, its flow prediction)."""
    div = 1 if variant == "s" else 2
    flow = keras.layers.Conv2D(2, 3, padding="same", name="predict_flow6")(x)
    for level, (skip, filters) in enumerate(zip(_SKIPS, _DECONV_S)):
        up = 5 - level
        deconv = keras.layers.Conv2DTranspose(filters // div, 4, 2, padding="same", name=f"deconv{up}")(x)
        deconv = _leaky(deconv, f"deconv{up}_relu")
        up_flow = keras.layers.Conv2DTranspose(2, 4, 2, padding="same",
                                               name=f"upsample_flow{up + 1}to{up}")(flow)
        x = keras.layers.Concatenate(name=f"concat{up}")([skips[skip], deconv, up_flow])
        flow = keras.layers.Conv2D(2, 3, padding="same", name=f"predict_flow{up}")(x)
    return x, flow


def flownet(variant="s", *, feature_channels=1024, mean=DFF_MEAN_RGB, frame_size=(None, None),
            name=None):
    """DFF's flow network ``F`` with the scale field ``S`` (module docstring: layers, units, outputs).

    Args:
      variant: ``"s"`` (FlowNetS, the DFF code's), ``"half"`` or ``"inception"`` (Sec. 4).
      feature_channels: channels of the scale field = channels of the feature maps it scales
        (1024 in DFF, Sec. 4).
      mean: per-channel RGB mean subtracted before the division by 255 (DFF's ``PIXEL_MEANS``).
      frame_size: ``(H, W)`` of the ``frames`` input, ``None`` for unknown; known sizes must be
        multiples of :data:`SIZE_MULTIPLE` (128).
      name: model name (default ``"flownet_<variant>"``).

    Returns:
      ``keras.Model`` on ``frames`` (uint8 ``(B, 2, H, W, 3)``, current frame then key frame) with dict
      outputs ``"flow"`` ``(B, H/16, W/16, 2)`` (feature-map pixels), ``"scale"``
      ``(B, H/16, W/16, feature_channels)`` and ``"flow_stride8"`` ``(B, H/8, W/8, 2)`` (frame pixels).
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}; got {variant!r}")
    if isinstance(feature_channels, bool) or not isinstance(feature_channels, int) or feature_channels < 1:
        raise ValueError(f"`feature_channels` must be a positive int; got {feature_channels!r}")
    try:
        height, width = frame_size
    except (TypeError, ValueError):
        raise ValueError(f"`frame_size` must be (H, W) with ints or None; got {frame_size!r}") from None
    for what, d in (("H", height), ("W", width)):
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1 or d % SIZE_MULTIPLE):
            raise ValueError(f"`frame_size` {what} must be None or a positive multiple of {SIZE_MULTIPLE} "
                             f"(FlowNet size rule); got {frame_size!r}")
    frames = keras.Input((2, height, width, 3), dtype="uint8", name="frames")
    x = FlowNetInput(mean=mean, multiple=SIZE_MULTIPLE, name="flownet_input")(frames)
    x, skips = _encoder(x, variant)
    concat5, prediction = _refinement(x, skips, variant)       # stride 4 of the half-size input
    flow8 = keras.layers.Rescaling(2.0 * FLOW_DIV, name="flow_stride8")(prediction)
    flow16 = keras.layers.AveragePooling2D(2, name="resize_flow")(prediction)
    flow16 = keras.layers.Rescaling(FLOW_DIV / 8.0, name="flow")(flow16)       # DFF's x 2.5
    pooled = keras.layers.AveragePooling2D(2, name="resize_concat5")(concat5)
    scale = keras.layers.Conv2D(feature_channels, 1, use_bias=False, kernel_initializer="zeros",
                                name="scale_conv")(pooled)
    scale = keras.layers.Rescaling(1.0, offset=1.0, name="scale")(scale)        # fixed bias 1
    return keras.Model(frames, {"flow": flow16, "scale": scale, "flow_stride8": flow8},
                       name=name or f"flownet_{variant}")
