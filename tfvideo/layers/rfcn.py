"""Layers of the R-FCN detector of Deep Feature Flow (seed 003, Sec. 4 "Object Detection").

Parameter-free steps between the 1x1 convolutions of N_task (:mod:`tfvideo.models.rfcn`) and the
detections, each a thin Keras wrapper over :mod:`tfvideo.ops.boxes` / :mod:`tfvideo.ops.psroi`, batched
over images:

* :class:`ChannelSlice`: the first / second 512-d half of the 1024-d features (Sec. 4: the RPN branch
  on the first half, the R-FCN branch on the second; the DFF code's ``SliceChannel``);
* :class:`RPNProposals`: the RPN's proposal layer (anchors, decoding, clipping, NMS 0.7, 300 per image);
* :class:`PSRoIVote`: position-sensitive RoI pooling then the average vote over the k x k bins;
* :class:`DetectionOutput`: softmax, class-agnostic box decoding, clipping, per-class NMS 0.3 and the
  300 best detections of an image, packed in one tensor ``(B, max_detections, 6)``.

Boxes are ``(x1, y1, x2, y2)`` with inclusive corners in pixels of the network's input frame (the +1
convention of :mod:`tfvideo.ops.boxes`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfvideo.ops import boxes as box_ops
from tfvideo.ops.psroi import ps_vote, psroi_pool

__all__ = ["ChannelSlice", "RPNProposals", "PSRoIVote", "DetectionOutput", "DETECTION_FIELDS"]

#: The columns of :class:`DetectionOutput`'s tensor.
DETECTION_FIELDS = ("x1", "y1", "x2", "y2", "score", "class")


def _positive_int(value, arg, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{arg}` must be an int >= {minimum}; got {value!r}")
    return int(value)


def _fraction(value, arg):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{arg}` must be a number in [0, 1]; got {value!r}")
    return float(value)


def _numbers(values, arg, count=None):
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"`{arg}` must be a sequence of numbers; got {values!r}") from None
    if not out or any(not np.isfinite(v) or v <= 0 for v in out) or (count and len(out) != count):
        what = f"{count} numbers > 0" if count else "a non-empty sequence of numbers > 0"
        raise ValueError(f"`{arg}` must be {what}; got {values!r}")
    return out


@keras.saving.register_keras_serializable(package="tfvideo")
class ChannelSlice(keras.layers.Layer):
    """``x[..., start:stop]``: a block of channels (DFF: ``start, stop = 0, 512`` for the RPN branch and
    ``512, 1024`` for the R-FCN branch, Sec. 4)."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start = _positive_int(start, "start", 0)
        self.stop = _positive_int(stop, "stop", self.start + 1)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] < self.stop:
            raise ValueError(f"ChannelSlice({self.start}, {self.stop}) needs at least {self.stop} channels; "
                             f"got input shape {tuple(input_shape)}")

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="tfvideo")
class RPNProposals(keras.layers.Layer):
    """``[rpn_cls (B, h, w, 2A), rpn_bbox (B, h, w, 4A), frames (B, H, W, C)]`` -> RoIs ``(B, N, 4)``.

    :func:`tfvideo.ops.boxes.proposals` on each image: anchors of ``scales`` x ``ratios`` at every
    ``feature_stride`` pixels (Sec. 4: n_a = 9, 3 scales x 3 aspect ratios), the RPN's deltas decoded
    with ``stds`` (DFF's ``NORMALIZE_RPN``), clipped to the frame (``frames`` gives only its size),
    ``pre_nms_top_n`` best, NMS at ``nms_threshold`` (0.7), ``N = post_nms_top_n`` (300) kept. Fewer
    survivors are repeated cyclically to ``N`` rows, as the test-time ``MultiProposal`` op of the DFF
    code does (repeats are suppressed again by the detections' NMS, and OHEM sees them as the reference
    does). ``rpn_cls``'s channels are ``[:A]`` background and ``[A:]`` foreground logits (the
    reference's order). The proposal step is not differentiable (its inputs go through
    ``stop_gradient``), as in the reference."""

    def __init__(self, feature_stride=16, scales=(8, 16, 32), ratios=(0.5, 1, 2), pre_nms_top_n=6000,
                 post_nms_top_n=300, nms_threshold=0.7, min_size=0.0, stds=box_ops.ANCHOR_STDS, **kwargs):
        super().__init__(**kwargs)
        self.feature_stride = _positive_int(feature_stride, "feature_stride")
        self.scales = _numbers(scales, "scales")
        self.ratios = _numbers(ratios, "ratios")
        self.pre_nms_top_n = _positive_int(pre_nms_top_n, "pre_nms_top_n")
        self.post_nms_top_n = _positive_int(post_nms_top_n, "post_nms_top_n")
        self.nms_threshold = _fraction(nms_threshold, "nms_threshold")
        if isinstance(min_size, bool) or not isinstance(min_size, (int, float)) or min_size < 0:
            raise ValueError(f"`min_size` must be a number >= 0; got {min_size!r}")
        self.min_size = float(min_size)
        self.stds = _numbers(stds, "stds", 4)

    @property
    def num_anchors(self):
        return len(self.scales) * len(self.ratios)

    def build(self, input_shape):
        cls, bbox, _ = input_shape
        a = self.num_anchors
        if (cls[-1] is not None and cls[-1] != 2 * a) or (bbox[-1] is not None and bbox[-1] != 4 * a):
            raise ValueError(f"RPNProposals with {a} anchors needs rpn_cls with {2 * a} and rpn_bbox with {4 * a} "
                             f"channels; got shapes {tuple(cls)} and {tuple(bbox)}")

    def call(self, inputs):
        cls, bbox, frames = inputs
        cls, bbox = tf.stop_gradient(tf.cast(cls, tf.float32)), tf.stop_gradient(tf.cast(bbox, tf.float32))
        shape = tf.shape(cls)
        anchors = box_ops.shifted_anchors(shape[1], shape[2], self.feature_stride, self.scales, self.ratios)
        size = tf.shape(frames)[1:3]

        def one(args):
            return box_ops.proposals(args[0], args[1], anchors, size, pre_nms_top_n=self.pre_nms_top_n,
                                     post_nms_top_n=self.post_nms_top_n, nms_threshold=self.nms_threshold,
                                     min_size=self.min_size, stds=self.stds, feature_stride=self.feature_stride)[0]

        return tf.map_fn(one, (cls, bbox), fn_output_signature=tf.TensorSpec((self.post_nms_top_n, 4), tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.post_nms_top_n, 4)

    def get_config(self):
        return {**super().get_config(), "feature_stride": self.feature_stride, "scales": self.scales,
                "ratios": self.ratios, "pre_nms_top_n": self.pre_nms_top_n, "post_nms_top_n": self.post_nms_top_n,
                "nms_threshold": self.nms_threshold, "min_size": self.min_size, "stds": self.stds}


@keras.saving.register_keras_serializable(package="tfvideo")
class PSRoIVote(keras.layers.Layer):
    """``[score_maps (B, h, w, output_dim * k * k), rois (B, N, 4)]`` -> ``(B, N, output_dim)``:
    position-sensitive RoI pooling (:func:`tfvideo.ops.psroi.psroi_pool`, the RoIs of image ``b`` on
    the maps of image ``b``) then the average over the ``k x k`` bins (:func:`~tfvideo.ops.psroi.ps_vote`;
    the DFF code's ``PSROIPooling`` + global average ``Pooling``). Differentiable in ``score_maps``."""

    def __init__(self, output_dim, group_size=7, spatial_scale=1.0 / 16, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = _positive_int(output_dim, "output_dim")
        self.group_size = _positive_int(group_size, "group_size")
        if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)) or not spatial_scale > 0:
            raise ValueError(f"`spatial_scale` must be a number > 0; got {spatial_scale!r}")
        self.spatial_scale = float(spatial_scale)

    def build(self, input_shape):
        maps, rois = input_shape
        channels = self.output_dim * self.group_size ** 2
        if maps[-1] is not None and maps[-1] != channels:
            raise ValueError(f"PSRoIVote({self.output_dim}, group_size={self.group_size}) needs score maps with "
                             f"{channels} channels; got shape {tuple(maps)}")
        if len(rois) != 3 or (rois[-1] is not None and rois[-1] != 4):
            raise ValueError(f"PSRoIVote needs rois (batch, num_rois, 4); got shape {tuple(rois)}")

    def call(self, inputs):
        maps, rois = inputs
        shape = tf.shape(rois)
        b, n = shape[0], shape[1]
        index = tf.cast(tf.repeat(tf.range(b), n), rois.dtype)[:, None]
        flat = tf.concat([index, tf.reshape(rois, [-1, 4])], axis=1)
        pooled = psroi_pool(maps, flat, self.output_dim, self.group_size, self.spatial_scale)
        return tf.reshape(ps_vote(pooled), [b, n, self.output_dim])

    def compute_output_shape(self, input_shape):
        maps, rois = input_shape
        return (rois[0], rois[1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim, "group_size": self.group_size,
                "spatial_scale": self.spatial_scale}


@keras.saving.register_keras_serializable(package="tfvideo")
class DetectionOutput(keras.layers.Layer):
    """``[rois (B, N, 4), class_logits (B, N, C + 1), box_deltas (B, N, 4), frames (B, H, W, ...)]`` ->
    detections ``(B, max_detections, 6)``, rows ``(x1, y1, x2, y2, score, class)`` (:data:`DETECTION_FIELDS`).

    The DFF code's test (``dff_rfcn/core/tester.py``: ``im_detect`` then ``pred_eval``): class
    probabilities = softmax of the logits (class 0 = background); one class-agnostic box per RoI =
    ``decode_boxes(roi, deltas * stds)`` (R-FCN's regression targets are normalised by ``BBOX_STDS``;
    the released checkpoints fold the stds into the test weights instead) clipped to the frame; for each
    foreground class the RoIs with probability ``> score_threshold`` (1e-4), NMS at ``nms_threshold``
    (0.3, Sec. 4; +1 IoU of :func:`tfvideo.ops.boxes.nms`); then the ``max_detections`` (300,
    ``TEST.max_per_image``) best over all classes, best first. ``class`` is the foreground class
    ``0 .. C - 1`` (R-FCN's class ``c`` is our ``c - 1``: the label convention of
    :mod:`tfvideo.data.detection_sets`), as a float; unused rows are zeros with class -1 and score 0.
    (``tf.image.combined_non_max_suppression`` does the per-class NMS and the top-300: boxes are handed
    to it as half-open extents ``(y1, x1, y2 + 1, x2 + 1)`` so that its IoU is the +1 IoU.)"""

    def __init__(self, num_classes, nms_threshold=0.3, score_threshold=1e-4, max_detections=300,
                 stds=box_ops.BBOX_STDS, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.nms_threshold = _fraction(nms_threshold, "nms_threshold")
        self.score_threshold = _fraction(score_threshold, "score_threshold")
        self.max_detections = _positive_int(max_detections, "max_detections")
        self.stds = _numbers(stds, "stds", 4)

    def build(self, input_shape):
        rois, logits, deltas, _ = input_shape
        if logits[-1] is not None and logits[-1] != self.num_classes + 1:
            raise ValueError(f"DetectionOutput(num_classes={self.num_classes}) needs class logits with "
                             f"{self.num_classes + 1} channels (background first); got shape {tuple(logits)}")
        if rois[-1] not in (None, 4) or deltas[-1] not in (None, 4):
            raise ValueError(f"DetectionOutput needs rois and box_deltas of shape (batch, num_rois, 4); got "
                             f"{tuple(rois)} and {tuple(deltas)}")

    def call(self, inputs):
        rois, logits, deltas, frames = inputs
        size = tf.shape(frames)[1:3]
        probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        boxes = box_ops.decode_boxes(tf.cast(rois, tf.float32), tf.cast(deltas, tf.float32), stds=self.stds)
        boxes = box_ops.clip_boxes(boxes, size[0], size[1])
        x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
        half_open = tf.stack([y1, x1, y2 + 1.0, x2 + 1.0], axis=-1)[:, :, None, :]
        nmsed, scores, classes, valid = tf.image.combined_non_max_suppression(
            half_open, probs[..., 1:], max_output_size_per_class=self.max_detections,
            max_total_size=self.max_detections, iou_threshold=self.nms_threshold,
            score_threshold=self.score_threshold, pad_per_class=False, clip_boxes=False)
        used = tf.range(self.max_detections)[None, :] < valid[:, None]
        y1, x1, y2, x2 = tf.unstack(nmsed, axis=-1)
        out = tf.stack([x1, y1, x2 - 1.0, y2 - 1.0, scores, classes], axis=-1)
        empty = tf.constant([0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
        return tf.where(used[..., None], out, empty)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_detections, 6)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "nms_threshold": self.nms_threshold,
                "score_threshold": self.score_threshold, "max_detections": self.max_detections,
                "stds": self.stds}
