"""The deep LSTM head of Ng's thesis, chapter 3 (digest 3.3-3.5): peephole LSTM, 5 x 512, gain g.

* :class:`PeepholeLSTMCell`: a Keras 3 RNN cell (for ``keras.layers.RNN``) computing Eqs. 3.3-3.7,
  the LSTM with peephole connections of Gers et al. [62] (diagonal peepholes).
* :class:`DeepLSTM`: stacked peephole LSTM layers, ``(B, T, D) -> (B, T, units)`` (digest 3.3: five
  layers of 512 memory cells), any clip length T, also unknown in a traced or exported function.
* :class:`GainWeightedAverage` / :func:`gain_weighted_average`: the thesis's four ways of turning
  per-frame predictions into a video prediction (digest 3.5), by default weighting frame t by the gain
  ``g_t`` of :func:`linear_gain` (re-exported from :mod:`tfvideo.losses`, which also holds the
  matching training loss :class:`tfvideo.losses.GainWeightedCrossEntropy`).

The softmax classifier "at every time step" (digest 3.3) is an ordinary ``Dense(C)`` applied to the
``(B, T, units)`` output (Dense acts on the last axis); the per-frame CNN in front is folded over time
with :class:`tfvideo.layers.segments.PerSegment`.

Example::

    import keras, numpy as np
    from tfvideo.layers.lstm import DeepLSTM, GainWeightedAverage
    features = keras.Input((None, 1024))                 # (B, T, D) CNN features, any T
    h = DeepLSTM(num_layers=5, units=512)(features)      # (B, T, 512)
    logits = keras.layers.Dense(487)(h)                  # (B, T, 487): a prediction per frame
    video = GainWeightedAverage(from_logits=True)(logits)   # (B, 487) probabilities
    model = keras.Model(features, [logits, video])
    model(np.zeros((2, 30, 1024), "float32"))
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.losses import linear_gain

__all__ = ["PeepholeLSTMCell", "DeepLSTM", "GainWeightedAverage", "gain_weighted_average",
           "linear_gain", "AGGREGATION_MODES"]

#: The four video aggregations of digest 3.5, in the thesis's order 4, 1, 2, 3.
AGGREGATION_MODES = ("weighted", "last", "max", "mean")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}")
    return value


def _bool(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool; got {value!r}")
    return value


@keras.saving.register_keras_serializable(package="tfvideo")
class PeepholeLSTMCell(keras.layers.Layer):
    """One step of the LSTM with peephole connections, Eqs. 3.3-3.7 of the thesis (digest 3.3).

    Exactly as the digest writes them (``*`` element-wise, ``sigma`` the logistic sigmoid)::

        i_t = sigma(W_xi x_t + W_hi h_{t-1} + w_ci * c_{t-1} + b_i)              (3.3)
        f_t = sigma(W_xf x_t + W_hf h_{t-1} + w_cf * c_{t-1} + b_f)              (3.4)
        c_t = f_t * c_{t-1} + i_t * tanh(W_xc x_t + W_hc h_{t-1} + b_c)          (3.5)
        o_t = sigma(W_xo x_t + W_ho h_{t-1} + w_co * c_t + b_o)                  (3.6)
        h_t = o_t * tanh(c_t)                                                     (3.7)

    The input and forget gates peep at the previous cell state ``c_{t-1}``, the output gate at the
    *current* ``c_t``.

    Choices where the thesis is silent:

    * Peephole weights are **diagonal** (digest 3.9 q9): ``W_ci``, ``W_cf``, ``W_co`` are diagonal
      matrices, stored as the ``(units,)`` vectors ``peephole_input``, ``peephole_forget``,
      ``peephole_output``; cell j only sees its own state, as in Gers et al. and Graves.
    * Weight layout is Keras's ``LSTMCell``'s, so weights move between the two: ``kernel``
      ``(D, 4 units)`` holds ``[W_xi, W_xf, W_xc, W_xo]^T`` (gate order i, f, c, o),
      ``recurrent_kernel`` ``(units, 4 units)`` the ``W_h*`` in the same order, ``bias`` ``(4 units,)``.
    * Forget-gate bias: ``unit_forget_bias=True`` (default, as Keras) initialises ``b_f`` to 1 and the
      other biases with ``bias_initializer`` (zeros), the usual remedy for vanishing memory early in
      training (Jozefowicz et al. 2015).
    * Peephole initialisation: ``peephole_initializer="zeros"`` (default), so a new cell computes
      exactly the plain LSTM that Keras initialises and learns its peepholes from there
      (Keras 2's ``PeepholeLSTMCell`` drew them with the kernel initialiser instead; pass
      ``peephole_initializer="glorot_uniform"`` for that).
    * Activations are fixed to the equations' sigmoid and tanh; no dropout (the thesis uses dropout
      only in the CNN's FC layers, digest 3.1).

    ``use_peepholes=False`` drops the three peephole terms (no peephole weights): the plain LSTM,
    numerically ``keras.layers.LSTMCell`` with the same weights.

    State ``[h, c]``, each ``(B, units)``; output ``h``. Call: ``cell(x_t, [h, c]) -> (h_t, [h_t, c_t])``
    with ``x_t`` ``(B, D)``. Use it in ``keras.layers.RNN`` for sequences.

    Example::

        rnn = keras.layers.RNN(PeepholeLSTMCell(8), return_sequences=True)
        rnn(np.zeros((2, 5, 3), "float32")).shape   # (2, 5, 8)
    """

    def __init__(self, units, use_peepholes=True, unit_forget_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", peephole_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units")
        self.use_peepholes = _bool(use_peepholes, "use_peepholes")
        self.unit_forget_bias = _bool(unit_forget_bias, "unit_forget_bias")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"the last (feature) axis of the input must be known; got {input_shape}")
        u = self.units
        self.kernel = self.add_weight(shape=(input_dim, 4 * u), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        if self.unit_forget_bias:
            def bias_initializer(shape, dtype=None):
                del shape
                return keras.ops.concatenate([
                    self.bias_initializer((u,), dtype=dtype),
                    keras.initializers.get("ones")((u,), dtype=dtype),
                    self.bias_initializer((2 * u,), dtype=dtype)])
        else:
            bias_initializer = self.bias_initializer
        self.bias = self.add_weight(shape=(4 * u,), name="bias", initializer=bias_initializer)
        if self.use_peepholes:
            self.peephole_input, self.peephole_forget, self.peephole_output = (
                self.add_weight(shape=(u,), name=f"peephole_{gate}",
                                initializer=self.peephole_initializer)
                for gate in ("input", "forget", "output"))
        self.built = True

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        z = (tf.matmul(inputs, self.kernel) + tf.matmul(h_prev, self.recurrent_kernel)
             + self.bias)
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        if self.use_peepholes:
            z_i = z_i + self.peephole_input * c_prev      # (3.3): c_{t-1}
            z_f = z_f + self.peephole_forget * c_prev     # (3.4): c_{t-1}
        i = tf.sigmoid(z_i)
        f = tf.sigmoid(z_f)
        c = f * c_prev + i * tf.tanh(z_c)                 # (3.5)
        if self.use_peepholes:
            z_o = z_o + self.peephole_output * c          # (3.6): the current c_t
        o = tf.sigmoid(z_o)
        h = o * tf.tanh(c)                                # (3.7)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [keras.ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in self.state_size]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        ser = keras.initializers.serialize
        return {**super().get_config(), "units": self.units, "use_peepholes": self.use_peepholes,
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_initializer": ser(self.kernel_initializer),
                "recurrent_initializer": ser(self.recurrent_initializer),
                "bias_initializer": ser(self.bias_initializer),
                "peephole_initializer": ser(self.peephole_initializer)}


def _layer_initializer(initializer, index):
    """A new initialiser object for layer ``index`` of a stack: unseeded ones draw a fresh seed, and
    an integer seed is offset by ``index`` (Keras 3 initialisers with a fixed seed return the same
    values at every call, which would make the equally shaped layers 2..n identical)."""
    config = keras.initializers.serialize(initializer)
    inner = config.get("config", {}) if isinstance(config, dict) else {}
    if isinstance(inner.get("seed"), int):
        inner["seed"] += index
    return keras.initializers.get(config)


@keras.saving.register_keras_serializable(package="tfvideo")
class DeepLSTM(keras.layers.Layer):
    """Stacked peephole LSTM layers (digest 3.3, "Deep LSTM" [5]): ``(B, T, D) -> (B, T, units)``.

    Layer 1 reads the per-frame CNN features ``x_t``; layer l + 1 reads layer l's ``h_t``; the output
    is the top layer's ``h_t`` at every step (``return_sequences=True``, for the thesis's softmax at
    every time step) or at the last step only, ``(B, units)``. Every layer starts from ``h = c = 0``.
    Defaults are the thesis's five layers of 512 memory cells with peepholes (Eqs. 3.3-3.7,
    :class:`PeepholeLSTMCell`, whose docstring lists the initialisation choices).

    Each layer is a ``keras.layers.RNN`` over :class:`PeepholeLSTMCell` (a ``tf.while_loop`` over
    time), so T may be unknown: a model or exported signature with input ``(None, None, D)`` accepts
    clips of any length, and step t's output depends only on frames 0..t (the thesis feeds unbounded
    clips, digest 3.5). The feature size D must be known. Trainable weights: 6 per layer with
    peepholes, 3 without.

    Example::

        lstm = DeepLSTM(num_layers=2, units=16)
        lstm(np.zeros((4, 7, 32), "float32")).shape   # (4, 7, 16)
    """

    def __init__(self, num_layers=5, units=512, use_peepholes=True, return_sequences=True,
                 unit_forget_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 peephole_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.units = _positive_int(units, "units")
        self.use_peepholes = _bool(use_peepholes, "use_peepholes")
        self.return_sequences = _bool(return_sequences, "return_sequences")
        self.unit_forget_bias = _bool(unit_forget_bias, "unit_forget_bias")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.peephole_initializer = keras.initializers.get(peephole_initializer)
        self.lstm_layers = [
            keras.layers.RNN(
                PeepholeLSTMCell(self.units, use_peepholes=self.use_peepholes,
                                 unit_forget_bias=self.unit_forget_bias,
                                 kernel_initializer=_layer_initializer(self.kernel_initializer, i),
                                 recurrent_initializer=_layer_initializer(
                                     self.recurrent_initializer, i),
                                 bias_initializer=_layer_initializer(self.bias_initializer, i),
                                 peephole_initializer=_layer_initializer(
                                     self.peephole_initializer, i),
                                 dtype=self.dtype_policy, name=f"cell_{i}"),
                return_sequences=self.return_sequences or i < self.num_layers - 1,
                dtype=self.dtype_policy, name=f"lstm_{i}")
            for i in range(self.num_layers)]

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"DeepLSTM expects (batch, T, features) with known features; got "
                             f"{input_shape}")
        shape = tuple(input_shape)
        for layer in self.lstm_layers:
            if not layer.built:
                layer.build(shape)
            shape = (shape[0], shape[1], self.units)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.lstm_layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self):
        ser = keras.initializers.serialize
        return {**super().get_config(), "num_layers": self.num_layers, "units": self.units,
                "use_peepholes": self.use_peepholes, "return_sequences": self.return_sequences,
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_initializer": ser(self.kernel_initializer),
                "recurrent_initializer": ser(self.recurrent_initializer),
                "bias_initializer": ser(self.bias_initializer),
                "peephole_initializer": ser(self.peephole_initializer)}


def gain_weighted_average(probabilities, mode="weighted"):
    """Video prediction ``(B, C)`` from per-frame predictions ``(B, T, C)`` (digest 3.5).

    The thesis's four aggregations ("all within 1%", the weighted one "usually" best):

    * ``"weighted"`` (4): ``sum_t g_t p_t / sum_t g_t`` with ``g = linear_gain(T)``, 0 at the first
      frame and 1 at the last. The thesis sums ``g_t p_t`` and takes the argmax; dividing by
      ``sum_t g_t`` keeps the argmax and makes the result a distribution when the ``p_t`` are.
    * ``"last"`` (1): ``p_{T-1}``, the prediction at the last step.
    * ``"max"`` (2): ``max_t p_t`` per class (not normalised).
    * ``"mean"`` (3): ``mean_t p_t`` (the thesis's "sum over time, then argmax"; the mean has the same
      argmax).

    Any T >= 1, also unknown at trace time.
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"`mode` must be one of {AGGREGATION_MODES}; got {mode!r}")
    p = tf.convert_to_tensor(probabilities)
    if p.shape.rank is not None and p.shape.rank != 3:
        raise ValueError(f"`probabilities` must be (batch, T, classes); got shape {p.shape}")
    if mode == "last":
        return p[:, -1]
    if mode == "max":
        return tf.reduce_max(p, axis=1)
    if mode == "mean":
        return tf.reduce_mean(p, axis=1)
    gain = linear_gain(tf.shape(p)[1], p.dtype)
    return tf.einsum("btc,t->bc", p, gain) / tf.reduce_sum(gain)


@keras.saving.register_keras_serializable(package="tfvideo")
class GainWeightedAverage(keras.layers.Layer):
    """Per-frame predictions ``(B, T, C)`` -> video prediction ``(B, C)`` (digest 3.5, aggregation 4).

    ``mode="weighted"`` (default) weights frame t by the training gain ``g_t`` (0 at the first frame,
    1 at the last) and divides by ``sum_t g_t``; ``"last"``, ``"max"`` and ``"mean"`` are the thesis's
    other three aggregations (:func:`gain_weighted_average` gives the formulas). With
    ``from_logits=True`` a softmax turns each frame's logits into probabilities first, so the layer
    can sit on a model's per-frame logits inside an exported model; otherwise the inputs are
    aggregated as given. No weights; any T, also unknown.

    Example::

        GainWeightedAverage()(np.full((1, 3, 2), 0.5, "float32"))   # [[0.5, 0.5]]
    """

    def __init__(self, mode="weighted", from_logits=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in AGGREGATION_MODES:
            raise ValueError(f"`mode` must be one of {AGGREGATION_MODES}; got {mode!r}")
        self.mode = mode
        self.from_logits = _bool(from_logits, "from_logits")

    def call(self, inputs):
        p = tf.nn.softmax(inputs, axis=-1) if self.from_logits else inputs
        return gain_weighted_average(p, self.mode)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "from_logits": self.from_logits}
