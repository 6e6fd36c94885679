"""tvl1_energy against a NumPy transcription of Eq. 1 with the exact data term."""

import numpy as np
import pytest

from tests.layers.tvl1_reference import grad_forward, warp_bilinear
from tfvideo.losses import tvl1_energy


def numpy_energy(i0, i1, u1, u2, lbda, eps=1e-12):
    rho = warp_bilinear(i1, u1, u2) - i0
    u1x, u1y = grad_forward(u1)
    u2x, u2y = grad_forward(u2)
    per_pixel = np.sqrt(u1x**2 + u1y**2 + eps) + np.sqrt(u2x**2 + u2y**2 + eps) + lbda * np.abs(rho)
    return per_pixel.mean()


def test_matches_numpy(photo_rgb):
    rng = np.random.default_rng(0)
    f0 = photo_rgb[200:232, 200:240]
    f1 = photo_rgb[201:233, 198:238]
    flow = rng.normal(size=(32, 40, 2)).astype(np.float32)
    grey = lambda f: f @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    expected = numpy_energy(grey(f0), grey(f1), flow[..., 0], flow[..., 1], 0.15)
    got = tvl1_energy(f0[None], f1[None], flow[None], lbda=0.15)
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)
    per = tvl1_energy(np.stack([f0, f1]), np.stack([f1, f0]), np.stack([flow, -flow]), reduction="none")
    assert per.shape == (2,)
    np.testing.assert_allclose(float(per[0]), expected, rtol=1e-4)


def test_true_flow_has_lower_energy(photo_grey):
    f0 = photo_grey[100:164, 100:164]
    f1 = photo_grey[100 - 2 : 164 - 2, 100 + 3 : 164 + 3]  # f1(p + (-3, 2)) = f0(p)
    true = np.zeros((1, 64, 64, 2), np.float32)
    true[..., 0], true[..., 1] = -3.0, 2.0
    e_true = float(tvl1_energy(f0[None, ..., None], f1[None, ..., None], true))
    e_zero = float(tvl1_energy(f0[None, ..., None], f1[None, ..., None], np.zeros_like(true)))
    assert e_true < 0.5 * e_zero


def test_bad_arguments():
    f = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="flow"):
        tvl1_energy(f, f, np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="frame0"):
        tvl1_energy(np.zeros((1, 8, 8, 2), np.float32), f, np.zeros((1, 8, 8, 2), np.float32))
    with pytest.raises(ValueError, match="reduction"):
        tvl1_energy(f, f, np.zeros((1, 8, 8, 2), np.float32), reduction="sum")


def test_endpoint_error_loss_matches_numpy_per_sample_masked_mean():
    """Eq. 14 per sample over the valid pixels only; NaN ground truth at invalid pixels is ignored."""
    import keras

    from tfvideo.losses import endpoint_error_loss

    rng = np.random.default_rng(3)
    pred = rng.normal(size=(3, 5, 6, 2)).astype("float32")
    gt = rng.normal(size=(3, 5, 6, 2)).astype("float32")
    valid = rng.random((3, 5, 6)) > 0.3
    valid[2] = False  # a sample with no valid pixel: 0, not NaN
    gt[~valid] = np.nan
    y_true = np.concatenate([gt, valid[..., None].astype("float32")], axis=-1)
    err = np.sqrt(((pred - np.nan_to_num(gt)) ** 2).sum(-1))
    want = [err[b][valid[b]].mean() if valid[b].any() else 0.0 for b in range(3)]
    got = keras.ops.convert_to_numpy(endpoint_error_loss(y_true, pred))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="y_true must be"):
        endpoint_error_loss(gt, pred)


# ------------------------------------------------------------------------------- V2V (seed 000) ----
def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_voxel_softmax_cross_entropy_matches_numpy_with_weights_and_ignore_label():
    import keras

    from tfvideo.losses import VoxelSoftmaxCrossEntropy, voxel_softmax_cross_entropy

    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 4, 5, 6)).astype("float32")
    labels = rng.integers(0, 6, (2, 3, 4, 5))
    weights = (rng.random((2, 3, 4, 5)) > 0.25).astype("float32")
    per_voxel = -np.take_along_axis(_np_log_softmax(logits.astype(np.float64)), labels[..., None],
                                    -1)[..., 0]
    loss = voxel_softmax_cross_entropy()
    np.testing.assert_allclose(loss.call(labels.astype("int32"), logits), per_voxel, rtol=1e-5)
    # Keras applies the per-voxel weights, then sums and divides by the number of voxels
    np.testing.assert_allclose(float(loss(labels, logits, sample_weight=weights)),
                               (per_voxel * weights).sum() / per_voxel.size, rtol=1e-5)
    # raw labels with 255: those voxels give 0 (as weight 0 would)
    raw = np.where(weights > 0, labels, 255)
    ignoring = voxel_softmax_cross_entropy(ignore_label=255)
    np.testing.assert_allclose(ignoring.call(raw, logits), per_voxel * weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(ignoring(raw, logits)), (per_voxel * weights).mean(), rtol=1e-5)
    # mean over the weights instead of over the voxels, if asked
    by_weight = voxel_softmax_cross_entropy(reduction="mean_with_sample_weight")
    np.testing.assert_allclose(float(by_weight(labels, logits, sample_weight=weights)),
                               (per_voxel * weights).sum() / weights.sum(), rtol=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(ignoring))
    assert isinstance(clone, VoxelSoftmaxCrossEntropy) and clone.ignore_label == 255
    with pytest.raises(ValueError, match="y_pred"):
        loss.call(labels, logits[..., 0])
    with pytest.raises(ValueError, match="ignore_label"):
        voxel_softmax_cross_entropy(ignore_label="void")


def _eq1(x):
    """V2V Eq. 1 as printed: x^2 / 2 for |x| <= 1, |x| otherwise."""
    return np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x))


def test_huber_flow_loss_is_eq1_on_flow_over_alpha():
    import keras
    import tensorflow as tf

    from tfvideo.losses import HuberFlowLoss, huber_flow_loss

    rng = np.random.default_rng(5)
    true = rng.normal(0, 15, (2, 3, 4, 5, 2))
    pred = true + rng.normal(0, 20, true.shape)
    pred[0, 0, 0, 0] = true[0, 0, 0, 0] + [15.0, -15.0]  # |x| = 1 exactly: the quadratic branch
    weights = (rng.random((2, 3, 4, 5)) > 0.3).astype("float32")
    per_voxel = _eq1((pred - true) / 15.0).sum(-1)
    x = np.abs((pred - true) / 15.0)
    assert (x > 1).any() and (x < 1).any()
    loss = huber_flow_loss(15.0)
    np.testing.assert_allclose(loss.call(true, pred), per_voxel, rtol=1e-5)
    np.testing.assert_allclose(loss.call(true, pred)[0, 0, 0, 0], 2 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(loss(true, pred, sample_weight=weights)),
                               (per_voxel * weights).sum() / per_voxel.size, rtol=1e-5)
    # alpha = 1: Eq. 1 directly on the difference
    np.testing.assert_allclose(huber_flow_loss(1.0).call(true / 15, pred / 15), per_voxel, rtol=1e-5)
    # the continuous Huber (smooth L1) differs by 1/2 outside [-1, 1] and has the same gradient
    smooth = huber_flow_loss(15.0, continuous=True)
    np.testing.assert_allclose(smooth.call(true, pred),
                               (_eq1(x) - 0.5 * (x > 1)).sum(-1), rtol=1e-5, atol=1e-7)
    p = tf.constant(pred, tf.float32)
    grads = []
    for f in (loss, smooth):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = tf.reduce_sum(f.call(true, p))
        grads.append(tape.gradient(value, p).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    d = (pred - true) / 15.0
    np.testing.assert_allclose(grads[0], np.where(np.abs(d) <= 1, d, np.sign(d)) / 15.0, rtol=1e-4,
                               atol=1e-7)
    # unknown (NaN) flow: 0, not NaN
    holes = true.copy()
    holes[1, 2, 3, 4] = np.nan
    out = loss.call(holes, pred).numpy()
    assert out[1, 2, 3, 4] == 0 and np.isfinite(out).all()
    clone = keras.losses.deserialize(keras.losses.serialize(smooth))
    assert isinstance(clone, HuberFlowLoss) and clone.alpha == 15.0 and clone.continuous
    with pytest.raises(ValueError, match="alpha"):
        huber_flow_loss(0.0)
    with pytest.raises(ValueError, match="y_pred"):
        loss.call(true, pred[..., :1])


def test_colour_l2_loss_matches_numpy():
    from tfvideo.losses import colour_l2_loss

    rng = np.random.default_rng(6)
    target = rng.integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    pred = rng.random((2, 3, 4, 5, 3)).astype("float32")
    per_voxel = 0.5 * ((pred - target / 255.0) ** 2).sum(-1)
    loss = colour_l2_loss()
    np.testing.assert_allclose(loss.call(target, pred), per_voxel, rtol=1e-5)
    np.testing.assert_allclose(float(loss(target, pred)), per_voxel.mean(), rtol=1e-5)
    floats = colour_l2_loss(target_max=1.0)
    np.testing.assert_allclose(floats.call(target / 255.0, pred), per_voxel, rtol=1e-5)
    with pytest.raises(ValueError, match="y_true"):
        loss.call(target[..., :2], pred)
    with pytest.raises(ValueError, match="target_max"):
        colour_l2_loss(target_max=-1)
