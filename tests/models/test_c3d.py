"""C3D encoder / classifier (tfvideo/models/c3d.py) and the Caffe-layout weight loader."""

import keras
import numpy as np
import pytest

from tfvideo.layers import C3D_MEAN_RGB
from tfvideo.models.c3d import (CONV_LAYERS, apply_c3d_encoder, c3d_classifier, c3d_encoder,
                                load_c3d_weights)

RNG = np.random.default_rng(0)

# C3D's convolutions (name, in, out), all 3x3x3 (prototxt); each has 27 * in * out + out parameters
C3D_CONVS = [("conv1a", 3, 64), ("conv2a", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
             ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512)]


def conv_params(channels=3):
    total = 0
    for name, cin, cout in C3D_CONVS:
        cin = channels if name == "conv1a" else cin
        total += 3 * 3 * 3 * cin * cout + cout
    return total


def test_encoder_conv5b_shape_and_layer_names():
    model = c3d_encoder()
    assert model.input.name == "frames" and model.input.dtype == "uint8"
    assert tuple(model.output.shape) == (None, 2, 7, 7, 512)
    out = model(RNG.integers(0, 256, (1, 16, 112, 112, 3), dtype=np.uint8))
    assert tuple(out.shape) == (1, 2, 7, 7, 512)
    names = [layer.name for layer in model.layers]
    for name in [*CONV_LAYERS, "pool1", "pool2", "pool3", "pool4"]:
        assert name in names
    shapes = {"conv1a": (16, 112, 112, 64), "pool1": (16, 56, 56, 64), "conv2a": (16, 56, 56, 128),
              "pool2": (8, 28, 28, 128), "conv3b": (8, 28, 28, 256), "pool3": (4, 14, 14, 256),
              "conv4b": (4, 14, 14, 512), "pool4": (2, 7, 7, 512), "conv5b": (2, 7, 7, 512)}
    for name, shape in shapes.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    # 8 convolutions, biases included, counted by hand
    assert model.count_params() == conv_params(3)
    # 5248 + 221312 + 884992 + 1769728 + 3539456 + 3 * 7078400
    assert conv_params(3) == 27_655_936
    assert c3d_encoder((16, 112, 112, 1)).count_params() == conv_params(3) - 27 * 2 * 64


def test_classifier_parameter_count_by_hand():
    model = c3d_classifier(487)
    assert tuple(model.output.shape) == (None, 487)
    assert tuple(model.get_layer("pool5").output.shape) == (None, 1, 4, 4, 512)  # Caffe ceil: 7 -> 4
    fc6 = 512 * 1 * 4 * 4 * 4096 + 4096  # 8192 inputs
    fc7 = 4096 * 4096 + 4096
    fc8 = 4096 * 487 + 487
    assert model.count_params() == conv_params(3) + fc6 + fc7 + fc8 == 79_991_015
    assert model.get_layer("fc8").get_config()["activation"] == "linear"  # logits
    assert model.get_layer("drop6").rate == 0.5 and model.get_layer("drop7").rate == 0.5


def test_spatial_only_encoder_uses_2d_layers_with_2x2_pools():
    x = keras.Input((32, 32, 3))
    taps = apply_c3d_encoder(x, spatial_only=True)
    assert tuple(taps["pool1"].shape) == (None, 16, 16, 64)
    assert tuple(taps["conv5b"].shape) == (None, 2, 2, 512)
    with pytest.raises(ValueError, match="up_to"):
        apply_c3d_encoder(x, up_to="conv6")


# ------------------------------------------------------------------------------- weight loading ----
def caffe_conv3d(x, kernel, bias):
    """Caffe's 3-D convolution (a correlation, pad 1, stride 1) on one clip ``x`` (C, T, H, W) with
    ``kernel`` (out, in, kt, kh, kw): ``y[o, t, h, w] = b[o] + sum W[o, c, i, j, k] xpad[c, t+i, h+j, w+k]``."""
    c, t, h, w = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1)))
    y = np.zeros((kernel.shape[0], t, h, w))
    for i in range(3):
        for j in range(3):
            for k in range(3):
                y += np.einsum("oc,cthw->othw", kernel[:, :, i, j, k], xp[:, i:i + t, j:j + h, k:k + w])
    return y + bias[:, None, None, None]


def test_load_conv1a_matches_caffe_correlation_on_bgr(tmp_path):
    model = c3d_encoder((8, 16, 16, 3), up_to="conv2a")
    kernel = RNG.normal(0, 0.01, (64, 3, 3, 3, 3)).astype(np.float32)
    bias = RNG.normal(0, 0.1, (64,)).astype(np.float32)
    path = tmp_path / "c3d.npz"
    # Caffe's bias blob is (1, 1, 1, 1, out)
    np.savez(path, **{"conv1a/kernel": kernel, "conv1a/bias": bias.reshape(1, 1, 1, 1, 64)})
    conv2a_before = model.get_layer("conv2a").kernel.numpy().copy()
    assert load_c3d_weights(model, path) == ["conv1a"]
    np.testing.assert_array_equal(model.get_layer("conv2a").kernel.numpy(), conv2a_before)

    clip = RNG.integers(0, 256, (2, 8, 16, 16, 3), dtype=np.uint8)
    conv1a = keras.Model(model.input, model.get_layer("conv1a").output)(clip).numpy()
    for b in range(2):
        rgb = clip[b].astype(np.float64) - np.array(C3D_MEAN_RGB)      # (T, H, W, RGB) - mean
        bgr = rgb[..., ::-1].transpose(3, 0, 1, 2)                       # Caffe reads (BGR, T, H, W)
        ref = np.maximum(caffe_conv3d(bgr, kernel.astype(np.float64), bias), 0)  # relu1a
        np.testing.assert_allclose(conv1a[b], ref.transpose(1, 2, 3, 0), rtol=1e-4, atol=1e-4)


def test_load_fc_layers_match_the_caffe_inner_products(tmp_path):
    # pool5 (T, H, W) = (2, 2, 3): distinct, so a wrong flattening order cannot pass
    model = c3d_classifier(5, input_shape=(24, 48, 80, 3), fc_units=16)
    pool5_shape = tuple(model.get_layer("pool5").output.shape[1:])
    assert pool5_shape == (2, 2, 3, 512)
    n_in = int(np.prod(pool5_shape))
    w6, b6 = RNG.normal(0, 0.01, (16, n_in)), RNG.normal(0, 0.1, 16)
    w7, b7 = RNG.normal(0, 0.1, (16, 16)), RNG.normal(0, 0.1, 16)
    w8, b8 = RNG.normal(0, 0.1, (5, 16)), RNG.normal(0, 0.1, 5)
    path = tmp_path / "fc.npz"
    np.savez(path, **{"fc6/kernel": w6, "fc6/bias": b6, "fc7/kernel": w7, "fc7/bias": b7,
                      "fc8/kernel": w8, "fc8/bias": b8})
    assert load_c3d_weights(model, path) == ["fc6", "fc7", "fc8"]

    clip = RNG.integers(0, 256, (2, 24, 48, 80, 3), dtype=np.uint8)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in ("pool5", "fc6")]
                        + [model.output])
    pool5, fc6, logits = (t.numpy().astype(np.float64) for t in probe(clip))
    caffe_blob = pool5.transpose(0, 4, 1, 2, 3).reshape(2, -1)  # Caffe flattens (C, T, H, W)
    ref6 = np.maximum(caffe_blob @ w6.T + b6, 0)
    np.testing.assert_allclose(fc6, ref6, rtol=1e-4, atol=1e-4)
    ref8 = np.maximum(ref6 @ w7.T + b7, 0) @ w8.T + b8  # dropout is off at inference
    np.testing.assert_allclose(logits, ref8, rtol=1e-4, atol=1e-4)


def test_load_errors(tmp_path):
    grey = c3d_encoder((8, 16, 16, 1), up_to="conv2a")
    with pytest.raises(FileNotFoundError, match="no C3D weights file"):
        load_c3d_weights(grey, tmp_path / "missing.npz")
    good = RNG.normal(size=(128, 64, 3, 3, 3)).astype(np.float32)
    path = tmp_path / "rgb.npz"
    np.savez(path, **{"conv2a/kernel": good, "conv2a/bias": np.zeros(128, np.float32),
                      "conv1a/kernel": np.zeros((64, 3, 3, 3, 3), np.float32),
                      "conv1a/bias": np.zeros(64, np.float32)})
    before = grey.get_layer("conv2a").kernel.numpy().copy()
    with pytest.raises(ValueError, match=r"'conv1a' shape mismatch.*\(64, 3, 3, 3, 3\).*"
                                         r"model kernel \(3, 3, 3, 1, 64\)"):
        load_c3d_weights(grey, path)
    # nothing is assigned when a layer fails: conv2a (valid) keeps its values
    np.testing.assert_array_equal(grey.get_layer("conv2a").kernel.numpy(), before)
    other = tmp_path / "other.npz"
    np.savez(other, **{"conv9/kernel": np.zeros(3), "conv9/bias": np.zeros(3)})
    with pytest.raises(ValueError, match="holds no layer of the model"):
        load_c3d_weights(grey, other)
    half = tmp_path / "half.npz"
    np.savez(half, **{"conv2a/kernel": good})
    with pytest.raises(ValueError, match="lacks"):
        load_c3d_weights(grey, half)


def test_classifier_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        c3d_classifier(1)
    with pytest.raises(ValueError, match="input_shape"):
        c3d_classifier(5, input_shape=(None, 112, 112, 3))
    with pytest.raises(ValueError, match="input_shape"):
        c3d_encoder((16, 112, 112))
