import os

import cv2
import numpy as np
import pytest

from tests.data.fakes import numbered_frames, write_corrupt, write_empty
from tfvideo.data.items import ReadError
from tfvideo.data.video import (VideoReadError, read_video, resize_short_side, subsample_indices,
                                write_video)


def frame_ids(frames):
    """Recover k from constant frames of value 8 k (Motion-JPEG keeps flat frames within 1-2)."""
    return np.round(frames.reshape(len(frames), -1).mean(1) / 8).astype(int)


def test_round_trip_is_rgb_and_keeps_count_fps_and_size(tmp_path):
    frames = numbered_frames(12, size=(24, 32))
    frames[:, :12, :16] = (255, 0, 0)  # a pure red block: catches BGR/RGB swaps
    path = str(tmp_path / "a.avi")
    write_video(path, frames, fps=12.5)
    video = read_video(path)
    assert video.frames.shape == (12, 24, 32, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(12.5) and video.source_num_frames == 12
    red = video.frames[:, 2:10, 2:14].reshape(-1, 3).mean(0)
    assert red[0] > 200 and red[2] < 60
    np.testing.assert_array_equal(frame_ids(video.frames[:, 12:, 16:]), np.arange(12))
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_short_side_matches_opencv_area_resize(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "b.avi")
    write_video(path, rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8))
    full = read_video(path).frames
    small = read_video(path, short_side=24).frames
    assert small.shape == (3, 24, 32, 3)
    expected = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in full])
    np.testing.assert_array_equal(small, expected)
    assert resize_short_side(np.zeros((30, 40, 3), np.uint8), 45).shape == (45, 60, 3)


def test_fps_subsampling_keeps_the_nearest_frames(tmp_path):
    path = str(tmp_path / "c.avi")
    write_video(path, numbered_frames(20), fps=25)
    video = read_video(path, fps=10)
    # output frame k is source frame round(k * 2.5): 0, 2.5, 5, 7.5, ... (NumPy rounds half to even)
    np.testing.assert_array_equal(frame_ids(video.frames), [0, 2, 5, 8, 10, 12, 15, 18])
    assert video.fps == 10 and video.source_fps == 25
    np.testing.assert_array_equal(subsample_indices(20, 25, 30), np.arange(20))  # never upsample


@pytest.mark.parametrize("kind, reason", [
    ("missing", "does not exist"), ("empty", "empty"), ("corrupt", "cannot be opened"),
    ("truncated", "decoding stopped after")])
def test_bad_files_raise_a_read_error_with_the_reason(tmp_path, kind, reason):
    path = str(tmp_path / f"{kind}.avi")
    if kind == "empty":
        write_empty(path)
    elif kind == "corrupt":
        write_corrupt(path)
    elif kind == "truncated":  # the header announces 30 frames, half of the data is gone
        write_video(path, np.random.default_rng(0).integers(0, 256, (30, 24, 32, 3), np.uint8))
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
    with pytest.raises(VideoReadError, match=reason) as err:
        read_video(path)
    assert isinstance(err.value, ReadError) and err.value.path == path


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="frames must be uint8"):
        write_video(str(tmp_path / "x.avi"), np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="short_side"):
        resize_short_side(np.zeros((8, 8, 3), np.uint8), 0)
