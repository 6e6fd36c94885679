import json
import os

import numpy as np
import tensorflow as tf

from tests.data.fakes import hmdb51_tree, ucf101_tree, write_corrupt
from tfvideo.data import schema
from tfvideo.data.prepare import main, prepare
from tfvideo.data.shards import shard_files


def records(out, split):
    found = {}
    for path in shard_files(out, split):
        for r in tf.data.TFRecordDataset(path):
            d = schema.parse_sequence_example(r)
            found[d[schema.VIDEO_ID].numpy().decode()] = (
                int(d[schema.LABEL_INDEX]), schema.decode_frames(d[schema.IMAGE]).numpy())
    return found


def test_hmdb51_cli_writes_exactly_the_good_videos_and_lists_the_bad(tmp_path, capsys):
    expected = hmdb51_tree(str(tmp_path / "src"), frames=6)
    out = str(tmp_path / "out")
    code = main(["hmdb51", "--data-dir", str(tmp_path / "src"), "--out", out, "--shards", "2",
                 "--workers", "1", "--short-side", "12", "--quiet"])
    assert code == 0
    for split in ("train", "test"):
        got = records(out, split)
        assert sorted(got) == sorted(expected[split])
        for video_id, (label, frames) in got.items():
            assert label == (0 if video_id.startswith("jump") else 1)
            assert frames.shape == (6, 12, 16, 3)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    skipped = {os.path.basename(s["path"]): s["reason"] for split in manifest["splits"].values()
               for s in split["skipped"]}
    assert skipped == {"corrupt.avi": "cannot be opened as a video",
                       "empty.avi": "file is empty (0 bytes)"}
    assert manifest["splits"]["train"]["counts_per_class"] == {"jump": 1, "run": 1}
    assert "corrupt.avi: cannot be opened as a video" in capsys.readouterr().out
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_ucf101_python_api(tmp_path):
    expected = ucf101_tree(str(tmp_path / "src"))
    summary = prepare("ucf101", str(tmp_path / "out"), str(tmp_path / "src"), progress=False,
                      log=None)
    assert summary["videos"] == 4 and len(summary["skipped"]) == 2
    assert sorted(records(str(tmp_path / "out"), "test")) == expected["test"]


def test_exit_codes(tmp_path):
    assert main(["hmdb51", "--data-dir", str(tmp_path / "nowhere"), "--quiet"]) == 2
    src = tmp_path / "bad"
    os.makedirs(src / "testTrainMulti_7030_splits")
    write_corrupt(str(src / "a" / "x.avi"))
    (src / "testTrainMulti_7030_splits" / "a_test_split1.txt").write_text("x.avi 1\n")
    assert main(["hmdb51", "--data-dir", str(src), "--out", str(tmp_path / "o"), "--quiet",
                 "--workers", "1"]) == 1
    assert main(["sintel", "--data-dir", str(src), "--fps", "5", "--quiet"]) == 2


def test_motion_is_generated_and_read_through_the_hmdb51_code(tmp_path):
    out = str(tmp_path / "motion")
    summary = prepare("motion", out, progress=False, log=None, workers=1,
                      motion_options=dict(videos_per_class=2, num_frames=5, size=(24, 32)))
    assert summary["classes"] == ["pan_down", "pan_left", "pan_right", "pan_up", "rotate_ccw",
                                  "rotate_cw", "zoom_in", "zoom_out"]
    assert os.path.isdir(os.path.join(out, "videos", "testTrainMulti_7030_splits"))
    got = {**records(out, "train"), **records(out, "test")}
    assert len(got) == 16 and all(f.shape == (5, 24, 32, 3) for _, f in got.values())
    labels = {v: label for v, (label, _) in got.items()}
    assert labels == {v: summary["classes"].index(v.split("/")[0]) for v in got}
    assert np.std([f.mean() for _, f in got.values()]) > 0  # real photographs, not blanks


def test_sintel_shards_feed_dense_flow_clips(tmp_path):
    """Sintel tree -> prepare -> dense_dataset: flows come back as written (float16 precision),
    invalid pixels with weight 0."""
    from tests.data.test_flow_sets import _sintel
    from tfvideo.data import pipeline

    frames, flows, masks = _sintel(str(tmp_path / "src"), np.random.default_rng(0), n=4)
    summary = prepare("sintel", str(tmp_path / "out"), str(tmp_path / "src"), progress=False,
                      log=None)
    assert summary["videos"] == 1
    ds = pipeline.dense_dataset(str(tmp_path / "out"), "train", target="flow", training=False,
                                batch_size=1, num_frames=3, size=frames.shape[1:3], crop="center")
    _, got, weight = next(iter(ds))
    np.testing.assert_array_equal(weight[0].numpy(), ~masks)
    np.testing.assert_allclose(got[0].numpy()[~masks], flows[~masks], rtol=2**-11, atol=1e-6)


def test_cityscapes_shards_feed_frame_pairs(tmp_path):
    from tests.data.test_segmentation_sets import _city_snippet
    from tfvideo.data import pipeline

    label = _city_snippet(str(tmp_path / "src"), "000000", 19, np.random.default_rng(1))
    prepare("cityscapes", str(tmp_path / "out"), str(tmp_path / "src"), progress=False, log=None)
    ds = pipeline.pair_dataset(str(tmp_path / "out"), "train", training=False, batch_size=4,
                               size=label.shape, eval_offsets=(0, 5), crop="center")
    frames, labels, weights = next(iter(ds))
    assert frames.shape == (2, 2, *label.shape, 3)
    # frame k of the fake snippet is RGB (3k, 3k + 1, 3k + 2): key frames 19 and 14, current 19
    np.testing.assert_allclose(frames.numpy()[:, :, 0, 0].mean(-1), [[58, 58], [43, 58]], atol=1)
    np.testing.assert_array_equal(labels[0].numpy(), np.where(label == 255, 0, label))
    np.testing.assert_array_equal(weights[0].numpy(), label != 255)
