"""Box ops against NumPy transcriptions of py-faster-rcnn / Deep Feature Flow's released code
(generate_anchor.py, bbox_transform.py, nms.py, proposal.py, rpn.py:assign_anchor, rcnn.py:sample_rois)
and hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.ops.boxes import (
    ANCHOR_STDS,
    BBOX_STDS,
    anchor_targets,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    filter_small,
    generate_anchors,
    nms,
    proposal_targets,
    proposals,
    shifted_anchors,
)

# ------------------------------------------------------------------ NumPy transcriptions (reference)


def ref_generate_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    def whctrs(a):
        w, h = a[2] - a[0] + 1, a[3] - a[1] + 1
        return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)

    def mkanchors(ws, hs, x, y):
        ws, hs = ws[:, None], hs[:, None]
        return np.hstack((x - 0.5 * (ws - 1), y - 0.5 * (hs - 1), x + 0.5 * (ws - 1), y + 0.5 * (hs - 1)))

    def ratio_enum(a, ratios):
        w, h, x, y = whctrs(a)
        ws = np.round(np.sqrt(w * h / np.asarray(ratios, float)))
        return mkanchors(ws, np.round(ws * np.asarray(ratios, float)), x, y)

    def scale_enum(a, scales):
        w, h, x, y = whctrs(a)
        return mkanchors(w * np.asarray(scales, float), h * np.asarray(scales, float), x, y)

    base = np.array([1, 1, base_size, base_size]) - 1
    r = ratio_enum(base, ratios)
    return np.vstack([scale_enum(r[i], scales) for i in range(r.shape[0])])


def ref_shift(base, h, w, stride):
    sx, sy = np.meshgrid(np.arange(w) * stride, np.arange(h) * stride)
    shifts = np.vstack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel())).T
    a, k = base.shape[0], shifts.shape[0]
    return (base.reshape(1, a, 4) + shifts.reshape(1, k, 4).transpose(1, 0, 2)).reshape(k * a, 4)


def ref_bbox_transform(ex, gt):
    ew, eh = ex[:, 2] - ex[:, 0] + 1.0, ex[:, 3] - ex[:, 1] + 1.0
    ex_x, ex_y = ex[:, 0] + 0.5 * (ew - 1.0), ex[:, 1] + 0.5 * (eh - 1.0)
    gw, gh = gt[:, 2] - gt[:, 0] + 1.0, gt[:, 3] - gt[:, 1] + 1.0
    gx, gy = gt[:, 0] + 0.5 * (gw - 1.0), gt[:, 1] + 0.5 * (gh - 1.0)
    return np.vstack(((gx - ex_x) / (ew + 1e-14), (gy - ex_y) / (eh + 1e-14), np.log(gw / ew), np.log(gh / eh))).T


def ref_bbox_pred(boxes, d):
    w, h = boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0
    cx, cy = boxes[:, 0] + 0.5 * (w - 1.0), boxes[:, 1] + 0.5 * (h - 1.0)
    pcx, pcy = d[:, 0] * w + cx, d[:, 1] * h + cy
    pw, ph = np.exp(d[:, 2]) * w, np.exp(d[:, 3]) * h
    return np.stack([pcx - 0.5 * (pw - 1.0), pcy - 0.5 * (ph - 1.0), pcx + 0.5 * (pw - 1.0), pcy + 0.5 * (ph - 1.0)], 1)


def ref_clip(boxes, im_shape):
    b = boxes.copy()
    b[:, 0::2] = np.maximum(np.minimum(b[:, 0::2], im_shape[1] - 1), 0)
    b[:, 1::2] = np.maximum(np.minimum(b[:, 1::2], im_shape[0] - 1), 0)
    return b


def ref_overlaps(boxes, query):
    out = np.zeros((boxes.shape[0], query.shape[0]))
    for k in range(query.shape[0]):
        qa = (query[k, 2] - query[k, 0] + 1) * (query[k, 3] - query[k, 1] + 1)
        for n in range(boxes.shape[0]):
            iw = min(boxes[n, 2], query[k, 2]) - max(boxes[n, 0], query[k, 0]) + 1
            if iw > 0:
                ih = min(boxes[n, 3], query[k, 3]) - max(boxes[n, 1], query[k, 1]) + 1
                if ih > 0:
                    ba = (boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1)
                    out[n, k] = iw * ih / float(ba + qa - iw * ih)
    return out


def ref_nms(dets, thresh):
    """py_cpu_nms of lib/nms/nms.py."""
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return np.array(keep, dtype=int)


def random_boxes(rng, n, size=100.0, max_side=40.0, min_side=1.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(min_side, max_side, (n, 2))
    return np.concatenate([xy, xy + wh - 1], 1)


# --------------------------------------------------------------------------------------- anchors

PY_FASTER_RCNN_ANCHORS = [  # python output of py-faster-rcnn's generate_anchors() (MATLAB: +1 each)
    [-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
    [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
    [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359],
]


def test_famous_nine_anchors():
    np.testing.assert_array_equal(generate_anchors(), PY_FASTER_RCNN_ANCHORS)
    np.testing.assert_array_equal(ref_generate_anchors(), PY_FASTER_RCNN_ANCHORS)
    # hand check of row 0: w = round(sqrt(512)) = 23, h = round(11.5) = 12, x8 -> 184 x 96 around 7.5
    assert generate_anchors()[0].tolist() == [7.5 - 91.5, 7.5 - 47.5, 7.5 + 91.5, 7.5 + 47.5]


@pytest.mark.parametrize("base,ratios,scales", [(8, (0.25, 0.5, 1, 2, 4), (2, 4)), (32, (1.5,), (1, 3, 5))])
def test_anchors_match_transcription(base, ratios, scales):
    np.testing.assert_array_equal(generate_anchors(base, scales, ratios), ref_generate_anchors(base, ratios, scales))


def test_shifted_anchors_order_and_unknown_sizes():
    ref = ref_shift(ref_generate_anchors(), 3, 5, 16)
    np.testing.assert_array_equal(shifted_anchors(3, 5).numpy(), ref)
    # row (h * W + w) * A + a: anchor a shifted by (16 w, 16 h)
    np.testing.assert_array_equal(shifted_anchors(3, 5).numpy()[(2 * 5 + 4) * 9 + 7],
                                  np.array(PY_FASTER_RCNN_ANCHORS[7]) + [64, 32, 64, 32])
    fn = tf.function(lambda h, w: shifted_anchors(h, w), input_signature=[tf.TensorSpec([], tf.int32)] * 2)
    np.testing.assert_array_equal(fn(tf.constant(3), tf.constant(5)).numpy(), ref)


# ------------------------------------------------------------------------------------ box coding


def test_encode_decode_match_transcription_and_round_trip():
    rng = np.random.default_rng(0)
    anchors, gt = random_boxes(rng, 50), random_boxes(rng, 50)
    np.testing.assert_allclose(encode_boxes(anchors, gt).numpy(), ref_bbox_transform(anchors, gt), rtol=1e-10)
    enc = encode_boxes(anchors, gt, stds=BBOX_STDS).numpy()
    np.testing.assert_allclose(enc, ref_bbox_transform(anchors, gt) / np.array(BBOX_STDS), rtol=1e-10)
    np.testing.assert_allclose(decode_boxes(anchors, enc, stds=BBOX_STDS).numpy(), gt, atol=1e-9)
    deltas = rng.normal(0, 0.5, (50, 4))
    np.testing.assert_allclose(decode_boxes(anchors, deltas).numpy(), ref_bbox_pred(anchors, deltas), rtol=1e-10)
    # class-specific deltas by broadcasting, float32
    d3 = rng.normal(0, 0.5, (50, 3, 4)).astype(np.float32)
    out = decode_boxes(anchors[:, None].astype(np.float32), d3).numpy()
    np.testing.assert_allclose(out[:, 2], ref_bbox_pred(anchors, d3[:, 2]), rtol=1e-4, atol=1e-3)


def test_encode_hand_case():
    # anchor (0, 0, 9, 9): 10 x 10 centred at 4.5; gt (2, 0, 21, 4): 20 x 5 centred at (11.5, 2)
    d = encode_boxes([[0.0, 0, 9, 9]], [[2.0, 0, 21, 4]]).numpy()[0]
    np.testing.assert_allclose(d, [0.7, -0.25, np.log(2.0), np.log(0.5)], rtol=1e-6)  # float32


def test_clip_and_filter_small():
    boxes = np.array([[-5.0, 3, 120, 40], [10, -1, 20, 70], [50, 50, 50, 50]])
    np.testing.assert_array_equal(clip_boxes(boxes, 60, 100).numpy(), ref_clip(boxes, (60, 100)))
    np.testing.assert_array_equal(clip_boxes(boxes, 60, 100).numpy()[0], [0, 3, 99, 40])
    # +1 sizes: 126 x 38, 11 x 72, 1 x 1
    np.testing.assert_array_equal(filter_small(boxes, 11).numpy(), [True, True, False])
    np.testing.assert_array_equal(filter_small(boxes, 12).numpy(), [True, False, False])
    np.testing.assert_array_equal(filter_small(boxes, 0).numpy(), [True, True, True])


# ------------------------------------------------------------------------------------- IoU / NMS


def test_iou_hand_cases():
    a = [[0.0, 0, 9, 9]]
    b = [[0.0, 0, 9, 9],      # same: 1
         [5.0, 5, 14, 14],    # 5 x 5 = 25 of 100 + 100 - 25: 1/7
         [9.0, 0, 18, 9],     # one shared pixel column: 10 / 190
         [10.0, 0, 19, 9],    # adjacent, no shared pixel: 0
         [0.0, 0, 19, 4]]     # 10 x 5 = 50 of 100 + 100 - 50: 1/3
    np.testing.assert_allclose(box_iou(a, b).numpy()[0], [1, 1 / 7, 10 / 190, 0, 1 / 3], rtol=1e-6)
    rng = np.random.default_rng(1)
    x, y = random_boxes(rng, 20), random_boxes(rng, 15)
    np.testing.assert_allclose(box_iou(x, y).numpy(), ref_overlaps(x, y), rtol=1e-12)
    assert box_iou(x, np.zeros((0, 4))).shape == (20, 0)


@pytest.mark.parametrize("thresh", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_equals_py_cpu_nms(thresh, seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 300, size=200, max_side=rng.choice([6.0, 60.0]))
    scores = rng.uniform(size=300)
    ref = ref_nms(np.concatenate([boxes, scores[:, None]], 1), thresh)
    np.testing.assert_array_equal(nms(boxes, scores, thresh).numpy(), ref)
    np.testing.assert_array_equal(nms(boxes, scores, thresh, max_output=10).numpy(), ref[:10])


def test_nms_uses_plus_one_iou():
    # (0,0,1,1) and (1,0,2,1) share one pixel column: +1 IoU = 2 / (4 + 4 - 2) = 1/3; without +1 it is 0
    boxes = np.array([[0.0, 0, 1, 1], [1.0, 0, 2, 1]])
    scores = np.array([0.9, 0.8])
    assert nms(boxes, scores, 0.3).numpy().tolist() == [0] == ref_nms(np.c_[boxes, scores], 0.3).tolist()
    assert nms(boxes, scores, 1 / 3 + 1e-6).numpy().tolist() == [0, 1]
    raw = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], scores, 2, iou_threshold=0.3)
    assert raw.numpy().tolist() == [0, 1]  # plain tf NMS on the raw corners keeps both


# ------------------------------------------------------------------------------------- proposals


def ref_proposals(logits, deltas, anchors, im_hw, pre, post, thresh, min_size, stds, stride):
    """proposal.py (+ MultiProposal's real-cell mask and cyclic padding) on channels-last inputs."""
    fh, fw, a2 = logits.shape
    a = a2 // 2
    e = np.exp(logits - logits.max(-1, keepdims=True))
    bg, fg = e[..., :a], e[..., a:]
    scores = (fg / (fg + bg)).reshape(-1)
    d = deltas.reshape(-1, 4) * np.array(stds)
    boxes = ref_clip(ref_bbox_pred(anchors, d), im_hw)
    ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    cell_h = np.repeat(np.repeat(np.arange(fh), fw), a)
    cell_w = np.repeat(np.tile(np.arange(fw), fh), a)
    real = (cell_h < int(im_hw[0] / stride)) & (cell_w < int(im_hw[1] / stride))
    keep = np.where((ws >= min_size) & (hs >= min_size) & real)[0]
    boxes, scores = boxes[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:pre]
    boxes, scores = boxes[order], scores[order]
    k = ref_nms(np.c_[boxes, scores], thresh)[:post]
    n = len(k)
    k = k[np.arange(post) % n]
    return boxes[k], scores[k], n


@pytest.mark.parametrize("im_hw,pre,post,min_size", [((64, 80), 120, 30, 0), ((56, 72), 60, 40, 24)])
def test_proposals_match_transcription(im_hw, pre, post, min_size):
    rng = np.random.default_rng(7)
    fh, fw = 4, 5
    logits = rng.normal(0, 2, (fh, fw, 18)).astype(np.float32)
    deltas = rng.normal(0, 1, (fh, fw, 36)).astype(np.float32)
    anchors = shifted_anchors(fh, fw)
    boxes, scores, n = proposals(logits, deltas, anchors, im_hw, pre, post, 0.7, min_size)
    rb, rs, rn = ref_proposals(logits.astype(np.float64), deltas.astype(np.float64), anchors.numpy().astype(np.float64),
                               im_hw, pre, post, 0.7, min_size, ANCHOR_STDS, 16)
    assert int(n) == rn
    assert boxes.shape == (post, 4) and scores.shape == (post,)
    np.testing.assert_allclose(scores.numpy(), rs, rtol=1e-5)
    np.testing.assert_allclose(boxes.numpy(), rb, rtol=1e-5, atol=1e-3)
    if min_size:  # the second case keeps fewer than `post` boxes: cyclic padding
        assert rn < post
        np.testing.assert_array_equal(boxes.numpy()[rn:2 * rn], boxes.numpy()[:rn])


def test_proposals_graph_mode_and_hand_case():
    # one feature cell, one anchor (0, 0, 15, 15), zero deltas -> the anchor itself with score sigmoid(2)
    fn = tf.function(lambda o, d, a: proposals(o, d, a, (16, 16), 10, 3, 0.7, 0, stds=(1, 1, 1, 1)),
                     input_signature=[tf.TensorSpec([None, None, 2]), tf.TensorSpec([None, None, 4]),
                                      tf.TensorSpec([None, 4])])
    boxes, scores, n = fn(np.array([[[-1.0, 1.0]]]), np.zeros((1, 1, 4)), [[0.0, 0, 15, 15]])
    assert int(n) == 1
    np.testing.assert_allclose(boxes.numpy(), [[0, 0, 15, 15]] * 3)
    np.testing.assert_allclose(scores.numpy(), [1 / (1 + np.exp(-2.0))] * 3, rtol=1e-6)
    # nothing valid (min size larger than the image) -> zeros
    boxes, scores, n = proposals(np.zeros((1, 1, 2)), np.zeros((1, 1, 4)), [[0.0, 0, 15, 15]], (16, 16),
                                 min_size=17, post_nms_top_n=2)
    assert int(n) == 0 and not np.any(boxes.numpy()) and not np.any(scores.numpy())


# ------------------------------------------------------------------------------ training targets


def ref_assign_anchor_labels(anchors, gt, im_hw, pos=0.7, neg=0.3):
    """assign_anchor's labelling (before subsampling), clobber_positives False, allowed_border 0."""
    inside = np.where((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < im_hw[1])
                      & (anchors[:, 3] < im_hw[0]))[0]
    a = anchors[inside]
    labels = np.full(len(inside), -1.0)
    ov = ref_overlaps(a, gt)
    am = ov.argmax(1)
    mx = ov[np.arange(len(inside)), am]
    gam = ov.argmax(0)
    gmx = ov[gam, np.arange(ov.shape[1])]
    gam = np.where(ov == gmx)[0]
    labels[mx < neg] = 0
    labels[gam] = 1
    labels[mx >= pos] = 1
    targets = (ref_bbox_transform(a, gt[am]) - 0.0) / np.array(ANCHOR_STDS)
    full_l = np.full(len(anchors), -1.0)
    full_l[inside] = labels
    full_t = np.zeros((len(anchors), 4))
    full_t[inside] = targets
    return full_l, full_t


HAND_ANCHORS = np.array([
    [0, 0, 9, 9],      # = gt 0: IoU 1 -> 1
    [0, 0, 19, 19],    # IoU 100/400 with gt 0 -> 0
    [20, 20, 29, 29],  # IoU 100/144 = 0.69 with gt 1, but gt 1's best anchor -> 1
    [0, 0, 11, 9],     # IoU 100/120 with gt 0 -> 1
    [-5, 0, 4, 9],     # x1 < 0: outside -> -1
    [30, 30, 41, 41],  # x2 >= 40: outside -> -1
    [15, 15, 24, 24],  # IoU 25/219 with gt 1 -> 0
    [5, 0, 14, 9],     # IoU 50/150 with gt 0: between 0.3 and 0.7 -> -1
], np.float32)
HAND_GT = np.array([[0, 0, 9, 9], [20, 20, 31, 31]], np.float32)


def test_anchor_targets_hand_case():
    labels, targets, weights = anchor_targets(HAND_ANCHORS, HAND_GT, (40, 40), seed=0)
    assert labels.numpy().tolist() == [1, 0, 1, 1, -1, -1, 0, -1]
    # anchor 2 -> gt 1: centres 24.5 -> 25.5 (dx = 1 / 10), sizes 10 -> 12; normalised by ANCHOR_STDS
    np.testing.assert_allclose(targets.numpy()[2], [0.1 / 0.1, 0.1 / 0.1, np.log(1.2) / 0.4, np.log(1.2) / 0.4],
                               rtol=1e-5)
    np.testing.assert_array_equal(targets.numpy()[[0, 4, 5]], 0.0)  # perfect match; outside anchors
    np.testing.assert_array_equal(weights.numpy()[:, 0], [1, 0, 1, 1, 0, 0, 0, 0])
    ref_l, ref_t = ref_assign_anchor_labels(HAND_ANCHORS.astype(float), HAND_GT.astype(float), (40, 40))
    np.testing.assert_array_equal(labels.numpy(), ref_l)
    np.testing.assert_allclose(targets.numpy(), ref_t, rtol=1e-5, atol=1e-6)
    # no gt: inside anchors are negatives, targets zero
    labels, targets, _ = anchor_targets(HAND_ANCHORS, np.zeros((0, 4)), (40, 40), seed=0)
    assert labels.numpy().tolist() == [0, 0, 0, 0, -1, -1, 0, 0]
    assert not np.any(targets.numpy())


def test_anchor_targets_match_transcription_without_subsampling():
    rng = np.random.default_rng(3)
    anchors = shifted_anchors(6, 8, scales=(1, 2, 4)).numpy()
    gt = random_boxes(rng, 4, size=80, max_side=60)
    labels, targets, _ = anchor_targets(anchors, gt, (96, 128), batch_size=10**6, fg_fraction=0.5, seed=1)
    ref_l, ref_t = ref_assign_anchor_labels(anchors.astype(float), gt, (96, 128))
    np.testing.assert_array_equal(labels.numpy(), ref_l)
    np.testing.assert_allclose(targets.numpy(), ref_t, rtol=1e-4, atol=1e-4)


def test_anchor_targets_subsampling_is_seeded():
    rng = np.random.default_rng(4)
    anchors = shifted_anchors(20, 20, stride=4, scales=(2, 4), ratios=(0.5, 1, 2)).numpy()
    gt = random_boxes(rng, 6, size=60, max_side=20)
    full, _, _ = anchor_targets(anchors, gt, (80, 80), batch_size=10**6)
    full = full.numpy()
    n_pos, n_neg = int((full == 1).sum()), int((full == 0).sum())
    assert n_pos > 4 and n_neg > 12
    labels = anchor_targets(anchors, gt, (80, 80), batch_size=16, fg_fraction=0.25, seed=(5, 6))[0].numpy()
    again = anchor_targets(anchors, gt, (80, 80), batch_size=16, fg_fraction=0.25, seed=(5, 6))[0].numpy()
    other = anchor_targets(anchors, gt, (80, 80), batch_size=16, fg_fraction=0.25, seed=(7, 8))[0].numpy()
    np.testing.assert_array_equal(labels, again)
    assert np.any(labels != other)
    assert (labels == 1).sum() == 4 and (labels == 0).sum() == 12  # int(0.25 * 16) fg, the rest bg
    assert np.all(full[labels == 1] == 1) and np.all(full[labels == 0] == 0)  # subsets of the candidates


def ref_sample_rois_all(rois, gt, gt_labels, fg_thresh=0.5, bg_hi=0.5, bg_lo=0.0):
    """sample_rois with BATCH_ROIS = -1 (no random draw) + class-agnostic targets / BBOX_STDS."""
    all_rois = np.vstack([rois, gt])
    ov = ref_overlaps(all_rois, gt)
    assign = ov.argmax(1)
    mx = ov.max(1)
    labels = gt_labels[assign]
    fg = np.where(mx >= fg_thresh)[0]
    bg = np.where((mx < bg_hi) & (mx >= bg_lo))[0]
    keep = np.append(fg, bg)
    labels = labels[keep].copy()
    labels[len(fg):] = 0
    targets = ref_bbox_transform(all_rois[keep], gt[assign[keep]]) / np.array(BBOX_STDS)
    targets[labels == 0] = 0
    return all_rois[keep], labels, targets


def test_proposal_targets_hand_case():
    rois = np.array([[0, 0, 19, 19], [0, 0, 9, 9], [40, 40, 49, 49], [1, 0, 10, 9]], np.float32)
    gt = np.array([[0, 0, 9, 9], [40, 40, 51, 51]], np.float32)
    out_rois, labels, targets, weights = proposal_targets(rois, gt, [3, 7])
    # IoUs: 0.25 (bg), 1 (fg, gt 0), 100/144 (fg, gt 1), 90/110 (fg, gt 0); gt boxes appended: fg, fg
    np.testing.assert_array_equal(out_rois.numpy(), np.vstack([rois[1:], gt, rois[:1]]))
    assert labels.numpy().tolist() == [3, 7, 3, 3, 7, 0]
    np.testing.assert_allclose(targets.numpy()[1], [0.1 / 0.1, 0.1 / 0.1, np.log(1.2) / 0.2, np.log(1.2) / 0.2],
                               rtol=1e-5)
    np.testing.assert_allclose(targets.numpy()[2], [-0.1 / 0.1, 0, 0, 0], atol=1e-6)  # centre 5.5 -> 4.5, w 10
    np.testing.assert_array_equal(targets.numpy()[5], 0)
    np.testing.assert_array_equal(weights.numpy()[:, 0], [1, 1, 1, 1, 1, 0])


def test_proposal_targets_without_gt_makes_every_roi_background():
    rois, labels, targets, weights = proposal_targets(HAND_ANCHORS, np.zeros((0, 4)), np.zeros(0, np.int32))
    np.testing.assert_array_equal(rois, np.asarray(HAND_ANCHORS, np.float32))
    np.testing.assert_array_equal(labels, np.zeros(len(HAND_ANCHORS)))
    assert not np.any(targets) and not np.any(weights)


def test_proposal_targets_match_transcription_and_sampling():
    rng = np.random.default_rng(5)
    gt = random_boxes(rng, 3, size=100, max_side=50, min_side=20)
    jittered = np.repeat(gt, 5, axis=0) + rng.normal(0, 3, (15, 4))  # many foregrounds
    rois = np.concatenate([random_boxes(rng, 45, size=100, max_side=50), jittered])[rng.permutation(60)]
    gt_labels = np.array([4, 1, 9])
    out_rois, labels, targets, _ = proposal_targets(rois, gt, gt_labels)
    r_rois, r_labels, r_targets = ref_sample_rois_all(rois, gt, gt_labels)
    np.testing.assert_allclose(out_rois.numpy(), r_rois, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), r_labels)
    np.testing.assert_allclose(targets.numpy(), r_targets, rtol=1e-4, atol=1e-4)
    # sampled: R = 16 -> at most round(0.25 * 16) = 4 fg, then bg; deterministic under a seed
    n_fg_all = int((r_labels > 0).sum())
    assert n_fg_all > 4
    a = proposal_targets(rois, gt, gt_labels, rois_per_image=16, seed=3)
    b = proposal_targets(rois, gt, gt_labels, rois_per_image=16, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].shape == (16, 4) and (a[1].numpy() > 0).sum() == 4
    iou = ref_overlaps(a[0].numpy().astype(float), gt).max(1)
    assert np.all(iou[:4] >= 0.5) and np.all(iou[4:] < 0.5)
    # more rows than candidates: padded with candidates, all labelled 0
    p = proposal_targets(rois[:2], gt, gt_labels, rois_per_image=12, seed=0)
    assert p[0].shape == (12, 4) and np.all(p[1].numpy()[5:] == 0)


# ------------------------------------------------------------------------------------ bad input


def test_bad_arguments():
    with pytest.raises(ValueError, match="anchors.*last dimension 4"):
        encode_boxes(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="stds"):
        decode_boxes(np.zeros((3, 4)), np.zeros((3, 4)), stds=(1, 1, 0, 1))
    with pytest.raises(ValueError, match="scales"):
        generate_anchors(scales=())
    with pytest.raises(ValueError, match="feature_height"):
        shifted_anchors(0, 4)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(np.zeros((2, 4)), np.zeros(2), 1.5)
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((2, 4)), np.zeros((2, 1)), 0.5)
    with pytest.raises(ValueError, match="objectness"):
        proposals(np.zeros((1, 2, 2, 18)), np.zeros((2, 2, 36)), np.zeros((36, 4)), (32, 32))
    with pytest.raises(ValueError, match="deltas.*4 \\* anchors"):
        proposals(np.zeros((2, 2, 18)), np.zeros((2, 2, 32)), np.zeros((36, 4)), (32, 32))
    with pytest.raises(ValueError, match="pre_nms_top_n"):
        proposals(np.zeros((2, 2, 18)), np.zeros((2, 2, 36)), np.zeros((36, 4)), (32, 32), pre_nms_top_n=0)
    with pytest.raises(ValueError, match="image_size"):
        anchor_targets(HAND_ANCHORS, HAND_GT, (40,))
    with pytest.raises(ValueError, match="seed"):
        anchor_targets(HAND_ANCHORS, HAND_GT, (40, 40), seed=(1, 2, 3))
    with pytest.raises(ValueError, match="gt_labels"):
        proposal_targets(HAND_ANCHORS, HAND_GT, [1.0, 2.0])
    with pytest.raises(ValueError, match="rois_per_image"):
        proposal_targets(HAND_ANCHORS, HAND_GT, [1, 2], rois_per_image=0)
