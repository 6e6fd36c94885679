"""Tests of tfvideo.data.flow_sets on tiny fake Middlebury and MPI-Sintel trees."""

from __future__ import annotations

import doctest
import os

import cv2
import numpy as np
import pytest

from tfvideo.data import flow_sets
from tfvideo.data.flo import write_flo
from tfvideo.data.flow_sets import (FlowSequenceItem, ImageSequenceItem, middlebury_items,
                                    resize_flow_field, sintel_items)
from tfvideo.data.items import ReadError

H, W = 12, 16


def _png(path, rgb):
    """Write an RGB (or grey) image with OpenCV, which stores BGR."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb)


def _frames(rng, n, h=H, w=W):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _sintel(root, rng, scene="alley_1", n=3, invalid=True, passes=("clean",)):
    frames = _frames(rng, n)
    flows = rng.normal(scale=3, size=(n - 1, H, W, 2)).astype(np.float32)
    masks = rng.random((n - 1, H, W)) < 0.2
    for p in passes:
        for k in range(n):
            _png(f"{root}/training/{p}/{scene}/frame_{k + 1:04d}.png", frames[k])
    for k in range(n - 1):
        write_flo(f"{root}/training/flow/{scene}/frame_{k + 1:04d}.flo", flows[k])
        if invalid:
            _png(f"{root}/training/invalid/{scene}/frame_{k + 1:04d}.png",
                 masks[k].astype(np.uint8) * 255)
    return frames, flows, masks


# ------------------------------------------------------------------------------------- Sintel ----
def test_sintel_training_exact(tmp_path):
    rng = np.random.default_rng(0)
    frames, flows, masks = _sintel(tmp_path, rng)
    items, problems = sintel_items(tmp_path, "clean")
    assert problems == [] and len(items) == 1
    item = items[0]
    assert (item.video_id, item.label, item.label_text) == ("sintel/clean/alley_1", -1, "")
    out = item.load()
    np.testing.assert_array_equal(out["frames"], frames)  # PNG is lossless, RGB order kept
    np.testing.assert_array_equal(out["flows"], flows)
    np.testing.assert_array_equal(out["flow_valid"], ~masks)
    np.testing.assert_array_equal(out["flow_frame_index"], [0, 1])
    assert out["frames"].dtype == np.uint8 and out["flows"].dtype == np.float32
    assert out["fps"] == 24.0


def test_sintel_without_invalid_folder_and_final_pass(tmp_path):
    rng = np.random.default_rng(1)
    frames, flows, _ = _sintel(tmp_path, rng, invalid=False, passes=("clean", "final"))
    items, problems = sintel_items(tmp_path, pass_="final")
    assert problems == [] and items[0].video_id == "sintel/final/alley_1"
    out = items[0].load()
    assert out["flow_valid"].all()
    np.testing.assert_array_equal(out["flows"], flows)


def test_sintel_unknown_vectors_in_flo_are_invalid(tmp_path):
    rng = np.random.default_rng(2)
    _sintel(tmp_path, rng, n=2, invalid=False)
    flow = np.ones((H, W, 2), np.float32)
    valid = np.ones((H, W), bool)
    valid[3, 4] = False
    write_flo(tmp_path / "training/flow/alley_1/frame_0001.flo", flow, valid)
    out = sintel_items(tmp_path)[0][0].load()
    np.testing.assert_array_equal(out["flow_valid"][0], valid)
    assert out["flows"][0, 3, 4].tolist() == [0.0, 0.0]


def test_sintel_problems_and_test_split(tmp_path):
    rng = np.random.default_rng(3)
    _sintel(tmp_path, rng, scene="alley_1")
    _sintel(tmp_path, rng, scene="bamboo_1")
    os.remove(tmp_path / "training/flow/bamboo_1/frame_0002.flo")
    _sintel(tmp_path, rng, scene="cave_2")
    os.remove(tmp_path / "training/invalid/cave_2/frame_0001.png")
    _sintel(tmp_path, rng, scene="market_2")
    os.remove(tmp_path / "training/clean/market_2/frame_0002.png")
    items, problems = sintel_items(tmp_path)
    assert [i.video_id for i in items] == ["sintel/clean/alley_1"]
    assert [os.path.basename(p) for p, _ in problems] == ["bamboo_1", "cave_2", "market_2"]
    assert "missing [2]" in problems[0][1] and "flows" in problems[0][1]
    assert "masks" in problems[1][1]
    assert "missing numbers [2]" in problems[2][1]

    test_frames = _frames(rng, 2)
    for k in range(2):
        _png(tmp_path / f"test/clean/tiger/frame_{k + 1:04d}.png", test_frames[k])
    items, problems = sintel_items(tmp_path, split="test")
    assert problems == [] and [i.video_id for i in items] == ["sintel/clean/tiger"]
    out = items[0].load()
    np.testing.assert_array_equal(out["frames"], test_frames)
    assert out["flows"] is None and out["flow_valid"] is None and out["flow_frame_index"] is None


def test_sintel_layout_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing is not a folder.*training/\{clean,final\}"):
        sintel_items(tmp_path / "missing")
    os.makedirs(tmp_path / "training/clean")
    with pytest.raises(ValueError, match=r"training/flow.*expected the layout"):
        sintel_items(tmp_path)
    with pytest.raises(ValueError, match="pass_"):
        sintel_items(tmp_path, pass_="albedo")
    with pytest.raises(ValueError, match="split"):
        sintel_items(tmp_path, split="val")


# ---------------------------------------------------------------------------------- resizing ----
def test_constant_flow_resized_exactly(tmp_path):
    rng = np.random.default_rng(4)
    frames, _, _ = _sintel(tmp_path, rng, invalid=False)
    for k in range(2):
        flow = np.empty((H, W, 2), np.float32)
        flow[..., 0], flow[..., 1] = 2.0, -1.0
        write_flo(tmp_path / f"training/flow/alley_1/frame_{k + 1:04d}.flo", flow)
    out = sintel_items(tmp_path)[0][0].load(short_side=6)
    assert out["frames"].shape == (3, 6, 8, 3) and out["flows"].shape == (2, 6, 8, 2)
    assert np.all(out["flows"][..., 0] == 1.0) and np.all(out["flows"][..., 1] == -0.5)
    assert out["flow_valid"].all()
    for t in range(3):  # frames resized like OpenCV's INTER_AREA (shrinking)
        np.testing.assert_array_equal(
            out["frames"][t], cv2.resize(frames[t], (8, 6), interpolation=cv2.INTER_AREA))


def test_enlarging_scales_vectors_up():
    flow = np.empty((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    out, valid = resize_flow_field(flow, np.ones((H, W), bool), (24, 32))
    np.testing.assert_allclose(out[..., 0], 4.0, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], -2.0, rtol=1e-6)
    assert valid.shape == (24, 32) and valid.all()


def test_anisotropic_scale():
    flow = np.empty((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = 8.0, 6.0
    out, _ = resize_flow_field(flow, np.ones((H, W), bool), (6, 4))  # x / 4, y / 2
    assert np.all(out[..., 0] == 2.0) and np.all(out[..., 1] == 3.0)


def test_resize_keeps_unknown_vectors_out_of_the_average():
    flow = np.full((H, W, 2), 3.0, np.float32)
    valid = np.ones((H, W), bool)
    # Output (y, x) averages source rows 2y..2y+1, columns 2x..2x+1; its nearest sample is (2y, 2x).
    valid[:, 5] = False  # output column 2 stays valid (nearest column 4) but averages column 5
    valid[7, 10] = False  # same for output (3, 5): nearest (6, 10) valid, (7, 10) in its block
    valid[6, 12] = False  # the nearest sample of output (3, 6): invalid
    flow[~valid] = 1e6  # garbage under the unknown vectors
    out, out_valid = resize_flow_field(flow, valid, (6, 8))
    expected_valid = valid[::2, ::2]  # cv2.INTER_NEAREST for a factor 2 picks (2y, 2x)
    np.testing.assert_array_equal(out_valid, expected_valid)
    assert not out_valid[3, 6] and out_valid[3, 5] and out_valid[0, 2]
    np.testing.assert_array_equal(out[out_valid], np.full((out_valid.sum(), 2), 1.5, np.float32))
    assert np.all(out[~out_valid] == 0)


def test_item_resizes_mask_and_flow_consistently(tmp_path):
    rng = np.random.default_rng(5)
    _sintel(tmp_path, rng, n=2, invalid=False)
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = np.arange(W)[None, :]  # u = x
    write_flo(tmp_path / "training/flow/alley_1/frame_0001.flo", flow)
    mask = np.zeros((H, W), np.uint8)
    mask[:, :4] = 255
    _png(tmp_path / "training/invalid/alley_1/frame_0001.png", mask)
    out = sintel_items(tmp_path)[0][0].load(short_side=6)
    # INTER_AREA over 2x2 blocks: u = (2x + 2x + 1) / 2 * (8 / 16) = x + 0.25 for output column x.
    expected_u = np.broadcast_to(np.arange(8) + 0.25, (6, 8))
    expected_valid = np.broadcast_to(np.arange(8) >= 2, (6, 8))
    np.testing.assert_array_equal(out["flow_valid"][0], expected_valid)
    np.testing.assert_allclose(out["flows"][0, ..., 0][expected_valid], expected_u[expected_valid])
    assert np.all(out["flows"][0, ..., 1] == 0)


# --------------------------------------------------------------------------------- Middlebury ----
def test_middlebury(tmp_path):
    rng = np.random.default_rng(6)
    data, gt = tmp_path / "other-data", tmp_path / "other-gt-flow"
    grove = _frames(rng, 8)  # frame07..frame14
    for k in range(8):
        _png(data / f"Grove2/frame{k + 7:02d}.png", grove[k])
    venus = _frames(rng, 2)
    for k in range(2):
        _png(data / f"Venus/frame{k + 10}.png", venus[k])
    urban = _frames(rng, 6)  # frame07, frame09..frame13 (frame08 missing)
    for k, n in enumerate([7, 9, 10, 11, 12, 13]):
        _png(data / f"Urban3/frame{n:02d}.png", urban[k])
    for k in range(2):  # an evaluation scene: frames but no ground truth
        _png(data / f"Backyard/frame{k + 10}.png", _frames(rng, 1)[0])
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    for k in range(2):  # grey frames
        _png(data / f"Dimetrodon/frame{k + 10}.png", grey)
    flows = {s: rng.normal(size=(H, W, 2)).astype(np.float32)
             for s in ("Grove2", "Venus", "Urban3", "Dimetrodon", "Orphan")}
    for scene, f in flows.items():
        write_flo(gt / scene / "flow10.flo", f)

    items, problems = middlebury_items(tmp_path)
    by_id = {i.video_id: i for i in items}
    assert sorted(by_id) == ["middlebury/Dimetrodon", "middlebury/Grove2", "middlebury/Urban3",
                             "middlebury/Venus"]
    assert all(i.label == -1 and i.label_text == "" for i in items)
    problem_paths = sorted(os.path.relpath(p, tmp_path) for p, _ in problems)
    assert problem_paths == ["other-data/Backyard", "other-data/Urban3/frame07.png",
                             "other-gt-flow/Orphan"]
    assert any("no ground-truth flow" in r for _, r in problems)

    out = by_id["middlebury/Grove2"].load()
    np.testing.assert_array_equal(out["frames"], grove)
    np.testing.assert_array_equal(out["flow_frame_index"], [3])  # frame10 is the 4th frame
    np.testing.assert_array_equal(out["flows"][0], flows["Grove2"])
    out = by_id["middlebury/Urban3"].load()
    np.testing.assert_array_equal(out["frames"], urban[1:])  # frame09..frame13
    np.testing.assert_array_equal(out["flow_frame_index"], [1])
    out = by_id["middlebury/Venus"].load()
    np.testing.assert_array_equal(out["frames"], venus)
    np.testing.assert_array_equal(out["flow_frame_index"], [0])
    out = by_id["middlebury/Dimetrodon"].load()
    assert out["frames"].shape == (2, H, W, 3)
    np.testing.assert_array_equal(out["frames"],
                                  np.broadcast_to(grey[None, ..., None], (2, H, W, 3)))


def test_middlebury_layout_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing is not a folder.*other-data/<scene>"):
        middlebury_items(tmp_path / "missing")
    os.makedirs(tmp_path / "other-data")
    with pytest.raises(ValueError, match=r"other-gt-flow.*expected the layout"):
        middlebury_items(tmp_path)


# --------------------------------------------------------------------------- item behaviour ----
def _pair_item(tmp_path, rng, flow_shape=(H, W, 2), **kw):
    frames = _frames(rng, 3)
    paths = [tmp_path / f"f{k}.png" for k in range(3)]
    for p, f in zip(paths, frames):
        _png(p, f)
    write_flo(tmp_path / "a.flo", np.ones(flow_shape, np.float32))
    return FlowSequenceItem(video_id="x", label=-1, label_text="", source=str(tmp_path),
                            frame_paths=paths, flow_paths=[tmp_path / "a.flo"], **kw)


def test_sparse_flow_index(tmp_path):
    item = _pair_item(tmp_path, np.random.default_rng(7), flow_frame_index=[1])
    out = item.load()
    np.testing.assert_array_equal(out["flow_frame_index"], [1])
    with pytest.raises(ValueError, match="flow_frame_index"):
        _pair_item(tmp_path, np.random.default_rng(7), flow_frame_index=[2])


def test_fps_must_be_none(tmp_path):
    item = _pair_item(tmp_path, np.random.default_rng(8))
    with pytest.raises(ValueError, match="fps must be None"):
        item.load(fps=10)


def test_read_errors(tmp_path):
    rng = np.random.default_rng(9)
    item = _pair_item(tmp_path, rng, flow_shape=(H, W + 1, 2))
    with pytest.raises(ReadError, match="flow is 17x12") as err:
        item.load()
    assert err.value.path.endswith("a.flo")
    item = _pair_item(tmp_path, rng)
    os.remove(tmp_path / "f1.png")
    with pytest.raises(ReadError, match="does not exist") as err:
        item.load()
    assert err.value.path.endswith("f1.png")
    (tmp_path / "f1.png").write_bytes(b"not an image")
    with pytest.raises(ReadError, match="cannot be decoded"):
        item.load()
    _png(tmp_path / "f1.png", _frames(rng, 1, h=H + 2)[0])
    with pytest.raises(ReadError, match="frame is 16x14"):
        item.load()
    item = FlowSequenceItem(video_id="x", label=-1, label_text="", source="",
                            frame_paths=[tmp_path / "f0.png"] * 2, flow_paths=[tmp_path / "a.flo"])
    os.remove(tmp_path / "a.flo")
    with pytest.raises(ReadError, match="flow file does not exist"):
        item.load()


def test_image_sequence_item(tmp_path):
    rng = np.random.default_rng(10)
    frames = _frames(rng, 2)
    for k in range(2):
        _png(tmp_path / f"{k}.png", frames[k])
    item = ImageSequenceItem(video_id="s", label=3, label_text="c", source=str(tmp_path),
                             frame_paths=[tmp_path / "0.png", tmp_path / "1.png"], source_fps=5.0)
    out = item.load()
    np.testing.assert_array_equal(out["frames"], frames)
    assert out["fps"] == 5.0


def test_output_is_accepted_by_the_schema(tmp_path):
    from tfvideo.data import schema

    rng = np.random.default_rng(11)
    _sintel(tmp_path, rng)
    out = sintel_items(tmp_path)[0][0].load(short_side=6)
    example = schema.make_sequence_example(**out, video_id="sintel/clean/alley_1")
    parsed = schema.parse_sequence_example(example.SerializeToString(), flow=True)
    flows, valid = schema.decode_flows(parsed[schema.FLOW], 6, 8)
    np.testing.assert_array_equal(valid.numpy(), out["flow_valid"])
    np.testing.assert_allclose(flows.numpy(), out["flows"], atol=0.01)


def test_module_example():
    assert doctest.testmod(flow_sets).failed == 0
