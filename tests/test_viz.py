"""Tests for tfvideo.viz writers (files are read back with independent readers)."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from tfvideo.viz import flow_image, flow_legend, save_gif, save_mp4, save_png, side_by_side


def _no_temp_files(directory):
    names = os.listdir(directory)
    assert not [n for n in names if ".tmp" in n or n.startswith(".")], names


def _frames(n=6, h=32, w=48):
    rng = np.random.default_rng(0)
    frames = []
    for t in range(n):  # a moving bright square on a distinct background per frame
        f = np.full((h, w, 3), (20 * t, 60, 200 - 20 * t), np.uint8)
        f[8:20, 4 + 4 * t : 16 + 4 * t] = (255, 255, 0)
        f += rng.integers(0, 3, f.shape, dtype=np.uint8)
        frames.append(f)
    return frames


def test_png_round_trip_rgb_and_grey(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # pure red must stay red (RGB -> BGR handled)
    path = tmp_path / "sub" / "dir" / "x.png"
    out = save_png(path, img)
    assert out == str(path) and path.exists()
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, img)
    assert tuple(back[0, 0]) == (255, 0, 0)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), img)

    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    save_png(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED), grey)

    save_png(tmp_path / "f.png", np.array([[[-3.0, 10.4, 300.0]]]))  # floats: rounded and clipped
    back = cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(back[0, 0][::-1]) == (0, 10, 255)
    _no_temp_files(tmp_path)
    _no_temp_files(tmp_path / "sub" / "dir")


def test_png_validation(tmp_path):
    with pytest.raises(ValueError, match="image"):
        save_png(tmp_path / "a.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="image"):
        save_png(tmp_path / "a.png", np.zeros((4,), np.uint8))
    with pytest.raises(ValueError, match="image"):
        save_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.complex64))
    assert os.listdir(tmp_path) == []


def test_gif_frame_count(tmp_path):
    frames = _frames(6)
    path = tmp_path / "a" / "clip.gif"
    assert save_gif(path, frames, fps=5) == str(path)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == 6
        assert im.size == (48, 32)
        assert im.info.get("duration") == 200
        im.seek(3)
        rgb = np.asarray(im.convert("RGB"))
    assert np.abs(rgb.astype(int) - frames[3].astype(int)).mean() < 10  # paletted, near-identical
    save_gif(tmp_path / "b.gif", np.stack(frames))  # array input
    with Image.open(tmp_path / "b.gif") as im:
        assert im.n_frames == 6
    _no_temp_files(tmp_path)
    _no_temp_files(tmp_path / "a")


def test_mp4_frame_count(tmp_path):
    frames = _frames(7)
    path = tmp_path / "v" / "clip.mp4"
    assert save_mp4(path, frames, fps=10) == str(path)
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n, first = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if first is None:
            first = f
        n += 1
    cap.release()
    assert n == 7
    assert first.shape == (32, 48, 3)
    # lossy codec, but colours must come back in the right channel order
    back = cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int)
    assert np.abs(back[2:6, 30:44] - frames[0][2:6, 30:44].astype(int)).mean() < 20
    _no_temp_files(tmp_path)
    _no_temp_files(tmp_path / "v")


def test_writers_reject_mismatched_frames_without_leftovers(tmp_path):
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)]
    with pytest.raises(ValueError, match="frames"):
        save_mp4(tmp_path / "x.mp4", frames)
    with pytest.raises(ValueError, match="frames"):
        save_gif(tmp_path / "x.gif", [])
    assert os.listdir(tmp_path) == []


def test_side_by_side_shapes():
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.full((10, 10, 3), 100, np.uint8)  # resized to 20x20
    c = np.zeros((40, 10), np.uint8)  # grey, resized to 20x5
    out = side_by_side([a, b, c], pad=4)
    assert out.dtype == np.uint8
    assert out.shape == (20, 30 + 20 + 5 + 2 * 4, 3)
    assert np.all(out[:, 30:34] == 255)  # white padding
    assert np.all(out[:, 34:54] == 100)
    labelled = side_by_side([a, b], labels=["flow", "warped"], pad=2)
    assert labelled.shape[1] == 30 + 20 + 2 and labelled.shape[0] > 20
    strip = labelled[: labelled.shape[0] - 20]
    assert strip.min() < 128  # some dark text pixels
    np.testing.assert_array_equal(labelled[-20:, :30], a)
    with pytest.raises(ValueError, match="labels"):
        side_by_side([a, b], labels=["one"])


def test_flow_image_and_legend():
    flow = np.zeros((5, 6, 2), np.float32)
    flow[..., 0] = 2.0
    img = flow_image(flow)
    assert img.shape == (5, 6, 3) and img.dtype == np.uint8
    assert np.all(img == np.array([255, 0, 0], np.uint8))
    with pytest.raises(ValueError, match="flow"):
        flow_image(np.zeros((1, 5, 6, 2)))

    leg = flow_legend(64)
    assert leg.shape == (64, 64, 3) and leg.dtype == np.uint8
    assert leg[31:33, 31:33].min() > 240  # near-white centre
    r = leg[32, 63].astype(int)  # right edge: red
    assert r[0] == 255 and r[1] < 20 and r[2] < 20
    left = leg[32, 0].astype(int)  # left edge: cyan-blue
    assert left[0] < 20 and left[2] == 255


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import tfvideo.viz as viz

    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(viz.cv2, "cvtColor", boom)  # fails after the temporary file was opened
    with pytest.raises(RuntimeError, match="encoder crashed"):
        save_mp4(path, _frames(3))
    assert path.read_bytes() == b"old"  # previous file untouched
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_label_palette_and_images():
    from tfvideo.viz import label_image, label_overlay, label_palette

    pal = label_palette(8)
    assert pal.shape == (8, 3) and pal.dtype == np.uint8
    # every pair of classes is clearly apart (max channel difference)
    diffs = np.abs(pal[:, None].astype(int) - pal[None].astype(int)).max(-1)
    assert diffs[~np.eye(8, dtype=bool)].min() >= 40
    big = label_palette(30)
    np.testing.assert_array_equal(big[:8], pal)  # a prefix of larger palettes
    assert len({tuple(c) for c in big}) == 30
    np.testing.assert_array_equal(label_palette(8), pal)  # deterministic
    labels = np.array([[0, 7], [255, 3]])
    img = label_image(labels, 8)
    np.testing.assert_array_equal(img[0, 1], pal[7])
    np.testing.assert_array_equal(img[1, 0], [255, 255, 255])
    frame = np.full((2, 2, 3), 100, np.uint8)
    over = label_overlay(frame, labels, 8, alpha=0.25)
    np.testing.assert_array_equal(over[1, 0], [100, 100, 100])  # ignored: the frame
    np.testing.assert_array_equal(over[0, 0], np.round(0.75 * 100 + 0.25 * pal[0].astype(float)))
    with pytest.raises(ValueError, match=r"must be in \[0, 8\) or 255"):
        label_image(np.array([[8]]), 8)
    with pytest.raises(ValueError, match="must have the frame's size"):
        label_overlay(frame, labels[:1], 8)


def test_draw_boxes_edges_in_class_colours_and_skips():
    from tfvideo.viz import draw_boxes, label_palette

    frame = np.full((40, 60, 3), 7, np.uint8)
    out = draw_boxes(frame, [[10, 12, 30, 25], [40, 5, 50, 15], [1, 1, 5, 5]], [1, -1, 0],
                     scores=[0.9, 0.9, 0.1], num_classes=3, min_score=0.5)
    colour = label_palette(4)[2]  # class 1 -> label colour 2
    for y, x in ((12, 10), (25, 30), (18, 10), (18, 30), (12, 20), (25, 20)):  # corners and edge midpoints
        np.testing.assert_array_equal(out[y, x], colour)
    np.testing.assert_array_equal(out[18, 20], [7, 7, 7])  # inside untouched
    np.testing.assert_array_equal(out[30:, 35:], frame[30:, 35:])  # padding row (class -1) not drawn
    np.testing.assert_array_equal(out[3, 1], [7, 7, 7])  # below min_score: not drawn
    np.testing.assert_array_equal(frame, 7)  # input not modified
    with pytest.raises(ValueError, match="classes"):
        draw_boxes(frame, [[0, 0, 1, 1]], [0, 1])
