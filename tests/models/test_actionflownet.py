"""The multi-frame ActionFlowNet (thesis ch. 4.1-4.2) and its ResNet-18 basic blocks in 2D and 3D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.losses import FlowEndPointError
from tfvideo.models.actionflownet import (BN_EPSILON, BasicBlock, actionflownet, basic_block,
                                          classifier_model, resnet18_encoder)

TINY = (4, 8, 8, 16)
DECODER = ("deconv4", "deconv3", "deconv2", "predict_flow")


# ------------------------------------------------------------------------------ NumPy reference ----
def np_conv(x, kernel, stride, pad):
    """N-d correlation of ``x`` ``(*spatial, C)`` with ``kernel`` ``(*k, C, O)``, symmetric zero
    padding ``pad`` per axis and ``stride`` per axis (torchvision's ``Conv{2,3}d(padding=k//2)``)."""
    x = np.pad(x, [(p, p) for p in pad] + [(0, 0)])
    ks = kernel.shape[:-2]
    out_shape = [(x.shape[i] - ks[i]) // stride[i] + 1 for i in range(len(ks))]
    out = np.zeros((*out_shape, kernel.shape[-1]))
    for offset in np.ndindex(*ks):
        window = x[tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, out_shape))]
        out += window @ kernel[offset]
    return out


def np_bn(x, layer):
    gamma, beta, mean, var = (w.numpy() for w in layer.weights)
    return gamma * (x - mean) / np.sqrt(var + BN_EPSILON) + beta


def np_basic_block(x, block, stride):
    lay = block.layers
    n = x.ndim - 1

    def conv(name, s, k):
        return np_conv(x_in[name], lay[name].kernel.numpy(), s, (k // 2,) * n)

    x_in = {"1_conv": x}
    y = np.maximum(np_bn(conv("1_conv", stride, 3), lay["1_bn"]), 0)
    x_in["2_conv"] = y
    y = np_bn(conv("2_conv", (1,) * n, 3), lay["2_bn"])
    if "0_conv" in lay:
        x_in["0_conv"] = x
        shortcut = np_bn(conv("0_conv", stride, 1), lay["0_bn"])
    else:
        shortcut = x
    return np.maximum(shortcut + y, 0)


def randomise(model, seed=0):
    """Random weights everywhere, BN statistics included (positive variances)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(scale=0.3, size=w.shape)
        if "variance" in w.path:
            value = rng.uniform(0.5, 2.0, size=w.shape)
        w.assign(value.astype(np.float32))


def np_bilinear_x4(x):
    """Bilinear x4 along axes -3, -2 with half-pixel centres: src = (dst + 0.5) / 4 - 0.5, clamped."""
    def axis_weights(n):
        m = np.zeros((4 * n, n))
        for i in range(4 * n):
            src = min(max((i + 0.5) / 4 - 0.5, 0.0), n - 1)
            lo = int(np.floor(src))
            hi = min(lo + 1, n - 1)
            m[i, lo] += 1 - (src - lo)
            m[i, hi] += src - lo
        return m

    mh, mw = axis_weights(x.shape[-3]), axis_weights(x.shape[-2])
    return np.einsum("ih,...hwc,jw->...ijc", mh, x, mw)


# --------------------------------------------------------------------------------- the blocks ----
@pytest.mark.parametrize("dims,in_shape,filters,stride", [
    (2, (6, 7, 3), 3, 1),            # identity shortcut, odd width
    (2, (6, 8, 3), 5, 2),            # projection, stride 2
    (3, (4, 6, 5, 2), 3, (2, 2, 1)),  # 3D projection with a temporal stride
    (3, (3, 4, 4, 3), 3, 1),         # 3D identity
])
def test_basic_block_matches_numpy(dims, in_shape, filters, stride):
    x = keras.Input(in_shape)
    y = basic_block(x, filters, stride=stride, name="blk", dims=dims)
    model = keras.Model(x, y)
    randomise(model)
    names = {layer.name for layer in model.layers}
    projection = stride != 1 or in_shape[-1] != filters
    assert ("blk_0_conv" in names) == projection
    assert {"blk_1_conv", "blk_1_bn", "blk_1_relu", "blk_2_conv", "blk_2_bn", "blk_add", "blk_out"} <= names
    assert all(len(model.get_layer(f"blk_{i}_conv").kernel.shape) == dims + 2 for i in (1, 2))
    assert model.get_layer("blk_1_conv").kernel.shape[:dims] == (3,) * dims  # 3x3x3 in 3D (digest 4.1)
    block = BasicBlock({k: model.get_layer(f"blk_{k}") for k in
                        ["1_conv", "1_bn", "2_conv", "2_bn"] + (["0_conv", "0_bn"] if projection else [])})
    sample = np.random.default_rng(1).normal(size=(2, *in_shape)).astype(np.float32)
    got = model(sample, training=False).numpy()
    strides = (stride,) * dims if isinstance(stride, int) else stride
    expected = np.stack([np_basic_block(s.astype(np.float64), block, strides) for s in sample])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_basic_block_new_shares_weights_when_called_twice_and_checks_arguments():
    block = BasicBlock.new("b", 4, stride=(1, 2, 2), dims=3, shortcut=True)
    a, b = keras.Input((2, 4, 4, 3)), keras.Input((2, 8, 8, 3))
    assert block(a).shape == (None, 2, 2, 2, 4) and block(b).shape == (None, 2, 4, 4, 4)
    for kwargs, arg in [({"dims": 4}, "dims"), ({"stride": (1, 2)}, "stride"), ({"stride": 0}, "stride")]:
        with pytest.raises(ValueError, match=arg):
            basic_block(keras.Input((2, 4, 4, 3)), 4, name="x", **{"dims": 3, **kwargs})
    with pytest.raises(ValueError, match="dims=2"):
        basic_block(keras.Input((2, 4, 4, 3)), 4, name="x", dims=2)


# -------------------------------------------------------------------------------- the encoder ----
def test_encoder_3d_stage_shapes_and_strides():
    taps = resnet18_encoder(keras.Input((16, 64, 64, 3)), dims=3, widths=TINY)
    shapes = {k: tuple(v.shape[1:]) for k, v in taps.items()}
    assert shapes == {"conv1": (16, 32, 32, 4), "conv2": (16, 16, 16, 4), "conv3": (8, 8, 8, 8),
                      "conv4": (4, 4, 4, 8), "conv5": (2, 2, 2, 16)}


def test_encoder_2d_resnet18_parameter_count_and_options():
    x = keras.Input((224, 224, 3))
    model = keras.Model(x, resnet18_encoder(x, dims=2)["conv5"])
    assert model.output.shape == (None, 7, 7, 512)
    # torchvision's ResNet-18 has 11,689,512 parameters, 513,000 of them in fc (512 x 1000 + 1000)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_689_512 - 513_000
    names = {layer.name for layer in model.layers}
    assert {"conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad", "pool1_pool",
            "conv3_block1_0_conv", "conv5_block2_out"} <= names
    assert "conv2_block1_0_conv" not in names  # 64 -> 64, stride 1: identity shortcut
    flow = keras.Input((16, 16, 2))
    taps = resnet18_encoder(flow, dims=2, widths=TINY, stem=False, prefix="cls_")
    assert "conv1" not in taps and tuple(taps["conv2"].shape[1:]) == (16, 16, 4)
    assert taps["conv5"].shape[1:] == (2, 2, 16)
    stacked = keras.Model(flow, taps["conv5"])
    assert all(layer.name.startswith("cls_") for layer in stacked.layers[1:])
    assert "cls_conv2_block1_0_conv" in {layer.name for layer in stacked.layers}  # 2 -> 4 channels
    with pytest.raises(ValueError, match="temporal_strides"):
        resnet18_encoder(keras.Input((8, 8, 3)), dims=2, temporal_strides=(1, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="temporal_strides"):
        resnet18_encoder(keras.Input((8, 8, 8, 3)), dims=3, temporal_strides=(1, 2, 2))
    with pytest.raises(ValueError, match="widths"):
        resnet18_encoder(keras.Input((8, 8, 3)), widths=(8, 16, 32))


def test_full_size_final_map_is_512_x_2_x_7_x_7():
    """Digest 4.1: the last feature map is 512 x 2 x 7 x 7 for 16 x 224 x 224 (built, not run)."""
    model = actionflownet(101, flow_head=False)
    assert model.get_layer("conv5_block2_out").output.shape == (None, 2, 7, 7, 512)
    assert model.get_layer("conv1_conv").kernel.shape == (3, 7, 7, 3, 64)  # 7x7x3 (digest 4.7 q2)
    assert model.get_layer("pool1_pool").output.shape == (None, 16, 56, 56, 64)  # no temporal pooling
    assert model.output.shape == (None, 101)


# ---------------------------------------------------------------------------- ActionFlowNet ----
@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return actionflownet(5, num_frames=8, input_size=(32, 64), widths=TINY, name="tiny_afn")


def clip(seed=0, batch=2, t=8, h=32, w=64):
    return np.random.default_rng(seed).integers(0, 256, size=(batch, t, h, w, 3), dtype=np.uint8)


def test_output_and_decoder_shapes(tiny):
    assert tiny.input.dtype == "uint8" and tiny.input.shape == (None, 8, 32, 64, 3)
    assert tiny.output["logits"].shape == (None, 5)
    assert tiny.output["flow"].shape == (None, 8, 32, 64, 2)
    shape = {name: tuple(tiny.get_layer(name).output.shape[1:]) for name in
             ["conv5_block2_out", "deconv4", "concat4", "deconv3", "concat3", "deconv2", "concat2",
              "predict_flow"]}
    assert shape == {"conv5_block2_out": (1, 1, 2, 16), "deconv4": (2, 2, 4, 8), "concat4": (2, 2, 4, 16),
                     "deconv3": (4, 4, 8, 8), "concat3": (4, 4, 8, 16), "deconv2": (8, 8, 16, 4),
                     "concat2": (8, 8, 16, 8), "predict_flow": (8, 8, 16, 2)}
    out = tiny(clip(), training=False)
    assert out["logits"].shape == (2, 5) and out["flow"].shape == (2, 8, 32, 64, 2)


def test_flow_is_scale_times_bilinear_x4_of_the_head(tiny):
    probe = keras.Model(tiny.input, [tiny.get_layer("predict_flow").output, tiny.output["flow"]])
    head, flow = probe(clip(1), training=False)
    np.testing.assert_allclose(flow.numpy(), 20.0 * np_bilinear_x4(head.numpy().astype(np.float64)),
                               rtol=1e-5, atol=1e-5)


def test_input_normalisation_is_x_over_127_5_minus_1(tiny):
    probe = keras.Model(tiny.input, tiny.get_layer("preprocess").output)
    frames = clip(2)
    np.testing.assert_allclose(probe(frames).numpy(), frames / 127.5 - 1.0, atol=1e-6)


def test_classifier_model_shares_weights_and_gives_identical_logits(tiny):
    classifier = classifier_model(tiny)
    frames = clip(3)
    np.testing.assert_array_equal(classifier(frames, training=False).numpy(),
                                  tiny(frames, training=False)["logits"].numpy())
    decoder_weights = [w for name in DECODER for w in tiny.get_layer(name).weights]
    assert len(decoder_weights) == 8
    shared = {id(w) for w in tiny.weights} - {id(w) for w in decoder_weights}
    assert {id(w) for w in classifier.weights} == shared
    assert classifier.count_params() < tiny.count_params()
    alone = actionflownet(5, num_frames=8, input_size=(32, 64), widths=TINY, flow_head=False)
    assert alone.count_params() == classifier.count_params()
    with pytest.raises(ValueError, match="logits"):
        classifier_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")]))


def test_keras_save_load_same_outputs(tiny, tmp_path):
    path = tmp_path / "afn.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    frames = clip(4)
    want, got = tiny(frames, training=False), loaded(frames, training=False)
    for key in ("logits", "flow"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(classifier_model(loaded)(frames, training=False).numpy(),
                               want["logits"].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flow_weight", [0.5, 0.0])
def test_one_multitask_fit_step_updates_encoder_and_decoder(flow_weight):
    keras.utils.set_random_seed(1)
    model = actionflownet(3, num_frames=8, input_size=(32, 32), widths=TINY)
    model.compile(keras.optimizers.Adam(1e-2),
                  loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "flow": FlowEndPointError()},
                  loss_weights={"logits": 1.0, "flow": flow_weight}, run_eagerly=True)
    rng = np.random.default_rng(5)
    flow_target = rng.normal(scale=2.0, size=(2, 8, 32, 32, 3)).astype(np.float32)
    flow_target[..., 2] = 1.0
    watched = ["conv1_conv", "conv3_block1_1_conv", "logits", *DECODER]
    before = {name: [w.numpy().copy() for w in model.get_layer(name).trainable_weights] for name in watched}
    # two steps: predict_flow starts at zero, so the layers below it get a gradient from the second step
    model.fit(clip(6, t=8, h=32, w=32), {"logits": np.array([0, 2]), "flow": flow_target},
              batch_size=2, epochs=2, verbose=0)
    for name in watched:
        changed = any(not np.array_equal(b, w.numpy())
                      for b, w in zip(before[name], model.get_layer(name).trainable_weights))
        if name in DECODER:
            assert changed == (flow_weight > 0), name  # flow weight 0: no gradient reaches the decoder
        else:
            assert changed, name


@pytest.mark.parametrize("kwargs,arg", [
    ({"num_frames": 12}, "num_frames"), ({"num_frames": 4}, "num_frames"),
    ({"input_size": (48, 64)}, "input_size"), ({"input_size": (64, 33)}, "input_size"),
    ({"input_size": (64,)}, "input_size"), ({"widths": (8, 16, 32)}, "widths"),
    ({"dropout": 1.0}, "dropout"), ({"flow_scale": 0}, "flow_scale"),
])
def test_bad_arguments_raise(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        actionflownet(5, **{"num_frames": 8, "input_size": (32, 32), "widths": TINY, **kwargs})
    with pytest.raises(ValueError, match="num_classes"):
        actionflownet(1, num_frames=8, input_size=(32, 32), widths=TINY)
