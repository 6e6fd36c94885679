"""Per-segment / TSN layers: the shared layer checks and NumPy references."""

import inspect

import keras
import numpy as np
import pytest

from tests.layer_checks import check_layer
from tfvideo.layers import (TWO_STREAM_WEIGHTS, FuseScores, PerSegment, RGBPreprocess,
                            SegmentConsensus, TakeFrame)

RNG = np.random.default_rng(0)
STACKS = RNG.integers(0, 256, (2, 3, 4, 5, 6, 3), dtype=np.uint8)  # (B, S, K, H, W, C)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------------------------ TakeFrame ----
@pytest.mark.parametrize("index", [2, -1])
def test_take_frame(tmp_path, index):
    # no weights: it only indexes
    out = check_layer(lambda: TakeFrame(index), STACKS, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 3, 5, 6, 3), symbolic_shapes=(None, 4, None, None, 3),
                      tmp_path=tmp_path)
    np.testing.assert_array_equal(out, STACKS[:, :, index])
    assert out.dtype == np.uint8


# -------------------------------------------------------------------------------- RGBPreprocess ----
@pytest.mark.parametrize("mode", ["tf", "caffe"])
def test_rgb_preprocess(tmp_path, mode):
    x = STACKS[:, :, 0]  # (B, S, H, W, 3) uint8
    # no weights: a fixed affine map (and a channel flip for "caffe")
    out = check_layer(lambda: RGBPreprocess(mode), x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=x.shape, symbolic_shapes=(None, None, None, 3),
                      tmp_path=tmp_path)
    f = x.astype(np.float64)
    expected = f / 127.5 - 1.0 if mode == "tf" else f[..., ::-1] - [103.939, 116.779, 123.68]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)
    assert out.dtype == np.float32


def test_rgb_preprocess_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        RGBPreprocess("torch")


# ----------------------------------------------------------------------------------- PerSegment ----
def test_per_segment_dense_equals_numpy_loop(tmp_path):
    x = RNG.normal(size=(2, 3, 5)).astype(np.float32)
    layers = []

    def make():
        layers.append(PerSegment(keras.layers.Dense(4)))
        return layers[-1]

    # Dense: kernel and bias, both trainable
    out = check_layer(make, x, trainable_weights=2, non_trainable_weights=0,
                      expected_output_shape=(2, 3, 4), symbolic_shapes=(None, 5), tmp_path=tmp_path,
                      rtol=1e-5, atol=1e-6)
    kernel, bias = (w.numpy() for w in layers[0].layer.weights)
    expected = np.stack([x[:, s] @ kernel + bias for s in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def small_cnn():
    return keras.Sequential([keras.layers.Conv2D(4, 3, padding="same"),
                             keras.layers.BatchNormalization(),
                             keras.layers.GlobalAveragePooling2D()])


def test_per_segment_cnn_equals_inner_layer_per_segment(tmp_path):
    x = RNG.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    layers = []

    def make():
        layers.append(PerSegment(small_cnn()))
        return layers[-1]

    # Conv2D kernel + bias and BN gamma + beta are trainable; BN moving mean + variance are not
    out = check_layer(make, x, trainable_weights=4, non_trainable_weights=2,
                      expected_output_shape=(2, 3, 4), symbolic_shapes=(None, None, None, 2),
                      tmp_path=tmp_path, rtol=1e-5, atol=1e-5)
    inner = layers[0].layer
    expected = np.stack([inner(x[:, s]).numpy() for s in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- SegmentConsensus ----
def test_segment_consensus_is_the_mean_over_segments(tmp_path):
    x = RNG.normal(size=(2, 3, 5)).astype(np.float32)
    out = check_layer(SegmentConsensus, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 5), symbolic_shapes=(None, 5), tmp_path=tmp_path)
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------- FuseScores ----
@pytest.mark.parametrize("weights", [None, (1.0, 0.5, 3.0)])
def test_fuse_scores_is_the_log_of_weighted_softmaxes(tmp_path, weights):
    streams = list(RNG.normal(size=(3 if weights else 2, 4, 6)).astype(np.float32) * 3)
    make = FuseScores if weights is None else (lambda: FuseScores(weights))
    out = check_layer(make, streams, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(4, 6), tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    w = np.asarray(weights or (1.0, 2.0))
    expected = np.log(sum(wi * softmax(s.astype(np.float64)) for wi, s in zip(w, streams)) / w.sum())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_fuse_scores_arguments():
    with pytest.raises(ValueError, match="weights"):
        FuseScores((0, 0))
    with pytest.raises(ValueError, match="weights"):
        FuseScores((1, -1))
    with pytest.raises(ValueError, match="2 fusion weights for 3 streams"):
        FuseScores()([np.zeros((1, 3), np.float32)] * 3)


def test_two_stream_weights_have_one_source():
    from tfvideo import evaluation
    from tfvideo.models import tvnet

    assert TWO_STREAM_WEIGHTS == (1.0, 2.0)  # the TVNet paper's 1:2 (spatial : temporal)
    assert evaluation.TWO_STREAM_WEIGHTS is TWO_STREAM_WEIGHTS
    assert inspect.signature(tvnet.two_stream).parameters["weights"].default is TWO_STREAM_WEIGHTS
    assert FuseScores().fusion_weights == list(TWO_STREAM_WEIGHTS)


def test_models_module_re_exports_the_layers():
    from tfvideo.models import tvnet

    for name in ("TakeFrame", "RGBPreprocess", "PerSegment", "SegmentConsensus", "FuseScores",
                 "FlowStack"):
        assert name in tvnet.__all__
        assert getattr(tvnet, name).__module__.startswith("tfvideo.layers.")
        assert getattr(tvnet, name) is getattr(__import__("tfvideo.layers", fromlist=[name]), name)
