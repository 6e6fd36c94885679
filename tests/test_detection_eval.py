"""Tests of tfvideo.detection_eval: hand-computed rankings and a literal transcription of the ILSVRC
VID devkit's eval_vid_detection.m loops (per detection, per ground-truth box) on random cases."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from tfvideo import detection_eval
from tfvideo.detection_eval import average_precision, iou_thresholds, vid_map


def test_doctests():
    assert doctest.testmod(detection_eval).failed == 0


def _gt(boxes, labels):
    return {"boxes": np.asarray(boxes, float).reshape(-1, 4), "labels": np.asarray(labels, int)}


def _det(boxes, scores, labels):
    return {"boxes": np.asarray(boxes, float).reshape(-1, 4), "scores": np.asarray(scores, float),
            "labels": np.asarray(labels, int)}


def test_average_precision_by_hand():
    # precision made monotone from the right: [1, 2/3, 2/3]; recall steps 0.5 and 0.5
    assert average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([], []) == 0.0
    assert average_precision([0.25, 0.5], [1.0, 1.0]) == pytest.approx(0.5)  # recall never reaches 1
    with pytest.raises(ValueError, match="same length"):
        average_precision([0.5], [1.0, 1.0])


def test_ranking_by_hand():
    # frames A (two objects) and B (one object), class 0
    gt = {"A": _gt([[0, 0, 9, 9], [50, 50, 69, 69]], [0, 0]), "B": _gt([[20, 20, 39, 39]], [0])}
    det = {"A": _det([[0, 0, 9, 9], [50, 50, 69, 69]], [0.9, 0.6], [0, 0]),
           "B": _det([[100, 100, 109, 109], [20, 20, 39, 39]], [0.8, 0.7], [0, 0])}
    r = vid_map(det, gt, num_classes=1)
    # ranking .9 TP, .8 FP, .7 TP, .6 TP; npos 3: recall 1/3, 1/3, 2/3, 1, precision 1, 1/2, 2/3, 3/4
    np.testing.assert_allclose(r["recall"][0], [1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(r["precision"][0], [1, 1 / 2, 2 / 3, 3 / 4])
    assert r["ap"][0] == pytest.approx(1 / 3 + 1 / 3 * 0.75 + 1 / 3 * 0.75)
    assert r["map"] == pytest.approx(r["ap"][0]) and r["num_positives"].tolist() == [3]


def test_small_object_threshold():
    # a 10x10 box: thr = 100 / (20 * 20) = 0.25; a 100x100 box: min(0.5, 10000 / 12100) = 0.5
    np.testing.assert_allclose(iou_thresholds([[0, 0, 9, 9], [0, 0, 99, 99], [0, 0, 9, 39]]),
                               [0.25, 0.5, 400 / 1000])
    # IoU 0.3 (a 10x3 part of a 10x10 box) is a hit on the small box...
    small = vid_map({"f": _det([[0, 0, 9, 2]], [1.0], [0])}, {"f": _gt([[0, 0, 9, 9]], [0])}, 1)
    assert small["ap"][0] == pytest.approx(1.0)
    # ...but not on a large one (IoU 30 x 100 / 100 x 100 = 0.3 < 0.5)
    large = vid_map({"f": _det([[0, 0, 99, 29]], [1.0], [0])}, {"f": _gt([[0, 0, 99, 99]], [0])}, 1)
    assert large["ap"][0] == 0.0


def test_duplicates_are_false_positives():
    gt = {"f": _gt([[0, 0, 9, 9], [40, 40, 59, 59]], [0, 0])}
    det = {"f": _det([[0, 0, 9, 9], [0, 0, 9, 9], [40, 40, 59, 59]], [0.9, 0.8, 0.7], [0, 0, 0])}
    r = vid_map(det, gt, 1)
    # TP, FP (object already matched), TP: recall .5 .5 1, precision 1 .5 2/3
    np.testing.assert_allclose(r["precision"][0], [1, 0.5, 2 / 3])
    assert r["ap"][0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # the devkit matches a duplicate to another *unmatched* object that passes its own threshold:
    # IoU of [0, 0, 9, 9] with [5, 0, 14, 9] is 50 / 150 = 1/3 >= 0.25
    gt = {"f": _gt([[0, 0, 9, 9], [5, 0, 14, 9]], [0, 0])}
    det = {"f": _det([[0, 0, 9, 9], [0, 0, 9, 9]], [0.9, 0.8], [0, 0])}
    assert vid_map(det, gt, 1)["ap"][0] == pytest.approx(1.0)
    # a detection of another class never matches
    r = vid_map({"f": _det([[0, 0, 9, 9]], [0.9], [1])}, {"f": _gt([[0, 0, 9, 9]], [0])}, 2)
    assert r["ap"][0] == 0.0


def test_class_without_ground_truth_is_excluded():
    gt = {"f": _gt([[0, 0, 9, 9], [20, 20, 29, 29]], [0, 2]), "g": _gt([], [])}
    det = {"f": _det([[0, 0, 9, 9], [20, 20, 29, 29], [50, 50, 59, 59]], [0.9, 0.8, 0.7], [0, 1, 2]),
           "g": _det([[0, 0, 9, 9]], [0.95], [2]),  # a frame with zero boxes: a false positive
           "not annotated": _det([[0, 0, 9, 9]], [0.99], [0])}  # ignored, as the devkit prunes it
    r = vid_map(det, gt, 3, class_names=["a", "b", "c"])
    assert r["ap"][0] == pytest.approx(1.0)
    assert np.isnan(r["ap"][1]) and r["num_positives"].tolist() == [1, 0, 1]
    # class 2 ranking: .95 FP (frame g, no object), .7 FP (no overlap) -> AP 0
    assert r["ap"][2] == 0.0
    assert r["map"] == pytest.approx(0.5)  # mean over classes 0 and 2
    assert r["num_detections"].tolist() == [1, 1, 2]
    assert set(r["per_class"]) == {"a", "b", "c"} and np.isnan(r["per_class"]["b"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(detections={"f": _det([[0, 0, 1, 1]], [1.0], [3])}, ground_truth={"f": _gt([], [])}),
     r"labels must be integers in \[0, 1\]"),
    (dict(detections={"f": {"boxes": [[0, 0, 1, 1]], "labels": [0]}}, ground_truth={"f": _gt([], [])}),
     "keys boxes, scores, labels"),
    (dict(detections={}, ground_truth={"f": {"boxes": [[0, 0, 1, 1, 1]], "labels": [0]}}),
     r"boxes must be \(N, 4\)"),
    (dict(detections={}, ground_truth={}), "holds no frame"),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vid_map(num_classes=2, **kwargs)


# ------------------------------------------------------------------ devkit transcription ----
def _devkit(det_frames, gt_frames, num_classes):
    """eval_vid_detection.m transcribed loop by loop (frames in ground-truth order)."""
    npos = np.zeros(num_classes)
    tp_cells, fp_cells, lab_cells, conf_cells = [], [], [], []
    for key, gt in gt_frames.items():
        gt_b, gt_l = gt["boxes"], gt["labels"]
        w = gt_b[:, 2] - gt_b[:, 0] + 1
        h = gt_b[:, 3] - gt_b[:, 1] + 1
        thr = np.minimum(0.5, (w * h) / ((w + 10) * (h + 10)))
        for c in gt_l:
            npos[c] += 1
        d = det_frames.get(key, _det([], [], []))
        ind = np.argsort(-d["scores"], kind="stable")
        bbs, labels, confs = d["boxes"][ind], d["labels"][ind], d["scores"][ind]
        detected = np.zeros(len(gt_l))
        tp, fp = np.zeros(len(labels)), np.zeros(len(labels))
        for j in range(len(labels)):
            bb = bbs[j]
            ovmax, kmax = -np.inf, -1
            for k in range(len(gt_l)):
                if labels[j] != gt_l[k] or detected[k] > 0:
                    continue
                bbgt = gt_b[k]
                bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
                iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
                if iw > 0 and ih > 0:
                    ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                          + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih)
                    ov = iw * ih / ua
                    if ov >= thr[k] and ov > ovmax:
                        ovmax, kmax = ov, k
            if kmax >= 0:
                tp[j], detected[kmax] = 1, 1
            else:
                fp[j] = 1
        tp_cells.append(tp)
        fp_cells.append(fp)
        lab_cells.append(labels)
        conf_cells.append(confs)
    confs = np.concatenate(conf_cells)
    ind = np.argsort(-confs, kind="stable")
    tp_all, fp_all = np.concatenate(tp_cells)[ind], np.concatenate(fp_cells)[ind]
    labels = np.concatenate(lab_cells)[ind]
    ap = []
    for c in range(num_classes):
        tp, fp = np.cumsum(tp_all[labels == c]), np.cumsum(fp_all[labels == c])
        rec, prec = tp / npos[c], tp / (fp + tp)
        mrec, mpre = np.concatenate([[0], rec, [1]]), np.concatenate([[0], prec, [0]])
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
        ap.append(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))
    return np.array(ap)


def _random_boxes(rng, n, size=60):
    xy = rng.integers(0, size, (n, 2)).astype(float)
    wh = rng.integers(1, 25, (n, 2)).astype(float)
    return np.concatenate([xy, xy + wh - 1], axis=1)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_devkit_transcription(seed):
    rng = np.random.default_rng(seed)
    classes = 3
    gt, det = {}, {}
    for f in range(8):
        m = int(rng.integers(0, 5))
        gt_boxes = _random_boxes(rng, m)
        gt_labels = rng.integers(0, classes, m)
        gt[f"v/{f}"] = _gt(gt_boxes, gt_labels)
        n = int(rng.integers(0, 9))
        boxes, labels = _random_boxes(rng, n), rng.integers(0, classes, n)
        if m:  # most detections jittered from a ground-truth box, with its class
            near = rng.random(n) < 0.7
            src = rng.integers(0, m, n)
            jitter = np.sort((gt_boxes[src] + rng.normal(0, 2, (n, 4))).reshape(n, 2, 2), axis=1)
            boxes = np.where(near[:, None], jitter.reshape(n, 4), boxes)  # x1 <= x2, y1 <= y2
            labels = np.where(near, gt_labels[src], labels)
        scores = np.round(rng.random(n), 1)  # ties on purpose: the order must be the devkit's
        det[f"v/{f}"] = _det(boxes, scores, labels)
    for c in range(classes):  # every class needs ground truth for the devkit's numbers
        gt[f"extra/{c}"] = _gt([[0, 0, 9, 9]], [c])
    want = _devkit(det, gt, classes)
    got = vid_map(det, gt, classes)
    np.testing.assert_allclose(got["ap"], want, rtol=0, atol=1e-12)
    assert got["map"] == pytest.approx(np.mean(want))
