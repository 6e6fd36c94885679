"""Tests of the detection keys of the schema, tfvideo.data.detection_sets (fake ImageNet VID trees in
the official layout, the built-in objects set with boxes) and their prepare entries."""

from __future__ import annotations

import doctest
import os

import cv2
import numpy as np
import pytest

from tfvideo.data import detection_sets, schema
from tfvideo.data.detection_sets import (OBJECTS_DETECTION_CLASSES, VID_CLASSES, VID_WNIDS,
                                         DetectionSequenceItem, imagenet_vid_items,
                                         objects_detection_items, read_vid_xml, scale_boxes,
                                         visible_boxes)
from tfvideo.data.items import ReadError
from tfvideo.data.objects import (CLASSES, BackgroundSpec, ClipSpec, ObjectSpec, clip_geometry,
                                  clip_spec, generate_objects)
from tfvideo.data.pipeline import read_videos
from tfvideo.data.prepare import prepare

H, W = 24, 32
TRAIN = "train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
TRAIN_B = "train/ILSVRC2015_VID_train_0001/ILSVRC2015_train_00001000"
GAPPY = "train/ILSVRC2015_VID_train_0001/ILSVRC2015_train_00001001"
VAL = "val/ILSVRC2015_val_00000000"


def test_doctests():
    assert doctest.testmod(detection_sets).failed == 0


# -------------------------------------------------------------------------------------- schema ----
def _video(t=3):
    return np.zeros((t, H, W, 3), np.uint8)


def test_schema_round_trip_and_defaults():
    boxes = np.array([[0, 0, 31, 23], [2.5, 1, 4, 7.25], [5, 6, 5, 6]], np.float32)
    ex = schema.make_sequence_example(_video(), boxes=boxes, box_labels=[3, 0, 29], box_frames=[0, 0, 2],
                                      box_tracks=[1, -1, 7], box_frame_index=[0, 1, 2])
    d = schema.parse_sequence_example(ex.SerializeToString(), detection=True)
    np.testing.assert_array_equal(d[schema.DETECTION_BOX].numpy(), boxes)
    assert d[schema.DETECTION_LABEL].numpy().tolist() == [3, 0, 29]
    assert d[schema.DETECTION_FRAME].numpy().tolist() == [0, 0, 2]
    assert d[schema.DETECTION_TRACK].numpy().tolist() == [1, -1, 7]
    assert d[schema.DETECTION_INDEX].numpy().tolist() == [0, 1, 2]
    # defaults: tracks unknown, every frame annotated; zero boxes allowed
    ex = schema.make_sequence_example(_video(), boxes=np.zeros((0, 4)), box_labels=[], box_frames=[])
    d = schema.parse_sequence_example(ex.SerializeToString(), detection=True)
    assert d[schema.DETECTION_BOX].shape == (0, 4)
    assert d[schema.DETECTION_INDEX].numpy().tolist() == [0, 1, 2]
    # a record without boxes (old shards) parses as "nothing annotated"
    d = schema.parse_sequence_example(schema.make_sequence_example(_video()).SerializeToString(),
                                      detection=True)
    assert d[schema.DETECTION_INDEX].shape == (0,) and d[schema.DETECTION_BOX].shape == (0, 4)
    assert schema.DETECTION_BOX not in schema.parse_sequence_example(ex.SerializeToString())


@pytest.mark.parametrize("kwargs, match", [
    (dict(boxes=[[0, 0, 32, 5]], box_labels=[0], box_frames=[0]), "x1 <= x2 <= 31"),
    (dict(boxes=[[5, 0, 4, 5]], box_labels=[0], box_frames=[0]), "x1 <= x2"),
    (dict(boxes=[[-1, 0, 4, 5]], box_labels=[0], box_frames=[0]), "0 <= x1"),
    (dict(boxes=[[0, 0, 4, 24]], box_labels=[0], box_frames=[0]), "y1 <= y2 <= 23"),
    (dict(boxes=[[0, 0, 4, 5, 6]], box_labels=[0], box_frames=[0]), r"\(num_boxes, 4\)"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0, 1], box_frames=[0]), "box_labels must hold 1"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0.5], box_frames=[0]), "box_labels must hold 1 integers"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[-1], box_frames=[0]), "class indices >= 0"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0], box_frames=[0], box_tracks=[-2]), ">= -1"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0], box_frames=[1], box_frame_index=[0, 2]),
     "listed in box_frame_index"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0], box_frames=[0], box_frame_index=[0, 3]),
     r"strictly increasing frames in \[0, 2\]"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=[0], box_frames=[0], box_frame_index=[1, 0]),
     "strictly increasing"),
    (dict(boxes=[[0, 0, 4, 5]], box_labels=None, box_frames=[0]), "need box_labels and box_frames"),
    (dict(box_labels=[0]), "need boxes"),
])
def test_schema_rejects_bad_boxes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schema.make_sequence_example(_video(), **kwargs)


def test_scale_boxes_inclusive_corners():
    # halving a 32x24 frame: edges x1 and x2 + 1 scale by 0.5 (hand-computed)
    boxes = [[3, 2, 20, 15], [0, 0, 31, 23], [6, 6, 6, 6]]
    out = scale_boxes(boxes, (24, 32), (12, 16))
    np.testing.assert_allclose(out, [[1.5, 1, 9.5, 7], [0, 0, 15, 11], [3, 3, 3, 3]])
    assert out.dtype == np.float32
    # enlarging 3x: a 1-px box becomes 3 px wide (x2' - x1' + 1 = 3)
    np.testing.assert_allclose(scale_boxes([[1, 2, 1, 2]], (4, 4), (12, 12)), [[3, 6, 5, 8]])


# --------------------------------------------------------------------------------- ImageNet VID ----
def _xml(path, objects, size=(W, H), raw=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if raw is not None:
        with open(path, "w") as f:
            f.write(raw)
        return
    body = "".join(
        f"<object><trackid>{track}</trackid><name>{wnid}</name><bndbox><xmax>{x2}</xmax>"
        f"<xmin>{x1}</xmin><ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox><occluded>0</occluded>"
        f"<generated>0</generated></object>" for wnid, track, (x1, y1, x2, y2) in objects)
    with open(path, "w") as f:
        f.write(f"<annotation><folder>x</folder><filename>y</filename><source><database>ILSVRC_2015"
                f"</database></source><size><width>{size[0]}</width><height>{size[1]}</height></size>"
                f"{body}</annotation>")


def _jpeg(path, value, size=(H, W)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))


def _vid_tree(root):
    """Snippets: TRAIN (4 frames: 2 boxes, none, XML missing, unknown WordNet id), TRAIN_B (3 good
    frames), GAPPY (frames 0 and 2), VAL (3 frames, frame 1's XML is garbage)."""
    airplane, zebra = VID_WNIDS[0], VID_WNIDS[29]
    for k in range(4):
        _jpeg(f"{root}/Data/VID/{TRAIN}/{k:06d}.JPEG", 10 * k)
    _xml(f"{root}/Annotations/VID/{TRAIN}/000000.xml",
         [(airplane, 0, (3, 2, 20, 15)), (zebra, 1, (5, 4, 40, 23))])  # zebra clipped to x2 = 31
    _xml(f"{root}/Annotations/VID/{TRAIN}/000001.xml", [])
    _xml(f"{root}/Annotations/VID/{TRAIN}/000003.xml", [("n99999999", 0, (1, 1, 2, 2))])
    for k in range(3):
        _jpeg(f"{root}/Data/VID/{TRAIN_B}/{k:06d}.JPEG", 100 + k)
        _xml(f"{root}/Annotations/VID/{TRAIN_B}/{k:06d}.xml", [(zebra, 4, (0, 0, k, k))])
    for k in (0, 2):
        _jpeg(f"{root}/Data/VID/{GAPPY}/{k:06d}.JPEG", 50)
        _xml(f"{root}/Annotations/VID/{GAPPY}/{k:06d}.xml", [])
    for k in range(3):
        _jpeg(f"{root}/Data/VID/{VAL}/{k:06d}.JPEG", 200 + k)
    _xml(f"{root}/Annotations/VID/{VAL}/000000.xml", [(VID_WNIDS[7], 2, (0, 0, 9, 9))])
    _xml(f"{root}/Annotations/VID/{VAL}/000001.xml", None, raw="<annotation><size>")
    _xml(f"{root}/Annotations/VID/{VAL}/000002.xml", [(VID_WNIDS[7], 2, (1, 1, 10, 10))])


def test_vid_classes_are_the_devkit_order():
    assert len(VID_CLASSES) == len(VID_WNIDS) == len(set(VID_WNIDS)) == 30
    assert (VID_CLASSES[0], VID_WNIDS[0]) == ("airplane", "n02691156")
    assert (VID_CLASSES[9], VID_WNIDS[9]) == ("domestic_cat", "n02121808")
    assert (VID_CLASSES[29], VID_WNIDS[29]) == ("zebra", "n02391049")


def test_read_vid_xml(tmp_path):
    _xml(tmp_path / "a.xml", [(VID_WNIDS[2], 3, (-2, 1, 5, 30))])
    ann = read_vid_xml(tmp_path / "a.xml")
    assert ann["size"] == (H, W)
    np.testing.assert_array_equal(ann["boxes"], [[0, 1, 5, 23]])  # clipped as DFF does
    assert ann["labels"].tolist() == [2] and ann["tracks"].tolist() == [3]
    _xml(tmp_path / "b.xml", [(VID_WNIDS[2], 3, (40, 1, 50, 3))])
    with pytest.raises(ReadError, match="empty inside"):
        read_vid_xml(tmp_path / "b.xml")
    _xml(tmp_path / "c.xml", None, raw="<annotation><size><width>x</width></size></annotation>")
    with pytest.raises(ReadError, match="<height> must be a number"):
        read_vid_xml(tmp_path / "c.xml")


def test_imagenet_vid_items(tmp_path):
    _vid_tree(tmp_path)
    items, problems = imagenet_vid_items(tmp_path, "train")
    assert [i.video_id for i in items] == [f"imagenet_vid/{TRAIN}", f"imagenet_vid/{TRAIN_B}"]
    reasons = {os.path.relpath(p, tmp_path): r for p, r in problems}
    assert len(problems) == 3
    assert "frame stored unannotated" in reasons[f"Data/VID/{TRAIN}/000002.JPEG"]
    assert "unknown WordNet id 'n99999999'" in reasons[f"Annotations/VID/{TRAIN}/000003.xml"]
    assert "not consecutive (missing [1])" in reasons[f"Data/VID/{GAPPY}"]

    item = items[0]
    assert len(item.frame_paths) == 4 and item.annotation_size == (H, W)
    out = item.load()
    assert out["frames"].shape == (4, H, W, 3)
    np.testing.assert_array_equal(out["boxes"], [[3, 2, 20, 15], [5, 4, 31, 23]])
    assert out["box_labels"].tolist() == [0, 29] and out["box_tracks"].tolist() == [0, 1]
    assert out["box_frames"].tolist() == [0, 0]
    assert out["box_frame_index"].tolist() == [0, 1]  # frame 1: zero boxes; 2 and 3 unannotated
    half = item.load(short_side=12)
    assert half["frames"].shape == (4, 12, 16, 3)
    np.testing.assert_allclose(half["boxes"], [[1.5, 1, 9.5, 7], [2.5, 2, 15, 11]])
    out = items[1].load()
    np.testing.assert_array_equal(out["boxes"], [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 2, 2]])
    assert out["box_frames"].tolist() == [0, 1, 2] and out["box_frame_index"].tolist() == [0, 1, 2]

    items, problems = imagenet_vid_items(tmp_path, "val")
    assert [i.video_id for i in items] == [f"imagenet_vid/{VAL}"]
    assert len(problems) == 1 and "cannot parse the annotation XML" in problems[0][1]
    out = items[0].load()
    assert out["box_frame_index"].tolist() == [0, 2] and out["box_labels"].tolist() == [7, 7]


def test_imagenet_vid_image_sets(tmp_path):
    _vid_tree(tmp_path)
    sets = tmp_path / "ImageSets"
    sets.mkdir()
    # DFF's VID_train_15frames.txt format: <snippet> <id> <frame> <length>, read as frame <frame>
    (sets / "VID_train_15frames.txt").write_text(
        f"{TRAIN} 1 1 4\n{TRAIN} 1 0 4\n{TRAIN_B.replace('1000', '1999')} 1 0 3\n{VAL} 5 0 3\n")
    items, problems = imagenet_vid_items(tmp_path, "train", image_set="VID_train_15frames.txt")
    assert [i.video_id for i in items] == [f"imagenet_vid/{TRAIN}"]
    assert items[0].box_frame_index.tolist() == [0, 1] and len(items[0].frame_paths) == 4
    reasons = " | ".join(r for _, r in problems)
    assert "1 line(s) name snippets or frames not found" in reasons
    assert "1 line(s) belong to another split" in reasons

    # official val.txt / DFF VID_val_frames.txt: <snippet>/<frame> <id>; a 4-column val line: a video
    (sets / "val_frames.txt").write_text(f"{VAL}/000002 3\n")
    items, problems = imagenet_vid_items(tmp_path, "val", image_set=sets / "val_frames.txt")
    assert items[0].box_frame_index.tolist() == [2] and problems == []
    (sets / "VID_val_videos.txt").write_text(f"{VAL} 1 0 3\n")
    items, problems = imagenet_vid_items(tmp_path, "val", image_set="VID_val_videos.txt")
    assert items[0].box_frame_index.tolist() == [0, 2] and len(problems) == 1  # frame 1's XML
    # official train_<c>.txt: a snippet line selects all its frames
    (sets / "train_30.txt").write_text(f"{TRAIN_B} 1\n")
    items, _ = imagenet_vid_items(tmp_path, "train", image_set="train_30.txt")
    assert [i.video_id for i in items] == [f"imagenet_vid/{TRAIN_B}"]
    assert items[0].box_frame_index.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="neither a file"):
        imagenet_vid_items(tmp_path, "train", image_set="nope.txt")


def test_imagenet_vid_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="Data/VID"):
        imagenet_vid_items(tmp_path, "train")
    with pytest.raises(ValueError, match="'train' or 'val'"):
        imagenet_vid_items(tmp_path, "test")


def test_load_refuses_other_frame_size(tmp_path):
    _jpeg(tmp_path / "f/000000.JPEG", 0, size=(20, 30))
    item = DetectionSequenceItem(video_id="v", label=-1, label_text="", source=str(tmp_path / "f"),
                                 frame_paths=[tmp_path / "f/000000.JPEG"], boxes=[[0, 0, 5, 5]],
                                 box_labels=[0], box_frames=[0], box_tracks=[-1], box_frame_index=[0],
                                 annotation_size=(H, W))
    with pytest.raises(ReadError, match="annotations give 32x24"):
        item.load()


def test_prepare_imagenet_vid(tmp_path):
    _vid_tree(tmp_path / "vid")
    summary = prepare("imagenet_vid", tmp_path / "out", tmp_path / "vid", short_side=12, progress=False,
                      log=None)
    assert summary["classes"] == list(VID_CLASSES)
    assert {k: s["videos"] for k, s in summary["splits"].items()} == {"train": 2, "val": 1}
    assert len(summary["skipped"]) == 4  # 3 train listing problems + the val XML
    videos = {v["video_id"]: v for v in read_videos(tmp_path / "out", "train", detection=True)}
    v = videos[f"imagenet_vid/{TRAIN}"]
    assert v["frames"].shape == (4, 12, 16, 3)
    np.testing.assert_allclose(v["boxes"], [[1.5, 1, 9.5, 7], [2.5, 2, 15, 11]])
    assert v["box_labels"].tolist() == [0, 29] and v["box_frame_index"].tolist() == [0, 1]
    assert v["box_tracks"].tolist() == [0, 1] and v["box_frames"].tolist() == [0, 0]


# ----------------------------------------------------------------------------- built-in objects ----
def _extent(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max(), ys.max()]


def test_visible_boxes_hidden_and_cut_objects():
    bg = BackgroundSpec("grass", center=(256, 256))
    objects = (ObjectSpec("cat", position=(20, 16), radius=3),       # hidden behind the coins
               ObjectSpec("coins", position=(20, 16), radius=10),
               ObjectSpec("coffee", position=(-2.4, 8), radius=3),   # cut by the border to a sliver
               ObjectSpec("retina", position=(40, 20), radius=4, velocity=(30, 0)))  # gone at t=1
    spec = ClipSpec(2, (32, 48), bg, objects)
    labels = clip_geometry(spec)["labels"]
    assert not (labels == CLASSES.index("cat")).any()
    assert 0 < (labels[0] == CLASSES.index("coffee")).sum() < 16
    assert not (labels[1] == CLASSES.index("retina")).any()
    boxes, box_labels, frames, tracks = visible_boxes(clip_geometry(spec)["layers"],
                                                      [o.label - 1 for o in objects])
    coins = labels == CLASSES.index("coins")
    retina = labels[0] == CLASSES.index("retina")
    np.testing.assert_array_equal(boxes, [_extent(coins[0]), _extent(retina), _extent(coins[1])])
    assert box_labels.tolist() == [CLASSES.index("coins") - 1, CLASSES.index("retina") - 1,
                                   CLASSES.index("coins") - 1]
    assert frames.tolist() == [0, 0, 1] and tracks.tolist() == [1, 3, 1]


def test_objects_detection_items_match_the_masks(tmp_path):
    params = dict(train_videos=2, test_videos=1, num_frames=4, size=(32, 48))
    generate_objects(tmp_path, progress=False, **params)
    items, problems = objects_detection_items(tmp_path, "train")
    assert problems == [] and [i.video_id for i in items] == ["objects/train/clip_000",
                                                               "objects/train/clip_001"]
    assert OBJECTS_DETECTION_CLASSES == CLASSES[1:]
    for k, item in enumerate(items):
        out = item.load()
        spec = clip_spec(seed=0, split="train", index=k, num_frames=4, size=(32, 48))
        labels = clip_geometry(spec)["labels"]  # classes are distinct within a clip
        want = []
        for t in range(4):
            for j, obj in enumerate(spec.objects):
                mask = labels[t] == obj.label
                if mask.sum() >= detection_sets.MIN_VISIBLE_PIXELS:
                    want.append((t, j, obj.label - 1, _extent(mask)))
        assert out["box_frames"].tolist() == [w[0] for w in want]
        assert out["box_tracks"].tolist() == [w[1] for w in want]
        assert out["box_labels"].tolist() == [w[2] for w in want]
        np.testing.assert_array_equal(out["boxes"], np.array([w[3] for w in want], np.float32))
        assert out["box_frame_index"].tolist() == [0, 1, 2, 3]
        small = item.load(short_side=16)
        np.testing.assert_allclose(small["boxes"], scale_boxes(out["boxes"], (32, 48), (16, 24)))


def test_objects_detection_refuses_other_versions(tmp_path):
    with pytest.raises(ValueError, match="objects.json"):
        objects_detection_items(tmp_path, "train")
    (tmp_path / "objects.json").write_text('{"version": -1}')
    with pytest.raises(ValueError, match="regenerate"):
        objects_detection_items(tmp_path, "train")


def test_prepare_objects_detection(tmp_path):
    options = dict(train_videos=1, test_videos=1, num_frames=3, size=(32, 48))
    summary = prepare("objects_detection", tmp_path / "out", objects_options=options, progress=False,
                      log=None)
    assert summary["classes"] == list(OBJECTS_DETECTION_CLASSES) and summary["skipped"] == []
    (video,) = read_videos(tmp_path / "out", "test", detection=True)
    items, _ = objects_detection_items(tmp_path / "out" / "videos", "test")
    want = items[0].load()
    assert video["video_id"] == "objects/test/clip_000"
    for key in ("boxes", "box_labels", "box_frames", "box_tracks", "box_frame_index"):
        np.testing.assert_array_equal(video[key], want[key])
    with pytest.raises(ValueError, match="image_sets only applies to imagenet_vid"):
        prepare("objects_detection", tmp_path / "out", objects_options=options,
                image_sets={"train": "x.txt"}, progress=False, log=None)


def test_prepare_imagenet_vid_image_set_cli(tmp_path):
    from tfvideo.data.prepare import check_reusable, main
    from tfvideo.data.shards import read_manifest

    _vid_tree(tmp_path / "vid")
    (tmp_path / "vid" / "ImageSets").mkdir()
    (tmp_path / "vid" / "ImageSets" / "train_30.txt").write_text(f"{TRAIN_B} 1\n")
    out = tmp_path / "out"
    assert main(["imagenet_vid", "--data-dir", str(tmp_path / "vid"), "--out", str(out), "--quiet",
                 "--workers", "1", "--image-set", "train=train_30.txt"]) == 0
    manifest = read_manifest(out)
    assert manifest["splits"]["train"]["num_videos"] == 1
    assert manifest["splits"]["train"]["settings"]["image_sets"] == {"train": "train_30.txt"}
    with pytest.raises(ValueError, match="image_sets"):
        check_reusable("imagenet_vid", out, tmp_path / "vid")  # made with another image set
    assert main(["imagenet_vid", "--data-dir", str(tmp_path / "vid"), "--out", str(out),
                 "--image-set", "train"]) == 2
