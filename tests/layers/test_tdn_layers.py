"""Layers of the Ng & Davis 2018 TDN (thesis chapter 5): shared layer checks + NumPy references."""

import doctest

import numpy as np
import pytest

from tests.layer_checks import check_layer
from tfvideo.layers import tdn as tdn_layers
from tfvideo.layers.tdn import (TDN_FUSION_WEIGHTS, FoldSegments, L1FuseScores, StackChannels,
                                TemporalDifference, UnfoldSegments)

RNG = np.random.default_rng(13)


# --------------------------------------------------------------------------- TemporalDifference ----
def test_temporal_difference_float_maps(tmp_path):
    x = RNG.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)  # (B, S, H, W, C)
    # no weights: a difference of slices; unknown S, H, W in the symbolic checks
    out = check_layer(TemporalDifference, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 3, 5, 6, 3), symbolic_shapes=(None, None, None, 3),
                      tmp_path=tmp_path)
    # digest 5.1: v = f(I_{t+1}) - f(I_t) for every adjacent pair, written as a loop over pairs
    expected = np.stack([x[:, t + 1] - x[:, t] for t in range(x.shape[1] - 1)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert out.dtype == np.float32


def test_temporal_difference_uint8_frames_are_signed(tmp_path):
    frames = RNG.integers(0, 256, (3, 2, 4, 4, 3), dtype=np.uint8)
    out = check_layer(TemporalDifference, frames, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(3, 1, 4, 4, 3), symbolic_shapes=(None, 4, 4, 3),
                      tmp_path=tmp_path)
    # I2 - I1 in integers (uint8 arithmetic would wrap around)
    expected = frames[:, 1:].astype(np.int64) - frames[:, :-1].astype(np.int64)
    assert out.dtype == np.float32 and out.min() < 0
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_temporal_difference_vectors_any_snippet_count():
    layer = TemporalDifference()
    for s in (2, 3, 7):
        x = RNG.normal(size=(2, s, 5)).astype(np.float32)
        np.testing.assert_allclose(layer(x), np.diff(x, axis=1), atol=1e-6)


def test_temporal_difference_refuses_one_snippet():
    with pytest.raises(ValueError, match="at least 2 snippets"):
        TemporalDifference()(np.zeros((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match="batch, snippets"):
        TemporalDifference()(np.zeros((2,), np.float32))


# ------------------------------------------------------------------------ Fold / UnfoldSegments ----
def test_fold_segments(tmp_path):
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    out = check_layer(FoldSegments, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(6, 4, 5), symbolic_shapes=(None, None, 5),
                      tmp_path=tmp_path)
    # row b * S + s is snippet s of example b
    for b in range(2):
        for s in range(3):
            np.testing.assert_array_equal(out[b * 3 + s], x[b, s])


def test_unfold_segments_inverts_fold(tmp_path):
    folded = RNG.normal(size=(6, 4)).astype(np.float32)
    reference = RNG.normal(size=(2, 3, 9)).astype(np.float32)
    out = check_layer(UnfoldSegments, [folded, reference], trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=(2, 3, 4),
                      symbolic_shapes=[(4,), (None, None)], tmp_path=tmp_path)
    for b in range(2):
        for s in range(3):
            np.testing.assert_array_equal(out[b, s], folded[b * 3 + s])
    x = RNG.normal(size=(3, 5, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(UnfoldSegments()([FoldSegments()(x), x]), x)


# -------------------------------------------------------------------------------- StackChannels ----
def test_stack_channels_is_tsn_flow_order(tmp_path):
    flows = RNG.integers(0, 256, (2, 3, 5, 4, 6, 2), dtype=np.uint8)  # (B, S, K=5, H, W, xy)
    out = check_layer(StackChannels, flows, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 3, 4, 6, 10),
                      symbolic_shapes=(None, 5, None, None, 2), tmp_path=tmp_path)
    assert out.dtype == np.uint8
    # channels (x1, y1, x2, y2, ..., x5, y5)
    for k in range(5):
        np.testing.assert_array_equal(out[..., 2 * k], flows[:, :, k, ..., 0])
        np.testing.assert_array_equal(out[..., 2 * k + 1], flows[:, :, k, ..., 1])


def test_stack_channels_needs_known_stack():
    with pytest.raises(ValueError, match="known K and C"):
        StackChannels().build((None, None, None, 8, 8, 2))


# --------------------------------------------------------------------------------- L1FuseScores ----
def l1_fuse_reference(streams, weights):
    """Digest 5.3: l1-normalise each stream's pre-softmax scores per example, weighted average."""
    out = np.zeros_like(streams[0], dtype=np.float64)
    for s, w in zip(streams, weights):
        s = s.astype(np.float64)
        out += w * s / np.abs(s).sum(axis=1, keepdims=True)
    return out / sum(weights)


def test_l1_fuse_scores_default_weights(tmp_path):
    rgb = RNG.normal(size=(4, 6)).astype(np.float32) * 3
    flow = RNG.normal(size=(4, 6)).astype(np.float32) * 10
    out = check_layer(L1FuseScores, [rgb, flow], trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(4, 6), tmp_path=tmp_path)
    assert TDN_FUSION_WEIGHTS == (1.0, 1.5)  # "RGB:Flow = 1:1.5"
    np.testing.assert_allclose(out, l1_fuse_reference([rgb, flow], (1.0, 1.5)), rtol=1e-6,
                               atol=1e-7)


def test_l1_fuse_scores_hand_case_and_three_streams(tmp_path):
    # (1, -3) -> (0.25, -0.75); (2, 2) -> (0.5, 0.5); (1 * (0.25, -0.75) + 1.5 * (0.5, 0.5)) / 2.5
    out = L1FuseScores()([np.array([[1.0, -3.0]], np.float32), np.array([[2.0, 2.0]], np.float32)])
    np.testing.assert_allclose(out, [[0.4, 0.0]], atol=1e-7)
    streams = [RNG.normal(size=(3, 5)).astype(np.float32) for _ in range(3)]
    out = check_layer(lambda: L1FuseScores((2.0, 1.0, 0.5)), streams, trainable_weights=0,
                      non_trainable_weights=0, tmp_path=tmp_path)
    np.testing.assert_allclose(out, l1_fuse_reference(streams, (2.0, 1.0, 0.5)), rtol=1e-6,
                               atol=1e-7)
    # scale invariance per stream and per example: the point of the l1 normalisation
    scaled = [streams[0] * np.array([[3.0], [0.1], [7.0]], np.float32), streams[1], streams[2]]
    np.testing.assert_allclose(L1FuseScores((2.0, 1.0, 0.5))(scaled), out, rtol=1e-5, atol=1e-6)


def test_l1_fuse_scores_arguments():
    for bad in ((), (1.0, -1.0), (0.0, 0.0), "ab"):
        with pytest.raises(ValueError, match="weights"):
            L1FuseScores(bad)
    with pytest.raises(ValueError, match="epsilon"):
        L1FuseScores(epsilon=0)
    with pytest.raises(ValueError, match="2 score tensors"):
        L1FuseScores()([np.zeros((1, 3), np.float32)] * 3)


def test_docstring_examples():
    result = doctest.testmod(tdn_layers, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 6
