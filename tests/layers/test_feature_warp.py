"""FeatureWarp (DFF Eq. 1-4) against a NumPy transcription of the paper's equations."""

import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.layers import FeatureWarp

RNG = np.random.default_rng(3)


def g(a, b):
    """Eq. 2's one-dimensional kernel g(a, b) = max(0, 1 - |a - b|)."""
    return np.maximum(0.0, 1.0 - np.abs(a - b))


def eq1_warp(features, flow):
    """Eq. 1-2 literally: f_i(p) = sum over every map location q of G(q, p + dp) f_k(q)."""
    b, h, w, c = features.shape
    out = np.zeros((b, h, w, c))
    qy, qx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for n in range(b):
        for y in range(h):
            for x in range(w):
                px, py = x + flow[n, y, x, 0], y + flow[n, y, x, 1]
                weights = g(qx, px) * g(qy, py)                      # G(q, p + dp), (h, w)
                out[n, y, x] = np.tensordot(weights, features[n], axes=([0, 1], [0, 1]))
    return out


def sample(b=2, h=5, w=6, c=3, spread=3.0):
    feats = RNG.normal(size=(b, h, w, c)).astype(np.float32)
    flow = RNG.uniform(-spread, spread, size=(b, h, w, 2)).astype(np.float32)
    scale = RNG.uniform(0.5, 1.5, size=(b, h, w, c)).astype(np.float32)
    return feats, flow, scale


def test_equals_eq1_to_3_on_random_inputs():
    # flows up to 3 px on a 5 x 6 map: many samples land partly or wholly outside the map
    feats, flow, scale = sample()
    out = FeatureWarp()([feats, flow, scale]).numpy()
    np.testing.assert_allclose(out, eq1_warp(feats, flow) * scale, atol=1e-5)
    assert (np.abs(flow) > 1).any()  # the border cases are exercised


def test_zero_outside_the_map_and_partial_weight_at_the_border():
    feats = np.ones((1, 3, 4, 1), np.float32)
    flow = np.zeros((1, 3, 4, 2), np.float32)
    flow[0, 0, 0] = (-0.25, 0.0)    # a quarter pixel left of the map: weight 0.75 of the border pixel
    flow[0, 1, 1] = (-2.5, 0.0)     # 1.5 px outside: Eq. 2 gives 0 (backward_warp alone would clamp)
    flow[0, 2, 3] = (0.0, 0.5)      # half a pixel below the bottom row: 0.5
    out = FeatureWarp(scale=False)([feats, flow]).numpy()[0, ..., 0]
    assert out[0, 0] == pytest.approx(0.75)
    assert out[1, 1] == 0.0
    assert out[2, 3] == pytest.approx(0.5)
    assert out[0, 1] == 1.0


def test_zero_flow_and_unit_scale_give_the_key_features_exactly():
    feats, _, _ = sample(c=4)
    zeros = np.zeros(feats.shape[:3] + (2,), np.float32)
    out = FeatureWarp()([feats, zeros, np.ones_like(feats)]).numpy()
    np.testing.assert_array_equal(out, feats)


def test_integer_flow_shifts_exactly():
    feats, _, _ = sample(b=1, h=6, w=7, c=2)
    flow = np.zeros((1, 6, 7, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0                 # f_i(x, y) = f_k(x + 2, y - 1)
    out = FeatureWarp(scale=False)([feats, flow]).numpy()
    expected = np.zeros_like(feats)
    expected[:, 1:, :-2] = feats[:, :-1, 2:]               # outside the map: 0 (Eq. 1-2)
    np.testing.assert_array_equal(out, expected)


def test_gradients_match_finite_differences_eq4():
    # Eq. 4 (flow), and the chain rule for features and scale; float64 central differences. Flows
    # are kept away from integers (where Eq. 2 has a kink) so the derivative exists everywhere.
    feats, flow, scale = (x.astype(np.float64) for x in sample(b=1, h=4, w=5, c=2, spread=1.4))
    flow = np.floor(flow) + 0.2 + 0.6 * (flow - np.floor(flow))
    layer = FeatureWarp()
    weights = RNG.normal(size=feats.shape)                  # loss = sum(weights * output)

    def loss(f, m, s):
        return float(np.sum(weights * (eq1_warp(f, m) * s)))

    args = [tf.constant(feats), tf.constant(flow), tf.constant(scale)]
    with tf.GradientTape() as tape:
        tape.watch(args)
        value = tf.reduce_sum(weights * layer(args))
    grads = [gr.numpy() for gr in tape.gradient(value, args)]
    eps = 1e-4
    for which, (arr, grad) in enumerate(zip((feats, flow, scale), grads)):
        idx = [tuple(RNG.integers(0, n) for n in arr.shape) for _ in range(12)]
        for i in idx:
            plus, minus = [feats, flow, scale], [feats, flow, scale]
            up, down = arr.copy(), arr.copy()
            up[i] += eps
            down[i] -= eps
            plus[which], minus[which] = up, down
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (which, i)
    # Eq. 4 in closed form for one location: dF/d(dp_x) = S * sum_q dG/d(dp_x) f_k(q)
    n, y, x = 0, 1, 2
    px, py = x + flow[n, y, x, 0], y + flow[n, y, x, 1]
    qy, qx = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    dg_dx = np.where(np.abs(qx - px) < 1, np.sign(qx - px), 0.0) * g(qy, py)   # d g(q_x, p_x)/d p_x
    eq4 = scale[n, y, x] * np.tensordot(dg_dx, feats[n], axes=([0, 1], [0, 1]))
    np.testing.assert_allclose(grads[1][n, y, x, 0], np.sum(weights[n, y, x] * eq4), rtol=1e-5)  # f32 coords


def test_layer_conventions(tmp_path):
    feats, flow, scale = sample(b=2, h=4, w=5, c=3, spread=1.5)
    check_layer(FeatureWarp, [feats, flow, scale], trainable_weights=0, non_trainable_weights=0,
                expected_output_shape=feats.shape,
                symbolic_shapes=[(None, None, 3), (None, None, 2), (None, None, 3)], tmp_path=tmp_path,
                atol=1e-5)
    check_layer(lambda: FeatureWarp(scale=False), [feats, flow], trainable_weights=0,
                non_trainable_weights=0, expected_output_shape=feats.shape,
                symbolic_shapes=[(None, None, 3), (None, None, 2)], tmp_path=tmp_path, atol=1e-5)


@pytest.mark.parametrize("shapes, message", [
    ([(1, 4, 5, 3), (1, 4, 5, 3), (1, 4, 5, 3)], "last dimension 2"),
    ([(1, 4, 5, 3), (1, 4, 6, 2), (1, 4, 5, 3)], "width"),
    ([(1, 4, 5, 3), (1, 4, 5, 2), (1, 4, 5, 4)], "channels"),
    ([(1, 4, 5, 3), (1, 4, 5, 2)], "list"),
    ([(4, 5, 3), (4, 5, 2), (4, 5, 3)], "rank-4"),
])
def test_bad_shapes_raise_value_error(shapes, message):
    with pytest.raises(ValueError, match=message):
        FeatureWarp()([np.zeros(s, np.float32) for s in shapes])


def test_bad_arguments():
    with pytest.raises(TypeError, match="scale"):
        FeatureWarp(scale=1)
    with pytest.raises(TypeError, match="features_k"):
        FeatureWarp(scale=False)([np.zeros((1, 2, 2, 1), np.int32), np.zeros((1, 2, 2, 2), np.float32)])
