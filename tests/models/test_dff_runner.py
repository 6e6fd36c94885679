"""Algorithm 1 (DFFVideoRunner): key frames, feature-network calls, and the adaptive scheduler."""

import keras
import numpy as np
import pytest

from tfvideo.data import motion
from tfvideo.models import dff
from tfvideo.models.dff_runner import DFFVideoRunner

SIZE = (128, 128)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = dff.dff_segmenter("small", 3, flow="half", frame_size=(None, None))
    net = m.get_layer("flownet")  # zero flow, S = 1: propagation is the identity (a known answer)
    net.set_weights([np.zeros_like(w) for w in net.get_weights()])
    return m


def _clip(index, n):
    spec = motion.clip_spec(motion.CLASSES[index % 8], seed=0, index=index, num_frames=n, size=SIZE)
    return motion.make_clip(spec)


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a):
        self.calls += 1
        return self.fn(*a)


def test_fixed_scheduler_calls_the_feature_network_once_per_key_frame(model):
    runner = DFFVideoRunner.from_model(model, key_interval=5)
    runner.key_features = counted = Counting(runner.key_features)
    frames = _clip(0, 12)
    out = list(runner.run(frames))
    assert [i for i, _, key in out if key] == [0, 5, 10] == runner.key_frames
    assert counted.calls == 3 == runner.feature_calls
    # zero flow and S = 1: a non-key frame's result is its key frame's per-frame result
    frame_model = dff.segmenter_from_split(model.get_layer("n_feat"), model.get_layer("n_task"))
    expected = frame_model(frames[5][None], training=False).numpy()[0]
    np.testing.assert_allclose(out[7][1], expected, rtol=1e-4, atol=1e-4)
    assert out[7][1].shape == (*SIZE, 3)
    assert sum(1 for _ in DFFVideoRunner.from_model(model, key_interval=1).run(frames[:3])) == 3


def test_adaptive_scheduler_starts_a_key_frame_at_a_scene_cut(model):
    frames = np.concatenate([_clip(1, 6), _clip(2, 6)])  # two different photographs: a cut at 6
    runner = DFFVideoRunner.from_model(model, scheduler="adaptive", measure="warp_error", threshold=0.08)
    flags = [key for _, _, key in runner.run(frames)]
    assert runner.key_frames == [0, 6], runner.key_frames
    assert flags[6] and runner.feature_calls == 2
    capped = DFFVideoRunner.from_model(model, scheduler="adaptive", threshold=0.08, max_interval=4)
    list(capped.run(frames))
    assert capped.key_frames == [0, 4, 6, 10]


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="`scheduler` must be one of"):
        DFFVideoRunner.from_model(model, scheduler="sometimes")
    with pytest.raises(ValueError, match="`key_interval` must be a positive int"):
        DFFVideoRunner.from_model(model, key_interval=0)
    with pytest.raises(ValueError, match="`measure` must be one of"):
        DFFVideoRunner.from_model(model, measure="colour")


def _live_flow(model):
    """Random flow-network weights (a live flow this time); returns the saved ones to restore."""
    rng = np.random.default_rng(3)
    net = model.get_layer("flownet")
    saved = net.get_weights()
    net.set_weights([rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in saved])
    return net, saved


def test_jit_compiled_runner_matches_keras(model):
    """The runner's XLA-compiled parts compute what the Keras parts compute (same key frames, same outputs)."""
    net, saved = _live_flow(model)
    try:
        frames = _clip(3, 7)
        keras_out = list(DFFVideoRunner.from_model(model, key_interval=3).run(frames))
        xla_out = list(DFFVideoRunner.from_model(model, key_interval=3, jit_compile=True).run(frames))
        assert [k for _, _, k in keras_out] == [k for _, _, k in xla_out]
        for (_, a, _), (_, b, _) in zip(keras_out, xla_out):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    finally:
        net.set_weights(saved)


@pytest.mark.slow  # ~16 s; the default run checks the served runner over gRPC (tests/serving/test_serving.py)
def test_runner_on_the_exported_signatures_matches_keras(model, tmp_path):
    """The TF Serving deployment's loop: the same key frames and outputs from the SavedModel."""
    import tensorflow as tf

    from tfvideo.export import export_for_serving
    from tfvideo.models.dff_runner import signatures

    net, saved = _live_flow(model)
    try:
        path = export_for_serving(model, tmp_path, "dff", signatures=signatures(model), print_signatures=False)
        loaded = tf.saved_model.load(path)
        frames = _clip(3, 7)
        keras_out = list(DFFVideoRunner.from_model(model, key_interval=3).run(frames))
        served = DFFVideoRunner.from_signatures(loaded, key_interval=3)
        served_out = list(served.run(frames))
        assert served.key_frames == [0, 3, 6] and served.feature_calls == 3
        for (_, a, ka), (_, b, kb) in zip(keras_out, served_out):
            assert ka == kb
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
        # propagate = motion + FeatureWarp; serving_default = the per-frame network
        f = tf.constant(frames[:1])
        feats = loaded.signatures["key_features"](frames=f)["features"]
        prop = loaded.signatures["propagate"](frame=tf.constant(frames[1:2]), key_frame=f, features=feats)
        assert prop["features"].shape == feats.shape
        frame_model = dff.segmenter_from_split(model.get_layer("n_feat"), model.get_layer("n_task"))
        np.testing.assert_allclose(loaded.signatures["serving_default"](frames=f)["logits"].numpy(),
                                   frame_model(frames[:1], training=False).numpy(), rtol=1e-4, atol=1e-4)
    finally:
        net.set_weights(saved)
