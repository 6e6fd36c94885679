"""VLAD layers of the thesis's chapter 2 (digest 2.1, Eq. 2.1) and NetVLAD against NumPy
transcriptions of their formulas, hand-made examples, finite differences and the shared layer checks.

Weight counts (from the definitions): LocalL2Normalize has none; VLAD has one non-trainable weight
(``centers``); NetVLAD has three trainable weights (``centers``, ``kernel``, ``bias``)."""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tfvideo.layers import vlad as vlad_module
from tfvideo.layers.vlad import VLAD, LocalL2Normalize, NetVLAD

RNG = np.random.default_rng(2024)


# ------------------------------------------------------------------------- NumPy references ----
def l2(v):
    """v / ||v|| with 0 for a zero vector."""
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def vlad_numpy(f, c, intra=True, final=True, valid=None):
    """Eq. 2.1 for one image: f (N, D) local features, c (K, D) centres; loops, float64."""
    f, c = f.astype(np.float64), c.astype(np.float64)
    v = np.zeros_like(c)
    for i in range(len(f)):
        if valid is not None and not valid[i]:
            continue
        dist = [np.sqrt(np.sum((f[i] - ck) ** 2)) for ck in c]         # Euclidean distances
        k = int(np.argmin(dist))                                        # NN(f)
        v[k] += f[i] - c[k]
    if intra:
        v = np.stack([l2(vk) for vk in v])
    v = v.reshape(-1)                                                   # [v_1, ..., v_K]
    return l2(v) if final else v


def netvlad_numpy(f, c, w, b, intra=True, final=True, valid=None):
    """a_k(x) = softmax_k(w_k . x + b_k); V_k = sum_i a_k(x_i) (x_i - c_k); w is (D, K)."""
    f, c, w, b = (np.asarray(a, np.float64) for a in (f, c, w, b))
    v = np.zeros_like(c)
    for i in range(len(f)):
        if valid is not None and not valid[i]:
            continue
        z = f[i] @ w + b
        a = np.exp(z - z.max())
        a /= a.sum()
        for k in range(len(c)):
            v[k] += a[k] * (f[i] - c[k])
    if intra:
        v = np.stack([l2(vk) for vk in v])
    v = v.reshape(-1)
    return l2(v) if final else v


def min_gap(f, c):
    """Smallest difference between the nearest and the second-nearest centre distance (to keep
    the random tests away from ties, where float32 and float64 could pick different centres)."""
    d = np.sqrt(((f[:, None].astype(np.float64) - c[None]) ** 2).sum(-1))
    d.sort(axis=1)
    return (d[:, 1] - d[:, 0]).min()


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_doctests():
    assert doctest.testmod(vlad_module).failed == 0


# -------------------------------------------------------------------------- LocalL2Normalize ----
def test_local_l2_normalize(tmp_path):
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    x[0, 1, 2] = 0.0                                                    # a zero descriptor stays 0
    out = check_layer(LocalL2Normalize, x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=x.shape, symbolic_shapes=(None, None, 5),
                      tmp_path=tmp_path)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    expected = np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[0, 1, 2], 0.0)
    seq = RNG.normal(size=(3, 7, 4)).astype(np.float32)                # (B, N, D)
    np.testing.assert_allclose(LocalL2Normalize()(seq), unit(seq), rtol=1e-6)
    with pytest.raises(ValueError, match="epsilon"):
        LocalL2Normalize(epsilon=0.0)


# -------------------------------------------------------------------------------------- VLAD ----
@pytest.mark.parametrize("intra, final", [(True, True), (True, False), (False, True),
                                          (False, False)])
def test_vlad_matches_equation_2_1(tmp_path, intra, final):
    k, d = 6, 5
    centers = unit(RNG.normal(size=(k, d))).astype(np.float32)
    x = unit(RNG.normal(size=(2, 3, 4, d))).astype(np.float32)        # (B, H, W, D), L2-normalised
    made = []

    def make():
        made.append(VLAD(k, intra_normalize=intra, final_l2=final, centers=centers))
        return made[-1]

    # one non-trainable weight: the codebook
    out = check_layer(make, x, trainable_weights=0, non_trainable_weights=1,
                      expected_output_shape=(2, k * d), symbolic_shapes=(None, None, d),
                      tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    c = made[0].centers.numpy()                     # check_layer perturbed the centres (seeded)
    assert min_gap(x.reshape(-1, d), c) > 1e-4
    for b in range(2):
        np.testing.assert_allclose(out[b], vlad_numpy(x[b].reshape(-1, d), c, intra, final),
                                   rtol=1e-5, atol=1e-6)
    if final:
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_vlad_on_sets_unknown_size(tmp_path):
    k, d = 4, 3
    centers = RNG.normal(size=(k, d)).astype(np.float32)
    x = RNG.normal(size=(3, 7, d)).astype(np.float32)                  # (B, N, D)
    made = []

    def make():
        made.append(VLAD(k, centers=centers))
        return made[-1]

    out = check_layer(make, x, trainable_weights=0, non_trainable_weights=1,
                      expected_output_shape=(3, k * d), symbolic_shapes=(None, d),
                      tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    c = made[0].centers.numpy()
    assert min_gap(x.reshape(-1, d), c) > 1e-4
    for b in range(3):
        np.testing.assert_allclose(out[b], vlad_numpy(x[b], c), rtol=1e-5, atol=1e-6)


def test_vlad_hand_made_2d_example():
    # centres c1 = (0, 0), c2 = (10, 0), c3 = (0, 10); features on a 2 x 2 map
    centers = np.array([[0., 0.], [10., 0.], [0., 10.]], np.float32)
    f = np.array([[[[1., 0.], [0., 3.]],
                   [[12., 0.], [10., 1.]]]], np.float32)                # (1, 2, 2, 2)
    # NN: (1,0)->c1, (0,3)->c1, (12,0)->c2, (10,1)->c2; nothing near c3
    # v1 = (1,0) + (0,3) = (1, 3);   v2 = (2,0) + (0,1) = (2, 1);   v3 = 0 (empty)
    raw = VLAD(3, intra_normalize=False, final_l2=False, centers=centers)(f).numpy()
    np.testing.assert_allclose(raw, [[1, 3, 2, 1, 0, 0]], atol=1e-6)
    # intra-normalised: (1, 3) / sqrt(10), (2, 1) / sqrt(5), 0
    intra = VLAD(3, final_l2=False, centers=centers)(f).numpy()
    np.testing.assert_allclose(intra, [[1 / 10 ** .5, 3 / 10 ** .5, 2 / 5 ** .5, 1 / 5 ** .5, 0, 0]],
                               rtol=1e-6)
    # final L2: two unit blocks -> divided by sqrt(2)
    full = VLAD(3, centers=centers)(f).numpy()
    np.testing.assert_allclose(full, intra / 2 ** .5, rtol=1e-6)


def test_vlad_empty_clusters_stay_zero():
    d = 4
    centers = np.concatenate([unit(RNG.normal(size=(3, d))), np.full((2, d), 100.0)]).astype(
        np.float32)                                                     # clusters 3, 4: far away
    x = unit(RNG.normal(size=(2, 9, d))).astype(np.float32)
    out = VLAD(5, centers=centers)(x).numpy().reshape(2, 5, d)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 3:], 0.0)
    np.testing.assert_allclose(np.linalg.norm(out.reshape(2, -1), axis=1), 1.0, rtol=1e-6)
    for b in range(2):
        np.testing.assert_allclose(out[b].reshape(-1), vlad_numpy(x[b], centers), rtol=1e-5,
                                   atol=1e-6)
    # a single image of zeros: nothing but zeros (no NaN)
    assert np.all(VLAD(5, centers=centers)(np.zeros((1, 2, 2, d), np.float32)).numpy()[0, d:] == 0)
    # mixed precision: epsilon would flush to 0 in float16; the norms run in float32 (no NaN)
    half = VLAD(5, centers=centers, dtype="mixed_float16")(x).numpy()
    assert half.dtype == np.float16 and np.all(half.reshape(2, 5, d)[:, 3:] == 0)
    np.testing.assert_allclose(half, out.reshape(2, -1), atol=2e-3)
    zeros = LocalL2Normalize(dtype="mixed_float16")(np.zeros((1, 2, d), np.float32)).numpy()
    np.testing.assert_array_equal(zeros, 0.0)


def test_vlad_mask_equals_unpadded_images():
    k, d = 5, 3
    centers = RNG.normal(size=(k, d)).astype(np.float32)
    a = RNG.normal(size=(3, 4, d)).astype(np.float32)                  # a 3 x 4 image
    b = RNG.normal(size=(2, 2, d)).astype(np.float32)                  # a 2 x 2 image
    batch = np.full((2, 3, 4, d), 7.0, np.float32)                     # padding with garbage
    batch[0], batch[1, :2, :2] = a, b
    mask = np.zeros((2, 3, 4), bool)
    mask[0], mask[1, :2, :2] = True, True
    layer = VLAD(k, centers=centers)
    out = layer(batch, mask=mask).numpy()
    np.testing.assert_allclose(out[0], layer(a[None]).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], layer(b[None]).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], vlad_numpy(batch[1].reshape(-1, d), centers,
                                                  valid=mask[1].reshape(-1)), rtol=1e-5, atol=1e-6)
    # a float 0/1 mask of a (B, N, D) set does the same
    flat = batch.reshape(2, 12, d)
    np.testing.assert_allclose(layer(flat, mask=mask.reshape(2, 12).astype(np.float32)), out,
                               rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="mask"):
        layer(batch, mask=mask.reshape(2, 12))


def test_vlad_mask_in_saved_model_and_traced(tmp_path):
    k, d = 3, 2
    centers = RNG.normal(size=(k, d)).astype(np.float32)
    feats = keras.Input((None, None, d), name="features")
    valid = keras.Input((None, None), dtype="bool", name="valid")
    model = keras.Model([feats, valid], VLAD(k, centers=centers)(feats, mask=valid))
    x = RNG.normal(size=(2, 3, 3, d)).astype(np.float32)
    m = RNG.random((2, 3, 3)) > 0.3
    expected = model([x, m]).numpy()
    model.save(tmp_path / "vlad_mask.keras")
    loaded = keras.saving.load_model(tmp_path / "vlad_mask.keras")
    np.testing.assert_allclose(loaded([x, m]), expected, rtol=1e-6)
    traced = tf.function(lambda a, b: loaded([a, b]), input_signature=[
        tf.TensorSpec((None, None, None, d)), tf.TensorSpec((None, None, None), tf.bool)])
    np.testing.assert_allclose(traced(x, m), expected, rtol=1e-6)
    for b in range(2):
        np.testing.assert_allclose(expected[b], vlad_numpy(x[b].reshape(-1, d), centers,
                                                           valid=m[b].reshape(-1)),
                                   rtol=1e-5, atol=1e-6)


def test_vlad_set_centers_and_errors(tmp_path):
    centers = RNG.normal(size=(4, 3)).astype(np.float32)
    layer = VLAD(4).set_centers(centers)                                # builds for D = 3
    np.testing.assert_array_equal(layer.centers.numpy(), centers)
    x = RNG.normal(size=(1, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(x)[0], vlad_numpy(x[0], centers), rtol=1e-5, atol=1e-6)
    # survives .keras save / load without centres in the config
    inp = keras.Input((None, 3))
    model = keras.Model(inp, layer(inp))
    model.save(tmp_path / "vlad.keras")
    loaded = keras.saving.load_model(tmp_path / "vlad.keras")
    np.testing.assert_array_equal(loaded.layers[-1].centers.numpy(), centers)
    assert loaded.layers[-1].get_config()["centers"]["class_name"] == "Zeros"
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        layer.set_centers(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="num_clusters"):
        VLAD(4).set_centers(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="num_clusters"):
        VLAD(0)
    with pytest.raises(ValueError, match="intra_normalize"):
        VLAD(3, intra_normalize=1)
    with pytest.raises(ValueError, match="centers"):
        VLAD(3, centers=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="D"):
        VLAD(3)(keras.Input((5, None)))
    with pytest.raises(ValueError, match="batch, N, D"):
        VLAD(3).build((None, 4))


# ----------------------------------------------------------------------------------- NetVLAD ----
def test_netvlad_frames_matches_formula(tmp_path):
    k, d = 3, 4
    x = RNG.normal(size=(2, 5, d)).astype(np.float32)                  # frame features (B, T, D)
    made = []

    def make():
        made.append(NetVLAD(k, alpha=2.0))
        return made[-1]

    # three trainable weights: centres, kernel (w_k as columns), bias
    out = check_layer(make, x, trainable_weights=3, non_trainable_weights=0,
                      expected_output_shape=(2, k * d), symbolic_shapes=(None, d),
                      tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    layer = made[0]
    c, w, b = layer.centers.numpy(), layer.kernel.numpy(), layer.bias.numpy()
    for n in range(2):
        np.testing.assert_allclose(out[n], netvlad_numpy(x[n], c, w, b), rtol=1e-5, atol=1e-6)


def test_netvlad_conv_maps_matches_formula(tmp_path):
    k, d = 2, 3
    x = RNG.normal(size=(2, 2, 3, d)).astype(np.float32)               # (B, H, W, D)
    made = []

    def make():
        made.append(NetVLAD(k, final_l2=False, centers=RNG.normal(size=(k, d))))
        return made[-1]

    out = check_layer(make, x, trainable_weights=3, non_trainable_weights=0,
                      expected_output_shape=(2, k * d), symbolic_shapes=(None, None, d),
                      tmp_path=tmp_path, rtol=1e-5, atol=1e-6)
    layer = made[0]
    for n in range(2):
        np.testing.assert_allclose(
            out[n], netvlad_numpy(x[n].reshape(-1, d), layer.centers.numpy(), layer.kernel.numpy(),
                                  layer.bias.numpy(), final=False), rtol=1e-5, atol=1e-6)


def test_netvlad_initialisation_and_masks():
    k, d, alpha = 3, 2, 5.0
    centers = RNG.normal(size=(k, d))
    layer = NetVLAD(k, alpha=alpha, centers=centers)
    layer.build((None, None, d))
    # the paper's init: w_k = 2 alpha c_k, b_k = -alpha ||c_k||^2
    np.testing.assert_allclose(layer.kernel.numpy(), 2 * alpha * centers.T, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), -alpha * (centers ** 2).sum(1), rtol=1e-6)
    other = RNG.normal(size=(k, d))
    layer.init_from_centers(other, alpha=3.0)
    np.testing.assert_allclose(layer.kernel.numpy(), 6.0 * other.T, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), -3.0 * (other ** 2).sum(1), rtol=1e-6)
    # padded frames masked out == the unpadded clip; a keras Masking layer gives the same mask
    clip = RNG.normal(size=(1, 4, d)).astype(np.float32)
    padded = np.concatenate([clip, np.zeros((1, 3, d), np.float32)], axis=1)
    expected = layer(clip).numpy()
    np.testing.assert_allclose(layer(padded, mask=np.arange(7)[None] < 4), expected, rtol=1e-5,
                               atol=1e-6)
    inp = keras.Input((None, d))
    model = keras.Model(inp, layer(keras.layers.Masking(0.0)(inp)))
    np.testing.assert_allclose(model(padded), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        NetVLAD(3, alpha=0)
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        layer.init_from_centers(np.zeros((3, 4)))


def test_netvlad_tends_to_vlad_as_alpha_grows():
    k, d = 5, 8
    centers = unit(RNG.normal(size=(k, d))).astype(np.float32)
    x = unit(RNG.normal(size=(2, 4, 4, d))).astype(np.float32)
    assert min_gap(x.reshape(-1, d), centers) > 1e-3
    hard = VLAD(k, centers=centers)(x).numpy()
    errors = []
    for alpha in [1.0, 10.0, 100.0, 1e4]:
        soft = NetVLAD(k).init_from_centers(centers, alpha=alpha)(x).numpy()
        errors.append(np.abs(soft - hard).max())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[0] > 0.05 and errors[-1] < 1e-4, errors


def test_netvlad_gradients_match_finite_differences():
    k, d, n = 3, 2, 4
    layer = NetVLAD(k, alpha=1.5, dtype="float64", centers=RNG.normal(size=(k, d)))
    x = RNG.normal(size=(1, n, d))
    layer.build((None, None, d))
    layer.kernel.assign(layer.kernel.numpy() + 0.3 * RNG.normal(size=(d, k)))  # decouple w from c
    proj = RNG.normal(size=(k * d,))
    weights = {"x": x, "centers": layer.centers.numpy(), "kernel": layer.kernel.numpy(),
               "bias": layer.bias.numpy()}

    def loss_numpy(p):
        return netvlad_numpy(p["x"][0], p["centers"], p["kernel"], p["bias"]) @ proj

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * proj)
    grads = dict(zip(["x", "centers", "kernel", "bias"],
                     tape.gradient(loss, [xt, layer.centers, layer.kernel, layer.bias])))
    np.testing.assert_allclose(float(loss), loss_numpy(weights), rtol=1e-10)
    h = 1e-6
    for name, value in weights.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = {**weights, name: value.copy()}
            minus = {**weights, name: value.copy()}
            plus[name][idx] += h
            minus[name][idx] -= h
            numeric[idx] = (loss_numpy(plus) - loss_numpy(minus)) / (2 * h)
        np.testing.assert_allclose(np.asarray(grads[name]), numeric, rtol=1e-5, atol=1e-8,
                                   err_msg=name)
