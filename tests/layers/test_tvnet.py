"""TVNet layer against an independent NumPy transcription of Algorithm 1 and closed-form motions."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tests.layers.tvl1_reference import grad_forward, tvl1_single_scale, warp_bilinear
from tfvideo.layers import TVNet
from tfvideo.losses import tvl1_energy
from tfvideo.ops.differences import BACKWARD_TAPS, FORWARD_TAPS


def photo_pair(photo_rgb, size=(96, 128)):
    """Two frames of a real photograph: frame1 is frame0 rotated by 2 degrees and shifted (0.8, -0.5)."""
    big = cv2.cvtColor(photo_rgb.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = size
    y0, x0 = 100, 150
    m = cv2.getRotationMatrix2D((x0 + w / 2, y0 + h / 2), 2.0, 1.0)
    m[:, 2] += (0.8, -0.5)
    moved = cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), flags=cv2.INTER_CUBIC)
    return big[y0 : y0 + h, x0 : x0 + w], moved[y0 : y0 + h, x0 : x0 + w]


def smooth_pattern(h, w, dx=0.0, dy=0.0):
    """A smooth analytic image f(x - dx, y - dy) in [0, 255]; frame1 = f(p - d) gives flow d."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = x - dx, y - dy
    f = (
        np.sin(2 * np.pi * x / 23.0) * np.cos(2 * np.pi * y / 31.0)
        + 0.6 * np.sin(2 * np.pi * (x + 2 * y) / 41.0)
        + 0.4 * np.cos(2 * np.pi * (x - y) / 17.0)
    )
    return (127.5 + 60.0 * f).astype(np.float32)


def as_batch(*frames):
    return [np.asarray(f, np.float32)[None, ..., None] for f in frames]


@pytest.mark.parametrize("warps,iterations,xla", [(1, 50, False), (3, 15, False), (3, 15, True)])
def test_frozen_matches_numpy_algorithm1(photo_rgb, warps, iterations, xla):
    f0, f1 = photo_pair(photo_rgb)
    layer = TVNet(warps=warps, iterations=iterations, trainable=False, xla_iterations=xla)
    flow = layer(as_batch(f0, f1)).numpy()[0]
    assert layer.trainable_weights == []
    u1, u2 = tvl1_single_scale(f0, f1, warps, iterations)
    assert np.abs(u1).max() > 1.0  # a real, non-trivial flow
    np.testing.assert_allclose(flow[..., 0], u1, atol=1e-3)
    np.testing.assert_allclose(flow[..., 1], u2, atol=1e-3)


def test_setting_trainable_false_freezes_all_weights():
    layer = TVNet(iterations=3)
    layer.build([(None, 16, 16, 1), (None, 16, 16, 1)])
    assert len(layer.trainable_weights) == 3
    layer.trainable = False
    assert layer.trainable_weights == []
    layer.trainable = True
    assert len(layer.trainable_weights) == 3
    assert len(TVNet(iterations=3, trainable_u0=False)(as_batch(np.zeros((16, 16)), np.zeros((16, 16))))[0].shape) == 3


def test_rgb_is_converted_with_bt601(photo_rgb):
    f0 = photo_rgb[100:132, 100:140]
    f1 = photo_rgb[101:133, 99:139]
    layer = TVNet(iterations=10, trainable=False)
    rgb = layer([f0[None], f1[None]]).numpy()
    w = np.array([0.299, 0.587, 0.114], np.float32)
    grey = layer(as_batch(f0 @ w, f1 @ w)).numpy()
    np.testing.assert_allclose(rgb, grey, atol=1e-4)


def test_subpixel_translation_recovered():
    d = (0.6, -0.35)
    f0 = smooth_pattern(64, 80)
    f1 = smooth_pattern(64, 80, *d)
    flow = TVNet(warps=5, iterations=50, trainable=False)(as_batch(f0, f1)).numpy()[0]
    inner = flow[8:-8, 8:-8]
    err = np.sqrt((inner[..., 0] - d[0]) ** 2 + (inner[..., 1] - d[1]) ** 2)
    assert err.mean() < 0.1, err.mean()


def test_multiscale_recovers_large_translation():
    d = (6.0, -4.0)
    f0 = smooth_pattern(96, 96)
    f1 = smooth_pattern(96, 96, *d)
    inner = (slice(16, -16), slice(16, -16))

    def epe(layer):  # in a tf.function: eagerly the 600 iterations of the 4-scale layer ran op by op (~10 s)
        flow = tf.function(layer)(as_batch(f0, f1)).numpy()[0][inner]
        return np.sqrt((flow[..., 0] - d[0]) ** 2 + (flow[..., 1] - d[1]) ** 2).mean()

    single = epe(TVNet(scales=1, warps=5, iterations=30, trainable=False))
    multi = epe(TVNet(scales=4, warps=5, iterations=30, trainable=False))
    assert single > 2.0, single
    assert multi < 0.3, multi


@pytest.mark.parametrize("value", ["constant", "black", "saturated"])
def test_gradients_finite_on_flat_frames(value):
    f = {"constant": 100.0, "black": 0.0, "saturated": 255.0}[value]
    f0 = tf.constant(np.full((2, 16, 16, 3), f, np.float32))
    f1 = tf.constant(np.full((2, 16, 16, 3), 255.0 - f if value == "constant" else f, np.float32))
    layer = TVNet(scales=2, warps=2, iterations=5, flow_loss_weight=0.1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([f0, f1])
        flow = layer([f0, f1])
        loss = tf.reduce_sum(flow**2) + tf.add_n(layer.losses) + tf.reduce_sum(flow)
    grads = tape.gradient(loss, [f0, f1] + layer.trainable_weights)
    assert all(g is not None for g in grads)
    for g in grads:
        g = tf.convert_to_tensor(g)
        assert np.all(np.isfinite(g.numpy()))
    assert np.all(np.isfinite(flow.numpy()))


@pytest.mark.parametrize("xla", [False, True])
def test_training_on_epe_changes_weights_and_lowers_loss(xla):
    """Unfrozen: a few steps of fit on the EPE loss (Eq. 14) change the kernels and u0 and lower the loss.

    (The paper's Sec. 5.1 uses plain gradient descent at lr 0.05 for 3000 steps; a test has ~20 steps,
    so it uses Adam to see the effect quickly.)"""
    rng = np.random.default_rng(0)
    d = np.array([[1.5, 0.5], [-1.0, 1.2], [0.8, -1.4], [-1.3, -0.6]], np.float32)
    offs = rng.uniform(-3, 3, (len(d), 2))
    f0 = np.stack([smooth_pattern(24, 24, *o) for o in offs])[..., None]
    f1 = np.stack([smooth_pattern(24, 24, *(o + dd)) for o, dd in zip(offs, d)])[..., None]
    target = np.broadcast_to(d[:, None, None, :], (len(d), 24, 24, 2)).astype(np.float32)

    a = keras.Input((24, 24, 1))
    b = keras.Input((24, 24, 1))
    layer = TVNet(iterations=5, xla_iterations=xla)
    model = keras.Model([a, b], layer([a, b]))

    def epe(y_true, y_pred):
        return tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(y_pred - y_true), -1) + 1e-12))

    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=epe)
    before = [w.numpy().copy() for w in layer.trainable_weights]
    loss0 = model.evaluate([f0, f1], target, verbose=0)
    model.fit([f0, f1], target, batch_size=4, epochs=15, verbose=0)
    loss1 = model.evaluate([f0, f1], target, verbose=0)
    assert loss1 < 0.9 * loss0, (loss0, loss1)
    for w0, w in zip(before, layer.trainable_weights):
        assert np.abs(w.numpy() - w0).max() > 1e-4, w.name


def test_flow_loss_is_weighted_tvl1_energy_with_fixed_kernels(photo_rgb):
    f0, f1 = photo_pair(photo_rgb, size=(32, 40))
    layer = TVNet(iterations=10, flow_loss_weight=0.5)
    layer.build([(1, 32, 40, 1), (1, 32, 40, 1)])
    # make the trainable kernels very different from finite differences: the loss must not change with them
    layer.forward_kernels.assign(np.zeros(layer.forward_kernels.shape, np.float32))
    layer.u0.assign(np.full(layer.u0.shape, 0.7, np.float32))
    flow = layer(as_batch(f0, f1))
    assert len(layer.losses) == 1
    u1, u2 = flow.numpy()[0, ..., 0].astype(np.float64), flow.numpy()[0, ..., 1].astype(np.float64)
    rho = warp_bilinear(f1.astype(np.float64), u1, u2) - f0
    u1x, u1y = grad_forward(u1)
    u2x, u2y = grad_forward(u2)
    energy = np.mean(np.sqrt(u1x**2 + u1y**2 + 1e-12) + np.sqrt(u2x**2 + u2y**2 + 1e-12) + 0.15 * np.abs(rho))
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * energy, rtol=1e-4)
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * float(tvl1_energy(*as_batch(f0, f1), flow)), rtol=1e-6)


def test_config_round_trip_and_keras_file(tmp_path, photo_rgb):
    f0, f1 = photo_pair(photo_rgb, size=(24, 32))
    layer = TVNet(
        scales=2, warps=2, iterations=4, tau=0.2, lbda=0.1, theta=0.25, zfactor=0.6, flow_loss_weight=0.1,
        xla_iterations=True,
    )
    a = keras.Input((24, 32, 1))
    b = keras.Input((24, 32, 1))
    model = keras.Model([a, b], layer([a, b]))
    layer.u0.assign(np.random.default_rng(0).normal(size=layer.u0.shape).astype(np.float32))
    clone = TVNet.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    path = tmp_path / "tvnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = as_batch(f0, f1)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert loaded.layers[-1].get_config() == layer.get_config()


@pytest.mark.parametrize("hw", [(8, 8), (13, 9), (37, 50)])
def test_any_size_and_none_batch(hw):
    layer = TVNet(scales=2, warps=1, iterations=3)
    fn = tf.function(
        lambda a, b: layer([a, b]),
        input_signature=[tf.TensorSpec([None, None, None, 1])] * 2,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (3, *hw, 1)).astype(np.float32)
    out = fn(x, x[::-1])
    assert out.shape == (3, *hw, 2)
    np.testing.assert_allclose(out.numpy(), layer([x, x[::-1]]).numpy(), atol=1e-4)


def test_under_mirrored_strategy(mirrored_strategy):
    strategy = mirrored_strategy
    rng = np.random.default_rng(0)
    f0 = rng.uniform(0, 255, (4, 16, 16, 1)).astype(np.float32)
    f1 = np.roll(f0, 1, axis=2)
    target = np.zeros((4, 16, 16, 2), np.float32)
    target[..., 0] = 1.0
    with strategy.scope():
        a = keras.Input((None, None, 1))
        b = keras.Input((None, None, 1))
        model = keras.Model([a, b], TVNet(iterations=3, flow_loss_weight=0.1)([a, b]))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    history = model.fit([f0, f1], target, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(scales=0), "scales"),
        (dict(iterations=2.5), "iterations"),
        (dict(zfactor=1.0), "zfactor"),
        (dict(tau=-1), "tau"),
        (dict(flow_loss_weight=-0.1), "flow_loss_weight"),
        (dict(u0_size=(3,)), "u0_size"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TVNet(**kwargs)


def test_bad_call_arguments():
    layer = TVNet(iterations=2)
    x = np.zeros((1, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match=r"\[frame0, frame1\]"):
        layer(x)
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\)"):
        TVNet(iterations=2)([np.zeros((1, 16, 16, 2)), np.zeros((1, 16, 16, 2))])
    with pytest.raises(ValueError, match="at least 8"):
        TVNet(iterations=2)([np.zeros((1, 4, 16, 1)), np.zeros((1, 4, 16, 1))])
    with pytest.raises(ValueError, match="same shape"):
        TVNet(iterations=2)([np.zeros((1, 16, 16, 1)), np.zeros((1, 16, 17, 1))])
    with pytest.raises(ValueError, match="frame1"):
        TVNet(iterations=2)([x, np.zeros((16, 16, 1))])


@pytest.mark.parametrize("xla", [False, True])
def test_gradient_matches_finite_differences(photo_rgb, xla):
    """Directional derivatives w.r.t. u0 and the kernels against central differences.

    u0 is set to non-integer values: at u0 = 0 every warp samples exactly on pixel centres, where
    bilinear interpolation has a kink and one-sided and central differences legitimately disagree.
    The solver is piecewise smooth (clip, bilinear cells), so the check takes the best of a few step
    sizes.
    """
    f0, f1 = photo_pair(photo_rgb, size=(24, 32))
    layer = TVNet(scales=2, warps=2, iterations=3, xla_iterations=xla)
    x = as_batch(f0, f1)
    layer(x)
    rng = np.random.default_rng(0)
    layer.u0.assign(rng.uniform(0.2, 0.8, layer.u0.shape).astype(np.float32) * rng.choice([-1, 1], layer.u0.shape))
    w_out = tf.constant(rng.normal(size=(1, 24, 32, 2)).astype(np.float32))
    loss = tf.function(lambda: tf.reduce_sum(layer(x) * w_out))

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            value = loss()
        return tape.gradient(value, layer.trainable_weights)

    grads = gradients()
    for w, g in zip(layer.trainable_weights, grads):
        d = rng.normal(size=w.shape).astype(np.float32)
        analytic = float(tf.reduce_sum(tf.convert_to_tensor(g) * d))
        base = w.numpy().copy()
        errors = []
        for h in (1e-3, 3e-4, 1e-4):
            w.assign(base + h * d)
            up = float(loss())
            w.assign(base - h * d)
            down = float(loss())
            w.assign(base)
            errors.append(abs((up - down) / (2 * h) - analytic) / abs(analytic))
        assert abs(analytic) > 0.1, w.name
        assert min(errors) < 0.03, (w.name, analytic, errors)


def test_max_scales_keeps_the_coarsest_level_at_min_size():
    """With exact halving, level k has side floor(n / 2^k) >= m iff n >= m * 2^k: 1 + floor(log2(n / m))."""
    from tfvideo.layers.tvnet import max_scales, pyramid_sizes

    for m in (12, 16):
        for h, w in [(16, 16), (31, 200), (32, 33), (96, 128), (127, 500), (240, 320), (388, 584), (1024, 64)]:
            expected = 1 + int(np.floor(np.log2(min(h, w) / m)))
            assert max_scales(h, w, min_size=m) == expected, (h, w, m)
            assert min(pyramid_sizes(h, w, expected, 0.5)[-1]) >= m
    assert max_scales(96, 128) == max_scales(96, 128, min_size=12) == 4   # the default: 12 x 16 measured fine
    assert max_scales(8, 8) == 1 and max_scales(96, 128, min_size=8) == 4
    # levels stop at 2 px: with min_size 1 or 2 the count ends where they stop shrinking (96 -> ... -> 3 -> 2)
    assert max_scales(96, 96, min_size=1) == max_scales(96, 96, min_size=2) == 7
    assert max_scales(96, 128, min_size=8, zfactor=0.8) > 4
    with pytest.raises(ValueError, match="min_size"):
        max_scales(96, 128, min_size=0)
    with pytest.raises(ValueError, match="zfactor"):
        max_scales(96, 128, zfactor=1.0)


def test_pyramid_step_matches_opencv_blur_and_resize(photo_grey):
    """One pyramid step = Gaussian blur (edge replicated) + bilinear sampling, as OpenCV computes it."""
    layer = TVNet(scales=2, zfactor=0.5)
    img = photo_grey[:64, :90]
    taps = layer._gauss.astype(np.float32)
    assert np.isclose(taps.sum(), 1.0) and len(taps) == 2 * int(np.ceil(2 * 0.6 * np.sqrt(3))) + 1
    blurred = cv2.sepFilter2D(img, -1, taps, taps, borderType=cv2.BORDER_REPLICATE)
    expected = cv2.resize(blurred, (45, 32), interpolation=cv2.INTER_LINEAR)
    got = layer._downsample(img[None, ..., None], [32, 45]).numpy()[0, ..., 0]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_whole_layer_under_jit_compile():
    f0 = smooth_pattern(32, 40)
    f1 = smooth_pattern(32, 40, 1.5, -1.0)
    layer = TVNet(scales=2, warps=2, iterations=5, trainable=False)
    x = as_batch(f0, f1)
    jit = tf.function(lambda a, b: layer([a, b]), jit_compile=True)
    np.testing.assert_allclose(jit(*x).numpy(), layer(x).numpy(), atol=1e-3)


def test_bicubic_tvnet_matches_opencv_dualtvl1_with_the_same_settings():
    """With bicubic warps TVNet is the classical TV-L1: compare with OpenCV's DualTVL1 set identically
    (one scale, 3 warps, exactly 20 iterations per warp, no median filter, no early stop). The two differ
    only at the image border (OpenCV's one-sided gradients there, zero in Eq. 3), so compare inside."""
    f0 = smooth_pattern(64, 80).astype(np.uint8)
    f1 = smooth_pattern(64, 80, 0.8, -0.6).astype(np.uint8)
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    solver.setScalesNumber(1)
    solver.setWarpingsNumber(3)
    solver.setInnerIterations(20)
    solver.setOuterIterations(1)
    solver.setEpsilon(0.0)
    solver.setMedianFiltering(1)
    ref = solver.calc(f0, f1, None)
    inner = (slice(8, -8), slice(8, -8))
    flows = {
        interp: TVNet(warps=3, iterations=20, interpolation=interp, trainable=False)(as_batch(f0, f1)).numpy()[0]
        for interp in ("bilinear", "bicubic")
    }
    diff = {k: np.linalg.norm(v - ref, axis=-1)[inner].mean() for k, v in flows.items()}
    assert diff["bicubic"] < 0.02, diff
    assert diff["bicubic"] < diff["bilinear"], diff


# ------------------------------------------------------------------ shared layer checks
def random_pair(batch=2, size=(16, 16), seed=0):
    rng = np.random.default_rng(seed)
    f0 = np.stack([smooth_pattern(*size, *rng.uniform(-3, 3, 2)) for _ in range(batch)])[..., None]
    return [f0, np.roll(f0, (1, -1), axis=(1, 2))]


@pytest.mark.parametrize(
    "kwargs,counts",
    [
        # forward_kernels, divergence_kernels, u0: all trainable
        (dict(scales=2, warps=2, iterations=3, flow_loss_weight=0.1), (3, 0)),
        # trainable_u0=False: u0 is created non-trainable, the two kernel tensors stay trainable
        (dict(iterations=3, trainable_u0=False, interpolation="bicubic"), (2, 1)),
        # trainable_kernels=False (Table 1's "Training u0"): u0 alone trainable
        (dict(iterations=3, trainable_kernels=False), (1, 2)),
        # a frozen layer: all three weights non-trainable
        (dict(iterations=3, trainable=False), (0, 3)),
        # the XLA iteration loop and the input check change no weights
        (dict(iterations=2, xla_iterations=True, check_finite=True), (3, 0)),
    ],
)
def test_layer_checks(tmp_path, kwargs, counts):
    check_layer(lambda: TVNet(**kwargs), random_pair(), trainable_weights=counts[0], non_trainable_weights=counts[1],
                expected_output_shape=(2, 16, 16, 2), symbolic_shapes=[(None, None, 1)] * 2, tmp_path=tmp_path,
                rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ trainable_u0=False
def test_trainable_u0_false_keeps_u0_fixed_in_training():
    """u0 of TVNet(trainable_u0=False) is a non-trainable weight and a training step leaves it alone while
    it changes the kernels; a TVNet(trainable_u0=True) beside it in the same model is the control."""
    a, b = keras.Input((16, 16, 1)), keras.Input((16, 16, 1))
    fixed, free = TVNet(iterations=3, trainable_u0=False), TVNet(iterations=3)
    model = keras.Model([a, b], [fixed([a, b]), free([a, b])])
    names = lambda ws: sorted(w.name for w in ws)  # noqa: E731
    assert names(fixed.trainable_weights) == ["divergence_kernels", "forward_kernels"]
    assert names(fixed.non_trainable_weights) == ["u0"]
    assert names(free.trainable_weights) == ["divergence_kernels", "forward_kernels", "u0"]
    fixed.trainable = False
    fixed.trainable = True  # toggling the layer must not make u0 trainable
    assert names(fixed.trainable_weights) == ["divergence_kernels", "forward_kernels"]
    assert len(model.trainable_weights) == 5 and len(model.non_trainable_weights) == 1
    x = random_pair(batch=2)
    target = np.zeros((2, 16, 16, 2), np.float32)
    target[..., 0] = 1.0  # u0 gets a gradient: the flow should move towards (1, 0)
    before = [{w.name: w.numpy().copy() for w in layer.weights} for layer in (fixed, free)]
    with tf.GradientTape() as tape:  # one SGD step on what the model declares trainable
        loss = sum(tf.reduce_mean(tf.square(y - target)) for y in model(x))
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(1.0).apply(grads, model.trainable_weights)
    moved = [{w.name: np.abs(w.numpy() - b[w.name]).max() for w in layer.weights}
             for layer, b in zip((fixed, free), before)]
    for m in moved:
        assert m["forward_kernels"] > 1e-6 and m["divergence_kernels"] > 1e-6, moved
    assert moved[0]["u0"] == 0.0 and moved[1]["u0"] > 1e-6, moved


def test_trainable_kernels_false_trains_u0_alone():
    """Table 1's "Training u0" mode: with trainable_kernels=False a training step moves u0 and leaves the
    kernels at the exact TV-L1 taps, and the flow after the step equals exact TV-L1 started from the new u0
    (a frozen layer with the same u0: the iterations are untouched)."""
    a, b = keras.Input((16, 16, 1)), keras.Input((16, 16, 1))
    layer = TVNet(iterations=3, trainable_kernels=False)
    model = keras.Model([a, b], layer([a, b]))
    assert sorted(w.name for w in layer.trainable_weights) == ["u0"]
    x = random_pair(batch=2)
    target = np.zeros((2, 16, 16, 2), np.float32)
    target[..., 0] = 1.0
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - target))
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(1.0).apply(grads, model.trainable_weights)
    assert np.abs(layer.u0.numpy()).max() > 1e-6
    assert np.array_equal(layer.forward_kernels.numpy(), np.broadcast_to(FORWARD_TAPS, layer.forward_kernels.shape))
    assert np.array_equal(layer.divergence_kernels.numpy(),
                          np.broadcast_to(BACKWARD_TAPS, layer.divergence_kernels.shape))
    exact = TVNet(iterations=3, trainable=False)
    exact(x)
    exact.u0.assign(layer.u0.numpy())
    np.testing.assert_allclose(model(x).numpy(), exact(x).numpy(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ non-finite input
def _run(layer, mode, x):
    if mode == "tf.function":
        return tf.function(lambda a, b: layer([a, b]))(*x)
    if mode == "jit_compile":
        return tf.function(lambda a, b: layer([a, b]), jit_compile=True)(*x)
    return layer(x)


@pytest.mark.parametrize("mode,xla", [("eager", False), ("tf.function", False), ("eager", True), ("tf.function", True)])
def test_check_finite_names_the_input(mode, xla):
    layer = TVNet(scales=2, iterations=2, check_finite=True, xla_iterations=xla)
    call = tf.function(lambda a, b: layer([a, b]), input_signature=[tf.TensorSpec((None, 16, 16, 1))] * 2)
    if mode == "eager":
        call = lambda a, b: layer([a, b])  # noqa: E731
    for which, bad in [(0, np.nan), (1, np.nan), (0, np.inf), (1, -np.inf)]:
        x = random_pair()
        x[which][1, 7, 9, 0] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"TVNet input `frame{which}` contains NaN or inf"):
            call(*x)
    assert np.isfinite(call(*random_pair()).numpy()).all()


def test_without_check_finite_a_nan_pixel_spreads_silently():
    """The behaviour the docstring documents: one NaN pixel, 1-1-10 -> a region of radius ~9 px."""
    x = random_pair(batch=2, size=(32, 32))
    x[0][0, 16, 16, 0] = np.nan
    flow = TVNet(iterations=10, trainable=False)(x).numpy()
    bad = ~np.isfinite(flow[0]).all(-1)
    assert 0.05 < bad.mean() < 0.5 and np.isfinite(flow[1]).all()
    yy, xx = np.nonzero(bad)
    assert max(np.abs(yy - 16).max(), np.abs(xx - 16).max()) <= 10


@pytest.mark.parametrize("mode,xla", [("eager", False), ("tf.function", False), ("eager", True)])
def test_check_finite_on_finite_input_changes_nothing(mode, xla):
    x = random_pair()
    checked = _run(TVNet(iterations=2, check_finite=True, xla_iterations=xla), mode, x).numpy()
    plain = _run(TVNet(iterations=2, xla_iterations=xla), mode, x).numpy()
    np.testing.assert_allclose(checked, plain, rtol=1e-6, atol=1e-6)
    assert np.abs(plain).max() > 0.1


def test_check_finite_accepts_integer_frames():
    ints = [f.astype(np.uint8) for f in random_pair()]  # nothing to check: same flow
    np.testing.assert_array_equal(TVNet(iterations=2, check_finite=True)(ints).numpy(),
                                  TVNet(iterations=2)(ints).numpy())


@pytest.mark.parametrize("bad", [None, np.nan])
def test_check_finite_refuses_whole_layer_jit_compile(bad):
    """XLA drops CheckNumerics/Assert (TF 2.21): the layer refuses to trace under jit_compile rather than
    skip the check silently, and tells Keras' jit_compile="auto" not to compile it."""
    x = random_pair()
    if bad is not None:
        x[0][0, 3, 3, 0] = bad
    layer = TVNet(iterations=2, check_finite=True)
    assert layer.supports_jit is False and TVNet(iterations=2).supports_jit is True
    with pytest.raises(ValueError, match="check_finite=True.*`frame0`.*NaN or inf.*XLA"):
        _run(layer, "jit_compile", x)
    assert TVNet(iterations=2, check_finite=True).get_config()["check_finite"] is True


def test_frozen_layer_records_no_gradient_for_its_weights_but_passes_frame_gradients():
    """A frozen layer's variables stay watched by a training step's tape (their tf.Variable was created trainable):
    the layer stops their gradient, so the level solver's call is not recorded for a backward pass it never
    gets (tfvideo/layers/tvnet.py, TVNet.call); gradients w.r.t. the frames still flow."""
    rng = np.random.default_rng(3)
    f0 = tf.constant(rng.uniform(0, 255, (1, 16, 20, 1)).astype(np.float32))
    f1 = tf.constant(np.roll(f0.numpy(), 1, axis=2))
    layer = TVNet(1, 1, 3)
    layer([f0, f1])
    layer.trainable = False

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            tape.watch(f1)
            value = tf.reduce_sum(layer([f0, f1]) ** 2)
        return tape.gradient(value, [layer.forward_kernels.value, layer.u0.value, f1])

    g_kernels, g_u0, g_frame = grads()
    assert g_kernels is None and g_u0 is None
    assert np.abs(g_frame.numpy()).max() > 0
