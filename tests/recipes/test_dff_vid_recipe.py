"""``recipes.dff_vid`` end to end: on a tiny built-in ``objects_detection`` set and on a fake ImageNet VID
tree in the official layout (frames that are no multiple of 128: padded for FlowNet, detections in the
stored frames' pixels), its export (the detection signature answers like the trained detector) and its
configuration."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from recipes import dff_vid
from tfvideo.data.detection_sets import VID_WNIDS
from tfvideo.models.dff import speedup

TINY = ["--frame-steps", "2", "--flow-steps", "2", "--steps", "2", "--steps-per-epoch", "1", "--batch-size", "2",
        "--eval-videos", "1", "--key-intervals", "2", "--adaptive-interval", "3", "--quiet"]


def _run(tmp_path, extra=()):
    return dff_vid.main(TINY + list(extra) + [
        "--data-out", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
        "--export", str(tmp_path / "saved_models" / "dff_vid")])


@pytest.mark.slow  # ~2 min: three trainings and six streamed rows
def test_builtin_run_rows_and_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the flow set goes to ./tfrecords
    out = _run(tmp_path, ["--videos", "2", "--size", "128x128"])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    rows = summary["results"]
    assert list(rows) == ["Frame", "DFF, l = 1 (its N on every frame)", "DFF, l = 2", "DFF separate, l = 2",
                          "DFF, adaptive", "DFF, l = 2, no flow (features copied)"]
    for name, r in rows.items():
        assert 0 <= r["map"] <= 1 and r["fps"] > 0, name
    assert rows["Frame"]["key_share"] == 1.0 and rows["DFF, l = 2"]["key_share"] == 0.5
    r = summary["cost"]["r"]
    assert rows["DFF, l = 2"]["eq7"] == pytest.approx(speedup(r, 2))
    # the export: serving_default = Frame; key_features + propagate + task = the trained pair detector
    loaded = tf.saved_model.load(out["export"])
    trained = out["trained"]["dff"]
    rng = np.random.default_rng(0)
    key, current = (rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8) for _ in range(2))
    features = loaded.signatures["key_features"](frames=tf.constant(key))["features"]
    propagated = loaded.signatures["propagate"](frame=tf.constant(current), key_frame=tf.constant(key),
                                                features=features)["features"]
    served = loaded.signatures["task"](features=propagated, frame=tf.constant(current))
    expected = trained(np.stack([key, current], 1), training=False).numpy()[0]
    n = int(served["num_detections"][0])
    assert n == int((expected[:, 5] >= 0).sum())
    np.testing.assert_allclose(served["scores"].numpy()[0, :n], expected[:n, 4], rtol=1e-3, atol=1e-4)
    gif = tf.io.gfile.GFile(out["gif"], "rb").read()
    assert gif[:6] == b"GIF89a"


# --------------------------------------------------------------------------- fake ImageNet VID ----
H, W = 150, 200  # no multiple of 128


def _vid_tree(root):
    """Two train snippets and one val snippet of 12 frames: a bright square (class 7's WordNet id)
    moving right over a gradient, boxed in every frame."""
    yy, xx = np.mgrid[:H, :W]
    snippets = (("train", "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"),
                ("train", "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000001"),
                ("val", "ILSVRC2015_val_00000000"))
    for index, (split, name) in enumerate(snippets):
        for t in range(12):
            frame = np.stack([xx % 256, yy, np.full_like(xx, 40)], -1).astype(np.uint8)
            x1, y1 = 20 + 5 * t + 7 * index, 40
            frame[y1:y1 + 50, x1:x1 + 60] = (230, 210, 50)
            path = f"{root}/Data/VID/{split}/{name}/{t:06d}.JPEG"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            assert cv2.imwrite(path, frame[..., ::-1])
            xml = f"{root}/Annotations/VID/{split}/{name}/{t:06d}.xml"
            os.makedirs(os.path.dirname(xml), exist_ok=True)
            with open(xml, "w") as f:
                f.write(f"<annotation><size><width>{W}</width><height>{H}</height></size><object>"
                        f"<trackid>0</trackid><name>{VID_WNIDS[7]}</name><bndbox><xmax>{x1 + 59}</xmax>"
                        f"<xmin>{x1}</xmin><ymax>{y1 + 49}</ymax><ymin>{y1}</ymin></bndbox><occluded>0"
                        "</occluded><generated>0</generated></object></annotation>")


@pytest.mark.slow  # ~2 min
def test_imagenet_vid_layout_padding_and_stored_pixels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _vid_tree(tmp_path / "ILSVRC2015")
    out = _run(tmp_path, ["--data-dir", str(tmp_path / "ILSVRC2015"), "--profile", "cpu", "--short-side", "150",
                          "--size", "128x128", "--variants", "dff"])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert summary["config"]["dataset"] == "imagenet_vid" and len(summary["classes"]) == 30
    assert set(summary["results"]) >= {"Frame", "DFF, l = 2"}
    # the streamed detections of a 150 x 200 frame lie inside it (padded to 256 x 256 for the networks)
    from tfvideo.data import pipeline

    video = next(pipeline.read_videos(str(tmp_path / "data"), "val", detection=True))
    assert video["frames"].shape[1:3] == (H, W)
    runner = dff_vid.seg.runner_for(out["model"], key_interval=2)
    outputs, keys, _ = dff_vid.stream(runner, video["frames"][:4])
    assert keys.tolist() == [True, False, True, False]
    for boxes, scores, labels in outputs:
        assert boxes.shape[1] == 4 and np.all(boxes[:, [0, 2]] <= W - 1) and np.all(boxes[:, [1, 3]] <= H - 1)
        assert np.all(boxes >= 0) and np.all((labels >= 0) & (labels < 30))


def test_padded_keeps_pixel_coordinates():
    frames = np.arange(2 * 130 * 129 * 3, dtype=np.int64).reshape(2, 130, 129, 3).astype(np.uint8)
    out = dff_vid.padded(frames)
    assert out.shape == (2, 256, 256, 3)
    np.testing.assert_array_equal(out[:, :130, :129], frames)
    assert not out[:, 130:].any() and not out[:, :, 129:].any()
    same = np.zeros((1, 128, 256, 3), np.uint8)
    assert dff_vid.padded(same) is same


def test_paper_profile_follows_the_paper():
    """Sec. 5.1 (ImageNet VID): ResNet-101 + FlowNetS, short side 600, 60K iterations with lr 1e-3 for
    40K then 1e-4, batch 8 (8 GPUs x 1); l = 10 (Sec. 5); Table 4's detection numbers."""
    args = dff_vid.build_parser().parse_args(["--data-dir", "/data/ILSVRC2015"])
    cfg = dff_vid.resolve(args)
    assert (cfg["profile"], cfg["backbone"], cfg["flow"], cfg["weights"]) == ("paper", "resnet101", "s", "imagenet")
    assert cfg["short_side"] == 600 and cfg["batch_size"] == 8 and cfg["key_intervals"] == [10]
    assert cfg["frame_steps"] == cfg["steps"] == 60000 and cfg["lr"] == 1e-3
    opt = dff_vid.optimizer(cfg, cfg["steps"])
    schedule = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    assert float(schedule(39999)) == pytest.approx(1e-3) and float(schedule(40000)) == pytest.approx(1e-4)
    assert dff_vid.PAPER_TABLE4["frame"] == (73.9, 4.05) and dff_vid.PAPER_TABLE4["dff"] == (73.1, 20.25)
    builtin = dff_vid.resolve(dff_vid.build_parser().parse_args([]))
    assert builtin["profile"] == "cpu" and builtin["dataset"] == "objects_detection"


@pytest.mark.parametrize("argv,message", [
    (["--size", "200x256"], "multiples of 128"),
    (["--data-dir", "{tmp}/nowhere"], "not a folder"),
    (["--flownet-weights", "{tmp}/missing.npz"], "no such file"),
    (["--data-dir", "{tmp}", "--short-side", "200", "--size", "256x256"], "must fit"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as info:
        dff_vid.main(argv + ["--run-dir", str(tmp_path / "run")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
