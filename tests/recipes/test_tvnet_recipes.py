"""The TVNet recipes end to end on tiny built-in data (the same code path as the real datasets)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recipes import tvnet_common, tvnet_hmdb, tvnet_middlebury

TINY = ["--videos-per-class", "2", "--steps", "2", "--steps-per-epoch", "1", "--size", "24",
        "--iterations", "3", "--eval-segments", "2", "--quiet"]


@pytest.mark.slow  # the whole recipe end to end: 20 s (the default suite must stay under 10 min)
def test_hmdb_recipe_on_tiny_builtin_data_exports_what_it_trained(tmp_path, capsys):
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
    # the flow signature takes any frame size (TVNet does): same flow as the trained layer
    big = np.random.default_rng(5).integers(0, 256, (2, 2, 40, 56, 3), dtype=np.uint8)
    served = loaded.signatures["flow"](frame0=tf.constant(big[0]), frame1=tf.constant(big[1]))["flow"]
    tvnet = out["model"].get_layer("temporal").get_layer("flow_stack").tvnet
    np.testing.assert_allclose(served.numpy(), tvnet([big[0].astype("float32"), big[1].astype("float32")]),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(SystemExit) as exit_info:  # a used run dir is not silently reused
        tvnet_hmdb.main(TINY + ["--data-out", str(tmp_path / "data"), "--run-dir", str(run)])
    assert exit_info.value.code == 2 and "pass --resume" in capsys.readouterr().err


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


def test_options_change_the_resolved_configuration():
    """Each flag reaches the run's configuration (not just --help)."""
    parser = tvnet_common.build_parser("hmdb51", "")
    base = tvnet_common.resolve(parser.parse_args([]), "hmdb51")
    changes = {("--steps", "28", "--steps-per-epoch", "7"): {"steps": 28, "steps_per_epoch": 7, "epochs": 4},
               ("--epochs", "3", "--steps-per-epoch", "5"): {"steps": 15, "epochs": 3},
               ("--batch-size", "4",): {"batch_size": 4}, ("--lr", "0.5",): {"lr": 0.5},
               ("--size", "32",): {"size": 32}, ("--backbone", "resnet50"): {"backbone": "resnet50"},
               ("--iterations", "7",): {"iterations": 7}, ("--no-flow-loss",): {"flow_loss_weight": 0.0},
               ("--freeze-tvnet",): {"train_tvnet": False}, ("--segments", "2"): {"segments": 2},
               ("--eval-segments", "3", "--eval-crops", "5", "--eval-flips"):
                   {"eval_segments": 3, "eval_crops": 5, "eval_flips": True},
               ("--videos-per-class", "5"): {"videos_per_class": 5}, ("--split", "2"): {"split": 2},
               ("--seed", "4"): {"seed": 4}, ("--dry-run",): {"steps": 1, "steps_per_epoch": 1},
               ("--profile", "paper"): {"batch_size": 128, "size": 224}}
    for flags, want in changes.items():
        cfg = tvnet_common.resolve(parser.parse_args(list(flags)), "hmdb51")
        assert {k: cfg[k] for k in want} == want, flags
        assert any(base[k] != v for k, v in want.items()), flags  # the flag really changed something
    mb = tvnet_middlebury.build_parser()
    assert mb.parse_args(["--size", "40x56"]).size == (40, 56)  # height first
    assert mb.parse_args(["--size", "48"]).size == (48, 48)


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got '0'"),
    (["--size", "8"], "argument --size: expected an integer >= 16, got '8'"),
    (["--steps", "-3"], "argument --steps: expected an integer >= 1"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0"),
    (["--data-dir", "{tmp}/empty"], "the folder is empty"),
    (["--data-dir", "{tmp}/a_file"], "not a folder"),
    (["--devices", "/cpu:0"], "--devices goes with --strategy mirrored or onedevice"),
    (["--export", "{tmp}/out/.hidden"], "--export's last part must be"),
    (["--resume"], "holds no run to resume"),
])
def test_bad_arguments_exit_2_before_writing_anything(tmp_path, capsys, flags, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    flags = [f.format(tmp=tmp_path) for f in flags]
    with pytest.raises(SystemExit) as exit_info:
        tvnet_hmdb.main(flags + ["--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "data"),
                                 "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no shards


def test_a_shard_folder_belongs_to_one_builtin_set_size(tmp_path, capsys):
    """Preparing the built-in set with another size into the same folder is refused, in both directions,
    before anything is generated."""
    from tfvideo.data.prepare import prepare

    prepare("motion", tmp_path / "data", progress=False, log=None, motion_options={"videos_per_class": 3})
    manifest = (tmp_path / "data" / "manifest.json").read_text()
    for other in ("2", "4"):
        with pytest.raises(SystemExit) as exit_info:
            tvnet_hmdb.main(["--videos-per-class", other, "--data-out", str(tmp_path / "data"),
                             "--run-dir", str(tmp_path / f"run{other}"), "--quiet"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"videos_per_class': 3" in err and f"videos_per_class': {other}" in err, err
        assert "--data-out" in err and not (tmp_path / f"run{other}").exists()
    assert (tmp_path / "data" / "manifest.json").read_text() == manifest  # untouched


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


@pytest.mark.slow  # end to end on a fake HMDB51 tree: 26 s (the default suite must stay under 10 min)
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
    # the paper's figure of the table the run reproduces (Table 4, two-stream), named, on real data
    assert "reproducing Table 4" in printed and "two-stream 71.0% (Table 4" in printed
    assert "(Table 3)" not in printed
    assert out["config"]["dataset"] == "hmdb51" and out["results"]["temporal"]["num_videos"] == 2


@pytest.mark.parametrize("dataset,flips", [("motion", False), ("hmdb51", True)])
def test_training_flips_only_where_a_flip_keeps_the_label(monkeypatch, dataset, flips):
    """The built-in motion set's classes are directions (a flip turns pan_left into pan_right, rotate_cw
    into rotate_ccw): no training flips there; HMDB51 and UCF101 keep TSN's flips."""
    from tfvideo.data import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "segment_dataset", lambda *a, **k: seen.setdefault(k["split"] if "split" in k
                                                                                      else a[1], k))
    cfg = {**tvnet_common.PROFILES["cpu"], "dataset": dataset, "seed": 0}
    tvnet_common.datasets("shards", cfg)
    assert seen["train"].get("flip", True) is flips
