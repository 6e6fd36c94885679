"""Temporal pooling layers of the thesis's feature-pooling heads (digest 3.2) against NumPy
transcriptions of their definitions, gradients routed to the argmax frame, and the shared layer
checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.layers.temporal_pooling import (FlattenTowers, TemporalMaxPooling,
                                             TemporalWindowMaxPooling, TimeDomainConvolution,
                                             window_count)

RNG = np.random.default_rng(13)


def distinct(shape):
    """Random values without ties (a permutation of distinct numbers), float32."""
    return (RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 3.0).astype(np.float32)


# ------------------------------------------------------------------------- NumPy references ----
def windows_by_definition(frames, window, stride):
    """Window j covers frames [j*stride, j*stride + window); only windows inside the clip, or one
    window over all frames when the clip is shorter than a window (the layer's documented rule)."""
    if frames < window:
        return [(0, frames)]
    starts, j = [], 0
    while j * stride + window <= frames:
        starts.append(j * stride)
        j += 1
    return [(s, s + window) for s in starts]


def window_max_numpy(x, window, stride):
    spans = windows_by_definition(x.shape[1], window, stride)
    return np.stack([x[:, a:b].max(axis=1) for a, b in spans], axis=1)


def window_max_grad_numpy(x, upstream, window, stride):
    """d(sum upstream * y)/dx: each window's upstream value goes to its argmax frame only."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x = x.reshape(x.shape[0], x.shape[1], -1)
    flat_g = grad.reshape(grad.shape[0], grad.shape[1], -1)
    up = upstream.reshape(upstream.shape[0], upstream.shape[1], -1)
    for j, (a, b) in enumerate(windows_by_definition(x.shape[1], window, stride)):
        arg = a + flat_x[:, a:b].argmax(axis=1)                       # (B, F)
        for n in range(x.shape[0]):
            for f in range(flat_x.shape[2]):
                flat_g[n, arg[n, f], f] += up[n, j, f]
    return grad


def tdc_numpy(x, kernel, bias, stride):
    """Digest 3.2's time-domain convolution: VALID in time (stride ``stride``), SAME (zero padding)
    in space, then ReLU -- the layer's documented choices, written as plain sums."""
    x, kernel = x.astype(np.float64), kernel.astype(np.float64)
    b, t, h, w, c = x.shape
    kt, k, _, _, f = kernel.shape
    before = (k - 1) // 2
    pad = np.zeros((b, t, h + k - 1, w + k - 1, c))
    pad[:, :, before:before + h, before:before + w] = x
    frames = 1 + (t - kt) // stride
    out = np.zeros((b, frames, h, w, f))
    for j in range(frames):
        for yy in range(h):
            for xx in range(w):
                patch = pad[:, j * stride:j * stride + kt, yy:yy + k, xx:xx + k]   # (B, kt, k, k, C)
                out[:, j, yy, xx] = np.einsum("btyxc,tyxcf->bf", patch, kernel) + bias
    return np.maximum(out, 0.0)


# --------------------------------------------------------------------------- TemporalMaxPooling ----
def test_temporal_max_on_conv_maps(tmp_path):
    x = distinct((2, 5, 3, 4, 3))                                     # (B, T, H, W, C)
    out = check_layer(TemporalMaxPooling, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 3, 4, 3), symbolic_shapes=(None, None, None, 3),
                      tmp_path=tmp_path)
    np.testing.assert_array_equal(out, x.max(axis=1))


def test_temporal_max_on_vectors_and_one_frame(tmp_path):
    x = distinct((3, 7, 6))                                           # (B, T, D)
    out = check_layer(TemporalMaxPooling, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(3, 6), symbolic_shapes=(None, 6), tmp_path=tmp_path)
    np.testing.assert_array_equal(out, x.max(axis=1))
    np.testing.assert_array_equal(TemporalMaxPooling()(x[:, :1]), x[:, 0])


def test_temporal_max_gradient_goes_only_to_the_argmax_frame():
    x = tf.constant(distinct((2, 6, 3, 2, 4)))
    upstream = RNG.normal(size=(2, 3, 2, 4)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = TemporalMaxPooling()(x)
        loss = tf.reduce_sum(y * upstream)
    grad = tape.gradient(loss, x).numpy()
    arg = x.numpy().argmax(axis=1)                                    # (B, H, W, C)
    expected = np.zeros(x.shape)
    b, h, w, c = np.indices(arg.shape)
    expected[b, arg, h, w, c] = upstream
    np.testing.assert_array_equal(grad, expected)
    # sparse: exactly one frame per output element receives a gradient
    assert np.count_nonzero(grad) == upstream.size


def test_temporal_max_bad_inputs():
    with pytest.raises(ValueError, match=r"\(batch, T, \.\.\.\)"):
        TemporalMaxPooling()(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="at least one frame"):
        TemporalMaxPooling().build((None, 0, 4))


# --------------------------------------------------------------------- TemporalWindowMaxPooling ----
@pytest.mark.parametrize("frames, window, stride", [
    (30, 10, 5),    # the thesis: window + k * stride frames exactly (5 windows)
    (12, 10, 5),    # T not window + k * stride: frames 10-11 are not pooled
    (23, 10, 5),    # 3 full windows, 3 trailing frames dropped
    (4, 10, 5),     # T < window: one window over all frames
    (1, 10, 5),     # a single frame
    (12, 4, 3),     # overlapping windows, T not a multiple of the stride
    (11, 2, 3),     # stride > window: frames between windows are skipped
])
def test_window_max_equals_numpy(tmp_path, frames, window, stride):
    x = distinct((2, frames, 3, 2, 2))
    expected = window_max_numpy(x, window, stride)
    assert window_count(frames, window, stride) == expected.shape[1]
    out = check_layer(lambda: TemporalWindowMaxPooling(window, stride), x, trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=expected.shape,
                      symbolic_shapes=(None, None, None, 2), tmp_path=tmp_path)
    np.testing.assert_array_equal(out, expected)


def test_window_max_on_vectors_with_unknown_time(tmp_path):
    x = distinct((2, 17, 5))                                          # (B, T, D), T = 10 + 5 + 2
    out = check_layer(TemporalWindowMaxPooling, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 2, 5), symbolic_shapes=(None, 5), tmp_path=tmp_path)
    np.testing.assert_array_equal(out, window_max_numpy(x, 10, 5))


def test_window_max_unknown_time_and_space_in_one_signature():
    layer = TemporalWindowMaxPooling(10, 5)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, None, 3))])
    for frames in (3, 10, 12, 30):                                     # short and long clips
        x = distinct((1, frames, 2, 3, 3))
        np.testing.assert_array_equal(traced(x), window_max_numpy(x, 10, 5))


@pytest.mark.parametrize("layer", [TemporalMaxPooling(), TemporalWindowMaxPooling(10, 5),
                                   TemporalWindowMaxPooling(3, 2)])
def test_pooling_under_xla_with_unknown_time(layer):
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 3, 5))],
                         jit_compile=True)
    for frames in (2, 7, 12):
        x = distinct((2, frames, 3, 5))
        np.testing.assert_array_equal(traced(x), layer(x))


@pytest.mark.parametrize("frames, window, stride", [(12, 10, 5), (30, 10, 5), (4, 10, 5),
                                                    (13, 4, 3)])
def test_window_max_gradient_goes_only_to_the_argmax_frames(frames, window, stride):
    x = distinct((2, frames, 2, 3))
    n = window_count(frames, window, stride)
    upstream = RNG.normal(size=(2, n, 2, 3)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(TemporalWindowMaxPooling(window, stride)(xt) * upstream)
    grad = tape.gradient(loss, xt).numpy()
    np.testing.assert_allclose(grad, window_max_grad_numpy(x, upstream, window, stride),
                               rtol=1e-6, atol=1e-6)
    # frames that are the maximum of no window get no gradient at all
    winners = np.zeros(x.shape, bool)
    for a, b in windows_by_definition(frames, window, stride):
        arg = a + x[:, a:b].argmax(axis=1)
        bb, hh, ww = np.indices(arg.shape)
        winners[bb, arg, hh, ww] = True
    assert not grad[~winners].any()


def test_window_max_arguments():
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="window"):
            TemporalWindowMaxPooling(window=bad)
        with pytest.raises(ValueError, match="stride"):
            TemporalWindowMaxPooling(stride=bad)


def test_window_count_formula():
    assert [window_count(t, 10, 5) for t in (1, 9, 10, 14, 15, 30, 120)] == [1, 1, 1, 1, 2, 5, 23]
    assert window_count(None, 10, 5) is None


# -------------------------------------------------------------------------------- FlattenTowers ----
def test_flatten_towers(tmp_path):
    x = distinct((2, 3, 4))
    out = check_layer(FlattenTowers, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 12), tmp_path=tmp_path)
    # tower j occupies entries [j * D, (j + 1) * D)
    np.testing.assert_array_equal(out, np.concatenate([x[:, j] for j in range(3)], axis=1))


def test_flatten_towers_refuses_unknown_towers():
    with pytest.raises(ValueError, match="fixed number of towers"):
        FlattenTowers()(keras.Input((None, 4)))
    with pytest.raises(ValueError, match="fixed number of towers"):
        FlattenTowers()(keras.Input((3, None)))
    with pytest.raises(ValueError, match=r"\(batch, T', D\)"):
        FlattenTowers()(keras.Input((3, 4, 5)))


def test_flatten_towers_refuses_another_tower_count_than_it_was_built_for():
    layer = FlattenTowers()
    layer(keras.Input((3, 4)))
    assert layer(np.zeros((2, 3, 4), np.float32)).shape == (2, 12)
    with pytest.raises(ValueError, match="built for 3 towers"):
        layer(np.zeros((2, 6, 4), np.float32))


# ------------------------------------------------------------------------ TimeDomainConvolution ----
def test_time_domain_convolution_equals_numpy(tmp_path):
    x = RNG.normal(size=(2, 12, 4, 5, 3)).astype(np.float32)       # T = 12: T' = 1 + 2 // 5 = 1
    layers = []

    def make():
        layers.append(TimeDomainConvolution(4, frames=10, stride=5, bias_initializer="ones"))
        return layers[-1]

    # kernel (10, 3, 3, 3, 4) and bias (4,), both trainable
    out = check_layer(make, x, trainable_weights=2, non_trainable_weights=0,
                      expected_output_shape=(2, 1, 4, 5, 4), symbolic_shapes=(None, None, None, 3),
                      tmp_path=tmp_path, rtol=1e-4, atol=1e-4)
    kernel, bias = (w.numpy() for w in layers[0].weights)
    np.testing.assert_allclose(out, tdc_numpy(x, kernel, bias, 5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("frames, window, stride, k", [(30, 10, 5, 3), (7, 3, 2, 2), (5, 5, 1, 1)])
def test_time_domain_convolution_sizes(frames, window, stride, k):
    x = RNG.normal(size=(1, frames, 3, 4, 2)).astype(np.float32)
    layer = TimeDomainConvolution(3, frames=window, stride=stride, kernel_size=k,
                                  bias_initializer="random_normal")
    out = layer(x).numpy()
    assert out.shape == (1, 1 + (frames - window) // stride, 3, 4, 3)
    np.testing.assert_allclose(out, tdc_numpy(x, layer.kernel.numpy(), layer.bias.numpy(), stride),
                               rtol=1e-4, atol=1e-4)


def test_time_domain_convolution_without_bias_or_activation(tmp_path):
    x = RNG.normal(size=(2, 10, 3, 3, 2)).astype(np.float32)
    # the kernel only
    out = check_layer(lambda: TimeDomainConvolution(2, use_bias=False, activation=None), x,
                      trainable_weights=1, non_trainable_weights=0, tmp_path=tmp_path,
                      rtol=1e-4, atol=1e-4)
    assert (out < 0).any()                                            # no ReLU


def test_time_domain_convolution_needs_enough_frames():
    with pytest.raises(ValueError, match="T >= 10"):
        TimeDomainConvolution(4)(keras.Input((9, 4, 4, 3)))
    layer = TimeDomainConvolution(4)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 4, 4, 3))])
    assert traced(np.zeros((1, 10, 4, 4, 3), np.float32)).shape == (1, 1, 4, 4, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="T >= 10"):
        traced(np.zeros((1, 9, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="XLA"):
        tf.function(layer, input_signature=[tf.TensorSpec((None, None, 4, 4, 3))],
                    jit_compile=True)(np.zeros((1, 10, 4, 4, 3), np.float32))


def test_time_domain_convolution_arguments():
    for name in ("filters", "frames", "stride", "kernel_size"):
        with pytest.raises(ValueError, match=name):
            TimeDomainConvolution(**{name: 0})
    with pytest.raises(ValueError, match="activation"):
        TimeDomainConvolution(activation="no_such_activation")
    with pytest.raises(ValueError, match=r"\(batch, T, H, W, C\)"):
        TimeDomainConvolution()(keras.Input((12, 4, 3)))
