"""Tests for tfvideo.ops.flow against independent NumPy / hand-derived references."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.ops.flow import endpoint_error, flow_to_color, make_colorwheel, resize_flow


def _np_epe_map(flow, gt):
    """TVNet Eq. 14 per pixel: sqrt((u - u_gt)^2 + (v - v_gt)^2)."""
    return np.sqrt((flow[..., 0] - gt[..., 0]) ** 2 + (flow[..., 1] - gt[..., 1]) ** 2)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------------
# endpoint_error
# ------------------------------------------------------------------------------------------------------
def test_epe_matches_numpy(rng):
    flow = rng.normal(size=(2, 7, 9, 2)).astype(np.float32)
    gt = rng.normal(size=(2, 7, 9, 2)).astype(np.float32)
    expected = _np_epe_map(flow.astype(np.float64), gt.astype(np.float64))
    got = endpoint_error(flow, gt)
    assert got.shape == ()
    np.testing.assert_allclose(got.numpy(), expected.mean(), rtol=1e-5)
    got_map = endpoint_error(flow, gt, reduce=False)
    assert got_map.shape == (2, 7, 9)
    np.testing.assert_allclose(got_map.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_epe_known_value():
    flow = np.zeros((1, 3, 3, 2), np.float32)
    gt = np.zeros_like(flow)
    gt[..., 0], gt[..., 1] = 3.0, 4.0
    assert float(endpoint_error(flow, gt)) == pytest.approx(5.0)
    assert float(endpoint_error(gt, gt)) == 0.0


@pytest.mark.parametrize("trailing_one", [False, True])
@pytest.mark.parametrize("as_bool", [False, True])
def test_epe_with_mask(rng, trailing_one, as_bool):
    flow = rng.normal(size=(2, 6, 5, 2)).astype(np.float32)
    gt = rng.normal(size=(2, 6, 5, 2)).astype(np.float32)
    valid = rng.random((2, 6, 5)) > 0.4
    gt[~valid] = np.nan  # invalid ground truth must not poison the result
    mask = valid if as_bool else valid.astype(np.float32)
    if trailing_one:
        mask = mask[..., None]
    epe = _np_epe_map(flow.astype(np.float64), np.where(np.isnan(gt), 0, gt).astype(np.float64))
    np.testing.assert_allclose(endpoint_error(flow, gt, mask=mask).numpy(), epe[valid].mean(), rtol=1e-5)
    emap = endpoint_error(flow, gt, mask=mask, reduce=False).numpy()
    assert emap.shape == (2, 6, 5)
    np.testing.assert_allclose(emap[valid], epe[valid], rtol=1e-5, atol=1e-6)
    assert np.all(emap[~valid] == 0)


def test_epe_all_masked_is_zero(rng):
    flow = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    gt = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    flow_v = tf.Variable(flow)
    with tf.GradientTape() as tape:
        e = endpoint_error(flow_v, gt, mask=np.zeros((1, 4, 4), bool))
    assert float(e) == 0.0
    g = tape.gradient(e, flow_v)
    assert np.all(np.isfinite(g.numpy()))


def test_epe_gradient_finite_at_zero_error(rng):
    gt = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    flow_v = tf.Variable(gt.copy())
    with tf.GradientTape() as tape:
        e = endpoint_error(flow_v, gt)
    g = tape.gradient(e, flow_v).numpy()
    assert float(e) == 0.0
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, 0.0)


def test_epe_gradient_matches_analytic(rng):
    flow = rng.normal(size=(2, 4, 5, 2))
    gt = rng.normal(size=(2, 4, 5, 2))
    flow[0, 0, 0] = gt[0, 0, 0]  # one exact-zero pixel: subgradient 0, the rest must stay exact
    n = flow.shape[0] * flow.shape[1] * flow.shape[2]
    d = flow - gt
    norm = np.sqrt((d**2).sum(-1, keepdims=True))
    expected = np.divide(d, norm, out=np.zeros_like(d), where=norm > 0) / n  # d|d|/dflow / N
    flow_v = tf.Variable(flow)  # float64
    with tf.GradientTape() as tape:
        e = endpoint_error(flow_v, gt)
    g = tape.gradient(e, flow_v).numpy()
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)

    # masked: mean over valid pixels only
    valid = rng.random(flow.shape[:-1]) > 0.5
    expected_m = np.where(valid[..., None], expected * n / valid.sum(), 0.0)
    with tf.GradientTape() as tape:
        e = endpoint_error(flow_v, gt, mask=valid)
    np.testing.assert_allclose(tape.gradient(e, flow_v).numpy(), expected_m, rtol=1e-10, atol=1e-14)


def test_epe_validation():
    a = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="flow_gt"):
        endpoint_error(a, np.zeros((1, 4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="flow"):
        endpoint_error(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="flow_gt"):
        endpoint_error(a, np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="mask"):
        endpoint_error(a, a, mask=np.ones((1, 4, 3), bool))


def test_epe_in_tf_function_dynamic_shape(rng):
    spec = tf.TensorSpec([None, None, None, 2], tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None, None, None], tf.bool)])
    def f(a, b, m):
        return endpoint_error(a, b, mask=m)

    flow = rng.normal(size=(1, 5, 6, 2)).astype(np.float32)
    gt = rng.normal(size=(1, 5, 6, 2)).astype(np.float32)
    m = rng.random((1, 5, 6)) > 0.3
    np.testing.assert_allclose(f(flow, gt, m).numpy(), _np_epe_map(flow, gt)[m].mean(), rtol=1e-5)


# ------------------------------------------------------------------------------------------------------
# resize_flow
# ------------------------------------------------------------------------------------------------------
def test_resize_constant_flow():
    flow = np.zeros((16, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    out = resize_flow(flow, (32, 10)).numpy()
    assert out.shape == (32, 10, 2)
    np.testing.assert_allclose(out[..., 0], 1.5, rtol=1e-6)  # 3 * 10/20
    np.testing.assert_allclose(out[..., 1], -4.0, rtol=1e-6)  # -2 * 32/16
    out_b = resize_flow(flow[None], (32, 10)).numpy()
    assert out_b.shape == (1, 32, 10, 2)
    np.testing.assert_allclose(out_b[0], out, rtol=1e-6)


def _zoom_flow(h, w, s, cy, cx):
    """Flow of a zoom by ``s`` about the continuous point (cy, cx); pixel centres at index + 0.5."""
    y, x = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    return np.stack([(s - 1) * (x - cx), (s - 1) * (y - cy)], -1)


def test_resize_linear_field_is_scale_covariant():
    # A zoom is the same physical motion at any resolution: on a grid k times finer the flow of the zoom
    # about (k*cy, k*cx) is exactly the resized flow (bilinear is exact on affine fields, half-pixel grid).
    h, w, s, cy, cx = 24, 32, 1.3, 10.0, 13.0
    flow = _zoom_flow(h, w, s, cy, cx).astype(np.float32)
    down = resize_flow(flow[None], (h // 2, w // 2)).numpy()[0]  # all samples interior: exact
    np.testing.assert_allclose(down, _zoom_flow(h // 2, w // 2, s, cy / 2, cx / 2), atol=1e-4)

    up = resize_flow(flow, (h * 2, w * 2)).numpy()  # interior only (edges clamp when upsampling)
    ref = _zoom_flow(h * 2, w * 2, s, cy * 2, cx * 2)
    np.testing.assert_allclose(up[1:-1, 1:-1], ref[1:-1, 1:-1], atol=1e-4)

    # anisotropic: only x compresses -> only u scales
    aniso = resize_flow(flow, (h, w // 2)).numpy()
    y, x = np.meshgrid(np.arange(h) + 0.5, np.arange(w // 2) + 0.5, indexing="ij")
    ref = np.stack([(s - 1) * (x - cx / 2), (s - 1) * (y - cy)], -1)
    np.testing.assert_allclose(aniso, ref, atol=1e-4)


def test_resize_dynamic_shape_in_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32)])
    def f(x):
        return resize_flow(x, (8, 12))

    flow = np.zeros((2, 4, 3, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.0, 2.0
    out = f(flow).numpy()
    assert out.shape == (2, 8, 12, 2)
    np.testing.assert_allclose(out[..., 0], 4.0, rtol=1e-6)  # 1 * 12/3
    np.testing.assert_allclose(out[..., 1], 4.0, rtol=1e-6)  # 2 * 8/4

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, 2], tf.float32), tf.TensorSpec([2], tf.int32)]
    )
    def g(x, size):
        return resize_flow(x, size)

    out = g(flow[0], tf.constant([2, 6])).numpy()
    assert out.shape == (2, 6, 2)
    np.testing.assert_allclose(out, np.broadcast_to([2.0, 1.0], (2, 6, 2)), rtol=1e-6)


def test_resize_gradient_and_validation():
    v = tf.Variable(tf.ones([1, 4, 4, 2]))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(resize_flow(v, (8, 8)))
    assert np.all(np.isfinite(tape.gradient(y, v).numpy()))
    with pytest.raises(ValueError, match="flow"):
        resize_flow(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(ValueError, match="flow"):
        resize_flow(np.zeros((4, 2), np.float32), (2, 2))
    with pytest.raises(ValueError, match="size"):
        resize_flow(np.zeros((4, 4, 2), np.float32), (0, 2))
    with pytest.raises(ValueError, match="size"):
        resize_flow(np.zeros((4, 4, 2), np.float32), (2, 2, 2))


# ------------------------------------------------------------------------------------------------------
# flow_to_color
# ------------------------------------------------------------------------------------------------------
def test_colorwheel_definition():
    wheel = make_colorwheel()
    assert wheel.shape == (55, 3)
    # segment starts of RY=15, YG=6, GC=4, CB=11, BM=13, MR=6: red, yellow, green, cyan, blue, magenta
    starts = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255),
              49: (255, 0, 255)}
    for i, rgb in starts.items():
        assert tuple(wheel[i]) == rgb, i
    assert tuple(wheel[1]) == (255, math.floor(255 / 15), 0)  # (255, 17, 0)
    assert tuple(wheel[54]) == (255, 0, 255 - math.floor(255 * 5 / 6))  # (255, 0, 43)


def test_zero_flow_is_white():
    img = flow_to_color(np.zeros((2, 5, 7, 2), np.float32))
    assert img.dtype == np.uint8 and img.shape == (2, 5, 7, 3)
    assert np.all(img == 255)
    assert np.all(flow_to_color(np.zeros((3, 4, 2)), max_flow=5.0) == 255)


def test_cardinal_directions_by_hand():
    # Reference computeColor: a = atan2(-v, -u) / pi, fk = (a + 1) / 2 * (ncols - 1) (0-based), k0 = floor,
    # f = fk - k0, col = (1 - f) * wheel[k0] + f * wheel[k0 + 1], at radius 1 the colour is unchanged,
    # img = floor(255 * col / 255).
    # +x (u=1, v=0): atan2(-0., -1) = -pi -> a = -1 -> fk = 0 -> wheel[0] = pure red.
    # +y (u=0, v=1): atan2(-1, -0.) = -pi/2 -> a = -1/2 -> fk = 13.5 -> mean of wheel[13] = (255, 221, 0)
    #   and wheel[14] = (255, 238, 0) -> (255, 229.5 -> 229, 0).
    # -x (u=-1, v=0): atan2(-0., 1) = 0 -> a = 0 -> fk = 27 -> wheel[27] = CB entry 2 =
    #   (0, 255 - floor(255 * 2 / 11) = 209, 255).
    # -y (u=0, v=-1): a = 1/2 -> fk = 40.5 -> mean of BM entries 4, 5: R = (78 + 98) / 2 = 88 -> (88, 0, 255).
    flow = np.array([[[4.0, 0.0], [0.0, 4.0], [-4.0, 0.0], [0.0, -4.0]]])
    img = flow_to_color(flow)
    assert img.shape == (1, 4, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[0, 1]) == (255, 229, 0)
    assert tuple(img[0, 2]) == (0, 209, 255)
    assert tuple(img[0, 3]) == (88, 0, 255)
    # same with an explicit max_flow, via a tf tensor input
    np.testing.assert_array_equal(flow_to_color(tf.constant(flow, tf.float32), max_flow=4.0), img)


def test_saturation_and_out_of_range():
    # half magnitude along +x: col = 1 - 0.5 * (1 - wheel/255) -> red stays 255, G and B = floor(127.5) = 127
    flow = np.array([[[1.0, 0.0], [2.0, 0.0]]])
    img = flow_to_color(flow)
    assert tuple(img[0, 0]) == (255, 127, 127)
    assert tuple(img[0, 1]) == (255, 0, 0)
    # beyond max_flow: wheel colour * 0.75 -> (floor(191.25), 0, 0)
    assert tuple(flow_to_color(np.array([[[3.0, 0.0]]]), max_flow=1.0)[0, 0]) == (191, 0, 0)


def test_per_image_normalisation():
    flow = np.zeros((2, 1, 2, 2))
    flow[0, 0, 0] = (1.0, 0.0)
    flow[1, 0, 0] = (10.0, 0.0)
    img = flow_to_color(flow)
    assert tuple(img[0, 0, 0]) == (255, 0, 0) and tuple(img[1, 0, 0]) == (255, 0, 0)
    assert np.all(img[:, 0, 1] == 255)


def test_unknown_flow_is_black():
    flow = np.ones((3, 3, 2), np.float32)
    flow[0, 0] = (np.nan, 0.0)
    flow[1, 1] = (0.0, 2e9)
    flow[2, 2] = (np.inf, 1.0)
    img = flow_to_color(flow)
    assert img.dtype == np.uint8 and img.shape == (3, 3, 3)
    for yx in [(0, 0), (1, 1), (2, 2)]:
        assert np.all(img[yx] == 0), yx
    # unknown pixels do not enter the normalisation: the remaining (1, 1) pixels are fully saturated
    assert tuple(img[0, 1]) == tuple(img[2, 1])
    assert img[0, 1].min() < 50


def test_flow_to_color_validation():
    with pytest.raises(ValueError, match="flow"):
        flow_to_color(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="flow"):
        flow_to_color(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="max_flow"):
        flow_to_color(np.zeros((4, 4, 2)), max_flow=0)


def test_quantize_flow_matches_the_thesis_mapping_and_round_trips():
    from tfvideo.ops.flow import dequantize_flow, quantize_flow

    rng = np.random.default_rng(0)
    flow = rng.uniform(-60, 60, (3, 5, 7, 2)).astype(np.float32)
    q = quantize_flow(flow).numpy()
    expected = np.floor((np.clip(flow, -40, 40) + 40) * 255 / 80 + 0.5).astype(np.uint8)  # digest 3.6
    np.testing.assert_array_equal(q[..., :2], expected)
    assert q.dtype == np.uint8 and q.shape == (3, 5, 7, 3) and not q[..., 2].any()
    back = dequantize_flow(q).numpy()
    inside = np.abs(flow) <= 40
    assert np.abs(back - flow)[inside].max() <= 40 / 255 + 1e-5  # half a step of 80 / 255
    np.testing.assert_allclose(back[~inside], 40 * np.sign(flow[~inside]), atol=1e-5)
    assert quantize_flow(flow, bound=20, third_channel=False).shape == (3, 5, 7, 2)
    with pytest.raises(ValueError, match="bound"):
        quantize_flow(flow, bound=0)
    with pytest.raises(ValueError, match="image"):
        dequantize_flow(np.zeros((2, 4), np.uint8))
