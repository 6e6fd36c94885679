"""The chapter-3 feature-pooling heads (digest 3.2) against their definitions computed by hand in
NumPy from the model's own weights, plus shapes, weight sharing over time, clip-length freedom,
``.keras`` round trips and a short ``fit``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.test_temporal_pooling import tdc_numpy, window_max_numpy
from tfvideo.layers import PerSegment, RGBPreprocess
from tfvideo.models.snippets import (HEADS, IMAGENET_MEAN, IMAGENET_STD, application_name,
                                     min_frames, pooling_model, preprocess_layer, preprocess_mode)

RNG = np.random.default_rng(31)
SIZE = 32                      # frames 32 x 32: "small" maps 4 x 4 x 128
CLASSES = 5
FC = 16                        # fc_units for CPU runs (4096 in the thesis)
TDC = 8                        # tdc_filters (256 in the thesis)


def clip(frames, batch=2):
    return RNG.integers(0, 256, (batch, frames, SIZE, SIZE, 3), dtype=np.uint8)


def build(head, frames=None, **kwargs):
    kwargs = {"fc_units": FC, "tdc_filters": TDC, **kwargs}
    return pooling_model(CLASSES, head, input_shape=(frames, SIZE, SIZE, 3), **kwargs)


_CACHE = {}


def model_for(head):
    """One model per head (built once per module): unknown T except for "local" (T = 12)."""
    if head not in _CACHE:
        _CACHE[head] = build(head, 12 if head == "local" else None)
    return _CACHE[head]


def dense(layer, x):
    kernel, bias = (w.numpy().astype(np.float64) for w in layer.weights)
    return x @ kernel + bias


def relu(x):
    return np.maximum(x, 0.0)


def frame_maps(model, x):
    """The per-frame CNN, called frame by frame on [-1, 1] pixels (the "tf" scaling written out)."""
    cnn = model.get_layer("cnn").layer
    pixels = x.astype(np.float32) / 127.5 - 1.0
    return np.stack([cnn(pixels[:, t], training=False).numpy() for t in range(x.shape[1])],
                    axis=1).astype(np.float64)                              # (B, T, h, w, C)


def by_hand(model, head, x, spatial):
    """Digest 3.2's heads written out in NumPy with the model's weights (inference: no dropout)."""
    maps = frame_maps(model, x)
    fc1, out = model.get_layer("fc1"), model.get_layer("logits")
    fc2 = model.get_layer("fc2") if head != "slow" else None          # Slow Pooling: one FC

    def vec(m):  # (..., h, w, C) -> (..., D)
        return m.reshape(*m.shape[:-3], -1) if spatial == "flatten" else m.mean(axis=(-3, -2))

    if head == "conv":
        # max over time of the maps, then to a vector; avg_first: average per frame, then max
        v = vec(maps).max(axis=1) if spatial == "avg_first" else vec(maps.max(axis=1))
        return dense(out, relu(dense(fc2, relu(dense(fc1, v)))))
    if head == "late":
        per_frame = relu(dense(fc2, relu(dense(fc1, vec(maps)))))   # (B, T, fc)
        return dense(out, per_frame.max(axis=1))
    if head == "slow":
        windows = vec(window_max_numpy(maps, 10, 5))                 # (B, T', D)
        return dense(out, relu(dense(fc1, windows)).max(axis=1))
    if head == "local":
        towers = relu(dense(fc2, relu(dense(fc1, vec(window_max_numpy(maps, 10, 5))))))
        return dense(out, towers.reshape(towers.shape[0], -1))      # tower j at [j*fc, (j+1)*fc)
    conv = model.get_layer("time_domain_conv")                      # "tdc"
    y = tdc_numpy(maps, conv.kernel.numpy(), conv.bias.numpy(), 5)
    return dense(out, relu(dense(fc2, relu(dense(fc1, vec(y.max(axis=1)))))))


# --------------------------------------------------------------------------------------- shapes ----
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("frames", [12, 30])
def test_logit_shapes(head, frames):
    model = build(head, frames) if head == "local" else model_for(head)
    logits = model(clip(frames))
    assert logits.shape == (2, CLASSES)
    assert np.isfinite(logits.numpy()).all()


@pytest.mark.parametrize("head", ["conv", "late", "slow", "tdc"])
def test_shortest_clips(head):
    model = model_for(head)
    assert model(clip(min_frames(head))).shape == (2, CLASSES)   # 1 frame; 10 for "tdc"
    if head == "tdc":
        with pytest.raises(ValueError, match="T >= 10"):                   # eager: static T
            model(clip(9))
        serve = tf.function(lambda f: model(f, training=False),
                            input_signature=[tf.TensorSpec((None, None, SIZE, SIZE, 3), tf.uint8)])
        with pytest.raises(tf.errors.InvalidArgumentError, match="T >= 10"):  # exported signature
            serve(clip(9))


def test_local_pooling_towers_depend_on_the_clip_length():
    # 1 + (T - 10) // 5 towers of FC units each feed the "larger softmax"
    for frames, towers in ((12, 1), (30, 5), (4, 1)):
        model = build("local", frames)
        assert model.get_layer("logits").kernel.shape == (towers * FC, CLASSES)


# ---------------------------------------------------------------------- the heads by hand ----
@pytest.mark.parametrize("head, spatial", [("conv", "flatten"), ("conv", "avg"),
                                           ("conv", "avg_first"), ("late", "auto"),
                                           ("slow", "auto"), ("local", "auto"), ("tdc", "auto")])
def test_head_equals_its_definition_by_hand(head, spatial):
    frames = 22            # 3 windows of 10 frames (stride 5); frames 20-21 in none of them
    model = build(head, frames if head == "local" else None, spatial_pooling=spatial,
                  dropout=0.6)
    # flatten for "auto": the "small" backbone on a static frame size (module docstring)
    x = clip(frames)
    expected = by_hand(model, head, x, "flatten" if spatial == "auto" else spatial)
    np.testing.assert_allclose(model(x, training=False), expected, rtol=1e-4, atol=1e-4)


def test_conv_pooling_keeps_the_spatial_layout():
    # flattening the time-max of the maps is not the time-max of per-frame averages: the two
    # "conv" variants are different functions of the same weights
    flat = build("conv", spatial_pooling="avg")
    first = build("conv", spatial_pooling="avg_first")
    first.set_weights(flat.get_weights())
    x = clip(6)
    assert not np.allclose(flat(x), first(x), atol=1e-4)


# ------------------------------------------------------------- one CNN shared over time ----
def test_per_frame_cnn_has_one_set_of_weights():
    model = model_for("conv")
    cnn = model.get_layer("cnn")
    assert isinstance(cnn, PerSegment)                  # time folded into the batch, not TimeDistributed
    assert not any(isinstance(layer, keras.layers.TimeDistributed) for layer in model.layers)
    # "small": 3 x (conv kernel, BN gamma, BN beta) trainable, 3 x (BN mean, variance) not;
    # head: fc1, fc2, logits (kernel + bias each); nothing depends on the number of frames
    assert len(cnn.trainable_weights) == 9 and len(cnn.non_trainable_weights) == 6
    assert len(model.trainable_weights) == 9 + 6 and len(model.non_trainable_weights) == 6
    conv_kernels = [w for w in model.weights if len(w.shape) == 4]
    assert len(conv_kernels) == 3
    # every frame goes through the same network: per-frame maps = the CNN on that frame alone
    features = keras.Model(model.input, cnn.output)
    x = clip(5)
    np.testing.assert_allclose(features(x, training=False), frame_maps(model, x), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("head", ["conv", "late"])
def test_permuting_frames_leaves_conv_and_late_pooling_unchanged(head):
    model = model_for(head)
    x = clip(12)
    order = RNG.permutation(12)
    np.testing.assert_allclose(model(x[:, order], training=False), model(x, training=False),
                               rtol=1e-5, atol=1e-5)


def test_permuting_frames_changes_slow_pooling():
    # the windows see other frames: the property above is not a trivial one of the test
    model = model_for("slow")
    x = clip(12)
    assert not np.allclose(model(x[:, ::-1], training=False), model(x, training=False), atol=1e-5)


# --------------------------------------------------------------------- other clip lengths ----
@pytest.mark.parametrize("head", ["conv", "late"])
def test_network_expansion_to_other_clip_lengths(head):
    # digest 3.4: train a single-frame model, expand it to 30 frames: no weight depends on T
    one = build(head, 1)
    thirty = build(head, 30)
    thirty.set_weights(one.get_weights())
    free = build(head)
    free.set_weights(one.get_weights())
    x = clip(30)
    np.testing.assert_allclose(thirty(x, training=False), free(x, training=False), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(one(x[:, 7:8], training=False), free(x[:, 7:8], training=False),
                               rtol=1e-5, atol=1e-5)
    # one signature with an unknown number of frames (as in an exported model) runs every length
    serve = tf.function(lambda f: free(f, training=False),
                        input_signature=[tf.TensorSpec((None, None, SIZE, SIZE, 3), tf.uint8)])
    for frames in (1, 12, 30):
        np.testing.assert_allclose(serve(x[:, :frames]), free(x[:, :frames], training=False),
                                   rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- save / load, fit ----
def test_exported_signature_takes_any_number_of_frames(tmp_path):
    model = model_for("slow")
    model.export(str(tmp_path / "slow"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "slow"))
    for frames in (1, 12, 30):
        x = clip(frames)
        np.testing.assert_allclose(served.serve(x), model(x, training=False), rtol=1e-5,
                                   atol=1e-5)



@pytest.mark.parametrize("head", HEADS)
def test_keras_round_trip(tmp_path, head):
    model = build(head, 12 if head == "local" else None)
    for w in model.weights:                     # move BN statistics and biases off their init
        w.assign(w.numpy() + RNG.uniform(0.0, 0.1, w.shape).astype(np.float32))
    path = tmp_path / f"{head}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = clip(12)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5,
                               atol=1e-5)
    assert len(loaded.weights) == len(model.weights)


@pytest.mark.parametrize("head", HEADS)
def test_short_fit_runs(head):
    frames = 12
    model = build(head, frames if head == "local" else None)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = clip(frames, batch=4)
    y = RNG.integers(0, CLASSES, 4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)     # 2 steps
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)
               # NetVLAD's assignment bias: with intra-normalisation a bias change rescales each cluster's
               # residual sum almost uniformly, which the normalisation removes (a second-order gradient)
               if w.path != "netvlad/bias"]
    assert all(changed)                           # the gradient reaches every weight, CNN included


@pytest.mark.parametrize("head", ["slow", "local", "tdc"])
def test_fit_under_mirrored_strategy(mirrored_strategy, head):
    with mirrored_strategy.scope():
        model = build(head, 12 if head == "local" else None)
        model.compile(optimizer=keras.optimizers.SGD(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((clip(12, batch=4), np.arange(4) % CLASSES))
    history = model.fit(ds.batch(4).repeat(), steps_per_epoch=2, epochs=1, verbose=0,
                        shuffle=False)
    assert np.isfinite(history.history["loss"][0])


# ------------------------------------------------------------------------------- backbones ----
def test_keras_application_backbone_returns_conv_maps():
    model = pooling_model(3, "late", backbone="mobilenet_v2", input_shape=(None, 32, 32, 3),
                          fc_units=8)
    assert isinstance(model.get_layer("preprocess"), RGBPreprocess)
    assert model.get_layer("preprocess").mode == "tf"
    maps = model.get_layer("cnn").output
    assert maps.shape[2:] == (1, 1, 1280)         # MobileNetV2's last conv maps, no pooling
    assert model(clip(3)).shape == (2, 3)


def test_preprocess_modes():
    assert application_name("inception_v3") == "InceptionV3"
    assert application_name("RESNET50") == "ResNet50"
    assert {b: preprocess_mode(b) for b in ("small", "InceptionV3", "resnet50", "vgg16",
                                            "mobilenet_v2", "resnet50_v2", "xception",
                                            "densenet121", "efficientnet_b0", "convnext_tiny",
                                            "mobilenet_v3_small")} == {
        "small": "tf", "InceptionV3": "tf", "resnet50": "caffe", "vgg16": "caffe",
        "mobilenet_v2": "tf", "resnet50_v2": "tf", "xception": "tf", "densenet121": "torch",
        "efficientnet_b0": "raw", "convnext_tiny": "raw", "mobilenet_v3_small": "raw"}
    with pytest.raises(ValueError, match="backbone"):
        preprocess_mode("alexnet")


@pytest.mark.parametrize("backbone", ["densenet121", "efficientnet_b0"])
def test_torch_and_raw_scalings(backbone):
    x = RNG.integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    out = preprocess_layer(backbone)(x).numpy()
    expected = x.astype(np.float64)
    if backbone == "densenet121":   # keras.applications.densenet.preprocess_input ("torch")
        expected = (expected / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- arguments ----
def test_bad_arguments():
    with pytest.raises(ValueError, match="head"):
        pooling_model(5, "average")
    with pytest.raises(ValueError, match="num_classes"):
        pooling_model(1, "conv")
    with pytest.raises(ValueError, match="input_shape"):
        pooling_model(5, "conv", input_shape=(None, 32, 32))
    with pytest.raises(ValueError, match="input_shape.*'local'"):
        pooling_model(5, "local")                   # the towers need a fixed T
    with pytest.raises(ValueError, match="T >= window=10"):
        pooling_model(5, "tdc", input_shape=(9, 32, 32, 3))
    with pytest.raises(ValueError, match="spatial_pooling"):
        pooling_model(5, "tdc", spatial_pooling="avg_first")
    with pytest.raises(ValueError, match="spatial_pooling"):
        pooling_model(5, "conv", spatial_pooling="flatten")      # unknown frame size
    with pytest.raises(ValueError, match="spatial_pooling"):
        pooling_model(5, "conv", spatial_pooling="max")
    with pytest.raises(ValueError, match="dropout"):
        pooling_model(5, "conv", dropout=1.0)
    for arg in ("fc_units", "window", "stride", "tdc_filters"):
        with pytest.raises(ValueError, match=arg):
            pooling_model(5, "conv", **{arg: 0})
    with pytest.raises(ValueError, match="pretrained"):
        pooling_model(5, "conv", weights="imagenet")
    with pytest.raises(ValueError, match="backbone"):
        pooling_model(5, "conv", backbone="alexnet")


def test_lstm_model_per_step_logits_are_causal_and_train_with_the_gain_loss():
    """lstm_model: the classifier at every step reads the LSTM state of frames 0..t only (the prefix of a
    longer clip gives the same first logits), any T runs, the parts compose as documented, and
    model.fit with the gain-weighted loss changes the weights."""
    from tfvideo.losses import GainWeightedCrossEntropy
    from tfvideo.models.snippets import lstm_model

    keras.utils.set_random_seed(2)
    model = lstm_model(3, input_shape=(None, 32, 32, 3), layers=2, units=6)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (2, 7, 32, 32, 3), dtype=np.uint8)
    full, prefix = model(clip).numpy(), model(clip[:, :3]).numpy()
    assert full.shape == (2, 7, 3) and prefix.shape == (2, 3, 3)
    np.testing.assert_allclose(prefix, full[:, :3], rtol=1e-5, atol=1e-5)
    assert np.abs(full[:, 3:] - full[:, 2:3]).max() > 1e-6  # later steps see later frames
    vectors = keras.Model(model.input, model.get_layer("vectors").output)(clip)
    by_hand = model.get_layer("logits")(model.get_layer("lstm")(vectors)).numpy()
    np.testing.assert_allclose(by_hand, full, rtol=1e-5, atol=1e-5)
    model.compile(keras.optimizers.Adam(1e-2), loss=GainWeightedCrossEntropy())
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(clip, np.array([0, 2]), epochs=1, verbose=0)
    assert sum(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)) > 5
    with pytest.raises(ValueError, match="units"):
        lstm_model(3, units=0)


def test_netvlad_head_equals_its_definition_by_hand():
    """The "netvlad" head: per-frame average-pooled, L2-normalised vectors x_t, soft assignment a_k(x_t) =
    softmax_k(w_k . x_t + b_k), V_k = sum_t a_k(x_t) (x_t - c_k), each V_k L2-normalised, the whole
    L2-normalised (Arandjelovic et al. 2016, tfvideo.layers.NetVLAD), then FC-ReLU, FC-ReLU, logits."""
    model = build("netvlad", spatial_pooling="avg", clusters=3)
    layer = model.get_layer("netvlad")
    for w in layer.weights:                      # away from the init, which ties kernel to centres
        w.assign(w.numpy() + RNG.normal(0, 0.3, w.shape).astype(np.float32))
    x = clip(7)
    v = frame_maps(model, x).mean(axis=(2, 3))                      # (B, T, C)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)                  # unit frame vectors
    c, w, b = (layer.centers.numpy().astype(np.float64), layer.kernel.numpy().astype(np.float64),
               layer.bias.numpy().astype(np.float64))
    z = v @ w + b
    a = np.exp(z - z.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)                                   # (B, T, K)
    vlad = np.einsum("btk,btd->bkd", a, v) - a.sum(1)[..., None] * c[None]
    vlad /= np.linalg.norm(vlad, axis=-1, keepdims=True)
    vlad = vlad.reshape(len(v), -1)
    vlad /= np.linalg.norm(vlad, axis=-1, keepdims=True)
    fc1, fc2, out = (model.get_layer(n) for n in ("fc1", "fc2", "logits"))
    expected = dense(out, relu(dense(fc2, relu(dense(fc1, vlad)))))
    np.testing.assert_allclose(model(x, training=False), expected, rtol=1e-4, atol=1e-4)
    assert model(clip(2), training=False).shape == (2, CLASSES)     # any number of frames
