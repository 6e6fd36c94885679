"""ActionFlowNet's two-frame models (tfvideo/models/actionflownet_2f.py, digest 4.3): head shapes and
units, the multi-resolution loss of Eq. 4.3/4.4 against a NumPy transcription, the decoder-free
classifier, the frozen FlowNet of the Stacked model, .keras round trips and parameter counts."""

import functools

import keras
import numpy as np
import pytest

from tfvideo.models.actionflownet_2f import (FLOW_OUTPUTS, FLOW_STRIDES, MULTISCALE_ALPHAS, actionflownet_2f,
                                             classifier_model, flow_losses, flownet_resnet18,
                                             resnet18_classifier, stacked)

RNG = np.random.default_rng(42)
SIZE = 64
# the CPU recipe's widths: 8 input channels reach the first stride-2 projection, which used to crash TF
# 2.21's oneDNN (the gradient of a 1x1 stride-2 Conv2D with < 16 input channels corrupts the heap); the
# projection now subsamples, then convolves 1x1 (tfvideo/models/actionflownet.py::BasicBlock)
WIDTHS = (8, 16, 32, 64)
CLASSES = 5


def pairs(b=2, size=SIZE):
    return RNG.integers(0, 256, (b, 2, size, size, 3), dtype=np.uint8)


@functools.lru_cache(maxsize=None)
def two_frame():
    return actionflownet_2f(CLASSES, input_size=(SIZE, SIZE), widths=WIDTHS)


def flow_target(b, size=SIZE, invalid=0.2):
    """``(B, H, W, 3)`` = (u, v, valid) in input pixels; unknown vectors NaN (they must not count)."""
    flow = RNG.normal(scale=3.0, size=(b, size, size, 2)).astype(np.float32)
    valid = (RNG.random((b, size, size)) > invalid).astype(np.float32)
    valid[0, :8, :8] = 0.0                          # a whole 8 x 8 block unknown (an invalid 1/8 pixel)
    flow[valid == 0] = np.nan
    return np.concatenate([flow, valid[..., None]], axis=-1)


# --------------------------------------------------------------------------- NumPy references ----
def block_target(target, stride):
    """Each (stride x stride) block: mean of its valid vectors, valid if any (loops, no reshapes)."""
    b, h, w, _ = target.shape
    out = np.zeros((b, h // stride, w // stride, 3))
    for n in range(b):
        for i in range(h // stride):
            for j in range(w // stride):
                block = target[n, i * stride:(i + 1) * stride, j * stride:(j + 1) * stride].reshape(-1, 3)
                known = block[block[:, 2] != 0]
                if len(known):
                    out[n, i, j] = [*known[:, :2].mean(axis=0), 1.0]
    return out


def mean_epe(target, pred):
    """Eq. 4.3's per-resolution term with per-pixel means: mean over valid pixels per sample (0 if none),
    then over the batch."""
    per_sample = []
    for t, p in zip(target, pred):
        valid = t[..., 2] != 0
        err = np.sqrt(((p[..., :2] - t[..., :2]) ** 2).sum(-1))[valid]
        per_sample.append(err.mean() if err.size else 0.0)
    return float(np.mean(per_sample))


def cross_entropy(labels, logits):
    logits = logits.astype(np.float64)
    logits = logits - logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


# ---------------------------------------------------------------------------------- the models ----
def test_head_shapes_and_the_frame_pair_input():
    frames = pairs(b=2)
    out = two_frame()(frames, training=False)
    assert set(out) == {"logits", *FLOW_OUTPUTS}
    assert tuple(out["logits"].shape) == (2, CLASSES)
    for key, stride in FLOW_STRIDES.items():                 # 1/4, 1/8, 1/16, 1/32 (digest 4.3)
        assert tuple(out[key].shape) == (2, SIZE // stride, SIZE // stride, 2), key
    assert [FLOW_STRIDES[k] for k in FLOW_OUTPUTS] == [4, 8, 16, 32]
    # digest 4.3: the two frames concatenated along channels (6 channels), each x / 127.5 - 1
    model = two_frame()
    pair = keras.Model(model.input, model.get_layer("pair").output)(frames).numpy()
    x = frames.astype(np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(pair, np.concatenate([x[:, 0], x[:, 1]], axis=-1), atol=1e-6)
    # a 2D ResNet-18 encoder: conv1 7x7/2 on the 6 channels, conv5 at 1/32
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 6, WIDTHS[0])
    assert tuple(model.get_layer("conv5_block2_out").output.shape) == (None, 2, 2, WIDTHS[3])
    fn = flownet_resnet18(input_size=(32, 64), widths=WIDTHS)
    shapes = {k: tuple(v.shape) for k, v in fn(pairs(b=1, size=64)[:, :, :32]).items()}
    assert shapes == {"flow_1": (1, 8, 16, 2), "flow_2": (1, 4, 8, 2), "flow_3": (1, 2, 4, 2),
                      "flow_4": (1, 1, 2, 2)}


def test_flows_are_in_input_pixels():
    """Each head is ``flow_scale x`` (a 3x3 conv to 2 channels): a zero conv gives 0 flow and a bias b
    gives flow_scale * b at every pixel, whatever the resolution (input pixels, not the level's)."""
    scale = 7.5
    model = flownet_resnet18(input_size=(SIZE, SIZE), widths=WIDTHS, flow_scale=scale)
    frames = pairs(b=2)
    for key, level in zip(FLOW_OUTPUTS, (2, 3, 4, 5)):
        conv = model.get_layer(f"predict_flow{level}")
        kernel, bias = conv.get_weights()
        assert kernel.shape == (3, 3, kernel.shape[2], 2)
        conv.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
        np.testing.assert_array_equal(model(frames)[key].numpy(), 0.0)
        conv.set_weights([np.zeros_like(kernel), np.array([0.3, -1.2], np.float32)])
        out = model(frames)[key].numpy()
        np.testing.assert_allclose(out[..., 0], scale * 0.3, rtol=1e-6)
        np.testing.assert_allclose(out[..., 1], scale * -1.2, rtol=1e-6)


def test_multiresolution_loss_matches_numpy():
    """Eq. 4.4 with compile dicts = CE + lam sum_r alpha_r EPE_r, each EPE on the target block-averaged
    to the head's resolution (valid vectors only), against the NumPy transcription."""
    model = two_frame()
    alphas, lam = (1.0, 0.4, 0.3, 0.7), 0.25
    loss, weights = flow_losses(alphas, lam, classification=True)
    assert weights == {"logits": 1.0, **{k: lam * a for k, a in zip(FLOW_OUTPUTS, alphas)}}
    model.compile(keras.optimizers.Adam(1e-3), loss=loss, loss_weights=weights, run_eagerly=True)
    frames, labels = pairs(b=3), np.array([0, 3, 4], np.int32)
    target = flow_target(3)
    y = {"logits": labels, **{k: target for k in FLOW_OUTPUTS}}
    got = model.evaluate(frames, y, batch_size=3, verbose=0, return_dict=True)["loss"]
    pred = {k: v.numpy() for k, v in model(frames, training=False).items()}
    expected = cross_entropy(labels, pred["logits"])
    for key, alpha in zip(FLOW_OUTPUTS, alphas):
        expected += lam * alpha * mean_epe(block_target(target, FLOW_STRIDES[key]), pred[key])
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # the default alphas (module docstring) and a training step with the dicts
    assert flow_losses()[1] == MULTISCALE_ALPHAS == {"flow_1": 1.0, "flow_2": 0.5, "flow_3": 0.25, "flow_4": 0.25}
    assert np.isfinite(model.train_on_batch(frames, y, return_dict=True)["loss"])


def test_flow_only_loss_of_the_flownet():
    """Eq. 4.3 alone (FlowNet pretraining): sum_r alpha_r EPE_r with the default alphas."""
    model = flownet_resnet18(input_size=(SIZE, SIZE), widths=WIDTHS)
    loss, weights = flow_losses()
    assert set(loss) == set(weights) == set(FLOW_OUTPUTS)
    model.compile("adam", loss=loss, loss_weights=weights, run_eagerly=True)
    frames, target = pairs(b=2), flow_target(2, invalid=0.0)
    got = model.evaluate(frames, {k: target for k in FLOW_OUTPUTS}, batch_size=2, verbose=0,
                         return_dict=True)["loss"]
    pred = {k: v.numpy() for k, v in model(frames, training=False).items()}
    expected = sum(MULTISCALE_ALPHAS[k] * mean_epe(block_target(target, FLOW_STRIDES[k]), pred[k])
                   for k in FLOW_OUTPUTS)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_classifier_model_drops_the_decoder_with_identical_logits():
    model = two_frame()
    clf = classifier_model(model)
    frames = pairs(b=2)
    np.testing.assert_array_equal(clf(frames, training=False).numpy(),
                                  model(frames, training=False)["logits"].numpy())
    names = {layer.name for layer in clf.layers}
    assert "logits" in names and not any(n.startswith(("deconv", "predict_flow", "flow_")) for n in names)
    assert clf.get_layer("logits") is model.get_layer("logits")           # shared weights
    assert clf.count_params() < model.count_params()


def test_stacked_trains_the_classifier_only():
    flownet = flownet_resnet18(input_size=(SIZE, SIZE), widths=WIDTHS)
    rng = np.random.default_rng(9)
    for layer in flownet.layers:  # a "trained" FlowNet: its heads start at zero (zero flow feeds nothing)
        if layer.name.startswith("predict_flow"):
            layer.kernel.assign(rng.normal(0, 0.05, layer.kernel.shape).astype(np.float32))
    model = stacked(CLASSES, flownet, widths=WIDTHS)
    assert flownet.trainable is False
    frames, labels = pairs(b=4), np.array([0, 1, 2, 3], np.int32)
    # conv1/pool1 removed: the classifier starts at conv2 on the 1/4-resolution, 2-channel flow / 20
    names = {layer.name for layer in model.layers}
    assert "stacked_conv1_conv" not in names and "stacked_pool1_pool" not in names
    assert model.get_layer("stacked_conv2_block1_0_conv").kernel.shape == (1, 1, 2, WIDTHS[0])
    assert model.get_layer("stacked_conv2_block1_1_conv").kernel.shape == (3, 3, 2, WIDTHS[0])
    fed = keras.Model(model.input, model.get_layer("flow_input").output)(frames).numpy()
    np.testing.assert_allclose(fed, flownet(frames, training=False)["flow_1"].numpy() / 20.0, rtol=1e-5, atol=1e-6)
    assert fed.shape == (4, SIZE // 4, SIZE // 4, 2)

    model.compile(keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    flow_before = [w.numpy().copy() for w in flownet.weights]             # BN statistics included
    clf_before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    assert len(clf_before) > 0 and not any(w.path.startswith(flownet.name) for w in model.trainable_weights)
    model.train_on_batch(frames, labels)
    for w, before in zip(flownet.weights, flow_before):
        np.testing.assert_array_equal(w.numpy(), before, err_msg=w.path)
    for key in ("logits", "stacked_conv2_block1_0_conv", "stacked_conv5_block2_2_conv"):
        w = model.get_layer(key).kernel
        assert not np.array_equal(w.numpy(), clf_before[w.path]), key


@pytest.mark.parametrize("kind", ["flownet", "actionflownet_2f", "stacked", "scratch1", "scratch2"])
def test_keras_round_trip(kind, tmp_path):
    if kind == "flownet":
        model = flownet_resnet18(input_size=(SIZE, SIZE), widths=WIDTHS)
    elif kind == "actionflownet_2f":
        model = two_frame()
    elif kind == "stacked":
        model = stacked(CLASSES, flownet_resnet18(input_size=(SIZE, SIZE), widths=WIDTHS), widths=WIDTHS)
    else:
        model = resnet18_classifier(CLASSES, input_size=(SIZE, SIZE), widths=WIDTHS, in_frames=int(kind[-1]))
    frames = pairs(b=2)[:, :model.input.shape[1]]
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    a, b = model(frames, training=False), loaded(frames, training=False)
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    assert loaded.count_params() == model.count_params()
    if kind == "stacked":
        assert loaded.get_layer("flownet_resnet18").trainable is False


def test_scratch_baseline_shapes():
    one = resnet18_classifier(CLASSES, input_size=(SIZE, SIZE), widths=WIDTHS, in_frames=1)
    two = resnet18_classifier(CLASSES, input_size=(SIZE, SIZE), widths=WIDTHS, in_frames=2)
    assert tuple(one.input.shape) == (None, 1, SIZE, SIZE, 3)
    assert one.get_layer("conv1_conv").kernel.shape == (7, 7, 3, WIDTHS[0])
    assert tuple(one(pairs(b=2)[:, :1]).shape) == (2, CLASSES)
    # the pair classifier is ActionFlowNet-2F's inference network (FlowNet fine-tune's architecture)
    assert two.count_params() == classifier_model(two_frame()).count_params()


def test_parameter_counts():
    """digest 4.3: ActionFlowNet-2F has about half the Stacked model's parameters, and Stacked about
    twice ResNet-18's. At ResNet-18 widths and 224 x 224 (no weights are loaded)."""
    flownet = flownet_resnet18()
    two_f = actionflownet_2f(101)
    stack = stacked(101, flownet_resnet18())
    resnet = resnet18_classifier(101)
    # encoder: torchvision's ResNet-18 without fc (11,176,512 trainable), conv1 on 6 channels instead of 3
    encoder = sum(len(w.numpy().ravel()) for layer in flownet.layers if layer.name.startswith(("conv", "pool"))
                  for w in layer.trainable_weights)
    assert encoder == 11_176_512 + 7 * 7 * 3 * 64
    # decoder, by hand: predict_flow5 on 512; deconvs 4x4 (512 -> 256, 514 -> 128, 258 -> 64) + bias;
    # flow upsamplers 4x4 2 -> 2; predictions 3x3 on concat = skip + deconv + 2 channels
    decoder = ((9 * 512 * 2 + 2) + (16 * 512 * 256 + 256) + (16 * 514 * 128 + 128) + (16 * 258 * 64 + 64)
               + 3 * (16 * 2 * 2 + 2) + sum(9 * (2 * c + 2) * 2 + 2 for c in (256, 128, 64)))
    decoder_layers = [layer for layer in flownet.layers
                      if layer.name.startswith(("deconv", "predict_flow", "upsample_flow"))]
    assert sum(layer.count_params() for layer in decoder_layers) == decoder
    assert two_f.count_params() == flownet.count_params() + 512 * 101 + 101
    ratio = two_f.count_params() / stack.count_params()
    assert 0.45 <= ratio <= 0.65, ratio                 # "about half" (0.57 here)
    assert 1.8 <= stack.count_params() / resnet.count_params() <= 2.5   # "about 2x" (2.3 here)


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        flownet_resnet18(input_size=(60, 64))
    with pytest.raises(ValueError, match="widths"):
        flownet_resnet18(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="flow_scale"):
        flownet_resnet18(flow_scale=0)
    with pytest.raises(ValueError, match="num_classes"):
        actionflownet_2f(1, input_size=(SIZE, SIZE), widths=WIDTHS)
    with pytest.raises(ValueError, match="dropout"):
        actionflownet_2f(3, input_size=(SIZE, SIZE), widths=WIDTHS, dropout=1.0)
    with pytest.raises(ValueError, match="in_frames"):
        resnet18_classifier(3, input_size=(SIZE, SIZE), widths=WIDTHS, in_frames=3)
    with pytest.raises(ValueError, match="flownet"):
        stacked(3, resnet18_classifier(3, input_size=(SIZE, SIZE), widths=WIDTHS), widths=WIDTHS)
    with pytest.raises(ValueError, match="alphas"):
        flow_losses({"flow_1": 1.0})
    with pytest.raises(ValueError, match="alphas"):
        flow_losses((1.0, 0.5, -0.1, 0.1))
    with pytest.raises(ValueError, match="lam"):
        flow_losses(lam=-1.0)
