"""tfvideo/metrics.py against NumPy transcriptions (V2V Sec. 4-6), with per-voxel sample weights."""

import keras
import numpy as np
import pytest

from tfvideo.metrics import AverageDistanceError, EndPointError, MeanIoU, VoxelAccuracy

RNG = np.random.default_rng(0)
SHAPE = (2, 3, 4, 5)  # (B, T, H, W)


def np_confusion(labels, predicted, weights, k):
    c = np.zeros((k, k))
    np.add.at(c, (labels.ravel(), predicted.ravel()), weights.ravel())
    return c


def np_mean_iou(c):
    tp = np.diag(c)
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean()


def test_voxel_accuracy_weighted_and_accumulated():
    metric = VoxelAccuracy()
    num = den = 0.0
    for _ in range(2):
        logits = RNG.normal(size=(*SHAPE, 4)).astype("float32")
        labels = RNG.integers(0, 4, SHAPE)
        weights = RNG.random(SHAPE).astype("float32") * (RNG.random(SHAPE) > 0.3)
        metric.update_state(labels, logits, sample_weight=weights)
        num += (weights * (logits.argmax(-1) == labels)).sum()
        den += weights.sum()
    np.testing.assert_allclose(float(metric.result()), num / den, rtol=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    # ignore_label on raw labels == weight 0
    raw = np.where(RNG.random(SHAPE) > 0.5, labels, 255)
    ignoring = VoxelAccuracy(ignore_label=255)
    ignoring.update_state(raw, logits)
    known = raw != 255
    np.testing.assert_allclose(float(ignoring.result()),
                               (logits.argmax(-1) == raw)[known].mean(), rtol=1e-6)


def test_mean_iou_confusion_matrix_excludes_absent_classes():
    k = 5
    logits = RNG.normal(size=(*SHAPE, k)).astype("float32")
    logits[..., 4] -= 100.0  # class 4 is never predicted ...
    labels = RNG.integers(0, 4, SHAPE)  # ... nor labelled: absent, out of the mean
    weights = (RNG.random(SHAPE) > 0.3).astype("float32")
    metric = MeanIoU(k)
    metric.update_state(labels, logits, sample_weight=weights)
    c = np_confusion(labels, logits.argmax(-1), weights, k)
    np.testing.assert_allclose(metric.confusion.numpy(), c)
    np.testing.assert_allclose(float(metric.result()), np_mean_iou(c), rtol=1e-6)
    assert np.isnan(metric.per_class().numpy()[4])
    # counting class 4 as IoU 0 would give a different (lower) value: the exclusion matters
    assert float(metric.result()) > np_mean_iou(c) * 4 / 5 + 1e-6
    # weight-0 voxels add nothing: changing their labels does not change the result
    moved = np.where(weights > 0, labels, (labels + 1) % 4)
    again = MeanIoU(k)
    again.update_state(moved, logits, sample_weight=weights)
    np.testing.assert_allclose(float(again.result()), float(metric.result()), rtol=1e-6)
    with pytest.raises(ValueError, match="num_classes"):
        MeanIoU(1)
    with pytest.raises(ValueError, match="class scores"):
        MeanIoU(3).update_state(labels, logits)


def test_end_point_error_and_average_distance_error():
    flow_true = RNG.normal(0, 5, (*SHAPE, 2))
    flow_pred = flow_true + RNG.normal(0, 1, flow_true.shape)
    weights = (RNG.random(SHAPE) > 0.4).astype("float32")
    epe = EndPointError()
    epe.update_state(flow_true, flow_pred, sample_weight=weights)
    err = np.sqrt(((flow_pred - flow_true) ** 2).sum(-1))
    np.testing.assert_allclose(float(epe.result()), (err * weights).sum() / weights.sum(), rtol=1e-5)

    rgb = RNG.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    pred = RNG.random((*SHAPE, 3)).astype("float32")
    ade = AverageDistanceError()
    ade.update_state(rgb, pred)
    dist = np.sqrt(((pred - rgb / 255.0) ** 2).sum(-1))  # (r, g, b) in [0, 1]
    np.testing.assert_allclose(float(ade.result()), dist.mean(), rtol=1e-5)
    floats = AverageDistanceError(target_max=1.0)
    floats.update_state(rgb / 255.0, pred, sample_weight=weights)
    np.testing.assert_allclose(float(floats.result()), (dist * weights).sum() / weights.sum(),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="y_pred"):
        epe.update_state(flow_true, flow_pred[..., :1])


def test_metrics_in_evaluate_receive_the_sample_weights_and_serialise():
    """Through ``compile(weighted_metrics=...)`` and ``evaluate`` on an identity model."""
    k = 4
    logits = RNG.normal(size=(*SHAPE, k)).astype("float32")
    labels = RNG.integers(0, k, SHAPE).astype("int32")
    weights = (RNG.random(SHAPE) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input(SHAPE[1:] + (k,)), keras.layers.Identity()])
    model.compile(loss="sparse_categorical_crossentropy",
                  weighted_metrics=[VoxelAccuracy(), MeanIoU(k)])
    logs = model.evaluate(logits, labels, sample_weight=weights, batch_size=1, verbose=0,
                          return_dict=True)
    predicted = logits.argmax(-1)
    np.testing.assert_allclose(logs["voxel_accuracy"],
                               (weights * (predicted == labels)).sum() / weights.sum(), rtol=1e-5)
    np.testing.assert_allclose(logs["mean_iou"],
                               np_mean_iou(np_confusion(labels, predicted, weights, k)), rtol=1e-5)
    for metric in (VoxelAccuracy(ignore_label=255), MeanIoU(7, name="iou"), EndPointError(),
                   AverageDistanceError(target_max=1.0)):
        clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(clone) is type(metric) and clone.get_config() == metric.get_config()
