"""FLOP counts against closed forms written from the layers' definitions."""

import keras
import pytest

from tfvideo.cost import flops


def test_conv_transpose_dense_and_nesting():
    x = keras.Input((4, 8, 8, 3))
    c = keras.layers.Conv3D(5, 3, padding="same", name="c")(x)             # out (4, 8, 8, 5)
    s = keras.layers.Conv3D(6, (1, 2, 2), strides=(1, 2, 2), name="s")(c)  # out (4, 4, 4, 6)
    t = keras.layers.Conv3DTranspose(2, (2, 4, 4), strides=(2, 2, 2), padding="same", name="t")(s)
    inner_in = keras.Input((7,))
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="d")(inner_in), name="inner")
    f = keras.layers.Dense(7, name="f")(keras.layers.Flatten()(t))
    model = keras.Model(x, inner(f))
    expected = {
        "c": 2 * 27 * 3 * 5 * (4 * 8 * 8),
        "s": 2 * 4 * 5 * 6 * (4 * 4 * 4),
        "t": 2 * (2 * 4 * 4) * 6 * 2 * (4 * 4 * 4),  # scattered from every input voxel
        "f": 2 * (8 * 8 * 8 * 2) * 7,
        "inner": 2 * 7 * 3,
    }
    total, per = flops(model, by_layer=True)
    assert per == expected and total == sum(expected.values())


def test_unknown_sizes_are_refused():
    x = keras.Input((None, 8, 3))
    with pytest.raises(ValueError, match="unknown sizes"):
        flops(keras.Model(x, keras.layers.Conv2D(2, 3)(x)))
