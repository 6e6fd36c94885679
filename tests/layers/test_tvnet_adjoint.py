"""TVNet's hand-derived adjoint of the iterations (``gradient="adjoint"``, tfvideo/layers/tvnet_adjoint.py) against
TF's autodiff of the same loop (``gradient="autodiff"``) and against finite differences: kernels, u0 and both input
frames, random and real frames, with and without XLA (issue 15: relative error < 1e-4)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.test_tvnet import as_batch, photo_pair, smooth_pattern
from tfvideo.layers import TVNet


def _random_pair(size=(20, 26), batch=2, seed=0):
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(0, 255, (batch, *size, 1)).astype(np.float32)
    f0 = tf.nn.avg_pool2d(f0, 3, 1, "SAME").numpy()            # some smoothness: real gradients, real clips
    f1 = np.roll(f0, 1, axis=2) + rng.normal(0, 3, f0.shape).astype(np.float32)
    return [f0, f1]


def _gradients(gradient, frames, *, scales, warps, iterations, xla, seed=1):
    layer = TVNet(scales, warps, iterations, gradient=gradient, xla_iterations=xla)
    layer.build([frames[0].shape] * 2)
    rng = np.random.default_rng(seed)
    for v in layer.weights:                  # off the exact-TV-L1 start: every tap and u0 in play
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype(np.float32))
    a, b = (tf.constant(f) for f in frames)
    upstream = tf.constant(rng.normal(size=(*frames[0].shape[:3], 2)).astype(np.float32))

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            flow = layer([a, b])
            value = tf.reduce_sum(flow * upstream)
        return flow, tape.gradient(value, [*layer.trainable_weights, a, b])

    flow, grads = run()
    return flow.numpy(), {n: g.numpy() for n, g in zip(["forward_kernels", "divergence_kernels", "u0", "frame0",
                                                          "frame1"], grads)}


@pytest.mark.parametrize("frames, xla", [
    ("random", False), ("real", True),
    pytest.param("real", False, marks=pytest.mark.slow), pytest.param("random", True, marks=pytest.mark.slow)])
def test_adjoint_equals_autodiff(photo_rgb, frames, xla):
    pair = _random_pair() if frames == "random" else as_batch(*photo_pair(photo_rgb, size=(24, 32)))
    # two levels outside XLA (u0 resized, flow carried across levels); one under XLA, which compiles every level's
    # loops apart (the levels run the same code: the second level adds 10 s of compilation, not a new path)
    kw = dict(scales=1 if xla else 2, warps=2, iterations=6, xla=xla)
    flow_a, ga = _gradients("adjoint", pair, **kw)
    flow_b, gb = _gradients("autodiff", pair, **kw)
    np.testing.assert_allclose(flow_a, flow_b, atol=1e-4)     # the same forward pass
    for name in gb:
        scale = np.abs(gb[name]).max()
        assert scale > 0, name
        assert np.abs(ga[name] - gb[name]).max() / scale < 1e-4, name


def test_frame_gradients_match_finite_differences():
    """d(sum(flow * w)) / d(frame) along a random direction against central differences, on a smooth image (the
    solver is piecewise smooth: clips and bilinear cells make differences of a few % at any step; autodiff
    agrees with the adjoint to 1e-5 and shows the same spread against the differences)."""
    f0, f1 = as_batch(smooth_pattern(24, 32), smooth_pattern(24, 32, 0.6, -0.3))
    layer = TVNet(1, 2, 4)
    layer([f0, f1])
    rng = np.random.default_rng(2)
    layer.u0.assign(rng.uniform(0.2, 0.8, layer.u0.shape).astype(np.float32))
    w = tf.constant(rng.normal(size=(1, 24, 32, 2)), tf.float64)
    loss = tf.function(lambda a, b: tf.reduce_sum(tf.cast(layer([a, b]), tf.float64) * w))
    a, b = tf.constant(f0), tf.constant(f1)
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        value = loss(a, b)
    grads = tape.gradient(value, [a, b])
    for which, g in enumerate(grads):
        d = rng.normal(size=f0.shape).astype(np.float32)
        analytic = float(tf.reduce_sum(tf.cast(g, tf.float64) * d))
        errors = []
        for h in (1e-2, 3e-3, 1e-3):
            up = [x + h * d if i == which else x for i, x in enumerate((f0, f1))]
            down = [x - h * d if i == which else x for i, x in enumerate((f0, f1))]
            errors.append(abs((float(loss(*up)) - float(loss(*down))) / (2 * h) - analytic) / abs(analytic))
        assert abs(analytic) > 0.1 and min(errors) < 0.05, (which, analytic, errors)


def test_gradient_option_in_config_and_checked():
    layer = TVNet(1, 1, 3, gradient="autodiff")
    assert layer.get_config()["gradient"] == "autodiff"
    assert TVNet.from_config(layer.get_config()).gradient == "autodiff"
    assert TVNet(1, 1, 3).gradient == "adjoint"
    with pytest.raises(ValueError, match="gradient"):
        TVNet(gradient="numeric")


def test_training_step_with_the_adjoint_equals_autodiff():
    """One SGD step of a model with TVNet trainable: the same weights after the step either way."""
    pair = _random_pair(size=(16, 16), batch=2, seed=4)
    target = np.random.default_rng(5).normal(size=(2, 16, 16, 2)).astype(np.float32)
    weights = []
    for gradient in ("adjoint", "autodiff"):
        keras.utils.set_random_seed(0)
        x0, x1 = keras.Input((16, 16, 1)), keras.Input((16, 16, 1))
        model = keras.Model([x0, x1], TVNet(1, 1, 5, gradient=gradient)([x0, x1]))
        model.compile(keras.optimizers.SGD(1e-3), loss="mse", jit_compile=False)  # the adjoint, not XLA, is tested
        model.train_on_batch(pair, target)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_inference_of_a_trainable_layer_runs_the_plain_loop_and_stores_nothing(monkeypatch):
    """``training=False`` (predict / evaluate): the same flow as in training mode, but through the plain loop (the
    adjoint's state storage is never called), and autodiff still differentiates it w.r.t. the frames and
    weights, equal to the adjoint's gradient."""
    pair = [tf.constant(f) for f in _random_pair(size=(16, 20), batch=2, seed=6)]
    layer = TVNet(1, 1, 5)
    layer(pair)
    calls = []
    adjoint = layer._adjoint_iterate
    monkeypatch.setattr(layer, "_adjoint_iterate", lambda *a: calls.append(1) or adjoint(*a))

    def grads(training):
        with tf.GradientTape() as tape:
            tape.watch(pair)
            flow = layer(pair, training=training)
            value = tf.reduce_sum(flow * flow)
        return flow.numpy(), [g.numpy() for g in tape.gradient(value, [*layer.trainable_weights, *pair])]

    flow_eval, g_eval = grads(False)
    assert calls == []
    flow_train, g_train = grads(True)
    assert calls == [1]
    np.testing.assert_allclose(flow_eval, flow_train, atol=1e-5)
    for a, b in zip(g_eval, g_train):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max() and np.abs(b).max() > 0
