"""The TVNet action recipe: --split all (3-split means, Table 4's protocol), --weights (ImageNet by default in
the paper profile, clear errors without network) and --preprocess."""

import json
import os

import keras
import numpy as np
import pytest

from recipes import tvnet_common, tvnet_hmdb, tvnet_splits

TINY = ["--videos-per-class", "2", "--steps", "2", "--steps-per-epoch", "1", "--size", "24",
        "--iterations", "3", "--eval-segments", "2", "--quiet"]


def _parse(flags, dataset="hmdb51"):
    return tvnet_common.build_parser(dataset, "").parse_args(flags)


# ------------------------------------------------------------------------------- aggregation ----
def _fake_results(rng):
    return {k: {"top1": float(rng.uniform()), "top5": float(rng.uniform()),
                "mean_class_accuracy": float(rng.uniform()), "num_videos": int(rng.integers(5, 9))}
            for k in ("temporal", "spatial", "two_stream")}


def test_aggregate_splits_is_the_mean_over_the_three_splits():
    rng = np.random.default_rng(0)
    per_split = {s: _fake_results(rng) for s in (1, 2, 3)}
    out = tvnet_splits.aggregate_splits(per_split)
    assert set(out) == {"temporal", "spatial", "two_stream"}
    for stream, entry in out.items():
        for m in ("top1", "top5", "mean_class_accuracy"):
            want = np.mean([per_split[s][stream][m] for s in (1, 2, 3)])
            assert entry["mean"][m] == pytest.approx(want, abs=1e-12)
            assert [entry["splits"][s][m] for s in (1, 2, 3)] == [per_split[s][stream][m] for s in (1, 2, 3)]
        assert entry["mean"]["num_videos"] == sum(per_split[s][stream]["num_videos"] for s in (1, 2, 3))
    del per_split[3]["spatial"]  # a stream missing from one split is left out, not averaged over two
    assert "spatial" not in tvnet_splits.aggregate_splits(per_split)
    with pytest.raises(ValueError, match="at least one split"):
        tvnet_splits.aggregate_splits({})


def test_the_table_puts_the_papers_3_split_mean_beside_ours():
    per_split = {s: {"spatial": {"top1": 0.5, "top5": 1.0, "mean_class_accuracy": 0.5, "num_videos": 4},
                     "temporal": {"top1": 0.25 * s, "top5": 1.0, "mean_class_accuracy": 0.5, "num_videos": 4},
                     "two_stream": {"top1": 0.6 + 0.1 * (s - 2), "top5": 1.0, "mean_class_accuracy": 0.5,
                                    "num_videos": 4}} for s in (1, 2, 3)}
    lines = tvnet_splits.format_splits_table(tvnet_splits.aggregate_splits(per_split), "hmdb51", iterations=50)
    text = "\n".join(lines)
    row = next(l for l in lines if "TVNet-50 stream" in l)
    assert row.split()[-4:] == ["25.0%", "50.0%", "75.0%", "50.0%"]  # splits 1, 2, 3, mean
    fused = lines.index(next(l for l in lines if "two-stream 1:2" in l))
    assert lines[fused].split()[-1] == "60.0%"
    # under the two-stream row: the paper's Table 4 (HMDB51 mean of the 3 splits: 71.0%, TSN 68.5%)
    assert "ours 60.0% | paper TVNet-50 two-stream 71.0% (Table 4), TSN 68.5%" in lines[fused + 1]
    assert "mean of splits 1, 2, 3" in lines[fused + 1]
    assert text.count("paper") == 1  # the single streams of a two-stream run are not Table 4 rows
    assert not any("paper" in l for l in tvnet_splits.format_splits_table(
        tvnet_splits.aggregate_splits(per_split), "motion"))  # no paper figures beside the built-in set


# ------------------------------------------------------------------------ argument handling ----
def test_split_argument_and_per_split_arguments(tmp_path):
    assert _parse([]).split == 1 and _parse(["--split", "3"]).split == 3
    assert _parse(["--split", "all"]).split == "all" and _parse(["--split", "ALL"]).split == "all"
    args = _parse(["--split", "all", "--data-out", "d", "--export", "sm/tvnet_hmdb/", "--resume"])
    (tmp_path / "split2").mkdir()
    (tmp_path / "split2" / "config.json").write_text("{}")
    subs = {s: tvnet_splits.split_args(args, s, str(tmp_path)) for s in (1, 2, 3)}
    assert [subs[s].split for s in (1, 2, 3)] == [1, 2, 3] and args.split == "all"  # args untouched
    assert subs[2].run_dir == str(tmp_path / "split2") and subs[3].data_out == os.path.join("d", "split3")
    assert subs[1].export == os.path.join("sm", "tvnet_hmdb_split1")
    assert [subs[s].resume for s in (1, 2, 3)] == [False, True, False]  # only a started split resumes
    # without --data-out every split has its own default shard folder
    for dataset, flags in (("hmdb51", ["--data-dir", "/x"]), ("hmdb51", [])):
        folders = set()
        for s in (1, 2, 3):
            a = _parse(flags + ["--split", str(s)])
            folders.add(tvnet_common.data_source(a, tvnet_common.resolve(a, dataset), dataset)[1])
        assert len(folders) == 3, folders


@pytest.mark.parametrize("value", ["0", "4", "both"])
def test_a_bad_split_exits_2(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--split", value])
    assert exit_info.value.code == 2
    assert f"argument --split: expected 1, 2, 3 or all, got '{value}'" in capsys.readouterr().err


def test_split_all_runs_the_three_splits_in_order_then_writes_their_mean(tmp_path, capsys):
    calls, rng = [], np.random.default_rng(1)
    per_split = {s: _fake_results(rng) for s in (1, 2, 3)}

    def fake_run(parser, args, dataset):
        calls.append((args.split, args.run_dir, args.data_out, args.export, args.resume))
        os.makedirs(os.path.join(args.run_dir, "eval"))
        with open(os.path.join(args.run_dir, "eval", "summary.json"), "w") as f:
            json.dump({"results": per_split[args.split]}, f)
        return {"config": {"iterations": 3}, "results": per_split[args.split]}

    base = tmp_path / "run"
    flags = TINY + ["--split", "all", "--run-dir", str(base), "--data-out", str(tmp_path / "data")]
    parser = tvnet_common.build_parser("hmdb51", "")
    out = tvnet_splits.run_all_splits(parser, parser.parse_args(flags), "hmdb51", fake_run)
    assert [c[0] for c in calls] == [1, 2, 3]
    assert [c[1] for c in calls] == [str(base / f"split{s}") for s in (1, 2, 3)]
    assert [c[2] for c in calls] == [str(tmp_path / "data" / f"split{s}") for s in (1, 2, 3)]
    summary = json.load(open(base / "summary.json"))
    for stream in ("temporal", "spatial", "two_stream"):
        want = np.mean([per_split[s][stream]["top1"] for s in (1, 2, 3)])
        assert summary["results"][stream]["mean"]["top1"] == pytest.approx(want)
        assert out["results"][stream]["mean"]["top1"] == pytest.approx(want)
    printed = capsys.readouterr().out
    assert "split 1  split 2  split 3     mean" in printed and "not HMDB51" in printed
    # --resume: finished splits are read back, not run again
    calls.clear()
    again = tvnet_splits.run_all_splits(parser, parser.parse_args(flags + ["--resume"]), "hmdb51", fake_run)
    assert calls == [] and again["results"]["two_stream"]["mean"] == out["results"]["two_stream"]["mean"]


def test_split_all_checks_every_split_before_the_first_starts(tmp_path, capsys):
    """Split 3's shard folder holds another split's shards: refused before split 1 trains."""
    from tfvideo.data.prepare import prepare

    prepare("motion", tmp_path / "data" / "split3", split=1, progress=False, log=None,
            motion_options={"videos_per_class": 2})
    parser = tvnet_common.build_parser("hmdb51", "")
    args = parser.parse_args(TINY + ["--split", "all", "--run-dir", str(tmp_path / "run"),
                                     "--data-out", str(tmp_path / "data")])
    with pytest.raises(SystemExit) as exit_info:
        tvnet_splits.run_all_splits(parser, args, "hmdb51", lambda *a: pytest.fail("a split started"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--split all, split 3:" in err and "split=1 (now 3)" in err, err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------- --weights ----
def test_weights_default_to_imagenet_in_the_paper_profile_only():
    paper = tvnet_common.resolve(_parse(["--data-dir", "/x"]), "hmdb51")
    assert paper["weights"] == "imagenet" and paper["backbone"] == "inception_v3"
    assert tvnet_common.resolve(_parse(["--data-dir", "/x", "--weights", "none"]), "hmdb51")["weights"] is None
    assert tvnet_common.resolve(_parse(["--data-dir", "/x", "--weights", "w.h5"]), "hmdb51")["weights"] == "w.h5"
    cpu = tvnet_common.resolve(_parse([]), "hmdb51")  # the built-in default run downloads nothing
    assert cpu["weights"] is None and cpu["backbone"] == "small"
    assert tvnet_common.resolve(_parse(["--data-dir", "/x", "--backbone", "small"]), "hmdb51")["weights"] is None
    assert tvnet_common.resolve(_parse(["--preprocess", "official"]), "hmdb51")["preprocess"] == "official"
    assert tvnet_common.resolve(_parse([]), "hmdb51")["preprocess"] == "none"


@pytest.mark.parametrize("flags, message", [
    (["--weights", "{tmp}/missing.weights.h5", "--backbone", "mobilenet_v2"], "no such file"),
    (["--weights", "imagenet"], "the 'small' backbone has no pretrained weights"),
    (["--preprocess", "grey"], "argument --preprocess: invalid choice"),
])
def test_bad_weights_or_preprocess_exit_2_before_writing_anything(tmp_path, capsys, flags, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        tvnet_hmdb.main([f.format(tmp=tmp_path) for f in flags] + [
            "--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "data"), "--quiet"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_no_network_for_imagenet_is_a_clear_error_before_any_data_or_training(tmp_path, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", no_network)
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(SystemExit) as exit_info:
        tvnet_hmdb.main(["--backbone", "mobilenet_v2", "--weights", "imagenet", "--size", "32", "--quiet",
                         "--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "data")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert ("--weights imagenet: Keras could not download the ImageNet weights of mobilenet_v2 (Exception: URL "
            "fetch failure") in err and "pass --weights FILE with a saved .weights.h5" in err
    assert "or --weights none" in err
    assert not (tmp_path / "data").exists()  # before the shards
    assert not (tmp_path / "run" / "temporal").exists()  # and before any training


@pytest.mark.slow  # ~7 s: two MobileNetV2 builds
def test_check_weights_loads_a_weights_file_and_refuses_a_broken_one(tmp_path):
    good = str(tmp_path / "mobilenet.weights.h5")
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                   pooling="avg").save_weights(good)
    lines = []
    cfg = {"weights": good, "backbone": "mobilenet_v2", "size": 32}
    tvnet_common.check_weights(cfg, lines.append)
    assert "mobilenet_v2 initialised from" in lines[0] and good in lines[0]
    bad = tmp_path / "not_weights.weights.h5"
    bad.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match=r"--weights .*not_weights.weights.h5: cannot be loaded into the "
                                         r"mobilenet_v2 backbone"):
        tvnet_common.check_weights({**cfg, "weights": str(bad)}, lines.append)
    tvnet_common.check_weights({**cfg, "weights": None}, pytest.fail)  # nothing to load, nothing logged


# -------------------------------------------------------------------------------- end to end ----
@pytest.mark.slow  # ~5 min on 2 shared cores: three tiny runs
def test_split_all_end_to_end_on_the_builtin_set(tmp_path, capsys):
    out = tvnet_hmdb.main(TINY + ["--split", "all", "--preprocess", "official",
                                  "--data-out", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
                                  "--export", str(tmp_path / "sm" / "tvnet_hmdb")])
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    per_split = [json.load(open(tmp_path / "run" / f"split{s}" / "eval" / "summary.json"))["results"]
                 for s in (1, 2, 3)]
    for stream in ("temporal", "spatial", "two_stream"):
        assert summary["results"][stream]["mean"]["top1"] == pytest.approx(
            np.mean([r[stream]["top1"] for r in per_split]))
    for s in (1, 2, 3):
        config = json.load(open(tmp_path / "run" / f"split{s}" / "config.json"))
        assert config["split"] == s and config["preprocess"] == "official"
        assert (tmp_path / "sm" / f"tvnet_hmdb_split{s}" / "1").is_dir()
        # per-video scores are the mean logits of the views (not probabilities)
        scores = np.load(tmp_path / "run" / f"split{s}" / "eval" / "temporal" / "scores.npz")["scores"]
        assert not np.allclose(scores.sum(-1), 1.0)
    # the three splits' test sets differ (the built-in set's three random 70/30 partitions)
    tests = [set(np.load(tmp_path / "run" / f"split{s}" / "eval" / "temporal" / "scores.npz")["video_ids"])
             for s in (1, 2, 3)]
    assert tests[0] != tests[1] and tests[1] != tests[2]
    assert out["results"]["two_stream"]["mean"]["top1"] == summary["results"]["two_stream"]["mean"]["top1"]
    assert "results over splits 1-3" in capsys.readouterr().out
