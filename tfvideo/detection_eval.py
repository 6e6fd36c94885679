"""ImageNet VID detection mAP, as the ILSVRC2015 devkit's ``eval_vid_detection.m`` computes it.

:func:`vid_map` follows the devkit (and its Python transcription in Deep Feature Flow,
``lib/dataset/imagenet_vid_eval.py``) step by step:

1. Every ground-truth box gets its own IoU threshold ``thr = min(0.5, w h / ((w + 10) (h + 10)))``
   with ``w = x2 - x1 + 1``, ``h = y2 - y1 + 1`` (inclusive corners): small objects are matched with a
   looser threshold (a 10 x 10 box needs IoU >= 0.25).
2. Per frame, the detections are sorted by decreasing score (stable) and matched greedily: a
   detection goes to the *unmatched* ground-truth box of its class, in its frame, with the largest
   IoU among those whose IoU reaches their own threshold (first such box on ties); it is a true
   positive if there is one, else a false positive (so a second detection of an already matched
   object is a false positive). IoU uses inclusive corners: ``iw = min(x2) - max(x1) + 1`` (> 0
   required), union ``(w_d h_d) + (w_g h_g) - iw ih``.
3. Per class, the detections of all frames are sorted by decreasing score (stable, frames in the order
   of ``ground_truth``: MATLAB's ``sort(..., 'descend')``), precision ``tp / (tp + fp)`` and recall
   ``tp / npos`` accumulate, and the AP is the VOC 2010+ all-point interpolated area
   (:func:`average_precision`, the devkit's ``VOCap``): precision made monotone from the right, summed
   over the recall steps.

Frames: only frames in ``ground_truth`` count (the devkit prunes detections of frames outside its
image list); a frame annotated with zero boxes belongs in ``ground_truth`` with empty arrays (its
detections are false positives).

A class without ground truth (``npos = 0``): its AP is undefined and returned as NaN, and the mAP is
the mean over the classes *with* ground truth. The devkit returns 0 for such a class when it has no
detection either (and averages it in) and NaN otherwise (a NaN mAP); on ImageNet VID val every class has
ground truth, so the numbers agree there.

Example
-------
>>> import numpy as np
>>> gt = {("v", 0): {"boxes": np.array([[0., 0, 9, 9]]), "labels": np.array([0])}}
>>> det = {("v", 0): {"boxes": np.array([[0., 0, 9, 9], [0, 0, 9, 9]]), "scores": np.array([.9, .8]),
...                   "labels": np.array([0, 0])}}
>>> r = vid_map(det, gt, num_classes=1)
>>> float(r["map"]), r["num_positives"].tolist()   # the duplicate is a false positive after recall 1
(1.0, [1])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["average_precision", "iou_thresholds", "box_overlaps", "vid_map", "DEFAULT_IOU",
           "PIXEL_TOLERANCE"]

#: The devkit's ``defaultIOUthr`` and ``pixelTolerance``.
DEFAULT_IOU = 0.5
PIXEL_TOLERANCE = 10


def average_precision(recall, precision) -> float:
    """All-point interpolated AP (the devkit's and PASCAL VOC 2010+'s ``VOCap``).

    With sentinels ``mrec = [0, recall, 1]`` and ``mpre = [0, precision, 0]``, ``mpre`` is made
    non-increasing from the right (``mpre[i] = max(mpre[i], mpre[i + 1])``) and
    ``AP = sum over i with mrec[i] != mrec[i-1] of (mrec[i] - mrec[i-1]) mpre[i]``.

    Args:
      recall, precision: 1-D arrays of the same length, in ranking order (may be empty: AP 0).
    """
    rec = np.asarray(recall, np.float64)
    prec = np.asarray(precision, np.float64)
    if rec.ndim != 1 or prec.shape != rec.shape:
        raise ValueError(f"recall and precision must be 1-D arrays of the same length, got shapes "
                         f"{rec.shape} and {prec.shape}")
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def iou_thresholds(boxes, default=DEFAULT_IOU, pixel_tolerance=PIXEL_TOLERANCE):
    """Per ground-truth box threshold ``min(default, w h / ((w + t) (h + t)))`` (inclusive corners)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    return np.minimum(default, (w * h) / ((w + pixel_tolerance) * (h + pixel_tolerance)))


def box_overlaps(boxes, gt_boxes):
    """IoU ``(N, M)`` of inclusive-corner boxes as the devkit computes it; pairs that do not
    intersect (``iw <= 0`` or ``ih <= 0``) get ``-inf``."""
    a = np.asarray(boxes, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(gt_boxes, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1.0
    union = ((a[..., 2] - a[..., 0] + 1.0) * (a[..., 3] - a[..., 1] + 1.0)
             + (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0) - iw * ih)
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = iw * ih / union
    return np.where((iw > 0) & (ih > 0), ov, -np.inf)


def _arrays(entry, keys, where, num_classes):
    if not isinstance(entry, Mapping) or any(k not in entry for k in keys):
        raise ValueError(f"{where} must be a mapping with keys {', '.join(keys)}, got "
                         f"{sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__}")
    boxes = np.asarray(entry["boxes"], np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    labels = np.asarray(entry["labels"]).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(labels) != len(boxes):
        raise ValueError(f"{where}: boxes must be (N, 4) with N labels, got {boxes.shape} and "
                         f"{labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must be integers in [0, {num_classes - 1}], got "
                         f"{np.unique(labels)[:10].tolist()}")
    out = [boxes, labels.astype(np.int64)]
    if "scores" in keys:
        scores = np.asarray(entry["scores"], np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"{where}: scores must hold one score per box ({len(boxes)}), got "
                             f"{len(scores)}")
        out.append(scores)
    return out


def vid_map(detections, ground_truth, num_classes, *, class_names=None, default_iou=DEFAULT_IOU,
            pixel_tolerance=PIXEL_TOLERANCE) -> dict:
    """ImageNet VID mAP of ``detections`` against ``ground_truth`` (module doc for the protocol).

    Args:
      detections: mapping ``frame key -> {"boxes": (N, 4), "scores": (N,), "labels": (N,)}``; the
        keys are anything hashable (e.g. ``(video_id, frame_index)``); frames not in
        ``ground_truth`` are ignored.
      ground_truth: mapping ``frame key -> {"boxes": (M, 4), "labels": (M,)}``, one entry per annotated
        frame (zero boxes allowed). Boxes are ``(x1, y1, x2, y2)`` inclusive corners in the pixels
        the thresholds are meant for (the stored frames'; the devkit uses the original images').
      num_classes: ``C``; labels are ``0..C-1``.
      class_names: optional ``C`` names, for ``per_class``.
      default_iou, pixel_tolerance: the devkit's 0.5 and 10.

    Returns:
      dict: ``ap`` float64 ``(C,)`` (NaN for a class without ground truth), ``map`` (mean over the
      classes with ground truth), ``num_positives`` ``(C,)``, ``num_detections`` ``(C,)`` (those on
      ground-truth frames), ``recall`` and ``precision`` (lists of ``C`` arrays, ranking order) and,
      with ``class_names``, ``per_class`` ``{name: ap}``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(detections, Mapping) or not isinstance(ground_truth, Mapping):
        raise TypeError("detections and ground_truth must be mappings frame key -> dict of arrays, got "
                        f"{type(detections).__name__} and {type(ground_truth).__name__}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names must hold {num_classes} names, got {len(class_names)}")
    if not ground_truth:
        raise ValueError("ground_truth holds no frame")
    npos = np.zeros(num_classes, np.int64)
    all_tp, all_scores, all_labels = [], [], []
    for key, gt in ground_truth.items():
        gt_boxes, gt_labels = _arrays(gt, ("boxes", "labels"), f"ground_truth[{key!r}]", num_classes)
        npos += np.bincount(gt_labels, minlength=num_classes)
        if key not in detections:
            continue
        boxes, labels, scores = _arrays(detections[key], ("boxes", "scores", "labels"),
                                        f"detections[{key!r}]", num_classes)
        order = np.argsort(-scores, kind="stable")
        boxes, labels, scores = boxes[order], labels[order], scores[order]
        ov = box_overlaps(boxes, gt_boxes)
        ov[(labels[:, None] != gt_labels[None, :]) | (ov < iou_thresholds(
            gt_boxes, default_iou, pixel_tolerance)[None, :])] = -np.inf
        tp = np.zeros(len(boxes), bool)
        detected = np.zeros(len(gt_boxes), bool)
        for j in np.flatnonzero((ov > -np.inf).any(axis=1)):  # the others are false positives
            row = np.where(detected, -np.inf, ov[j])
            k = int(np.argmax(row))  # the first maximum, as the devkit's strict ``ov > ovmax``
            if row[k] > -np.inf:
                tp[j] = detected[k] = True
        all_tp.append(tp)
        all_scores.append(scores)
        all_labels.append(labels)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    tp, labels = tp[order], labels[order]
    ap = np.full(num_classes, np.nan)
    recalls, precisions, counts = [], [], np.zeros(num_classes, np.int64)
    for c in range(num_classes):
        hits = tp[labels == c].astype(np.float64)
        counts[c] = len(hits)
        ctp, cfp = np.cumsum(hits), np.cumsum(1.0 - hits)
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        recall = ctp / npos[c] if npos[c] else np.full(len(hits), np.nan)
        recalls.append(recall)
        precisions.append(precision)
        if npos[c]:
            ap[c] = average_precision(recall, precision)
    out = {"ap": ap, "map": float(np.nanmean(ap)) if npos.any() else float("nan"),
           "num_positives": npos, "num_detections": counts, "recall": recalls,
           "precision": precisions}
    if class_names is not None:
        out["per_class"] = {str(n): float(a) for n, a in zip(class_names, ap)}
    return out
