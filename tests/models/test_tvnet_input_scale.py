"""TVNet action model: flow input scale per backbone, the authors' frame preprocessing, ImageNet weights
failures, and per-video averaging of all test snippets (seed 002, Sec. 5.2)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import evaluation
from tfvideo.layers import TVNet
from tfvideo.layers.segments import SegmentConsensus
from tfvideo.models import tvnet as M
from tfvideo.ops.image import TVNET_SMOOTHING_KERNEL, tvnet_official_preprocess

RGB_EXTREMES = np.array([[[[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]]], np.float32)


def _rgb_at_conv1(backbone_name):
    """RGB 0 and 255 as the backbone's first convolution sees them: keras.applications' own
    preprocess_input for the application backbones; the spatial stream's layer for `small` (our CNN,
    trained from scratch on what spatial_stream gives it)."""
    if backbone_name == "small":
        model = M.spatial_stream(2, size=(16, 16), backbone_name="small")
        return np.asarray(model.get_layer("preprocess")(RGB_EXTREMES))
    app = getattr(keras.applications, backbone_name)
    return app.preprocess_input(RGB_EXTREMES.copy())


@pytest.mark.parametrize("backbone_name", M.BACKBONES)
def test_a_20_px_flow_reaches_conv1_with_the_extremes_of_rgb_0_and_255(backbone_name):
    rgb = _rgb_at_conv1(backbone_name)
    flow = np.array([-20.0, 20.0]) * M.flow_scale(backbone_name)
    if M.RGB_PREPROCESSING[backbone_name] == "tf":  # [-1, 1] backbones: exactly the same extremes
        np.testing.assert_allclose(rgb[0, 0, 0], -1.0, atol=1e-6)
        np.testing.assert_allclose(rgb[0, 0, 1], 1.0, atol=1e-6)
        np.testing.assert_allclose(flow, [-1.0, 1.0], atol=1e-12)
    else:  # Caffe range (BGR minus the ImageNet mean): a span of 255 per channel; TSN's +-128 for flow
        span = rgb[0, 0, 1] - rgb[0, 0, 0]
        np.testing.assert_allclose(span, 255.0, atol=1e-3)
        assert abs((flow[1] - flow[0]) - span.max()) <= 1.0  # 256 vs 255: within one grey level
        assert flow[0] == -flow[1]  # zero motion -> 0, where the mean pixel goes
        assert np.all(rgb[0, 0, 0] < 0) and np.all(rgb[0, 0, 1] > 0)


def test_temporal_stream_scales_flows_by_its_backbones_factor():
    frames = np.random.default_rng(0).integers(0, 256, (1, 1, 3, 16, 16, 3), np.uint8)
    model = M.temporal_stream(3, size=(16, 16), frames_per_stack=3, tvnet={"iterations": 2})
    flows = model.get_layer("flow_stack")(frames)
    scaled = keras.Model(model.input, model.get_layer("flow_scale").output)(frames)
    np.testing.assert_allclose(np.asarray(scaled), np.asarray(flows) / 20.0, rtol=1e-6)
    assert M.flow_scale("resnet50") == M.FLOW_SCALE == 128 / 20
    custom = M.temporal_stream(3, size=(16, 16), frames_per_stack=3, tvnet={"iterations": 2},
                               flow_scale=2.5)
    assert custom.get_layer("flow_scale").scale == 2.5
    with pytest.raises(ValueError, match="flow_scale"):
        M.temporal_stream(3, size=(16, 16), flow_scale=0)
    with pytest.raises(ValueError, match="backbone must be one of"):
        M.flow_scale("vgg16")


# ------------------------------------------------------------------ the authors' preprocessing ----
def _official_reference(f0, f1):
    """NumPy transcription of LijieFan/tvnet tvnet.py: grey_scale_image (floor of the 1x1 conv),
    normalize_images (joint min/max of the pair), gaussian_smooth (5x5 conv, zero 'same' padding)."""
    w = np.array([0.299, 0.587, 0.114])
    g0, g1 = np.floor(f0.astype(np.float64) @ w), np.floor(f1.astype(np.float64) @ w)
    out0, out1 = np.empty_like(g0), np.empty_like(g1)
    k = np.array(TVNET_SMOOTHING_KERNEL)
    for b in range(len(g0)):
        lo, hi = min(g0[b].min(), g1[b].min()), max(g0[b].max(), g1[b].max())
        pair = [g0[b], g1[b]] if hi == lo else [255 * (g0[b] - lo) / (hi - lo), 255 * (g1[b] - lo) / (hi - lo)]
        for img, out in zip(pair, (out0, out1)):
            padded = np.pad(img, 2)
            h, wd = img.shape
            out[b] = sum(k[i, j] * padded[i:i + h, j:j + wd] for i in range(5) for j in range(5))
    return out0[..., None], out1[..., None]


def test_official_preprocessing_matches_a_numpy_transcription_of_the_authors_code():
    rng = np.random.default_rng(1)
    f0 = rng.integers(40, 200, (3, 12, 17, 3)).astype(np.uint8)
    f1 = rng.integers(60, 220, (3, 12, 17, 3)).astype(np.uint8)
    f1[2] = f0[2] = 77  # a constant pair: max == min, left unnormalised
    got = tvnet_official_preprocess(f0, f1)
    want = _official_reference(f0, f1)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == tf.float32
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-3)
    # the joint normalisation really spans [0, 255] over the pair (before smoothing)
    ref_min = min(np.floor(f0[0] @ [0.299, 0.587, 0.114]).min(), np.floor(f1[0] @ [0.299, 0.587, 0.114]).min())
    assert ref_min > 0 and np.isclose(np.array(TVNET_SMOOTHING_KERNEL).sum(), 1.0, atol=1e-5)


def test_flow_stack_official_preprocessing_feeds_tvnet_the_preprocessed_pairs():
    rng = np.random.default_rng(2)
    base = rng.uniform(30, 220, (1, 1, 1, 20, 20, 3))
    frames = np.concatenate([base[..., k:k + 16, 2:18, :] for k in range(3)], axis=2).astype(np.uint8)
    stack = M.FlowStack({"iterations": 3}, preprocess="official")
    flows = np.asarray(stack(frames))
    tvnet = TVNet(iterations=3)
    p0, p1 = _official_reference(frames[0, 0, :2], frames[0, 0, 1:])
    tvnet.build([(None, 16, 16, 1)] * 2)
    tvnet.set_weights(stack.tvnet.get_weights())
    want = np.asarray(tvnet([p0.astype(np.float32), p1.astype(np.float32)]))  # (2 pairs, H, W, 2)
    np.testing.assert_allclose(flows[0, 0], np.concatenate([want[0], want[1]], axis=-1), rtol=1e-4,
                               atol=1e-4)
    plain = np.asarray(M.FlowStack({"iterations": 3})(frames))
    assert not np.allclose(plain, flows, atol=1e-3)  # the option changes the input of TVNet
    clone = M.FlowStack.from_config(stack.get_config())
    assert clone.preprocess == "official"
    with pytest.raises(ValueError, match="preprocess must be one of"):
        M.FlowStack(preprocess="grey")
    model = M.temporal_stream(3, size=(16, 16), frames_per_stack=3, tvnet={"iterations": 2},
                              preprocess="official")
    assert model.get_layer("flow_stack").preprocess == "official"
    assert model(frames).shape == (1, 3)


# ---------------------------------------------------------------------------- ImageNet weights ----
def test_a_failed_imagenet_download_gives_a_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", no_network)
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(M.ImageNetWeightsUnavailable, match="Keras could not download the ImageNet weights "
                                                           "of mobilenet_v2.*URL fetch failure.*weights=None"):
        M.backbone("mobilenet_v2", (32, 32, 10), weights="imagenet")


@pytest.mark.slow  # ~11 s: five MobileNetV2 builds
def test_temporal_and_spatial_streams_start_from_a_weights_file(tmp_path):
    rgb = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                         pooling="avg")
    path = str(tmp_path / "mobilenet.weights.h5")
    rgb.save_weights(path)
    kernel = [l for l in rgb.layers if isinstance(l, keras.layers.Conv2D)][0].kernel.numpy()
    temporal = M.temporal_stream(3, size=(32, 32), backbone_name="mobilenet_v2", weights=path,
                                 tvnet={"iterations": 1})
    spatial = M.spatial_stream(3, size=(32, 32), backbone_name="mobilenet_v2", weights=path)
    first = {name: [l for l in m.get_layer(f"{name}_cnn").layer.layers
                    if isinstance(l, keras.layers.Conv2D)][0].kernel.numpy()
             for name, m in (("temporal", temporal), ("spatial", spatial))}
    np.testing.assert_allclose(first["temporal"], np.repeat(kernel.mean(axis=2, keepdims=True), 10, 2),
                               rtol=1e-6)
    np.testing.assert_array_equal(first["spatial"], kernel)
    assert temporal.get_layer("flow_scale").scale == pytest.approx(1 / 20)


# --------------------------------------------------------------------- 250-snippet averaging ----
def test_per_video_score_is_the_mean_of_all_snippet_logits():
    """A stream scores every stack, averages its stacks (consensus) per view; the evaluation averages the
    views of a video: the result equals a NumPy mean over all stacks x crops x flips snippet logits."""
    rng = np.random.default_rng(3)
    classes, stacks, views, videos = 4, 5, 6, 3
    w = rng.normal(size=(2 * 4 * 4 * 3, classes)).astype(np.float32)
    frames = keras.Input((stacks, 2, 4, 4, 3))
    flat = keras.layers.Reshape((stacks, -1))(frames)
    model = keras.Model(frames, SegmentConsensus()(keras.layers.Dense(classes, use_bias=False)(flat)))
    model.layers[-2].set_weights([w])
    clips = rng.uniform(0, 1, (videos, views, stacks, 2, 4, 4, 3)).astype(np.float32)
    # views of the videos interleaved and split over batches of 4, as an evaluation pipeline may give them
    order = rng.permutation(videos * views)
    x = clips.reshape(videos * views, stacks, 2, 4, 4, 3)[order]
    ids = np.repeat([b"v0", b"v1", b"v2"], views)[order]
    labels = np.repeat([0, 2, 1], views)[order]
    ds = tf.data.Dataset.from_tensor_slices(({"frames": x, "video_id": ids}, labels)).batch(4)
    result = evaluation.evaluate(model, ds, class_names=list("abcd"), progress=False)
    snippet_logits = clips.reshape(videos, views * stacks, -1) @ w  # (videos, 30 snippets, classes)
    np.testing.assert_allclose(result["videos"]["scores"], snippet_logits.mean(axis=1), rtol=1e-5, atol=1e-5)
    assert result["num_views"] == videos * views
    probs = evaluation.evaluate(model, ds, class_names=list("abcd"), progress=False, softmax=True)
    e = np.exp(snippet_logits.reshape(videos, views, stacks, -1).mean(axis=2))
    np.testing.assert_allclose(probs["videos"]["scores"], (e / e.sum(-1, keepdims=True)).mean(axis=1),
                               rtol=1e-5, atol=1e-6)
