"""``python -m recipes.tvnet_middlebury --table 1``: the TVNet paper's Table 1 (seed 002, Sec. 5.1).

Fast tests check the paper's figures against the seed text, the argument parsing and the table's
printing; the table builder itself trains TVNets (several seconds each) and is marked slow.
"""

import json
import os

import numpy as np
import pytest

from recipes import tvnet_middlebury as mb

# Table 1 copied verbatim (tabs and markup included) from the TVNet paper's seed text,
# shared/seeds/002_e11203b9a64c6949.txt (Fan et al., CVPR 2018), lines 187-195 (after its caption at line
# 185). The expected figures below come from this text, not from the recipe's PAPER_TABLE1.
SEED_TABLE1 = """\
Methods	No training	Training $oldsymbol{u}^0$	All Training
TVNet-10	3.47	2.92	1.24
TVNet-30	3.01	2.04	0.40
TVNet-3-1-10	2.00	0.82	0.52
TVNet-1-3-10	2.81	2.17	0.46
TVNet-50	2.93	1.58	0.35
TV-L1-10	3.48	TV-L1-3-1-10	1.79
TV-L1-30	3.02	TV-L1-1-3-10	2.74
TV-L1-50	2.86	TV-L1-5-5-50	0.66
"""


def parse_seed_table1(text):
    """``({TVNet name: (none, u0, all)}, {TV-L1 name: EPE})`` from the seed's Table 1 text (the TV-L1 rows
    hold two name / figure pairs each)."""
    header, *rows = text.strip("\n").split("\n")
    assert header.split("\t")[0] == "Methods" and len(header.split("\t")) == 4, header
    tvnet, tvl1 = {}, {}
    for row in rows:
        cells = row.split("\t")
        assert len(cells) == 4, row
        if cells[0].startswith("TVNet"):
            tvnet[cells[0]] = tuple(float(c) for c in cells[1:])
        else:
            tvl1[cells[0]], tvl1[cells[2]] = float(cells[1]), float(cells[3])
    return tvnet, tvl1


def paper_name(prefix, key):
    """The paper's name of a configuration ``S-W-N`` written here independently of the recipe:
    ``TVNet-N`` when S = W = 1 (Sec. 5: "TVNet-N_iters for short"), ``TVNet-S-W-N`` otherwise."""
    s, w, n = key.split("-")
    return f"{prefix}-{n}" if s == w == "1" else f"{prefix}-{key}"


def numpy_epe(flow, gt, valid):
    """Eq. 14 over the valid pixels, in NumPy."""
    err = np.sqrt(np.sum((np.asarray(flow, np.float64) - np.nan_to_num(gt)) ** 2, axis=-1))
    return float(err[valid > 0].mean())


def test_paper_table1_is_the_papers_table():
    tvnet, tvl1 = parse_seed_table1(SEED_TABLE1)
    assert len(tvnet) == 5 and len(tvl1) == 6 and tvnet["TVNet-50"] == (2.93, 1.58, 0.35)
    assert tvl1["TV-L1-5-5-50"] == 0.66
    assert {paper_name("TVNet", k): tuple(v) for k, v in mb.PAPER_TABLE1["tvnet"].items()} == tvnet
    assert {paper_name("TV-L1", k): v for k, v in mb.PAPER_TABLE1["tvl1"].items()} == tvl1
    assert [mb.config_key(c) for c in mb.TABLE1_CONFIGS] == list(mb.PAPER_TABLE1["tvnet"])


@pytest.mark.parametrize("flags, message", [
    (["--table", "1", "--configs", "1-1"], "argument --configs: expected S-W-N"),
    (["--table", "1", "--configs", "1-0-10"], "argument --configs: expected S-W-N"),
    (["--table", "1", "--modes", "none,some"], "argument --modes: expected a comma list of none, u0, all"),
    (["--table", "2"], "argument --table: invalid choice: 2"),
    (["--configs", "1-1-10"], "--configs goes with --table 1"),
    (["--modes", "u0"], "--modes goes with --table 1"),
    (["--table", "1", "--optimizer", "rmsprop"], "argument --optimizer: invalid choice"),
])
def test_bad_table_arguments_exit_2_before_writing_anything(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        mb.main(flags + ["--run-dir", str(tmp_path / "run"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_configs_and_modes_parse():
    args = mb.build_parser().parse_args(["--table", "1", "--configs", "1-1-10, 3-1-10,1-1-10",
                                         "--modes", "all,none"])
    assert args.configs == ((1, 1, 10), (3, 1, 10)) and args.modes == ("none", "all")  # the table's order


def test_u0_is_a_field_at_the_coarsest_level_of_the_largest_pair():
    # Middlebury's two sizes; pyramid level s of an n-pixel side is floor(n / 2**s)
    assert mb.u0_field_size([(388, 584), (480, 640)], 1) == (480, 640)
    assert mb.u0_field_size([(388, 584), (480, 640)], 3) == (120, 160)
    assert mb.u0_field_size([(40, 30), (32, 48)], 2) == (16, 24)  # largest by area: 32x48


def test_mean_epe_over_pairs_of_two_sizes_is_the_mean_of_each_pairs_epe():
    from tfvideo.layers import TVNet

    rng = np.random.default_rng(0)
    pairs = []
    for h, w in ((16, 24), (20, 16), (16, 24)):
        f0, f1 = (rng.uniform(0, 255, (h, w, 3)) for _ in range(2))
        gt = rng.normal(0, 1, (h, w, 2))
        valid = rng.uniform(size=(h, w)) > 0.3
        gt[~valid] = np.nan  # unknown ground truth must not count
        pairs.append((f0, f1, gt, valid, "x"))
    tvnet = TVNet(iterations=2)
    tvnet.trainable = False
    expected = np.mean([numpy_epe(tvnet([p[0][None].astype("float32"), p[1][None].astype("float32")])[0],
                                  p[2], p[3]) for p in pairs])
    assert mb.mean_epe(tvnet, pairs) == pytest.approx(expected, rel=1e-5)


def synthetic_table(held_out):
    """A table in run_table's format with made-up 'ours' figures (the printing is under test)."""
    row = {"train": 0.123, "held_out": 0.456 if held_out else None}
    return {"data": "test pairs", "training_pairs": 2, "held_out_pairs": 2 if held_out else 0,
            "steps": 3, "optimizer": "sgd", "lr": 0.05, "micro_batches_per_step": 1, "modes": list(mb.MODES),
            "tvnet": {k: {"name": paper_name("TVNet", k), "paper": v, **{m: row for m in mb.MODES}}
                      for k, v in mb.PAPER_TABLE1["tvnet"].items()} | {
                "2-2-2": {"name": "TVNet-2-2-2", "paper": None, **{m: row for m in mb.MODES}}},
            "tvl1": {k: {"name": paper_name("TV-L1", k), "paper": v, "opencv": row, "tvnet_bicubic": row}
                     for k, v in mb.PAPER_TABLE1["tvl1"].items()}}


@pytest.mark.parametrize("markdown", [False, True])
def test_the_printed_table_holds_the_papers_figures_labelled(markdown):
    tvnet, tvl1 = parse_seed_table1(SEED_TABLE1)
    lines = mb.table_lines(synthetic_table(held_out=True), markdown=markdown)
    text = "\n".join(lines)
    assert "paper: Middlebury, 8 training pairs, 3000 steps" in text and "ours: test pairs" in text
    for name, figures in tvnet.items():
        line = next(l for l in lines if f" {name} " in l)
        cells = line.replace("|", " ").split()
        assert cells[-3:] == [f"{f:.2f}" for f in figures], line  # the paper's three columns, in order
        assert "0.12 [0.46]" in line  # ours: training pairs [held out]
    for name, figure in tvl1.items():
        line = next(l for l in lines if f" {name} " in l)
        assert line.replace("|", " ").split()[-1] == f"{figure:.2f}", line
    line = next(l for l in lines if " TVNet-2-2-2 " in l)  # a configuration the paper does not have
    assert line.replace("|", " ").split()[-3:] == ["-", "-", "-"]
    plain = mb.table_lines(synthetic_table(held_out=False), markdown=markdown)
    assert "[" not in "\n".join(plain[3:])  # no held-out column without held-out pairs


# ------------------------------------------------------------------------------ end to end (slow)
def frozen_epe(config, pairs, interpolation="bilinear"):
    """A frozen TVNet S-W-N (exact TV-L1, u0 = 0) built here, its mean EPE over ``pairs`` in NumPy."""
    from tfvideo.layers import TVNet

    layer = TVNet(*config, interpolation=interpolation)
    layer.trainable = False
    return float(np.mean([numpy_epe(layer([p[0][None].astype("float32"), p[1][None].astype("float32")])[0],
                                    p[2], p[3]) for p in pairs]))


@pytest.mark.slow
def test_table_on_builtin_pairs_no_training_is_tvl1_u0_keeps_the_kernels_all_changes_them(tmp_path, capsys):
    import cv2

    configs = ((1, 1, 4), (2, 1, 3))
    out = mb.main(["--table", "1", "--configs", "1-1-4,2-1-3", "--steps", "3", "--pairs", "2", "--size",
                   "24x32", "--run-dir", str(tmp_path / "run"), "--quiet"])
    table, layers = out["table"], out["layers"]
    assert table["optimizer"] == "adam" and table["steps"] == 3
    train_pairs = mb.builtin_pairs(2, (24, 32), 0, 0)
    held_out = mb.builtin_pairs(2, (24, 32), 0, 1000)
    assert list(table["tvnet"]) == ["1-1-4", "2-1-3"] and list(table["tvl1"]) == ["1-1-4", "2-1-3", "5-5-50"]
    for config in configs:
        row = table["tvnet"][mb.config_key(config)]
        assert set(mb.MODES) <= set(row) and row["paper"] is None
        # "No training" = a frozen TVNet (exact TV-L1, u0 = 0) computed here independently
        assert row["none"]["train"] == pytest.approx(frozen_epe(config, train_pairs), rel=1e-4)
        assert row["none"]["held_out"] == pytest.approx(frozen_epe(config, held_out), rel=1e-4)
        # "Training u0": the kernels stay exactly at the paper's initial taps (-1, 1); u0 moved
        u0_layer, all_layer = layers[(config, "u0")], layers[(config, "all")]
        for kernels in (u0_layer.forward_kernels, u0_layer.divergence_kernels):
            assert np.array_equal(kernels.numpy()[..., 0], -np.ones(kernels.shape[:-1]))
            assert np.array_equal(kernels.numpy()[..., 1], np.ones(kernels.shape[:-1]))
        assert np.abs(u0_layer.u0.numpy()).max() > 1e-4
        # "All training": the kernels changed, and u0 too
        assert np.abs(all_layer.forward_kernels.numpy() - u0_layer.forward_kernels.numpy()).max() > 1e-4
        assert np.abs(all_layer.divergence_kernels.numpy() - u0_layer.divergence_kernels.numpy()).max() > 1e-4
        assert np.abs(all_layer.u0.numpy()).max() > 1e-4
        assert tuple(u0_layer.u0.shape) == (24 // 2 ** (config[0] - 1), 32 // 2 ** (config[0] - 1), 2)
        assert row["u0"]["train"] < row["none"]["train"] and row["all"]["train"] < row["none"]["train"]
    # the TV-L1 columns: OpenCV's DualTVL1 set to S-W-N here, and a frozen bicubic TVNet
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    for setter, value in (("setScalesNumber", 2), ("setWarpingsNumber", 1), ("setInnerIterations", 3),
                          ("setOuterIterations", 1), ("setScaleStep", 0.5), ("setEpsilon", 0.0),
                          ("setMedianFiltering", 1)):
        getattr(solver, setter)(value)
    grey = [[cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in p[:2]] for p in train_pairs]
    expected = np.mean([numpy_epe(solver.calc(g0, g1, None), p[2], p[3]) for (g0, g1), p in zip(grey, train_pairs)])
    assert table["tvl1"]["2-1-3"]["opencv"]["train"] == pytest.approx(expected, rel=1e-4)
    assert table["tvl1"]["2-1-3"]["tvnet_bicubic"]["train"] == pytest.approx(
        frozen_epe((2, 1, 3), train_pairs, "bicubic"), rel=1e-4)
    assert table["tvl1"]["5-5-50"]["paper"] == 0.66
    printed = capsys.readouterr().out
    assert "no training: u0 = 0 (exact TV-L1" in printed and "training u0: one trainable u0 field" in printed
    assert "paper: Middlebury, 8 training pairs, 3000 steps" in printed and "TV-L1-5-5-50" in printed
    saved = json.load(open(tmp_path / "run" / "eval" / "table1.json"))
    assert saved["tvnet"]["1-1-4"]["all"]["train"] == pytest.approx(table["tvnet"]["1-1-4"]["all"]["train"])
    assert "| TVNet-4 |" in open(tmp_path / "run" / "eval" / "table1.md").read()
    for config in configs:  # every trained row is a harness run
        for mode in ("u0", "all"):
            lines = open(tmp_path / "run" / "rows" / f"{mb.config_key(config)}_{mode}" / "metrics.jsonl").read()
            assert '"step": 3' in lines


@pytest.mark.slow
def test_table_on_a_middlebury_tree_of_two_sizes_trains_one_u0_field(tmp_path, capsys):
    """Two scenes of different sizes in Middlebury's layout; the table trains on both (micro-batches with
    gradient accumulation) with one u0 field at the coarsest level of the larger pair."""
    import cv2

    from tfvideo.data.flo import write_flo

    rng = np.random.default_rng(3)
    for scene, (h, w) in (("Alpha", (24, 32)), ("Beta", (32, 40))):
        base = cv2.GaussianBlur(rng.uniform(0, 255, (h + 8, w + 8)).astype(np.float32), (0, 0), 2)
        frame0, frame1 = base[4:4 + h, 4:4 + w], base[4:4 + h, 3:3 + w]  # content moves right by 1 px
        os.makedirs(tmp_path / "mb" / "other-data" / scene)
        for name, frame in (("frame10", frame0), ("frame11", frame1)):
            cv2.imwrite(str(tmp_path / "mb" / "other-data" / scene / f"{name}.png"),
                        np.clip(frame, 0, 255).astype(np.uint8))
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 0] = 1.0
        write_flo(str(tmp_path / "mb" / "other-gt-flow" / scene / "flow10.flo"), flow)
    flags = ["--table", "1", "--data-dir", str(tmp_path / "mb"), "--configs", "2-1-3", "--modes", "none,u0",
             "--steps", "2", "--optimizer", "adam", "--run-dir", str(tmp_path / "run"), "--quiet"]
    out = mb.main(flags)
    table = out["table"]
    assert table["training_pairs"] == 2 and table["held_out_pairs"] == 0  # the paper: train = test pairs
    assert table["micro_batches_per_step"] == 2 and sorted(map(tuple, table["sizes"])) == [(24, 32), (32, 40)]
    layer = out["layers"][((2, 1, 3), "u0")]
    assert tuple(layer.u0.shape) == (16, 20, 2)  # a field: the coarsest level (1/2) of the 32x40 pair
    assert np.abs(layer.u0.numpy()).max() > 1e-4 and len(np.unique(layer.u0.numpy()[..., 0])) > 1
    row = table["tvnet"]["2-1-3"]
    assert row["none"]["held_out"] is None and row["u0"]["u0_size"] == [16, 20]
    assert row["none"]["train"] < 0.8  # TV-L1 recovers most of the 1 px shift
    printed = capsys.readouterr().out
    assert "Middlebury" in printed and "resized with its vectors scaled to each pair's coarsest level" in printed
    assert "1 micro-batches" not in printed and "(2 micro-batches each)" in printed
    # --resume keeps the finished rows: read back, not trained again
    again = mb.main(flags + ["--resume"])
    assert again["table"]["tvnet"]["2-1-3"]["u0"] == row["u0"] and ((2, 1, 3), "u0") not in again["layers"]
    assert "training u0   read back from" in capsys.readouterr().out
