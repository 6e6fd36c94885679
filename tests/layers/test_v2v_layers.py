"""Layers of C3D / V2V (tfvideo/layers/v2v.py): the shared layer checks and NumPy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.layers import (C3D_MEAN_GREY, C3D_MEAN_RGB, AlphaScale, ClipAtInference, ClipSizeCheck,
                            SubtractMean, TrilinearUpsampling)

RNG = np.random.default_rng(0)


# -------------------------------------------------------------------------------- SubtractMean ----
def test_subtract_mean(tmp_path):
    clip = RNG.integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    # no weights: a fixed per-channel offset
    out = check_layer(lambda: SubtractMean(C3D_MEAN_RGB), clip, trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=clip.shape,
                      symbolic_shapes=(None, None, None, 3), tmp_path=tmp_path, atol=1e-4)
    np.testing.assert_allclose(out, clip.astype(np.float64) - [101.4, 97.7, 90.2], atol=1e-4)
    assert out.dtype == np.float32


def test_grey_mean_is_the_luma_of_the_rgb_mean():
    assert C3D_MEAN_GREY == pytest.approx((0.299 * 101.4 + 0.587 * 97.7 + 0.114 * 90.2,))
    grey = RNG.integers(0, 256, (1, 2, 3, 4, 1), dtype=np.uint8)
    np.testing.assert_allclose(SubtractMean(C3D_MEAN_GREY)(grey).numpy(),
                               grey - C3D_MEAN_GREY[0], atol=1e-4)


def test_subtract_mean_errors():
    with pytest.raises(ValueError, match="`mean` has 3 values but the input has 1 channels"):
        SubtractMean(C3D_MEAN_RGB)(keras.Input((2, 4, 4, 1)))
    with pytest.raises(TypeError, match="`mean`"):
        SubtractMean(3.0)
    with pytest.raises(ValueError, match="`mean`"):
        SubtractMean([])


# ------------------------------------------------------------------------------- ClipSizeCheck ----
def test_clip_size_check_is_the_identity_on_valid_clips(tmp_path):
    clip = RNG.integers(0, 256, (1, 8, 16, 32, 2), dtype=np.uint8)
    out = check_layer(lambda: ClipSizeCheck(8, 16), clip, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=clip.shape, symbolic_shapes=(None, None, None, 2),
                      tmp_path=tmp_path)
    np.testing.assert_array_equal(out, clip)


@pytest.mark.parametrize("shape, bad", [((7, 16, 16), "T=7"), ((8, 24, 16), "H=24"),
                                        ((16, 32, 40), "W=40")])
def test_clip_size_check_known_sizes_raise_value_error(shape, bad):
    rule = r"T must be a multiple of 8 and height H and width W multiples of 16"
    with pytest.raises(ValueError, match=rule) as e:  # at build time (symbolic input)
        ClipSizeCheck(8, 16)(keras.Input((*shape, 3)))
    assert bad in str(e.value)
    layer = ClipSizeCheck(8, 16)
    layer(keras.Input((None, None, None, 3)))
    with pytest.raises(ValueError, match=rule):  # eager call of a layer built on unknown sizes
        layer(np.zeros((1, *shape, 3), np.uint8))


def test_clip_size_check_unknown_sizes_assert_at_run_time():
    layer = ClipSizeCheck(8, 16)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, None, 3), tf.uint8)])
    np.testing.assert_array_equal(fn(np.ones((1, 8, 16, 16, 3), np.uint8)), 1)
    for shape in [(1, 12, 16, 16, 3), (1, 8, 17, 16, 3), (1, 8, 16, 8, 3)]:
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"T must be a multiple of 8 and height H and width W multiples of 16"):
            fn(np.zeros(shape, np.uint8))
    # XLA would drop the assertion: the layer says so to Keras and refuses to trace under jit_compile
    built = ClipSizeCheck(8, 16)
    built(keras.Input((None, 16, 16, 3)))
    assert built.supports_jit is False
    static = ClipSizeCheck(8, 16)
    static(keras.Input((8, 16, 16, 3)))
    assert static.supports_jit is True
    xla = tf.function(ClipSizeCheck(8, 16), jit_compile=True,
                      input_signature=[tf.TensorSpec((None, None, 16, 16, 3), tf.float32)])
    with pytest.raises(ValueError, match="XLA"):
        xla(np.zeros((1, 8, 16, 16, 3), np.float32))


def test_clip_size_check_arguments():
    with pytest.raises(ValueError, match="time_multiple"):
        ClipSizeCheck(0, 16)
    with pytest.raises(ValueError, match="space_multiple"):
        ClipSizeCheck(8, 2.5)
    with pytest.raises(ValueError, match=r"\(batch, T, H, W, C\)"):
        ClipSizeCheck()(keras.Input((16, 16, 3)))


# --------------------------------------------------------------------- AlphaScale, ClipAtInference ----
def test_alpha_scale(tmp_path):
    x = RNG.normal(size=(2, 8, 4, 4, 2)).astype(np.float32)
    out = check_layer(lambda: AlphaScale(15.0), x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=x.shape, symbolic_shapes=(None, None, None, 2),
                      tmp_path=tmp_path)
    np.testing.assert_allclose(out, 15.0 * x, rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        AlphaScale(0)


def test_clip_at_inference(tmp_path):
    x = (3 * RNG.normal(size=(2, 8, 4, 4, 3))).astype(np.float32)
    out = check_layer(lambda: ClipAtInference(0.0, 1.0), x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=x.shape, symbolic_shapes=(None, None, None, 3),
                      tmp_path=tmp_path)
    np.testing.assert_array_equal(out, np.clip(x, 0, 1))
    assert (x < 0).any() and (x > 1).any()
    np.testing.assert_array_equal(ClipAtInference()(x, training=True), x)  # training: identity
    with pytest.raises(ValueError, match="min_value"):
        ClipAtInference(1.0, 0.0)


# ------------------------------------------------------------------------ TrilinearUpsampling ----
def linear_1d(a, axis, factor):
    """Linear interpolation along ``axis`` by ``factor``, half-pixel centres, clamped at the borders."""
    n = a.shape[axis]
    src = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    shape = [1] * a.ndim
    shape[axis] = -1
    frac = frac.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - frac) + np.take(a, hi, axis=axis) * frac


def trilinear(x, factors):
    for axis, f in zip((1, 2, 3), factors):
        x = linear_1d(x, axis, f)
    return x


@pytest.mark.parametrize("factors", [(2, 4, 4), (8, 16, 16), (1, 2, 3)])
def test_trilinear_upsampling_against_numpy(tmp_path, factors):
    x = RNG.normal(size=(2, 2, 3, 4, 5)).astype(np.float32)
    t, h, w = (2 * factors[0], 3 * factors[1], 4 * factors[2])
    out = check_layer(lambda: TrilinearUpsampling(factors), x, trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=(2, t, h, w, 5),
                      symbolic_shapes=(None, None, None, 5), tmp_path=tmp_path, atol=1e-5)
    np.testing.assert_allclose(out, trilinear(x.astype(np.float64), factors), atol=1e-5)


def test_trilinear_upsampling_closed_forms():
    # a constant stays constant; a linear ramp in time is reproduced inside (clamped at the ends)
    np.testing.assert_allclose(TrilinearUpsampling((2, 2, 2))(np.full((1, 2, 2, 2, 1), 3.0)), 3.0)
    ramp = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1, 1)
    up = TrilinearUpsampling((2, 1, 1))(ramp).numpy().ravel()
    np.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0], atol=1e-6)
    with pytest.raises(ValueError, match="factors"):
        TrilinearUpsampling((2, 2))
    with pytest.raises(ValueError, match="factors"):
        TrilinearUpsampling((2, 0, 2))
