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
