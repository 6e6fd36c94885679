"""Finite differences against the paper's Eq. 3-5 (NumPy transcription) and the adjoint identity."""

import numpy as np
import pytest
import tensorflow as tf

from tests.layers.tvl1_reference import div_backward, grad_central, grad_forward
from tfvideo.ops.differences import central_gradient, divergence, forward_gradient


@pytest.fixture
def field():
    return np.random.default_rng(0).normal(size=(2, 7, 9, 3))


def _per_channel(fn, x):
    outs = [fn(x[b, ..., c]) for b in range(x.shape[0]) for c in range(x.shape[-1])]
    if isinstance(outs[0], tuple):
        return tuple(np.stack(o).reshape(x.shape[0], x.shape[-1], *x.shape[1:3]).transpose(0, 2, 3, 1) for o in zip(*outs))
    return np.stack(outs).reshape(x.shape[0], x.shape[-1], *x.shape[1:3]).transpose(0, 2, 3, 1)


def test_central_gradient_eq3(field):
    gx, gy = central_gradient(field)
    rx, ry = _per_channel(grad_central, field)
    np.testing.assert_allclose(gx, rx, atol=1e-12)
    np.testing.assert_allclose(gy, ry, atol=1e-12)


def test_forward_gradient_eq4(field):
    gx, gy = forward_gradient(field)
    rx, ry = _per_channel(grad_forward, field)
    np.testing.assert_allclose(gx, rx, atol=1e-12)
    np.testing.assert_allclose(gy, ry, atol=1e-12)


def test_divergence_eq5(field):
    px, py = field, field[..., ::-1] * 0.5
    div = divergence(px, py)
    ref = np.stack(
        [
            np.stack([div_backward(px[b, ..., c], py[b, ..., c]) for c in range(3)], -1)
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(div, ref, atol=1e-12)


def test_divergence_is_negative_adjoint_of_forward_gradient(field):
    """<grad u, p> = -<u, div p>: the defining property of the TV-L1 discretisation (Chambolle 2004)."""
    rng = np.random.default_rng(1)
    u = rng.normal(size=(1, 6, 8, 1))
    px, py = rng.normal(size=(2, 1, 6, 8, 1))
    ux, uy = forward_gradient(u)
    lhs = np.sum(ux * px + uy * py)
    rhs = -np.sum(u * divergence(px, py))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


def test_custom_taps_per_channel():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2) ** 1.5
    taps = np.array([[0.3, -2.0], [1.7, 0.5]])  # (tap, channel)
    gx, gy = forward_gradient(x, taps_x=taps, taps_y=taps[::-1])
    for c in range(2):
        ex = taps[0, c] * x[..., :-1, c] + taps[1, c] * x[..., 1:, c]
        np.testing.assert_allclose(gx[..., :-1, c], ex)
        np.testing.assert_allclose(gx[..., -1, c], 0)
        ey = taps[1, c] * x[:, :-1, :, c] + taps[0, c] * x[:, 1:, :, c]
        np.testing.assert_allclose(gy[:, :-1, :, c], ey)
        np.testing.assert_allclose(gy[:, -1, :, c], 0)


def test_rank_error():
    with pytest.raises(ValueError, match="`x` must be a rank-4"):
        central_gradient(tf.zeros((3, 3)))
