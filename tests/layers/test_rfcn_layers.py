"""The R-FCN layers of DFF detection (tfvideo.layers.rfcn) against NumPy transcriptions of the reference
code: the proposal layer and PS-RoI pooling of tests/ops (proposal.py / MultiProposal, psroi_pooling.cu),
and the test-time post-processing of dff_rfcn/core/tester.py (im_detect + pred_eval), written below."""

import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer
from tests.ops.test_boxes import ref_bbox_pred, ref_clip, ref_nms, ref_proposals
from tests.ops.test_psroi import c_round, psroi_reference, random_rois
from tfvideo.layers.rfcn import DETECTION_FIELDS, ChannelSlice, DetectionOutput, PSRoIVote, RPNProposals
from tfvideo.ops.boxes import ANCHOR_STDS, BBOX_STDS, shifted_anchors

# ------------------------------------------------------------------------------ NumPy references


def ref_detections(rois, logits, deltas, im_hw, thresh=1e-4, nms_thresh=0.3, max_per_image=300):
    """im_detect + pred_eval of dff_rfcn/core/tester.py for one image, CLASS_AGNOSTIC (the box of every
    class is the RoI's one box), deltas normalised by BBOX_STDS. Rows (class - 1, x1, y1, x2, y2, score)."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    scores = e / e.sum(1, keepdims=True)                                       # cls_prob
    boxes = ref_clip(ref_bbox_pred(rois, deltas * np.array(BBOX_STDS)), im_hw)  # bbox_pred, clip_boxes
    all_boxes = {}
    for j in range(1, scores.shape[1]):
        indexes = np.where(scores[:, j] > thresh)[0]
        cls_dets = np.hstack((boxes[indexes], scores[indexes, j, np.newaxis]))
        all_boxes[j] = cls_dets[ref_nms(cls_dets, nms_thresh)] if len(indexes) else np.zeros((0, 5))
    image_scores = np.hstack([all_boxes[j][:, -1] for j in all_boxes])
    if len(image_scores) > max_per_image:
        image_thresh = np.sort(image_scores)[-max_per_image]
        all_boxes = {j: d[d[:, -1] >= image_thresh] for j, d in all_boxes.items()}
    rows = [(j - 1, *d) for j, d in all_boxes.items() for d in d]
    return np.array(rows, np.float64).reshape(-1, 6)


def canonical(rows):
    """Rows (class, x1, y1, x2, y2, score) in a canonical order (class, then decreasing score): with
    distinct scores within a class this compares sets of rows up to the tolerance."""
    rows = np.asarray(rows, np.float64).reshape(-1, 6)
    return rows[np.lexsort((-rows[:, 5], rows[:, 0]))]


def as_ref_rows(out):
    """The layer's used rows (x1, y1, x2, y2, score, class) as (class, x1, y1, x2, y2, score)."""
    used = out[out[:, 5] >= 0]
    return used[:, [5, 0, 1, 2, 3, 4]]


def psroi_vote_adjoint(hwc_shape, rois, grad, output_dim, k, spatial_scale):
    """The gradient of sum(grad * vote) wrt the (h, w, output_dim * k * k) maps of one image, with the bins
    of PSROIPoolForwardKernel (float32 arithmetic, as tests/ops/test_psroi.py's psroi_reference): every
    pixel of bin (ph, pw) of value c receives grad[n, c] / bin_area / k^2 (the average over the bin, then
    the average over the k x k bins)."""
    f = np.float32
    height, width, _ = hwc_shape
    out = np.zeros(hwc_shape, np.float64)
    for n, roi in enumerate(np.asarray(rois, np.float32)):
        start_w, start_h = f(c_round(roi[0])) * f(spatial_scale), f(c_round(roi[1])) * f(spatial_scale)
        end_w, end_h = f(c_round(roi[2]) + 1.0) * f(spatial_scale), f(c_round(roi[3]) + 1.0) * f(spatial_scale)
        bin_w = f(f(max(end_w - start_w, f(0.1))) / f(k))
        bin_h = f(f(max(end_h - start_h, f(0.1))) / f(k))
        for ph in range(k):
            for pw in range(k):
                h0 = min(max(int(np.floor(f(f(ph) * bin_h) + start_h)), 0), height)
                h1 = min(max(int(np.ceil(f(f(ph + 1) * bin_h) + start_h)), 0), height)
                w0 = min(max(int(np.floor(f(f(pw) * bin_w) + start_w)), 0), width)
                w1 = min(max(int(np.ceil(f(f(pw + 1) * bin_w) + start_w)), 0), width)
                if h1 <= h0 or w1 <= w0:
                    continue
                for c in range(output_dim):
                    out[h0:h1, w0:w1, (c * k + ph) * k + pw] += grad[n, c] / ((h1 - h0) * (w1 - w0)) / k**2
    return out


def rpn_inputs(seed, batch=2, fh=4, fw=6):
    rng = np.random.default_rng(seed)
    cls = rng.normal(0, 2, (batch, fh, fw, 18)).astype(np.float32)
    bbox = rng.normal(0, 1, (batch, fh, fw, 36)).astype(np.float32)
    return cls, bbox


def distinct_probabilities(rng, n, num_classes, low=0.002, high=0.2, tiny=0):
    """Class probabilities (n, C + 1) whose foreground values are all distinct, at least
    (high - low) / (n C) apart (no near ties); ``tiny`` of them below the 1e-4 score threshold."""
    fg = rng.permutation(np.linspace(low, high, n * num_classes)).reshape(n, num_classes)
    if tiny:
        flat = fg.reshape(-1)
        flat[rng.choice(flat.size, tiny, replace=False)] = 1e-6 * (1 + np.arange(tiny))
    return np.concatenate([1.0 - fg.sum(1, keepdims=True), fg], 1)


# ------------------------------------------------------------------------------- layer conventions


def test_channel_slice_layer_checks(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 10)).astype(np.float32)
    out = check_layer(lambda: ChannelSlice(3, 7), x, trainable_weights=0, non_trainable_weights=0,
                      expected_output_shape=(2, 4, 6, 4), symbolic_shapes=(None, None, 10), tmp_path=tmp_path)
    np.testing.assert_array_equal(out, x[..., 3:7])


def test_rpn_proposals_layer_checks(tmp_path):
    cls, bbox = rpn_inputs(1)
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    check_layer(lambda: RPNProposals(pre_nms_top_n=100, post_nms_top_n=20), [cls, bbox, frames],
                trainable_weights=0, non_trainable_weights=0, expected_output_shape=(2, 20, 4),
                symbolic_shapes=[(None, None, 18), (None, None, 36), (None, None, 3)], tmp_path=tmp_path,
                atol=1e-4)


def test_psroi_vote_layer_checks(tmp_path):
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(2, 4, 6, 3 * 3 * 3)).astype(np.float32)
    rois = np.stack([random_rois(rng, 5, 1, 64, 96)[:, 1:] for _ in range(2)])
    check_layer(lambda: PSRoIVote(3, group_size=3), [maps, rois], trainable_weights=0, non_trainable_weights=0,
                expected_output_shape=(2, 5, 3), symbolic_shapes=[(None, None, 27), (None, 4)],
                tmp_path=tmp_path, atol=1e-5)


def test_detection_output_layer_checks(tmp_path):
    rng = np.random.default_rng(3)
    n, c = 12, 3
    xy = rng.uniform(0, 70, (2, n, 2))
    rois = np.concatenate([xy, xy + rng.uniform(5, 30, (2, n, 2))], -1).astype(np.float32)
    logits = np.log(np.stack([distinct_probabilities(rng, n, c) for _ in range(2)])).astype(np.float32)
    deltas = rng.normal(0, 0.5, (2, n, 4)).astype(np.float32)
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    out = check_layer(lambda: DetectionOutput(c, max_detections=10), [rois, logits, deltas, frames],
                      trainable_weights=0, non_trainable_weights=0, expected_output_shape=(2, 10, 6),
                      symbolic_shapes=[(None, 4), (None, c + 1), (None, 4), (None, None, 3)],
                      tmp_path=tmp_path, atol=1e-4)
    assert len(DETECTION_FIELDS) == out.shape[-1] == 6


# ---------------------------------------------------------------------------------- RPNProposals


@pytest.mark.parametrize("frame_hw,scales,post,min_size", [((64, 96), (1, 2, 4), 20, 0.0),
                                                          ((56, 90), (8, 16, 32), 60, 8.0)])
def test_rpn_proposals_match_the_proposal_layer_per_image(frame_hw, scales, post, min_size):
    """Batch of 2: image b's RoIs are proposal.py on image b's maps (same boxes, same order), the
    survivors repeated cyclically up to post_nms_top_n (MultiProposal). The DFF anchors (128 to 512 px)
    on a small frame leave few survivors (padding); small anchors many. 56 x 90 frames on 4 x 6 maps
    also exercise MultiProposal's mask of the cells past int(56 / 16) = 3 rows and int(90 / 16) = 5
    columns."""
    cls, bbox = rpn_inputs(4)
    pre = 120
    layer = RPNProposals(scales=scales, pre_nms_top_n=pre, post_nms_top_n=post, min_size=min_size)
    rois = layer([cls, bbox, np.zeros((2, *frame_hw, 3), np.uint8)]).numpy()
    assert rois.shape == (2, post, 4)
    anchors = shifted_anchors(4, 6, scales=scales).numpy().astype(np.float64)
    survivors = []
    for b in range(2):
        ref, _, n = ref_proposals(cls[b].astype(np.float64), bbox[b].astype(np.float64), anchors, frame_hw, pre,
                                  post, 0.7, min_size, ANCHOR_STDS, 16)
        np.testing.assert_allclose(rois[b], ref, rtol=1e-5, atol=1e-3)
        survivors.append(n)
    assert not np.array_equal(rois[0], rois[1])
    if scales[0] == 8:  # fewer survive than post_nms_top_n: cyclic padding, keep[i % n]
        for b, n in enumerate(survivors):
            assert n < post
            np.testing.assert_array_equal(rois[b], rois[b][np.arange(post) % n])
    else:
        assert min(survivors) >= post


def test_rpn_proposals_carry_no_gradient():
    cls, bbox = (tf.constant(v) for v in rpn_inputs(5))
    layer = RPNProposals(pre_nms_top_n=50, post_nms_top_n=10)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([cls, bbox])
        loss = tf.reduce_sum(layer([cls, bbox, tf.zeros((2, 64, 96, 3), tf.uint8)]))
    for grad in tape.gradient(loss, [cls, bbox]):
        assert grad is None or not np.any(grad.numpy())


# -------------------------------------------------------------------------------------- PSRoIVote


def test_psroi_vote_is_psroi_pooling_averaged_over_bins_per_image():
    rng = np.random.default_rng(6)
    k, dim, scale = 3, 4, 1 / 16
    maps = rng.normal(size=(2, 4, 6, dim * k * k)).astype(np.float32)
    special = np.array([[3.5, 4.5, 40.5, 30.5], [-20, -8, 30, 20], [300, 300, 400, 400], [30, 10, 25, 5]],
                       np.float32)
    rois = np.stack([np.concatenate([random_rois(rng, 4, 1, 64, 96)[:, 1:], special[::s]]) for s in (1, -1)])
    assert not np.array_equal(rois[0], rois[1])
    out = PSRoIVote(dim, group_size=k, spatial_scale=scale)([maps, rois]).numpy()
    assert out.shape == (2, 8, dim)
    for b in range(2):
        nchw = np.transpose(maps[b:b + 1], (0, 3, 1, 2))
        indexed = np.concatenate([np.zeros((8, 1), np.float32), rois[b]], 1)  # each image's rois on its maps
        ref = psroi_reference(nchw, indexed, dim, k, scale).mean(axis=(2, 3))
        np.testing.assert_allclose(out[b], ref, rtol=1e-5, atol=1e-6)
    # the roi entirely outside the map pools to zero; most others do not
    assert not np.any(out[0, 6]) and not np.any(out[1, 5])
    assert np.count_nonzero(np.any(out, axis=-1)) >= 10


def test_psroi_vote_gradient_is_the_pooling_adjoint():
    rng = np.random.default_rng(7)
    k, dim, scale = 3, 2, 1 / 16
    maps = tf.constant(rng.normal(size=(2, 4, 6, dim * k * k)).astype(np.float32))
    rois = np.stack([random_rois(rng, 5, 1, 64, 96)[:, 1:] for _ in range(2)])
    rois[1, 0] = [0, 0, 95, 63]  # the whole map: 3 x 3 bins of 2 x 2 / 2 x 1.33 feature pixels
    upstream = rng.normal(size=(2, 5, dim))
    layer = PSRoIVote(dim, group_size=k, spatial_scale=scale)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        loss = tf.reduce_sum(layer([maps, tf.constant(rois)]) * upstream)
    grad = tape.gradient(loss, maps).numpy()
    for b in range(2):
        ref = psroi_vote_adjoint(maps.shape[1:], rois[b], upstream[b], dim, k, scale)
        np.testing.assert_allclose(grad[b], ref, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(grad) > 0.3 * grad.size


# -------------------------------------------------------------------------------- DetectionOutput


def _detect(rois, probs, deltas, frame_hw, **kwargs):
    layer = DetectionOutput(probs.shape[-1] - 1, **kwargs)
    frames = np.zeros((rois.shape[0], *frame_hw, 3), np.uint8)
    return layer([rois.astype(np.float32), np.log(probs).astype(np.float32), deltas.astype(np.float32),
                  frames]).numpy()


def _check_against_reference(out, rois, probs, deltas, frame_hw, max_per_image):
    for b in range(rois.shape[0]):
        ref = ref_detections(rois[b], np.log(probs[b]), deltas[b], frame_hw, max_per_image=max_per_image)
        assert 0 < len(ref) <= max_per_image
        rows = out[b]
        n = len(ref)
        mine = canonical(as_ref_rows(rows))
        assert mine.shape == (n, 6), (mine.shape, n)
        np.testing.assert_array_equal(mine[:, 0], canonical(ref)[:, 0])
        np.testing.assert_allclose(mine[:, 1:5], canonical(ref)[:, 1:5], rtol=1e-5, atol=2e-3)  # boxes
        np.testing.assert_allclose(mine[:, 5], canonical(ref)[:, 5], rtol=1e-4, atol=1e-7)     # scores
        # the used rows first, by decreasing score; then (0, 0, 0, 0, 0, -1)
        assert np.all(rows[:n, 5] >= 0)
        assert np.all(np.diff(rows[:n, 4]) < 0)
        np.testing.assert_array_equal(rows[n:], np.tile([0, 0, 0, 0, 0, -1], (len(rows) - n, 1)))


@pytest.mark.parametrize("max_detections", [300, 12])
def test_detection_output_matches_pred_eval(max_detections):
    """Random RoIs on a 64 x 96 frame, 4 classes, scores all distinct (some below the 1e-4 threshold),
    many overlaps: per-class NMS suppresses, and max_detections = 12 cuts the ranking over the classes."""
    rng = np.random.default_rng(8)
    n, c, frame_hw = 40, 4, (64, 96)
    xy = rng.uniform(-10, 85, (2, n, 2))
    rois = np.concatenate([xy, xy + rng.uniform(8, 40, (2, n, 2))], -1)
    probs = np.stack([distinct_probabilities(rng, n, c, tiny=15) for _ in range(2)])
    deltas = rng.normal(0, 1.0, (2, n, 4))
    out = _detect(rois, probs, deltas, frame_hw, max_detections=max_detections)
    assert out.shape == (2, max_detections, 6)
    _check_against_reference(out, rois, probs, deltas, frame_hw, max_detections)
    used = out[0][out[0][:, 5] >= 0]
    if max_detections == 300:
        assert len(used) < (probs[0, :, 1:] > 1e-4).sum()  # NMS suppressed some
    else:
        assert len(used) == 12
    assert set(np.unique(used[:, 5])) <= set(range(c))
    # boxes are clipped to the frame: x in [0, 95], y in [0, 63]
    assert used[:, [0, 2]].min() >= 0 and used[:, [0, 2]].max() <= 95 and used[:, [1, 3]].max() <= 63


def test_detection_output_hand_case_nms_and_two_classes():
    """RoIs 0 and 1 overlap (+1 IoU 1444 / 1756 = 0.82 > 0.3): in R-FCN class 2 RoI 0 (0.6) suppresses
    RoI 1 (0.5), in class 3 RoI 1 (0.07) suppresses RoI 0 (0.06), in class 1 RoI 0 (0.04) suppresses RoI 1
    (0.03). RoI 2 overlaps neither and is likely for classes 1 and 3: its box survives in both (our classes
    0 and 2). RoI 3 is below the 1e-4 threshold in every class. Zero deltas: the boxes are the RoIs."""
    rois = np.array([[[10, 10, 49, 49], [12, 12, 51, 51], [60, 5, 90, 40], [0, 0, 20, 20]]], np.float64)
    probs = np.array([[[0.30, 0.04, 0.60, 0.06], [0.40, 0.03, 0.50, 0.07], [0.10, 0.45, 0.02, 0.43],
                       [1 - 3e-5, 1e-5, 1e-5, 1e-5]]])
    expected = np.array([[10, 10, 49, 49, 0.60, 1], [60, 5, 90, 40, 0.45, 0], [60, 5, 90, 40, 0.43, 2],
                         [12, 12, 51, 51, 0.07, 2], [10, 10, 49, 49, 0.04, 0], [60, 5, 90, 40, 0.02, 1]])
    # the hand-derived rows are pred_eval's
    ref = ref_detections(rois[0], np.log(probs[0]), np.zeros((4, 4)), (64, 96))
    np.testing.assert_allclose(canonical(ref), canonical(expected[:, [5, 0, 1, 2, 3, 4]]), rtol=1e-12)
    out = _detect(rois, probs, np.zeros((1, 4, 4)), (64, 96))[0]
    np.testing.assert_allclose(out[:6], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[6:], np.tile([0, 0, 0, 0, 0, -1], (294, 1)))
    # a higher score threshold keeps the three best
    out = _detect(rois, probs, np.zeros((1, 4, 4)), (64, 96), score_threshold=0.1)[0]
    np.testing.assert_allclose(out[:3], expected[:3], rtol=1e-5, atol=1e-6)
    assert out[3:, 5].tolist() == [-1] * 297


def test_detection_output_decodes_with_bbox_stds():
    """One RoI (20, 0, 39, 9) (20 x 10, centre (29.5, 4.5)), deltas (1, 0.5, log 2 / 0.2, log 0.5 / 0.2)
    times BBOX_STDS = (0.1, 0.05, log 2, log 0.5): the centre moves by (2, 0.5) px to (31.5, 5), the size
    becomes 40 x 5 -> (31.5 - 19.5, 5 - 2, 31.5 + 19.5, 5 + 2) = (12, 3, 51, 7)."""
    out = _detect(np.array([[[20.0, 0, 39, 9]]]), np.array([[[0.2, 0.8]]]),
                  np.array([[[1.0, 0.5, np.log(2) / 0.2, np.log(0.5) / 0.2]]]), (64, 96))
    np.testing.assert_allclose(out[0, 0], [12, 3, 51, 7, 0.8, 0], rtol=1e-5, atol=1e-4)
    # clipped to the frame: the same box from RoI (0, 0, 19, 9) starts at x = -8 -> 0
    out = _detect(np.array([[[0.0, 0, 19, 9]]]), np.array([[[0.2, 0.8]]]),
                  np.array([[[1.0, 0.5, np.log(2) / 0.2, np.log(0.5) / 0.2]]]), (64, 96))
    np.testing.assert_allclose(out[0, 0], [0, 3, 31, 7, 0.8, 0], rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------------- bad arguments


def test_channel_slice_bad_arguments():
    for args, name in [((-1, 3), "start"), ((2.0, 3), "start"), ((3, 3), "stop"), ((0, True), "stop")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            ChannelSlice(*args)
    with pytest.raises(ValueError, match="needs at least 8 channels"):
        ChannelSlice(4, 8)(np.zeros((1, 2, 2, 6), np.float32))


def test_rpn_proposals_bad_arguments():
    for kwargs, name in [({"feature_stride": 0}, "feature_stride"), ({"nms_threshold": 1.5}, "nms_threshold"),
                         ({"stds": (1, 1, 1)}, "stds"), ({"scales": ()}, "scales"),
                         ({"post_nms_top_n": 0}, "post_nms_top_n"), ({"min_size": -1}, "min_size")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            RPNProposals(**kwargs)
    cls, bbox = rpn_inputs(0)
    with pytest.raises(ValueError, match="3 anchors needs rpn_cls with 6"):
        RPNProposals(scales=(8,))([cls, bbox, np.zeros((2, 64, 96, 3), np.uint8)])


def test_psroi_vote_bad_arguments():
    for args, kwargs, name in [((0,), {}, "output_dim"), ((3,), {"group_size": 0}, "group_size"),
                               ((3,), {"spatial_scale": 0}, "spatial_scale")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            PSRoIVote(*args, **kwargs)
    with pytest.raises(ValueError, match="needs score maps with 27 channels"):
        PSRoIVote(3, group_size=3)([np.zeros((1, 4, 4, 26), np.float32), np.zeros((1, 2, 4), np.float32)])
    with pytest.raises(ValueError, match="rois"):
        PSRoIVote(3, group_size=3)([np.zeros((1, 4, 4, 27), np.float32), np.zeros((1, 2, 5), np.float32)])


def test_detection_output_bad_arguments():
    for args, kwargs, name in [((0,), {}, "num_classes"), ((3,), {"score_threshold": 2.0}, "score_threshold"),
                               ((3,), {"nms_threshold": -0.1}, "nms_threshold"),
                               ((3,), {"max_detections": 0}, "max_detections"), ((3,), {"stds": (0, 1, 1, 1)}, "stds")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            DetectionOutput(*args, **kwargs)
    with pytest.raises(ValueError, match="4 channels"):
        DetectionOutput(3)([np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 3), np.float32),
                            np.zeros((1, 2, 4), np.float32), np.zeros((1, 32, 32, 3), np.uint8)])
