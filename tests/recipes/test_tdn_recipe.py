"""``recipes.tdn_hmdb``: end to end on a tiny built-in set (image branch, TDN's two phases, the three
rows, the export answering for any number of snippets) and its configuration."""

import json

import numpy as np
import pytest
import tensorflow as tf

from recipes import tdn_hmdb as recipe


@pytest.mark.slow  # ~1 min
def test_builtin_run_rows_and_export(tmp_path):
    out = recipe.main(["--image-steps", "2", "--phase1-steps", "2", "--phase2-steps", "1", "--steps-per-epoch", "1",
                       "--batch-size", "4", "--videos-per-class", "2", "--quiet", "--data-out", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "tdn")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert set(summary["results"]) == {"image", "tdn", "difference"}
    assert all(0 <= v <= 1 for v in summary["results"].values())
    loaded = tf.saved_model.load(out["export"])
    rng = np.random.default_rng(0)
    for s in (2, 4):  # any number of snippets
        x = rng.integers(0, 256, (1, s, 48, 48, 3), dtype=np.uint8)
        got = loaded.signatures["serving_default"](frames=tf.constant(x))["logits"].numpy()
        np.testing.assert_allclose(got, out["model"](x, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_profiles_follow_the_thesis():
    """Digest 5.2-5.4: ResNet-50 from ImageNet, s = 2 on HMDB51, dropout 0.8, partial BN, SGD momentum 0.9,
    batch 128, taps input..res3 (Table 5.4's best) by default; the thesis's Table 5.1 RGB figures."""
    cfg = recipe.resolve(recipe.build_parser().parse_args(["--data-dir", "/data/hmdb51"]))
    assert (cfg["profile"], cfg["backbone"], cfg["weights"], cfg["segments"]) == ("paper", "resnet50", "imagenet", 2)
    assert cfg["dropout"] == 0.8 and cfg["partial_bn"] and cfg["batch_size"] == 128 and cfg["optimizer"] == "sgd"
    assert cfg["taps"] == ["input", "conv1", "res2", "res3"] and recipe.PAPER == {"image": 51.1, "tdn": 55.5}
    builtin = recipe.resolve(recipe.build_parser().parse_args(["--taps", "input", "res2"]))
    assert builtin["dataset"] == "motion" and builtin["taps"] == ["input", "res2"]


@pytest.mark.parametrize("argv,message", [
    (["--data-dir", "{tmp}/nowhere"], "not a folder"),
    (["--taps", "conv1", "res2"], "must hold 'input'"),
    (["--taps", "input", "res5"], "only names of"),
    (["--dropout", "1.5"], "--dropout"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        recipe.main([a.format(tmp=tmp_path) for a in argv] + ["--run-dir", str(tmp_path / "run")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # ~1 min
def test_hmdb51_layout_runs(tmp_path):
    from tests.data.fakes import hmdb51_tree

    hmdb51_tree(tmp_path / "hmdb51")
    out = recipe.main(["--data-dir", str(tmp_path / "hmdb51"), "--profile", "paper", "--backbone", "small",
                       "--size", "32", "--image-steps", "1", "--phase1-steps", "1", "--phase2-steps", "1",
                       "--steps-per-epoch", "1", "--batch-size", "2", "--quiet", "--data-out", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "tdn")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert summary["config"]["dataset"] == "hmdb51" and summary["classes"] == ["jump", "run"]
    assert summary["config"]["segments"] == 2 and summary["config"]["partial_bn"]
    assert set(out["results"]) == {"image", "tdn", "difference"}
