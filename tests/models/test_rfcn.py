"""R-FCN as N_task of Deep Feature Flow (tfvideo.models.rfcn): the losses against NumPy transcriptions of
the DFF training graph (dff_rfcn/symbols/resnet_v1_101_flownet_rfcn.py: SoftmaxOutput, smooth_l1,
MakeLoss grad scales; dff_rfcn/operator_py/box_annotator_ohem.py), N_task's structure, the detectors,
DetectionTrainer and Algorithm 1 (DFFVideoRunner) on a detector."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.models import rfcn
from tfvideo.models.dff import transfer_weights
from tfvideo.models.dff_runner import DFFVideoRunner

NUM_CLASSES = 7
SIZE = (128, 256)

# ------------------------------------------------------------------------------ NumPy references


def ref_smooth_l1(x, sigma=1.0):
    """MXNet's smooth_l1(data, scalar=sigma)."""
    s2 = sigma**2
    return np.where(np.abs(x) < 1.0 / s2, 0.5 * s2 * x**2, np.abs(x) - 0.5 / s2)


def ref_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def ref_rpn_losses(logits, deltas, labels, targets, weights, rpn_batch=256):
    """SoftmaxOutput(use_ignore, ignore_label=-1, normalization='valid') + MakeLoss(weights *
    smooth_l1(pred - target, 1), grad_scale=1 / RPN_BATCH_SIZE) as loss values."""
    valid = labels != -1
    ce = -ref_log_softmax(logits)[np.arange(len(labels)), np.maximum(labels, 0)]
    return {"rpn_cls_loss": ce[valid].sum() / valid.sum(),
            "rpn_bbox_loss": (weights * ref_smooth_l1(deltas - targets)).sum() / rpn_batch}


def ref_box_annotator_ohem(cls_score, bbox_pred, labels, bbox_targets, bbox_weights, roi_per_img):
    """BoxAnnotatorOHEMOperator.forward, line by line (NumPy for mx.nd)."""
    e = np.exp(cls_score - cls_score.max(1, keepdims=True))
    per_roi_loss_cls = e / e.sum(1, keepdims=True) + 1e-14
    per_roi_loss_cls = per_roi_loss_cls[np.arange(per_roi_loss_cls.shape[0], dtype="int"), labels.astype("int")]
    per_roi_loss_cls = -1 * np.log(per_roi_loss_cls)
    per_roi_loss_bbox = (bbox_weights * ref_smooth_l1(bbox_pred - bbox_targets, 1.0)).sum(axis=1)
    top_k_per_roi_loss = np.argsort(per_roi_loss_cls + per_roi_loss_bbox)
    labels_ohem = labels.copy()
    labels_ohem[top_k_per_roi_loss[::-1][roi_per_img:]] = -1
    bbox_weights_ohem = bbox_weights.copy()
    bbox_weights_ohem[top_k_per_roi_loss[::-1][roi_per_img:]] = 0
    return labels_ohem, bbox_weights_ohem


def ref_rcnn_losses(scores, deltas, labels, targets, weights, ohem_rois=128):
    """OHEM, then cls_prob = SoftmaxOutput(labels_ohem, normalization='valid', use_ignore) and bbox_loss =
    MakeLoss(bbox_weights_ohem * smooth_l1(pred - target), grad_scale=1 / BATCH_ROIS_OHEM). Without OHEM
    (``ohem_rois=None``) every RoI counts and the box sum is divided by their number (rcnn_losses'
    documented choice: the code's 1 / BATCH_ROIS is -1 in DFF's config)."""
    if ohem_rois is None:
        labels_ohem, weights_ohem, norm = labels, weights, len(labels)
    else:
        labels_ohem, weights_ohem = ref_box_annotator_ohem(scores, deltas, labels, targets, weights, ohem_rois)
        norm = ohem_rois
    valid = labels_ohem != -1
    ce = -ref_log_softmax(scores)[np.arange(len(labels)), labels]
    return ({"rcnn_cls_loss": ce[valid].mean(),
             "rcnn_bbox_loss": (weights_ohem * ref_smooth_l1(deltas - targets)).sum() / norm}, valid)


def rcnn_sample(seed, r, num_classes=NUM_CLASSES):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 2, (r, num_classes + 1))
    deltas = rng.normal(0, 1, (r, 4))
    labels = np.where(rng.uniform(size=r) < 0.3, rng.integers(1, num_classes + 1, r), 0).astype(np.int32)
    targets = np.where(labels[:, None] > 0, rng.normal(0, 1, (r, 4)), 0.0)
    weights = np.repeat((labels > 0)[:, None], 4, 1).astype(np.float64)
    return scores, deltas, labels, targets, weights


def _f32(*arrays):
    return [tf.constant(a.astype(np.float32) if a.dtype.kind == "f" else a) for a in arrays]


# ---------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_smooth_l1_matches_mxnet_formula(sigma):
    switch = 1.0 / sigma**2
    x = np.concatenate([np.linspace(-3, 3, 61), [switch, -switch], switch * np.array([0.999, 1.001, -0.999, -1.001]),
                        [0.0, 1e-3, -1e-3]])
    out = rfcn.smooth_l1(tf.constant(x, tf.float64), sigma=sigma).numpy()
    np.testing.assert_allclose(out, ref_smooth_l1(x, sigma), rtol=1e-12, atol=1e-15)
    # continuous at the switch: both pieces give 0.5 / sigma^2 there
    np.testing.assert_allclose(rfcn.smooth_l1(tf.constant([switch], tf.float64), sigma).numpy(), 0.5 / sigma**2)


def test_rpn_losses_match_numpy():
    rng = np.random.default_rng(0)
    n = 120
    logits, deltas, targets = rng.normal(0, 2, (n, 2)), rng.normal(0, 1, (n, 4)), rng.normal(0, 1, (n, 4))
    labels = rng.choice([-1, 0, 1], n, p=[0.5, 0.35, 0.15]).astype(np.int32)
    weights = np.repeat((labels == 1)[:, None], 4, 1).astype(np.float64)
    out = rfcn.rpn_losses(*_f32(logits, deltas, labels, targets, weights))
    ref = ref_rpn_losses(logits, deltas, labels, targets, weights)
    for k in ref:
        np.testing.assert_allclose(float(out[k]), ref[k], rtol=1e-5)
    # the ignored anchors (-1) do not count: changing their logits changes nothing
    moved = logits.copy()
    moved[labels == -1] += 5.0
    np.testing.assert_allclose(float(rfcn.rpn_losses(*_f32(moved, deltas, labels, targets, weights))["rpn_cls_loss"]),
                               ref["rpn_cls_loss"], rtol=1e-5)
    # rpn_batch is the box loss' normaliser
    out = rfcn.rpn_losses(*_f32(logits, deltas, labels, targets, weights), rpn_batch=64)
    np.testing.assert_allclose(float(out["rpn_bbox_loss"]), ref["rpn_bbox_loss"] * 4, rtol=1e-5)


@pytest.mark.parametrize("r,ohem_rois", [(300, 128), (60, 128), (200, None)])
def test_rcnn_losses_match_box_annotator_ohem(r, ohem_rois):
    scores, deltas, labels, targets, weights = rcnn_sample(r, r)
    out = rfcn.rcnn_losses(*_f32(scores, deltas, labels, targets, weights), ohem_rois=ohem_rois)
    ref, kept = ref_rcnn_losses(scores, deltas, labels, targets, weights, ohem_rois)
    assert kept.sum() == (min(r, ohem_rois) if ohem_rois else r)
    for k in ref:
        np.testing.assert_allclose(float(out[k]), ref[k], rtol=1e-5)
    if ohem_rois and r > ohem_rois:  # OHEM changes the result: the kept RoIs are the hard ones
        everything, _ = ref_rcnn_losses(scores, deltas, labels, targets, weights, None)
        assert ref["rcnn_cls_loss"] > everything["rcnn_cls_loss"]


def test_rcnn_cls_loss_gradient_is_zero_on_the_rois_ohem_drops():
    scores, deltas, labels, targets, weights = rcnn_sample(5, 200)
    _, kept = ref_rcnn_losses(scores, deltas, labels, targets, weights, 128)
    s, d, lab, t, w = _f32(scores, deltas, labels, targets, weights)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([s, d])
        out = rfcn.rcnn_losses(s, d, lab, t, w, ohem_rois=128)
    grad = tape.gradient(out["rcnn_cls_loss"], s).numpy()
    assert not np.any(grad[~kept])
    assert np.all(np.abs(grad[kept]).sum(1) > 0)
    # d(mean CE)/d logits = (softmax - onehot) / 128 on the kept rows
    p = np.exp(ref_log_softmax(scores))
    np.testing.assert_allclose(grad[kept], ((p - np.eye(NUM_CLASSES + 1)[labels]) / 128)[kept], atol=1e-6)
    box_grad = tape.gradient(out["rcnn_bbox_loss"], d).numpy()
    assert not np.any(box_grad[~kept])


# ----------------------------------------------------------------------------------------- N_task


def test_rfcn_task_network_channels_halves_and_init():
    keras.utils.set_random_seed(0)
    net = rfcn.rfcn_task_network(1024, 30)
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 1024)).astype(np.float32)
    out = {k: v.numpy() for k, v in net(x).items()}
    assert {k: v.shape[-1] for k, v in out.items()} == {"rpn_cls": 18, "rpn_bbox": 36, "rfcn_cls": 7 * 7 * 31,
                                                        "rfcn_bbox": 7 * 7 * 4}
    assert all(v.shape[:3] == (1, 3, 4) for v in out.values())
    # init: biases zero, kernels N(0, 0.01); set random biases so that the halves test sees them too
    for name in ("rpn_cls_score", "rpn_bbox_pred", "rfcn_cls", "rfcn_bbox"):
        kernel, bias = net.get_layer(name).get_weights()
        assert kernel.shape[:3] == (1, 1, 512)
        assert not np.any(bias)
        assert abs(kernel.std() - 0.01) < 0.0006 and abs(kernel.mean()) < 0.0006, (name, kernel.std())
    # the RPN convs see the first 512 channels only, R-FCN's the second 512 only
    for half, changed, same in ((slice(0, 512), ("rpn_cls", "rpn_bbox"), ("rfcn_cls", "rfcn_bbox")),
                                (slice(512, 1024), ("rfcn_cls", "rfcn_bbox"), ("rpn_cls", "rpn_bbox"))):
        moved = x.copy()
        moved[..., half] += np.random.default_rng(1).normal(size=moved[..., half].shape).astype(np.float32)
        new = {k: v.numpy() for k, v in net(moved).items()}
        for k in changed:
            assert np.abs(new[k] - out[k]).min() > 0, k  # every output value moves
        for k in same:
            np.testing.assert_array_equal(new[k], out[k])


def test_rfcn_task_network_bad_arguments():
    with pytest.raises(ValueError, match="`channels` must be even"):
        rfcn.rfcn_task_network(1023, 30)
    with pytest.raises(ValueError, match="`num_classes`"):
        rfcn.rfcn_task_network(1024, 0)


# -------------------------------------------------------------------------------------- detectors


def _frames(seed, n=1):
    """Frames with a few bright rectangles on a dark noisy background."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n, *SIZE, 3), dtype=np.uint8)
    for f in x:
        for _ in range(3):
            y0, x0 = rng.integers(0, SIZE[0] - 40), rng.integers(0, SIZE[1] - 60)
            f[y0:y0 + rng.integers(20, 40), x0:x0 + rng.integers(30, 60)] = rng.integers(120, 256, 3)
    return x


@pytest.fixture(scope="module")
def detectors():
    """A DFF detector (small + tiny flow) with random R-FCN class maps of std 0.5 (non-tied scores), and a
    frame detector holding the same weights."""
    keras.utils.set_random_seed(0)
    dff = rfcn.dff_detector("small", NUM_CLASSES, flow="tiny", frame_size=SIZE)
    layer = dff.get_layer("n_task").get_layer("rfcn_cls")
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    frame = rfcn.frame_detector("small", NUM_CLASSES)
    assert transfer_weights(dff, frame) > 4
    for part in ("n_feat", "n_task"):
        for a, b in zip(frame.get_layer(part).get_weights(), dff.get_layer(part).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    return dff, frame


def test_frame_detector_output_shape(detectors):
    _, frame = detectors
    out = frame(_frames(0), training=False).numpy()
    assert out.shape == (1, 300, 6)
    assert set(np.unique(out[0, :, 5])) <= set(range(-1, NUM_CLASSES))


def test_dff_detector_on_identical_frames_is_the_frame_detector(detectors):
    dff, frame = detectors
    x = _frames(1)
    pair = np.stack([x, x], axis=1)
    out = dff(pair, training=False).numpy()
    expected = frame(x, training=False).numpy()
    assert out.shape == (1, 300, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    # meaningful: tens of detections of several classes with distinct scores (no tie to hide an order)
    used = expected[0][expected[0, :, 5] >= 0]
    assert len(used) >= 20 and len(np.unique(used[:, 5])) >= 3
    assert np.all(np.diff(used[:, 4]) < 0)
    # a different key frame goes through the flow network and the warp: other detections
    moved = dff(np.stack([_frames(2)[0], x[0]])[None], training=False).numpy()
    assert np.abs(moved - out).max() > 1e-3


def test_split_detections_fields(detectors):
    _, frame = detectors
    det = frame(_frames(3), training=False)
    parts = rfcn.split_detections(det)
    assert set(parts) == {"boxes", "scores", "classes", "num_detections"}
    np.testing.assert_array_equal(parts["boxes"], det.numpy()[..., :4])
    np.testing.assert_array_equal(parts["scores"], det.numpy()[..., 4])
    assert parts["classes"].dtype == tf.int32 and parts["num_detections"].dtype == tf.int32
    np.testing.assert_array_equal(parts["classes"], det.numpy()[..., 5].astype(np.int32))
    # padding rows (class -1) do not count
    hand = np.array([[[1, 2, 3, 4, 0.9, 2], [5, 6, 7, 8, 0.5, 0], [0, 0, 0, 0, 0, -1]],
                     [[0, 0, 0, 0, 0, -1]] * 3], np.float32)
    parts = rfcn.split_detections(hand)
    assert parts["num_detections"].numpy().tolist() == [2, 0]
    assert parts["classes"].numpy().tolist() == [[2, 0, -1], [-1, -1, -1]]
    assert parts["boxes"].shape == (2, 3, 4) and parts["scores"].shape == (2, 3)


# --------------------------------------------------------------------------------------- training


def _batch():
    """2 frames 128 x 256, 2 and 1 boxes (R-FCN classes label + 1), padded to 4 with -1 labels."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, (2, *SIZE, 3), dtype=np.uint8)
    x[0, 20:80, 30:120] = [200, 40, 40]
    x[0, 60:120, 150:230] = [40, 200, 40]
    x[1, 10:100, 100:200] = [40, 40, 220]
    boxes = np.zeros((2, 4, 4), np.float32)
    labels = np.full((2, 4), -1, np.int32)
    boxes[0, :2] = [[30, 20, 119, 79], [150, 60, 229, 119]]
    labels[0, :2] = [0, 4]
    boxes[1, 0] = [100, 10, 199, 99]
    labels[1, 0] = 6
    return x, {"boxes": boxes, "labels": labels, "num_boxes": np.array([2, 1], np.int32)}


STEPS = 40


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(1)
    trainer = rfcn.DetectionTrainer(rfcn.frame_detector("small", NUM_CLASSES))
    trainer.compile(keras.optimizers.Adam(1e-3))
    ds = tf.data.Dataset.from_tensors(_batch()).repeat()
    history = trainer.fit(ds, epochs=STEPS, steps_per_epoch=1, verbose=0).history
    return trainer, history


@pytest.fixture(scope="module")
def quick():
    """Two eager steps (no graph tracing: the default suite's time): enough for the reporting and the
    round trip."""
    keras.utils.set_random_seed(1)
    trainer = rfcn.DetectionTrainer(rfcn.frame_detector("small", NUM_CLASSES))
    trainer.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    ds = tf.data.Dataset.from_tensors(_batch()).repeat()
    history = trainer.fit(ds, epochs=2, steps_per_epoch=1, verbose=0).history
    return trainer, history


@pytest.mark.slow  # ~30 s: 40 graph steps
def test_trainer_brings_the_loss_down_on_a_fixed_batch(trained):
    _, history = trained
    loss = history["loss"]
    assert len(loss) == STEPS and np.all(np.isfinite(loss))
    assert loss[-1] < 0.7 * loss[0], loss
    assert np.mean(loss[-5:]) < 0.7 * np.mean(loss[:5]), loss


def test_trainer_reports_the_four_losses(quick):
    _, history = quick
    for name in rfcn.LOSSES:
        assert name in history and len(history[name]) == 2 and np.all(np.isfinite(history[name]))
    # the loss is their sum (no layer losses here)
    total = np.sum([history[k] for k in rfcn.LOSSES], axis=0)
    np.testing.assert_allclose(history["loss"], total, rtol=1e-4)
    # at the start: ln 2 for the objectness and about ln(C + 1) for the classes (weights N(0, 0.01))
    assert abs(history["rpn_cls_loss"][0] - np.log(2)) < 0.05
    assert abs(history["rcnn_cls_loss"][0] - np.log(NUM_CLASSES + 1)) < 0.1


def test_trainer_keras_round_trip(quick, tmp_path):
    trainer, _ = quick
    path = tmp_path / "trainer.keras"
    trainer.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, rfcn.DetectionTrainer) and loaded.ohem_rois == 128
    assert loaded.detector is not trainer.detector
    saved = trainer.detector.get_weights()
    assert len(loaded.detector.get_weights()) == len(saved)
    for a, b in zip(loaded.detector.get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    x = _batch()[0]
    np.testing.assert_allclose(loaded.detector(x, training=False).numpy(), trainer.detector(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    # the trainer's maps and the detector share the weights in the loaded copy too
    kernel = loaded.detector.get_layer("n_task").get_layer("rfcn_cls").kernel
    assert any(w is kernel for w in loaded.maps.weights)


def test_trainer_needs_a_static_batch():
    keras.utils.set_random_seed(2)
    trainer = rfcn.DetectionTrainer(rfcn.frame_detector("small", NUM_CLASSES))
    trainer.compile(keras.optimizers.Adam(1e-3))
    ds = tf.data.Dataset.from_tensor_slices(_batch()).batch(2)  # no drop_remainder: batch size None
    assert ds.element_spec[0].shape[0] is None
    with pytest.raises(ValueError, match="static batch size"):
        trainer.fit(ds, epochs=1, verbose=0)


def test_trainer_on_a_frame_without_boxes():
    keras.utils.set_random_seed(3)
    trainer = rfcn.DetectionTrainer(rfcn.frame_detector("small", NUM_CLASSES))
    trainer.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)  # eager: no 15 s trace for 2 steps
    x, y = _batch()
    y["num_boxes"][1] = 0
    y["labels"][1] = -1
    y["boxes"][1] = 0
    history = trainer.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), epochs=2, steps_per_epoch=1,
                          verbose=0).history
    for name in ("loss", *rfcn.LOSSES):
        assert np.all(np.isfinite(history[name])), (name, history[name])
    # the all-background image alone: no box loss at all, the R-FCN classes are all background
    maps = trainer.maps(x[1:], training=False)
    out = rfcn.detection_losses(maps, SIZE, y["boxes"][1:], y["labels"][1:], y["num_boxes"][1:],
                                num_classes=NUM_CLASSES, seed=0)
    assert float(out["rpn_bbox_loss"]) == 0 and float(out["rcnn_bbox_loss"]) == 0
    assert float(out["rpn_cls_loss"]) > 0 and float(out["rcnn_cls_loss"]) > 0


# ------------------------------------------------------------------------------------ Algorithm 1
from tests.models.test_dff_runner import Counting  # noqa: E402  (the call counter of the segmentation runner's tests)


def test_runner_on_the_dff_detector(detectors):
    dff, frame = detectors
    frames = _frames(10, 7)
    runner = DFFVideoRunner.from_model(dff, key_interval=3)
    runner.key_features = counted = Counting(runner.key_features)
    out = list(runner.run(frames))
    assert counted.calls == 3 == runner.feature_calls
    assert [i for i, _, key in out if key] == [0, 3, 6] == runner.key_frames
    assert [i for i, _, _ in out] == list(range(7))
    for i, det, key in out:
        assert det.shape == (300, 6)
        if key:
            expected = frame(frames[i:i + 1], training=False).numpy()[0]
            np.testing.assert_allclose(det, expected, rtol=1e-4, atol=1e-3)
    # a non-key frame is propagated from its key frame: not the per-frame result of either
    per_frame = frame(frames[1:2], training=False).numpy()[0]
    assert np.abs(out[1][1] - per_frame).max() > 1e-3


def test_trainer_under_mirrored_strategy_takes_the_single_device_step(mirrored_strategy):
    """Two replicas with one image each make the same SGD step as one device with both images: each
    replica's loss is its image's, scaled by 1 / replicas, and the gradients are summed. (Deterministic
    targets: every anchor sampled (rpn_batch >= anchors), every RoI kept (no OHEM cut: ohem_rois >= RoIs),
    BN frozen so that the batch split does not change the statistics.)"""
    x, y = _batch()

    def step(strategy):
        keras.utils.set_random_seed(4)
        with strategy.scope():
            trainer = rfcn.DetectionTrainer(rfcn.frame_detector("small", NUM_CLASSES, frozen_batch_norm=True),
                                            rpn_batch=100000, ohem_rois=10000)
            trainer.compile(keras.optimizers.SGD(0.1), run_eagerly=True)  # no tracing: suite time
        before = [w.numpy().copy() for w in trainer.trainable_weights]
        trainer.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
        return before, [w.numpy() for w in trainer.trainable_weights]

    before_1, after_1 = step(tf.distribute.get_strategy())
    before_2, after_2 = step(mirrored_strategy)
    moved = 0
    for b1, a1, b2, a2 in zip(before_1, after_1, before_2, after_2):
        np.testing.assert_allclose(b2, b1)  # same start
        np.testing.assert_allclose(a2 - b2, a1 - b1, rtol=2e-3, atol=2e-6)
        moved += int(np.abs(a1 - b1).max() > 1e-6)
    assert moved > 10  # the step did something
