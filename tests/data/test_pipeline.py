"""Tests for tfvideo.data.pipeline on tiny shards whose frames say which frame they are.

Frame ``k`` of every video carries the value ``8 * k + 4`` (the whole frame for the grey "action"
videos, the blue channel for the gradient videos), so the decoded JPEG tells which frames were
sampled; the gradient videos (red = 4x, green = 4y) tell where a crop came from and whether it was
mirrored. Expected indices, crops, flows and labels are worked out by hand or with NumPy below.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data import pipeline, schema
from tfvideo.data.shards import shard_name

H, W = 24, 32
ACTION = {0: (5, (24, 32)), 1: (12, (32, 24)), 2: (30, (24, 32))}  # label -> (frames, (h, w))


# ------------------------------------------------------------------------------------- fixtures ----
def _grey_video(n, hw):
    return np.broadcast_to((8 * np.arange(n) + 4).astype(np.uint8)[:, None, None, None],
                           (n, *hw, 3)).copy()


def _gradient_video(n, hw):
    yy, xx = np.mgrid[:hw[0], :hw[1]]
    frames = np.empty((n, *hw, 3), np.uint8)
    frames[..., 0], frames[..., 1] = 4 * xx, 4 * yy
    frames[..., 2] = (8 * np.arange(n) + 4)[:, None, None]
    return frames


def _write(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for ex in examples:
            writer.write(ex.SerializeToString())
    return str(path)


def _flows():
    """Flows of the 6-frame "flow" video: stored at t = 0, 1, 2, 4, u = 2 (t + 1), v = -1."""
    index = [0, 1, 2, 4]
    flows = np.zeros((4, H, W, 2), np.float32)
    flows[..., 0] = 2.0 * (np.array(index) + 1)[:, None, None]
    flows[..., 1] = -1.0
    valid = np.ones((4, H, W), bool)
    valid[1, 4:6, 6:8] = False  # one invalid 2x2 block in the flow starting at frame 1
    return index, flows, valid


def _seg_maps():
    first = np.where(np.arange(W) < 16, 1, 2).astype(np.uint8)[None].repeat(H, 0)
    first[:4, :4] = 255
    second = np.full((H, W), 3, np.uint8)
    second[10] = 255
    return np.stack([first, second])  # labels of frames 1 and 3


def _pair_map(i):
    m = np.full((H, W), i, np.uint8)
    if i == 9:
        m[:2] = 255
    return m


PAIR_FRAMES = (2, 9, 15)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    action = root / "action"
    action.mkdir()
    for label, (n, hw) in ACTION.items():  # one video per shard: 3 files
        ex = schema.make_sequence_example(_grey_video(n, hw), label=label, video_id=f"v{label}")
        _write(action / shard_name("train", label, 3), [ex])
    grid = _write(root / "grid.tfrecord", [
        schema.make_sequence_example(_gradient_video(3, (24, 32)), label=0, video_id="landscape"),
        schema.make_sequence_example(_gradient_video(3, (32, 24)), label=1, video_id="portrait")])
    index, flows, valid = _flows()
    flow = _write(root / "flow.tfrecord", [schema.make_sequence_example(
        _gradient_video(6, (H, W)), label=0, flows=flows, flow_frame_index=index, flow_valid=valid)])
    seg = _write(root / "seg.tfrecord", [
        schema.make_sequence_example(_grey_video(4, (H, W)), label=0, segmentations=_seg_maps(),
                                     segmentation_frame_index=[1, 3]),
        schema.make_sequence_example(_grey_video(4, (H, W)), label=1)])  # no labels at all
    pairs = _write(root / "pairs.tfrecord", [schema.make_sequence_example(
        _grey_video(20, (H, W)), label=0, segmentations=np.stack([_pair_map(i) for i in PAIR_FRAMES]),
        segmentation_frame_index=list(PAIR_FRAMES))])
    return {"action": str(action), "grid": grid, "flow": flow, "seg": seg, "pairs": pairs}


def _ids(frames, channel=None):
    """Frame ids from pixel values ``8 k + 4`` (mean over the frame, or over one channel)."""
    x = np.asarray(frames, np.float64)
    x = x.mean(axis=(-3, -2, -1)) if channel is None else x[..., channel].mean(axis=(-2, -1))
    return np.round((x - 4) / 8).astype(int)


def _collect(ds, count=None):
    """Concatenate the components of the batches of ``ds`` (the first ``count`` batches)."""
    batches = [tf.nest.map_structure(np.asarray, b) for b in (ds.take(count) if count else ds)]
    return tf.nest.map_structure(lambda *xs: np.concatenate(xs), *batches)


# ---------------------------------------------------------------------------------------- clips ----
@pytest.mark.parametrize("num_clips, expected", [
    (1, {0: [[0, 2, 4, 4]], 1: [[2, 4, 6, 8]], 2: [[11, 13, 15, 17]]}),
    # max_start 0 / 5 / 23; starts round(linspace(0, max_start, 3)) = [0,0,0] / [0,2,5] / [0,12,23]
    (3, {0: [[0, 2, 4, 4]] * 3, 1: [[0, 2, 4, 6], [2, 4, 6, 8], [5, 7, 9, 11]],
         2: [[0, 2, 4, 6], [12, 14, 16, 18], [23, 25, 27, 29]]}),
])
def test_clip_eval_indices(data, num_clips, expected):
    ds = pipeline.clip_dataset(data["action"], "train", training=False, batch_size=2, num_frames=4,
                               stride=2, num_clips=num_clips, size=(16, 16))
    assert ds.element_spec[0].shape.as_list() == [None, 4, 16, 16, 3]
    frames, labels = _collect(ds)
    assert frames.dtype == np.uint8 and labels.dtype == np.int32
    assert frames.shape == (3 * num_clips, 4, 16, 16, 3)
    np.testing.assert_array_equal(np.sort(labels), np.repeat([0, 1, 2], num_clips))
    ids = _ids(frames)
    for label, want in expected.items():
        np.testing.assert_array_equal(ids[labels == label], want)


def test_clip_training_indices(data):
    ds = pipeline.clip_dataset(data["action"], "train", training=True, batch_size=6, num_frames=4,
                               stride=2, size=(16, 16), seed=0)
    frames, labels = _collect(ds, 4)
    assert frames.shape == (24, 4, 16, 16, 3) and labels.shape == (24,)
    assert set(labels.tolist()) == {0, 1, 2}
    starts = set()
    for ids, label in zip(_ids(frames), labels):
        n = ACTION[label][0]
        max_start = max(0, n - 7)
        assert 0 <= ids[0] <= max_start
        np.testing.assert_array_equal(ids, np.minimum(ids[0] + 2 * np.arange(4), n - 1))
        starts.add((label, ids[0]))
    assert len(starts) > 3  # the starts are random


# ------------------------------------------------------------------------------------- segments ----
def _tsn_test_indices(n, s, k):
    """TSN's ``_get_test_indices`` (0-based), clamped to the video."""
    tick = (n - k + 1) / s
    starts = np.array([max(int(tick / 2.0 + tick * i), 0) for i in range(s)])
    return np.clip(starts[:, None] + np.arange(k), 0, n - 1)


def test_segment_eval_indices(data):
    ds = pipeline.segment_dataset(data["action"], "train", training=False, batch_size=2,
                                  num_segments=3, frames_per_segment=2, size=(16, 16))
    frames, labels = _collect(ds)
    assert frames.shape == (3, 3, 2, 16, 16, 3) and frames.dtype == np.uint8
    for ids, label in zip(_ids(frames), labels):
        np.testing.assert_array_equal(ids, _tsn_test_indices(ACTION[label][0], 3, 2))
    # hand-worked: n=30, k=2 -> tick = 29/3 -> starts int(4.83), int(14.5), int(24.17)
    np.testing.assert_array_equal(_ids(frames)[labels == 2][0], [[4, 5], [14, 15], [24, 25]])


def test_segment_training_indices(data):
    ds = pipeline.segment_dataset(data["action"], "train", training=True, batch_size=6,
                                  num_segments=3, frames_per_segment=2, size=(16, 16), seed=1)
    frames, labels = _collect(ds, 3)
    assert frames.shape == (18, 3, 2, 16, 16, 3)
    for ids, label in zip(_ids(frames), labels):
        n = ACTION[label][0]
        avg = (n - 2 + 1) // 3  # > 0 for every video here
        np.testing.assert_array_equal(ids, ids[:, :1] + np.arange(2))  # k consecutive frames
        assert all(i * avg <= ids[i, 0] < (i + 1) * avg for i in range(3)), (label, ids)


# ----------------------------------------------------------------------------------- multi-view ----
@pytest.mark.parametrize("num_crops", [1, 3, 5, 10])
@pytest.mark.parametrize("flip_views", [False, True])
def test_multi_view_counts_and_video_id(data, num_crops, flip_views):
    ds = pipeline.clip_dataset(data["action"], "train", training=False, batch_size=7, num_frames=2,
                               num_clips=2, num_crops=num_crops, flip_views=flip_views,
                               size=(16, 16), with_video_id=True)
    inputs, labels = _collect(ds)
    per_video = 2 * num_crops * (2 if flip_views else 1)
    assert len(labels) == 3 * per_video and inputs["frames"].shape[0] == len(labels)
    index = inputs["video_id"]
    np.testing.assert_array_equal(index, np.repeat(index[::per_video], per_video))
    assert sorted(set(index.tolist())) == [b"v0", b"v1", b"v2"]
    np.testing.assert_array_equal(labels, np.repeat(labels[::per_video], per_video))
    assert sorted(labels[::per_video].tolist()) == [0, 1, 2]


def _crop(frame, y, x, h=16, w=16):
    return frame[y:y + h, x:x + w].astype(int)


@pytest.mark.parametrize("num_crops", [3, 5, 10])
def test_view_crops_are_the_documented_boxes(data, num_crops):
    ds = pipeline.clip_dataset(data["grid"], training=False, batch_size=64, num_frames=1,
                               num_crops=num_crops, flip_views=True, size=(16, 16))
    frames, labels = _collect(ds)
    views = 2 * num_crops
    assert frames.shape == (2 * views, 1, 16, 16, 3)
    # boxes (y, x): 3 crops move along the longer side, 5 = TL, TR, BL, BR, centre (exact corners)
    boxes = {(24, 32): {3: [(4, 0), (4, 8), (4, 16)],
                        5: [(0, 0), (0, 16), (8, 0), (8, 16), (4, 8)]},
             (32, 24): {3: [(0, 4), (8, 4), (16, 4)],
                        5: [(0, 0), (0, 8), (16, 0), (16, 8), (8, 4)]}}
    for label, hw in enumerate([(24, 32), (32, 24)]):
        got = frames[labels == label][:, 0].astype(int)
        original = _gradient_video(3, hw)[1]  # the centre clip of 1 frame out of 3 is frame 1
        np.testing.assert_array_equal(_ids(got, channel=2), 1)
        expected = [_crop(original, y, x) for y, x in boxes[hw][min(num_crops, 5)]]
        if num_crops == 10:  # TSN's 10-crop: the second five mirrored
            expected += [e[:, ::-1] for e in expected]
        expected += [e[:, ::-1] for e in expected]  # flip_views
        for v in range(views):
            assert np.abs(got[v] - expected[v]).max() <= 8, (hw, v)
        # flipped views are exact mirror images of the unflipped ones
        np.testing.assert_array_equal(got[num_crops:], got[:num_crops, :, ::-1])


# ----------------------------------------------------------------------------------------- dense ----
def test_dense_flow_eval_scaled_flipped_and_weighted(data):
    ds = pipeline.dense_dataset([data["flow"]], target="flow", training=False, batch_size=4,
                                num_frames=6, resize_short_side=12, crop="center", size=(12, 16),
                                flip_views=True)
    frames, flow, weight = _collect(ds)
    assert frames.shape == (2, 6, 12, 16, 3) and flow.shape == (2, 6, 12, 16, 2)
    assert flow.dtype == np.float32 and weight.shape == (2, 6, 12, 16)
    np.testing.assert_array_equal(_ids(frames, channel=2), [np.arange(6)] * 2)
    expected_w = np.zeros((6, 12, 16))
    expected_w[[0, 1, 2, 4]] = 1  # frames 3 and 5 (the last) have no stored flow
    expected_w[1, 2, 3] = 0  # the invalid 2x2 block at (4:6, 6:8), halved
    u = np.arange(1, 7, dtype=np.float64)[:, None, None]  # 2 (t + 1) halved
    for view, sign in ((0, 1.0), (1, -1.0)):
        w = expected_w if view == 0 else expected_w[:, :, ::-1]
        np.testing.assert_array_equal(weight[view], w)
        known = w > 0
        np.testing.assert_allclose(flow[view, ..., 0][known], np.broadcast_to(sign * u, w.shape)[known],
                                   atol=1e-4)
        np.testing.assert_allclose(flow[view, ..., 1][known], -0.5, atol=1e-4)
    np.testing.assert_array_equal(frames[1], frames[0][:, :, ::-1])


def test_dense_flow_training_flip_negates_u(data):
    ds = pipeline.dense_dataset([data["flow"]], target="flow", training=True, batch_size=16,
                                num_frames=6, crop="center", size=(H, W), flip=True, seed=3)
    frames, flow, weight = _collect(ds, 1)
    _, _, valid = _flows()
    u = 2.0 * np.arange(1, 7)[:, None, None]
    flips = []
    for f, fl, w in zip(frames, flow, weight):
        np.testing.assert_array_equal(_ids(f, channel=2), np.arange(6))
        red = f[0, 0, :, 0].astype(int)
        flipped = red[0] > red[-1]  # the red gradient (4x) runs right to left after a flip
        flips.append(flipped)
        expected_w = np.zeros((6, H, W))
        expected_w[[0, 1, 2, 4]] = valid
        if flipped:
            expected_w = expected_w[:, :, ::-1]
        np.testing.assert_array_equal(w, expected_w)
        known = expected_w > 0
        sign = -1.0 if flipped else 1.0
        np.testing.assert_allclose(fl[..., 0][known], np.broadcast_to(sign * u, known.shape)[known])
        np.testing.assert_allclose(fl[..., 1][known], -1.0)
    assert any(flips) and not all(flips)



def test_action_flow_labels_flows_validity_and_future_flow(data):
    """ActionFlowNet's samples: the label, and per frame t the flow t -> t + 1 with its validity as a third
    channel (the last frame's future flow, t = 5, is not stored: valid 0, value 0)."""
    ds = pipeline.action_flow_dataset([data["flow"]], training=False, batch_size=4, num_frames=6,
                                      resize_short_side=12, crop="center", size=(12, 16), flip_views=True)
    frames, targets = _collect(ds)
    assert set(targets) == {"logits", "flow"}
    np.testing.assert_array_equal(targets["logits"], [0, 0])
    flow = targets["flow"]
    assert frames.shape == (2, 6, 12, 16, 3) and flow.shape == (2, 6, 12, 16, 3) and flow.dtype == np.float32
    expected_w = np.zeros((6, 12, 16))
    expected_w[[0, 1, 2, 4]] = 1
    expected_w[1, 2, 3] = 0
    u = np.arange(1, 7, dtype=np.float64)[:, None, None]
    for view, sign in ((0, 1.0), (1, -1.0)):
        w = expected_w if view == 0 else expected_w[:, :, ::-1]
        np.testing.assert_array_equal(flow[view, ..., 2], w)
        known = w > 0
        np.testing.assert_allclose(flow[view, ..., 0][known], np.broadcast_to(sign * u, w.shape)[known],
                                   atol=1e-4)
        np.testing.assert_allclose(flow[view, ..., 1][known], -0.5, atol=1e-4)
        np.testing.assert_array_equal(flow[view, ..., :2][~known], 0.0)


def test_action_flow_training_clips_are_consecutive(data):
    ds = pipeline.action_flow_dataset([data["flow"]], training=True, batch_size=4, num_frames=3,
                                      crop="center", size=(H, W), flip=False, seed=0)
    frames, targets = _collect(ds, 1)
    for f, fl in zip(frames, targets["flow"]):
        ids = _ids(f, channel=2)
        np.testing.assert_array_equal(np.diff(ids), [1, 1])
        has_flow = np.isin(ids, [0, 1, 2, 4])
        np.testing.assert_array_equal(fl[..., 2].max(axis=(1, 2)) > 0, has_flow)
        np.testing.assert_allclose(fl[has_flow, 0, 0, 0], 2.0 * (ids[has_flow] + 1), atol=1e-3)

def test_dense_segmentation(data):
    ds = pipeline.dense_dataset([data["seg"]], target="segmentation", training=False,
                                batch_size=2, num_frames=4, crop="center", size=(H, W))
    frames, labels, weight = _collect(ds)
    assert labels.shape == (2, 4, H, W) and labels.dtype == np.int32 and weight.dtype == np.float32
    maps = _seg_maps().astype(int)
    expected_w = np.zeros((4, H, W))
    expected_w[[1, 3]] = maps != 255
    np.testing.assert_array_equal(weight[0], expected_w)
    np.testing.assert_array_equal(labels[0, [1, 3]], np.where(maps == 255, 0, maps))
    np.testing.assert_array_equal(labels[0, [0, 2]], 0)
    np.testing.assert_array_equal(weight[1], 0)  # a video without labels
    np.testing.assert_array_equal(labels[1], 0)


def test_read_videos_whole_with_labels_and_flows(data):
    seg = list(pipeline.read_videos([data["seg"]], segmentation=True))
    assert len(seg) == 2
    assert seg[0]["frames"].shape == (4, H, W, 3) and seg[0]["frames"].dtype == np.uint8
    np.testing.assert_array_equal(_ids(seg[0]["frames"]), [0, 1, 2, 3])
    np.testing.assert_array_equal(seg[0]["segmentation_frame_index"], [1, 3])
    np.testing.assert_array_equal(seg[0]["segmentations"], _seg_maps())      # 255 kept as it is
    assert seg[1]["segmentations"].shape == (0, H, W)                       # a video without labels
    flow = next(pipeline.read_videos([data["flow"]], flow=True))
    index, flows, valid = _flows()
    np.testing.assert_array_equal(flow["flow_frame_index"], index)
    np.testing.assert_array_equal(flow["flow_valid"], valid)
    np.testing.assert_allclose(flow["flows"], np.where(valid[..., None], flows, 0))
    assert [v["video_id"] for v in pipeline.read_videos(data["action"], "train", limit=2)] == ["v0", "v1"]
    with pytest.raises(ValueError, match="limit"):
        next(pipeline.read_videos([data["seg"]], limit=0))


def test_dense_colour(data):
    ds = pipeline.dense_dataset(data["grid"], target="colour", training=False, batch_size=2,
                                num_frames=2, size=(16, 16))
    grey, rgb, weight = _collect(ds)
    assert grey.shape == (2, 2, 16, 16, 1) and grey.dtype == np.uint8
    assert rgb.shape == (2, 2, 16, 16, 3) and rgb.dtype == np.uint8
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey[..., 0] - luma).max() <= 1.0
    assert rgb.std() > 20  # a colourful input, not a constant one
    np.testing.assert_array_equal(weight, 1.0)


# ----------------------------------------------------------------------------------------- pairs ----
def _expected_labels(i):
    m = _pair_map(i).astype(int)
    return np.where(m == 255, 0, m), (m != 255).astype(np.float32)


def test_pair_training(data):
    ds = pipeline.pair_dataset([data["pairs"]], training=True, batch_size=32, max_offset=4,
                               crop="center", size=(H, W), seed=0)
    frames, labels, weight = _collect(ds, 1)
    assert frames.shape == (32, 2, H, W, 3) and labels.shape == (32, H, W)
    ids = _ids(frames)
    k, i = ids[:, 0], ids[:, 1]
    assert set(i.tolist()) == set(PAIR_FRAMES)
    assert np.all((i - k >= 0) & (i - k <= 4)) and len(set((i - k).tolist())) > 1
    for ii, lab, w in zip(i, labels, weight):
        want_lab, want_w = _expected_labels(ii)
        np.testing.assert_array_equal(lab, want_lab)
        np.testing.assert_array_equal(w, want_w)


def test_pair_eval_offsets(data):
    ds = pipeline.pair_dataset([data["pairs"]], training=False, batch_size=4, eval_offsets=(0, 3),
                               crop="center", size=(H, W))
    frames, labels, weight = _collect(ds)
    assert frames.shape == (6, 2, H, W, 3)
    # k = i - min(d, i): frame 2 at distance 3 falls back to key frame 0
    np.testing.assert_array_equal(_ids(frames), [[2, 2], [0, 2], [9, 9], [6, 9], [15, 15], [12, 15]])
    for lab, w, i in zip(labels, weight, [2, 2, 9, 9, 15, 15]):
        want_lab, want_w = _expected_labels(i)
        np.testing.assert_array_equal(lab, want_lab)
        np.testing.assert_array_equal(w, want_w)


# --------------------------------------------------------------------------------- determinism ----
def test_seeded_training_is_reproducible(data):
    def batches(seed):
        return list(pipeline.clip_dataset(
            data["action"], "train", training=True, batch_size=2, num_frames=4, size=(16, 16),
            seed=seed, color_jitter={"brightness": 0.2}).take(3).as_numpy_iterator())

    first, again, other = batches(5), batches(5), batches(6)
    for (fa, la), (fb, lb) in zip(first, again):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(la, lb)
    assert any(not np.array_equal(fa, fc) or not np.array_equal(la, lc)
               for (fa, la), (fc, lc) in zip(first, other))


# -------------------------------------------------------------------------------- distribution ----
def test_mirrored_strategy_splits_batches_and_fits(data, mirrored_strategy):
    import keras

    strategy = mirrored_strategy
    ds = pipeline.clip_dataset(data["action"], "train", training=True, batch_size=4, num_frames=4,
                               size=(16, 16), seed=0)
    frames, labels = next(iter(strategy.experimental_distribute_dataset(ds)))
    parts = strategy.experimental_local_results(frames)
    assert len(parts) == 2 and all(p.shape == (2, 4, 16, 16, 3) for p in parts)
    assert all(p.shape == (2,) for p in strategy.experimental_local_results(labels))
    with strategy.scope():
        model = keras.Sequential([keras.Input((4, 16, 16, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(3)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_sharding_is_by_file(data):
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    policy = tf.data.experimental.AutoShardPolicy
    files = pipeline.list_shards(data["action"], "train")
    assert len(files) == 3
    ds = pipeline.clip_dataset(files, training=False, batch_size=2, num_frames=2, size=(16, 16))
    assert ds.options().experimental_distribute.auto_shard_policy in (policy.AUTO, policy.FILE)
    # two workers each reading their half of the files see every video exactly once
    halves = [pipeline.read_records(files[w::2]) for w in range(2)]
    ids = [r[schema.VIDEO_ID].decode() for h in halves for r in h.as_numpy_iterator()]
    assert sorted(ids) == ["v0", "v1", "v2"]
    # tf.distribute's own rewrite with the FILE policy (it fails if the source is not a file list)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.FILE
    try:
        labels = [_collect(_AutoShardDataset(ds.with_options(options), 2, w))[1] for w in range(2)]
    except tf.errors.NotFoundError as err:  # AUTO would silently fall back to sharding by element
        pytest.fail(f"the pipeline cannot be sharded by file: {str(err).splitlines()[0][-80:]}")
    assert sorted(np.concatenate(labels).tolist()) == [0, 1, 2]
    assert all(len(lab) > 0 for lab in labels)


# --------------------------------------------------------------------------------------- errors ----
@pytest.mark.parametrize("builder", [pipeline.clip_dataset, pipeline.segment_dataset,
                                     pipeline.pair_dataset, pipeline.dense_dataset])
def test_builders_have_real_signatures(builder):
    """help() and IDEs show every argument: the required ones and the options with defaults."""
    params = inspect.signature(builder).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    required = {n for n, p in params.items()
                if p.kind is p.KEYWORD_ONLY and p.default is inspect.Parameter.empty}
    assert required == {"training", "size", "batch_size"} | ({"target"} if builder is
                                                               pipeline.dense_dataset else set())
    assert {"crop", "flip", "color_jitter", "resize_short_side", "num_crops", "flip_views", "seed",
            "deterministic", "shuffle_buffer", "cache", "cycle_length"} <= set(params)
    assert params["crop"].default == ("tsn" if builder is pipeline.segment_dataset else "random")


def test_errors(data, tmp_path):
    files = pipeline.list_shards(data["action"], "train")
    with pytest.raises(ValueError, match="tfvideo.data.prepare"):
        pipeline.clip_dataset(str(tmp_path), "train", training=False, batch_size=1, size=16)
    with pytest.raises(ValueError, match="tfvideo.data.prepare"):
        pipeline.list_shards(str(tmp_path / "*.tfrecord"))
    kw = dict(training=False, batch_size=1)
    for size in [(0, 16), (16,), "16", -3, (16.0, 16)]:
        with pytest.raises(ValueError, match="size"):
            pipeline.clip_dataset(files, size=size, **kw)
    with pytest.raises(ValueError, match="crop"):
        pipeline.clip_dataset(files, size=16, crop="corner", **kw)
    with pytest.raises(ValueError, match="num_crops"):
        pipeline.segment_dataset(files, size=16, num_crops=4, **kw)
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_frame'"):
        pipeline.clip_dataset(files, size=16, num_frame=4, **kw)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'size'"):
        pipeline.clip_dataset(files, **kw)
    with pytest.raises(ValueError, match="target"):
        pipeline.dense_dataset(files, target="depth", size=16, **kw)
    with pytest.raises(ValueError, match="eval_offsets"):
        pipeline.pair_dataset(files, size=16, eval_offsets=(-1,), **kw)
    for batch_size in (0, -2, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            pipeline.clip_dataset(files, training=False, batch_size=batch_size, size=16)
