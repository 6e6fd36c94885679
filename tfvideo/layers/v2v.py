"""Small layers of the C3D / V2V models (seed 000, Tran et al., "Deep End2End Voxel2Voxel Prediction").

* :class:`SubtractMean`: C3D's input preprocessing, ``0..255`` minus a per-channel mean, no scaling
  (:data:`C3D_MEAN_RGB`, :data:`C3D_MEAN_GREY`).
* :class:`ClipSizeCheck`: the size rule of V2V (Sec. 3): time a multiple of 8, height and width
  multiples of 16, so that every pooling halves exactly and the decoder gives back the input size;
  a ``ValueError`` for known sizes, a runtime assertion with the same message for unknown ones.
* :class:`AlphaScale`: the flow head's ``x alpha`` (Sec. 5, "at inference time, we need to scale the
  predictions by alpha = 15").
* :class:`ClipAtInference`: keeps the colouring head's output in ``[0, 1]`` at inference (Sec. 6).
* :class:`TrilinearUpsampling`: the upsampling of the Conv3b/4b/5b-up baselines (Sec. 4,
  "Baselines"): bilinear in ``(H, W)``, linear in ``T``, half-pixel centres.

Time folding (the 2D-V2V baseline runs 2D layers on every frame) reuses
:class:`tfvideo.layers.segments.PerSegment`, never ``keras.layers.TimeDistributed``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.ops.image import LUMA_601
from tfvideo.ops.xla import in_xla_context

__all__ = ["C3D_MEAN_RGB", "C3D_MEAN_GREY", "SubtractMean", "ClipSizeCheck", "AlphaScale",
           "ClipAtInference", "TrilinearUpsampling"]

#: Per-channel mean of C3D's Sports-1M training clips in RGB order (the released
#: ``sport1m_train16_128_mean.binaryproto`` is a per-voxel ``(3, 16, 128, 171)`` mean in BGR order;
#: its per-channel averages are about B 90.2, G 97.7, R 101.4). C3D subtracts it from 0..255 pixels
#: and does not scale (the ``mean_file`` of the data layers of the released prototxts).
C3D_MEAN_RGB = (101.4, 97.7, 90.2)
#: The grey (C = 1) counterpart: the ITU-R BT.601 luma of :data:`C3D_MEAN_RGB` (about 97.9), the same
#: weights as the grey clips of ``dense_dataset(target="colour")`` (colouring, Sec. 6).
C3D_MEAN_GREY = (sum(w * m for w, m in zip(LUMA_601, C3D_MEAN_RGB)),)


@keras.saving.register_keras_serializable(package="tfvideo")
class SubtractMean(keras.layers.Layer):
    """``x - mean`` per channel, as float32; any numeric input dtype (uint8 frames in [0, 255]).

    C3D (and so V2V, Sec. 3) is fed 0..255 pixels minus a mean, without any scaling: the released
    prototxts give a ``mean_file`` and no ``scale``. We use a per-channel mean instead of C3D's
    per-voxel mean file (our choice: it works for any clip size and crop, and the per-voxel mean
    is nearly constant per channel). ``mean`` has one value per input channel.
    """

    def __init__(self, mean=C3D_MEAN_RGB, **kwargs):
        super().__init__(**kwargs)
        try:
            self.mean = [float(m) for m in mean]
        except TypeError:
            raise TypeError(f"`mean` must be a sequence of numbers (one per channel); got {mean!r}") from None
        if not self.mean:
            raise ValueError("`mean` must have one value per channel; got an empty sequence")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels != len(self.mean):
            raise ValueError(f"`mean` has {len(self.mean)} values but the input has {channels} channels "
                             f"(shape {tuple(input_shape)})")
        self.built = True

    def call(self, x):
        return tf.cast(x, tf.float32) - tf.constant(self.mean, tf.float32)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "mean": self.mean}


@keras.saving.register_keras_serializable(package="tfvideo")
class ClipSizeCheck(keras.layers.Layer):
    """Identity on ``(B, T, H, W, C)`` clips that checks the V2V size rule, else a clear error.

    V2V (Sec. 3, Fig. 3) pools time 3 times and space 4 times by 2, and its deconvolutions undo
    exactly that: the output has the input's ``T, H, W`` only when ``T`` is a multiple of
    ``time_multiple`` (8) and ``H, W`` multiples of ``space_multiple`` (16). Other sizes would make a
    pooling floor (Keras) or ceil (Caffe) and the skip concatenations or the output size wrong.

    * Sizes known when the layer is built (a model on ``keras.Input((16, 112, 112, 3))``) or when it
      is called eagerly: ``ValueError`` naming the rule.
    * Sizes unknown in a traced graph (an exported signature with ``(None, None, None, None, C)``):
      a ``tf.debugging`` assertion with the same message (``InvalidArgumentError`` at run time).
      XLA drops TensorFlow's runtime assertions (as for ``TVNet(check_finite=True)``), so a layer
      with unknown sizes sets ``supports_jit = False`` (Keras' ``jit_compile="auto"``) and refuses to
      trace inside a ``jit_compile`` function with unknown sizes (``ValueError``).
    """

    def __init__(self, time_multiple=8, space_multiple=16, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("time_multiple", time_multiple), ("space_multiple", space_multiple)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be an int >= 1; got {value!r}")
        self.time_multiple = time_multiple
        self.space_multiple = space_multiple

    @property
    def rule(self):
        return (f"V2V size rule: clip time T must be a multiple of {self.time_multiple} and height H "
                f"and width W multiples of {self.space_multiple}, so that the poolings divide exactly "
                "and the output has the input's size")

    def _check_static(self, shape):
        if len(shape) != 5:
            raise ValueError(f"`frames` must have shape (batch, T, H, W, C); got {tuple(shape)}")
        bad = [(n, d, m) for n, d, m in zip("THW", shape[1:4], (self.time_multiple,
                                                                self.space_multiple,
                                                                self.space_multiple))
               if d is not None and int(d) % m]
        if bad:
            got = ", ".join(f"{n}={d}" for n, d, _ in bad)
            raise ValueError(f"{self.rule}; got {got} (input shape {tuple(shape)})")

    def build(self, input_shape):
        self._check_static(input_shape)
        if any(d is None for d in input_shape[1:4]):
            self.supports_jit = False  # the runtime assertion would be dropped by XLA (class docstring)
        self.built = True

    def call(self, x):
        self._check_static(x.shape)
        unknown = [i for i in (1, 2, 3) if x.shape[i] is None]
        if not unknown:
            return x
        if in_xla_context():
            raise ValueError(f"ClipSizeCheck cannot check unknown clip sizes inside an XLA-compiled "
                             f"function (jit_compile=True): XLA drops TensorFlow's runtime checks. Give "
                             f"the model static sizes or do not use jit_compile ({self.rule})")
        shape = tf.shape(x)
        checks = []
        for i in unknown:
            multiple = self.time_multiple if i == 1 else self.space_multiple
            checks.append(tf.debugging.Assert(
                tf.equal(tf.math.floormod(shape[i], multiple), 0),
                [f"{self.rule}; got input shape (batch, T, H, W, C) =", shape], summarize=5))
        with tf.control_dependencies(checks):
            return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "time_multiple": self.time_multiple,
                "space_multiple": self.space_multiple}


@keras.saving.register_keras_serializable(package="tfvideo")
class AlphaScale(keras.layers.Layer):
    """``x * alpha``: V2V's flow head (Sec. 5) predicts ``flow / alpha`` (alpha = 15, "so that most
    values fall in the range [-1, 1]") and multiplies back at inference, so the model outputs flow in
    pixels. The loss (:func:`tfvideo.losses.huber_flow_loss`) divides prediction and target by the
    same alpha, so the gradient reaching Conv-pre is the paper's."""

    def __init__(self, alpha=15.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"`alpha` must be a positive number; got {alpha!r}")
        self.alpha = float(alpha)

    def call(self, x):
        return x * tf.cast(self.alpha, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="tfvideo")
class ClipAtInference(keras.layers.Layer):
    """Identity in training, ``clip(x, min_value, max_value)`` at inference.

    The colouring head (Sec. 6) is the paper's linear Conv-pre trained by L2 regression: clipping
    only at inference keeps the regression (and its gradient) exactly the paper's while the model's
    predictions are valid colours in ``[0, 1]`` (see :func:`tfvideo.models.v2v.v2v`).
    """

    def __init__(self, min_value=0.0, max_value=1.0, **kwargs):
        super().__init__(**kwargs)
        self.min_value, self.max_value = float(min_value), float(max_value)
        if not self.min_value < self.max_value:
            raise ValueError(f"`min_value` must be below `max_value`; got {min_value!r}, {max_value!r}")

    def call(self, x, training=None):
        if training:
            return x
        return tf.clip_by_value(x, tf.cast(self.min_value, x.dtype), tf.cast(self.max_value, x.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value}


@keras.saving.register_keras_serializable(package="tfvideo")
class TrilinearUpsampling(keras.layers.Layer):
    """``(B, T, H, W, C) -> (B, ft T, fh H, fw W, C)`` float32: bilinear in ``(H, W)``, linear in ``T``.

    The Conv3b/4b/5b-up baselines of Table 1 (Sec. 4, "Baselines") "apply a bilinear upsampling to
    produce a prediction of the same size as the input" from a ``2 x 7 x 7`` (Conv5b) prediction; the
    paper does not say how time is upsampled: we interpolate linearly in time too (trilinear,
    separable). Sample positions use half-pixel centres (``src = (dst + 0.5) / f - 0.5``, clamped at
    the borders), TensorFlow 2's ``tf.image.resize`` convention (PyTorch's ``align_corners=False``):
    an integer factor then keeps the grid centred. With the size rule (:class:`ClipSizeCheck`) the
    factors bring the prediction back to the input size exactly.

    Args:
      factors: ``(ft, fh, fw)`` positive ints (time, height, width).
    """

    def __init__(self, factors=(8, 16, 16), **kwargs):
        super().__init__(**kwargs)
        factors = tuple(factors) if isinstance(factors, (list, tuple)) else factors
        if (not isinstance(factors, tuple) or len(factors) != 3
                or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in factors)):
            raise ValueError(f"`factors` must be 3 positive ints (time, height, width); got {factors!r}")
        self.factors = factors

    def call(self, x):
        x = tf.convert_to_tensor(x)
        if x.shape.rank != 5:
            raise ValueError(f"TrilinearUpsampling expects (batch, T, H, W, C); got {x.shape}")
        ft, fh, fw = self.factors
        dyn = tf.shape(x)
        b, t, h, w, c = [d if d is not None else dyn[i] for i, d in enumerate(x.shape)]
        y = tf.cast(x, tf.float32)
        if fh != 1 or fw != 1:  # bilinear on every frame
            y = tf.image.resize(tf.reshape(y, [-1, h, w, c]), [h * fh, w * fw], method="bilinear")
        h2, w2 = h * fh, w * fw
        if ft != 1:  # linear in time: resize (T, H*W) "images"; the H*W axis is left unchanged
            y = tf.reshape(y, [-1, t, h2 * w2, c])
            y = tf.image.resize(y, [t * ft, h2 * w2], method="bilinear")
        return tf.reshape(y, [b, t * ft, h2, w2, c])

    def compute_output_shape(self, input_shape):
        b, t, h, w, c = input_shape
        ft, fh, fw = self.factors
        return (b, None if t is None else t * ft, None if h is None else h * fh,
                None if w is None else w * fw, c)

    def compute_output_spec(self, x):
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "factors": list(self.factors)}
