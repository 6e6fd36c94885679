"""The TVNet recipes end to end on tiny built-in data (the same code path as the real datasets)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recipes import tvnet_common, tvnet_hmdb, tvnet_middlebury

TINY = ["--videos-per-class", "2", "--steps", "2", "--steps-per-epoch", "1", "--size", "24",
        "--iterations", "3", "--eval-segments", "2", "--quiet"]


def test_hmdb_recipe_on_tiny_builtin_data_exports_what_it_trained(tmp_path):
    out = tvnet_hmdb.main(TINY + ["--data-out", str(tmp_path / "data"), "--run-dir",
                                  str(tmp_path / "run"), "--export",
                                  str(tmp_path / "saved_models" / "tvnet_hmdb")])
    run = tmp_path / "run"
    for stream in ("temporal", "spatial"):
        lines = [json.loads(l) for l in open(run / stream / "metrics.jsonl")]
        assert [l["step"] for l in lines if l["kind"] == "epoch"] == [1, 2]
        assert (run / "eval" / stream / "confusion_matrix.png").exists()
        assert json.load(open(run / stream / "config.json"))["dataset"] == "motion"
    summary = json.load(open(run / "eval" / "summary.json"))
    assert set(summary["results"]) == {"spatial", "temporal", "two_stream"}
    assert summary["results"]["temporal"]["num_videos"] == 8  # 30% of 2 clips x 8 classes
    assert out["export"] == str(tmp_path / "saved_models" / "tvnet_hmdb" / "1")
    assert "tvnet_hmdb" in open(tmp_path / "saved_models" / "models.config").read()
    # the SavedModel answers like the Keras model on the same frames, for batches larger and
    # smaller than the number of stacks (the exported signature knows neither)
    loaded = tf.saved_model.load(out["export"])
    for batch, stacks in ((3, 2), (1, 3)):
        frames = np.random.default_rng(batch).integers(0, 256, (batch, stacks, 6, 24, 24, 3),
                                                       dtype=np.uint8)
        served = loaded.signatures["serving_default"](frames=tf.constant(frames))
        expected = out["model"](frames, training=False).numpy()
        np.testing.assert_allclose(served["logits"].numpy(), expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["model"].predict(frames, verbose=0), expected, rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(served["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
    flow = loaded.signatures["flow"](frame0=tf.constant(frames[:, 0, 0]),
                                     frame1=tf.constant(frames[:, 0, 1]))["flow"]
    assert flow.shape == (len(frames), 24, 24, 2)
    with pytest.raises(SystemExit, match="--resume"):  # a used run dir is not silently reused
        tvnet_hmdb.main(TINY + ["--data-out", str(tmp_path / "data"), "--run-dir", str(run)])


def test_profiles_follow_the_paper():
    parser = tvnet_common.build_parser("hmdb51", "")
    paper = tvnet_common.resolve(parser.parse_args(["--data-dir", "/x"]), "hmdb51")
    assert (paper["steps"], paper["lr_boundaries"], paper["batch_size"], paper["lr"]) == (
        7000, [4000, 6000], 128, 0.005)
    assert paper["iterations"] == 50 and paper["segments"] == 3 and paper["train_tvnet"]
    assert (paper["eval_segments"], paper["eval_crops"], paper["eval_flips"]) == (25, 5, True)
    assert paper["flow_loss_weight"] == 0.1
    ucf = tvnet_common.resolve(tvnet_common.build_parser("ucf101", "").parse_args(
        ["--data-dir", "/x"]), "ucf101")
    assert (ucf["steps"], ucf["lr_boundaries"]) == (18000, [10000, 16000])
    cpu = tvnet_common.resolve(parser.parse_args(["--steps", "70", "--steps-per-epoch", "7",
                                                  "--no-flow-loss", "--freeze-tvnet"]), "hmdb51")
    assert cpu["dataset"] == "motion" and cpu["lr_boundaries"] == [40, 60]  # 4/7 and 6/7
    assert cpu["flow_loss_weight"] == 0.0 and not cpu["train_tvnet"]


def test_every_option_is_documented():
    text = tvnet_common.build_parser("hmdb51", "").format_help()
    for option in ("--data-dir", "--split", "--steps", "--epochs", "--backbone", "--strategy",
                   "--run-dir", "--resume", "--export", "--dry-run", "--no-flow-loss",
                   "--freeze-tvnet"):
        assert option in text
    assert "--data-dir" in tvnet_middlebury.build_parser().format_help()


def test_middlebury_recipe_on_builtin_pairs_lowers_the_training_epe(tmp_path):
    out = tvnet_middlebury.main(["--steps", "3", "--pairs", "2", "--size", "32x40", "--iterations",
                                 "5", "--run-dir", str(tmp_path / "run"), "--export",
                                 str(tmp_path / "saved_models" / "tvnet_flow"), "--quiet"])
    assert out["after"]["train"] < out["before"]["train"]
    assert os.path.exists(os.path.join(out["export"], "saved_model.pb"))
    loaded = tf.saved_model.load(out["export"])
    f = np.random.default_rng(1).integers(0, 256, (1, 32, 40, 3), dtype=np.uint8)
    flow = loaded.signatures["serving_default"](frame0=tf.constant(f), frame1=tf.constant(f))
    expected = out["tvnet"]([f.astype(np.float32), f.astype(np.float32)]).numpy()
    np.testing.assert_allclose(flow["flow"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_middlebury_recipe_reads_a_middlebury_tree(tmp_path):
    """Two scenes in Middlebury's layout with a known integer shift; the recipe reads them, trains
    on one and holds the other out."""
    import cv2

    from tfvideo.data.flo import write_flo

    rng = np.random.default_rng(2)
    for scene in ("Alpha", "Beta"):
        base = cv2.GaussianBlur(rng.uniform(0, 255, (40, 52)).astype(np.float32), (0, 0), 2)
        frame0, frame1 = base[4:36, 4:48], base[4:36, 3:47]  # content moves right by 1 px
        os.makedirs(tmp_path / "other-data" / scene)
        for name, frame in (("frame10", frame0), ("frame11", frame1)):
            cv2.imwrite(str(tmp_path / "other-data" / scene / f"{name}.png"),
                        np.clip(frame, 0, 255).astype(np.uint8))
        flow = np.zeros((32, 44, 2), np.float32)
        flow[..., 0] = 1.0
        write_flo(str(tmp_path / "other-gt-flow" / scene / "flow10.flo"), flow)
    out = tvnet_middlebury.main(["--data-dir", str(tmp_path), "--steps", "2", "--iterations",
                                 "10", "--run-dir", str(tmp_path / "run"), "--export",
                                 str(tmp_path / "sm" / "flow"), "--quiet"])
    assert out["source"].startswith("Middlebury")
    assert out["before"]["train"] < 0.6  # TV-L1 recovers most of the 1 px shift before training
    assert out["opencv_tvl1"]["held_out"] < 0.5


def test_hmdb_recipe_with_data_dir_reads_hmdb51_and_names_the_paper(tmp_path, capsys):
    from tests.data.fakes import hmdb51_tree

    hmdb51_tree(str(tmp_path / "hmdb"), frames=8)
    out = tvnet_hmdb.main(["--data-dir", str(tmp_path / "hmdb"), "--profile", "cpu", "--steps", "1",
                           "--size", "16", "--iterations", "2", "--batch-size", "2",
                           "--eval-segments", "1", "--data-out", str(tmp_path / "data"),
                           "--run-dir", str(tmp_path / "run"), "--export",
                           str(tmp_path / "sm" / "tvnet_hmdb"), "--quiet"])
    printed = capsys.readouterr().out
    assert "data: HMDB51 split 1" in printed and "NOT HMDB51" not in printed
    assert "skipped 2" in printed  # the fake tree's corrupt and empty videos
    assert "paper TVNet-50 57.5% (Table 3)" in printed  # the paper's figure, named, on real data
    assert out["config"]["dataset"] == "hmdb51" and out["results"]["temporal"]["num_videos"] == 2
