"""V2V and its Table 1 baselines (tfvideo/models/v2v.py): shapes, parameter counts by hand, Caffe's
deconvolution, the heads, the size rule, one training step per variant."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.losses import colour_l2_loss, huber_flow_loss, voxel_softmax_cross_entropy
from tfvideo.metrics import AverageDistanceError, EndPointError, MeanIoU, VoxelAccuracy
from tfvideo.models.c3d import load_c3d_weights
from tfvideo.models.v2v import VARIANTS, v2v

RNG = np.random.default_rng(0)
RULE = r"T must be a multiple of 8 and height H and width W multiples of 16"


def conv(k, cin, cout):  # weights + biases of a conv / deconv with k taps
    return k * cin * cout + cout


# ------------------------------------------------------------------------- the paper's clip size ----
@pytest.fixture(scope="module")
def flow_model():
    return v2v(2, task="flow")  # (16, 112, 112, 3) clips


def test_decoder_shapes_at_every_stage(flow_model):
    names = ["conv3b", "conv4b", "conv5b", "conv4c", "conv3c", "deconv5", "concat5", "deconv4",
             "concat4", "deconv3", "conv_pre", "flow"]
    probe = keras.Model(flow_model.input, [flow_model.get_layer(n).output for n in names])
    clip = RNG.integers(0, 256, (1, 16, 112, 112, 3), dtype=np.uint8)
    outs = dict(zip(names, probe(clip)))
    expected = {"conv3b": (1, 8, 28, 28, 256), "conv4b": (1, 4, 14, 14, 512),
                "conv5b": (1, 2, 7, 7, 512), "conv4c": (1, 4, 14, 14, 64),
                "conv3c": (1, 8, 28, 28, 64), "deconv5": (1, 4, 14, 14, 64),
                "concat5": (1, 4, 14, 14, 128), "deconv4": (1, 8, 28, 28, 64),
                "concat4": (1, 8, 28, 28, 128), "deconv3": (1, 16, 112, 112, 64),
                "conv_pre": (1, 16, 112, 112, 2), "flow": (1, 16, 112, 112, 2)}
    assert {n: tuple(t.shape) for n, t in outs.items()} == expected
    # alpha round trip: the model's flow is alpha x Conv-pre's output (Sec. 5)
    np.testing.assert_allclose(outs["flow"].numpy(), 15.0 * outs["conv_pre"].numpy(), rtol=1e-6)
    # the skips: deconv first, then the reducer (prototxt concat order), no ReLU on the reducers
    np.testing.assert_array_equal(outs["concat5"].numpy()[..., :64], outs["deconv5"].numpy())
    np.testing.assert_array_equal(outs["concat5"].numpy()[..., 64:], outs["conv4c"].numpy())
    assert (outs["conv4c"].numpy() < 0).any() and (outs["conv3c"].numpy() < 0).any()
    assert (outs["deconv3"].numpy() >= 0).all()


def test_parameter_count_by_hand(flow_model):
    encoder = (conv(27, 3, 64)          # conv1a      5,248
               + conv(27, 64, 128)      # conv2a    221,312
               + conv(27, 128, 256)     # conv3a    884,992
               + conv(27, 256, 256)     # conv3b  1,769,728
               + conv(27, 256, 512)     # conv4a  3,539,456
               + 3 * conv(27, 512, 512))  # conv4b, conv5a, conv5b: 7,078,400 each
    decoder = (conv(4 * 4 * 4, 512, 64)   # deconv5 on conv5b        2,097,216
               + conv(27, 512, 64)        # conv4c on conv4b           884,800
               + conv(4 * 4 * 4, 128, 64)  # deconv4 on concat5        524,352
               + conv(27, 256, 64)        # conv3c on conv3b           442,432
               + conv(4 * 8 * 8, 128, 64)  # deconv3 on concat4      2,097,216
               + conv(27, 64, 2))         # conv_pre -> K = 2            3,458
    assert encoder == 27_655_936 and decoder == 6_049_474
    assert flow_model.count_params() == encoder + decoder == 33_705_410
    assert len(flow_model.trainable_weights) == 2 * 14


# ------------------------------------------------------------- Keras deconvolution == Caffe's ----
def caffe_deconv3d(x, weight, bias, stride, pad):
    """C3D's Deconvolution3D (``deconvolution3d_layer.cpp``): every input voxel scatters ``x * W`` into
    the full output ``(in - 1) * s + k``, overlaps summed, then ``pad`` is cropped at both ends.
    ``x`` (C, T, H, W), ``weight`` (C, out, kt, kh, kw) (Caffe's deconvolution blob)."""
    c, t, h, w = x.shape
    _, out, kt, kh, kw = weight.shape
    (st, sh, sw), (pt, ph, pw) = stride, pad
    full = np.zeros((out, (t - 1) * st + kt, (h - 1) * sh + kh, (w - 1) * sw + kw))
    for a in range(t):
        for b in range(h):
            for d in range(w):
                full[:, a * st:a * st + kt, b * sh:b * sh + kh, d * sw:d * sw + kw] += np.einsum(
                    "c,coijk->oijk", x[:, a, b, d], weight)
    y = full[:, pt:full.shape[1] - pt, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return y + bias[:, None, None, None]


@pytest.mark.parametrize("kernel, stride, pad", [((4, 4, 4), (2, 2, 2), (1, 1, 1)),      # Deconv5/4
                                                 ((4, 8, 8), (2, 4, 4), (1, 2, 2))])     # Deconv3
def test_keras_same_transposed_conv_is_caffes_deconvolution(kernel, stride, pad):
    x = RNG.normal(size=(1, 2, 3, 2, 3)).astype(np.float32)  # (B, T, H, W, C)
    layer = keras.layers.Conv3DTranspose(4, kernel, strides=stride, padding="same")
    y = layer(x).numpy()[0]
    caffe_w = RNG.normal(size=(3, 4, *kernel))                   # (in, out, kt, kh, kw)
    bias = RNG.normal(size=4)
    layer.kernel.assign(caffe_w.transpose(2, 3, 4, 1, 0))         # Keras (kt, kh, kw, out, in)
    layer.bias.assign(bias)
    y = layer(x).numpy()[0]
    ref = caffe_deconv3d(x[0].transpose(3, 0, 1, 2), caffe_w, bias, stride, pad)
    # Caffe's size (in - 1) * s + k - 2 pad == Keras' in * s
    assert ref.shape[1:] == tuple(n * s for n, s in zip((2, 3, 2), stride)) == y.shape[:3]
    np.testing.assert_allclose(y, ref.transpose(1, 2, 3, 0), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- size rule ----
@pytest.mark.parametrize("clip_shape", [(12, 32, 32), (8, 40, 32), (8, 32, 24)])
def test_size_rule_known_sizes(clip_shape):
    with pytest.raises(ValueError, match=RULE):
        v2v(2, clip_shape=clip_shape)


def test_size_rule_unknown_sizes_at_run_time():
    model = v2v(3, clip_shape=(None, None, None))
    assert model(np.zeros((1, 8, 16, 32, 3), np.uint8)).shape == (1, 8, 16, 32, 3)
    with pytest.raises(ValueError, match=RULE):  # eager: the sizes are known when called
        model(np.zeros((1, 8, 24, 32, 3), np.uint8))
    serve = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, None, 3), tf.uint8)])
    assert serve(np.zeros((1, 16, 32, 16, 3), np.uint8)).shape == (1, 16, 32, 16, 3)
    for shape in [(1, 4, 16, 16, 3), (1, 8, 24, 16, 3), (1, 8, 16, 8, 3)]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=RULE):
            serve(np.zeros(shape, np.uint8))


# ----------------------------------------------------------------------- every variant trains ----
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_builds_and_trains_one_step(variant):
    k = 3
    model = v2v(k, task="segmentation", variant=variant, clip_shape=(8, 16, 16))
    x = RNG.integers(0, 256, (1, 8, 16, 16, 3), dtype=np.uint8)
    y = RNG.integers(0, k, (1, 8, 16, 16)).astype(np.int32)
    w = (RNG.random((1, 8, 16, 16)) > 0.2).astype(np.float32)
    assert model.output.shape == (None, 8, 16, 16, k)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=voxel_softmax_cross_entropy(),
                  weighted_metrics=[VoxelAccuracy(), MeanIoU(k)])
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, sample_weight=w, epochs=1, batch_size=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(changed), [v.path for v, c in zip(model.trainable_variables, changed) if not c]


def test_baseline_structure():
    """Conv{3,4,5}b-up predict at the tapped layer and upsample; remove-skip has no reducers;
    2D-V2V keeps the channel counts with 3x3 / 2D kernels (its parameter count by hand)."""
    for variant, tap, small in [("conv3b_up", "conv3b", (4, 4, 4)), ("conv4b_up", "conv4b", (2, 2, 2)),
                                ("conv5b_up", "conv5b", (1, 1, 1))]:
        model = v2v(2, variant=variant, clip_shape=(8, 16, 16))
        assert model.get_layer("conv_pre").input is model.get_layer(tap).output
        assert tuple(model.get_layer("conv_pre").output.shape[1:4]) == small
        assert tuple(model.get_layer("upsample").output.shape[1:]) == (8, 16, 16, 2)
        assert tap == "conv5b" or "conv5a" not in [layer.name for layer in model.layers]
    no_skip = v2v(2, variant="v2v_no_skip", clip_shape=(8, 16, 16))
    names = [layer.name for layer in no_skip.layers]
    assert "conv3c" not in names and "conv4c" not in names and "concat5" not in names
    assert no_skip.count_params() == (27_655_936 + conv(64, 512, 64) + conv(64, 64, 64)
                                      + conv(256, 64, 64) + conv(27, 64, 2))
    flat = v2v(2, variant="2d_v2v", clip_shape=(8, 16, 16))
    encoder_2d = (conv(9, 3, 64) + conv(9, 64, 128) + conv(9, 128, 256) + conv(9, 256, 256)
                  + conv(9, 256, 512) + 3 * conv(9, 512, 512))
    decoder_2d = (conv(16, 512, 64) + conv(9, 512, 64) + conv(16, 128, 64) + conv(9, 256, 64)
                  + conv(64, 128, 64) + conv(9, 64, 2))
    assert flat.count_params() == encoder_2d + decoder_2d


def test_initial_activations_have_unit_scale_on_unscaled_pixels(photo_rgb):
    """C3D feeds 0..255 - mean without scaling; conv1a's He-normal init divided by INPUT_STD keeps
    the activations (and the segmentation loss, about ln K) at unit scale, so SGD at 0.01 trains
    (plain He-normal starts ~60x larger and diverges: tfvideo/models/c3d.py, "Initialisation")."""
    keras.utils.set_random_seed(1)
    clips = np.stack([np.stack([photo_rgb[100 + 8 * t + 40 * b:132 + 8 * t + 40 * b, 200:232]
                                for t in range(8)]) for b in range(2)]).astype(np.uint8)
    model = v2v(3, task="segmentation", clip_shape=(8, 32, 32))
    names = ["conv1a", "conv3b", "conv5b", "deconv3", "conv_pre"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    stds = {n: float(np.std(t)) for n, t in zip(names, probe(clips))}
    assert all(0.02 < v < 5 for v in stds.values()), stds
    labels = RNG.integers(0, 3, (2, 8, 32, 32)).astype(np.int32)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=voxel_softmax_cross_entropy())
    losses = model.fit(clips, labels, batch_size=1, epochs=1, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and max(losses) < 2 * np.log(3), losses


# --------------------------------------------------------------------------------------- heads ----
def eq1(x):
    """V2V Eq. 1 as printed: x^2 / 2 for |x| <= 1, |x| otherwise."""
    return np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x))


def test_flow_head_alpha_round_trip_and_loss():
    model = v2v(2, task="flow", clip_shape=(8, 16, 16))
    model.get_layer("conv_pre").bias.assign([0.4, -0.7])  # some predictions beyond |x| = 1 below
    x = RNG.integers(0, 256, (2, 8, 16, 16, 3), dtype=np.uint8)
    pre = keras.Model(model.input, model.get_layer("conv_pre").output)(x).numpy().astype(np.float64)
    flow = model(x).numpy().astype(np.float64)
    np.testing.assert_allclose(flow, 15.0 * pre, rtol=1e-6, atol=1e-6)
    true = RNG.normal(0, 12, (2, 8, 16, 16, 2))
    weights = (RNG.random((2, 8, 16, 16)) > 0.3).astype(np.float32)
    # the paper's loss on Conv-pre's output and flow / alpha, weighted, averaged over voxels
    per_voxel = eq1(pre - true / 15.0).sum(-1)
    assert (np.abs(pre - true / 15.0) > 1).any() and (np.abs(pre - true / 15.0) <= 1).any()
    expected = (per_voxel * weights).sum() / per_voxel.size
    got = huber_flow_loss(15.0)(true, flow, sample_weight=weights)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    model.compile(optimizer="sgd", loss=huber_flow_loss(), weighted_metrics=[EndPointError()])
    logs = model.evaluate(x, true, sample_weight=weights, verbose=0, return_dict=True)
    epe = np.sqrt(((flow - true) ** 2).sum(-1))
    np.testing.assert_allclose(logs["end_point_error"], (epe * weights).sum() / weights.sum(), rtol=1e-4)
    history = model.fit(x, true.astype(np.float32), sample_weight=weights, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_colour_head_is_linear_in_training_and_clipped_at_inference():
    model = v2v(3, input_channels=1, task="colour", clip_shape=(8, 16, 16))
    grey = RNG.integers(0, 256, (1, 8, 16, 16, 1), dtype=np.uint8)
    pre = keras.Model(model.input, model.get_layer("conv_pre").output)(grey).numpy()
    assert (pre < 0).any() and (pre > 1).any()
    np.testing.assert_array_equal(model(grey).numpy(), np.clip(pre, 0, 1))
    np.testing.assert_array_equal(model(grey, training=True).numpy(), pre)
    rgb = RNG.integers(0, 256, (1, 8, 16, 16, 3), dtype=np.uint8)
    model.compile(optimizer="sgd", loss=colour_l2_loss(), metrics=[AverageDistanceError()])
    history = model.fit(grey, rgb, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    out = model.predict(grey, verbose=0)
    assert out.min() >= 0 and out.max() <= 1
    ade = model.evaluate(grey, rgb, verbose=0, return_dict=True)["average_distance_error"]
    ref = np.sqrt(((out - rgb / 255.0) ** 2).sum(-1)).mean()
    np.testing.assert_allclose(ade, ref, rtol=1e-4)


def test_arguments():
    with pytest.raises(ValueError, match="num_outputs` must be 2"):
        v2v(3, task="flow")
    with pytest.raises(ValueError, match="input_channels=1"):
        v2v(3, task="colour")
    with pytest.raises(ValueError, match="variant"):
        v2v(2, variant="v2v_0")
    with pytest.raises(ValueError, match="task"):
        v2v(2, task="depth")
    with pytest.raises(ValueError, match="clip_shape"):
        v2v(2, clip_shape=(16, 112))
    with pytest.raises(ValueError, match="num_classes|classes"):
        v2v(1, task="segmentation")
    with pytest.raises(ValueError, match="`mean` has 3 values but the input has 1 channels"):
        v2v(3, input_channels=1, mean=(1.0, 2.0, 3.0), clip_shape=(8, 16, 16))


# ------------------------------------------------------------------- save / load, C3D weights ----
@pytest.mark.parametrize("variant", ["v2v", "2d_v2v", "conv4b_up"])
def test_keras_save_load_round_trip(tmp_path, variant):
    model = v2v(2, task="flow", variant=variant, clip_shape=(None, None, None))
    x = RNG.integers(0, 256, (1, 8, 16, 16, 3), dtype=np.uint8)
    path = tmp_path / f"{variant}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="V2V size rule"):  # the size check survives loading
        loaded(np.zeros((1, 8, 20, 16, 3), np.uint8))


def test_c3d_weights_load_into_v2v(tmp_path):
    model = v2v(8, task="segmentation", clip_shape=(8, 16, 16))
    k1 = RNG.normal(size=(64, 3, 3, 3, 3)).astype(np.float32)
    k3 = RNG.normal(size=(256, 256, 3, 3, 3)).astype(np.float32)
    path = tmp_path / "c3d.npz"
    np.savez(path, **{"conv1a/kernel": k1, "conv1a/bias": np.arange(64.0),
                      "conv3b/kernel": k3, "conv3b/bias": np.ones(256),
                      "fc6/kernel": np.zeros((4, 8)), "fc6/bias": np.zeros(4)})  # no fc6 in V2V
    assert load_c3d_weights(model, path) == ["conv1a", "conv3b"]
    np.testing.assert_array_equal(model.get_layer("conv1a").kernel.numpy(),
                                  k1[:, ::-1].transpose(2, 3, 4, 1, 0))
    np.testing.assert_array_equal(model.get_layer("conv3b").kernel.numpy(), k3.transpose(2, 3, 4, 1, 0))
    np.testing.assert_array_equal(model.get_layer("conv1a").bias.numpy(), np.arange(64.0))
