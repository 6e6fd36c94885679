"""Tests of tfvideo.data.segmentation_sets on tiny fake Cityscapes and GATECH-style trees."""

from __future__ import annotations

import doctest
import os

import cv2
import numpy as np
import pytest

from tfvideo.data import segmentation_sets
from tfvideo.data.items import ReadError
from tfvideo.data.segmentation_sets import (GATECH_CLASSES, SegmentationSequenceItem,
                                            cityscapes_items, gatech_items, read_label_map)

H, W = 8, 16


def _png(path, img):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), img[..., ::-1] if img.ndim == 3 else img)


def _frame(value):
    """A frame filled with ``value`` (R), ``value + 1`` (G), ``value + 2`` (B)."""
    return np.broadcast_to(np.array([value, value + 1, value + 2], np.uint8), (H, W, 3)).copy()


def _label(rng, num_classes=19):
    label = rng.integers(0, num_classes, (H, W), dtype=np.uint8)
    label[0, :3] = 255
    return label


def _city_snippet(root, seq, annotated, rng, split="train", city="aachen", skip=()):
    for k in range(annotated - 19, annotated + 11):
        if k not in skip:
            _png(f"{root}/leftImg8bit_sequence/{split}/{city}/{city}_{seq}_{k:06d}_leftImg8bit.png",
                 _frame(k * 3 % 250))
    label = _label(rng)
    stem = f"{root}/gtFine/{split}/{city}/{city}_{seq}_{annotated:06d}_gtFine"
    _png(f"{stem}_labelTrainIds.png", label)
    _png(f"{stem}_labelIds.png", rng.integers(0, 34, (H, W), dtype=np.uint8))
    _png(f"{stem}_color.png", _frame(7))  # ignored: not the requested label kind
    return label


# --------------------------------------------------------------------------------- Cityscapes ----
def test_cityscapes(tmp_path):
    rng = np.random.default_rng(0)
    label = _city_snippet(tmp_path, "000000", 19, rng)
    _city_snippet(tmp_path, "000001", 50, rng, skip=(45,))
    items, problems = cityscapes_items(tmp_path, "train")
    assert [i.video_id for i in items] == ["cityscapes/train/aachen_000000_000019"]
    assert len(problems) == 1
    path, reason = problems[0]
    assert os.path.basename(path) == "aachen_000001_000045_leftImg8bit.png"
    assert "[45]" in reason and "aachen_000001_000050_gtFine_labelTrainIds.png" in reason

    item = items[0]
    assert (item.label, item.label_text, item.num_classes) == (-1, "", 19)
    out = item.load()
    assert out["frames"].shape == (30, H, W, 3) and out["frames"].dtype == np.uint8
    for t in range(30):  # snippet frames 0..29 in order, RGB
        np.testing.assert_array_equal(out["frames"][t], _frame(t * 3 % 250))
    np.testing.assert_array_equal(out["segmentation_frame_index"], [19])
    np.testing.assert_array_equal(out["segmentations"], label[None])
    assert out["segmentations"].dtype == np.uint8
    assert out["fps"] == 17.0


def test_cityscapes_snippet_is_f_minus_19_to_f_plus_10(tmp_path):
    rng = np.random.default_rng(1)
    _city_snippet(tmp_path, "000123", 119, rng, split="val", city="frankfurt")
    items, problems = cityscapes_items(tmp_path, "val")
    assert problems == []
    names = [os.path.basename(p) for p in items[0].frame_paths]
    assert names[0] == "frankfurt_000123_000100_leftImg8bit.png"
    assert names[19] == "frankfurt_000123_000119_leftImg8bit.png"
    assert names[-1] == "frankfurt_000123_000129_leftImg8bit.png"
    assert items[0].video_id == "cityscapes/val/frankfurt_000123_000119"


def test_cityscapes_label_ids(tmp_path):
    rng = np.random.default_rng(2)
    _city_snippet(tmp_path, "000000", 19, rng)
    items, _ = cityscapes_items(tmp_path, label_kind="labelIds")
    assert items[0].num_classes == 34
    assert items[0].label_paths[19].endswith("_gtFine_labelIds.png")


def test_cityscapes_resize_nearest(tmp_path):
    rng = np.random.default_rng(3)
    label = _city_snippet(tmp_path, "000000", 19, rng)
    out = cityscapes_items(tmp_path)[0][0].load(short_side=4)
    assert out["frames"].shape == (30, 4, 8, 3)
    seg = out["segmentations"][0]
    assert seg.shape == (4, 8)
    assert set(np.unique(seg)) <= set(np.unique(label))
    np.testing.assert_array_equal(seg, label[::2, ::2])  # nearest picks (2y, 2x) for a factor 2
    np.testing.assert_array_equal(out["frames"][5], _frame(15)[::2, ::2])  # constant frame


def test_cityscapes_layout_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing is not a folder.*leftImg8bit_sequence"):
        cityscapes_items(tmp_path / "missing")
    os.makedirs(tmp_path / "leftImg8bit_sequence/train")
    with pytest.raises(ValueError, match=r"gtFine/train is not a folder"):
        cityscapes_items(tmp_path)
    os.makedirs(tmp_path / "gtFine/train/aachen")
    with pytest.raises(ValueError, match="no \\*_gtFine_labelTrainIds.png.*createTrainIdLabelImgs"):
        cityscapes_items(tmp_path)
    with pytest.raises(ValueError, match="split"):
        cityscapes_items(tmp_path, split="training")
    with pytest.raises(ValueError, match="label_kind"):
        cityscapes_items(tmp_path, label_kind="color")


# ------------------------------------------------------------------------------------- labels ----
def _item(tmp_path, label, num_classes=19, n=2):
    paths = []
    for k in range(n):
        paths.append(tmp_path / f"f{k}.png")
        _png(paths[-1], _frame(10 * k))
    _png(tmp_path / "label.png", label)
    return SegmentationSequenceItem(video_id="v", label=-1, label_text="", source=str(tmp_path),
                                    frame_paths=paths, label_paths={1: tmp_path / "label.png"},
                                    num_classes=num_classes)


def test_label_out_of_range(tmp_path):
    label = np.zeros((H, W), np.uint8)
    label[2, 3], label[4, 5], label[0, 0] = 19, 200, 255
    item = _item(tmp_path, label)
    with pytest.raises(ReadError, match=r"label values \[19, 200\] out of range") as err:
        item.load()
    assert err.value.path == str(tmp_path / "label.png")
    label[2, 3], label[4, 5] = 18, 0  # 0..18 and 255 are fine
    np.testing.assert_array_equal(_item(tmp_path, label).load()["segmentations"][0], label)


def test_label_format_errors(tmp_path):
    with pytest.raises(ReadError, match="single-channel 8-bit, got 3 channel"):
        _item(tmp_path, _frame(1)).load()
    with pytest.raises(ReadError, match="label map is 16x9"):
        _item(tmp_path, np.zeros((H + 1, W), np.uint8)).load()
    with pytest.raises(ReadError, match="single-channel 8-bit, got 1 channel.*uint16"):
        _item(tmp_path, np.zeros((H, W), np.uint16)).load()
    with pytest.raises(ReadError, match="does not exist"):
        read_label_map(tmp_path / "nope.png", 3)


def test_item_arguments(tmp_path):
    item = _item(tmp_path, np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="fps must be None"):
        item.load(fps=5)
    with pytest.raises(ValueError, match="label_paths keys"):
        SegmentationSequenceItem(video_id="v", label=-1, label_text="", source="",
                                 frame_paths=["a.png"], label_paths={1: "l.png"}, num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationSequenceItem(video_id="v", label=-1, label_text="", source="",
                                 frame_paths=["a.png"], label_paths={0: "l.png"}, num_classes=0)


# ------------------------------------------------------------------------------------ GATECH ----
def test_gatech(tmp_path):
    rng = np.random.default_rng(4)
    base = tmp_path / "train"
    for k in (1, 2, 10, 11):  # numeric order 1, 2, 10, 11 (lexicographic would put 10 before 2)
        _png(base / f"road/frames/{k}.png", _frame(k))
    labels = {2: _label(rng, 8), 11: _label(rng, 8)}
    for k, lab in labels.items():
        _png(base / f"road/labels/{k}.png", lab)
    _png(base / "road/labels/99.png", _label(rng, 8))  # no frame 99
    (base / "road/labels/notes.txt").write_text("x")
    (base / "road/frames/Thumbs.db").write_bytes(b"")  # not an image: ignored
    _png(base / "park/frames/00000.jpg", _frame(100))
    _png(base / "park/frames/00001.jpg", _frame(100))
    _png(base / "park/labels/00001.png", _label(rng, 8))
    _png(base / "nolabels/frames/00000.png", _frame(0))
    os.makedirs(base / "nolabels/labels")
    _png(base / "noframes/labels/00000.png", _label(rng, 8))
    _png(base / "dup/frames/1.png", _frame(0))
    _png(base / "dup/frames/01.png", _frame(0))
    _png(base / "dup/labels/1.png", _label(rng, 8))

    items, problems = gatech_items(tmp_path, "train")
    assert [i.video_id for i in items] == ["gatech/train/park", "gatech/train/road"]
    assert all(i.num_classes == 8 == len(GATECH_CLASSES) for i in items)
    reported = sorted(os.path.relpath(p, tmp_path) for p, _ in problems)
    assert reported == ["train/dup/frames", "train/noframes", "train/nolabels/labels",
                        "train/road/labels/99.png", "train/road/labels/notes.txt"]

    out = items[1].load()
    for t, k in enumerate((1, 2, 10, 11)):
        np.testing.assert_array_equal(out["frames"][t], _frame(k))
    np.testing.assert_array_equal(out["segmentation_frame_index"], [1, 3])
    np.testing.assert_array_equal(out["segmentations"], np.stack([labels[2], labels[11]]))
    out = items[0].load(short_side=4)  # JPEG frames
    assert out["frames"].shape == (2, 4, 8, 3)
    np.testing.assert_array_equal(out["segmentation_frame_index"], [1])
    assert np.abs(out["frames"].astype(int) - _frame(100)[:4, :8]).max() <= 3


def test_gatech_flows_are_loaded_when_a_flows_folder_exists(tmp_path):
    from tfvideo.data.flo import write_flo

    rng = np.random.default_rng(6)
    base = tmp_path / "train"
    for k in (1, 2, 10, 11):  # frame indices 0..3
        _png(base / f"road/frames/{k}.png", _frame(k))
    _png(base / "road/labels/2.png", _label(rng, 8))
    flows = {1: rng.normal(size=(H, W, 2)), 10: rng.normal(size=(H, W, 2))}
    for k, flow in flows.items():
        write_flo(base / f"road/flows/{k}.flo", flow)
    write_flo(base / "road/flows/11.flo", np.zeros((H, W, 2)))  # last frame: no next frame
    write_flo(base / "road/flows/5.flo", np.zeros((H, W, 2)))  # no frame 5
    (base / "road/flows/notes.txt").write_text("x")
    os.makedirs(base / "road/occlusions")  # other folders are ignored
    _png(base / "park/frames/0.png", _frame(0))  # no flows/: loads exactly as before
    _png(base / "park/frames/1.png", _frame(1))
    _png(base / "park/labels/0.png", _label(rng, 8))

    items, problems = gatech_items(tmp_path, "train", num_classes=9, id_prefix="mine")
    assert [i.video_id for i in items] == ["mine/train/park", "mine/train/road"]
    assert all(i.num_classes == 9 for i in items)
    assert sorted(os.path.relpath(p, tmp_path) for p, _ in problems) == [
        "train/road/flows/11.flo", "train/road/flows/5.flo", "train/road/flows/notes.txt"]
    assert "last frame" in dict(problems)[str(base / "road/flows/11.flo")]
    assert set(items[0].load()) == {"frames", "fps", "segmentations", "segmentation_frame_index"}
    out = items[1].load()
    np.testing.assert_array_equal(out["flow_frame_index"], [0, 2])  # flow t: frame t -> t + 1
    np.testing.assert_allclose(out["flows"], np.stack([flows[1], flows[10]]), rtol=1e-6)
    assert out["flow_valid"].all() and out["segmentations"].shape == (1, H, W)
    half = items[1].load(short_side=4)  # 2 x 2 means, vectors halved
    expected = np.stack([flows[1], flows[10]]).reshape(2, 4, 2, 8, 2, 2).mean(axis=(2, 4)) / 2
    np.testing.assert_allclose(half["flows"], expected, atol=1e-5)
    write_flo(base / "road/flows/2.flo", np.zeros((H + 2, W, 2)))  # another size than the frames
    with pytest.raises(ReadError, match="flow is 16x10"):
        gatech_items(tmp_path, "train")[0][1].load()
    with pytest.raises(ValueError, match="num_classes"):
        gatech_items(tmp_path, "train", num_classes=0)
    with pytest.raises(ValueError, match="flow_paths"):
        SegmentationSequenceItem(video_id="v", label=-1, label_text="", source="",
                                 frame_paths=["a.png", "b.png"], label_paths={0: "l.png"},
                                 num_classes=3, flow_paths={1: "f.flo"})


def test_gatech_label_out_of_range(tmp_path):
    _png(tmp_path / "test/v/frames/0.png", _frame(0))
    _png(tmp_path / "test/v/labels/0.png", np.full((H, W), 8, np.uint8))
    items, problems = gatech_items(tmp_path, "test")
    assert problems == []
    with pytest.raises(ReadError, match=r"label values \[8\] out of range: expected 0...7 or 255"):
        items[0].load()


def test_gatech_layout_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing is not a folder.*<video>/frames/<NNNNN>.png"):
        gatech_items(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"train is not a folder"):
        gatech_items(tmp_path)
    with pytest.raises(ValueError, match="split"):
        gatech_items(tmp_path, split="val")


def test_output_is_accepted_by_the_schema(tmp_path):
    from tfvideo.data import schema

    rng = np.random.default_rng(5)
    label = _city_snippet(tmp_path, "000000", 19, rng)
    out = cityscapes_items(tmp_path)[0][0].load()
    example = schema.make_sequence_example(**out)
    parsed = schema.parse_sequence_example(example.SerializeToString(), segmentation=True)
    np.testing.assert_array_equal(parsed[schema.SEGMENTATION_INDEX].numpy(), [19])
    np.testing.assert_array_equal(
        schema.decode_segmentations(parsed[schema.SEGMENTATION]).numpy(), label[None])


def test_module_example():
    assert doctest.testmod(segmentation_sets).failed == 0
