"""The deep LSTM head of Ng's thesis, ch. 3 (digest 3.3-3.5): NumPy transcriptions of Eqs. 3.3-3.7,
Keras's plain LSTMCell, the shared layer checks, finite differences through time."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.layers.lstm import (AGGREGATION_MODES, DeepLSTM, GainWeightedAverage, PeepholeLSTMCell,
                                 gain_weighted_average)
from tfvideo.losses import GainWeightedCrossEntropy

RNG = np.random.default_rng(13)
GATES = ("i", "f", "c", "o")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------ NumPy transcription of Eqs. 3.3-3.7 ----
def equation_weights(d, u, rng, peepholes=True, scale=0.6):
    """Random weights in the thesis's notation: W_x* (u, d), W_h* (u, u), b_* (u,), diagonal w_c* (u,)."""
    w = {}
    for g in GATES:
        w["x" + g] = rng.normal(0, scale, (u, d))
        w["h" + g] = rng.normal(0, scale, (u, u))
        w["b" + g] = rng.normal(0, scale, u)
    if peepholes:
        for g in ("i", "f", "o"):
            w["c" + g] = rng.normal(0, 1.0, u)
    return w


def keras_layout(w):
    """The equation weights in PeepholeLSTMCell's (= keras LSTMCell's) variables, gate order i, f, c, o."""
    kernel = np.concatenate([w["x" + g].T for g in GATES], axis=1)
    recurrent = np.concatenate([w["h" + g].T for g in GATES], axis=1)
    bias = np.concatenate([w["b" + g] for g in GATES])
    values = [kernel, recurrent, bias]
    if "ci" in w:
        values += [w["ci"], w["cf"], w["co"]]
    return [v.astype(np.float32) for v in values]


def step(x, h, c, w, output_peeks_previous=False):
    """Eqs. 3.3-3.7 as the digest writes them (diagonal peepholes; zero peepholes if absent)."""
    u = h.shape[-1]
    wci, wcf, wco = (w.get(k, np.zeros(u)) for k in ("ci", "cf", "co"))
    i = sigmoid(x @ w["xi"].T + h @ w["hi"].T + wci * c + w["bi"])                      # (3.3)
    f = sigmoid(x @ w["xf"].T + h @ w["hf"].T + wcf * c + w["bf"])                      # (3.4)
    c_new = f * c + i * np.tanh(x @ w["xc"].T + h @ w["hc"].T + w["bc"])                # (3.5)
    peek = c if output_peeks_previous else c_new
    o = sigmoid(x @ w["xo"].T + h @ w["ho"].T + wco * peek + w["bo"])                   # (3.6)
    return o * np.tanh(c_new), c_new                                                     # (3.7)


def recurrence(xs, w, h=None, c=None):
    """(B, T, D) -> hs (B, T, U), final c; h = c = 0 at the start unless given."""
    b, u = xs.shape[0], w["hi"].shape[0]
    h = np.zeros((b, u)) if h is None else h
    c = np.zeros((b, u)) if c is None else c
    hs = []
    for t in range(xs.shape[1]):
        h, c = step(xs[:, t], h, c, w)
        hs.append(h)
    return np.stack(hs, 1), c


def cell_weights_as_equations(cell):
    """Read a built PeepholeLSTMCell back into equation weights (inverse of keras_layout)."""
    u = cell.units
    kernel, recurrent, bias = (np.asarray(v.numpy(), np.float64) for v in
                               (cell.kernel, cell.recurrent_kernel, cell.bias))
    w = {}
    for n, g in enumerate(GATES):
        w["x" + g] = kernel[:, n * u:(n + 1) * u].T
        w["h" + g] = recurrent[:, n * u:(n + 1) * u].T
        w["b" + g] = bias[n * u:(n + 1) * u]
    if cell.use_peepholes:
        w["ci"], w["cf"], w["co"] = (np.asarray(v.numpy(), np.float64) for v in
                                     (cell.peephole_input, cell.peephole_forget, cell.peephole_output))
    return w


# ------------------------------------------------------------------------------ PeepholeLSTMCell ----
def test_cell_one_step_matches_equations():
    d, u = 5, 4
    w = equation_weights(d, u, RNG)
    x = RNG.normal(size=(2, d))
    h0, c0 = RNG.normal(size=(2, u)), RNG.normal(0, 2.0, (2, u))  # non-zero state: peepholes matter
    cell = PeepholeLSTMCell(u)
    cell.build((None, d))
    cell.set_weights(keras_layout(w))
    h, (h_state, c) = cell(tf.constant(x, tf.float32), [tf.constant(h0, tf.float32),
                                                        tf.constant(c0, tf.float32)])
    h_ref, c_ref = step(x, h0, c0, w)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_state, h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, c_ref, rtol=1e-5, atol=1e-6)
    # the comparison can tell which c the output gate reads (3.6: the current c_t, not c_{t-1})
    h_wrong, _ = step(x, h0, c0, w, output_peeks_previous=True)
    assert np.max(np.abs(h_wrong - h_ref)) > 1e-2


def test_cell_sequence_matches_recurrence():
    d, u, t = 3, 4, 4
    w = equation_weights(d, u, RNG)
    xs = RNG.normal(size=(2, t, d))
    rnn = keras.layers.RNN(PeepholeLSTMCell(u), return_sequences=True, return_state=True)
    rnn.build((None, None, d))
    rnn.cell.set_weights(keras_layout(w))
    hs, h_last, c_last = rnn(tf.constant(xs, tf.float32))
    hs_ref, c_ref = recurrence(xs, w)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_last, hs_ref[:, -1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_last, c_ref, rtol=1e-5, atol=1e-6)
    # from a given initial state
    h0, c0 = RNG.normal(size=(2, u)), RNG.normal(size=(2, u))
    hs, _, c_last = rnn(tf.constant(xs, tf.float32),
                        initial_state=[tf.constant(h0, tf.float32), tf.constant(c0, tf.float32)])
    hs_ref, c_ref = recurrence(xs, w, h0, c0)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_last, c_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_peepholes", [False, True])
def test_plain_lstm_equals_keras_lstm_cell(use_peepholes):
    """use_peepholes=False (or peepholes at their zero initial value) is keras.layers.LSTMCell, whose
    kernel layout is gate order i, f, c, o."""
    d, u = 3, 5
    xs = RNG.normal(size=(2, 4, d)).astype(np.float32)
    ours = keras.layers.RNN(PeepholeLSTMCell(u, use_peepholes=use_peepholes), return_sequences=True,
                            return_state=True)
    theirs = keras.layers.RNN(keras.layers.LSTMCell(u), return_sequences=True, return_state=True)
    ours.build((None, None, d))
    theirs.build((None, None, d))
    assert len(ours.cell.weights) == (6 if use_peepholes else 3)
    plain = keras_layout(equation_weights(d, u, RNG, peepholes=False))
    theirs.cell.set_weights(plain)
    ours.cell.set_weights(plain + [np.zeros(u, np.float32)] * (3 if use_peepholes else 0))
    for a, b in zip(ours(xs), theirs(xs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the plain cell is the NumPy recurrence without peepholes
    w = cell_weights_as_equations(ours.cell)
    np.testing.assert_allclose(ours(xs)[0], recurrence(xs.astype(np.float64), w)[0], rtol=1e-5,
                               atol=1e-6)


def test_cell_initialisation():
    u = 3
    cell = PeepholeLSTMCell(u)
    cell.build((None, 2))
    # unit_forget_bias=True: b_f = 1, the other biases 0; peepholes start at 0 (the plain LSTM)
    np.testing.assert_array_equal(cell.bias.numpy(), [0] * u + [1] * u + [0] * 2 * u)
    for v in (cell.peephole_input, cell.peephole_forget, cell.peephole_output):
        np.testing.assert_array_equal(v.numpy(), np.zeros(u))
    cell = PeepholeLSTMCell(u, unit_forget_bias=False, peephole_initializer="ones")
    cell.build((None, 2))
    np.testing.assert_array_equal(cell.bias.numpy(), np.zeros(4 * u))
    np.testing.assert_array_equal(cell.peephole_output.numpy(), np.ones(u))


@pytest.mark.parametrize("use_peepholes", [True, False])
def test_peephole_rnn_layer_checks(tmp_path, use_peepholes):
    xs = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    layers = []

    def make():
        layers.append(keras.layers.RNN(PeepholeLSTMCell(5, use_peepholes=use_peepholes),
                                       return_sequences=True))
        return layers[-1]

    # kernel, recurrent_kernel, bias (+ three diagonal peephole vectors)
    out = check_layer(make, xs, trainable_weights=6 if use_peepholes else 3, non_trainable_weights=0,
                      expected_output_shape=(2, 4, 5), symbolic_shapes=(None, 3), tmp_path=tmp_path,
                      rtol=1e-5, atol=1e-6)
    w = cell_weights_as_equations(layers[0].cell)
    np.testing.assert_allclose(out, recurrence(xs.astype(np.float64), w)[0], rtol=1e-5, atol=1e-6)


def test_cell_arguments_are_validated():
    with pytest.raises(ValueError, match="units"):
        PeepholeLSTMCell(0)
    with pytest.raises(ValueError, match="units"):
        PeepholeLSTMCell(2.5)
    with pytest.raises(ValueError, match="use_peepholes"):
        PeepholeLSTMCell(3, use_peepholes="yes")
    with pytest.raises(ValueError, match="unit_forget_bias"):
        PeepholeLSTMCell(3, unit_forget_bias=1)


# ------------------------------------------------------------------------------------- DeepLSTM ----
def deep_reference(xs, layer):
    """Stacked NumPy recurrences with the layer's weights: layer l + 1 reads layer l's h_t."""
    h = xs.astype(np.float64)
    for rnn in layer.lstm_layers:
        h, _ = recurrence(h, cell_weights_as_equations(rnn.cell))
    return h


@pytest.mark.parametrize("return_sequences", [True, False])
def test_deep_lstm_layer_checks(tmp_path, return_sequences):
    xs = RNG.normal(size=(2, 5, 4)).astype(np.float32)
    layers = []

    def make():
        layers.append(DeepLSTM(num_layers=2, units=3, return_sequences=return_sequences))
        return layers[-1]

    # 2 layers x (kernel, recurrent_kernel, bias, 3 peepholes)
    out = check_layer(make, xs, trainable_weights=12, non_trainable_weights=0,
                      expected_output_shape=(2, 5, 3) if return_sequences else (2, 3),
                      symbolic_shapes=(None, 4), tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    ref = deep_reference(xs, layers[0])
    np.testing.assert_allclose(out, ref if return_sequences else ref[:, -1], rtol=1e-5, atol=1e-6)


def test_deep_lstm_any_number_of_frames(tmp_path):
    """The same weights on T = 3 and T = 7, eagerly, in a model on (None, None, D) and in a reloaded
    SavedModel signature with unknown T; step t depends on frames 0..t only."""
    layer = DeepLSTM(num_layers=3, units=4, use_peepholes=True,
                     peephole_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=3))
    x7 = RNG.normal(size=(2, 7, 6)).astype(np.float32)
    x3 = x7[:, :3]
    y7, y3 = layer(x7), layer(x3)
    assert y7.shape == (2, 7, 4) and y3.shape == (2, 3, 4)
    np.testing.assert_allclose(y7, deep_reference(x7, layer), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y3, y7[:, :3], rtol=1e-5, atol=1e-6)
    # peepholes drawn with an offset seed per layer: the equally shaped layers 2 and 3 differ
    assert not np.allclose(layer.lstm_layers[1].cell.peephole_input.numpy(),
                           layer.lstm_layers[2].cell.peephole_input.numpy())

    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, layer(inputs))
    assert model.output.shape == (None, None, 4)
    np.testing.assert_allclose(model(x3), y3, rtol=1e-5, atol=1e-6)

    module = tf.Module()
    module.model = model
    module.serve = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec((None, None, 6))])
    tf.saved_model.save(module, str(tmp_path / "deep_lstm"))
    loaded = tf.saved_model.load(str(tmp_path / "deep_lstm"))
    np.testing.assert_allclose(loaded.serve(x3), y3, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.serve(x7), y7, rtol=1e-5, atol=1e-6)


def test_deep_lstm_thesis_size():
    """Digest 3.3: five layers of 512 cells. Weights per layer: 4 U (D_in + U + 1) + 3 U (peepholes)."""
    layer = DeepLSTM()
    assert (layer.num_layers, layer.units, layer.use_peepholes) == (5, 512, True)
    layer.build((None, None, 1024))
    u = 512
    expected = sum(4 * u * (d_in + u + 1) + 3 * u for d_in in [1024] + [u] * 4)
    assert layer.count_params() == expected
    assert len(layer.trainable_weights) == 30
    assert layer.compute_output_shape((None, None, 1024)) == (None, None, 512)


def test_deep_lstm_arguments_are_validated():
    with pytest.raises(ValueError, match="num_layers"):
        DeepLSTM(num_layers=0)
    with pytest.raises(ValueError, match="units"):
        DeepLSTM(units=-1)
    with pytest.raises(ValueError, match="return_sequences"):
        DeepLSTM(return_sequences=None)
    with pytest.raises(ValueError, match="features"):
        DeepLSTM(num_layers=1, units=2).build((None, 3, None))


# ------------------------------------------------------------------------ GainWeightedAverage ----
def numpy_aggregate(p, mode):
    t = p.shape[1]
    if mode == "weighted":  # digest 3.5 (4): g_t = t / (T - 1), g = 1 for T = 1
        g = np.arange(t) / (t - 1) if t > 1 else np.ones(1)
        return (p * g[None, :, None]).sum(1) / g.sum()
    return {"last": p[:, -1], "max": p.max(1), "mean": p.sum(1) / t}[mode]


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_gain_weighted_average_layer_checks(tmp_path, mode):
    logits = RNG.normal(size=(2, 5, 4)).astype(np.float32)
    # no weights: a fixed aggregation over time
    out = check_layer(lambda: GainWeightedAverage(mode, from_logits=True), logits, trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=(2, 4), symbolic_shapes=(None, 4),
                      tmp_path=tmp_path)
    np.testing.assert_allclose(out, numpy_aggregate(softmax(logits.astype(np.float64)), mode),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", [1, 2, 5])
@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_gain_weighted_average_against_numpy(mode, t):
    p = softmax(RNG.normal(size=(3, t, 6)))
    np.testing.assert_allclose(GainWeightedAverage(mode)(p.astype(np.float32)), numpy_aggregate(p, mode),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gain_weighted_average(p, mode), numpy_aggregate(p, mode), rtol=1e-12)


def test_weighted_average_closed_forms():
    # T = 3: g = (0, 0.5, 1), sum 1.5; the first frame is ignored
    p = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]])
    np.testing.assert_allclose(gain_weighted_average(p), [[0.5 / 1.5, 1.0 / 1.5]])  # 0.5 (0, 1) + (0.5, 0.5)
    np.testing.assert_allclose(gain_weighted_average(p, "last"), [[0.5, 0.5]])
    np.testing.assert_allclose(gain_weighted_average(p, "max"), [[1.0, 1.0]])
    np.testing.assert_allclose(gain_weighted_average(p, "mean"), [[0.5, 0.5]])


def test_gain_weighted_average_arguments_are_validated():
    with pytest.raises(ValueError, match="mode"):
        GainWeightedAverage("sum")
    with pytest.raises(ValueError, match="from_logits"):
        GainWeightedAverage(from_logits="yes")
    with pytest.raises(ValueError, match="probabilities"):
        gain_weighted_average(np.zeros((2, 3)))


# ------------------------------------------------------------------- gradients through time ----
def test_gradient_through_time_finite_differences():
    """d loss / d x_0 on a 1-layer, 3-unit peephole LSTM in float64. Frame 0 has gain 0, so x_0
    reaches the loss only through the recurrence (c_0, h_0 -> later frames)."""
    d, u, c, t = 2, 3, 4, 4
    rnn = keras.layers.RNN(PeepholeLSTMCell(u, dtype="float64"), return_sequences=True,
                           dtype="float64")
    rnn.build((None, None, d))
    rnn.cell.set_weights([v.astype(np.float64) for v in keras_layout(equation_weights(d, u, RNG))])
    classifier = tf.constant(RNG.normal(size=(u, c)))
    labels = np.array([1, 3])
    loss_fn = GainWeightedCrossEntropy(dtype="float64")

    def loss(x):
        return loss_fn(labels, tf.einsum("btu,uc->btc", rnn(x), classifier))

    x = tf.constant(RNG.normal(size=(2, t, d)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    grad = tape.gradient(value, x).numpy()
    eps = 1e-6
    numeric = np.zeros((2, d))
    for b in range(2):
        for k in range(d):
            delta = np.zeros((2, t, d))
            delta[b, 0, k] = eps
            numeric[b, k] = (loss(x + delta).numpy() - loss(x - delta).numpy()) / (2 * eps)
    np.testing.assert_allclose(grad[:, 0], numeric, rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(grad[:, 0]) > 1e-6), "no gradient reached x_0 through time"
    # and frame 0's own prediction gets no gradient (g_0 = 0)
    logits = tf.Variable(RNG.normal(size=(2, t, c)))
    with tf.GradientTape() as tape:
        value = loss_fn(labels, logits)
    g = tape.gradient(value, logits).numpy()
    np.testing.assert_array_equal(g[:, 0], 0.0)
    assert np.all(np.abs(g[:, 1:]).sum(-1) > 0)


def test_one_training_step_on_clips_of_any_length():
    """A per-frame classifier on DeepLSTM compiled with the gain-weighted loss: Keras feeds (B,)
    labels and (B, T, C) logits; the reported loss is the NumPy one; T changes between batches."""
    inputs = keras.Input((None, 3))
    logits = keras.layers.Dense(4)(DeepLSTM(num_layers=1, units=3)(inputs))
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=GainWeightedCrossEntropy())
    labels = np.array([0, 3])
    for t in (3, 6):
        x = RNG.normal(size=(2, t, 3)).astype(np.float32)
        p = softmax(model.predict(x, verbose=0).astype(np.float64))
        g = np.arange(t) / (t - 1)
        ce = -np.log(p[np.arange(2)[:, None], np.arange(t)[None], labels[:, None]])
        expected = np.mean((ce * g).sum(1) / g.sum())
        history = model.fit(x, labels, batch_size=2, epochs=1, verbose=0)
        np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
