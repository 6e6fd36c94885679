"""Gain g, the gain-weighted per-frame loss and Hit@k of Ng's thesis, ch. 3 (digest 3.4, 3.5, 3.7),
against NumPy and hand-made cases."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.losses import GainWeightedCrossEntropy, gain_weighted_cross_entropy, linear_gain
from tfvideo.metrics import hit_at_k, video_hit_at_k

RNG = np.random.default_rng(31)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def numpy_loss(labels, logits):
    """Per video: sum_t g_t CE_t / sum_t g_t with g_t = t / (T - 1) (g = 1 for T = 1)."""
    b, t, _ = logits.shape
    g = np.arange(t) / (t - 1) if t > 1 else np.ones(1)
    ce = -log_softmax(logits)[np.arange(b)[:, None], np.arange(t)[None], labels[:, None]]
    return (ce * g).sum(1) / g.sum()


# ---------------------------------------------------------------------------------- linear_gain ----
def test_linear_gain_values():
    np.testing.assert_array_equal(linear_gain(1), [1.0])
    np.testing.assert_array_equal(linear_gain(2), [0.0, 1.0])
    np.testing.assert_allclose(linear_gain(5), [0.0, 0.25, 0.5, 0.75, 1.0])
    assert linear_gain(5).dtype == tf.float32
    assert linear_gain(np.int64(3), dtype="float64").dtype == tf.float64


def test_linear_gain_of_a_tensor_length():
    f = tf.function(lambda n: linear_gain(n), input_signature=[tf.TensorSpec((), tf.int32)])
    for t in (1, 2, 5, 30):
        expected = np.arange(t) / (t - 1) if t > 1 else np.ones(1)
        np.testing.assert_allclose(f(tf.constant(t)), expected, rtol=1e-6)
    g = tf.function(lambda x: linear_gain(tf.shape(x)[1]),
                    input_signature=[tf.TensorSpec((None, None, 3))])
    np.testing.assert_allclose(g(tf.zeros((2, 3, 3))), [0.0, 0.5, 1.0])


def test_linear_gain_arguments_are_validated():
    with pytest.raises(ValueError, match="num_frames"):
        linear_gain(0)
    with pytest.raises(TypeError, match="num_frames"):
        linear_gain(True)
    with pytest.raises(TypeError, match="num_frames"):
        linear_gain(3.0)
    with pytest.raises(ValueError, match="num_frames"):
        linear_gain(tf.constant([3]))


# ------------------------------------------------------------------------ GainWeightedCrossEntropy ----
@pytest.mark.parametrize("t", [1, 2, 5])
def test_loss_against_numpy(t):
    logits = RNG.normal(0, 2.0, (3, t, 6))
    labels = np.array([0, 5, 2])
    expected = numpy_loss(labels, logits)
    np.testing.assert_allclose(gain_weighted_cross_entropy(labels, logits), expected, rtol=1e-12)
    loss = GainWeightedCrossEntropy()
    np.testing.assert_allclose(loss(labels, logits.astype(np.float32)), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss(labels[:, None], logits.astype(np.float32)), expected.mean(),
                               rtol=1e-5)  # (B, 1) labels
    # probabilities instead of logits
    probs = np.exp(log_softmax(logits))
    np.testing.assert_allclose(GainWeightedCrossEntropy(from_logits=False)(labels, probs.astype(np.float32)),
                               expected.mean(), rtol=1e-5)
    # sample weights weigh videos; reduction="none" gives one value per video
    weights = np.array([1.0, 0.0, 2.0])
    np.testing.assert_allclose(loss(labels, logits.astype(np.float32), sample_weight=weights),
                               (expected * weights).sum() / 3, rtol=1e-5)
    np.testing.assert_allclose(GainWeightedCrossEntropy(reduction="none")(labels, logits), expected,
                               rtol=1e-6)


def test_loss_first_frame_has_weight_zero():
    logits = RNG.normal(size=(2, 4, 3))
    labels = np.array([2, 1])
    changed = logits.copy()
    changed[:, 0] = RNG.normal(0, 10.0, (2, 3))
    np.testing.assert_allclose(gain_weighted_cross_entropy(labels, changed),
                               gain_weighted_cross_entropy(labels, logits), rtol=1e-12)
    # ... and the last frame has the largest weight: T = 3, g = (0, 0.5, 1), normalised by 1.5
    ce = np.array([[1.0, 2.0, 4.0]])
    # two classes, logits (0, log(e^ce - 1)): the CE of label 0 is log(1 + e^ce - 1) = ce
    logits = np.stack([np.zeros_like(ce), np.log(np.exp(ce) - 1.0)], -1)
    np.testing.assert_allclose(gain_weighted_cross_entropy(np.array([0]), logits), [(0.5 * 2 + 4) / 1.5],
                               rtol=1e-12)


def test_loss_uniform_prediction_is_log_c_for_any_length():
    for t in (1, 3, 30):
        np.testing.assert_allclose(GainWeightedCrossEntropy()(np.array([1, 4]), np.zeros((2, t, 5))),
                                   np.log(5), rtol=1e-6)


def test_loss_per_frame_labels():
    logits = RNG.normal(size=(2, 3, 4))
    frame_labels = np.array([[0, 1, 2], [3, 3, 0]])
    g = np.array([0.0, 0.5, 1.0])
    ce = -log_softmax(logits)[np.arange(2)[:, None], np.arange(3)[None], frame_labels]
    np.testing.assert_allclose(gain_weighted_cross_entropy(frame_labels, logits), (ce * g).sum(1) / 1.5,
                               rtol=1e-12)


def test_loss_with_unknown_length_in_tf_function():
    loss = GainWeightedCrossEntropy()
    f = tf.function(loss, input_signature=[tf.TensorSpec((None,), tf.int32),
                                           tf.TensorSpec((None, None, 4))])
    for t in (2, 7):
        logits = RNG.normal(size=(3, t, 4))
        labels = np.array([0, 1, 3])
        np.testing.assert_allclose(f(labels, logits.astype(np.float32)),
                                   numpy_loss(labels, logits).mean(), rtol=1e-5)


def test_loss_serialisation_and_arguments():
    loss = GainWeightedCrossEntropy(from_logits=False, name="g")
    config = json.loads(json.dumps(keras.losses.serialize(loss)))
    again = keras.losses.deserialize(config)
    assert type(again) is GainWeightedCrossEntropy
    assert again.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="from_logits"):
        GainWeightedCrossEntropy(from_logits=1)
    with pytest.raises(ValueError, match="y_pred"):
        gain_weighted_cross_entropy(np.array([0]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="y_true"):
        gain_weighted_cross_entropy(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))


# ----------------------------------------------------------------------------------------- Hit@k ----
def test_hit_at_k_hand_made():
    scores = np.array([[0.1, 0.6, 0.3],    # order 1, 2, 0
                       [0.5, 0.2, 0.3],    # order 0, 2, 1
                       [0.2, 0.3, 0.5],    # order 2, 1, 0
                       [0.4, 0.4, 0.2]])   # tie: 0 before 1 (lower index first), then 2
    labels = np.array([2, 0, 0, 1])
    assert hit_at_k(scores, labels, 1) == 0.25          # only row 1
    assert hit_at_k(scores, labels, 2) == 0.75          # rows 0, 1, 3
    assert hit_at_k(scores, labels, 3) == 1.0
    assert hit_at_k(scores, np.array([1, 0, 2, 1]), 1) == 0.75   # row 3: the tie goes to class 0


def test_hit_at_k_multi_label():
    scores = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    multi = np.array([[1, 0, 1], [0, 1, 0]], bool)     # row 0 has labels {0, 2}
    assert hit_at_k(scores, multi, 1) == 0.0
    assert hit_at_k(scores, multi, 2) == 0.5             # row 0: class 2 is second
    assert hit_at_k(scores, multi.astype(int), 3) == 1.0


def test_video_hit_at_k_averages_clips_first():
    # video "a": clips vote 0, 0, but clip 3 is very sure of 1 -> mean [0.4, 0.6]: class 1
    clip_scores = np.array([[0.6, 0.4], [0.55, 0.45], [0.05, 0.95], [0.9, 0.1]])
    ids = np.array(["a", "a", "a", "b"])
    assert video_hit_at_k(clip_scores, ids, {"a": 1, "b": 0}, 1) == 1.0
    assert hit_at_k(clip_scores, np.array([1, 1, 1, 0]), 1) == 0.5   # clip Hit@1 differs
    assert video_hit_at_k(clip_scores, ids, {"a": 0, "b": 0}, 1) == 0.5
    # integer ids indexing an array of labels; videos without clips do not count
    assert video_hit_at_k(clip_scores, [2, 2, 2, 0], np.array([0, 1, 0]), 1) == 0.5
    assert video_hit_at_k(clip_scores, [2, 2, 2, 0], np.array([0, 1, 1]), 1) == 1.0
    # multi-hot labels in a mapping
    assert video_hit_at_k(clip_scores, ids, {"a": np.array([1, 1]), "b": np.array([0, 1])}, 1) == 0.5


def test_hit_at_k_arguments_are_validated():
    scores = np.zeros((2, 3))
    with pytest.raises(ValueError, match="`k`"):
        hit_at_k(scores, [0, 1], 0)
    with pytest.raises(ValueError, match="`k`"):
        hit_at_k(scores, [0, 1], 4)
    with pytest.raises(ValueError, match="labels"):
        hit_at_k(scores, [0, 3], 1)
    with pytest.raises(ValueError, match="labels"):
        hit_at_k(scores, [0], 1)
    with pytest.raises(ValueError, match="scores"):
        hit_at_k(np.array([[np.nan, 0.0]]), [0], 1)
    with pytest.raises(ValueError, match="video_labels"):
        video_hit_at_k(scores, ["a", "b"], {"a": 0}, 1)
    with pytest.raises(ValueError, match="clip_video_ids"):
        video_hit_at_k(scores, ["a"], {"a": 0}, 1)
