"""FlowStack: the shared layer checks and the flows of every consecutive pair, one TVNet call each."""

import keras
import numpy as np
import pytest

from tests.layer_checks import check_layer
from tfvideo.layers import FlowStack


def stacks(batch=2, segments=2, k=3, size=16, seed=0):
    """uint8 ``(B, S, K, H, W, 3)`` stacks panning by one pixel per frame (non-trivial flows)."""
    base = np.random.default_rng(seed).uniform(0, 255, (batch, segments, 1, size + k, size + 2, 3))
    return np.concatenate([base[..., i:i + size, 2:size + 2, :] for i in range(k)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("tvnet, trainable, counts", [
    # TVNet's forward_kernels, divergence_kernels and u0, all trainable by default
    ({"iterations": 2}, True, (3, 0)),
    # u0 frozen by TVNet's trainable_u0=False: the two kernel tensors stay trainable
    ({"iterations": 2, "trainable_u0": False}, True, (2, 1)),
    # FlowStack(trainable=False), as from_config builds a frozen stack: all three frozen, also in a
    # model wrapping it and in the loaded copy
    ({"iterations": 2}, False, (0, 3)),
])
def test_layer_checks(tmp_path, tvnet, trainable, counts):
    x = stacks()
    out = check_layer(lambda: FlowStack(tvnet, trainable=trainable), x, trainable_weights=counts[0],
                      non_trainable_weights=counts[1], expected_output_shape=(2, 2, 16, 16, 4),
                      symbolic_shapes=(None, 3, None, None, 3), tmp_path=tmp_path, rtol=1e-5, atol=1e-4)
    assert np.abs(out).max() > 0.1  # real flows


def test_channels_are_the_interleaved_flows_of_consecutive_pairs():
    x = stacks(k=4)
    layer = FlowStack({"iterations": 5})
    out = layer(x).numpy()
    assert out.shape == (2, 2, 16, 16, 6)
    for b in range(2):
        for s in range(2):
            for i in range(3):  # flow i: frame i -> i + 1, channels (2i, 2i + 1) = (u, v)
                ref = layer.tvnet([x[b:b + 1, s, i].astype(np.float32),
                                   x[b:b + 1, s, i + 1].astype(np.float32)]).numpy()[0]
                np.testing.assert_allclose(out[b, s, ..., 2 * i:2 * i + 2], ref, atol=1e-5)


def test_unknown_spatial_size_matches_known_size():
    """Built on unknown H, W (u0 of size 1 x 1, constant zero at init), the flows are the same."""
    x = stacks()
    known = FlowStack({"iterations": 3})
    frames = keras.Input((None, 3, None, None, 3), dtype="uint8")
    unknown = FlowStack({"iterations": 3})
    model = keras.Model(frames, unknown(frames))
    assert tuple(unknown.tvnet.u0.shape) == (1, 1, 2)
    np.testing.assert_allclose(model(x).numpy(), known(x).numpy(), atol=1e-5)


def test_frozen_stack_stays_frozen_after_keras_round_trip(tmp_path):
    frames = keras.Input((None, 3, 16, 16, 3), dtype="uint8")
    layer = FlowStack({"iterations": 2}, name="flow_stack")
    layer.trainable = False
    model = keras.Model(frames, layer(frames))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert model.trainable_weights == [] and loaded.trainable_weights == []
    assert not loaded.get_layer("flow_stack").tvnet.trainable


def test_bad_input_shape():
    with pytest.raises(ValueError, match="frames_per_stack >= 2"):
        FlowStack({"iterations": 1})(np.zeros((1, 1, 1, 16, 16, 3), np.uint8))


def test_flow_images_are_the_thesis_flow_images_of_consecutive_frames(tmp_path):
    """FlowImages: TVNet on frames (t, t + 1), clipped to +-40 and mapped to [0, 255] (digest 3.6), a zero
    third channel; frozen by default (TVNet's three weight tensors non-trainable); any clip length."""
    from tfvideo.layers import TVNet
    from tfvideo.layers.flow_stack import FlowImages

    clip = stacks(batch=2, segments=1, k=4)[:, 0]  # (2, 4, 16, 16, 3) panning frames
    tvnet = {"iterations": 2}
    check_layer(lambda: FlowImages(tvnet), clip, trainable_weights=0, non_trainable_weights=3,
                expected_output_shape=(2, 3, 16, 16, 3), symbolic_shapes=(None, None, None, 3),
                tmp_path=tmp_path, rtol=1e-5, atol=1e-3)
    out = FlowImages(tvnet)(clip).numpy()  # initial weights: exact TV-L1, as a fresh TVNet
    layer = TVNet(**tvnet)
    f = clip.astype(np.float32)
    flows = layer([f[:, :-1].reshape(-1, 16, 16, 3), f[:, 1:].reshape(-1, 16, 16, 3)]).numpy().reshape(2, 3, 16, 16, 2)
    expected = (np.clip(flows, -40, 40) + 40) * 255 / 80
    np.testing.assert_allclose(out[..., :2], expected, rtol=1e-5, atol=1e-3)
    assert not out[..., 2].any() and np.abs(out[..., :2] - 127.5).max() > 1  # real motion
    with pytest.raises(ValueError, match="bound"):
        FlowImages(bound=0)
