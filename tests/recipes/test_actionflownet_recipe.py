"""``recipes.actionflownet_ucf101``: end to end on a tiny built-in set (ActionFlowNet and the same network
without the flow loss, the flow EPE and picture, the export without the decoder), its configuration and
its argument checks."""

import json

import numpy as np
import pytest
import tensorflow as tf

from recipes import actionflownet_ucf101 as recipe


@pytest.mark.slow  # ~1 min
def test_builtin_run_rows_flow_and_export(tmp_path):
    out = recipe.main(["--steps", "2", "--steps-per-epoch", "1", "--batch-size", "2", "--frames", "8", "--size", "32",
                       "--videos-per-class", "2", "--ablate-lam", "0.1", "--quiet", "--data-out", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "afn")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert set(summary["results"]) == {"actionflownet", "no_flow_loss", "lam_0.1"}
    assert all(0 <= r["top1"] <= 1 for r in summary["results"].values())
    assert summary["results"]["actionflownet"]["flow_epe"] >= 0 and (tmp_path / "run" / "eval" / "flow.png").is_file()
    # the same initialisation for every network: their first weights were equal (the runs differ by lambda)
    loaded = tf.saved_model.load(out["export"])
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    got = loaded.signatures["serving_default"](frames=tf.constant(x))["logits"].numpy()
    full = out["models"]["actionflownet"](x, training=False)["logits"].numpy()
    np.testing.assert_allclose(got, full, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~1 min
def test_two_frame_model_runs(tmp_path):
    out = recipe.main(["--model", "2f", "--steps", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--size", "32",
                       "--videos-per-class", "2", "--quiet", "--data-out", str(tmp_path / "data"),
                       "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "afn2f")])
    assert out["config"]["frames"] == 2 and set(out["results"]) == {"actionflownet", "no_flow_loss"}


@pytest.mark.slow  # ~1 min
def test_ucf101_layout_with_tvl1_targets_prints_the_thesis(tmp_path, capsys):
    """UCF101's layout: OpenCV TV-L1 flow written into the shards (the EpicFlow stand-in), the paper profile's
    250 views, the thesis's Table 4.1 figure printed beside, labelled."""
    from tests.data.fakes import ucf101_tree

    ucf101_tree(tmp_path / "ucf101", frames=10)
    recipe.main(["--data-dir", str(tmp_path / "ucf101"), "--widths", "8", "16", "32", "64", "--frames", "8",
                 "--size", "32", "--steps", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--quiet",
                 "--data-out", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
                 "--export", str(tmp_path / "saved_models" / "afn")])
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert summary["config"]["dataset"] == "ucf101" and summary["config"]["flow"] == "tvl1"
    assert summary["classes"] == ["ApplyEyeMakeup", "HandstandPushups"]
    manifest = json.load(open(tmp_path / "data" / "manifest.json"))
    assert manifest["splits"]["train"]["settings"]["item_transform"]["name"] == "tvl1"
    printed = capsys.readouterr()
    assert "the thesis (split 1)" in printed.out + printed.err and "83.9" in printed.out + printed.err

def test_profiles_follow_the_thesis():
    """Digest 4.5: Adam lr 1e-4, batch 128, 40,000 iterations, 16 frames at 224, dropout 0.5, 25 clips x 10
    crops; the thesis's Table 4.1 figures; flow targets: TV-L1 on real data, exact on the built-in set."""
    cfg = recipe.resolve(recipe.build_parser().parse_args(["--data-dir", "/data/ucf101"]))
    assert (cfg["profile"], cfg["lr"], cfg["batch_size"], cfg["steps"], cfg["frames"], cfg["size"]) == (
        "paper", 1e-4, 128, 40000, 16, 224)
    assert cfg["dropout"] == 0.5 and cfg["widths"] == [64, 128, 256, 512] and cfg["flow"] == "tvl1"
    assert cfg["eval_clips"] * cfg["eval_crops"] * (2 if cfg["eval_flips"] else 1) == 250
    assert recipe.PAPER[("multi", "ucf101")] == 83.9 and recipe.PAPER[("multi", "hmdb51")] == 56.4
    builtin = recipe.resolve(recipe.build_parser().parse_args([]))
    assert builtin["dataset"] == "motion" and builtin["flow"] == "exact" and builtin["profile"] == "cpu"


@pytest.mark.parametrize("argv,message", [
    (["--data-dir", "{tmp}/nowhere"], "not a folder"),
    (["--frames", "12"], "multiple of 8"),
    (["--size", "48"], "multiple of 32"),
    (["--dropout", "1.5"], "--dropout"),
    (["--init", "{tmp}/none.h5"], "not a file"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        recipe.main([a.format(tmp=tmp_path) for a in argv] + ["--run-dir", str(tmp_path / "run")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_exact_flow_only_on_the_builtin_set(tmp_path, capsys):
    (tmp_path / "ucf").mkdir()
    with pytest.raises(SystemExit):
        recipe.main(["--data-dir", str(tmp_path / "ucf"), "--flow", "exact", "--run-dir", str(tmp_path / "run")])
    assert "only the built-in motion set has exact flow" in capsys.readouterr().err
