"""Temporal max-pooling layers of the feature-pooling heads of Ng's thesis, chapter 3 ("Beyond Short
Snippets"; digest ``seeds/digest-004-thesis.md``, Sec. 3.2).

Inputs are ``(batch, T, ...)`` with the frames on axis 1 (per-frame CNN maps ``(B, T, H, W, C)`` or
per-frame vectors ``(B, T, D)``):

* :class:`TemporalMaxPooling`: max over all frames, ``(B, T, ...) -> (B, ...)`` (Conv Pooling on
  conv maps, Late Pooling on FC vectors, stage 2 of Slow Pooling).
* :class:`TemporalWindowMaxPooling`: max over windows of ``window`` frames every ``stride`` frames,
  ``(B, T, ...) -> (B, T', ...)`` (stage 1 of Slow Pooling, Local Pooling: 10 frames, stride 5).
* :class:`FlattenTowers`: ``(B, T', D) -> (B, T' * D)``, the concatenated towers feeding Local
  Pooling's "larger softmax layer connected to all towers" (needs a fixed ``T'``).
* :class:`TimeDomainConvolution`: the "Time-Domain Convolution" layer, a 3-D convolution with
  kernels of ``3 x 3`` pixels spanning 10 frames, frame stride 5 (digest 3.2).

Why max (digest 3.2): average pooling and a fully connected "pooling layer" "failed to learn
effectively due to the large number of gradients that they generate"; the max sends the gradient of
each output element to the single frame that produced it (sparse updates). ``tf.reduce_max`` and
``tf.nn.max_pool1d`` do exactly that; where several frames tie for the maximum (measure zero for
real-valued features, common only for ReLU zeros, whose own gradient is 0),
:class:`TemporalMaxPooling` shares the gradient equally between them and
:class:`TemporalWindowMaxPooling` gives it to one of them.
"""

from __future__ import annotations

import math
import numbers

import keras
import tensorflow as tf

from tfvideo.ops.xla import in_xla_context

__all__ = ["TemporalMaxPooling", "TemporalWindowMaxPooling", "FlattenTowers",
           "TimeDomainConvolution", "window_count"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1; got {value!r}")
    return int(value)


def _check_rank(shape, minimum, layer, expected):
    if len(shape) < minimum:
        raise ValueError(f"{layer} takes inputs of shape {expected} (time on axis 1); got "
                         f"{tuple(shape)}")
    if shape[1] is not None and int(shape[1]) < 1:
        raise ValueError(f"{layer} needs at least one frame on axis 1; got shape {tuple(shape)}")


def window_count(frames, window, stride):
    """Number of windows ``T'`` :class:`TemporalWindowMaxPooling` gives on ``frames`` frames.

    ``1 + (T - window) // stride`` for ``T >= window`` (windows that fit entirely, as ``VALID``
    pooling), ``1`` for ``1 <= T < window`` (one window over all frames); ``None`` for unknown ``T``.

    >>> window_count(30, 10, 5), window_count(12, 10, 5), window_count(4, 10, 5)
    (5, 1, 1)
    """
    if frames is None:
        return None
    return 1 + (max(int(frames), window) - window) // stride


@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalMaxPooling(keras.layers.Layer):
    """Max over time: ``(B, T, ...) -> (B, ...)``, ``y[b, ...] = max_t x[b, t, ...]``.

    The temporal aggregation of every feature-pooling head of digest 3.2: on conv maps
    ``(B, T, H, W, C)`` it is Conv Pooling (an element-wise max over time that keeps the spatial
    layout), on per-frame FC vectors ``(B, T, D)`` it is Late Pooling, and it is the second stage of
    Slow Pooling. It has no weights, so a model trained on one clip length runs on any other (the
    thesis's "network expansion", digest 3.4). ``T`` may be unknown (``None``); it must be >= 1.
    The gradient of each output element goes to the frame that holds the maximum (module docstring).

    Example:

    >>> import numpy as np
    >>> x = np.array([[[1., 5.], [3., 2.], [0., 4.]]], np.float32)   # (B=1, T=3, D=2)
    >>> TemporalMaxPooling()(x).numpy()
    array([[3., 5.]], dtype=float32)
    """

    def build(self, input_shape):
        _check_rank(input_shape, 2, type(self).__name__, "(batch, T, ...)")
        self.built = True

    def call(self, x):
        _check_rank(x.shape, 2, type(self).__name__, "(batch, T, ...)")
        return tf.reduce_max(x, axis=1)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package="tfvideo")
class TemporalWindowMaxPooling(keras.layers.Layer):
    """Local max over windows of frames: ``(B, T, ...) -> (B, T', ...)``.

    Window ``j`` covers frames ``[j * stride, j * stride + window)`` and
    ``y[b, j, ...] = max over those frames of x[b, t, ...]``: stage 1 of Slow Pooling ("10-frame
    windows with stride 5", like a size-10, stride-5 1-D max filter over time) and Local Pooling
    (window and stride not stated, the same 10/5 presumed; digest 3.2, 3.9 q5).

    Clip lengths (our choice; the thesis only uses ``T`` = 30 and 120, where ``window + k * stride``
    fits exactly):

    * ``T >= window``: ``VALID`` pooling, only windows that fit entirely, so
      ``T' = 1 + (T - window) // stride``; frames after the last full window are not pooled (at most
      ``stride - 1`` of them, e.g. frames 10-11 of ``T = 12``).
    * ``1 <= T < window``: one window over all ``T`` frames (``T' = 1``), so an exported signature
      with an unknown number of frames accepts short clips (down to one frame).

    :func:`window_count` gives ``T'``. ``stride > window`` is allowed (frames between windows are
    skipped). ``T`` and the dimensions after it may be unknown (``None``).

    Args:
      window: frames per window (10 in the thesis).
      stride: frames between the starts of consecutive windows (5 in the thesis).

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype=np.float32).reshape(1, 12, 1)     # (B=1, T=12, D=1), frames 0..11
    >>> TemporalWindowMaxPooling(4, 3)(x).numpy()[0, :, 0]        # windows [0,4), [3,7), [6,10)
    array([3., 6., 9.], dtype=float32)
    >>> TemporalWindowMaxPooling(10, 5)(x[:, :4]).numpy()[0, :, 0]  # T = 4 < window: one window
    array([3.], dtype=float32)
    """

    def __init__(self, window=10, stride=5, **kwargs):
        super().__init__(**kwargs)
        self.window = _positive_int(window, "window")
        self.stride = _positive_int(stride, "stride")

    def build(self, input_shape):
        _check_rank(input_shape, 2, type(self).__name__, "(batch, T, ...)")
        self.built = True

    def call(self, x):
        _check_rank(x.shape, 2, type(self).__name__, "(batch, T, ...)")
        x = tf.convert_to_tensor(x)
        shape = tf.shape(x)
        static = x.shape
        batch = static[0] if static[0] is not None else shape[0]
        frames = static[1] if static[1] is not None else shape[1]
        rest = list(static[2:])
        if all(d is not None for d in rest):
            features = math.prod(rest)
        else:
            features = tf.reduce_prod(shape[2:])
        y = tf.reshape(x, [batch, frames, features])
        # a clip shorter than the window is padded with -inf frames up to one window: the max of
        # that window is then the max over all real frames (and its gradient goes to a real frame)
        if static[1] is not None:
            pad = max(self.window - int(static[1]), 0)
        else:
            pad = tf.maximum(self.window - shape[1], 0)
        y = tf.pad(y, [[0, 0], [0, pad], [0, 0]], constant_values=float("-inf"))
        y = tf.nn.max_pool1d(y, self.window, self.stride, "VALID")
        windows = window_count(static[1], self.window, self.stride)
        out_shape = [batch, windows if windows is not None else tf.shape(y)[1]]
        out_shape += [d if d is not None else shape[i + 2] for i, d in enumerate(rest)]
        return tf.reshape(y, out_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], window_count(input_shape[1], self.window, self.stride),
                *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "window": self.window, "stride": self.stride}


@keras.saving.register_keras_serializable(package="tfvideo")
class FlattenTowers(keras.layers.Layer):
    """Concatenate the towers: ``(B, T', D) -> (B, T' * D)``, ``y[b, j * D + d] = x[b, j, d]``.

    Local Pooling ends in "a larger softmax layer connected to all towers" (digest 3.2; read as a
    softmax over the concatenation of the towers, digest 3.9 q5): its weights depend on the number
    of towers, so ``T'`` (and ``D``) must be known when the layer is built; an unknown ``T'`` raises
    a ``ValueError`` at build time (build the model with a fixed number of frames), and so does a
    call on another ``T'`` than the one it was built for.

    Example:

    >>> import numpy as np
    >>> FlattenTowers()(np.array([[[1., 2.], [3., 4.], [5., 6.]]], np.float32)).numpy()
    array([[1., 2., 3., 4., 5., 6.]], dtype=float32)
    """

    def _check(self, shape):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"FlattenTowers takes towers of shape (batch, T', D); got {shape}")
        if shape[1] is None or shape[2] is None:
            raise ValueError(f"FlattenTowers needs a fixed number of towers T' and width D (the "
                             f"classifier over all towers has T' * D inputs): build the model with a "
                             f"fixed number of frames; got towers of shape {shape}")

    def build(self, input_shape):
        self._check(input_shape)
        self._towers = (int(input_shape[1]), int(input_shape[2]))
        self.built = True

    def call(self, x):
        self._check(x.shape)
        towers, width = self._towers
        if (int(x.shape[1]), int(x.shape[2])) != (towers, width):
            raise ValueError(f"FlattenTowers was built for {towers} towers of width {width} (the "
                             f"classifier after it has {towers * width} inputs); got towers of shape "
                             f"{tuple(x.shape)}: build a model for this number of frames")
        return tf.reshape(x, [tf.shape(x)[0], towers * width])

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0], int(input_shape[1]) * int(input_shape[2]))


@keras.saving.register_keras_serializable(package="tfvideo")
class TimeDomainConvolution(keras.layers.Layer):
    """Digest 3.2's time-domain convolution: ``(B, T, H, W, C) -> (B, T', H, W, filters)``.

    "256 kernels of size 3x3 spanning 10 frames, frame stride 5", inserted before the temporal
    max-pool of the Time-Domain Convolution head: a 3-D convolution with kernel
    ``(frames, kernel_size, kernel_size)`` and strides ``(stride, 1, 1)``::

        y[b, j, y, x, f] = act(bias[f] + sum_{dt, dy, dx, c} w[dt, dy, dx, c, f]
                                           * x_pad[b, j * stride + dt, y + dy, x + dx, c])

    Choices where the thesis is silent (digest 3.9 q6):

    * padding: ``VALID`` in time, so ``T' = 1 + (T - frames) // stride`` (every output sees
      ``frames`` real frames; clips need ``T >= frames``: a ``ValueError`` at build time for a known
      ``T``, a run-time error for an unknown one); ``SAME`` in space (zero padding of
      ``(kernel_size - 1) // 2`` pixels before and the rest after), so the output keeps the conv
      maps' ``H x W`` as a 3x3 layer of AlexNet's conv stack would; spatial stride 1.
    * activation: ReLU (as every conv layer of the frame CNNs), ``activation`` to change it.

    With an unknown ``T`` the frame-count check is a TensorFlow assertion, which XLA would drop: the
    layer then refuses to trace under ``jit_compile=True`` (``supports_jit`` is False).

    Args:
      filters: number of kernels (256 in the thesis).
      frames: temporal extent of the kernels (10).
      stride: temporal stride (5).
      kernel_size: spatial size of the square kernels (3).
      activation: a Keras activation name or ``None``.
      use_bias, kernel_initializer, bias_initializer: as in ``keras.layers.Conv3D``.

    Example:

    >>> import numpy as np
    >>> layer = TimeDomainConvolution(8, frames=10, stride=5)
    >>> layer(np.zeros((2, 30, 6, 6, 4), np.float32)).shape
    TensorShape([2, 5, 6, 6, 8])
    """

    def __init__(self, filters=256, frames=10, stride=5, kernel_size=3, activation="relu",
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.frames = _positive_int(frames, "frames")
        self.stride = _positive_int(stride, "stride")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        try:
            self.activation = keras.activations.get(activation)
        except (ValueError, TypeError) as e:
            raise ValueError(f"`activation` must be a Keras activation or None; got "
                             f"{activation!r}") from e
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def rule(self):
        return (f"the time-domain convolution spans {self.frames} frames: clips need T >= "
                f"{self.frames} frames")

    def _check_static(self, shape):
        shape = tuple(shape)
        if len(shape) != 5:
            raise ValueError(f"TimeDomainConvolution takes conv maps of shape (batch, T, H, W, C); "
                             f"got {shape}")
        if shape[-1] is None:
            raise ValueError(f"TimeDomainConvolution needs a known number of channels C; got {shape}")
        if shape[1] is not None and int(shape[1]) < self.frames:
            raise ValueError(f"{self.rule}; got T={shape[1]} (input shape {shape})")

    def build(self, input_shape):
        self._check_static(input_shape)
        channels = int(input_shape[-1])
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(self.frames, k, k, channels, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                     initializer=self.bias_initializer)
                     if self.use_bias else None)
        if input_shape[1] is None:
            self.supports_jit = False  # the run-time frame-count assertion would be dropped by XLA
        self.built = True

    def call(self, x):
        self._check_static(x.shape)
        before = (self.kernel_size - 1) // 2
        after = self.kernel_size - 1 - before
        y = tf.pad(x, [[0, 0], [0, 0], [before, after], [before, after], [0, 0]])
        if x.shape[1] is None:
            if in_xla_context():
                raise ValueError(f"TimeDomainConvolution cannot check an unknown number of frames "
                                 f"inside an XLA-compiled function (jit_compile=True): give a static "
                                 f"T or do not use jit_compile ({self.rule})")
            frames = tf.shape(x)[1]
            check = tf.debugging.Assert(tf.greater_equal(frames, self.frames),
                                        [f"{self.rule}; got T =", frames])
            with tf.control_dependencies([check]):
                y = tf.identity(y)
        y = tf.nn.conv3d(y, tf.cast(self.kernel, y.dtype), strides=[1, self.stride, 1, 1, 1],
                         padding="VALID")
        if self.bias is not None:
            y = y + tf.cast(self.bias, y.dtype)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        b, t, h, w, _ = tuple(input_shape)
        frames = None if t is None else 1 + (int(t) - self.frames) // self.stride
        return (b, frames, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "frames": self.frames,
                "stride": self.stride, "kernel_size": self.kernel_size,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
