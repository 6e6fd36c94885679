"""Deep Feature Flow for video object detection (seed 003, Sec. 4 "Object Detection"): R-FCN as N_task.

Built as the DFF code builds it (``dff_rfcn/symbols/resnet_v1_101_flownet_rfcn.py`` of
github.com/msracver/Deep-Feature-Flow):

* **N_feat** is :func:`tfvideo.models.dff.feature_network` (ResNet with dilated conv5 and the
  dilation-6 3x3 conv to 1024 channels, ReLU; 128 for the CPU-sized ``small``). That 3x3 conv is the
  layer that reduces the 2048-d conv5 to the 1024-d features; there is **no further 1x1 reducing conv**
  in the paper (Sec. 4: "two branches ... are applied on the first half and the second half
  512-dimensional of the intermediate feature maps separately") nor in the code (``SliceChannel``).
* **N_task** (:func:`rfcn_task_network`, all 1x1 convs, N(0, 0.01) weights and zero biases as the
  code's ``init_weight``): on the first half of the channels the RPN's ``rpn_cls_score`` (2 n_a
  objectness logits, ``[:n_a]`` background and ``[n_a:]`` foreground: the code's channel order) and
  ``rpn_bbox_pred`` (4 n_a deltas); on the second half ``rfcn_cls``, the position-sensitive score maps
  ((C + 1) k^2, k = 7) and ``rfcn_bbox``, the class-agnostic box regression maps (4 k^2 as Sec. 4 states;
  the code has 8 k^2 = 4 x {background, object}, of which only the object half is trained and used:
  converting its weights means keeping output channels ``4 k^2 .. 8 k^2``). Channel ``(c k + i) k + j`` is
  value ``c`` of bin ``(i, j)`` (:func:`tfvideo.ops.psroi.psroi_pool`).
* **The head** (:func:`rfcn_head`, no parameters, Sec. 4: "No free parameters are involved in the
  per-region computation"): :class:`tfvideo.layers.RPNProposals` (9 anchors, NMS 0.7, 300
  proposals), :class:`tfvideo.layers.PSRoIVote` on both map sets, :class:`tfvideo.layers.DetectionOutput`
  (softmax, box decoding, per-class NMS 0.3, 300 detections) -> ``(B, 300, 6)`` rows ``(x1, y1, x2, y2,
  score, class)`` in pixels of the input frame (inclusive corners), class ``0 .. C - 1`` (-1: unused row).

Models (uint8 frames in; nested parts named ``n_feat``, ``n_task``, ``rfcn_head`` and ``flownet``):

* :func:`frame_detector`: frames ``(B, H, W, 3)`` -> detections (the "Frame" baseline);
* :func:`dff_detector`: pairs ``(B, 2, H, W, 3)`` (key, current) -> detections of the current frame on
  the features propagated from the key frame (Eq. 3; :func:`tfvideo.models.dff.propagated_features`);
* :class:`DetectionTrainer`: wraps either for ``model.fit`` with the RPN and R-FCN losses of the code
  (:func:`detection_losses`); targets are :func:`tfvideo.data.pipeline.detection_pair_dataset`'s.

Example
-------
>>> det = frame_detector("small", num_classes=7)                                    # doctest: +SKIP
>>> det(np.zeros((1, 128, 256, 3), np.uint8)).shape                                 # doctest: +SKIP
TensorShape([1, 300, 6])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.layers.rfcn import ChannelSlice, DetectionOutput, PSRoIVote, RPNProposals
from tfvideo.models.dff import (FEATURE_STRIDE, apply_fix, feature_network, propagated_features,
                                transfer_weights)
from tfvideo.models.flownet import flownet
from tfvideo.ops import boxes as box_ops
from tfvideo.ops.psroi import ps_vote, psroi_pool

__all__ = ["MAPS", "LOSSES", "rfcn_task_network", "rfcn_head", "frame_detector", "dff_detector",
           "DetectionTrainer", "detection_losses", "rpn_losses", "rcnn_losses", "smooth_l1", "split_detections",
           "transfer_weights"]

#: Outputs of N_task.
MAPS = ("rpn_cls", "rpn_bbox", "rfcn_cls", "rfcn_bbox")
#: The four losses of the code's training graph (``get_train_symbol``), summed with weight 1.
LOSSES = ("rpn_cls_loss", "rpn_bbox_loss", "rcnn_cls_loss", "rcnn_bbox_loss")
GROUP_SIZE = 7
NUM_ANCHORS = 9


def _init():
    return dict(kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01), bias_initializer="zeros")


def rfcn_task_network(channels, num_classes, *, num_anchors=NUM_ANCHORS, group_size=GROUP_SIZE,
                      feature_size=(None, None), name="n_task"):
    """N_task of R-FCN (module docstring): features ``(B, h, w, channels)`` -> ``{"rpn_cls": (.., 2 n_a),
    "rpn_bbox": (.., 4 n_a), "rfcn_cls": (.., (C + 1) k^2), "rfcn_bbox": (.., 4 k^2)}``.

    Args:
      channels: feature channels (even; 1024 for the ResNets): the first half feeds the RPN, the second
        R-FCN.
      num_classes: C, the object classes (the maps have C + 1 with background).
      feature_size: ``(h, w)`` of the feature map when fixed (for FLOP counts), else ``None``s.
    """
    for value, arg in ((channels, "channels"), (num_classes, "num_classes"), (num_anchors, "num_anchors"),
                       (group_size, "group_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int; got {value!r}")
    if channels % 2:
        raise ValueError(f"`channels` must be even (two halves, Sec. 4); got {channels}")
    k2 = group_size * group_size
    features = keras.Input((*feature_size, channels), name="features")
    rpn = ChannelSlice(0, channels // 2, name="rpn_feat")(features)
    rfcn = ChannelSlice(channels // 2, channels, name="rfcn_feat")(features)
    out = {"rpn_cls": keras.layers.Conv2D(2 * num_anchors, 1, name="rpn_cls_score", **_init())(rpn),
           "rpn_bbox": keras.layers.Conv2D(4 * num_anchors, 1, name="rpn_bbox_pred", **_init())(rpn),
           "rfcn_cls": keras.layers.Conv2D((num_classes + 1) * k2, 1, name="rfcn_cls", **_init())(rfcn),
           "rfcn_bbox": keras.layers.Conv2D(4 * k2, 1, name="rfcn_bbox", **_init())(rfcn)}
    return keras.Model(features, out, name=name)


def rfcn_head(num_classes, *, group_size=GROUP_SIZE, feature_stride=FEATURE_STRIDE, rpn=None, test=None,
              name="rfcn_head"):
    """The parameter-free part (module docstring): ``{maps of N_task, "frames"}`` -> ``(B, N, 6)``.

    Args:
      rpn: keyword arguments of :class:`tfvideo.layers.RPNProposals` (default: the DFF test setting,
        6000 / 300 / NMS 0.7; anchor scales (8, 16, 32) and ratios (0.5, 1, 2)).
      test: keyword arguments of :class:`tfvideo.layers.DetectionOutput` (default: NMS 0.3, score
        threshold 1e-4, 300 detections).
    """
    k2 = group_size * group_size
    rpn = dict(rpn or {})
    anchors = len(rpn.get("scales", (8, 16, 32))) * len(rpn.get("ratios", (0.5, 1, 2)))
    inputs = {"rpn_cls": keras.Input((None, None, 2 * anchors), name="rpn_cls"),
              "rpn_bbox": keras.Input((None, None, 4 * anchors), name="rpn_bbox"),
              "rfcn_cls": keras.Input((None, None, (num_classes + 1) * k2), name="rfcn_cls"),
              "rfcn_bbox": keras.Input((None, None, 4 * k2), name="rfcn_bbox"),
              "frames": keras.Input((None, None, 3), dtype="uint8", name="frames")}
    rois = RPNProposals(feature_stride, **rpn, name="proposals")([inputs["rpn_cls"], inputs["rpn_bbox"],
                                                                   inputs["frames"]])
    scale = 1.0 / feature_stride
    scores = PSRoIVote(num_classes + 1, group_size, scale, name="psroi_cls")([inputs["rfcn_cls"], rois])
    deltas = PSRoIVote(4, group_size, scale, name="psroi_bbox")([inputs["rfcn_bbox"], rois])
    detections = DetectionOutput(num_classes, **(test or {}), name="detections")([rois, scores, deltas,
                                                                                  inputs["frames"]])
    return keras.Model(inputs, detections, name=name)


def _parts(backbone, num_classes, weights, input_shape, channels, frozen_batch_norm, rpn, test):
    n_feat = feature_network(backbone, weights=weights, input_shape=input_shape, channels=channels,
                             frozen_batch_norm=frozen_batch_norm, name="n_feat")
    width = int(n_feat.output.shape[-1])
    n_task = rfcn_task_network(width, num_classes, feature_size=tuple(n_feat.output.shape[1:3]),
                               num_anchors=len((rpn or {}).get("scales", (8, 16, 32)))
                               * len((rpn or {}).get("ratios", (0.5, 1, 2))))
    head = rfcn_head(num_classes, rpn=rpn, test=test)
    return n_feat, n_task, head


def _detect(n_task, head, features, frames):
    return head({**n_task(features), "frames": frames})


def frame_detector(backbone, num_classes, *, weights=None, input_shape=(None, None, 3), channels=None,
                   frozen_batch_norm=None, rpn=None, test=None, name=None):
    """The per-frame detector ("Frame" of Table 4): uint8 frames ``(B, H, W, 3)`` -> ``(B, 300, 6)``
    (:data:`tfvideo.layers.rfcn.DETECTION_FIELDS`). Arguments as :func:`tfvideo.models.dff.feature_network`
    and :func:`rfcn_head`; ``num_classes`` is C (no background)."""
    n_feat, n_task, head = _parts(backbone, num_classes, weights, tuple(input_shape), channels,
                                  frozen_batch_norm, rpn, test)
    frames = keras.Input(tuple(input_shape), dtype="uint8", name="frames")
    return keras.Model(frames, _detect(n_task, head, n_feat(frames), frames),
                       name=name or f"rfcn_frame_{backbone}")


def dff_detector(backbone, num_classes, *, flow="s", fix=None, weights=None, frame_size=(None, None),
                 channels=None, frozen_batch_norm=None, flow_order="paper", rpn=None, test=None, name=None):
    """Deep Feature Flow for detection on frame pairs (Sec. 3 with R-FCN as N_task): uint8 pairs
    ``(B, 2, H, W, 3)`` (key, current) -> detections ``(B, 300, 6)`` of the current frame, from the key
    frame's features warped by F (FlowNet ``flow``, a scale field per feature channel) -- or the key
    frame's own where the two frames are the same. ``fix``: Table 3's ``None`` / ``"n"`` / ``"f"``
    (:data:`tfvideo.models.dff.FIX`). ``H, W`` must be multiples of 128 (FlowNet). Nested models:
    ``n_feat``, ``n_task``, ``rfcn_head``, ``flownet`` (what :class:`tfvideo.models.dff_runner.
    DFFVideoRunner` and :func:`tfvideo.models.dff_runner.detection_signatures` use)."""
    try:
        height, width = frame_size
    except (TypeError, ValueError):
        raise ValueError(f"`frame_size` must be (H, W) with ints or None; got {frame_size!r}") from None
    n_feat, n_task, head = _parts(backbone, num_classes, weights, (height, width, 3), channels,
                                  frozen_batch_norm, rpn, test)
    flow_net = flownet(flow, feature_channels=int(n_feat.output.shape[-1]), frame_size=(height, width),
                       flow_order=flow_order, name="flownet")
    pairs = keras.Input((2, height, width, 3), dtype="uint8", name="frames")
    f_i, current = propagated_features(n_feat, flow_net, pairs)
    apply_fix(fix, n_feat, n_task, flow_net)
    return keras.Model(pairs, _detect(n_task, head, f_i, current), name=name or f"dff_rfcn_{backbone}_{flow}")


def split_detections(detections):
    """``(B, N, 6)`` -> ``{"boxes" (B, N, 4), "scores" (B, N), "classes" int32 (B, N), "num_detections"
    int32 (B,)}``: the serving signature's outputs (rows are sorted by score, the used ones first)."""
    detections = tf.convert_to_tensor(detections)
    classes = tf.cast(detections[..., 5], tf.int32)
    return {"boxes": detections[..., :4], "scores": detections[..., 4], "classes": classes,
            "num_detections": tf.reduce_sum(tf.cast(classes >= 0, tf.int32), axis=-1)}


# ------------------------------------------------------------------------------------------ losses
def smooth_l1(x, sigma=1.0):
    """MXNet's ``smooth_l1(x, scalar=sigma)``: ``0.5 (sigma x)^2`` where ``|x| < 1 / sigma^2``, else
    ``|x| - 0.5 / sigma^2`` (DFF: sigma 1 for both, RPN deltas being normalised, ``NORMALIZE_RPN``)."""
    s2 = float(sigma) ** 2
    ax = tf.abs(x)
    return tf.where(ax < 1.0 / s2, 0.5 * s2 * x * x, ax - 0.5 / s2)


def _ce(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), logits)


def detection_losses(maps, image_size, gt_boxes, gt_labels, num_boxes, *, num_classes, group_size=GROUP_SIZE,
                     feature_stride=FEATURE_STRIDE, scales=(8, 16, 32), ratios=(0.5, 1, 2), rpn_batch=256,
                     train_proposals=None, ohem_rois=128, seed=None):
    """The four losses of DFF's training graph (``get_train_symbol`` with ``ENABLE_OHEM``), per image
    then averaged over the batch (the code trains one image per GPU).

    For image ``b`` with gt boxes ``gt_boxes[b, :num_boxes[b]]`` and labels ``gt_labels`` (``0 .. C - 1``;
    R-FCN's classes are ``label + 1``):

    * RPN (:func:`tfvideo.ops.boxes.anchor_targets`: 256 anchors, half positive at most):
      ``rpn_cls_loss`` = softmax cross-entropy averaged over the labelled anchors (``normalization=
      'valid'``); ``rpn_bbox_loss`` = sum of :func:`smooth_l1` (sigma 1) over the positives' deltas
      (normalised by ``ANCHOR_STDS``) / 256 (``grad_scale = 1 / RPN_BATCH_SIZE``).
    * Proposals of the (gradient-stopped) RPN maps (:func:`tfvideo.ops.boxes.proposals`; ``TRAIN``: 6000
      / 300 / 0.7), the gt boxes appended and every RoI labelled (:func:`~tfvideo.ops.boxes.
      proposal_targets`, ``BATCH_ROIS = -1``: fg at IoU >= 0.5, targets normalised by ``BBOX_STDS``).
    * R-FCN on all of them (PS-RoI pooling and vote), then **OHEM** (``BoxAnnotatorOHEM``): the
      ``ohem_rois`` (128) RoIs of largest cross-entropy + box loss are kept; ``rcnn_cls_loss`` = mean
      cross-entropy over them; ``rcnn_bbox_loss`` = their smooth-L1 sum / 128. ``ohem_rois=None``: no
      OHEM, every RoI (then / their number).

    Args:
      maps: N_task's outputs (:data:`MAPS`), batched; image_size: ``(H, W)`` of the network input.
      gt_boxes ``(B, M, 4)``, gt_labels ``(B, M)`` (-1 padding), num_boxes ``(B,)``: the targets of
        :func:`tfvideo.data.pipeline.detection_pair_dataset`.
      train_proposals: keyword arguments of :func:`tfvideo.ops.boxes.proposals` for training.

    Returns:
      ``{name: scalar}`` for :data:`LOSSES`.
    """
    batch = maps["rpn_cls"].shape[0]
    if batch is None:
        raise ValueError("detection_losses needs a static batch size (batch the data with drop_remainder=True)")
    shape = tf.shape(maps["rpn_cls"])
    anchors = box_ops.shifted_anchors(shape[1], shape[2], feature_stride, scales, ratios)
    num_anchors = len(scales) * len(ratios)
    proposal_args = {"pre_nms_top_n": 6000, "post_nms_top_n": 300, "nms_threshold": 0.7, "min_size": 0.0,
                     **(train_proposals or {})}
    totals = {k: [] for k in LOSSES}
    for b in range(batch):
        n = num_boxes[b]
        gt = tf.cast(gt_boxes[b, :n], tf.float32)
        labels = tf.cast(gt_labels[b, :n], tf.int32) + 1
        image_seed = None if seed is None else tf.stack([tf.cast(seed, tf.int32), b])
        # ---- RPN
        rpn_labels, rpn_targets, rpn_weights = box_ops.anchor_targets(anchors, gt, image_size,
                                                                      batch_size=rpn_batch, seed=image_seed)
        cls = maps["rpn_cls"][b]
        logits = tf.reshape(tf.stack([cls[..., :num_anchors], cls[..., num_anchors:]], -1), [-1, 2])
        deltas = tf.reshape(maps["rpn_bbox"][b], [-1, 4])
        for k, v in rpn_losses(logits, deltas, rpn_labels, rpn_targets, rpn_weights, rpn_batch).items():
            totals[k].append(v)
        # ---- proposals, their labels, R-FCN
        rois = box_ops.proposals(tf.stop_gradient(cls), tf.stop_gradient(maps["rpn_bbox"][b]), anchors, image_size,
                                 feature_stride=feature_stride, **proposal_args)[0]
        rois, roi_labels, targets, weights = box_ops.proposal_targets(rois, gt, labels, seed=image_seed)
        indexed = tf.pad(rois, [[0, 0], [1, 0]])
        scale = 1.0 / feature_stride
        scores = ps_vote(psroi_pool(maps["rfcn_cls"][b:b + 1], indexed, num_classes + 1, group_size, scale))
        pred = ps_vote(psroi_pool(maps["rfcn_bbox"][b:b + 1], indexed, 4, group_size, scale))
        for k, v in rcnn_losses(scores, pred, roi_labels, targets, weights, ohem_rois).items():
            totals[k].append(v)
    return {k: tf.add_n(v) / float(batch) for k, v in totals.items()}


def rpn_losses(logits, deltas, labels, targets, weights, rpn_batch=256):
    """The RPN's losses of one image: ``logits (N, 2)`` (background, foreground) and ``deltas (N, 4)`` per
    anchor, ``labels (N,)`` in {1, 0, -1 = ignored}, ``targets`` / ``weights`` ``(N, 4)``
    (:func:`tfvideo.ops.boxes.anchor_targets`). ``rpn_cls_loss``: softmax cross-entropy averaged over the
    labelled anchors (MXNet ``SoftmaxOutput(use_ignore, normalization='valid')``); ``rpn_bbox_loss``:
    ``sum(weights * smooth_l1(deltas - targets)) / rpn_batch``."""
    valid = tf.cast(labels >= 0, tf.float32)
    return {"rpn_cls_loss": tf.reduce_sum(_ce(labels, logits) * valid) / tf.maximum(tf.reduce_sum(valid), 1.0),
            "rpn_bbox_loss": tf.reduce_sum(weights * smooth_l1(deltas - targets)) / float(rpn_batch)}


def rcnn_losses(scores, deltas, labels, targets, weights, ohem_rois=128):
    """R-FCN's losses of one image with online hard example mining (the code's ``BoxAnnotatorOHEM``):
    ``scores (R, C + 1)`` logits and ``deltas (R, 4)`` per RoI, ``labels (R,)`` (0 = background),
    ``targets`` / ``weights`` ``(R, 4)`` (:func:`tfvideo.ops.boxes.proposal_targets`). Each RoI's loss is
    its cross-entropy plus its weighted smooth-L1 sum; the ``ohem_rois`` largest are kept (all if fewer);
    ``rcnn_cls_loss`` = their mean cross-entropy, ``rcnn_bbox_loss`` = their smooth-L1 sum / ``ohem_rois``.
    ``ohem_rois=None``: every RoI, normalised by their number. The selection is not differentiated."""
    ce = _ce(labels, scores)
    l1 = tf.reduce_sum(weights * smooth_l1(deltas - targets), axis=-1)
    count = tf.shape(ce)[0]
    if ohem_rois is None:
        keep, norm = tf.ones_like(ce), tf.cast(count, tf.float32)
    else:
        top = tf.math.top_k(tf.stop_gradient(ce + l1), k=tf.minimum(ohem_rois, count)).indices
        keep = tf.scatter_nd(top[:, None], tf.ones_like(top, tf.float32), [count])
        norm = float(ohem_rois)
    return {"rcnn_cls_loss": tf.reduce_sum(ce * keep) / tf.maximum(tf.reduce_sum(keep), 1.0),
            "rcnn_bbox_loss": tf.reduce_sum(l1 * keep) / norm}


def _maps_network(detector):
    """The detector's input -> N_task's maps (the same layers: training shares the weights)."""
    n_feat, n_task = detector.get_layer("n_feat"), detector.get_layer("n_task")
    shape = tuple(detector.input.shape[1:])
    inputs = keras.Input(shape, dtype="uint8", name="frames")
    if len(shape) == 4:
        features, _ = propagated_features(n_feat, detector.get_layer("flownet"), inputs)
    else:
        features = n_feat(inputs)
    return keras.Model(inputs, n_task(features), name=f"{detector.name}_maps")


@keras.saving.register_keras_serializable(package="tfvideo")
class DetectionTrainer(keras.Model):
    """``model.fit`` for :func:`frame_detector` / :func:`dff_detector` with :func:`detection_losses`.

    ``x``: frames ``(B, H, W, 3)`` or pairs ``(B, 2, H, W, 3)`` (the detector's input); ``y``: ``{"boxes",
    "labels", "num_boxes"}`` of :func:`tfvideo.data.pipeline.detection_pair_dataset` (for Frame, map
    the pairs to their current frame). The batch must have a static size (``drop_remainder``). The
    forward pass goes through the maps of N_task only (the parameter-free detection head is not
    needed for the losses); ``detector`` shares the weights and gives the detections afterwards. The
    four losses are reported as metrics; the loss is their sum (+ any layer losses), averaged over
    replicas under a ``tf.distribute`` strategy as Keras' own losses are. Compile with an optimizer
    only (``trainer.compile(optimizer)``)."""

    def __init__(self, detector, *, rpn_batch=256, ohem_rois=128, train_proposals=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(detector, dict):
            detector = keras.saving.deserialize_keras_object(detector)
        if not isinstance(detector, keras.Model) or "rfcn_head" not in [layer.name for layer in detector.layers]:
            raise TypeError(f"`detector` must be a model of frame_detector or dff_detector; got {detector!r}")
        self.detector = detector
        self.rpn_batch, self.ohem_rois = int(rpn_batch), None if ohem_rois is None else int(ohem_rois)
        self.train_proposals = dict(train_proposals or {})
        head = detector.get_layer("rfcn_head")
        proposals = head.get_layer("proposals")
        self._head_args = dict(num_classes=head.get_layer("detections").num_classes,
                               group_size=head.get_layer("psroi_cls").group_size,
                               feature_stride=proposals.feature_stride, scales=tuple(proposals.scales),
                               ratios=tuple(proposals.ratios))
        self.maps = _maps_network(detector)
        self.trackers = [keras.metrics.Mean(name=k) for k in LOSSES]
        self.built = True  # every part is a built functional model

    def call(self, x, training=False):
        return self.maps(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        size = tf.shape(x)[-3:-1]
        parts = detection_losses(y_pred, size, y["boxes"], y["labels"], y["num_boxes"], rpn_batch=self.rpn_batch,
                                 ohem_rois=self.ohem_rois, train_proposals=self.train_proposals, **self._head_args)
        for tracker, name in zip(self.trackers, LOSSES):
            tracker.update_state(parts[name])
        total = tf.add_n([parts[k] for k in LOSSES] + [tf.cast(v, tf.float32) for v in self.losses])
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total

    @property
    def metrics(self):
        return [*super().metrics, *self.trackers]

    def get_config(self):
        return {"name": self.name, "detector": keras.saving.serialize_keras_object(self.detector),
                "rpn_batch": self.rpn_batch, "ohem_rois": self.ohem_rois, "train_proposals": self.train_proposals}
