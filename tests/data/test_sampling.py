"""Tests for tfvideo.data.sampling: hand-worked index arrays and a NumPy transcription of TSN."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data.sampling import clip_indices, frame_pair_indices, segment_indices, split_seed


def _draws(fn, num=300):
    """``fn(seed)`` for ``num`` different seeds, run as one graph inside tf.data; stacked NumPy array."""
    ds = tf.data.Dataset.range(num).map(lambda i: fn(tf.stack([i, tf.constant(11, tf.int64)])))
    return ds.batch(num).get_single_element().numpy()


# ------------------------------------------------------------------------------- clip_indices ----
def test_clip_eval_hand_worked():
    # n=20, T=4, s=2: the clip spans 7 frames, max_start = 20 - 6 - 1 = 13
    np.testing.assert_array_equal(clip_indices(20, 4, 2, training=False), [[6, 8, 10, 12]])
    # starts round([0, 6.5, 13]) with ties to even -> [0, 6, 13]
    np.testing.assert_array_equal(clip_indices(20, 4, 2, training=False, num_clips=3),
                                  [[0, 2, 4, 6], [6, 8, 10, 12], [13, 15, 17, 19]])
    # starts round([0, 4.33, 8.67, 13]) -> [0, 4, 9, 13]
    np.testing.assert_array_equal(clip_indices(20, 4, 2, training=False, num_clips=4)[:, 0], [0, 4, 9, 13])
    np.testing.assert_array_equal(clip_indices(tf.constant(10, tf.int64), 3, training=False), [[3, 4, 5]])


def test_clip_eval_starts_match_numpy_linspace():
    for n, t, s, k in [(50, 8, 2, 5), (37, 5, 3, 7), (100, 16, 1, 10), (9, 2, 1, 4)]:
        max_start = max(0, n - (t - 1) * s - 1)
        expected = np.round(np.linspace(0, max_start, k)).astype(int)[:, None] + np.arange(t) * s
        np.testing.assert_array_equal(clip_indices(n, t, s, training=False, num_clips=k), expected)


def test_clip_short_video_is_clamped():
    # n=5, T=4, s=2 needs 7 frames: start 0, last frame repeated
    np.testing.assert_array_equal(clip_indices(5, 4, 2, training=False), [[0, 2, 4, 4]])
    np.testing.assert_array_equal(clip_indices(5, 4, 2, training=False, num_clips=3), [[0, 2, 4, 4]] * 3)
    np.testing.assert_array_equal(clip_indices(1, 3, training=False), [[0, 0, 0]])
    seed = tf.constant([3, 4])
    np.testing.assert_array_equal(clip_indices(5, 4, 2, training=True, seed=seed), [0, 2, 4, 4])


def test_clip_training_start_is_uniform_over_range():
    idx = _draws(lambda seed: clip_indices(20, 4, 2, training=True, seed=seed))
    assert idx.shape == (300, 4)
    starts = idx[:, 0]
    np.testing.assert_array_equal(idx, starts[:, None] + np.array([0, 2, 4, 6]))
    assert starts.min() == 0 and starts.max() == 13
    assert set(starts.tolist()) == set(range(14))  # every start is reachable


def test_clip_training_is_deterministic_per_seed():
    a = clip_indices(100, 8, 2, training=True, seed=tf.constant([1, 2], tf.int64))
    b = clip_indices(100, 8, 2, training=True, seed=tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(a, b)
    others = [clip_indices(100, 8, 2, training=True, seed=[1, s])[0].numpy() for s in range(3, 13)]
    assert any(o != a[0].numpy() for o in others)


def test_clip_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        clip_indices(20, 4, training=True)
    with pytest.raises(ValueError, match="num_clips"):
        clip_indices(20, 4, training=True, num_clips=2, seed=[1, 2])
    with pytest.raises(ValueError, match="stride"):
        clip_indices(20, 4, 0, training=False)
    with pytest.raises(ValueError, match="num_frames"):
        clip_indices(0, 4, training=False)
    with pytest.raises(TypeError, match="training"):
        clip_indices(20, 4, training=tf.constant(True))
    with pytest.raises(ValueError, match="shape"):
        clip_indices(20, 4, training=True, seed=[1, 2, 3])
    with pytest.raises(TypeError, match="seed"):
        split_seed(tf.constant([1.0, 2.0]))


# ---------------------------------------------------------------------------- segment_indices ----
def _tsn_test_starts(n, s, k):
    """TSN ``_get_test_indices`` (0-based), clamped at 0."""
    tick = (n - k + 1) / float(s)
    return np.maximum(np.array([int(tick / 2.0 + tick * x) for x in range(s)]), 0)


def _tsn_train_allowed(n, s, k):
    """Per segment, the set of starts TSN's ``_sample_indices`` can draw, and whether they are sorted."""
    m = n - k + 1
    avg = m // s
    if avg > 0:
        return [set(range(i * avg, (i + 1) * avg)) for i in range(s)], False
    if n > s and m >= 1:
        return [set(range(m))] * s, True
    return [{0}] * s, False


def test_segment_eval_hand_worked():
    # n=30, S=3, k=6: tick = 25/3 = 8.33 -> int(4.17), int(12.5), int(20.83) = 4, 12, 20
    np.testing.assert_array_equal(segment_indices(30, 3, 6, training=False),
                                  [[4, 5, 6, 7, 8, 9], [12, 13, 14, 15, 16, 17], [20, 21, 22, 23, 24, 25]])
    # n=30, S=3, k=1: tick = 10 -> 5, 15, 25
    np.testing.assert_array_equal(segment_indices(30, 3, training=False), [[5], [15], [25]])
    # n=2, S=3, k=1: tick = 2/3 -> int(1/3), int(1), int(5/3) = 0, 1, 1
    np.testing.assert_array_equal(segment_indices(2, 3, training=False), [[0], [1], [1]])


def test_segment_short_video_is_clamped():
    # n=4 < k=6: every snippet starts at 0 and repeats the last frame
    expected = [[0, 1, 2, 3, 3, 3]] * 3
    np.testing.assert_array_equal(segment_indices(4, 3, 6, training=False), expected)
    np.testing.assert_array_equal(segment_indices(4, 3, 6, training=True, seed=[5, 6]), expected)


def test_segment_eval_matches_tsn_transcription():
    lengths = tf.data.Dataset.range(1, 41)  # num_frames unknown while tracing
    for s in range(1, 6):
        for k in range(1, 7):
            ds = lengths.map(lambda n: segment_indices(n, s, k, training=False))
            got = ds.batch(40).get_single_element().numpy()
            for n in range(1, 41):
                expected = np.clip(_tsn_test_starts(n, s, k)[:, None] + np.arange(k), 0, n - 1)
                np.testing.assert_array_equal(got[n - 1], expected, err_msg=f"n={n} S={s} k={k}")


@pytest.mark.parametrize("n,s,k", [(30, 3, 6), (30, 3, 1), (10, 5, 8), (3, 5, 1), (4, 3, 6), (7, 7, 1)])
def test_segment_training_matches_tsn_rule(n, s, k):
    idx = _draws(lambda seed: segment_indices(n, s, k, training=True, seed=seed))
    assert idx.shape == (300, s, k)
    np.testing.assert_array_equal(idx, np.clip(idx[:, :, :1] + np.arange(k), 0, n - 1))
    starts = idx[:, :, 0]
    allowed, is_sorted = _tsn_train_allowed(n, s, k)
    for i in range(s):  # each start stays in its allowed set and reaches all of it
        assert set(starts[:, i].tolist()) == allowed[i], f"segment {i}"
    if is_sorted:
        assert (np.diff(starts, axis=1) >= 0).all()


def test_segment_hand_worked_training_ranges():
    # n=30, S=3, k=6: avg = 25 // 3 = 8 -> starts in [0, 7], [8, 15], [16, 23]
    starts = _draws(lambda seed: segment_indices(30, 3, 6, training=True, seed=seed))[:, :, 0]
    np.testing.assert_array_equal(starts.min(0), [0, 8, 16])
    np.testing.assert_array_equal(starts.max(0), [7, 15, 23])


def test_segment_deterministic():
    a = segment_indices(300, 3, 5, training=True, seed=[9, 9])
    np.testing.assert_array_equal(a, segment_indices(300, 3, 5, training=True, seed=[9, 9]))
    assert any((segment_indices(300, 3, 5, training=True, seed=[9, s]).numpy() != a.numpy()).any()
               for s in range(10))


# ------------------------------------------------------------------------- frame_pair_indices ----
@pytest.mark.parametrize("i,max_offset", [(20, 9), (3, 9), (0, 9), (15, 4)])
def test_frame_pairs_training(i, max_offset):
    pairs = _draws(lambda seed: frame_pair_indices(30, i, max_offset=max_offset, training=True, seed=seed))
    assert pairs.shape == (300, 2)
    assert (pairs[:, 1] == i).all()
    d = i - pairs[:, 0]
    assert (pairs[:, 0] >= 0).all() and (d >= 0).all() and (d <= max_offset).all()
    assert set(d.tolist()) == set(range(min(max_offset, i) + 1))


def test_frame_pairs_eval():
    np.testing.assert_array_equal(frame_pair_indices(30, 20, training=False), [20, 20])
    np.testing.assert_array_equal(frame_pair_indices(30, 20, training=False, offset=5), [15, 20])
    np.testing.assert_array_equal(frame_pair_indices(30, 2, training=False, offset=5), [0, 2])
    np.testing.assert_array_equal(
        frame_pair_indices(30, tf.constant(7, tf.int64), training=False, offset=tf.constant(3)), [4, 7])
    a = frame_pair_indices(30, 20, training=True, seed=[4, 2])
    np.testing.assert_array_equal(a, frame_pair_indices(30, 20, training=True, seed=[4, 2]))


def test_frame_pairs_bad_arguments():
    with pytest.raises(ValueError, match="label_index"):
        frame_pair_indices(10, 10, training=False)
    with pytest.raises(ValueError, match="offset"):
        frame_pair_indices(10, 5, training=False, offset=-1)
    with pytest.raises(ValueError, match="max_offset"):
        frame_pair_indices(10, 5, training=False, max_offset=-2)


# -------------------------------------------------------------------------------- in tf.data ----
def test_samplers_in_dataset_map_with_unknown_lengths():
    lengths = [20, 5, 30, 1]

    def gen():
        yield from lengths

    ds = tf.data.Dataset.from_generator(gen, output_signature=tf.TensorSpec([], tf.int64))
    ds = ds.enumerate().map(lambda i, n: {
        "clip": clip_indices(n, 4, 2, training=True, seed=tf.stack([i, 0])),
        "eval": clip_indices(n, 4, 2, training=False, num_clips=3),
        "seg": segment_indices(n, 3, 2, training=True, seed=tf.stack([i, 1])),
        "pair": frame_pair_indices(n, n - 1, training=True, seed=tf.stack([i, 2])),
    })
    first, second = list(ds.as_numpy_iterator()), list(ds.as_numpy_iterator())
    for n, a, b in zip(lengths, first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])  # deterministic given the seeds
            assert a[key].min() >= 0 and a[key].max() <= n - 1
        assert a["clip"].shape == (4,) and a["eval"].shape == (3, 4) and a["seg"].shape == (3, 2)
        np.testing.assert_array_equal(a["eval"][:, 0], np.round(np.linspace(0, max(0, n - 7), 3)))
    np.testing.assert_array_equal(first[1]["eval"], [[0, 2, 4, 4]] * 3)
