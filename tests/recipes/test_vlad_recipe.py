"""``recipes.vlad_retrieval``: the built-in benchmark end to end (codebooks, per-layer table, PCA, export whose
descriptors are the ones ranked), a fake Holidays tree with an unreadable file, and the argument checks."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from recipes import vlad_retrieval as recipe
from tfvideo.data.photos import photo

ARGS = ["--size", "32", "--layers", "block2_conv1", "block3_conv1", "--k", "4", "--kmeans-images", "8",
        "--pca", "16", "--quiet"]


@pytest.mark.slow  # ~40 s
def test_builtin_table_and_export(tmp_path):
    out = recipe.main(ARGS + ["--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "sm" / "vlad")])
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert set(summary["results"]) == {"block2_conv1", "block3_conv1"}
    assert all(0 < v <= 1 for row in summary["results"].values() for v in row.values())
    assert set(summary["results"]["block2_conv1"]) == {"s1", "s2", "multi"} and 0 < summary["pca"] <= 1
    table = open(tmp_path / "run" / "table.txt").read()
    assert "scales 1+2" in table and "PCA-whitened 16-D" in table and "<- best" in table
    # the exported model gives the descriptors the recipe ranked: every query's own ranking recomputed
    served = tf.saved_model.load(out["export"]).signatures["serving_default"]
    ds = out["dataset"]
    db = np.concatenate([served(images=tf.constant(ds.load_image(i)[None]))["descriptor"].numpy()
                         for i in range(ds.num_images)])
    q = np.concatenate([served(images=tf.constant(ds.load_query(i)[None]))["descriptor"].numpy()
                        for i in range(ds.num_queries)])
    from tfvideo.retrieval import mean_average_precision

    ranks = np.argsort(((q[:, None] - db[None]) ** 2).sum(-1), axis=1, kind="stable")
    m, _ = mean_average_precision(ranks, ds.positives, ds.junk)
    assert m == pytest.approx(summary["results"][summary["best_layer"]]["multi"], abs=0.02)


def _holidays(root):
    """Two groups of crops of two photographs, and a file that is not an image."""
    os.makedirs(root / "jpg")
    for g, name in enumerate(("astronaut", "coffee")):
        img = photo(name).astype(np.uint8)
        for i, (y, x) in enumerate(((0, 0), (60, 40), (120, 90))):
            crop = img[y:y + 300, x:x + 300]
            cv2.imwrite(str(root / "jpg" / f"10{g:02d}{i:02d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    (root / "jpg" / "100003.jpg").write_bytes(b"not a jpeg")
    return root


def test_holidays_layout_skips_unreadable_files_and_prints_the_thesis(tmp_path, capsys):
    out = recipe.main(["--dataset", "holidays", "--data-dir", str(_holidays(tmp_path / "h")), "--weights", "none",
                       *ARGS, "--pca", "0", "--no-export", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err + capsys.readouterr().out
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert [os.path.basename(p) for p in summary["skipped"]] == ["100003.jpg"]
    assert out["dataset"].num_images == 6 and out["dataset"].num_queries == 2
    assert "83.8 uncompressed (Table 2.2)" in open(tmp_path / "run" / "table.txt").read()
    del err


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "holidays"], "needs --data-dir"),
    (["--data-dir", "{tmp}"], "needs --dataset"),
    (["--layers", "block9_conv1"], "not in vgg16"),
    (["--weights", "{tmp}/none.h5"], "--weights"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        recipe.main([a.format(tmp=tmp_path) for a in argv] + ["--run-dir", str(tmp_path / "run")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
