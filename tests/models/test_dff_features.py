"""Deep Feature Flow's feature network, segmentation task network and split point (Sec. 4, Table 5).

References: the stock ``keras.applications`` ResNet with the same weights (conv1-conv4 equal, conv5
equal at the even positions by the holing identity), a NumPy transcription of the DFF code's fixed
bilinear deconvolution (kernel 32, stride 16, crop 8), the per-frame network for every split point.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.layer_checks import check_layer
from tfvideo.models import dff


def _randomise(model, seed):
    """Non-trivial weights everywhere (BN statistics and biases included) so that a layer that is
    skipped, misplaced or mis-copied changes the output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomise(layer, seed + 1)
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:3])
            layer.set_weights([rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape),
                               rng.normal(0, 0.05, bias.shape)])


def _close(actual, expected, rel=1e-4):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * np.abs(expected).max())


def _frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- small net, split, head, training

@pytest.mark.parametrize("size, feature_size", [((64, 96), (4, 6)), ((70, 90), (5, 6))])
def test_small_net_output_stride_16(size, feature_size):
    net = dff.feature_network("small")
    out = net(_frames((2, *size, 3)))
    assert tuple(out.shape) == (2, *feature_size, 128)  # ceil(H / 16), ceil(W / 16), 128 channels
    assert np.all(np.asarray(out) >= 0)  # ReLU after the dilation-6 conv (DFF code)
    conv = net.get_layer("feat_conv_3x3")
    assert conv.dilation_rate == (6, 6) and conv.kernel_size == (3, 3)
    assert all(net.get_layer(f"conv5_block{b}_2_conv").dilation_rate == (2, 2) for b in (1, 2, 3))


def _conv_count(model):
    return sum(isinstance(layer, keras.layers.Conv2D) for layer in dff._flat_layers([model]).values())


def test_split_points_give_the_same_logits():
    reference = dff.frame_segmenter("small", 5)
    _randomise(reference, 1)
    frames = _frames((2, 56, 72, 3), 3)
    expected = np.asarray(reference(frames))
    assert expected.shape == (2, 56, 72, 5)
    total = _conv_count(reference)
    weighted = sum(1 for layer in dff._flat_layers([reference]).values() if layer.weights)
    for task_layers in (*dff.TABLE5_SPLITS, 2, 8):
        n_feat, n_task = dff.split_networks("small", 5, task_layers=task_layers)
        assert dff.transfer_weights(reference, [n_feat, n_task]) == weighted
        # Table 5: N_task keeps exactly `task_layers` learnable (conv) layers, N_feat the rest
        assert _conv_count(n_task) == task_layers
        assert _conv_count(n_feat) == total - task_layers
        features = n_feat(frames)
        channels = {0: 5, 1: 128, 2: 256, 5: 256, 8: 256, 12: 128, 21: 128}[task_layers]
        assert tuple(features.shape) == (2, 4, 5, channels)  # stride 16, ceil(56/16) x ceil(72/16)
        logits = np.asarray(n_task(features))
        assert logits.shape == (2, 64, 80, 5)
        _close(logits[:, :56, :72], expected, 1e-5)


def test_transfer_weights_copies_every_layer():
    reference = dff.frame_segmenter("small", 3)
    n_feat, n_task = dff.split_networks("small", 3, task_layers=5)
    weighted = [l for l in dff._flat_layers([n_feat, n_task]).values() if l.weights]
    assert dff.transfer_weights(reference, [n_feat, n_task]) == len(weighted)
    other = dff.frame_segmenter("small", 4)  # 4 classes: the score conv does not fit
    with pytest.raises(ValueError):
        dff.transfer_weights(other, [n_feat, n_task])
    with pytest.raises(ValueError, match="no layer named"):
        dff.transfer_weights(dff.feature_network("small"), [n_feat, n_task])


def _dff_deconvolution_upsampling(scores, factor=16):
    """The DFF DeepLab symbol's upsampling in NumPy: Caffe's ``Deconvolution`` with the bilinear
    filler (kernel 2f, stride f, one group per class, fixed) then ``Crop(offset=f/2)``."""
    size = 2 * factor
    center = factor - 0.5  # Caffe's bilinear filler for an even kernel
    taps = 1 - np.abs(np.arange(size) - center) / factor
    b, h, w, c = scores.shape
    full = np.zeros((b, (h - 1) * factor + size, (w - 1) * factor + size, c))
    for i in range(h):
        for j in range(w):
            full[:, i * factor:i * factor + size, j * factor:j * factor + size] += (
                scores[:, i:i + 1, j:j + 1] * taps[:, None, None] * taps[None, :, None])
    off = factor // 2
    return full[:, off:off + h * factor, off:off + w * factor]


def test_upsampling_is_dffs_bilinear_deconvolution_inside():
    n_feat, n_task = dff.split_networks("small", 3, task_layers=0)
    assert _conv_count(n_task) == 0  # Table 5, 0 layers: the score maps are propagated
    scores = np.random.default_rng(4).normal(size=(1, 4, 5, 3)).astype(np.float32)
    ours = np.asarray(n_task(scores))
    theirs = _dff_deconvolution_upsampling(scores)
    assert ours.shape == theirs.shape == (1, 64, 80, 3)
    inner = (slice(None), slice(8, 64 - 8), slice(8, 80 - 8))  # the outer 8 px: edge vs zero padding
    np.testing.assert_allclose(ours[inner], theirs[inner], atol=1e-5)


def test_frame_segmenter_fits_one_step_and_survives_keras_save(tmp_path):
    model = dff.frame_segmenter("small", 3)
    frames = _frames((2, 48, 64, 3), 5)
    labels = np.random.default_rng(6).integers(0, 3, (2, 48, 64))
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.get_layer("dff_task").get_layer("score").get_weights()[0].copy()
    history = model.fit(frames, labels, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.get_layer("dff_task").get_layer("score").get_weights()[0]
    assert not np.allclose(before, after)
    assert model.get_layer("dff_feature").get_layer("conv1_bn").trainable  # small: batch statistics
    path = tmp_path / "frame.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    _close(loaded(frames), model(frames), 1e-6)


def test_crop_to_frame_layer(tmp_path):
    scores = np.random.default_rng(7).normal(size=(2, 8, 10, 3)).astype(np.float32)
    frames = np.zeros((2, 6, 7, 3), np.float32)
    out = check_layer(dff.CropToFrame, [scores, frames], trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 6, 7, 3),
                      symbolic_shapes=[(None, None, 3), (None, None, 3)], tmp_path=tmp_path)
    np.testing.assert_array_equal(np.asarray(out), scores[:, :6, :7])


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        dff.feature_network("vgg16")
    with pytest.raises(ValueError, match="weights"):
        dff.feature_network("small", weights="imagenet")
    with pytest.raises(ValueError, match="input_shape"):
        dff.feature_network("small", input_shape=(64, 64, 1))
    with pytest.raises(ValueError, match="channels"):
        dff.feature_network("small", channels=0)
    with pytest.raises(ValueError, match="num_classes"):
        dff.split_networks("small", 0)
    with pytest.raises(ValueError, match="task_layers"):
        dff.split_networks("small", 3, task_layers=3)
    with pytest.raises(TypeError, match="n_feat"):
        dff.segmenter_from_split("a", "b")


# ---------------------------------------------------------------- dilated ResNet vs keras.applications

def _stock_with_random_weights(application, tmp_path_factory, seed):
    stock = application(include_top=False, weights=None, input_shape=(None, None, 3))
    _randomise(stock, seed)
    path = tmp_path_factory.mktemp("stock") / "stock_notop.weights.h5"
    stock.save_weights(path)
    return stock, str(path)


@pytest.fixture(scope="module")
def resnet50_stock(tmp_path_factory):
    return _stock_with_random_weights(keras.applications.ResNet50, tmp_path_factory, 11)


def _check_against_stock(backbone, stock, path, conv4_last, size):
    frames = _frames((1, *size, 3), 8)
    inputs = keras.applications.resnet.preprocess_input(frames.astype(np.float32))
    # conv1-conv4 are the stock layers with the stock (file) weights: N_feat cut after conv4
    n_feat4, _ = dff.split_networks(backbone, 3, task_layers=12, weights=path)
    conv4 = keras.Model(stock.input, stock.get_layer(conv4_last).output)(inputs)
    _close(n_feat4(frames), conv4, 1e-5)
    # conv5 (stride 1, dilation 2, stock weights) at the even positions is the stock conv5
    n_feat5, _ = dff.split_networks(backbone, 3, task_layers=2, weights=path)
    ours = np.asarray(n_feat5(frames))
    stock5 = np.asarray(stock(inputs))
    assert ours.shape[1:3] == (-(-size[0] // 16), -(-size[1] // 16))
    _close(ours[:, ::2, ::2], stock5, 1e-5)
    for b in (1, 2, 3):
        for part in ("0", "1", "2", "3"):
            name = f"conv5_block{b}_{part}_conv"
            if part == "0" and b > 1:
                continue
            layer = n_feat5.get_layer(name)
            assert layer.strides == (1, 1)
            assert layer.dilation_rate == ((2, 2) if part == "2" else (1, 1))
            for mine, theirs in zip(layer.get_weights(), stock.get_layer(name).get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    assert stock.get_layer("conv5_block1_1_conv").strides == (2, 2)  # the stride moved out
    assert not n_feat5.get_layer("conv5_block2_2_bn").trainable  # frozen BN (use_global_stats)
    assert not n_feat5.get_layer("conv2_block1_1_bn").trainable


def test_resnet50_feature_network_stride_16_and_1024_channels(resnet50_stock):
    _, path = resnet50_stock
    net = dff.feature_network("resnet50", weights=path)
    out = net(_frames((1, 224, 320, 3), 9))
    assert tuple(out.shape) == (1, 14, 20, 1024)
    conv = net.get_layer("feat_conv_3x3")
    assert conv.dilation_rate == (6, 6) and conv.kernel_size == (3, 3)
    # randomly initialised N(0, 0.01) (DFF code), not from the file
    kernel = conv.get_weights()[0]
    assert abs(kernel.std() - 0.01) < 0.001 and abs(kernel.mean()) < 0.001


def test_resnet50_matches_keras_applications(resnet50_stock):
    stock, path = resnet50_stock
    _check_against_stock("resnet50", stock, path, "conv4_block6_out", (72, 104))


@pytest.mark.slow
def test_resnet101_matches_keras_applications(tmp_path_factory):
    stock, path = _stock_with_random_weights(keras.applications.ResNet101, tmp_path_factory, 12)
    _check_against_stock("resnet101", stock, path, "conv4_block23_out", (72, 104))
    net = dff.feature_network("resnet101", weights=path)
    assert tuple(net(_frames((1, 224, 320, 3))).shape) == (1, 14, 20, 1024)
