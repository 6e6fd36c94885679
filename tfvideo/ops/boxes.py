"""Box ops of the RPN / R-FCN detector of Deep Feature Flow (seed 003, Sec. 4 "Object Detection").

Transcribed from the authors' released code (github.com/msracver/Deep-Feature-Flow, itself based on
py-faster-rcnn and MX-RCNN): ``lib/rpn/generate_anchor.py``, ``lib/bbox/bbox_transform.py``,
``lib/nms/nms.py``, ``lib/rpn/rpn.py:assign_anchor``, ``dff_rfcn/core/rcnn.py:sample_rois``,
``dff_rfcn/operator_py/proposal.py`` and the test-time C++/CUDA op ``dff_rfcn/operator_cxx/
multi_proposal.cu`` (``mx.contrib.sym.MultiProposal``). Everything is TensorFlow except
:func:`generate_anchors` (a NumPy constant).

Conventions (the same in every function here)
---------------------------------------------
* A box is ``(x1, y1, x2, y2)``: ``x`` horizontal (column), ``y`` vertical (row), in pixels of the
  (resized) network input image, **inclusive corners on the pixel-centre grid**: pixel ``(x, y)`` has
  its centre at the integer coordinates ``(x, y)``, and a box covers the pixels ``x1..x2`` and
  ``y1..y2``, so its **width is ``x2 - x1 + 1``** and height ``y2 - y1 + 1`` ("+1 convention").
  We keep this convention of the released code on purpose: anchors, box coding, IoU, NMS, clipping
  and the size filter all use it, so weights trained with the released code decode to the same boxes.
  (torchvision / Detectron2 dropped the +1; boxes here are *not* in that convention.)
* Sizes are **height first**: ``image_size = (height, width)``, as ``im_info[:2]`` of the reference.
* Box deltas are ``(dx, dy, dw, dh)`` (Girshick's R-CNN parametrisation, ``bbox_transform``), each
  normalised as ``(delta - mean) / std`` with the per-coordinate ``means`` / ``stds``.
  DFF's values (``dff_rfcn/config/config.py`` and
  ``experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem.yaml``):
  :data:`ANCHOR_STDS` ``(0.1, 0.1, 0.4, 0.4)`` for the RPN (``NORMALIZE_RPN: true``; the test graph
  un-normalises the RPN deltas with them before the proposal op, so :func:`proposals` defaults to them)
  and :data:`BBOX_STDS` ``(0.1, 0.1, 0.2, 0.2)`` for the R-FCN head (training targets; the released
  checkpoints fold these stds into ``rfcn_bbox_weight_test``, so decode converted *test* weights with
  ``stds=(1, 1, 1, 1)``). Means are all 0.
* Anchor order: **position-major, anchor-minor**: row ``(h * W + w) * A + a`` is anchor ``a`` at
  feature cell ``(h, w)``, exactly as the reference reshapes ``(K, A, 4) -> (K * A, 4)`` and as the RPN
  head's channels-last outputs ``(H, W, A * 4)`` / ``(H, W, A)`` flatten.

Example
-------
>>> import numpy as np
>>> generate_anchors()[0].tolist()     # scale 8, ratio 0.5
[-84.0, -40.0, 99.0, 55.0]
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from tfvideo.checks import positive_float, positive_int

__all__ = [
    "ANCHOR_STDS",
    "BBOX_STDS",
    "generate_anchors",
    "shifted_anchors",
    "encode_boxes",
    "decode_boxes",
    "clip_boxes",
    "box_iou",
    "nms",
    "filter_small",
    "proposals",
    "anchor_targets",
    "proposal_targets",
]

#: RPN delta stds, ``cfg.network.ANCHOR_STDS`` of DFF (means ``ANCHOR_MEANS`` are 0)
ANCHOR_STDS = (0.1, 0.1, 0.4, 0.4)
#: R-FCN head delta stds, ``cfg.TRAIN.BBOX_STDS`` of DFF (means ``BBOX_MEANS`` are 0)
BBOX_STDS = (0.1, 0.1, 0.2, 0.2)

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _boxes_arg(x, arg: str, rank: int | None = 2, layout: str = "(n, 4) as (x1, y1, x2, y2)") -> tf.Tensor:
    """``x`` as a float tensor whose last dimension is 4 (and of ``rank`` if given)."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_integer:
        x = tf.cast(x, tf.float32)
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"`{arg}` must be a floating (or integer) tensor; got {x.dtype.name}")
    if rank is not None and x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"`{arg}` must be a rank-{rank} tensor {layout}; got shape {x.shape}")
    if x.shape.rank == 0 or (x.shape.rank is not None and x.shape[-1] is not None and x.shape[-1] != 4):
        raise ValueError(f"`{arg}` must have last dimension 4 {layout}; got shape {x.shape}")
    return x


def _four(values, arg: str, dtype) -> tf.Tensor:
    """A length-4 ``means`` / ``stds`` tuple as a tensor of ``dtype``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"`{arg}` must be 4 finite numbers (for dx, dy, dw, dh); got {values!r}")
    if arg == "stds" and np.any(arr <= 0):
        raise ValueError(f"`stds` must be 4 numbers > 0; got {values!r}")
    return tf.constant(arr, dtype=dtype)


def _seed_arg(seed) -> tf.Tensor:
    """A stateless-RNG seed: a pair of ints (or tensor of shape (2,)); ``None`` draws one at random."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([int(seed), 0], tf.int32)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or (seed.shape.rank is not None and seed.shape != (2,)):
        raise ValueError(f"`seed` must be an int, a pair of ints (shape (2,)) or None; got {seed!r}")
    return tf.cast(seed, tf.int32)


def _size_pair(image_size, arg: str = "image_size"):
    """``(height, width)`` as two float32 scalars (Python ints or tensors)."""
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2:
            raise ValueError(f"`{arg}` must be (height, width); got {image_size!r}")
        h, w = image_size
    else:
        t = tf.convert_to_tensor(image_size)
        if t.shape.rank is not None and (t.shape.rank != 1 or (t.shape[0] is not None and t.shape[0] < 2)):
            raise ValueError(f"`{arg}` must be (height, width) (im_info[:2]); got shape {t.shape}")
        h, w = t[0], t[1]
    for v, what in ((h, "height"), (w, "width")):
        if isinstance(v, numbers.Real) and not v > 0:
            raise ValueError(f"`{arg}` {what} must be > 0; got {image_size!r}")
    return tf.cast(h, tf.float32), tf.cast(w, tf.float32)


# ----------------------------------------------------------------------------------------- anchors


def generate_anchors(base_size: int = 16, scales=(8, 16, 32), ratios=(0.5, 1, 2)) -> np.ndarray:
    """The ``len(ratios) * len(scales)`` reference anchors of Faster R-CNN at feature cell (0, 0).

    Exactly ``generate_anchors`` of py-faster-rcnn (``lib/rpn/generate_anchor.py`` of DFF): start from the
    box ``(0, 0, base_size - 1, base_size - 1)`` (centre ``((base_size - 1) / 2, ...)``); for each ratio
    ``r = h / w`` take ``w = round(sqrt(base_size**2 / r))``, ``h = round(w * r)`` (NumPy ``round``: half
    to even), then multiply both by each scale; boxes are centred on the base box's centre with the +1
    convention (``x1 = ctr - (w - 1) / 2``). Order: **ratio-major, scale-minor** (row ``i * len(scales)
    + j`` is ratio ``i``, scale ``j``), the order of the RPN head's anchor channels. With the defaults
    (DFF's ``ANCHOR_SCALES = (8, 16, 32)``, ``ANCHOR_RATIOS = (0.5, 1, 2)``) the first row is
    ``[-84, -40, 99, 55]`` (MATLAB's 1-based Faster R-CNN prints it as ``[-83, -39, 100, 56]``).
    MXNet's C++ ``GenerateAnchors`` (``multi_proposal-inl.h``, used by the test-time ``MultiProposal``)
    floors ``size / r`` first and rounds halves up; it gives the same anchors for the defaults (checked by
    hand: ``sqrt(512) -> 23``, ``11.5 -> 12`` both ways), but can differ for other ratios.

    Returns:
      ``(len(ratios) * len(scales), 4)`` float32 NumPy array of ``(x1, y1, x2, y2)``.
    """
    base_size = positive_int(base_size, "base_size")
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    ratios = np.asarray(ratios, dtype=np.float64).reshape(-1)
    for arr, name in ((scales, "scales"), (ratios, "ratios")):
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"`{name}` must be a non-empty sequence of numbers > 0; got {arr.tolist()}")
    size = float(base_size) * base_size
    ctr = 0.5 * (base_size - 1)
    rows = []
    for r in ratios:
        w = np.round(np.sqrt(size / r))
        h = np.round(w * r)
        for s in scales:
            ws, hs = w * s, h * s
            rows.append([ctr - 0.5 * (ws - 1), ctr - 0.5 * (hs - 1), ctr + 0.5 * (ws - 1), ctr + 0.5 * (hs - 1)])
    return np.asarray(rows, dtype=np.float32)


def shifted_anchors(feature_height, feature_width, stride: int = 16, scales=(8, 16, 32), ratios=(0.5, 1, 2),
                    base_size: int | None = None, name: str | None = None) -> tf.Tensor:
    """All anchors of a ``feature_height x feature_width`` map: ``(H * W * A, 4)`` float32 tensor.

    Anchor ``a`` at cell ``(h, w)`` is ``generate_anchors(base_size)[a] + (w, h, w, h) * stride`` and
    sits at row ``(h * W + w) * A + a`` (position-major, anchor-minor, as ``assign_anchor`` /
    ``proposal.py`` reshape ``(K, A, 4) -> (K*A, 4)`` with ``K = H * W`` in row-major order).
    ``feature_height`` / ``feature_width`` may be Python ints or scalar int tensors (unknown in graph mode).
    ``base_size`` defaults to ``stride`` (the reference passes ``base_size=feat_stride``).
    """
    stride = positive_int(stride, "stride")
    base = generate_anchors(stride if base_size is None else base_size, scales, ratios)
    for v, arg in ((feature_height, "feature_height"), (feature_width, "feature_width")):
        if isinstance(v, numbers.Number) and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
            raise ValueError(f"`{arg}` must be an integer >= 1; got {v!r}")
    with tf.name_scope(name or "shifted_anchors"):
        ys = tf.cast(tf.range(feature_height), tf.float32) * float(stride)
        xs = tf.cast(tf.range(feature_width), tf.float32) * float(stride)
        sy, sx = tf.meshgrid(ys, xs, indexing="ij")  # (H, W)
        shifts = tf.stack([sx, sy, sx, sy], axis=-1)  # (H, W, 4)
        anchors = shifts[:, :, None, :] + tf.constant(base)[None, None]  # (H, W, A, 4)
        return tf.reshape(anchors, [-1, 4])


# ------------------------------------------------------------------------------------- box coding


def _whc(boxes):
    w = boxes[..., 2] - boxes[..., 0] + 1.0
    h = boxes[..., 3] - boxes[..., 1] + 1.0
    return w, h, boxes[..., 0] + 0.5 * (w - 1.0), boxes[..., 1] + 0.5 * (h - 1.0)


def encode_boxes(anchors, gt, stds=(1.0, 1.0, 1.0, 1.0), means=(0.0, 0.0, 0.0, 0.0),
                 name: str | None = None) -> tf.Tensor:
    """Regression targets of ``gt`` relative to ``anchors``: ``bbox_transform`` of the reference.

    ``dx = (gx - ax) / aw``, ``dy = (gy - ay) / ah``, ``dw = log(gw / aw)``, ``dh = log(gh / ah)`` with
    +1 widths and centres ``x1 + (w - 1) / 2`` (``nonlinear_transform`` in ``lib/bbox/bbox_transform.py``,
    including its ``1e-14`` in the ``dx`` / ``dy`` denominators), then ``(d - means) / stds``.

    Args:
      anchors, gt: ``(..., 4)`` boxes ``(x1, y1, x2, y2)``, broadcast against each other.
      stds, means: 4 numbers each (see the module docstring; e.g. :data:`ANCHOR_STDS`, :data:`BBOX_STDS`).

    Returns:
      ``(..., 4)`` deltas ``(dx, dy, dw, dh)`` in the dtype of ``anchors``.
    """
    with tf.name_scope(name or "encode_boxes"):
        anchors = _boxes_arg(anchors, "anchors", None, "(..., 4) as (x1, y1, x2, y2)")
        gt = tf.cast(_boxes_arg(gt, "gt", None, "(..., 4) as (x1, y1, x2, y2)"), anchors.dtype)
        aw, ah, ax, ay = _whc(anchors)
        gw, gh, gx, gy = _whc(gt)
        d = tf.stack([(gx - ax) / (aw + 1e-14), (gy - ay) / (ah + 1e-14), tf.math.log(gw / aw),
                      tf.math.log(gh / ah)], axis=-1)
        return (d - _four(means, "means", anchors.dtype)) / _four(stds, "stds", anchors.dtype)


def decode_boxes(anchors, deltas, stds=(1.0, 1.0, 1.0, 1.0), means=(0.0, 0.0, 0.0, 0.0),
                 name: str | None = None) -> tf.Tensor:
    """Apply ``deltas`` to ``anchors``: ``bbox_pred`` (``nonlinear_pred``) of the reference.

    ``d = deltas * stds + means``; centre ``(ax + dx * aw, ay + dy * ah)``, size ``(aw * exp(dw),
    ah * exp(dh))``, corners ``ctr -/+ (size - 1) / 2`` (+1 convention). No clipping of ``dw`` / ``dh``
    (as the released code); clip the result with :func:`clip_boxes`.

    Args:
      anchors: ``(..., 4)`` boxes; deltas: ``(..., 4)`` ``(dx, dy, dw, dh)``; broadcast together (for
        class-specific deltas ``(N, K * 4)`` use ``decode_boxes(anchors[:, None], tf.reshape(deltas,
        [N, K, 4]))``).

    Returns:
      ``(..., 4)`` boxes ``(x1, y1, x2, y2)`` in the dtype of ``deltas``.
    """
    with tf.name_scope(name or "decode_boxes"):
        deltas = _boxes_arg(deltas, "deltas", None, "(..., 4) as (dx, dy, dw, dh)")
        anchors = tf.cast(_boxes_arg(anchors, "anchors", None, "(..., 4) as (x1, y1, x2, y2)"), deltas.dtype)
        d = deltas * _four(stds, "stds", deltas.dtype) + _four(means, "means", deltas.dtype)
        aw, ah, ax, ay = _whc(anchors)
        cx = d[..., 0] * aw + ax
        cy = d[..., 1] * ah + ay
        w = tf.exp(d[..., 2]) * aw
        h = tf.exp(d[..., 3]) * ah
        return tf.stack([cx - 0.5 * (w - 1.0), cy - 0.5 * (h - 1.0), cx + 0.5 * (w - 1.0), cy + 0.5 * (h - 1.0)],
                        axis=-1)


def clip_boxes(boxes, height, width, name: str | None = None) -> tf.Tensor:
    """Clip ``(..., 4)`` boxes to the image: ``x`` to ``[0, width - 1]``, ``y`` to ``[0, height - 1]``
    (``clip_boxes`` of the reference: pixel indices of the first and last pixel)."""
    with tf.name_scope(name or "clip_boxes"):
        boxes = _boxes_arg(boxes, "boxes", None, "(..., 4) as (x1, y1, x2, y2)")
        h, w = _size_pair((height, width), "(height, width)")
        xmax, ymax = tf.cast(w - 1.0, boxes.dtype), tf.cast(h - 1.0, boxes.dtype)
        x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
        zero = tf.zeros([], boxes.dtype)
        return tf.stack([tf.clip_by_value(x1, zero, xmax), tf.clip_by_value(y1, zero, ymax),
                         tf.clip_by_value(x2, zero, xmax), tf.clip_by_value(y2, zero, ymax)], axis=-1)


def box_iou(a, b, name: str | None = None) -> tf.Tensor:
    """Pairwise IoU matrix ``(N, M)`` of boxes ``a (N, 4)`` and ``b (M, 4)`` with +1 widths.

    ``bbox_overlaps`` of the reference: intersection ``(min x2 - max x1 + 1) * (min y2 - max y1 + 1)``,
    0 when either side is <= 0; IoU = intersection / (area_a + area_b - intersection).
    """
    with tf.name_scope(name or "box_iou"):
        a = _boxes_arg(a, "a")
        b = tf.cast(_boxes_arg(b, "b"), a.dtype)
        ax1, ay1, ax2, ay2 = [t[:, None] for t in tf.unstack(a, axis=-1)]
        bx1, by1, bx2, by2 = [t[None, :] for t in tf.unstack(b, axis=-1)]
        iw = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1) + 1.0, 0.0)
        ih = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1) + 1.0, 0.0)
        inter = iw * ih
        area_a = (ax2 - ax1 + 1.0) * (ay2 - ay1 + 1.0)
        area_b = (bx2 - bx1 + 1.0) * (by2 - by1 + 1.0)
        return tf.math.divide_no_nan(inter, area_a + area_b - inter)


def filter_small(boxes, min_size, name: str | None = None) -> tf.Tensor:
    """Boolean keep-mask ``(N,)``: boxes whose +1 width and height are both ``>= min_size``
    (``filter_boxes`` / ``_filter_boxes`` of the reference, which return the indices ``where(mask)``).
    ``min_size`` is in input-image pixels: the reference passes ``RPN_MIN_SIZE * im_scale``."""
    with tf.name_scope(name or "filter_small"):
        boxes = _boxes_arg(boxes, "boxes", None, "(..., 4) as (x1, y1, x2, y2)")
        if isinstance(min_size, numbers.Real):
            positive_float(min_size, "min_size", allow_zero=True)
        m = tf.cast(min_size, boxes.dtype)
        w, h, _, _ = _whc(boxes)
        return (w >= m) & (h >= m)


def nms(boxes, scores, iou_threshold, max_output=None, name: str | None = None) -> tf.Tensor:
    """Greedy non-maximum suppression with +1 IoU; indices of the kept boxes, best score first.

    Same result as py-faster-rcnn's ``py_cpu_nms`` (``lib/nms/nms.py``) and the ``gpu_nms`` of the
    proposal op: visit boxes by decreasing score, keep a box unless its IoU (+1 convention) with an
    already kept box is ``> iou_threshold``. Implemented with ``tf.image.non_max_suppression``, whose IoU
    has no +1: we hand it the boxes ``(y1, x1, y2 + 1, x2 + 1)`` (half-open pixel extents), whose plain
    IoU *equals* the +1 IoU of ``(x1, y1, x2, y2)`` for boxes with ``x2 > x1 - 1`` and ``y2 > y1 - 1``
    (every decoded or clipped box). Passing the raw corners instead would make small boxes overlap
    less and keep more of them. Ties in ``scores`` go to the lower index (TF's order; ``py_cpu_nms``'s
    ``argsort()[::-1]`` prefers the higher one).

    Args:
      boxes: ``(N, 4)`` ``(x1, y1, x2, y2)``; scores: ``(N,)``.
      iou_threshold: suppress at IoU strictly above this (DFF: 0.7 for the RPN, ``TEST.NMS = 0.3``
        for the detections).
      max_output: keep at most this many (``None``: no limit).

    Returns:
      ``(K,)`` int32 indices into ``boxes``.
    """
    with tf.name_scope(name or "nms"):
        boxes = _boxes_arg(boxes, "boxes")
        scores = tf.convert_to_tensor(scores)
        if scores.shape.rank is not None and scores.shape.rank != 1:
            raise ValueError(f"`scores` must be a rank-1 tensor (n,); got shape {scores.shape}")
        if isinstance(iou_threshold, numbers.Real) and not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"`iou_threshold` must be in [0, 1]; got {iou_threshold!r}")
        if max_output is None:
            max_output = tf.shape(boxes)[0]
        elif isinstance(max_output, numbers.Number):
            max_output = positive_int(max_output, "max_output", minimum=0)
        x1, y1, x2, y2 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
        half_open = tf.stack([y1, x1, y2 + 1.0, x2 + 1.0], axis=-1)
        return tf.image.non_max_suppression(half_open, tf.cast(scores, tf.float32), max_output,
                                            iou_threshold=iou_threshold)


# -------------------------------------------------------------------------------------- proposals


def proposals(objectness, deltas, anchors, image_size, pre_nms_top_n: int = 6000, post_nms_top_n: int = 300,
              nms_threshold: float = 0.7, min_size: float = 0.0, stds=ANCHOR_STDS, means=(0.0, 0.0, 0.0, 0.0),
              feature_stride: int | None = 16, name: str | None = None):
    """RPN proposal layer for one image (``proposal.py`` / ``MultiProposal`` of the released code).

    Steps: foreground probability = softmax over each anchor's (background, foreground) logit pair;
    decode the deltas (un-normalised with ``stds`` / ``means``) from the anchors; clip to the image; drop
    boxes smaller than ``min_size`` (+1 sizes) and, with ``feature_stride``, anchors at feature cells
    ``h >= int(height / stride)`` or ``w >= int(width / stride)`` (``MultiProposal`` scores them -1: cells
    past the real image); keep the ``pre_nms_top_n`` best (ties: lower index first, the stable sort of
    ``MultiProposal``); NMS at ``nms_threshold`` (+1 IoU, :func:`nms`); keep ``post_nms_top_n``.

    DFF's test setting (``experiments/dff_rfcn/cfgs/resnet_v1_101_flownet_imagenet_vid_rfcn_end2end_ohem
    .yaml``, ``TEST``): ``RPN_PRE_NMS_TOP_N: 6000``, ``RPN_POST_NMS_TOP_N: 300``, ``RPN_NMS_THRESH: 0.7``,
    ``RPN_MIN_SIZE: 0`` (the yaml overrides ``config.py``'s 16); training (``TRAIN``) uses the same values.

    Output is **padded to a fixed length** ``post_nms_top_n`` as ``MultiProposal`` does: if NMS keeps
    ``num_valid < post_nms_top_n`` boxes, the kept ones are repeated cyclically (``keep[i % num_valid]``;
    the Python op pads with random repeats); if none is left, zeros. Slice ``[:num_valid]`` for the
    ragged result. Differences to ``MultiProposal`` (only when fewer than ``post_nms_top_n`` valid boxes
    survive): it keeps filtered boxes with score -1 at the end of the ranking instead of dropping them.

    Args:
      objectness: ``(H, W, 2 * A)`` RPN classification **logits**, channels-last with the reference's
        channel order: ``[..., :A]`` background, ``[..., A:]`` foreground, anchor ``a`` at ``a`` / ``A + a``.
      deltas: ``(H, W, 4 * A)`` RPN box deltas, channel ``4 * a + j`` for ``j`` in ``(dx, dy, dw, dh)``,
        normalised with ``stds`` / ``means`` (DFF: :data:`ANCHOR_STDS`).
      anchors: ``(H * W * A, 4)`` from :func:`shifted_anchors` (position-major, anchor-minor).
      image_size: ``(height, width)`` of the network input (``im_info[:2]``); ints or a tensor.
      min_size: in input-image pixels (the reference multiplies ``RPN_MIN_SIZE`` by the image scale).
      feature_stride: stride of the feature map for the real-image-cell mask; ``None`` disables it.

    Returns:
      ``(boxes, scores, num_valid)``: ``(post_nms_top_n, 4)`` float32 boxes ``(x1, y1, x2, y2)``,
      ``(post_nms_top_n,)`` foreground probabilities, int32 scalar. For :func:`~tfvideo.ops.psroi_pool`
      prepend the batch index: ``tf.pad(boxes, [[0, 0], [1, 0]])`` (image 0).
    """
    pre_nms_top_n = positive_int(pre_nms_top_n, "pre_nms_top_n")
    post_nms_top_n = positive_int(post_nms_top_n, "post_nms_top_n")
    if isinstance(min_size, numbers.Real):
        positive_float(min_size, "min_size", allow_zero=True)
    if feature_stride is not None:
        feature_stride = positive_int(feature_stride, "feature_stride")
    with tf.name_scope(name or "proposals"):
        objectness = tf.convert_to_tensor(objectness)
        deltas = tf.convert_to_tensor(deltas)
        if objectness.shape.rank is not None and objectness.shape.rank != 3:
            raise ValueError(f"`objectness` must be (height, width, 2 * anchors) logits of one image; got "
                             f"shape {objectness.shape}")
        if deltas.shape.rank is not None and deltas.shape.rank != 3:
            raise ValueError(f"`deltas` must be (height, width, 4 * anchors) of one image; got shape {deltas.shape}")
        anchors = _boxes_arg(anchors, "anchors", 2, "(height * width * anchors, 4)")
        if objectness.shape[-1] is not None and objectness.shape[-1] % 2:
            raise ValueError(f"`objectness` must have 2 * anchors channels; got shape {objectness.shape}")
        if (objectness.shape[-1] is not None and deltas.shape[-1] is not None
                and 2 * deltas.shape[-1] != 4 * objectness.shape[-1]):
            raise ValueError(f"`deltas` must have 4 * anchors channels for the 2 * anchors of `objectness`; got "
                             f"objectness shape {objectness.shape} and deltas shape {deltas.shape}")
        height, width = _size_pair(image_size)
        shape = tf.shape(objectness)
        fh, fw, num_anchors = shape[0], shape[1], shape[2] // 2
        tf.debugging.assert_equal(tf.shape(anchors)[0], fh * fw * num_anchors,
                                  message="`anchors` must have height * width * anchors rows")
        logits = tf.cast(objectness, tf.float32)
        scores = tf.nn.softmax(tf.stack([logits[..., :num_anchors], logits[..., num_anchors:]], -1), -1)[..., 1]
        scores = tf.reshape(scores, [-1])  # (H * W * A,), position-major, anchor-minor
        boxes = decode_boxes(tf.cast(anchors, tf.float32), tf.reshape(tf.cast(deltas, tf.float32), [-1, 4]),
                             stds=stds, means=means)
        boxes = clip_boxes(boxes, height, width)
        valid = filter_small(boxes, min_size)
        if feature_stride is not None:
            real_h = tf.cast(tf.math.floor(height / float(feature_stride)), tf.int32)
            real_w = tf.cast(tf.math.floor(width / float(feature_stride)), tf.int32)
            hh, ww = tf.meshgrid(tf.range(fh), tf.range(fw), indexing="ij")
            inside = tf.reshape((hh < real_h) & (ww < real_w), [-1, 1])
            valid &= tf.reshape(tf.tile(inside, [1, num_anchors]), [-1])
        ranked = tf.where(valid, scores, -1.0)  # probabilities are >= 0: -1 marks dropped boxes
        k = tf.minimum(pre_nms_top_n, tf.shape(ranked)[0])
        top_scores, order = tf.math.top_k(ranked, k=k, sorted=True)
        top_boxes = tf.gather(boxes, order)
        x1, y1, x2, y2 = tf.unstack(top_boxes, axis=-1)
        keep = tf.image.non_max_suppression(tf.stack([y1, x1, y2 + 1.0, x2 + 1.0], -1), top_scores,
                                            post_nms_top_n, iou_threshold=nms_threshold, score_threshold=-0.5)
        num_valid = tf.size(keep)
        # cyclic padding; with nothing kept, every row points at an appended all-zero row
        keep = tf.concat([keep, [k]], axis=0)
        pad = tf.gather(keep, tf.range(post_nms_top_n) % tf.maximum(num_valid, 1))
        out_boxes = tf.gather(tf.concat([top_boxes, tf.zeros([1, 4])], axis=0), pad)
        out_scores = tf.gather(tf.concat([top_scores, tf.zeros([1])], axis=0), pad)
        return out_boxes, out_scores, num_valid


# ------------------------------------------------------------------------------ training targets


def _random_subset(mask, count, keys):
    """``mask`` restricted to ``count`` of its True entries chosen uniformly at random (the ones with
    the smallest ``keys``); all of them when there are at most ``count``."""
    order = tf.argsort(tf.where(mask, keys, 2.0), stable=True)
    rank = tf.math.invert_permutation(order)
    return mask & (rank < count)


def anchor_targets(anchors, gt_boxes, image_size, allowed_border: float = 0.0, positive_overlap: float = 0.7,
                   negative_overlap: float = 0.3, batch_size: int = 256, fg_fraction: float = 0.5,
                   clobber_positives: bool = False, stds=ANCHOR_STDS, means=(0.0, 0.0, 0.0, 0.0), seed=None,
                   name: str | None = None):
    """RPN training labels and box targets for one image (``assign_anchor`` of ``lib/rpn/rpn.py``).

    Only anchors inside the image (``x1 >= -b``, ``y1 >= -b``, ``x2 < width + b``, ``y2 < height + b``
    with ``b = allowed_border``) are labelled; the others get label -1 and zero targets. Among the
    inside anchors, with the +1 IoU of :func:`box_iou`:

    1. label 0 if the best IoU with any gt box is ``< negative_overlap`` (0.3) (before step 2-3 unless
       ``clobber_positives``, then after them);
    2. label 1 for, per gt box, every anchor reaching that gt's maximum IoU over the inside anchors (ties
       included; as the reference, also when that maximum is 0);
    3. label 1 if the best IoU is ``>= positive_overlap`` (0.7);
    4. if more than ``int(fg_fraction * batch_size)`` (128) positives, a uniformly random subset of them
       is kept and the rest set to -1; then if more than ``batch_size - #positives`` negatives, likewise.

    With no gt boxes all inside anchors are negatives (then subsampled). Defaults are DFF's
    ``TRAIN.RPN_*`` values and ``allowed_border=0`` of its ``AnchorLoader``.

    Targets are ``encode_boxes(anchor, best gt, stds, means)`` for **every inside anchor** (the reference
    also fills them for non-positives; its weights zero them in the loss), zeros elsewhere; DFF normalises
    them with :data:`ANCHOR_STDS` (``NORMALIZE_RPN``). ``bbox_weights`` are 1 on positives, else 0
    (``RPN_BBOX_WEIGHTS = (1, 1, 1, 1)``).

    Random choices come from ``tf.random.stateless_uniform`` with ``seed`` (an int or a pair of ints, or a
    shape-(2,) int tensor): the same seed gives the same labels. ``seed=None`` draws a seed at random.
    (The reference uses ``numpy.random.choice``; the distribution of the kept subset is the same, the
    draws are not.)

    Args:
      anchors: ``(N, 4)`` all anchors (:func:`shifted_anchors`); gt_boxes: ``(G, 4)``, ``G >= 0``;
      image_size: ``(height, width)`` of the network input.

    Returns:
      ``(labels, bbox_targets, bbox_weights)``: ``(N,)`` int32 in ``{1, 0, -1}``, ``(N, 4)`` float32,
      ``(N, 4)`` float32, rows in the order of ``anchors``.
    """
    batch_size = positive_int(batch_size, "batch_size")
    for v, arg in ((fg_fraction, "fg_fraction"), (positive_overlap, "positive_overlap"),
                   (negative_overlap, "negative_overlap")):
        if not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
            raise ValueError(f"`{arg}` must be a number in [0, 1]; got {v!r}")
    with tf.name_scope(name or "anchor_targets"):
        anchors = tf.cast(_boxes_arg(anchors, "anchors"), tf.float32)
        gt_boxes = tf.cast(_boxes_arg(gt_boxes, "gt_boxes", 2, "(num_gt, 4) as (x1, y1, x2, y2)"), tf.float32)
        height, width = _size_pair(image_size)
        seed = _seed_arg(seed)
        border = float(allowed_border)
        n = tf.shape(anchors)[0]
        num_gt = tf.shape(gt_boxes)[0]
        inside = ((anchors[:, 0] >= -border) & (anchors[:, 1] >= -border)
                  & (anchors[:, 2] < width + border) & (anchors[:, 3] < height + border))
        overlaps = tf.where(inside[:, None], box_iou(anchors, gt_boxes), -1.0)  # (N, G); -1 outside
        max_overlaps = tf.reduce_max(tf.concat([overlaps, -tf.ones([n, 1])], axis=1), axis=1)
        # best gt per anchor; with G == 0 the padded column G is chosen and the targets zeroed below
        argmax = tf.argmax(tf.concat([overlaps, -2.0 * tf.ones([n, 1])], axis=1), axis=1, output_type=tf.int32)
        gt_max = tf.reduce_max(overlaps, axis=0)  # (G,) best over inside anchors
        is_gt_best = inside & tf.reduce_any(tf.equal(overlaps, gt_max[None, :]), axis=1)
        neg = inside & (max_overlaps < negative_overlap)
        pos = inside & (is_gt_best | (max_overlaps >= positive_overlap))
        labels = -tf.ones([n], tf.int32)
        if not clobber_positives:
            labels = tf.where(neg, 0, labels)
            labels = tf.where(pos, 1, labels)
        else:
            labels = tf.where(pos, 1, labels)
            labels = tf.where(neg, 0, labels)
        labels = tf.where(inside & tf.equal(num_gt, 0), 0, labels)
        keys = tf.random.stateless_uniform([2, n], seed)
        num_fg = int(fg_fraction * batch_size)
        fg = _random_subset(tf.equal(labels, 1), num_fg, keys[0])
        labels = tf.where(tf.equal(labels, 1) & ~fg, -1, labels)
        num_bg = batch_size - tf.reduce_sum(tf.cast(fg, tf.int32))
        bg = _random_subset(tf.equal(labels, 0), num_bg, keys[1])
        labels = tf.where(tf.equal(labels, 0) & ~bg, -1, labels)
        dummy = tf.constant([[0.0, 0.0, 15.0, 15.0]])  # matched when G == 0; its targets are zeroed
        matched = tf.gather(tf.concat([gt_boxes, dummy], axis=0), argmax)
        targets = encode_boxes(anchors, matched, stds=stds, means=means)
        targets = tf.where((inside & (num_gt > 0))[:, None], targets, 0.0)
        weights = tf.where(tf.equal(labels, 1)[:, None], tf.ones([n, 4]), tf.zeros([n, 4]))
        return labels, targets, weights


def proposal_targets(rois, gt_boxes, gt_labels, rois_per_image: int = -1, fg_fraction: float = 0.25,
                     fg_thresh: float = 0.5, bg_thresh_hi: float = 0.5, bg_thresh_lo: float = 0.0,
                     stds=BBOX_STDS, means=(0.0, 0.0, 0.0, 0.0), seed=None, name: str | None = None):
    """R-FCN training RoIs, labels and class-agnostic box targets for one image (``proposal_target.py``
    + ``sample_rois`` of ``dff_rfcn/core/rcnn.py``).

    The gt boxes are appended to ``rois`` (candidates ``M = N + G``). Each candidate takes the gt of
    highest +1 IoU (first on ties). Foreground: IoU ``>= fg_thresh`` (0.5); background: IoU in
    ``[bg_thresh_lo, bg_thresh_hi)`` (DFF: ``[0.0, 0.5)``, ``BG_THRESH_LO = 0.0``, so every candidate is
    one or the other). With ``rois_per_image = -1`` (DFF's ``BATCH_ROIS: -1``; OHEM then picks 128
    later) all foregrounds and backgrounds are kept and ``R = M`` (padded with random candidates if
    other thresholds leave some candidate neither). With ``rois_per_image = R > 0``, at
    most ``round(fg_fraction * R)`` foregrounds and ``R - #fg`` backgrounds are drawn at random without
    replacement, and missing rows are filled with random candidates (label 0, as the reference's
    ``labels[fg_rois_per_this_image:] = 0`` makes them even when they overlap a gt).

    Output order: the kept foregrounds (increasing candidate index), then the kept backgrounds
    (increasing index), then the padding; for ``rois_per_image = -1`` this is exactly the reference's
    order (it only shuffles when it subsamples). Labels are ``gt_labels`` of the matched gt for
    foregrounds, 0 otherwise. ``bbox_targets`` are ``encode_boxes(roi, matched gt, stds, means)`` for the
    foregrounds and 0 for the rest; ``bbox_weights`` 1 for the foregrounds (``BBOX_WEIGHTS = 1``). The
    reference's class-agnostic ``(R, 8)`` layout is ``concat([zeros, bbox_targets], -1)`` (slot 1 = "object").

    Args:
      rois: ``(N, 4)`` proposals ``(x1, y1, x2, y2)`` (no batch-index column); gt_boxes: ``(G, 4)``;
        gt_labels: ``(G,)`` int class ids ``1..C`` (0 is background). ``G = 0`` (a frame without objects,
        which our pair datasets keep as an all-background sample; the reference drops such images from
        its roidb) makes every RoI a background.
      seed: as :func:`anchor_targets`; used for the subsampling and the padding (with ``rois_per_image =
        -1`` and DFF's thresholds there is neither, and the result does not depend on it).

    Returns:
      ``(rois, labels, bbox_targets, bbox_weights)``: ``(R, 4)`` float32, ``(R,)`` int32, ``(R, 4)``
      float32, ``(R, 4)`` float32.
    """
    if not (rois_per_image == -1 or (isinstance(rois_per_image, numbers.Integral)
                                     and not isinstance(rois_per_image, bool) and rois_per_image >= 1)):
        raise ValueError(f"`rois_per_image` must be -1 (keep all) or an integer >= 1; got {rois_per_image!r}")
    for v, arg in ((fg_fraction, "fg_fraction"), (fg_thresh, "fg_thresh"), (bg_thresh_hi, "bg_thresh_hi"),
                   (bg_thresh_lo, "bg_thresh_lo")):
        if not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
            raise ValueError(f"`{arg}` must be a number in [0, 1]; got {v!r}")
    with tf.name_scope(name or "proposal_targets"):
        rois = tf.cast(_boxes_arg(rois, "rois", 2, "(num_rois, 4) as (x1, y1, x2, y2)"), tf.float32)
        gt_boxes = tf.cast(_boxes_arg(gt_boxes, "gt_boxes", 2, "(num_gt, 4) as (x1, y1, x2, y2)"), tf.float32)
        gt_labels = tf.convert_to_tensor(gt_labels)
        if not gt_labels.dtype.is_integer or (gt_labels.shape.rank is not None and gt_labels.shape.rank != 1):
            raise ValueError(f"`gt_labels` must be a rank-1 integer tensor (num_gt,); got {gt_labels.dtype.name} "
                             f"of shape {gt_labels.shape}")
        tf.debugging.assert_equal(tf.shape(gt_labels)[0], tf.shape(gt_boxes)[0],
                                  message="`gt_labels` must have one entry per row of `gt_boxes`")
        cand = tf.concat([rois, gt_boxes], axis=0)
        m = tf.shape(cand)[0]
        # a zero column (IoU 0 with a dummy gt) makes G == 0 work: every candidate is then background;
        # with G >= 1 it never changes the result (argmax takes the first maximum, a real gt)
        overlaps = tf.concat([box_iou(cand, gt_boxes), tf.zeros([m, 1])], axis=1)
        assignment = tf.argmax(overlaps, axis=1, output_type=tf.int32)
        max_overlaps = tf.reduce_max(overlaps, axis=1)
        gt_boxes = tf.concat([gt_boxes, tf.constant([[0.0, 0.0, 15.0, 15.0]])], axis=0)
        gt_labels = tf.concat([gt_labels, tf.zeros([1], gt_labels.dtype)], axis=0)
        fg_mask = max_overlaps >= fg_thresh
        bg_mask = (max_overlaps < bg_thresh_hi) & (max_overlaps >= bg_thresh_lo)
        keys = tf.random.stateless_uniform([3, m], _seed_arg(seed))
        if rois_per_image == -1:
            total = m
            fg_keep, bg_keep = fg_mask, bg_mask
        else:
            total = rois_per_image
            fg_keep = _random_subset(fg_mask, int(np.round(fg_fraction * rois_per_image)), keys[0])
            n_fg = tf.reduce_sum(tf.cast(fg_keep, tf.int32))
            bg_keep = _random_subset(bg_mask, total - n_fg, keys[1])
        fg_idx = tf.cast(tf.where(fg_keep)[:, 0], tf.int32)
        bg_idx = tf.cast(tf.where(bg_keep)[:, 0], tf.int32)
        chosen = tf.concat([fg_idx, bg_idx], axis=0)
        gap = total - tf.shape(chosen)[0]
        # padding (R > #fg + #bg): random candidates, a random permutation repeated as often as needed
        pad_idx = tf.gather(tf.argsort(keys[2]), tf.range(gap) % m)
        keep = tf.concat([chosen, pad_idx], axis=0)
        n_fg = tf.shape(fg_idx)[0]
        is_fg = tf.range(tf.shape(keep)[0]) < n_fg
        out_rois = tf.gather(cand, keep)
        matched = tf.gather(gt_boxes, tf.gather(assignment, keep))
        labels = tf.where(is_fg, tf.cast(tf.gather(gt_labels, tf.gather(assignment, keep)), tf.int32), 0)
        targets = encode_boxes(out_rois, matched, stds=stds, means=means)
        targets = tf.where(is_fg[:, None], targets, 0.0)
        weights = tf.where(is_fg[:, None], tf.ones_like(targets), tf.zeros_like(targets))
        return out_rois, labels, targets, weights
