"""Keras metrics of the dense (voxel-wise) tasks of V2V (seed 000, Sec. 4-6).

Same floor as :mod:`tfvideo.losses` (imports ops and base only). Every metric honours Keras'
``sample_weight`` of shape ``(B, T, H, W)`` (``dense_dataset`` gives weight 0 where the target is
unknown): each voxel counts with its weight, weight-0 voxels not at all. Pass them to
``compile(weighted_metrics=[...])`` so Keras forwards the weights. All are registered serialisable
and accumulate in variables summed across replicas.

* :class:`VoxelAccuracy`: weighted fraction of voxels whose arg-max class is the label (Sec. 4,
  Table 1 "Acc").
* :class:`MeanIoU`: mean intersection-over-union over classes from a weighted confusion matrix.
* :class:`EndPointError`: weighted mean Euclidean distance of flow vectors, in pixels (Sec. 5).
* :class:`AverageDistanceError`: ADE of Sec. 6, the weighted mean Euclidean distance of ``(r, g, b)``
  in ``[0, 1]``.

Ng's thesis, chapter 3 (NumPy, for evaluation scripts): :func:`hit_at_k` and :func:`video_hit_at_k`, Hit@k
of clips and of videos (clip scores averaged per video first), digest 3.7.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

__all__ = ["VoxelAccuracy", "MeanIoU", "EndPointError", "AverageDistanceError", "hit_at_k", "video_hit_at_k"]


def _weights(sample_weight, like):
    """``sample_weight`` as float32 broadcast to ``like``'s shape (ones when None)."""
    if sample_weight is None:
        return tf.ones_like(like, tf.float32)
    w = tf.cast(tf.convert_to_tensor(sample_weight), tf.float32)
    if w.shape.rank is not None and like.shape.rank is not None and w.shape.rank == like.shape.rank + 1 \
            and w.shape[-1] == 1:
        w = w[..., 0]
    return tf.broadcast_to(w, tf.shape(like))


def _labels(y_true, ignore_label):
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == 5 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape.rank is not None and y_true.shape.rank != 4:
        raise ValueError(f"`y_true` must be labels (batch, T, H, W); got shape {y_true.shape}")
    labels = tf.cast(tf.round(tf.cast(y_true, tf.float32)), tf.int32)
    known = tf.ones_like(labels, tf.bool) if ignore_label is None else tf.not_equal(labels, ignore_label)
    return labels, known


def _logits(y_pred):
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank is not None and y_pred.shape.rank != 5:
        raise ValueError(f"`y_pred` must be scores (batch, T, H, W, K); got shape {y_pred.shape}")
    return y_pred


def _check_ignore_label(ignore_label):
    if ignore_label is not None and (isinstance(ignore_label, bool) or not isinstance(ignore_label, int)):
        raise ValueError(f"`ignore_label` must be None or an int label; got {ignore_label!r}")
    return ignore_label


class _WeightedMean(keras.metrics.Metric):
    """Sum of weighted per-voxel values / sum of weights (0 when no weight)."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def _accumulate(self, values, weights):
        self.total.assign_add(tf.reduce_sum(values * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="tfvideo")
class VoxelAccuracy(_WeightedMean):
    """Weighted voxel accuracy: ``sum w [argmax y_pred == y_true] / sum w`` (V2V Sec. 4, Table 1).

    ``y_true`` labels ``(B, T, H, W)``; ``y_pred`` scores or logits ``(B, T, H, W, K)``. Voxels whose
    label is ``ignore_label`` (if given) count with weight 0, like weight-0 voxels.
    """

    def __init__(self, ignore_label=None, name="voxel_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_label = _check_ignore_label(ignore_label)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, known = _labels(y_true, self.ignore_label)
        predicted = tf.argmax(_logits(y_pred), axis=-1, output_type=tf.int32)
        weights = _weights(sample_weight, labels) * tf.cast(known, tf.float32)
        self._accumulate(tf.cast(tf.equal(predicted, labels), tf.float32), weights)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="tfvideo")
class MeanIoU(keras.metrics.Metric):
    """Mean IoU over ``num_classes`` classes from a confusion matrix accumulated with the weights.

    ``C[i, j]`` = sum of the weights of the voxels labelled ``i`` and predicted ``j`` (arg-max of
    ``y_pred``); ``IoU_k = C[k, k] / (sum_j C[k, j] + sum_i C[i, k] - C[k, k])``. Weight-0 voxels
    (and labels equal to ``ignore_label``) add nothing. Classes absent from both the truth and the
    predictions (denominator 0) are left out of the mean: their IoU is undefined, and counting them as
    0 or 1 would make the metric depend on which classes a batch happens to contain (our choice, the
    same as ``keras.metrics.MeanIoU``). :meth:`per_class` gives every class's IoU (NaN when absent).
    Labels outside ``[0, num_classes)`` are an error (``InvalidArgumentError``).
    """

    def __init__(self, num_classes, ignore_label=None, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2; got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_label = _check_ignore_label(ignore_label)
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           dtype="float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, known = _labels(y_true, self.ignore_label)
        y_pred = _logits(y_pred)
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != self.num_classes:
            raise ValueError(f"`y_pred` has {y_pred.shape[-1]} class scores, MeanIoU counts "
                             f"{self.num_classes} classes")
        predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        weights = _weights(sample_weight, labels) * tf.cast(known, tf.float32)
        labels = tf.where(known, labels, 0)
        flat = lambda t: tf.reshape(t, [-1])  # noqa: E731
        self.confusion.assign_add(tf.math.confusion_matrix(
            flat(labels), flat(predicted), num_classes=self.num_classes, weights=flat(weights),
            dtype=tf.float32))

    def per_class(self):
        """IoU of every class, ``(num_classes,)``, NaN for a class absent from truth and prediction."""
        c = tf.convert_to_tensor(self.confusion)
        tp = tf.linalg.diag_part(c)
        union = tf.reduce_sum(c, 0) + tf.reduce_sum(c, 1) - tp
        return tf.where(union > 0, tp / tf.where(union > 0, union, 1.0), float("nan"))

    def result(self):
        c = tf.convert_to_tensor(self.confusion)
        tp = tf.linalg.diag_part(c)
        union = tf.reduce_sum(c, 0) + tf.reduce_sum(c, 1) - tp
        present = union > 0
        iou = tf.math.divide_no_nan(tp, union)
        return tf.math.divide_no_nan(tf.reduce_sum(tf.where(present, iou, 0.0)),
                                     tf.reduce_sum(tf.cast(present, tf.float32)))

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "ignore_label": self.ignore_label}


def _vectors(y_true, y_pred, channels, what):
    y_pred = tf.cast(tf.convert_to_tensor(y_pred), tf.float32)
    y_true = tf.cast(tf.convert_to_tensor(y_true), tf.float32)
    for arg, x in (("y_true", y_true), ("y_pred", y_pred)):
        if x.shape.rank is not None and (x.shape.rank != 5 or x.shape[-1] not in (None, channels)):
            raise ValueError(f"`{arg}` must be {what} (batch, T, H, W, {channels}); got shape {x.shape}")
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="tfvideo")
class EndPointError(_WeightedMean):
    """Weighted mean end-point error ``||flow_pred - flow_true||_2`` in pixels (V2V Sec. 5, Table 2).

    ``y_true``, ``y_pred``: ``(B, T, H, W, 2)`` flow in pixels (the flow model's output is in pixels:
    :class:`tfvideo.layers.v2v.AlphaScale`). Non-finite target vectors count with weight 0.
    """

    def __init__(self, name="end_point_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _vectors(y_true, y_pred, 2, "flow")
        finite = tf.reduce_all(tf.math.is_finite(y_true), axis=-1)
        y_true = tf.where(finite[..., None], y_true, 0.0)
        err = tf.norm(y_pred - y_true, axis=-1)
        self._accumulate(err, _weights(sample_weight, err) * tf.cast(finite, tf.float32))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="tfvideo")
class AverageDistanceError(_WeightedMean):
    """ADE of V2V Sec. 6: weighted mean Euclidean distance between predicted and true ``(r, g, b)``,
    each in ``[0, 1]``.

    ``y_pred``: RGB ``(B, T, H, W, 3)`` in ``[0, 1]`` (the colouring model's output); ``y_true``: RGB
    in ``[0, target_max]``, divided by ``target_max`` (255 by default: the uint8 labels of
    ``dense_dataset(target="colour")``; 1.0 for float targets in [0, 1]), as in
    :class:`tfvideo.losses.ColourL2Loss`. The predictions are used as given (the model clips them to
    [0, 1] at inference).
    """

    def __init__(self, target_max=255.0, name="average_distance_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(target_max, bool) or not isinstance(target_max, (int, float)) or not target_max > 0:
            raise ValueError(f"`target_max` must be a positive number; got {target_max!r}")
        self.target_max = float(target_max)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _vectors(y_true, y_pred, 3, "RGB")
        dist = tf.norm(y_pred - y_true / self.target_max, axis=-1)
        self._accumulate(dist, _weights(sample_weight, dist))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "target_max": self.target_max}


# ------------------------------------------------ Hit@k (Ng's thesis, chapter 3; Karpathy et al.) ----
def _check_k(k, num_classes):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive int; got {k!r}")
    if k > num_classes:
        raise ValueError(f"`k` = {k} exceeds the number of classes {num_classes}")
    return int(k)


def _check_scores(scores, name):
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"`{name}` must be (N, C) with N, C > 0; got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"`{name}` contain NaN or inf")
    return scores


def _check_labels(labels, n, c, name):
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if len(labels) != n:
            raise ValueError(f"`{name}` must have {n} entries; got {len(labels)}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= c:
            raise ValueError(f"`{name}` must be integer class indices in [0, {c}); got {labels.dtype} "
                             f"in [{labels.min()}, {labels.max()}]")
        return labels
    if labels.ndim == 2 and labels.shape == (n, c):
        if not (labels.dtype == bool or np.all((labels == 0) | (labels == 1))):
            raise ValueError(f"multi-label `{name}` must be (N, C) of 0/1 or bool")
        return labels.astype(bool)
    raise ValueError(f"`{name}` must be (N,) class indices or (N, C) = ({n}, {c}) multi-hot; got "
                     f"shape {labels.shape}")


def hit_at_k(scores, labels, k):
    """Hit@k (digest 3.7): the fraction of samples with at least one true label among the top k.

    Following Karpathy et al. [45]. Ties (the thesis is silent) go to the lower class index, as in
    ``tf.math.top_k`` and :func:`tfvideo.evaluation.classification_metrics`: the top-k set is the
    first k classes of a stable sort of decreasing scores.

    Args:
      scores: ``(N, C)`` finite class scores (logits or probabilities: only the order counts).
      labels: ``(N,)`` integer labels, or ``(N, C)`` multi-hot (bool / 0-1) for multi-label samples
        (about 5% of Sports-1M videos have several labels, digest 3.7).
      k: 1 <= k <= C.

    Returns:
      float in [0, 1].

    >>> hit_at_k(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), np.array([2, 0]), k=1)
    0.5
    """
    scores = _check_scores(scores, "scores")
    n, c = scores.shape
    k = _check_k(k, c)
    labels = _check_labels(labels, n, c, "labels")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    if labels.ndim == 1:
        hits = np.any(top == labels[:, None], axis=1)
    else:
        hits = np.any(np.take_along_axis(labels, top, axis=1), axis=1)
    return float(np.mean(hits))


def video_hit_at_k(clip_scores, clip_video_ids, video_labels, k):
    """Video Hit@k (digest 3.7): Hit@k of the clip scores averaged per video.

    The thesis averages the predictions of all clips of a video (digest 3.5: 240 sampled clips per
    Sports-1M video; digest 3.7: "Video Hit@k averages predictions over multiple clips"). We take the
    arithmetic mean of whatever ``clip_scores`` hold; pass softmax probabilities to average
    predictions as the thesis does (averaging logits ranks differently). Every video with at least one
    clip counts once.

    Args:
      clip_scores: ``(N, C)`` scores of N clips.
      clip_video_ids: ``(N,)`` video id of each clip (ints, strings or bytes).
      video_labels: ``{video_id: label}`` (a label is a class index or a ``(C,)`` multi-hot vector),
        or an array indexed by integer video ids (``(V,)`` labels or ``(V, C)`` multi-hot).
      k: 1 <= k <= C.

    Returns:
      float in [0, 1].

    >>> scores = np.array([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7]])
    >>> video_hit_at_k(scores, [7, 7, 8], {7: 1, 8: 1}, k=1)   # video 7: mean [0.35, 0.65]
    1.0
    """
    scores = _check_scores(clip_scores, "clip_scores")
    ids = np.asarray(clip_video_ids).reshape(-1)
    if len(ids) != len(scores):
        raise ValueError(f"`clip_video_ids` must have one id per clip ({len(scores)}); got {len(ids)}")
    videos, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(videos), scores.shape[1]))
    np.add.at(sums, inverse, scores)
    means = sums / np.bincount(inverse)[:, None]
    if isinstance(video_labels, Mapping):
        try:
            labels = [video_labels[v] for v in videos.tolist()]
        except KeyError as e:
            raise ValueError(f"`video_labels` has no label for video {e.args[0]!r}") from None
        labels = np.stack([np.asarray(x) for x in labels])
    else:
        table = np.asarray(video_labels)
        if not np.issubdtype(videos.dtype, np.integer):
            raise ValueError("`video_labels` must be a {video_id: label} mapping unless the video ids "
                             f"are integers; got ids of dtype {videos.dtype}")
        if videos.min() < 0 or videos.max() >= len(table):
            raise ValueError(f"video ids must index `video_labels` (length {len(table)}); got ids in "
                             f"[{videos.min()}, {videos.max()}]")
        labels = table[videos]
    return hit_at_k(means, labels, k)
