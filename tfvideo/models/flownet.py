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
  Keras' ``Conv2DTranspose(4, 2, padding="same")`` weight for weight. The stride-2 convolutions pad
  ``k // 2`` on every side as Caffe/MXNet do (``ZeroPadding2D`` layer ``<name>_pad``, then a ``"valid"``
  convolution): Keras' ``"same"`` would pad one pixel less at the top and left for even sizes, shifting
  every stride-2 layer's sampling grid by one input pixel (all variants share this rule).
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

* ``"tiny"`` (ours, not in the paper): every width of FlowNetS divided by 8 (conv1 8 ... conv6_1 128,
  deconvolutions 64 ... 8), about 1/50 of its FLOPs. The CPU-sized flow network of the built-in runs,
  the companion of :mod:`tfvideo.models.dff`'s ``"small"`` feature network: with FlowNet Half, whose
  FLOPs are 1.7 times the small feature net's at 128 x 256, DFF would be *slower* than per-frame
  inference (Eq. 7 with r > 1), while small + tiny gives r ~ 1/10, the paper's proportion (Table 2:
  1/9.2 ... 1/95).

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

Pretrained weights (:func:`load_flownet_weights`). The DFF authors' MXNet checkpoints with a flow network
(``rfcn_dff_flownet_vid-0000.params`` of their README; ``rfcn_vid-0000.params`` is the per-frame baseline,
without one; ``pretrained_model/flownet-0000.params`` is the Flying-Chairs FlowNetS converted from Caffe
that DFF training starts from, without the scale field: ``init_missing_scale=True`` gives it DFF's
``init_weight``, weights 0 and bias 1) hold FlowNetS as ``get_flownet`` names it
(:data:`MXNET_FLOWNET_S`: ``flow_conv1`` -> ``conv1``, ``conv2`` ... ``conv6_1``, ``Convolution1`` ...
``Convolution5`` -> ``predict_flow6`` ... ``predict_flow2``, ``deconv5`` ... ``deconv2``,
``upsample_flow6to5`` ... ``upsample_flow3to2``, ``Convolution5_scale`` -> ``scale_conv``; the ResNet's
own ``conv1`` is not the flow network's). ``load_flownet_weights(flownet("s"), "rfcn_vid-0000.params")``
reads the ``.params`` file itself (:func:`read_mxnet_params`, pure NumPy, every dense NDArray format
version) or an ``.npz`` of the same names, e.g. written with MXNet by
``np.savez(out, **{k: v.asnumpy() for k, v in mx.nd.load(params).items()})``. Layouts: Convolution
``(O, I, kh, kw)`` -> ``(kh, kw, I, O)``; Deconvolution ``(I, O, kh, kw)`` -> ``Conv2DTranspose``'s
``(kh, kw, O, I)``, **no spatial flip** (both are the adjoint of a correlation: ``out[s i + u] += x[i]
w[u]``). Inputs need no conversion: DFF's ``transform`` (``lib/utils/image.py``) turns OpenCV's BGR into
RGB minus ``PIXEL_MEANS``, and ``get_flownet(img_cur, img_ref)`` concatenates current then key frame,
which is :class:`FlowNetInput`'s order. ``Convolution5_scale_bias`` must be DFF's fixed 1 (ours is the
``Rescaling`` offset). Only FlowNetS has released weights. The tests check conv1, a deconvolution and the
scale field against NumPy transcriptions of Caffe/MXNet's operators; everything up to ``Concat5`` and the
scale field are DFF's network; ``flow`` is too with ``flownet(..., flow_order="dff_code")``
(``Convolution5`` after the 2 x 2 average, as the DFF code has it; the default ``"paper"`` order applies
it at 1/8 before the average, which the Flying-Chairs FlowNet was trained for).
"""

from __future__ import annotations

import os
import struct
import zipfile

import keras
import numpy as np

from tfvideo.layers.flownet import DFF_MEAN_RGB, FlowNetInput

__all__ = ["flownet", "VARIANTS", "FLOW_ORDERS", "FLOW_DIV", "SIZE_MULTIPLE", "MXNET_FLOWNET_S", "load_flownet_weights",
           "read_mxnet_params"]

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

VARIANTS = ("s", "half", "inception", "tiny")
#: Where the last flow prediction sits (module docstring): ``"paper"`` at 1/8 then halved, ``"dff_code"``
#: on the 2 x 2 averaged ``Concat5`` (the released DFF code, what its checkpoints were fine-tuned with).
FLOW_ORDERS = ("paper", "dff_code")
#: Width divisor of every layer but the 2-channel flow layers (inception: of its conv1 and refinement).
_DIV = {"s": 1, "half": 2, "inception": 2, "tiny": 8}


def _leaky(x, name):
    return keras.layers.LeakyReLU(negative_slope=0.1, name=name)(x)


def _conv(x, filters, kernel, stride, name, act=True):
    if stride == 1:  # odd kernels: "same" pads (k - 1) / 2 on every side, as Caffe's pad = k // 2
        x = keras.layers.Conv2D(filters, kernel, padding="same", name=name)(x)
    else:  # Caffe/MXNet's symmetric pad = k // 2 ("same" would pad one less on the top and left)
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", name=name)(x)
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
    div = _DIV[variant]
    for name, filters, kernel, stride in _ENCODER_S:
        x = _conv(x, filters // div, kernel, stride, name)
        skips[name] = x
    return x, skips


def _refinement(x, skips, variant):
    """FlowNet's refinement from conv6_1 to conv2's scale; returns (Concat5, the layer predicting the
    flow from it, ``predict_flow2``)."""
    div = _DIV[variant]
    flow = keras.layers.Conv2D(2, 3, padding="same", name="predict_flow6")(x)
    for level, (skip, filters) in enumerate(zip(_SKIPS, _DECONV_S)):
        up = 5 - level
        deconv = keras.layers.Conv2DTranspose(filters // div, 4, 2, padding="same", name=f"deconv{up}")(x)
        deconv = _leaky(deconv, f"deconv{up}_relu")
        up_flow = keras.layers.Conv2DTranspose(2, 4, 2, padding="same",
                                               name=f"upsample_flow{up + 1}to{up}")(flow)
        x = keras.layers.Concatenate(name=f"concat{up}")([skips[skip], deconv, up_flow])
        predict = keras.layers.Conv2D(2, 3, padding="same", name=f"predict_flow{up}")
        if up > 2:
            flow = predict(x)
    return x, predict


def flownet(variant="s", *, feature_channels=1024, mean=DFF_MEAN_RGB, frame_size=(None, None),
            flow_order="paper", name=None):
    """DFF's flow network ``F`` with the scale field ``S`` (module docstring: layers, units, outputs).

    Args:
      variant: ``"s"`` (FlowNetS, the DFF code's), ``"half"`` or ``"inception"`` (Sec. 4), or ``"tiny"``
        (ours, CPU-sized: widths / 8).
      feature_channels: channels of the scale field = channels of the feature maps it scales
        (1024 in DFF, Sec. 4).
      mean: per-channel RGB mean subtracted before the division by 255 (DFF's ``PIXEL_MEANS``).
      frame_size: ``(H, W)`` of the ``frames`` input, ``None`` for unknown; known sizes must be
        multiples of :data:`SIZE_MULTIPLE` (128).
      flow_order: ``"paper"`` (default: the last prediction at 1/8, then the parameter-free resize to
        1/16, Sec. 4) or ``"dff_code"`` (the same ``predict_flow2`` layer applied to the 2 x 2 averaged
        ``Concat5`` for ``flow``, as the released code does: use it with DFF's checkpoints for their exact
        network; ``flow_stride8`` stays that layer at 1/8).
      name: model name (default ``"flownet_<variant>"``).

    Returns:
      ``keras.Model`` on ``frames`` (uint8 ``(B, 2, H, W, 3)``, current frame then key frame) with dict
      outputs ``"flow"`` ``(B, H/16, W/16, 2)`` (feature-map pixels), ``"scale"``
      ``(B, H/16, W/16, feature_channels)`` and ``"flow_stride8"`` ``(B, H/8, W/8, 2)`` (frame pixels).
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}; got {variant!r}")
    if flow_order not in FLOW_ORDERS:
        raise ValueError(f"`flow_order` must be one of {FLOW_ORDERS}; got {flow_order!r}")
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
    concat5, predict = _refinement(x, skips, variant)          # stride 4 of the half-size input
    prediction = predict(concat5)
    flow8 = keras.layers.Rescaling(2.0 * FLOW_DIV, name="flow_stride8")(prediction)
    pooled = keras.layers.AveragePooling2D(2, name="resize_concat5")(concat5)
    if flow_order == "paper":   # predict at 1/8, then the parameter-free resize by half (Sec. 4)
        flow16 = keras.layers.AveragePooling2D(2, name="resize_flow")(prediction)
    else:                       # the DFF code: Convolution5 on the averaged Concat5
        flow16 = predict(pooled)
    flow16 = keras.layers.Rescaling(FLOW_DIV / 8.0, name="flow")(flow16)       # DFF's x 2.5
    scale = keras.layers.Conv2D(feature_channels, 1, use_bias=False, kernel_initializer="zeros",
                                name="scale_conv")(pooled)
    scale = keras.layers.Rescaling(1.0, offset=1.0, name="scale")(scale)        # fixed bias 1
    return keras.Model(frames, {"flow": flow16, "scale": scale, "flow_stride8": flow8},
                       name=name or f"flownet_{variant}")


# ------------------------------------------------------------------------------- pretrained weights ----
#: The DFF checkpoints' FlowNetS (``get_flownet``) parameter name -> (our layer, MXNet operator).
#: Every one has ``<name>_weight`` and ``<name>_bias``; ``Convolution5_scale_bias`` is DFF's fixed 1.
MXNET_FLOWNET_S = {
    "flow_conv1": ("conv1", "conv"), "conv2": ("conv2", "conv"), "conv3": ("conv3", "conv"),
    "conv3_1": ("conv3_1", "conv"), "conv4": ("conv4", "conv"), "conv4_1": ("conv4_1", "conv"),
    "conv5": ("conv5", "conv"), "conv5_1": ("conv5_1", "conv"), "conv6": ("conv6", "conv"),
    "conv6_1": ("conv6_1", "conv"),
    "Convolution1": ("predict_flow6", "conv"), "Convolution2": ("predict_flow5", "conv"),
    "Convolution3": ("predict_flow4", "conv"), "Convolution4": ("predict_flow3", "conv"),
    "Convolution5": ("predict_flow2", "conv"),
    "deconv5": ("deconv5", "deconv"), "deconv4": ("deconv4", "deconv"), "deconv3": ("deconv3", "deconv"),
    "deconv2": ("deconv2", "deconv"),
    "upsample_flow6to5": ("upsample_flow6to5", "deconv"), "upsample_flow5to4": ("upsample_flow5to4", "deconv"),
    "upsample_flow4to3": ("upsample_flow4to3", "deconv"), "upsample_flow3to2": ("upsample_flow3to2", "deconv"),
    "Convolution5_scale": ("scale_conv", "conv"),
}

# MXNet's NDArray serialisation (src/ndarray/ndarray.cc: NDArray::Save / Load / LegacyLoad, and the list
# format of NDArray::Save(fo, data, names)); mshadow type flags (mshadow/base.h).
_LIST_MAGIC = 0x112
_V1_MAGIC, _V2_MAGIC, _V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_MX_DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8", 7: "?"}


class _Reader:
    def __init__(self, data, path):
        self.data, self.pos, self.path = memoryview(data), 0, path  # slices of a memoryview copy nothing

    def take(self, n, what):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"MXNet params file {self.path}: truncated or corrupt while reading {what} at byte "
                             f"{self.pos} (needs {n} bytes, {len(self.data) - self.pos} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt, what):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def _read_ndarray(r, index):
    what = f"array #{index}"
    (magic,) = r.unpack("<I", f"{what}'s header")
    if magic in (_V2_MAGIC, _V3_MAGIC):
        (stype,) = r.unpack("<i", f"{what}'s storage type")
        if stype != 0:
            raise ValueError(f"MXNet params file {r.path}: {what} has sparse storage (type {stype}); only dense "
                             "arrays are supported")
    if magic in (_V1_MAGIC, _V2_MAGIC, _V3_MAGIC):      # TShape: int32 ndim, int64 dims
        (ndim,) = r.unpack("<i", f"{what}'s ndim")
        if ndim < 0:                                     # V3: unknown shape, a "none" array
            return None
        shape = r.unpack(f"<{ndim}q", f"{what}'s shape")
    else:                                                # legacy (MXNet < 0.11): the header is ndim, uint32 dims
        ndim = magic
        if ndim > 32:
            raise ValueError(f"MXNet params file {r.path}: {what} starts with {magic:#x}, neither an NDArray magic "
                             "number nor a plausible legacy ndim: not an MXNet NDArray list")
        shape = r.unpack(f"<{ndim}I", f"{what}'s shape")
    if ndim == 0 and magic != _V3_MAGIC:
        return None                                      # a "none" array (nothing more is stored)
    r.unpack("<ii", f"{what}'s context")                 # dev_type, dev_id
    (flag,) = r.unpack("<i", f"{what}'s type flag")
    if flag not in _MX_DTYPES:
        raise ValueError(f"MXNet params file {r.path}: {what} has type flag {flag}; supported: "
                         f"{ {k: np.dtype(v).name for k, v in _MX_DTYPES.items()} }")
    dtype = np.dtype(_MX_DTYPES[flag])
    count = int(np.prod(shape, dtype=np.int64))
    data = r.take(count * dtype.itemsize, f"{what}'s {count} values")
    # a writable view of the file's buffer (little-endian, as MXNet writes on every platform it runs on)
    return np.frombuffer(data, dtype).reshape(shape)


def read_mxnet_params(path):
    """Reads an MXNet ``.params`` file (``mx.nd.save`` / ``Module.save_checkpoint``) in pure NumPy.

    Supports every dense NDArray version MXNet writes: legacy (MXNet < 0.11, uint32 shape), V1 (int64
    shape), V2 (with storage type; MXNet 0.11 ... 1.x) and V3 (NumPy shape semantics); float16/32/64,
    (u)int8, int32/64 and bool. Sparse arrays raise ``ValueError``.

    Returns:
      ``{name: np.ndarray}`` with the names as stored (``arg:...`` / ``aux:...`` for checkpoints).
    """
    path = os.fspath(path)
    buffer = bytearray(os.path.getsize(path))
    with open(path, "rb") as f:
        f.readinto(buffer)
    r = _Reader(buffer, path)
    header, _reserved = r.unpack("<QQ", "the file header")
    if header != _LIST_MAGIC:
        raise ValueError(f"{path} is not an MXNet NDArray list: header {header:#x}, expected {_LIST_MAGIC:#x}")
    (count,) = r.unpack("<Q", "the number of arrays")
    arrays = [_read_ndarray(r, i) for i in range(count)]
    (n_keys,) = r.unpack("<Q", "the number of names")
    keys = []
    for i in range(n_keys):
        (length,) = r.unpack("<Q", f"name #{i}'s length")
        keys.append(bytes(r.take(length, f"name #{i}")).decode("utf-8"))
    if n_keys != count:
        raise ValueError(f"MXNet params file {path} holds {count} arrays but {n_keys} names: a checkpoint names "
                         "every array")
    if r.pos != len(r.data):
        raise ValueError(f"MXNet params file {path}: {len(r.data) - r.pos} unexpected bytes after the names")
    return dict(zip(keys, arrays))


def _read_checkpoint(path):
    """``({MXNet name without arg:/aux:: array getter}, closer)``: an .npz is read lazily (only the flow
    network's arrays), a .params file at once (zero-copy views of its bytes)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path`: no file {path!r}")
    with open(path, "rb") as f:
        head = f.read(8)
    if zipfile.is_zipfile(path):
        npz = np.load(path, allow_pickle=False)
        raw, close = {k: (lambda k=k: npz[k]) for k in npz.files}, npz.close
    elif len(head) == 8 and struct.unpack("<Q", head)[0] == _LIST_MAGIC:
        raw, close = {k: (lambda v=v: v) for k, v in read_mxnet_params(path).items()}, lambda: None
    else:
        raise ValueError(f"`path` {path!r} is neither an .npz archive nor an MXNet .params file "
                         f"(first bytes {head.hex()})")
    out = {}
    for key, getter in raw.items():
        name = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
        if name in out:
            close()
            raise ValueError(f"`path` {path!r} holds {name!r} twice (with and without an arg:/aux: prefix)")
        out[name] = getter
    return out, close


def _variant(net):
    """Which :func:`flownet` variant ``net`` is, from its layers (its name may be anything)."""
    names = {layer.name: layer for layer in net.layers}
    conv1, conv2 = names.get("conv1"), names.get("conv2")
    if not isinstance(conv1, keras.layers.Conv2D) or "scale_conv" not in names:
        return None
    if not isinstance(conv2, keras.layers.Conv2D):
        return "inception"
    return {64 // d: v for v, d in _DIV.items() if v != "inception"}.get(conv1.filters)


def load_flownet_weights(model, path, *, prefix="", init_missing_scale=False):
    """Loads the FlowNetS weights of a DFF checkpoint (MXNet names, module docstring) into ``model``.

    Args:
      model: a :func:`flownet` ``"s"`` model (``feature_channels=1024`` for the released checkpoints),
        or a model holding one as layer ``"flownet"`` (:func:`tfvideo.models.dff.dff_segmenter`).
      path: an ``.npz`` of MXNet-named arrays in MXNet layout (keys ``flow_conv1_weight`` ... with or
        without MXNet's ``arg:``/``aux:``), or the MXNet ``.params`` checkpoint itself (read by
        :func:`read_mxnet_params`). Other arrays in the file (the ResNet, the task head) are ignored.
      prefix: prepended to every MXNet name looked up (for checkpoints whose names were prefixed).
      init_missing_scale: if the file has no ``Convolution5_scale_weight`` (DFF's Flying-Chairs
        ``flownet-0000.params``), set the scale field to DFF's initialisation (weights 0: ``S = 1``)
        instead of raising.

    Returns:
      The layers loaded, in :data:`MXNET_FLOWNET_S` order (24 layers: 10 encoder and 5 flow-prediction
      convolutions, 4 + 4 deconvolutions, the scale field's convolution).

    Raises:
      ValueError: ``model`` is not FlowNetS (no weights were released for the others); keys missing
        from the file (all of them named); an array of the wrong shape (key, file shape and expected
        MXNet-layout shape); ``Convolution5_scale_bias`` not 1 (our scale field's bias is fixed at 1).
        Nothing is loaded unless everything checks.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model (flownet('s') or a DFF model), got {type(model).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"`prefix` must be a str, got {prefix!r}")
    net = model
    if "flownet" in {layer.name for layer in model.layers} and isinstance(model.get_layer("flownet"), keras.Model):
        net = model.get_layer("flownet")
    variant = _variant(net)
    if variant != "s":
        what = f"FlowNet {variant!r}" if variant else "not a tfvideo flownet model"
        raise ValueError(f"`model` ({net.name!r}) is {what}: only FlowNetS ('s') matches the released DFF "
                         "weights (the 'half', 'inception' and 'tiny' variants have none)")
    getters, close = _read_checkpoint(path)
    try:
        staged = _stage(net, getters, os.fspath(path), prefix, init_missing_scale)
    finally:
        close()
    for layer, new in staged:
        layer.set_weights(new)
    return [layer for layer, _ in staged]


def _stage(net, getters, path, prefix, init_missing_scale):
    """The new weights of every FlowNetS layer, checked: ``[(layer, [kernel, bias]), ...]``."""
    missing = [f"{prefix}{m}_{part}" for m in MXNET_FLOWNET_S for part in ("weight", "bias")
               if m != "Convolution5_scale" or part == "weight"]
    scale_key = f"{prefix}Convolution5_scale_weight"
    init_scale = init_missing_scale and scale_key not in getters
    missing = [k for k in missing if k not in getters and not (init_scale and k == scale_key)]
    if missing:
        raise ValueError(f"`path` {path!r} lacks {len(missing)} FlowNetS array(s): {missing} "
                         f"(prefix {prefix!r}; it holds e.g. {sorted(getters)[:5]})"
                         + (" -- without the scale field (DFF's flownet-0000.params), pass init_missing_scale=True"
                            if missing == [scale_key] else ""))
    staged = []
    for mx_name, (layer_name, op) in MXNET_FLOWNET_S.items():
        layer = net.get_layer(layer_name)
        kernel_shape = tuple(layer.kernel.shape)
        # MXNet Convolution (O, I, kh, kw) and Deconvolution (I, O, kh, kw) both become Keras'
        # (kh, kw, I, O) / Conv2DTranspose (kh, kw, O, I) by the same transpose, without a spatial flip
        expected = tuple(kernel_shape[i] for i in (3, 2, 0, 1))
        key = f"{prefix}{mx_name}_weight"
        value = np.zeros(expected, np.float32) if init_scale and key == scale_key else np.asarray(getters[key]())
        if value.shape != expected:
            hint = (" (build the flow network with feature_channels=1024, DFF's)"
                    if layer_name == "scale_conv" and value.shape[1:] == expected[1:] else "")
            raise ValueError(f"`path`: {key!r} has shape {value.shape}; layer {layer_name!r} ({op}) needs "
                             f"{expected} in MXNet layout{hint}")
        new = [np.transpose(value, (2, 3, 1, 0)).astype(layer.kernel.dtype)]
        bias_key = f"{prefix}{mx_name}_bias"
        if layer_name == "scale_conv":
            bias = np.asarray(getters[bias_key]()) if bias_key in getters else np.ones(1)
            if not np.allclose(bias, 1.0):
                raise ValueError(f"`path`: {bias_key!r} is not 1 everywhere (range {np.min(bias)} .. "
                                 f"{np.max(bias)}); our scale field's bias is DFF's fixed 1")
        else:
            bias = np.asarray(getters[bias_key]())
            if bias.shape != tuple(layer.bias.shape):
                raise ValueError(f"`path`: {bias_key!r} has shape {bias.shape}; layer {layer_name!r} needs "
                                 f"{tuple(layer.bias.shape)}")
            new.append(bias.astype(layer.bias.dtype))
        staged.append((layer, new))
    return staged
