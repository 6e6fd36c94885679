"""Tests of pipeline.detection_pair_dataset and transform_boxes on hand-made shards.

The frames are gradients (red = 4x, green = 4y, blue = 8 t + 4, as in test_pipeline.py), so a decoded
element tells which frames were paired, where a crop came from and whether it was mirrored. Expected
boxes are worked out by hand or by the NumPy reference below (inclusive corners: a box covers the
pixel edges [x1, x2 + 1)).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data import pipeline, schema

H, W = 24, 32
ANNOTATED = [1, 3, 4]
BOXES = {1: ([[0, 0, 5, 3], [4, 2, 11, 9], [20, 2, 30, 5]], [2, 0, 1]), 3: ([], []),
         4: ([[10, 10, 20, 20]], [5])}


def _gradient_video(n, hw=(H, W)):
    yy, xx = np.mgrid[:hw[0], :hw[1]]
    frames = np.empty((n, *hw, 3), np.uint8)
    frames[..., 0], frames[..., 1] = 4 * xx, 4 * yy
    frames[..., 2] = (8 * np.arange(n) + 4)[:, None, None]
    return frames


def _example(video_id="v", boxes=BOXES, index=ANNOTATED, n=6):
    flat = [(t, b, c) for t in sorted(boxes) for b, c in zip(*boxes[t])]
    return schema.make_sequence_example(
        _gradient_video(n), video_id=video_id, boxes=np.array([b for _, b, _ in flat], np.float32),
        box_labels=[c for _, _, c in flat], box_frames=[t for t, _, _ in flat], box_frame_index=index)


def _write(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for ex in examples:
            writer.write(ex.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("det") / "det.tfrecord", [_example()])


def _frame_code(frames):
    """Frame index from the blue channel of (2, H, W, 3) frames."""
    return [int(round((float(np.mean(f[..., 2])) - 4) / 8)) for f in frames]


def _reference(boxes, x0, y0, w, h, flip):
    """NumPy reference for a crop (x0, y0, w, h) at scale 1 and an optional flip: edges clipped to the
    crop, boxes under one pixel dropped."""
    out = []
    for x1, y1, x2, y2 in boxes:
        left, right = max(x1 - x0, 0), min(x2 + 1 - x0, w)
        top, bottom = max(y1 - y0, 0), min(y2 + 1 - y0, h)
        if right - left >= 1 and bottom - top >= 1:
            b = [left, top, right - 1, bottom - 1]
            if flip:
                b = [w - 1 - b[2], b[1], w - 1 - b[0], b[3]]
            out.append(b)
    return np.array(out, np.float32).reshape(-1, 4)


def test_transform_boxes_by_hand():
    boxes = [[4, 2, 11, 9], [0, 0, 5, 3], [20, 2, 30, 5]]
    # crop (y, x, h, w) = (4, 8, 16, 16) of the 24x32 frame, no resize
    new, keep = pipeline.transform_boxes(boxes, (24, 32), (24, 32), (4, 8, 16, 16), (16, 16))
    assert keep.numpy().tolist() == [True, False, True]
    np.testing.assert_allclose(new.numpy()[[0, 2]], [[0, 0, 3, 5], [12, 0, 15, 1]])
    # the same, mirrored: x1'' = 15 - x2', x2'' = 15 - x1'
    new, _ = pipeline.transform_boxes(boxes, (24, 32), (24, 32), (4, 8, 16, 16), (16, 16), True)
    np.testing.assert_allclose(new.numpy()[[0, 2]], [[12, 0, 15, 5], [0, 0, 3, 1]])
    # resize 24x32 -> 12x16 (edges x 0.5), then the whole frame to 6x8 (x 0.5 again)
    new, keep = pipeline.transform_boxes([[4, 2, 11, 9]], (24, 32), (12, 16), (0, 0, 12, 16), (6, 8))
    np.testing.assert_allclose(new.numpy(), [[1, 0.5, 2, 1.5]])  # edges [1, 3) x [0.5, 2.5)
    # a box whose part in the crop is under one output pixel is dropped
    _, keep = pipeline.transform_boxes([[0, 0, 8, 20]], (24, 32), (24, 32), (0, 8, 16, 16), (16, 16))
    assert keep.numpy().tolist() == [True]  # exactly one pixel column (x = 8) inside
    _, keep = pipeline.transform_boxes([[0, 0, 7.5, 20]], (24, 32), (24, 32), (0, 8, 16, 16), (16, 16))
    assert keep.numpy().tolist() == [False]  # half a pixel


def test_evaluation_pairs_and_boxes(shard):
    ds = pipeline.detection_pair_dataset(shard, training=False, size=(H, W), batch_size=9,
                                         max_offset=2, max_boxes=4, with_video_id=True)
    inputs, targets = next(iter(ds))
    assert inputs["frames"].shape == (9, 2, H, W, 3) and targets["boxes"].shape == (9, 4, 4)
    pairs = [_frame_code(f) for f in inputs["frames"].numpy()]
    assert pairs == [[1, 1], [0, 1], [0, 1], [3, 3], [2, 3], [1, 3], [4, 4], [3, 4], [2, 4]]
    assert inputs["frame_index"].numpy().tolist() == [p[1] for p in pairs]
    assert inputs["key_frame_index"].numpy().tolist() == [p[0] for p in pairs]
    assert set(inputs["video_id"].numpy().tolist()) == {b"v"}
    assert targets["num_boxes"].numpy().tolist() == [3, 3, 3, 0, 0, 0, 1, 1, 1]
    for row, (_, i) in enumerate(pairs):
        b, c = BOXES[i]
        n = len(c)
        np.testing.assert_array_equal(targets["boxes"].numpy()[row, :n], np.reshape(b, (-1, 4)))
        np.testing.assert_array_equal(targets["boxes"].numpy()[row, n:], 0)
        assert targets["labels"].numpy()[row].tolist() == c + [-1] * (4 - n)


def test_evaluation_resize_and_centre_crop(shard):
    ds = pipeline.detection_pair_dataset(shard, training=False, size=(12, 16), batch_size=3,
                                         eval_offsets=[0], resize_short_side=12, max_boxes=3)
    _, targets = next(iter(ds))
    # halved: edges [x1, x2 + 1) x 0.5 (hand-computed)
    np.testing.assert_allclose(targets["boxes"].numpy()[0],
                               [[0, 0, 2, 1], [2, 1, 5, 4], [10, 1, 14.5, 2]])
    np.testing.assert_allclose(targets["boxes"].numpy()[2, 0], [5, 5, 9.5, 9.5])
    # centre crop (y, x, h, w) = (4, 8, 16, 16) of the stored frame: box 0 leaves, the others move up
    ds = pipeline.detection_pair_dataset(shard, training=False, size=(16, 16), batch_size=3,
                                         eval_offsets=[0], max_boxes=3)
    _, targets = next(iter(ds))
    assert targets["num_boxes"].numpy().tolist() == [2, 0, 1]
    np.testing.assert_allclose(targets["boxes"].numpy()[0], [[0, 0, 3, 5], [12, 0, 15, 1], [0, 0, 0, 0]])
    assert targets["labels"].numpy()[0].tolist() == [0, 1, -1]
    np.testing.assert_allclose(targets["boxes"].numpy()[2, 0], [2, 6, 12, 15])


def test_training_crops_and_flips_boxes_like_frames(shard):
    ds = pipeline.detection_pair_dataset(shard, training=True, size=(16, 16), batch_size=8,
                                         max_offset=2, max_boxes=4, crop="random", flip=True, seed=3)
    flips, seen = set(), set()
    for frames, targets in ds.take(6):
        for f, boxes, labels, n in zip(frames.numpy(), targets["boxes"].numpy(),
                                       targets["labels"].numpy(), targets["num_boxes"].numpy()):
            key, i = _frame_code(f)
            assert i in ANNOTATED and 0 <= i - key <= 2
            red = f[1, ..., 0].astype(float).mean(axis=0) / 4  # x0 + x, or x0 + 15 - x if mirrored
            flip = red[0] > red[-1]
            x0 = int(round(float(np.mean(red - (15 - np.arange(16) if flip else np.arange(16))))))
            y0 = int(round(float(np.mean(f[1, ..., 1].astype(float).mean(axis=1) / 4 - np.arange(16)))))
            want = _reference(BOXES[i][0], x0, y0, 16, 16, flip)
            assert n == len(want)
            np.testing.assert_allclose(boxes[:n], want)
            assert (labels[n:] == -1).all() and (boxes[n:] == 0).all()
            kept = [c for b, c in zip(BOXES[i][0], BOXES[i][1])
                    if len(_reference([b], x0, y0, 16, 16, False))]
            assert labels[:n].tolist() == kept
            flips.add(bool(flip))
            seen.add(i)
    assert flips == {True, False} and seen == set(ANNOTATED)


def test_errors(tmp_path, shard):
    with pytest.raises(ValueError, match="max_boxes must be a positive int"):
        pipeline.detection_pair_dataset(shard, training=False, size=8, batch_size=1, max_boxes=0)
    ds = pipeline.detection_pair_dataset(shard, training=False, size=(H, W), batch_size=1, max_boxes=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_boxes=2"):
        for _ in ds:
            pass
    plain = _write(tmp_path / "plain.tfrecord", [schema.make_sequence_example(_gradient_video(3))])
    ds = pipeline.detection_pair_dataset(plain, training=False, size=(H, W), batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="detection/frame_index"):
        next(iter(ds))


def test_read_videos_detection(shard):
    (video,) = pipeline.read_videos(shard, detection=True)
    assert video["box_frame_index"].tolist() == ANNOTATED
    assert video["box_frames"].tolist() == [1, 1, 1, 4]
    np.testing.assert_array_equal(video["boxes"][3], [10, 10, 20, 20])
    assert video["box_tracks"].tolist() == [-1] * 4
