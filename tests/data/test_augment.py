"""Tests for tfvideo.data.augment against OpenCV, NumPy transcriptions and hand-computed values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf
from skimage import color, data

from tfvideo.data import video
from tfvideo.data.augment import (
    center_crop_box, color_jitter, crop_and_resize, flip_left_right, random_flip_left_right,
    random_resized_crop_box, resize_short_side, tsn_crop_box, view_crop_boxes,
)
from tfvideo.data.sampling import clip_indices, split_seed


@pytest.fixture(scope="module")
def clip():
    """Two different real 96x128 RGB frames (crops of scikit-image's astronaut), uint8 (2, 96, 128, 3)."""
    img = data.astronaut()
    return np.stack([img[100:196, 150:278], img[300:396, 200:328]])


def _draws(fn, num):
    """``fn(seed)`` for ``num`` seeds, run as one graph inside tf.data; stacked NumPy array."""
    ds = tf.data.Dataset.range(num).map(lambda i: fn(tf.stack([i, tf.constant(5, tf.int64)])))
    return ds.batch(num).get_single_element().numpy()


def _nearest(n_in, n_out):
    """Source index of each output pixel for nearest-neighbour resizing with half-pixel centres."""
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)


def _blank(t, h, w):
    return tf.zeros([t, h, w, 3], tf.uint8)


# ---------------------------------------------------------------------------- crop_and_resize ----
@pytest.mark.parametrize("box,size", [((10, 20, 50, 70), (37, 45)), ((10, 20, 50, 70), (80, 100)),
                                      ((0, 0, 96, 128), (96, 128))])
def test_crop_and_resize_frames_match_opencv(clip, box, size):
    out = crop_and_resize({"frames": clip}, box, size)["frames"].numpy()
    y, x, h, w = box
    ref = np.stack([cv2.resize(f[y:y + h, x:x + w], size[::-1], interpolation=cv2.INTER_LINEAR)
                    for f in clip])
    assert out.dtype == np.uint8 and out.shape == (2,) + size + (3,)
    assert np.abs(out.astype(int) - ref).max() <= 1


def test_crop_and_resize_constant_flow_is_rescaled_exactly():
    flow = np.zeros((3, 50, 70, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    out = crop_and_resize({"frames": _blank(2, 50, 70), "flow": flow}, (5, 7, 40, 60), (20, 20))
    assert out["flow"].shape == (3, 20, 20, 2)
    np.testing.assert_array_equal(out["flow"][..., 0], 1.0)  # 3 * 20 / 60
    np.testing.assert_array_equal(out["flow"][..., 1], -1.0)  # -2 * 20 / 40


def test_crop_and_resize_linear_flow_is_resampled_and_scaled():
    # u = 0.5 * x + 1, v = -0.25 * y on the input grid: bilinear resampling is exact for linear fields
    ys, xs = np.mgrid[0:60, 0:80].astype(np.float32)
    flow = np.stack([0.5 * xs + 1, -0.25 * ys], -1)[None]
    y0, x0, h, w, out_h, out_w = 4, 6, 48, 64, 36, 40
    out = crop_and_resize({"frames": _blank(1, 60, 80), "flow": flow}, (y0, x0, h, w), (out_h, out_w))
    src_x = x0 + (np.arange(out_w) + 0.5) * w / out_w - 0.5
    src_y = y0 + (np.arange(out_h) + 0.5) * h / out_h - 0.5
    np.testing.assert_allclose(out["flow"][0, :, :, 0], np.broadcast_to((0.5 * src_x + 1) * out_w / w,
                                                                         (out_h, out_w)), atol=1e-4)
    np.testing.assert_allclose(out["flow"][0, :, :, 1], np.broadcast_to(
        (-0.25 * src_y * out_h / h)[:, None], (out_h, out_w)), atol=1e-4)


def test_crop_and_resize_invalid_flow_does_not_leak():
    flow = np.zeros((1, 40, 40, 2), np.float32)
    valid = np.zeros((1, 40, 40), bool)
    flow[:, :, 13:] = (4.0, 2.0)  # stored invalid vectors are 0 (as decode_flows returns them)
    valid[:, :, 13:] = True
    out = crop_and_resize({"frames": _blank(1, 40, 40), "flow": flow, "flow_valid": valid}, (0, 0, 40, 40),
                          (30, 50))
    ref_valid = valid[:, _nearest(40, 30)][:, :, _nearest(40, 50)]
    np.testing.assert_array_equal(out["flow_valid"], ref_valid)
    # output column 16 samples x = 12.7: nearest 13 is valid, its bilinear neighbour 12 is not
    assert ref_valid[0, 0, 16] and not valid[0, 0, 12]
    got = out["flow"].numpy()[ref_valid]
    np.testing.assert_allclose(got, np.broadcast_to([4.0 * 50 / 40, 2.0 * 30 / 40], got.shape), rtol=1e-6)


def test_crop_and_resize_segmentation_is_nearest(clip):
    seg = np.random.default_rng(0).choice(np.array([0, 3, 7, 255], np.uint8), size=(2, 96, 128))
    sample = {"frames": clip, "segmentation": seg, "label": tf.constant(4)}
    out = crop_and_resize(sample, (5, 7, 40, 60), (23, 17))
    assert set(out) == set(sample) and int(out["label"]) == 4
    ref = seg[:, 5:45, 7:67][:, _nearest(40, 23)][:, :, _nearest(60, 17)]
    np.testing.assert_array_equal(out["segmentation"], ref)
    assert set(np.unique(out["segmentation"])) <= {0, 3, 7, 255}


def test_crop_and_resize_bad_input(clip):
    with pytest.raises(tf.errors.InvalidArgumentError, match="box"):
        crop_and_resize({"frames": clip}, (50, 0, 50, 10), (8, 8))
    with pytest.raises(ValueError, match="frames"):
        crop_and_resize({"flow": np.zeros((1, 4, 4, 2), np.float32)}, (0, 0, 4, 4), 2)
    with pytest.raises(TypeError, match="flow"):
        crop_and_resize({"frames": clip, "flow": np.zeros((1, 96, 128, 2))}, (0, 0, 4, 4), 2)
    with pytest.raises(ValueError, match="size"):
        crop_and_resize({"frames": clip}, (0, 0, 4, 4), (2, 0))
    with pytest.raises(ValueError, match="flow"):
        crop_and_resize({"frames": clip, "flow_valid": np.ones((1, 96, 128), bool)}, (0, 0, 4, 4), 2)


# -------------------------------------------------------------------------- resize_short_side ----
@pytest.mark.parametrize("hw,short", [((33, 50), 20), ((3, 5), 2), ((50, 33), 20), ((40, 30), 45)])
def test_resize_short_side_size_matches_video_module(hw, short):
    out = resize_short_side({"frames": _blank(1, *hw)}, short)["frames"]
    assert out.shape[1:3] == video.resize_short_side(np.zeros(hw + (3,), np.uint8), short).shape[:2]


def test_resize_short_side_upsamples_like_opencv_and_scales_targets(clip):
    small = clip[:, ::4, ::4]  # (2, 24, 32, 3)
    flow = np.tile(np.array([1.0, -0.5], np.float32), (1, 24, 32, 1))
    seg = np.random.default_rng(1).choice(np.array([1, 2, 255], np.uint8), size=(1, 24, 32))
    out = resize_short_side({"frames": small, "flow": flow, "segmentation": seg}, 60)
    ref = np.stack([cv2.resize(f, (80, 60), interpolation=cv2.INTER_LINEAR) for f in small])
    assert out["frames"].shape == (2, 60, 80, 3)
    assert np.abs(out["frames"].numpy().astype(int) - ref).max() <= 1
    np.testing.assert_allclose(out["flow"], np.broadcast_to([2.5, -1.25], (1, 60, 80, 2)), rtol=1e-6)
    np.testing.assert_array_equal(out["segmentation"], seg[:, _nearest(24, 60)][:, :, _nearest(32, 80)])


def test_resize_short_side_identity_when_already_right(clip):
    np.testing.assert_array_equal(resize_short_side({"frames": clip}, 96)["frames"], clip)


# ----------------------------------------------------------------------------------- flipping ----
def test_flip_mirrors_everything_and_negates_u(clip):
    rng = np.random.default_rng(2)
    sample = {"frames": clip, "flow": rng.normal(size=(1, 96, 128, 2)).astype(np.float32),
              "flow_valid": rng.random((1, 96, 128)) > 0.5,
              "segmentation": rng.integers(0, 5, (1, 96, 128)).astype(np.uint8)}
    out = flip_left_right(sample)
    y, x = 17, 30  # pixel (17, 30) lands at (17, 128 - 1 - 30) with u negated
    np.testing.assert_array_equal(out["flow"][0, y, 127 - x], [-sample["flow"][0, y, x, 0],
                                                               sample["flow"][0, y, x, 1]])
    np.testing.assert_array_equal(out["frames"], clip[:, :, ::-1])
    np.testing.assert_array_equal(out["flow_valid"], sample["flow_valid"][:, :, ::-1])
    np.testing.assert_array_equal(out["segmentation"], sample["segmentation"][:, :, ::-1])
    twice = flip_left_right(out)
    for key in sample:
        np.testing.assert_array_equal(twice[key], sample[key])


def test_random_flip(clip):
    flow = np.tile(np.array([1.0, 2.0], np.float32), (1, 96, 128, 1))
    sample = {"frames": clip, "flow": flow}
    np.testing.assert_array_equal(random_flip_left_right(sample, [1, 2], 1.0)["frames"], clip[:, :, ::-1])
    np.testing.assert_array_equal(random_flip_left_right(sample, [1, 2], 0.0)["frames"], clip)
    flipped = []
    for s in range(40):
        out = random_flip_left_right(sample, [s, 3])
        is_flipped = bool((out["frames"].numpy() != clip).any())
        assert float(out["flow"][0, 0, 0, 0]) == (-1.0 if is_flipped else 1.0)  # targets follow the frames
        again = random_flip_left_right(sample, [s, 3])
        np.testing.assert_array_equal(again["frames"], out["frames"])
        flipped.append(is_flipped)
    assert 5 < sum(flipped) < 35


# ------------------------------------------------------------------------------------- colour ----
def _recover_factor(x, out, centre):
    """Least-squares factor f of ``out = (x - centre) * f + centre`` over unclipped pixels."""
    keep = (out > 0) & (out < 255)
    a, b = (x - centre)[keep], (out - centre)[keep]
    return float((a * b).sum() / (a * a).sum())


def _grey(x):
    return (x @ np.array([0.299, 0.587, 0.114]))[..., None]


def test_color_jitter_same_change_for_every_frame(clip):
    perm = np.random.default_rng(3).permutation(96)
    frames = np.stack([clip[0], clip[0], clip[0][perm]])  # identical and row-shuffled copies
    out = color_jitter(frames, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1, seed=[4, 4]).numpy()
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert (out != frames).any()
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0][perm], out[2])


def test_color_jitter_zero_strength_is_identity_and_seed_is_deterministic(clip):
    np.testing.assert_array_equal(color_jitter(clip, seed=[1, 1]), clip)
    a = color_jitter(clip, brightness=0.2, hue=0.05, seed=[1, 1])
    np.testing.assert_array_equal(a, color_jitter(clip, brightness=0.2, hue=0.05, seed=[1, 1]))
    assert (a.numpy() != color_jitter(clip, brightness=0.2, hue=0.05, seed=[1, 2]).numpy()).any()


def test_color_jitter_brightness_adds_one_delta(clip):
    out = color_jitter(clip, brightness=0.2, seed=[7, 1]).numpy().astype(int)
    diff = (out - clip)[(out > 0) & (out < 255)]
    assert np.unique(diff).size == 1 and 0 < abs(diff[0]) <= 0.2 * 255


def test_color_jitter_contrast_uses_the_clip_mean(clip):
    frames = np.stack([clip[0], clip[0] // 2])  # very different means
    out = color_jitter(frames, contrast=0.5, seed=[2, 9]).numpy().astype(np.float64)
    x = frames.astype(np.float64)
    mean = _grey(x).mean()
    f = _recover_factor(x[0], out[0], mean)
    assert abs(f - 1) > 0.05 and 0.5 <= f <= 1.5
    ref = np.clip(np.round((x - mean) * f + mean), 0, 255)
    assert np.abs(out - ref).max() <= 1


def test_color_jitter_saturation_blends_with_grey(clip):
    frames = clip.copy()
    frames[:, :10] = 77  # grey pixels stay grey
    out = color_jitter(frames, saturation=0.5, seed=[3, 1]).numpy().astype(np.float64)
    np.testing.assert_array_equal(out[:, :10], 77)
    x = frames.astype(np.float64)
    f = _recover_factor(x[0], out[0], _grey(x[0]))
    assert abs(f - 1) > 0.05
    assert np.abs(out - np.clip(np.round((x - _grey(x)) * f + _grey(x)), 0, 255)).max() <= 1


def test_color_jitter_hue_rotates_all_frames_alike(clip):
    frames = clip.copy()
    frames[:, :10] = 120
    out = color_jitter(frames, hue=0.1, seed=[5, 5]).numpy()
    np.testing.assert_array_equal(out[:, :10], 120)
    hsv_in, hsv_out = color.rgb2hsv(frames), color.rgb2hsv(out)
    keep = (hsv_in[..., 1] > 0.5) & (hsv_in[..., 2] > 0.4)
    shift = (hsv_out[..., 0] - hsv_in[..., 0] + 0.5) % 1.0 - 0.5
    per_frame = [np.median(shift[t][keep[t]]) for t in range(2)]
    assert 0.005 < abs(per_frame[0]) <= 0.1 and abs(per_frame[0] - per_frame[1]) < 0.003
    assert np.abs(shift[keep] - per_frame[0]).max() < 0.02


def test_color_jitter_bad_arguments(clip):
    with pytest.raises(ValueError, match="hue"):
        color_jitter(clip, hue=0.7, seed=[1, 1])
    with pytest.raises(ValueError, match="contrast"):
        color_jitter(clip, contrast=-0.1, seed=[1, 1])
    with pytest.raises(TypeError, match="frames"):
        color_jitter(clip.astype(np.float32), seed=[1, 1])
    with pytest.raises(ValueError, match="seed"):
        color_jitter(clip, brightness=0.1, seed=None)


# ---------------------------------------------------------------------------------- crop boxes ----
def _tsn_boxes(height, width, size, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1):
    """All boxes TSN's ``GroupMultiScaleCrop`` (fix_crop, more_fix_crop=False) can return."""
    th, tw = size
    sides = [int(min(height, width) * s) for s in scales]
    crop_h = [min(th if abs(x - th) < 3 else x, height) for x in sides]
    crop_w = [min(tw if abs(x - tw) < 3 else x, width) for x in sides]
    boxes = set()
    for i, h in enumerate(crop_h):
        for j, w in enumerate(crop_w):
            if abs(i - j) <= max_distort:
                ws, hs = (width - w) // 4, (height - h) // 4
                for ox, oy in [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]:
                    boxes.add((oy, ox, h, w))
    return boxes


@pytest.mark.parametrize("hw", [(226, 300), (240, 320)])
def test_tsn_crop_box_matches_reference_combinations(hw):
    boxes = _draws(lambda seed: tsn_crop_box(tf.constant(hw[0]), hw[1], 224, seed=seed), 800)
    allowed = _tsn_boxes(*hw, (224, 224))
    assert set(map(tuple, boxes.tolist())) == allowed  # only allowed boxes, and every one of them
    if hw == (226, 300):  # base 226 -> int(226 * 1) = 226 is within 3 px of 224 and snaps to it
        assert {b[2] for b in allowed} == {224, 197, 169, 149}


def test_tsn_crop_box_random_positions():
    # target (112, 104): widths snap 105 -> 104, heights keep 105
    boxes = _draws(lambda seed: tsn_crop_box(120, 160, (112, 104), fix_crop=False, seed=seed), 300)
    y, x, h, w = boxes.T
    allowed = {(b[2], b[3]) for b in _tsn_boxes(120, 160, (112, 104))}
    assert set(zip(h.tolist(), w.tolist())) == allowed and (105, 104) in allowed
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= 120).all() and (x + w <= 160).all()
    assert len(set(x.tolist())) > 20
    np.testing.assert_array_equal(tsn_crop_box(120, 160, 112, seed=[3, 3]),
                                  tsn_crop_box(120, 160, 112, seed=[3, 3]))


def test_random_resized_crop_box_ranges():
    boxes = _draws(lambda seed: random_resized_crop_box(tf.constant(120), tf.constant(160), seed=seed), 300)
    y, x, h, w = boxes.T.astype(float)
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= 120).all() and (x + w <= 160).all()
    frac = h * w / (120 * 160)
    assert frac.min() >= 0.25 * 0.97 and frac.max() <= 1.0
    assert (w / h).min() >= 0.75 / 1.03 and (w / h).max() <= 4 / 3 * 1.03
    assert len(set(map(tuple, boxes.tolist()))) > 250


def test_random_resized_crop_box_closed_form_cases():
    # exact fit: area 1 and aspect 1.5 on a 100x150 frame -> the whole frame
    np.testing.assert_array_equal(random_resized_crop_box(100, 150, area=(1, 1), aspect=(1.5, 1.5),
                                                          seed=[1, 1]), [0, 0, 100, 150])
    # impossible candidates (w = 141 > 100) -> centred fallback with aspect clamped to 2: 50 x 100
    np.testing.assert_array_equal(random_resized_crop_box(100, 100, area=(1, 1), aspect=(2, 2),
                                                          seed=[1, 1]), [25, 0, 50, 100])
    np.testing.assert_array_equal(random_resized_crop_box(100, 50, area=(1, 1), aspect=(2, 2),
                                                          seed=[1, 1]), [37, 0, 25, 50])


def test_view_crop_boxes_hand_computed():
    # 240x320, 224 crops: room dy = 16, dx = 96
    np.testing.assert_array_equal(view_crop_boxes(240, 320, 224, 5), [
        [0, 0, 224, 224], [0, 96, 224, 224], [16, 0, 224, 224], [16, 96, 224, 224], [8, 48, 224, 224]])
    np.testing.assert_array_equal(view_crop_boxes(240, 320, 224, 10)[5:], view_crop_boxes(240, 320, 224, 5))
    np.testing.assert_array_equal(view_crop_boxes(224, 300, 224, 3),
                                  [[0, 0, 224, 224], [0, 38, 224, 224], [0, 76, 224, 224]])
    np.testing.assert_array_equal(view_crop_boxes(300, 224, 224, 3),
                                  [[0, 0, 224, 224], [38, 0, 224, 224], [76, 0, 224, 224]])
    np.testing.assert_array_equal(view_crop_boxes(240, 320, (200, 100), 1), [[20, 110, 200, 100]])
    np.testing.assert_array_equal(center_crop_box(101, 50, (21, 10)), [40, 20, 21, 10])
    with pytest.raises(ValueError, match="num_crops"):
        view_crop_boxes(240, 320, 224, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than the frame"):
        center_crop_box(100, 320, 224)


# -------------------------------------------------------------------------------- in tf.data ----
def _generator():
    rng = np.random.default_rng(4)
    for t, h, w in [(12, 90, 120), (5, 64, 48), (9, 72, 72)]:
        yield {"frames": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
               "flow": rng.normal(size=(t - 1, h, w, 2)).astype(np.float32),
               "flow_valid": rng.random((t - 1, h, w)) > 0.1,
               "segmentation": rng.integers(0, 4, (1, h, w)).astype(np.uint8)}


_SIGNATURE = {"frames": tf.TensorSpec([None, None, None, 3], tf.uint8),
              "flow": tf.TensorSpec([None, None, None, 2], tf.float32),
              "flow_valid": tf.TensorSpec([None, None, None], tf.bool),
              "segmentation": tf.TensorSpec([None, None, None], tf.uint8)}


def _train(index, sample):
    seeds = split_seed(tf.stack([index, tf.constant(0, tf.int64)]), 5)
    idx = clip_indices(tf.shape(sample["frames"])[0], 4, 2, training=True, seed=seeds[0])
    sample = dict(sample, frames=tf.gather(sample["frames"], idx))
    sample = resize_short_side(sample, 60)
    height, width = tf.shape(sample["frames"])[1], tf.shape(sample["frames"])[2]
    box = tf.cond(index % 2 == 0, lambda: tsn_crop_box(height, width, 56, seed=seeds[1]),
                  lambda: random_resized_crop_box(height, width, seed=seeds[1]))
    sample = random_flip_left_right(crop_and_resize(sample, box, (56, 56)), seeds[2])
    sample["frames"] = color_jitter(sample["frames"], brightness=0.2, contrast=0.2, saturation=0.2,
                                    hue=0.05, seed=seeds[3])
    return sample


def _evaluate(sample):
    sample = resize_short_side(sample, 56)
    shape = tf.shape(sample["frames"])
    boxes = view_crop_boxes(shape[1], shape[2], 56, 3)
    return tf.map_fn(lambda b: crop_and_resize(sample, b, 56)["frames"], boxes,
                     fn_output_signature=tf.TensorSpec([None, 56, 56, 3], tf.uint8))


def test_augmentation_runs_in_dataset_map_and_is_deterministic():
    ds = tf.data.Dataset.from_generator(_generator, output_signature=_SIGNATURE)
    train = ds.enumerate().map(_train)
    assert train.element_spec["frames"].shape.as_list() == [4, 56, 56, 3]  # static T from the sampler
    first, second = list(train.as_numpy_iterator()), list(train.as_numpy_iterator())
    assert len(first) == 3
    for a, b, (t, h, w) in zip(first, second, [(12, 90, 120), (5, 64, 48), (9, 72, 72)]):
        assert a["frames"].shape == (4, 56, 56, 3) and a["flow"].shape == (t - 1, 56, 56, 2)
        assert a["flow_valid"].shape == (t - 1, 56, 56) and a["segmentation"].shape == (1, 56, 56)
        assert set(np.unique(a["segmentation"])) <= {0, 1, 2, 3}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    views = list(ds.map(_evaluate).as_numpy_iterator())
    assert [v.shape for v in views] == [(3, 12, 56, 56, 3), (3, 5, 56, 56, 3), (3, 9, 56, 56, 3)]
    np.testing.assert_array_equal(views[2][0], views[2][1])  # square frames: the 3 views coincide
