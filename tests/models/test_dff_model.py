"""The DFF pair model (Sec. 3, Fig. 2b) against the per-frame network in the closed-form cases."""

import keras
import numpy as np
import pytest

from tests.layer_checks import check_layer
from tfvideo.layers import KeyOrPropagated, PairFrame
from tfvideo.models import dff

SIZE = (128, 128)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return dff.dff_segmenter("small", 3, flow="half", frame_size=SIZE)


def _frames(seed, n=2):
    return np.random.default_rng(seed).integers(0, 256, (n, *SIZE, 3), dtype=np.uint8)


def _frame_model(model):
    return dff.segmenter_from_split(model.get_layer("n_feat"), model.get_layer("n_task"))


def test_identical_frames_are_the_per_frame_network(model):
    """i = k: no propagation, whatever the flow network predicts (Sec. 3)."""
    f = _frames(1)
    out = model(np.stack([f, f], axis=1), training=False).numpy()
    assert out.shape == (2, *SIZE, 3)
    np.testing.assert_allclose(out, _frame_model(model)(f, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_zero_flow_and_unit_scale_propagate_the_key_features_unchanged():
    """F giving M = 0 and S = 1 (all its weights 0: the scale field's fixed bias 1 remains): frame i's
    result is frame k's per-frame result, whatever frame i shows (Eq. 3 with the identity warp)."""
    keras.utils.set_random_seed(1)
    m = dff.dff_segmenter("small", 3, flow="half", frame_size=SIZE)
    net = m.get_layer("flownet")
    net.set_weights([np.zeros_like(w) for w in net.get_weights()])
    key, current = _frames(2), _frames(3)
    out = m(np.stack([key, current], axis=1), training=False).numpy()
    np.testing.assert_allclose(out, _frame_model(m)(key, training=False).numpy(), rtol=1e-5, atol=1e-5)
    # a flow network that moves something changes the result (the warp is live)
    rng = np.random.default_rng(0)
    net.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in net.get_weights()])
    moved = m(np.stack([key, current], axis=1), training=False).numpy()
    assert np.abs(moved - out).max() > 1e-3


def test_table3_fix_flags_freeze_exactly_their_part():
    keras.utils.set_random_seed(2)
    full = dff.dff_segmenter("small", 3, flow="half", frame_size=SIZE)
    parts = {n: len(full.get_layer(n).trainable_weights) for n in ("n_feat", "n_task", "flownet")}
    assert all(parts.values()) and len(full.trainable_weights) == sum(parts.values())
    fix_n = dff.dff_segmenter("small", 3, flow="half", frame_size=SIZE, fix="n")
    assert len(fix_n.trainable_weights) == parts["flownet"]
    fix_f = dff.dff_segmenter("small", 3, flow="half", frame_size=SIZE, fix="f")
    assert len(fix_f.trainable_weights) == parts["n_feat"] + parts["n_task"]
    with pytest.raises(ValueError, match="`fix` must be one of"):
        dff.dff_segmenter("small", 3, frame_size=SIZE, fix="both")


@pytest.mark.slow  # ~15 s (FlowNet + feature net training step at 128x128); the parts train in the default run
def test_trains_one_step_on_pairs(model):
    pairs = np.stack([_frames(4), _frames(5)], axis=1)
    labels = np.random.default_rng(6).integers(0, 3, (2, *SIZE)).astype(np.int32)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in model.get_layer("flownet").trainable_weights]
    model.fit(pairs, labels, sample_weight=np.ones((2, *SIZE), np.float32), epochs=1, verbose=0)
    after = model.get_layer("flownet").trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after))  # the flow net learns too


def test_pair_layers(tmp_path):
    pairs = np.random.default_rng(0).integers(0, 3, (2, 2, 4, 5, 3)).astype(np.uint8)
    pairs[0, 1] = pairs[0, 0]
    for index, expected in ((0, pairs[:, 0]), (1, pairs[:, 1]), ("swap", pairs[:, ::-1])):
        out = check_layer(lambda index=index: PairFrame(index), pairs, trainable_weights=0,
                          non_trainable_weights=0, symbolic_shapes=(2, None, None, 3), tmp_path=tmp_path)
        np.testing.assert_array_equal(out, expected)
    key = np.random.default_rng(1).normal(size=(2, 2, 3, 4)).astype(np.float32)
    prop = key + 1
    out = check_layer(KeyOrPropagated, [pairs, key, prop], trainable_weights=0, non_trainable_weights=0,
                      symbolic_shapes=[(2, None, None, 3), (None, None, 4), (None, None, 4)], tmp_path=tmp_path)
    np.testing.assert_array_equal(out[0], key[0])  # identical frames: the key features
    np.testing.assert_array_equal(out[1], prop[1])
    with pytest.raises(ValueError, match="`index` must be 0, 1 or 'swap'"):
        PairFrame(2)


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_cost_model_reproduces_table_2(backbone):
    """1 / r (Eq. 6) from our networks' FLOPs at the paper's sizes (feature network at 1024 x 2048,
    flow network at half that) within 2% of Table 2, for the three flow networks."""
    from tfvideo.models.flownet import flownet

    size = (1024, 2048)
    n_feat, n_task = dff.split_networks(backbone, 19, input_shape=(*size, 3))
    for variant, paper in dff.TABLE2[backbone].items():
        cost = dff.cost_model(n_feat, n_task, flownet(variant, feature_channels=1024, frame_size=size))
        assert 1 / cost["r_approx"] == pytest.approx(paper, rel=0.02), variant
        # Eq. 5 adds N_task and W: a little larger than Eq. 6, and tiny next to F (Sec. 3's argument)
        assert cost["r_approx"] < cost["r"] < 1.05 * cost["r_approx"]
        assert cost["task"] == 2 * 1024 * 19 * (64 * 128) and cost["warp"] == 9 * 1024 * 64 * 128


def test_speedup_eq7():
    assert dff.speedup(0.1, 1) == 1.0
    assert dff.speedup(0.1, 10) == pytest.approx(10 / 1.9)
    assert dff.speedup(0.0, 5) == 5.0  # free propagation: l times faster
    with pytest.raises(ValueError, match="`l` must be a positive int"):
        dff.speedup(0.1, 0)


def test_bilinear_upsampling_is_keras_upsampling_and_takes_unknown_sizes(tmp_path):
    from tfvideo.layers import BilinearUpsampling

    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    expected = keras.layers.UpSampling2D(4, interpolation="bilinear")(x).numpy()
    out = check_layer(lambda: BilinearUpsampling(4), x, trainable_weights=0, non_trainable_weights=0,
                      symbolic_shapes=(None, None, 4), tmp_path=tmp_path, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
