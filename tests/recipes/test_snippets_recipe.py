"""``recipes.snippets_ucf101``: end to end on a tiny built-in set (Conv Pooling and LSTM on raw frames and
flow images, fusion rows, the export answering for any clip length) and its configuration."""

import json

import numpy as np
import pytest
import tensorflow as tf

from recipes import snippets_ucf101 as recipe


@pytest.mark.slow  # ~1 min: four trainings of 2 steps and their evaluations
def test_builtin_run_rows_and_export(tmp_path):
    out = recipe.main(["--steps", "2", "--steps-per-epoch", "1", "--batch-size", "4", "--eval-clips", "2",
                       "--videos-per-class", "2", "--quiet", "--data-out", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "snip")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert list(summary["results"]) == ["conv_rgb", "conv_flow", "conv_fusion", "lstm_rgb", "lstm_flow",
                                        "lstm_fusion"]
    for name, r in summary["results"].items():
        assert 0 <= r["hit1"] <= r["hit5"] <= 1, name
    loaded = tf.saved_model.load(out["export"])
    assert set(loaded.signatures) == {"conv_pooling", "lstm", "serving_default"}
    rng = np.random.default_rng(0)
    for t in (3, 9):  # any clip length
        clip = rng.integers(0, 256, (1, t, 48, 48, 3), dtype=np.uint8)
        got = loaded.signatures["lstm"](frames=tf.constant(clip))["probabilities"].numpy()
        np.testing.assert_allclose(got, out["models"]["lstm_rgb"](clip).numpy(), rtol=1e-4, atol=1e-6)


def test_profiles_follow_the_thesis():
    """Digest 3.4, 3.7 and Table 3.6: 30 frames at 6 fps (stride 5), 220 crops of 256, FC 4096, 5 x 512
    LSTM, lr 1e-5 for pooling and N x 1e-5 = 3e-4 for the 30-frame LSTM, momentum 0.9, wd 0.0005."""
    cfg = recipe.resolve(recipe.build_parser().parse_args(["--data-dir", "/data/ucf101"]))
    assert cfg["profile"] == "paper" and cfg["dataset"] == "ucf101"
    assert (cfg["frames"], cfg["stride"], cfg["size"], cfg["short_side"]) == (30, 5, 220, 256)
    assert (cfg["fc_units"], cfg["lstm_layers"], cfg["lstm_units"]) == (4096, 5, 512)
    assert cfg["lr"] == 1e-5 and cfg["lstm_lr"] == pytest.approx(30 * 1e-5) and cfg["optimizer"] == "sgd"
    builtin = recipe.resolve(recipe.build_parser().parse_args(["--no-peepholes", "--streams", "rgb"]))
    assert builtin["dataset"] == "motion" and builtin["peepholes"] is False and builtin["streams"] == ["rgb"]
    assert recipe.flips(cfg) and not recipe.flips(builtin)  # motion's labels are directions


@pytest.mark.parametrize("argv,message", [
    (["--data-dir", "{tmp}/nowhere"], "not a folder"),
    (["--weights", "{tmp}/missing.h5", "--backbone", "mobilenet_v2"], "existing weights file"),
    (["--streams", "depth"], "invalid choice"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        recipe.main([a.format(tmp=tmp_path) for a in argv] + ["--run-dir", str(tmp_path / "run")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # ~1 min
def test_ucf101_layout_runs_and_prints_the_thesis_figures(tmp_path, capsys):
    from tests.data.fakes import ucf101_tree

    ucf101_tree(tmp_path / "ucf101")
    recipe.main(["--data-dir", str(tmp_path / "ucf101"), "--profile", "cpu", "--size", "16", "--frames", "3",
                 "--steps", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--eval-clips", "2",
                 "--models", "conv", "--streams", "rgb", "--data-out", str(tmp_path / "data"),
                 "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "snip")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert summary["config"]["dataset"] == "ucf101" and summary["classes"] == ["ApplyEyeMakeup", "HandstandPushups"]
    printed = capsys.readouterr()
    assert "the thesis (UCF101, 3-fold %)" in printed.out + printed.err  # labelled, on the real layout
