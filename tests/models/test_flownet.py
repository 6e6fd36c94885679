"""DFF's flow networks (tfvideo/models/flownet.py) and their input layer (tfvideo/layers/flownet.py)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.cost import flops
from tfvideo.layers import FeatureWarp
from tfvideo.layers.flownet import DFF_MEAN_RGB, FlowNetInput
from tfvideo.models.flownet import flownet

RNG = np.random.default_rng(11)


@functools.lru_cache(maxsize=None)
def model(variant, channels=8):
    """One model per variant for the whole module (unknown sizes); building FlowNetS takes ~1 s."""
    return flownet(variant, feature_channels=channels)


def pair(b=1, h=128, w=256):
    return RNG.integers(0, 256, (b, 2, h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------ the input ----
def test_flownet_input_is_dffs_preprocessing(tmp_path):
    frames = pair(b=2, h=4, w=6)
    out = check_layer(lambda: FlowNetInput(multiple=2), frames, trainable_weights=0,
                      non_trainable_weights=0, expected_output_shape=(2, 2, 3, 6),
                      symbolic_shapes=(2, None, None, 3), tmp_path=tmp_path, atol=1e-6)
    # DFF: Concat(img_cur / 255, img_ref / 255) of mean-subtracted RGB, then 2 x 2 average pooling
    x = (frames.astype(np.float64) - np.array(DFF_MEAN_RGB)) / 255.0
    x = np.concatenate([x[:, 0], x[:, 1]], axis=-1)
    expected = x.reshape(2, 2, 2, 3, 2, 6).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_size_rule():
    with pytest.raises(ValueError, match="multiple of 128"):
        flownet("s", frame_size=(100, 256))
    with pytest.raises(ValueError, match="multiples of 128.*W=200"):
        FlowNetInput()(pair(h=128, w=200))
    with pytest.raises(ValueError, match=r"\(batch, 2, H, W, 3\)"):
        FlowNetInput()(RNG.integers(0, 256, (1, 3, 128, 128, 3), dtype=np.uint8))
    # unknown sizes (an exported signature): a run-time assertion with the same message
    layer = FlowNetInput()
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, 2, None, None, 3), tf.uint8)])
    assert fn(pair(h=128, w=128)).shape == (1, 64, 64, 6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 128"):
        fn(pair(h=128, w=192))


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        flownet("c")
    with pytest.raises(ValueError, match="feature_channels"):
        flownet("s", feature_channels=0)
    with pytest.raises(TypeError, match="uint8 or float"):
        FlowNetInput()(tf.zeros((1, 2, 128, 128, 3), tf.int32))


# ------------------------------------------------------------------------------------ the models ----
@pytest.mark.parametrize("variant", ["s", "half", "inception"])
def test_output_shapes_and_scale_starts_at_one(variant):
    frames = pair(b=2, h=128, w=256)
    out = model(variant)(frames)
    assert set(out) == {"flow", "scale", "flow_stride8"}
    assert tuple(out["flow_stride8"].shape) == (2, 16, 32, 2)      # 1/8 of the frame
    assert tuple(out["flow"].shape) == (2, 8, 16, 2)               # 1/16: the feature maps
    assert tuple(out["scale"].shape) == (2, 8, 16, 8)              # feature_channels
    np.testing.assert_array_equal(out["scale"].numpy(), 1.0)       # weights 0, bias 1: exactly 1
    assert np.abs(out["flow"].numpy()).max() > 0                   # a real (random-init) prediction
    # the parameter-free resize (Sec. 4): a bilinear x 0.5 resize (half-pixel centres) of the 1/8
    # flow, vectors from frame pixels to pixels of the 1/16 grid (/ 16)
    reference = tf.image.resize(out["flow_stride8"], (8, 16), method="bilinear") / 16.0
    np.testing.assert_allclose(out["flow"], reference, rtol=1e-5, atol=1e-6)


def test_flownets_parameter_count_by_hand():
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    encoder = (conv(7, 6, 64) + conv(5, 64, 128) + conv(5, 128, 256) + conv(3, 256, 256)
               + conv(3, 256, 512) + conv(3, 512, 512) + conv(3, 512, 512) + conv(3, 512, 512)
               + conv(3, 512, 1024) + conv(3, 1024, 1024))
    refinement = conv(3, 1024, 2)                                   # flow at conv6_1
    # (input channels, deconv width, concatenated channels = skip + deconv + 2 flow)
    for c_in, width, concat in ((1024, 512, 512 + 512 + 2), (1026, 256, 512 + 256 + 2),
                                (770, 128, 256 + 128 + 2), (386, 64, 128 + 64 + 2)):
        refinement += conv(4, c_in, width) + conv(4, 2, 2) + conv(3, concat, 2)
    scale = 194 * 1024                                              # 1x1, no trainable bias
    m = flownet("s", frame_size=(128, 128))
    assert m.count_params() == encoder + refinement + scale == 38_875_170
    assert len(m.trainable_weights) == 2 * (10 + 1 + 4 * 3) + 1


def test_flop_ratios_follow_table_2():
    # Table 2 (ResNet-101 row) gives N_feat / F = 12.71, 46.30, 95.24, so FlowNetS / Half = 3.64 and
    # FlowNetS / Inception = 7.49 (the text: "1/4" and "1/8"). Half is not 4x cheaper because conv1's
    # 6 input channels and the scale field's 1024 outputs are not halved; Inception is our design
    # (the DFF code is not public), built to the same 1/8. FLOPs do not depend on weights: the
    # ratios are exact numbers; 3% leaves room for a different but equivalent layer accounting.
    counts = {v: flops(flownet(v, frame_size=(256, 512))) for v in ("s", "half", "inception")}
    assert counts["s"] / counts["half"] == pytest.approx(46.30 / 12.71, rel=0.03)
    assert counts["s"] / counts["inception"] == pytest.approx(95.24 / 12.71, rel=0.03)
    # "tiny" (ours, widths / 8): between 1/64 (every layer / 64) and 1/30 (the 2-channel flow layers,
    # conv1's 6 inputs and the scale field are not divided)
    assert 30 < counts["s"] / flops(flownet("tiny", frame_size=(256, 512))) < 64
    # the encoder alone is a hand count: 2 FLOPs per multiply-add at each layer's output size
    h, w = 128, 256                                                 # half-size input
    hand = sum(2 * k * k * c_in * c_out * (h // s) * (w // s) for k, c_in, c_out, s in (
        (7, 6, 64, 2), (5, 64, 128, 4), (5, 128, 256, 8), (3, 256, 256, 8), (3, 256, 512, 16),
        (3, 512, 512, 16), (3, 512, 512, 32), (3, 512, 512, 32), (3, 512, 1024, 64),
        (3, 1024, 1024, 64)))
    assert 0.6 < hand / counts["s"] < 0.8                           # the rest is the refinement


def test_unknown_sizes_and_feature_warp_on_the_output():
    m = model("inception")
    frames = pair(b=1, h=256, w=128)
    fn = tf.function(m, input_signature=[tf.TensorSpec((None, 2, None, None, 3), tf.uint8)])
    out = fn(frames)
    assert tuple(out["flow"].shape) == (1, 16, 8, 2)
    features = RNG.normal(size=(1, 16, 8, 8)).astype(np.float32)
    warped = FeatureWarp()([features, out["flow"], out["scale"]])
    assert warped.shape == features.shape


def test_one_training_step_changes_the_flow_and_the_scale():
    m = flownet("half", feature_channels=4, frame_size=(128, 128))
    frames = pair(b=2, h=128, w=128)
    target_scale = np.full((2, 8, 8, 4), 2.0, np.float32)
    target_flow = RNG.normal(size=(2, 8, 8, 2)).astype(np.float32)
    before = m(frames)
    m.compile(optimizer=keras.optimizers.SGD(1e-3),
              loss={"flow": "mse", "scale": "mse", "flow_stride8": None})
    history = m.fit(frames, {"flow": target_flow, "scale": target_scale}, epochs=1, batch_size=2,
                    verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = m(frames)
    assert np.abs(after["scale"].numpy() - 1.0).max() > 0          # S left 1: the scale branch learns
    assert np.abs(after["flow"].numpy() - before["flow"].numpy()).max() > 0


def test_save_and_load(tmp_path):
    m = flownet("inception", feature_channels=4)
    path = tmp_path / "flownet.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    frames = pair(b=1, h=128, w=128)
    a, b = m(frames), loaded(frames)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------- pretrained weights (DFF) ----
# FlowNetS as the DFF code's get_flownet declares it (dff_rfcn/symbols/resnet_v1_101_flownet_rfcn.py), written
# out by hand: MXNet name -> (operator, input channels, num_filter, kernel); refinement inputs are the Concat
# widths (Concat2 = 512 + 512 + 2, Concat3 = 512 + 256 + 2, Concat4 = 256 + 128 + 2, Concat5 = 128 + 64 + 2).
DFF_FLOWNET_S = {
    "flow_conv1": ("conv", 6, 64, 7), "conv2": ("conv", 64, 128, 5), "conv3": ("conv", 128, 256, 5),
    "conv3_1": ("conv", 256, 256, 3), "conv4": ("conv", 256, 512, 3), "conv4_1": ("conv", 512, 512, 3),
    "conv5": ("conv", 512, 512, 3), "conv5_1": ("conv", 512, 512, 3), "conv6": ("conv", 512, 1024, 3),
    "conv6_1": ("conv", 1024, 1024, 3), "Convolution1": ("conv", 1024, 2, 3),
    "deconv5": ("deconv", 1024, 512, 4), "upsample_flow6to5": ("deconv", 2, 2, 4), "Convolution2": ("conv", 1026, 2, 3),
    "deconv4": ("deconv", 1026, 256, 4), "upsample_flow5to4": ("deconv", 2, 2, 4), "Convolution3": ("conv", 770, 2, 3),
    "deconv3": ("deconv", 770, 128, 4), "upsample_flow4to3": ("deconv", 2, 2, 4), "Convolution4": ("conv", 386, 2, 3),
    "deconv2": ("deconv", 386, 64, 4), "upsample_flow3to2": ("deconv", 2, 2, 4), "Convolution5": ("conv", 194, 2, 3),
    "Convolution5_scale": ("conv", 194, 1024, 1),
}


def dff_checkpoint(seed=0):
    """Random FlowNetS arrays in MXNet layout: Convolution (O, I, kh, kw), Deconvolution (I, O, kh, kw)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (op, c_in, c_out, k) in DFF_FLOWNET_S.items():
        shape = (c_out, c_in, k, k) if op == "conv" else (c_in, c_out, k, k)
        out[f"{name}_weight"] = (rng.random(shape, dtype=np.float32) - 0.5) / 8
        out[f"{name}_bias"] = (rng.random(c_out, dtype=np.float32) - 0.5) / 4
    out["Convolution5_scale_bias"] = np.ones(1024, np.float32)   # DFF's init_weight, lr_mult 0
    return out


def mxnet_params_bytes(arrays, legacy=False):
    """An MXNet NDArray list written as src/ndarray/ndarray.cc's NDArray::Save(fo, data, names) does:
    uint64 0x112, uint64 0, uint64 count, each NDArray (V2: uint32 0xF993fac9, int32 storage type 0,
    int32 ndim + int64 dims, int32 dev_type + dev_id, int32 type flag, raw data; legacy (MXNet < 0.11):
    uint32 ndim + uint32 dims, context, flag, data), then uint64 count and (uint64 length, bytes) names."""
    import struct

    flags = {np.dtype("float32"): 0, np.dtype("float64"): 1, np.dtype("float16"): 2, np.dtype("uint8"): 3,
             np.dtype("int32"): 4, np.dtype("int8"): 5, np.dtype("int64"): 6}
    blob = [struct.pack("<QQQ", 0x112, 0, len(arrays))]
    for value in arrays.values():
        if legacy:
            blob.append(struct.pack(f"<I{value.ndim}I", value.ndim, *value.shape))
        else:
            blob.append(struct.pack(f"<Iii{value.ndim}q", 0xF993FAC9, 0, value.ndim, *value.shape))
        blob.append(struct.pack("<iii", 1, 0, flags[value.dtype]))  # cpu(0), type flag
        blob.append(value.astype(value.dtype.newbyteorder("<")).tobytes())
    blob.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        blob.append(struct.pack("<Q", len(name.encode())) + name.encode())
    return b"".join(blob)


def caffe_conv(x, w, b, stride, pad):
    """Caffe/MXNet Convolution, NumPy: x (C, H, W), w (O, C, k, k); symmetric zero padding ``pad``."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("chwij,ocij->ohw", win, w, optimize=True) + b[:, None, None]


def caffe_deconv_crop(x, w, b, stride=2, crop=1):
    """Caffe/MXNet Deconvolution (pad 0), NumPy: x (C, H, W), w (C, O, k, k); output (H - 1) s + k with
    ``out[:, s i + u, s j + v] += x[c, i, j] w[c, :, u, v]``, then DFF's Crop(offset=crop) to (s H, s W)."""
    c, h, wd = x.shape
    k = w.shape[-1]
    out = np.zeros((w.shape[1], (h - 1) * stride + k, (wd - 1) * stride + k))
    for i in range(h):
        for j in range(wd):
            out[:, stride * i:stride * i + k, stride * j:stride * j + k] += np.einsum("c,coij->oij", x[:, i, j], w)
    return out[:, crop:crop + stride * h, crop:crop + stride * wd] + b[:, None, None]


@pytest.fixture(scope="module")
def dff_loaded(tmp_path_factory):
    """FlowNetS (feature_channels 1024, 128 x 128) loaded from a DFF-like .params checkpoint (all names
    with MXNet's arg: prefix, plus ResNet arrays that must be ignored: its conv1 is NOT flow_conv1)."""
    from tfvideo.models.flownet import load_flownet_weights

    ckpt = dff_checkpoint()
    extra = {"arg:conv1_weight": np.ones((64, 3, 7, 7), np.float32), "aux:bn_conv1_moving_var": np.ones(64, np.float32)}
    path = tmp_path_factory.mktemp("dff") / "rfcn_vid-0000.params"
    path.write_bytes(mxnet_params_bytes({**extra, **{f"arg:{k}": v for k, v in ckpt.items()}}))
    net = flownet("s", feature_channels=1024, frame_size=(128, 128), name="flownet")
    loaded = load_flownet_weights(net, path)
    return net, ckpt, loaded, path


def test_dff_weights_conv1_is_mxnets_convolution(dff_loaded):
    net, ckpt, loaded, _ = dff_loaded
    assert [layer.name for layer in loaded][:2] == ["conv1", "conv2"] and len(loaded) == 24
    frames = pair(b=1, h=128, w=128)
    # DFF: Concat(img_cur / 255, img_ref / 255) of RGB minus the pixel means (lib/utils/image.py transform:
    # BGR -> RGB), 2 x 2 average ("resize_data"), then flow_conv1: 7x7, stride 2, pad 3
    x = (frames[0].astype(np.float64) - np.array(DFF_MEAN_RGB)) / 255.0
    x = np.concatenate([x[0], x[1]], axis=-1).reshape(64, 2, 64, 2, 6).mean(axis=(1, 3)).transpose(2, 0, 1)
    expected = caffe_conv(x, ckpt["flow_conv1_weight"], ckpt["flow_conv1_bias"], stride=2, pad=3)
    conv1 = keras.Model(net.input, net.get_layer("conv1").output)(frames).numpy()[0]
    np.testing.assert_allclose(conv1.transpose(2, 0, 1), expected, rtol=1e-4, atol=1e-4)
    # and a stride-2 5x5 (conv2, pad 2) on a given input: the symmetric padding of Caffe, not "same"'s
    h = RNG.normal(size=(1, 32, 32, 64)).astype(np.float32)
    conv2 = keras.Model(net.get_layer("conv1_relu").output, net.get_layer("conv2").output)(h).numpy()[0]
    expected = caffe_conv(h[0].transpose(2, 0, 1).astype(np.float64), ckpt["conv2_weight"], ckpt["conv2_bias"], 2, 2)
    np.testing.assert_allclose(conv2.transpose(2, 0, 1), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mx_name, layer, shape", [("deconv2", "deconv2", (1, 8, 8, 386)),
                                                   ("upsample_flow6to5", "upsample_flow6to5", (1, 2, 2, 2))])
def test_dff_weights_deconvolution_is_caffes_plus_crop(dff_loaded, mx_name, layer, shape):
    net, ckpt, _, _ = dff_loaded
    x = RNG.normal(size=shape).astype(np.float32)
    got = net.get_layer(layer)(x).numpy()[0]
    expected = caffe_deconv_crop(x[0].transpose(2, 0, 1).astype(np.float64), ckpt[f"{mx_name}_weight"],
                                 ckpt[f"{mx_name}_bias"])
    assert got.shape == (2 * shape[1], 2 * shape[2], expected.shape[0])
    np.testing.assert_allclose(got.transpose(2, 0, 1), expected, rtol=1e-4, atol=1e-4)


def test_dff_weights_npz_equals_params_and_the_model_runs(dff_loaded, tmp_path):
    from tfvideo.models.flownet import load_flownet_weights

    net, ckpt, loaded, _ = dff_loaded
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in loaded}
    npz = tmp_path / "flownet.npz"  # mixed keys: with and without MXNet's prefixes
    np.savez(npz, **{(f"arg:{k}" if i % 2 else k): v for i, (k, v) in enumerate(ckpt.items())})
    frames = keras.Input((2, 128, 128, 3), dtype="uint8")
    holder = keras.Model(frames, net(frames)["flow"])   # holds it as layer "flownet", as dff_segmenter does
    assert [layer.name for layer in load_flownet_weights(holder, npz)] == list(before)
    for layer in loaded:
        for a, b in zip(layer.get_weights(), before[layer.name]):
            np.testing.assert_array_equal(a, b)
    frames = pair(b=1, h=128, w=128)
    out = net(frames)
    assert all(np.isfinite(v.numpy()).all() for v in out.values())
    # DFF's scale field: Convolution5_scale (1x1, O x I) on the averaged Concat5, plus its bias of 1
    pooled = keras.Model(net.input, net.get_layer("resize_concat5").output)(frames).numpy()
    expected = 1 + np.einsum("bhwc,oc->bhwo", pooled, ckpt["Convolution5_scale_weight"][:, :, 0, 0])
    np.testing.assert_allclose(out["scale"].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_dff_code_flow_order_predicts_from_the_averaged_concat5(dff_loaded):
    """``flow_order="dff_code"``: ``flow`` = 2.5 x Convolution5 (3x3, pad 1) of the 2 x 2 averaged Concat5,
    the DFF code's network, with the loaded weights; the default applies it at 1/8 and averages after."""
    from tfvideo.models.flownet import load_flownet_weights

    net, ckpt, _, path = dff_loaded
    code = flownet("s", feature_channels=1024, frame_size=(128, 128), flow_order="dff_code", name="flownet")
    load_flownet_weights(code, path)
    frames = pair(b=1, h=128, w=128)
    concat5 = keras.Model(code.input, code.get_layer("concat2").output)(frames).numpy()[0].astype(np.float64)
    pooled = concat5.reshape(8, 2, 8, 2, -1).mean(axis=(1, 3)).transpose(2, 0, 1)
    expected = 2.5 * caffe_conv(pooled, ckpt["Convolution5_weight"], ckpt["Convolution5_bias"], stride=1, pad=1)
    out = code(frames)
    np.testing.assert_allclose(out["flow"].numpy()[0].transpose(2, 0, 1), expected, rtol=1e-4, atol=1e-3)
    at8 = caffe_conv(concat5.transpose(2, 0, 1), ckpt["Convolution5_weight"], ckpt["Convolution5_bias"], 1, 1)
    np.testing.assert_allclose(out["flow_stride8"].numpy()[0].transpose(2, 0, 1), 40 * at8, rtol=1e-4, atol=1e-2)
    paper = net(frames)["flow"].numpy()[0].transpose(2, 0, 1)   # average after the prediction: another number
    np.testing.assert_allclose(paper, 2.5 * at8.reshape(2, 8, 2, 8, 2).mean(axis=(2, 4)), rtol=1e-4, atol=1e-3)
    assert np.abs(paper - expected).max() > 1e-2
    with pytest.raises(ValueError, match="flow_order"):
        flownet("s", flow_order="caffe")


def test_dff_weights_errors(dff_loaded, tmp_path):
    from tfvideo.models.flownet import load_flownet_weights

    net, ckpt, _, _ = dff_loaded
    stub = {k: np.zeros(1, np.float32) for k in ckpt}  # names only: the key checks come first

    def save(arrays, name="bad.npz"):
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    missing = {k: v for k, v in stub.items() if k not in ("deconv3_weight", "Convolution2_bias")}
    with pytest.raises(ValueError, match=r"lacks 2 FlowNetS array\(s\): \['Convolution2_bias', 'deconv3_weight'\]"):
        load_flownet_weights(net, save(missing))
    with pytest.raises(ValueError, match=r"lacks 47 .*'flow_flow_conv1_weight'"):
        load_flownet_weights(net, save(stub), prefix="flow_")
    one_frame = {**stub, "flow_conv1_weight": np.zeros((64, 3, 7, 7), np.float32)}
    with pytest.raises(ValueError, match=r"'flow_conv1_weight' has shape \(64, 3, 7, 7\); layer 'conv1' "
                                         r"\(conv\) needs \(64, 6, 7, 7\)"):
        load_flownet_weights(net, save(one_frame))
    # an error at the last layer: nothing was loaded (conv4_1 keeps its weights, not the doubled ones)
    snapshot = [w.copy() for w in net.get_layer("conv4_1").get_weights()]
    bad_bias = {**ckpt, "conv4_1_weight": 2 * ckpt["conv4_1_weight"], "Convolution5_scale_bias": np.zeros(1024)}
    with pytest.raises(ValueError, match="'Convolution5_scale_bias' is not 1"):
        load_flownet_weights(net, save(bad_bias))
    for a, b in zip(net.get_layer("conv4_1").get_weights(), snapshot):
        np.testing.assert_array_equal(a, b)
    # DFF's Flying-Chairs flownet-0000.params has no scale field: DFF's init_weight (0, bias 1) on request
    chairs = {k: v for k, v in ckpt.items() if not k.startswith("Convolution5_scale")}
    scale_conv = net.get_layer("scale_conv")
    scale_kernel = scale_conv.get_weights()[0]
    assert scale_conv in load_flownet_weights(net, save(chairs), init_missing_scale=True)
    assert not scale_conv.get_weights()[0].any()
    scale_conv.set_weights([scale_kernel])  # back to the module's weights (the others are the same)
    with pytest.raises(ValueError, match=r"'Convolution5_scale_weight' has shape \(8, 194, 1, 1\).*"
                                         r"\(1024, 194, 1, 1\).*feature_channels=1024"):
        load_flownet_weights(net, save({**ckpt, "Convolution5_scale_weight": np.zeros((8, 194, 1, 1))}))
    no_scale = {k: v for k, v in stub.items() if k != "Convolution5_scale_weight"}
    with pytest.raises(ValueError, match=r"lacks 1 .*'Convolution5_scale_weight'.*init_missing_scale=True"):
        load_flownet_weights(net, save(no_scale))
    with pytest.raises(ValueError, match=r"only FlowNetS \('s'\).*'tiny'"):
        load_flownet_weights(flownet("tiny", feature_channels=8), save(stub))
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="neither an .npz archive nor an MXNet .params"):
        load_flownet_weights(net, tmp_path / "junk.bin")
    with pytest.raises(FileNotFoundError, match="`path`"):
        load_flownet_weights(net, tmp_path / "nope.params")
    truncated = tmp_path / "cut.params"
    truncated.write_bytes(mxnet_params_bytes({"a": np.ones((2, 3), np.float32)})[:-20])
    with pytest.raises(ValueError, match="truncated"):
        load_flownet_weights(net, truncated)


def test_read_mxnet_params_versions_and_dtypes(tmp_path):
    from tfvideo.models.flownet import read_mxnet_params

    arrays = {"arg:w": RNG.normal(size=(3, 2, 4, 4)).astype(np.float32), "aux:h": np.arange(5, dtype=np.float16),
              "b": np.arange(-3, 3, dtype=np.int64).reshape(2, 3), "u": np.arange(7, dtype=np.uint8),
              "d": RNG.normal(size=(4,)), "i": np.arange(6, dtype=np.int32)}
    for legacy in (False, True):
        path = tmp_path / f"x{legacy}.params"
        path.write_bytes(mxnet_params_bytes(arrays, legacy=legacy))
        got = read_mxnet_params(path)
        assert list(got) == list(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(got[key], value, strict=True)


# written by MXNet 1.9.1 itself: mx.nd.save(path, {"arg:w": mx.nd.array(np.arange(6).reshape(2, 3) - 2.5,
# dtype="float32"), "aux:i": mx.nd.array([7, -1], dtype="int64")}) (V2 arrays)
MXNET_1_9_SAVED = bytes.fromhex(
    "120100000000000000000000000000000200000000000000c9fa93f900000000020000000200000000000000030000000000"
    "0000010000000000000000000000000020c00000c0bf000000bf0000003f0000c03f00002040c9fa93f90000000001000000"
    "02000000000000000100000000000000060000000700000000000000ffffffffffffffff020000000000000005000000000000"
    "006172673a7705000000000000006175783a69")


def test_read_a_file_mxnet_wrote(tmp_path):
    from tfvideo.models.flownet import read_mxnet_params

    (tmp_path / "m.params").write_bytes(MXNET_1_9_SAVED)
    got = read_mxnet_params(tmp_path / "m.params")
    assert list(got) == ["arg:w", "aux:i"]
    np.testing.assert_array_equal(got["arg:w"], np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5, strict=True)
    np.testing.assert_array_equal(got["aux:i"], np.array([7, -1], np.int64), strict=True)
