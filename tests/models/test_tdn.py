"""Ng & Davis 2018 TDN (thesis chapter 5): wiring, consensus, fusion, two-phase training, partial BN.

References are independent of the model's plumbing: the image subnetwork called on one snippet at a
time, differences and averages written in NumPy, the Dense classifiers applied as ``x @ W + b``.
"""

import doctest
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.export import classifier_signature, export_for_serving
from tfvideo.models import tdn as tdn_module
from tfvideo.models.tdn import (DEFAULT_TAPS, TAPS, fuse_l1, fused_two_stream, partial_bn_layers,
                                resnet, set_phase, tdn)

RNG = np.random.default_rng(5)
SIZE = 32
NUM_CLASSES = 4
FRAMES = RNG.integers(0, 256, (2, 3, SIZE, SIZE, 3), dtype=np.uint8)  # (B, S, H, W, 3)
LABELS = np.array([1, 3])
TAP_SETTINGS = [TAPS[:n] for n in range(1, len(TAPS) + 1)]  # the rows of Table 5.4
# the layer whose activation is the tap, in the difference subnetwork (digest 5.7 q1)
OWN_TAP_LAYER = {"conv1": "diff_conv1_relu", "res2": "diff_conv2_block1_out",
                 "res3": "diff_conv3_block1_out", "res4": "diff_conv4_block1_out"}
NEXT_LAYER = {"conv1": "diff_pool1_pad", "res2": "diff_conv3_block1_0_conv",
              "res3": "diff_conv4_block1_0_conv", "res4": "diff_conv5_block1_0_conv"}


def small(taps=DEFAULT_TAPS, **kwargs):
    kwargs = {"backbone": "small", "input_shape": (SIZE, SIZE, 3), "dropout": 0.0, **kwargs}
    return tdn(NUM_CLASSES, taps=taps, **kwargs)


def preprocess(frames):
    """The 'small' backbone's input scaling, [0, 255] -> [-1, 1]."""
    return frames.astype(np.float32) / 127.5 - 1.0


def randomise(model, seed=0):
    """Random values in every weight (BN statistics included), so that no branch is trivial."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith("moving_variance"):
            w.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        elif w.path.endswith("gamma"):
            w.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            w.assign((rng.normal(size=shape) * (0.3 if w.path.endswith("kernel") else 0.1))
                     .astype(np.float32))


def snippet_features(model, frames):
    """Image subnetwork outputs of every snippet, one snippet at a time: ``[S][outputs]``."""
    image = model.get_layer("image_subnetwork")
    x = preprocess(frames)
    out = []
    for t in range(frames.shape[1]):
        y = image(x[:, t], training=False)
        out.append([np.asarray(v) for v in (y if isinstance(y, (list, tuple)) else [y])])
    return out


def dense(model, name, x):
    kernel, bias = model.get_layer(name).get_weights()
    return x @ kernel + bias


# ----------------------------------------------------------------------- differences at taps ----
@pytest.mark.parametrize("taps", TAP_SETTINGS, ids=lambda t: "-".join(t))
def test_injected_difference_is_shared_feature_difference(taps):
    model = small(taps)
    randomise(model)
    feature_taps = [t for t in taps if t != "input"]
    s = FRAMES.shape[1]
    # what reaches the difference subnetwork, as the model computes it
    probe = keras.Model(model.input, [model.get_layer(f"fold_{t}_difference").output for t in taps])
    seen = probe(FRAMES, training=False)
    seen = [np.asarray(v) for v in (seen if isinstance(seen, (list, tuple)) else [seen])]
    # reference: the SHARED image subnetwork on snippet t + 1 minus on snippet t (digest 5.1)
    feats = snippet_features(model, FRAMES)
    x = preprocess(FRAMES)
    for i, t in enumerate(taps):
        got = seen[i].reshape(2, s - 1, *seen[i].shape[1:])  # rows b * (S - 1) + pair
        for p in range(s - 1):
            if t == "input":
                expected = x[:, p + 1] - x[:, p]
            else:
                j = feature_taps.index(t)
                expected = feats[p + 1][j] - feats[p][j]
            np.testing.assert_allclose(got[:, p], expected, rtol=1e-5, atol=1e-5, err_msg=t)
    expected_shapes = {"input": (32, 32, 3), "conv1": (16, 16, 32), "res2": (8, 8, 64),
                       "res3": (4, 4, 128), "res4": (2, 2, 128)}
    assert [v.shape[1:] for v in seen] == [expected_shapes[t] for t in taps]

    # inside the difference subnetwork: the input difference is its input, and each tap's difference
    # is ADDED to its own activation at the same layer, the sum feeding the next layer (digest 5.7 q2)
    diff = model.get_layer("difference_subnetwork")
    assert diff.get_layer("diff_conv1_pad").input is diff.inputs[0]
    adds = [layer.name for layer in diff.layers if layer.name.endswith("_inject")]
    assert adds == [f"diff_{t}_inject" for t in feature_taps]
    if feature_taps:
        inner = keras.Model(diff.inputs, [o for t in feature_taps for o in (
            diff.get_layer(OWN_TAP_LAYER[t]).output, diff.get_layer(f"diff_{t}_inject").output)])
        values = [np.asarray(v) for v in inner(seen, training=False)]
        for j, t in enumerate(feature_taps):
            own, injected = values[2 * j], values[2 * j + 1]
            np.testing.assert_allclose(injected, own + seen[taps.index(t)], rtol=1e-5, atol=1e-5)
            assert np.abs(seen[taps.index(t)]).max() > 1e-3  # a real difference was added
            assert diff.get_layer(NEXT_LAYER[t]).input is diff.get_layer(f"diff_{t}_inject").output


def test_taps_change_the_difference_branch():
    a, b = small(("input",)), small(TAPS)
    randomise(a, seed=1)
    # the same weights (same variable paths): only the injected differences differ
    src = {w.path: w.numpy() for w in a.weights}
    assert src.keys() == {w.path for w in b.weights}
    for w in b.weights:
        w.assign(src[w.path])
    ya, yb = (np.asarray(m(FRAMES, training=False)) for m in (a, b))
    assert np.abs(ya - yb).max() > 1e-4


def test_difference_subnetwork_starts_as_copy_of_image_subnetwork():
    model = small(TAPS)
    image = {w.path: w.numpy() for w in model.get_layer("image_subnetwork").weights}
    diff = model.get_layer("difference_subnetwork").weights
    assert len(diff) == len(image) > 0
    for w in diff:
        assert w.path.startswith("diff_")
        np.testing.assert_array_equal(w.numpy(), image[w.path[len("diff_"):]])


# -------------------------------------------------------------------------------- consensus ----
@pytest.mark.parametrize("snippets", [2, 3])
def test_consensus_computed_by_hand(snippets):
    model = small(TAPS)
    randomise(model, seed=2)
    frames = FRAMES[:, :snippets]
    feats = snippet_features(model, frames)
    x = preprocess(frames)
    # image branch: per-snippet logits averaged over the S snippets (TSN consensus, digest 5.2)
    image_logits = np.mean([dense(model, "image_logits", f[-1]) for f in feats], axis=0)
    # difference branch: one shared subnetwork per adjacent pair, averaged over the S - 1 pairs
    diff = model.get_layer("difference_subnetwork")
    pair_logits = []
    for p in range(snippets - 1):
        inputs = [x[:, p + 1] - x[:, p]] + [a - b for a, b in zip(feats[p + 1][:-1], feats[p][:-1])]
        pair_logits.append(dense(model, "difference_logits",
                                 np.asarray(diff(inputs, training=False))))
    diff_logits = np.mean(pair_logits, axis=0)
    # final: the average of the two branches' pre-softmax scores (digest 5.2, 5.7 q4)
    expected = (image_logits + diff_logits) / 2
    branches = keras.Model(model.input, [model.get_layer("image_consensus").output,
                                         model.get_layer("difference_consensus").output,
                                         model.output])
    got_image, got_diff, got = (np.asarray(v) for v in branches(frames, training=False))
    np.testing.assert_allclose(got_image, image_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_diff, diff_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert got.shape == (2, NUM_CLASSES)


# ----------------------------------------------------------------------------------- fusion ----
def test_fuse_l1_against_numpy():
    rgb = RNG.normal(size=(5, 7)) * 4
    flow = RNG.normal(size=(5, 7)) * 0.3
    expected = np.empty_like(rgb)
    for n in range(5):  # one example at a time: s / sum |s|, then (1 * rgb + 1.5 * flow) / 2.5
        expected[n] = (rgb[n] / np.sum(np.abs(rgb[n])) + 1.5 * flow[n] / np.sum(np.abs(flow[n]))) / 2.5
    np.testing.assert_allclose(fuse_l1(rgb, flow), expected, rtol=1e-12)
    np.testing.assert_allclose(fuse_l1(rgb[0], flow[0], (2.0, 1.0)),
                               (2 * rgb[0] / np.abs(rgb[0]).sum() + flow[0] / np.abs(flow[0]).sum()) / 3,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        fuse_l1(rgb, flow[:, :3])
    with pytest.raises(ValueError, match="weights"):
        fuse_l1(rgb, flow, (1.0, -1.0))


def test_fused_two_stream_model_equals_fuse_l1(tmp_path):
    rgb_model = small(name="rgb")
    flow_model = small(modality="flow", name="flow")
    for i, m in enumerate((rgb_model, flow_model)):
        randomise(m, seed=10 + i)
    flows = RNG.integers(0, 256, (2, 3, 5, SIZE, SIZE, 2), dtype=np.uint8)
    fused = fused_two_stream(rgb_model, flow_model)
    got = np.asarray(fused([FRAMES, flows], training=False))
    expected = fuse_l1(np.asarray(rgb_model(FRAMES, training=False)),
                       np.asarray(flow_model(flows, training=False)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    path = tmp_path / "fused.keras"
    fused.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)([FRAMES, flows], training=False), got,
                               rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ flow / weights ----
def test_flow_input_layout_and_cross_modality_init(tmp_path):
    source = resnet("small", (SIZE, SIZE, 3))
    randomise(source, seed=3)
    path = tmp_path / "small.weights.h5"
    source.save_weights(path)
    model = small(modality="flow", weights=str(path))
    src = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
    for sub, prefix in (("image_subnetwork", ""), ("difference_subnetwork", "diff_")):
        sub = model.get_layer(sub)
        for layer in sub.layers:
            if not layer.weights:
                continue
            values = layer.get_weights()
            ref = src[layer.name[len(prefix):]]
            if layer.name == f"{prefix}conv1_conv":  # TSN: RGB kernel averaged, replicated x 10
                assert values[0].shape == (3, 3, 10, 32)
                for c in range(10):
                    np.testing.assert_allclose(values[0][:, :, c], ref[0].mean(axis=2), rtol=1e-6)
                np.testing.assert_array_equal(values[1], ref[1])
            else:
                for v, r in zip(values, ref):
                    np.testing.assert_array_equal(v, r)
    # (B, S, 5, H, W, 2) uint8 flow images; the image subnetwork sees (x1, y1, ..., x5, y5) - mean
    flows = RNG.integers(0, 256, (2, 2, 5, SIZE, SIZE, 2), dtype=np.uint8)
    probe = keras.Model(model.input, model.get_layer("fold_snippets").output)
    stacked = np.asarray(probe(flows))
    assert stacked.shape == (4, SIZE, SIZE, 10)
    for k in range(5):
        for c in range(2):
            np.testing.assert_allclose(stacked[:, ..., 2 * k + c],
                                       preprocess(flows[:, :, k, ..., c]).reshape(4, SIZE, SIZE),
                                       atol=1e-6)
    assert model(flows, training=False).shape == (2, NUM_CLASSES)


def test_rgb_weights_file_initialises_both_subnetworks(tmp_path):
    source = resnet("small", (SIZE, SIZE, 3))
    randomise(source, seed=4)
    path = tmp_path / "small.weights.h5"
    source.save_weights(path)
    model = small(weights=str(path))
    image, diff = model.get_layer("image_subnetwork"), model.get_layer("difference_subnetwork")
    for layer in (layer for layer in source.layers if layer.weights):
        for v, a, b in zip(layer.get_weights(), image.get_layer(layer.name).get_weights(),
                           diff.get_layer(f"diff_{layer.name}").get_weights()):
            np.testing.assert_array_equal(a, v)
            np.testing.assert_array_equal(b, v)


# ------------------------------------------------------------------------ two-phase training ----
def snapshot(model):
    values = {w.path: np.array(w.numpy()) for w in model.weights}
    assert len(values) == len(model.weights), "variable paths must be unique"
    return values


def one_step(model):
    model.compile(keras.optimizers.SGD(0.5),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(FRAMES, LABELS, batch_size=2, epochs=1, verbose=0)


def is_stat(path):
    return path.endswith(("moving_mean", "moving_variance"))


def test_two_phase_training_freezes_exactly_the_image_subnetwork():
    model = small(TAPS)
    names = {w.path for w in model.weights}
    image_vars = {w.path for w in model.get_layer("image_subnetwork").weights}
    diff_vars = {w.path for w in model.get_layer("difference_subnetwork").weights}
    assert all(not p.startswith("diff_") for p in image_vars)
    assert all(p.startswith("diff_") for p in diff_vars)
    heads = {"image_logits/kernel", "image_logits/bias", "difference_logits/kernel",
             "difference_logits/bias"}
    assert names == image_vars | diff_vars | heads

    # phase 1 (digest 5.4): only the image classifier + the whole difference subnetwork train
    set_phase(model, 1)
    trainable = {w.path for w in model.trainable_weights}
    assert trainable == heads | {p for p in diff_vars if not is_stat(p)}
    before = snapshot(model)
    one_step(model)
    after = snapshot(model)
    changed = {p for p in names if not np.array_equal(before[p], after[p])}
    assert not changed & image_vars  # frozen, BN statistics included (inference mode)
    assert changed <= trainable | {p for p in diff_vars if is_stat(p)}
    for p in ("image_logits/kernel", "difference_logits/kernel", "diff_conv1_conv/kernel",
              "diff_conv3_block1_2_conv/kernel", "diff_conv5_block1_3_bn/gamma",
              "diff_conv1_bn/moving_mean"):
        assert p in changed, p

    # phase 2: joint fine-tuning, everything trains
    set_phase(model, 2)
    assert {w.path for w in model.trainable_weights} == {p for p in names if not is_stat(p)}
    before = snapshot(model)
    one_step(model)
    after = snapshot(model)
    changed = {p for p in names if not np.array_equal(before[p], after[p])}
    for p in ("conv1_conv/kernel", "conv4_block1_2_conv/kernel", "conv2_block1_1_bn/moving_mean",
              "image_logits/kernel", "diff_conv1_conv/kernel"):
        assert p in changed, p


def bn_names(subnetwork):
    return [layer.name for layer in subnetwork.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def test_partial_bn_freezes_all_but_the_first_bn_of_each_subnetwork(tmp_path):
    model = small(TAPS)
    image, diff = model.get_layer("image_subnetwork"), model.get_layer("difference_subnetwork")
    assert [layer.name for layer in partial_bn_layers(image)] == bn_names(image)[1:]
    assert bn_names(image)[0] == "conv1_bn" and bn_names(diff)[0] == "diff_conv1_bn"
    set_phase(model, 2, partial_bn=True)
    frozen = {n for sub in (image, diff) for n in bn_names(sub)[1:]}
    for sub in (image, diff):
        for layer in sub.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                assert layer.trainable == (layer.name not in frozen), layer.name
    assert len(frozen) == 2 * (len(bn_names(image)) - 1) and len(frozen) > 10
    # frozen BN runs in inference mode even with training=True: its statistics stay put, its output
    # is gamma (x - moving_mean) / sqrt(moving_variance + eps) + beta; the first uses batch statistics
    randomise(model, seed=6)
    before = snapshot(model)
    one_step(model)
    after = snapshot(model)
    for sub in (image, diff):
        first = bn_names(sub)[0]
        assert not np.array_equal(before[f"{first}/moving_mean"], after[f"{first}/moving_mean"])
        for name in bn_names(sub)[1:]:
            for stat in ("moving_mean", "moving_variance", "gamma", "beta"):
                np.testing.assert_array_equal(before[f"{name}/{stat}"], after[f"{name}/{stat}"])
    x = preprocess(FRAMES[:, 0])
    for name in ("conv1_bn", "conv3_block1_2_bn"):
        bn = image.get_layer(name)
        probe = keras.Model(image.input, [bn.input, bn.output])
        z, y = (np.asarray(v, np.float64) for v in probe(x, training=True))
        gamma, beta, mean, var = bn.get_weights()
        if name == "conv1_bn":  # batch statistics over (batch, height, width)
            mean, var = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))
        expected = gamma * (z - mean) / np.sqrt(var + bn.epsilon) + beta
        np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-3, err_msg=name)
    # the flags survive .keras save/load
    path = tmp_path / "partial.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert ({w.path for w in loaded.trainable_weights} == {w.path for w in model.trainable_weights})


# ----------------------------------------------------------------------- snippets, save/load ----
def test_any_snippet_count_tf_function_save_load_export(tmp_path):
    model = small(TAPS)
    randomise(model, seed=7)
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((None, None, SIZE, SIZE, 3), tf.uint8)])
    path = tmp_path / "tdn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for s in (2, 3):
        eager = np.asarray(model(FRAMES[:, :s], training=False))
        assert eager.shape == (2, NUM_CLASSES)
        # graph vs eager: float32 rounding of logits in the thousands (random weights)
        np.testing.assert_allclose(fn(FRAMES[:, :s]), eager, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(loaded(FRAMES[:, :s], training=False), eager, rtol=1e-6,
                                   atol=1e-6)
    # an exported classifier signature (unknown batch and snippet count) gives the same logits
    exported = tf.saved_model.load(export_for_serving(
        model, tmp_path / "saved_models", name="tdn", print_signatures=False,
        signatures={"serving_default": classifier_signature(model)}))
    for s in (2, 3):
        served = exported.signatures["serving_default"](frames=tf.constant(FRAMES[:, :s]))
        np.testing.assert_allclose(served["logits"], model(FRAMES[:, :s], training=False),
                                   rtol=1e-4, atol=1e-4)
    fixed = small(segments=3)
    assert fixed.input.shape == (None, 3, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="incompatible"):
        fixed(FRAMES[:, :2])


def test_resnet50_taps_at_224():
    start = time.perf_counter()
    model = tdn(10, backbone="resnet50", taps=TAPS)
    image, diff = model.get_layer("image_subnetwork"), model.get_layer("difference_subnetwork")
    # input 224, conv1 before the max-pool 112, res2 56, res3 28, res4 14 (digest 5.7 q1)
    assert [tuple(v.shape[1:]) for v in diff.inputs] == [
        (224, 224, 3), (112, 112, 64), (56, 56, 256), (28, 28, 512), (14, 14, 1024)]
    assert [tuple(v.shape[1:]) for v in image.outputs] == [
        (112, 112, 64), (56, 56, 256), (28, 28, 512), (14, 14, 1024), (2048,)]
    assert model.output.shape == (None, 10)
    # two ResNet-50 trunks (23.6M parameters each, keras.applications' count) + two classifiers
    assert image.count_params() == diff.count_params() == 23_587_712
    assert time.perf_counter() - start < 30


def test_resnet50_equals_keras_applications(tmp_path):
    """The rebuilt ResNet-50 is keras.applications' (same layers, names, weights from its file)."""
    stock = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    randomise(stock, seed=8)
    path = tmp_path / "resnet50.weights.h5"
    stock.save_weights(path)
    model = tdn(3, backbone="resnet50", weights=str(path), input_shape=(64, 64, 3))
    frames = RNG.integers(0, 256, (1, 2, 64, 64, 3), dtype=np.uint8)
    x = keras.applications.resnet50.preprocess_input(frames[:, 0].astype(np.float32))
    expected = np.asarray(stock(x, training=False)).mean(axis=(1, 2))
    got = model.get_layer("image_subnetwork")(x, training=False)[-1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    probe = keras.Model(model.input, model.get_layer("fold_snippets").output)
    np.testing.assert_allclose(np.asarray(probe(frames))[:1], x, atol=1e-4)


# -------------------------------------------------------------------------------- arguments ----
@pytest.mark.parametrize("kwargs, match", [
    ({"taps": ("conv1", "res2")}, "must contain 'input'"),
    ({"taps": ("input", "res5")}, "distinct names"),
    ({"taps": ("input", "input")}, "distinct names"),
    ({"taps": "input"}, "list or tuple"),
    ({"segments": 1}, "segments"),
    ({"dropout": 1.0}, "dropout"),
    ({"weights": "imagenet"}, "weights"),
    ({"weights": "/nonexistent.weights.h5"}, "weights"),
    ({"modality": "depth"}, "modality"),
    ({"input_shape": (32, 32, 2)}, "input_shape"),
    ({"input_shape": (16, 32, 3)}, "input_shape"),
    ({"backbone": "resnet18"}, "backbone"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        tdn(1, backbone="small")


def test_set_phase_arguments():
    model = small()
    with pytest.raises(ValueError, match="phase"):
        set_phase(model, 3)
    with pytest.raises(ValueError, match="partial_bn"):
        set_phase(model, 1, partial_bn="yes")
    with pytest.raises(ValueError, match="tfvideo.models.tdn.tdn"):
        set_phase(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 1)


def test_docstring_example():
    result = doctest.testmod(tdn_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 5
