import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.layers import TVNet
from tfvideo.losses import tvl1_energy
from tfvideo.models import tvnet as M

SIZE = (16, 16)


def frames(batch=2, segments=3, k=6, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (batch, segments, 1, 24, 24, 3))
    # each stack pans by one pixel per frame: non-trivial flows
    stack = np.concatenate([base[..., k_:k_ + 16, 2:18, :] for k_ in range(k)], axis=2)
    return stack.astype(np.uint8)


def test_flow_stack_interleaves_the_flows_of_consecutive_pairs():
    x = frames()
    layer = M.FlowStack({"iterations": 5})
    out = layer(x).numpy()
    assert out.shape == (2, 3, 16, 16, 10)
    tv = layer.tvnet
    for b in range(2):
        for s in range(3):
            for i in range(5):  # flow i: frame i -> i + 1, channels (2i, 2i + 1) = (u, v)
                ref = tv([x[b:b + 1, s, i].astype(np.float32),
                          x[b:b + 1, s, i + 1].astype(np.float32)]).numpy()[0]
                np.testing.assert_allclose(out[b, s, ..., 2 * i:2 * i + 2], ref, atol=1e-5)


def test_consensus_and_fusion_against_numpy():
    rng = np.random.default_rng(1)
    seg = rng.normal(size=(2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(M.SegmentConsensus()(seg).numpy(), seg.mean(1), rtol=1e-6)
    a, b = rng.normal(size=(2, 2, 5)).astype(np.float32)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    fused = M.FuseScores((1, 2))([a, b]).numpy()
    np.testing.assert_allclose(fused, np.log((softmax(a) + 2 * softmax(b)) / 3), rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        M.FuseScores((0, 0))


def test_temporal_stream_shapes_gradients_and_loss_is_lc_plus_lambda_lf():
    model = M.temporal_stream(4, size=SIZE, tvnet={"iterations": 3}, flow_loss_weight=0.1)
    x, y = frames(), np.array([1, 3])
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=ce)
    loss = model.evaluate(x, y, verbose=0)
    logits = model.predict(x, verbose=0)
    # L_f computed separately: TVNet energy of every pair's flow, averaged over all pairs
    flows = keras.Model(model.input, model.get_layer("flow_stack").output)(x).numpy()
    stacks = x.reshape(-1, 6, *SIZE, 3).astype(np.float32)
    f = flows.reshape(-1, *SIZE, 5, 2).transpose(0, 3, 1, 2, 4).reshape(-1, *SIZE, 2)
    lf = tvl1_energy(stacks[:, :-1].reshape(-1, *SIZE, 3), stacks[:, 1:].reshape(-1, *SIZE, 3), f,
                     lbda=0.15).numpy()
    assert loss == pytest.approx(float(ce(y, logits)) + 0.1 * lf, rel=1e-4)
    assert logits.shape == (2, 4)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        total = ce(y, out) + tf.add_n(model.losses)
    grads = tape.gradient(total, model.trainable_variables)
    paths = [v.path for v in model.trainable_variables]
    assert {"flow_stack/tvnet/forward_kernels", "flow_stack/tvnet/u0"} <= set(paths)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert np.abs(grads[paths.index("flow_stack/tvnet/forward_kernels")].numpy()).sum() > 0


def test_ablations_no_flow_loss_and_frozen_tvnet():
    model = M.temporal_stream(4, size=SIZE, tvnet={"iterations": 2}, flow_loss_weight=0.0,
                              train_tvnet=False)
    model(frames())
    assert not model.losses
    assert not [v for v in model.trainable_variables if "tvnet" in v.path]


def test_spatial_stream_sees_only_the_middle_frame():
    model = M.spatial_stream(4, size=SIZE)
    x = frames()
    y0 = model.predict(x, verbose=0)
    other = x.copy()
    other[:, :, [0, 1, 2, 4, 5]] = 0  # every frame but the middle one (index 3)
    np.testing.assert_allclose(model.predict(other, verbose=0), y0, rtol=1e-5, atol=1e-6)
    other[:, :, 3] = 0
    assert np.abs(model.predict(other, verbose=0) - y0).max() > 1e-4


def test_two_stream_round_trip_and_export_copy_without_xla(tmp_path):
    spatial = M.spatial_stream(4, size=SIZE)
    temporal = M.temporal_stream(4, size=SIZE, tvnet={"iterations": 2, "xla_iterations": True})
    model = M.two_stream(spatial, temporal)
    x = frames()
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(np.exp(expected).sum(-1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               expected, rtol=1e-5, atol=1e-5)
    plain = M.without_xla(model)
    tvnets = [l for l in plain.get_layer("temporal").layers if isinstance(l, M.FlowStack)]
    assert tvnets and not tvnets[0].tvnet.xla_iterations
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_segments_unknown_at_trace_time():
    """A signature with (None, None, ...) frames: every batch/segment combination equals eager."""
    model = M.two_stream(M.spatial_stream(4, size=SIZE),
                         M.temporal_stream(4, size=SIZE, tvnet={"iterations": 2}))
    traced = tf.function(model, input_signature=[tf.TensorSpec((None, None, 6, *SIZE, 3), tf.uint8)])
    for batch, segments in ((3, 2), (1, 3), (2, 1)):
        x = frames(batch=batch, segments=segments, seed=batch)
        np.testing.assert_allclose(traced(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
        per_segment = [model(x[:, s:s + 1]).numpy() for s in range(segments)]
        if segments > 1:  # the consensus really averages every segment (logits, per stream)
            assert not np.allclose(per_segment[0], per_segment[-1])


def test_cross_modality_initialisation_from_a_weights_file(tmp_path):
    rgb = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                         pooling="avg")
    path = str(tmp_path / "rgb.weights.h5")
    rgb.save_weights(path)
    flow_net = M.backbone("mobilenet_v2", (32, 32, 10), weights=path)
    first = [l for l in flow_net.layers if isinstance(l, keras.layers.Conv2D)][0]
    rgb_first = [l for l in rgb.layers if isinstance(l, keras.layers.Conv2D)][0]
    expected = np.repeat(rgb_first.kernel.numpy().mean(axis=2, keepdims=True), 10, axis=2)
    np.testing.assert_allclose(first.kernel.numpy(), expected, rtol=1e-6)
    for a, b in list(zip(rgb.weights, flow_net.weights))[1:]:
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fit_under_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = M.temporal_stream(4, size=SIZE, tvnet={"iterations": 2})
        model.compile(optimizer=keras.optimizers.SGD(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((frames(batch=4), np.arange(4) % 4)).batch(4).repeat()
    history = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=1), "num_classes"), (dict(size=(8, 16)), "size"),
    (dict(frames_per_stack=1), "frames_per_stack"), (dict(backbone_name="vgg"), "backbone"),
    (dict(backbone_name="small", weights="imagenet"), "no pretrained"),
])
def test_bad_arguments(kwargs, match):
    args = dict(num_classes=4, size=SIZE, tvnet={"iterations": 1})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        M.temporal_stream(**args)
