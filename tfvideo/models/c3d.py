"""C3D (Tran et al., ICCV 2015), the encoder of V2V (seed 000, Sec. 3 and Fig. 3), and its weight loader.

Layers (the released ``c3d_sport1m_feature_extractor_frm.prototxt``; V2V Sec. 3 "The lower part
contains layers from C3D"): ``3x3x3`` convolutions, stride 1, padding 1 (``"same"``), ReLU, no batch
normalisation::

    conv1a 64   pool1 max (1,2,2)/(1,2,2)
    conv2a 128  pool2 max (2,2,2)/(2,2,2)
    conv3a 256  conv3b 256  pool3 (2,2,2)
    conv4a 512  conv4b 512  pool4 (2,2,2)
    conv5a 512  conv5b 512                     (16, 112, 112) -> conv5b (2, 7, 7, 512)
    classifier: pool5 (2,2,2) -> flatten -> fc6 4096 ReLU, dropout 0.5 -> fc7 4096 ReLU, dropout 0.5
                -> fc8 logits

* **Pooling padding**: Caffe's C3D pools in *ceil* mode (``pool3d_layer.cpp``: ``ceil((in - k) / s)
  + 1``), so pool5 takes conv5b's ``7 x 7`` to ``4 x 4`` and fc6 sees ``512 x 1 x 4 x 4 = 8192``
  values. With kernel = stride, Keras' ``"same"`` padding gives exactly that (the one missing row is
  added at the end, as Caffe's clipped last window), so every pool here is ``"same"`` (identical to
  ``"valid"`` on even sizes).
* **Input**: ``frames`` uint8 ``(B, T, H, W, C)``; :class:`tfvideo.layers.v2v.SubtractMean`
  subtracts C3D's per-channel Sports-1M mean (:data:`C3D_MEAN_RGB`; :data:`C3D_MEAN_GREY` for
  ``C = 1``) without scaling, as C3D feeds Caffe ``0..255 - mean``. Our frames are RGB; Caffe's C3D
  reads BGR: :func:`load_c3d_weights` flips conv1a's input channels.
* **Output**: the classifier returns logits (the softmax lives in the loss / at inference, as every
  tfvideo classifier, e.g. :func:`tfvideo.models.tvnet.temporal_stream`).
* **Initialisation** (our choice): He-normal kernels for the ReLU layers and zero biases. The
  prototxts use Gaussian ``std 0.01`` (fc: 0.005) and biases 1, tuned for Caffe's summed losses at
  learning rates down to ``1e-8``; with Keras' mean-reduced losses and usual learning rates He-normal
  keeps the activations' variance through the 8 ReLU convolutions when training from scratch.
  conv1a's He-normal kernel is divided by :data:`INPUT_STD` (64, about the standard deviation of
  mean-subtracted 0..255 video pixels; 70 on scikit-image's ``astronaut``), so activations start at
  unit scale although C3D's input is not scaled: with plain He-normal they start about 60 times
  larger and SGD at learning rate 0.01 diverges to NaN within 2 steps (measured on V2V, 8x64x64
  clips), with this scaling it trains. Loading C3D weights replaces all of this.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tfvideo.layers.v2v import C3D_MEAN_GREY, C3D_MEAN_RGB, SubtractMean

__all__ = ["C3D_MEAN_RGB", "C3D_MEAN_GREY", "ENCODER_LAYERS", "CONV_LAYERS", "INPUT_STD", "default_mean",
           "apply_c3d_encoder", "c3d_encoder", "c3d_classifier", "load_c3d_weights"]

#: The encoder in order: ``(name, filters)`` for a convolution, ``(name, (pt, ph, pw))`` for a pool.
ENCODER_LAYERS = (
    ("conv1a", 64), ("pool1", (1, 2, 2)),
    ("conv2a", 128), ("pool2", (2, 2, 2)),
    ("conv3a", 256), ("conv3b", 256), ("pool3", (2, 2, 2)),
    ("conv4a", 512), ("conv4b", 512), ("pool4", (2, 2, 2)),
    ("conv5a", 512), ("conv5b", 512),
)
#: Typical standard deviation of mean-subtracted 0..255 pixels: conv1a's initial kernel is scaled by
#: ``1 / INPUT_STD`` (module docstring, "Initialisation").
INPUT_STD = 64.0
#: Names of the convolutions of the encoder.
CONV_LAYERS = tuple(name for name, spec in ENCODER_LAYERS if name.startswith("conv"))
_FC = ("fc6", "fc7", "fc8")


def default_mean(channels):
    """C3D's mean for ``channels`` = 3 (RGB) or 1 (grey: its BT.601 luma)."""
    if channels == 3:
        return C3D_MEAN_RGB
    if channels == 1:
        return C3D_MEAN_GREY
    raise ValueError(f"no default C3D mean for {channels} input channels (1 or 3); pass `mean`")


def _check_choice(value, choices, arg):
    if value not in choices:
        raise ValueError(f"`{arg}` must be one of {', '.join(map(repr, choices))}; got {value!r}")


def apply_c3d_encoder(x, *, up_to="conv5b", spatial_only=False):
    """Apply C3D's layers ``conv1a`` ... ``up_to`` to the (mean-subtracted) float tensor ``x``.

    Args:
      x: ``(B, T, H, W, C)`` (or ``(B, H, W, C)`` with ``spatial_only``).
      up_to: the last convolution (one of :data:`CONV_LAYERS`).
      spatial_only: the 2D counterpart used by the 2D-V2V baseline (V2V Sec. 4, "all 3D
        convolutional layers, 3D pooling layers ... are replaced with 2D" ones): ``3x3`` convolutions
        with the same channel counts and ``2x2`` pools (pool1 included) on single frames.

    Returns:
      A dict layer name -> output tensor for every layer applied (conv outputs are after ReLU).
    """
    _check_choice(up_to, CONV_LAYERS, "up_to")
    conv = keras.layers.Conv2D if spatial_only else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if spatial_only else keras.layers.MaxPooling3D
    outputs = {}
    for name, spec in ENCODER_LAYERS:
        if name.startswith("conv"):
            init = "he_normal" if name != "conv1a" else keras.initializers.VarianceScaling(
                2.0 / INPUT_STD**2, mode="fan_in", distribution="truncated_normal")  # He / INPUT_STD
            x = conv(spec, 3, padding="same", activation="relu", kernel_initializer=init, name=name)(x)
        else:
            size = (2, 2) if spatial_only else spec
            x = pool(size, strides=size, padding="same", name=name)(x)
        outputs[name] = x
        if name == up_to:
            break
    return outputs


def _frames_input(input_shape, arg="input_shape"):
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4:
        raise ValueError(f"`{arg}` must be (T, H, W, C); got {input_shape!r}")
    t, h, w, c = input_shape
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"`{arg}` must end with a known channel count C >= 1; got {input_shape!r}")
    for d in (t, h, w):
        if d is not None and (not isinstance(d, int) or d < 1):
            raise ValueError(f"`{arg}` sizes must be positive ints or None; got {input_shape!r}")
    return keras.Input(tuple(input_shape), dtype="uint8", name="frames")


def c3d_encoder(input_shape=(16, 112, 112, 3), *, up_to="conv5b", mean=None, name="c3d_encoder"):
    """C3D's convolutional part: ``frames`` uint8 ``(B, T, H, W, C)`` -> ``up_to``'s features.

    ``(16, 112, 112, 3)`` gives conv5b ``(B, 2, 7, 7, 512)``. ``mean`` (one value per channel) defaults
    to :func:`default_mean`. Layer names are C3D's (``conv1a`` ... ``conv5b``, ``pool1`` ...
    ``pool4``), which :func:`load_c3d_weights` relies on.
    """
    frames = _frames_input(input_shape)
    x = SubtractMean(default_mean(input_shape[-1]) if mean is None else mean, name="mean")(frames)
    outputs = apply_c3d_encoder(x, up_to=up_to)
    return keras.Model(frames, outputs[up_to], name=name)


def c3d_classifier(num_classes=487, *, input_shape=(16, 112, 112, 3), dropout=0.5, fc_units=4096,
                   mean=None, name="c3d"):
    """C3D's classifier: ``frames`` uint8 ``(B, 16, 112, 112, 3)`` -> logits ``(B, num_classes)``.

    pool5 ``(2, 2, 2)`` with ceil-mode (``"same"``) padding, flatten, fc6 ``fc_units`` ReLU,
    dropout, fc7 ``fc_units`` ReLU, dropout, fc8 logits. Sports-1M has 487 classes; ``fc_units``
    (4096 in C3D) is an argument only so tests can build a small copy. fc6's input size follows
    ``input_shape`` (8192 for C3D's 16 x 112 x 112).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2; got {num_classes!r}")
    if isinstance(fc_units, bool) or not isinstance(fc_units, int) or fc_units < 1:
        raise ValueError(f"`fc_units` must be a positive int; got {fc_units!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}")
    if any(d is None for d in input_shape[:3]):
        raise ValueError(f"`input_shape` must be fully known for the classifier (fc6's size depends "
                         f"on it); got {input_shape!r}")
    frames = _frames_input(input_shape)
    x = SubtractMean(default_mean(input_shape[-1]) if mean is None else mean, name="mean")(frames)
    x = apply_c3d_encoder(x)["conv5b"]
    x = keras.layers.MaxPooling3D(2, strides=2, padding="same", name="pool5")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = keras.layers.Dense(fc_units, activation="relu", kernel_initializer="he_normal", name=fc)(x)
        x = keras.layers.Dropout(dropout, name=f"drop{fc[2]}")(x)
    logits = keras.layers.Dense(num_classes, name="fc8")(x)
    return keras.Model(frames, logits, name=name)


# ------------------------------------------------------------------------------ weight loading ----
def _all_layers(model):
    """Every layer of ``model``, nested models and wrappers (e.g. ``PerSegment``) included."""
    stack, seen = [model], []
    while stack:
        layer = stack.pop()
        if any(layer is s for s in seen):
            continue
        seen.append(layer)
        stack.extend(getattr(layer, "layers", []) if isinstance(layer, keras.Model) else [])
        inner = getattr(layer, "layer", None)
        if isinstance(inner, keras.layers.Layer):
            stack.append(inner)
    return seen[1:]


def _fc6_rows(kernel, pool5_shape):
    """Caffe fc6 ``(out, C*T*H*W)`` (rows flattened as ``(C, T, H, W)``) -> Keras ``(T*H*W*C, out)``."""
    t, h, w, c = pool5_shape
    out = kernel.shape[0]
    return kernel.reshape(out, c, t, h, w).transpose(2, 3, 4, 1, 0).reshape(t * h * w * c, out)


def load_c3d_weights(model, path):
    """Load converted C3D weights (``.npz``, Caffe layout) into the layers of ``model`` of the same names.

    File format: a NumPy ``.npz`` with, for each layer ``L`` stored, ``L/kernel`` and ``L/bias``
    under *our* layer names (C3D's ``fc6-1``, ``fc7-1``, ``fc8-1`` are ``fc6``, ``fc7``, ``fc8``):

    * ``conv1a`` ... ``conv5b``: ``kernel`` ``(out, in, kt, kh, kw)`` float (Caffe's
      ``Convolution3D`` blob), ``bias`` ``(out,)`` (any shape of ``out`` values, e.g. Caffe's
      ``(1, 1, 1, 1, out)``). conv1a's ``in`` axis is in **BGR** order, as C3D reads frames.
    * ``fc6``, ``fc7``, ``fc8``: ``kernel`` ``(out, in)`` (Caffe ``InnerProduct``), ``bias``
      ``(out,)``. fc6's ``in`` axis is pool5 flattened in Caffe's ``(C, T, H, W)`` order.

    Conversion: kernels to Keras' ``(kt, kh, kw, in, out)`` / ``(in, out)``; conv1a's input channels
    reversed (BGR -> RGB: our frames are RGB); fc6's rows permuted from ``(C, T, H, W)`` to Keras'
    ``Flatten`` order ``(T, H, W, C)`` of the model's ``pool5`` output. Converting the official
    ``c3d_sport1m`` caffemodel into this file (reading Caffe's protobuf) is out of scope here: any
    script that dumps each blob as a NumPy array under these keys will do.

    Only layers present in both the file and the model are loaded, so the same file serves
    :func:`c3d_encoder`, :func:`c3d_classifier` and the V2V models (the "fine-tune" rows of V2V's
    Table 1); every other weight keeps its value. Nothing is downloaded.

    Args:
      model: a Keras model holding (possibly nested) layers named as above.
      path: the ``.npz`` file.

    Returns:
      The list of the layer names loaded, in C3D order.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: a kernel or bias whose converted shape differs from the model's (naming the layer
        and both shapes), a layer with ``kernel`` but no ``bias`` (or the reverse), or no layer of
        the file in the model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no C3D weights file at {path!r} (a .npz in Caffe layout, see "
                                "load_c3d_weights' docstring)")
    layers = {}
    for layer in _all_layers(model):
        layers.setdefault(layer.name, layer)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    names = sorted({key.split("/")[0] for key in arrays}, key=lambda n: (
        (CONV_LAYERS + _FC).index(n) if n in CONV_LAYERS + _FC else len(CONV_LAYERS) + 3, n))
    matched = [n for n in names if n in layers and n in CONV_LAYERS + _FC]
    if not matched:
        raise ValueError(f"{path!r} holds no layer of the model: its layers are {names}, C3D layers "
                         f"expected as '<name>/kernel', '<name>/bias' with names in "
                         f"{list(CONV_LAYERS + _FC)}")
    converted = {}
    for name in matched:
        missing = [k for k in ("kernel", "bias") if f"{name}/{k}" not in arrays]
        if missing:
            raise ValueError(f"{path!r}: layer {name!r} lacks {[f'{name}/{k}' for k in missing]}")
        layer = layers[name]
        kernel = np.asarray(arrays[f"{name}/kernel"], np.float32)
        bias = np.asarray(arrays[f"{name}/bias"], np.float32)
        if not hasattr(layer, "kernel") or not hasattr(layer, "bias"):
            raise ValueError(f"model layer {name!r} ({type(layer).__name__}) has no kernel and bias")
        k_shape, b_shape = tuple(layer.kernel.shape), tuple(layer.bias.shape)
        caffe_shape = kernel.shape
        if name in CONV_LAYERS:
            if kernel.ndim != 5:
                raise ValueError(f"{path!r}: {name}/kernel must be Caffe (out, in, kt, kh, kw); got "
                                 f"shape {kernel.shape}, model kernel {k_shape}")
            if name == "conv1a":
                kernel = kernel[:, ::-1]  # BGR -> RGB input channels
            kernel = kernel.transpose(2, 3, 4, 1, 0)
        else:
            if kernel.ndim != 2:
                raise ValueError(f"{path!r}: {name}/kernel must be Caffe (out, in); got shape "
                                 f"{kernel.shape}, model kernel {k_shape}")
            if name == "fc6":
                if "pool5" not in layers:
                    raise ValueError("fc6 needs the model's 'pool5' layer to order its rows")
                pool5 = tuple(layers["pool5"].output.shape[1:])
                if None in pool5 or kernel.shape[1] != int(np.prod(pool5)):
                    raise ValueError(f"{path!r}: layer 'fc6' kernel has shape {kernel.shape} (Caffe "
                                     f"(out, in)), the model's kernel is {k_shape} (pool5 {pool5})")
                kernel = _fc6_rows(kernel, pool5)
            else:
                kernel = kernel.T
        if bias.size == b_shape[0]:
            bias = bias.reshape(b_shape)
        if kernel.shape != k_shape or bias.shape != b_shape:
            raise ValueError(f"{path!r}: layer {name!r} shape mismatch: file kernel {caffe_shape} "
                             f"(Caffe; {kernel.shape} as Keras) / bias {bias.shape}, model kernel "
                             f"{k_shape} / bias {b_shape}")
        converted[name] = (kernel, bias)
    for name, (kernel, bias) in converted.items():  # assign only once every layer has checked out
        layers[name].kernel.assign(kernel)
        layers[name].bias.assign(bias)
    return matched
