"""Local conv features and the VLAD descriptor model (thesis ch. 2) against the stock keras.applications network
and NumPy: per-location L2 normalisation, the warp to n x n and 2n x 2n, Eq. 2.1 on the features, weights files,
any keras.applications backbone, and the errors."""

import keras
import numpy as np
import pytest

from tfvideo.models.retrieval import (backbone_layers, local_features, multiscale_features, output_name,
                                      vlad_model)

RNG = np.random.default_rng(4)


def _images(b=2, h=48, w=64):
    return RNG.integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def test_vgg16_local_features_are_the_stock_maps_normalised_per_location():
    keras.utils.set_random_seed(0)
    net = local_features("vgg16", ["block3_conv3", "block4_conv2"])
    inner = [layer for layer in net.layers if isinstance(layer, keras.Model)][0]
    x = _images()
    out = net(x)
    assert out["block3_conv3"].shape == (2, 12, 16, 256) and out["block4_conv2"].shape == (2, 6, 8, 512)
    # the same weights in a stock VGG16 (the feature model holds the stock layers up to block4_conv2)
    stock = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    for layer in inner.layers[1:]:
        stock.get_layer(layer.name).set_weights(layer.get_weights())
    bgr = x[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    for layer in ("block3_conv3", "block4_conv2"):
        maps = keras.Model(stock.input, stock.get_layer(layer).output)(bgr).numpy()
        want = maps / np.maximum(np.linalg.norm(maps, axis=-1, keepdims=True), 1e-6)
        np.testing.assert_allclose(out[layer].numpy(), want, rtol=1e-4, atol=1e-5)
        norms = np.linalg.norm(out[layer].numpy(), axis=-1)
        assert np.all((np.abs(norms - 1) < 1e-4) | (norms < 1e-6))   # unit vectors (or an all-zero location)


def test_multiscale_features_warp_to_n_and_2n():
    net = multiscale_features("vgg16", ["block2_conv1", "block3_conv1"], size=32, scales=(1, 2))
    out = net(_images(1, 50, 90))                                       # aspect ratio not kept (digest 2.1)
    assert out[output_name("block2_conv1", 1)].shape == (1, 16, 16, 128)
    assert out[output_name("block2_conv1", 2)].shape == (1, 32, 32, 128)
    assert out[output_name("block3_conv1", 2)].shape == (1, 16, 16, 256)
    # the warp is a resize: a constant image gives constant (per channel) maps away from the border
    flat = net(np.full((1, 50, 90, 3), 100, np.uint8))[output_name("block2_conv1", 1)].numpy()[0, 2:-2, 2:-2]
    np.testing.assert_allclose(flat, np.broadcast_to(flat[0, 0], flat.shape), atol=1e-5)


def test_vlad_model_is_eq_2_1_on_the_features():
    features = multiscale_features("vgg16", ["block2_conv1"], size=32, scales=(1,))
    name = output_name("block2_conv1", 1)
    centers = RNG.normal(size=(5, 128)).astype(np.float32) * 0.1
    model = vlad_model(features, {name: centers})
    x = _images(2, 40, 40)
    f = features(x)[name].numpy().reshape(2, -1, 128).astype(np.float64)
    got = model(x)[name].numpy()
    for b in range(2):
        nn = np.argmin(((f[b][:, None] - centers[None]) ** 2).sum(-1), 1)
        v = np.stack([(f[b][nn == k] - centers[k]).sum(0) for k in range(5)])
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        v = v.ravel() / np.linalg.norm(v)
        np.testing.assert_allclose(got[b], v, rtol=1e-4, atol=1e-5)


def test_weights_file_is_loaded(tmp_path):
    keras.utils.set_random_seed(1)
    stock = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    stock.save_weights(path)
    a = local_features("vgg16", ["block2_conv2"], weights=path)
    keras.utils.set_random_seed(2)
    b = local_features("vgg16", ["block2_conv2"], weights=path)
    c = local_features("vgg16", ["block2_conv2"])
    x = _images(1, 32, 32)
    np.testing.assert_allclose(a(x)["block2_conv2"], b(x)["block2_conv2"], rtol=1e-6)
    assert not np.allclose(a(x)["block2_conv2"], c(x)["block2_conv2"])


def test_any_keras_application_and_its_layers():
    names = backbone_layers("MobileNetV2")
    assert "block_6_expand_relu" in names and "out_relu" in names
    net = local_features("MobileNetV2", ["block_6_expand_relu"])
    assert net(_images(1, 64, 64))["block_6_expand_relu"].shape == (1, 8, 8, 192)


@pytest.mark.parametrize("kwargs,message", [
    ({"backbone": "resnet9"}, "keras.applications model"),
    ({"backbone": "vgg16", "layers": ["block9_conv1"]}, "block9_conv1"),
    ({"backbone": "ResNet50"}, "layers must be given"),
    ({"backbone": "vgg16", "weights": "/nowhere.h5"}, "weights"),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        local_features(**kwargs)
    with pytest.raises(ValueError, match="scales"):
        multiscale_features("vgg16", ["block2_conv1"], scales=(1, 1))
