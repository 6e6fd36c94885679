"""ActionFlowNet's flow loss (thesis Eq. 4.1, digest 4.1) and the multitask loss of Eq. 4.2 as a
compile-time combination, against NumPy transcriptions of the equations."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.losses import FlowEndPointError, flow_endpoint_error


# ------------------------------------------------------------------------------ NumPy reference ----
def np_block_target(y_true, h, w):
    """Average the valid vectors of every (H/h x W/w) block, loop by loop; validity = any valid."""
    *lead, big_h, big_w, _ = y_true.shape
    fh, fw = big_h // h, big_w // w
    out = np.zeros((*lead, h, w, 3))
    for idx in np.ndindex(*lead):
        for i in range(h):
            for j in range(w):
                block = y_true[idx][i * fh:(i + 1) * fh, j * fw:(j + 1) * fw].reshape(-1, 3)
                valid = block[block[:, 2] != 0]
                if len(valid):
                    out[idx][i, j, :2] = valid[:, :2].mean(axis=0)
                    out[idx][i, j, 2] = 1.0
    return out


def np_epe(y_true, y_pred, reduction="mean"):
    """Eq. 4.1: per sample, sum over (time and) pixels of ||o - ô||_2 over the valid pixels."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.shape[-3:-1] != y_pred.shape[-3:-1]:
        y_true = np_block_target(y_true, *y_pred.shape[-3:-1])
    result = []
    for b in range(y_pred.shape[0]):
        total, count = 0.0, 0
        for idx in np.ndindex(*y_pred.shape[1:-1]):
            if y_true[b][idx][2] != 0:
                d = y_pred[b][idx] - y_true[b][idx][:2]
                total += np.sqrt(d[0] ** 2 + d[1] ** 2)
                count += 1
        result.append(total if reduction == "sum" else (total / count if count else 0.0))
    return np.array(result)


def make_target(rng, shape, p_valid=0.6, nan_invalid=True):
    """``shape + (3,)``: random flow, random validity, NaN flow at the unknown vectors."""
    flow = rng.normal(scale=3.0, size=(*shape, 2))
    valid = (rng.random(shape) < p_valid).astype(np.float64)
    if nan_invalid:
        flow[valid == 0] = np.nan
    return np.concatenate([flow, valid[..., None]], axis=-1).astype(np.float32)


# ------------------------------------------------------------------------------------- values ----
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(3, 6, 5), (2, 3, 6, 5)], ids=["rank4", "rank5"])
def test_same_resolution_matches_numpy(reduction, shape):
    rng = np.random.default_rng(0)
    y_true = make_target(rng, shape)
    y_pred = rng.normal(scale=3.0, size=(*shape, 2)).astype(np.float32)
    got = flow_endpoint_error(y_true, y_pred, reduction_over_pixels=reduction).numpy()
    assert got.shape == (shape[0],)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_epe(y_true, y_pred, reduction), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape,pred_hw", [((2, 8, 12), (2, 3)), ((2, 3, 8, 12), (4, 6)),
                                           ((2, 3, 8, 12), (8, 3))], ids=["rank4", "rank5", "rank5_w_only"])
def test_coarser_prediction_uses_block_averaged_target(reduction, shape, pred_hw):
    rng = np.random.default_rng(1)
    y_true = make_target(rng, shape, p_valid=0.3)  # some blocks get no valid vector at all
    y_pred = rng.normal(size=(*shape[:-2], *pred_hw, 2)).astype(np.float32)
    got = flow_endpoint_error(y_true, y_pred, reduction_over_pixels=reduction).numpy()
    np.testing.assert_allclose(got, np_epe(y_true, y_pred, reduction), rtol=1e-5)


def test_block_average_hand_example():
    """One 2x2 block: vectors (1, 0) valid, (3, 4) valid, NaN invalid, NaN invalid -> target (2, 2),
    values not rescaled; prediction (2, 2) gives 0, prediction (5, 6) gives 5."""
    y_true = np.full((1, 2, 2, 3), np.nan, np.float32)
    y_true[0, 0, 0] = [1, 0, 1]
    y_true[0, 1, 1] = [3, 4, 1]
    y_true[0, 0, 1, 2] = 0
    y_true[0, 1, 0, 2] = 0
    assert flow_endpoint_error(y_true, np.full((1, 1, 1, 2), 2.0, np.float32)).numpy().tolist() == [0.0]
    np.testing.assert_allclose(flow_endpoint_error(y_true, np.array([[[[5.0, 6.0]]]], np.float32)), [5.0])


def test_no_valid_pixel_gives_zero_and_masks_and_sum_equal_mean_times_count():
    rng = np.random.default_rng(2)
    y_true = make_target(rng, (2, 2, 4, 4))
    y_true[1, ..., 2] = 0.0
    y_true[1, ..., :2] = np.nan
    y_pred = rng.normal(size=(2, 2, 4, 4, 2)).astype(np.float32)
    mean = flow_endpoint_error(y_true, y_pred).numpy()
    total = flow_endpoint_error(y_true, y_pred, "sum").numpy()
    assert mean[1] == 0.0 and total[1] == 0.0
    np.testing.assert_allclose(total[0], mean[0] * y_true[0, ..., 2].sum(), rtol=1e-5)
    # changing the prediction only where the target is unknown changes nothing
    y_pred2 = y_pred.copy()
    y_pred2[y_true[..., 2] == 0] += 100.0
    np.testing.assert_allclose(flow_endpoint_error(y_true, y_pred2).numpy(), mean)


def test_zero_error_is_exact_zero_with_finite_gradient():
    y_true = np.zeros((1, 2, 2, 3), np.float32)
    y_true[..., 2] = 1.0
    y_pred = tf.Variable(np.zeros((1, 2, 2, 2), np.float32))
    with tf.GradientTape() as tape:
        loss = flow_endpoint_error(y_true, y_pred)
    grad = tape.gradient(loss, y_pred).numpy()
    assert loss.numpy().tolist() == [0.0]
    assert np.all(np.isfinite(grad))


# ---------------------------------------------------------------------------------- gradients ----
@pytest.mark.parametrize("pred_hw", [(4, 6), (2, 3)], ids=["same", "coarser"])
def test_nan_in_unknown_vectors_gives_finite_gradient(pred_hw):
    rng = np.random.default_rng(3)
    y_true = make_target(rng, (2, 3, 4, 6))
    assert np.isnan(y_true).any()
    y_pred = tf.Variable(rng.normal(size=(2, 3, *pred_hw, 2)).astype(np.float32))
    for reduction in ("mean", "sum"):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(flow_endpoint_error(y_true, y_pred, reduction))
        grad = tape.gradient(loss, y_pred).numpy()
        assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad))
        if pred_hw == (4, 6):  # no gradient where the target is unknown
            assert np.all(grad[y_true[..., 2] == 0] == 0)


def test_gradient_of_mean_matches_finite_differences():
    rng = np.random.default_rng(4)
    y_true = make_target(rng, (2, 2, 4, 4)).astype(np.float64)
    y_pred = rng.normal(size=(2, 2, 2, 2, 2))  # coarser head: block-averaged target
    var = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(flow_endpoint_error(y_true, var))
    grad = tape.gradient(loss, var).numpy()
    eps = 1e-6
    for index in [(0, 1, 0, 1, 0), (1, 0, 1, 1, 1)]:
        plus, minus = y_pred.copy(), y_pred.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric = (np_epe(y_true, plus).mean() - np_epe(y_true, minus).mean()) / (2 * eps)
        np.testing.assert_allclose(grad[index], numeric, rtol=1e-5, atol=1e-9)
        assert abs(numeric) > 1e-3  # a non-trivial point


# ------------------------------------------------------------------------------------- errors ----
@pytest.mark.parametrize("true_shape,pred_shape", [
    ((1, 4, 4, 2), (1, 4, 4, 2)),        # no validity channel
    ((1, 4, 4, 3), (1, 4, 4, 3)),        # prediction with 3 channels
    ((1, 2, 4, 4, 3), (1, 4, 4, 2)),     # ranks differ
    ((1, 4, 4, 3), (1, 4, 2)),           # rank 3
    ((1, 5, 4, 3), (1, 2, 2, 2)),        # H not a multiple of h
    ((1, 4, 6, 3), (1, 2, 4, 2)),        # W not a multiple of w
    ((1, 2, 4, 4, 3), (1, 3, 4, 4, 2)),  # time axes differ
])
def test_bad_shapes_raise(true_shape, pred_shape):
    with pytest.raises(ValueError, match="y_true|y_pred|multiple"):
        flow_endpoint_error(np.zeros(true_shape, np.float32), np.zeros(pred_shape, np.float32))


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match="reduction_over_pixels"):
        FlowEndPointError(reduction_over_pixels="max")
    with pytest.raises(ValueError, match="reduction_over_pixels"):
        flow_endpoint_error(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 2)), "median")


def test_unknown_sizes_in_tf_function():
    rng = np.random.default_rng(5)
    y_true = make_target(rng, (2, 2, 8, 6))
    y_pred = rng.normal(size=(2, 2, 4, 3, 2)).astype(np.float32)
    spec = [tf.TensorSpec([None, None, None, None, 3]), tf.TensorSpec([None, None, None, None, 2])]
    fn = tf.function(lambda t, p: flow_endpoint_error(t, p), input_signature=spec)
    np.testing.assert_allclose(fn(y_true, y_pred).numpy(), np_epe(y_true, y_pred), rtol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple"):
        fn(y_true[:, :, :7], y_pred)


# ---------------------------------------------------------------------------------- the class ----
def test_loss_class_reduces_over_batch_and_round_trips():
    rng = np.random.default_rng(6)
    y_true = make_target(rng, (3, 2, 4, 4))
    y_pred = rng.normal(size=(3, 2, 4, 4, 2)).astype(np.float32)
    loss = FlowEndPointError()
    assert loss.name == "flow_epe"
    np.testing.assert_allclose(float(loss(y_true, y_pred)), np_epe(y_true, y_pred).mean(), rtol=1e-5)
    summed = FlowEndPointError("sum", reduction="sum")
    np.testing.assert_allclose(float(summed(y_true, y_pred)), np_epe(y_true, y_pred, "sum").sum(), rtol=1e-5)
    config = json.loads(json.dumps(keras.losses.serialize(summed)))
    again = keras.losses.deserialize(config)
    assert isinstance(again, FlowEndPointError)
    assert again.get_config() == summed.get_config()
    assert again.reduction_over_pixels == "sum"


# ------------------------------------------------------------------------ Eq. 4.2, multitask ----
def tiny_two_head_model(num_classes=3):
    frames = keras.Input((2, 4, 4, 3), name="frames")
    flow = keras.layers.Conv3D(2, 1, name="flow")(frames)
    pooled = keras.layers.GlobalAveragePooling3D()(frames)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(frames, {"logits": logits, "flow": flow})


def test_multitask_compile_computes_ce_plus_lambda_epe():
    rng = np.random.default_rng(7)
    lam = 0.3
    model = tiny_two_head_model()
    model.compile(loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        "flow": FlowEndPointError()},
                  loss_weights={"logits": 1.0, "flow": lam})
    x = rng.normal(size=(4, 2, 4, 4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    flow_true = make_target(rng, (4, 2, 4, 4))
    result = model.evaluate(x, {"logits": labels, "flow": flow_true}, batch_size=4, verbose=0,
                            return_dict=True)
    pred = model.predict(x, verbose=0)
    logits = pred["logits"].astype(np.float64)
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    ce = -log_softmax[np.arange(4), labels].mean()
    epe = np_epe(flow_true, pred["flow"]).mean()
    assert np.isfinite(result["loss"])
    np.testing.assert_allclose(result["loss"], ce + lam * epe, rtol=1e-5)
