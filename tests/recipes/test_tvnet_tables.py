"""TVNet paper Tables 3 and 4 as settings of the action recipe (recipes/tvnet_tables.py).

References: NumPy transcriptions of TSN's 8-bit flow images (module doc of recipes.tvnet_tables), OpenCV's
DIS flow computed here on the same frames, the paper's Table 3 figures as printed in seed 002 (line 226).
"""

import json
import re

import cv2
import numpy as np
import pytest

from recipes import tvnet_common, tvnet_hmdb, tvnet_tables
from tfvideo.data.items import Item

PAPER_TABLE3 = {  # seed 002, Table 3 (HMDB51 split 1, UCF101 split 1), as printed
    "TV-L1": (56.0, 85.1), "DIS-Fast": (40.4, 71.2), "Deepflow": (50.4, 82.1),
    "TVNet-50 (no training)": (55.6, 83.5), "TVNet-50 (no flow loss)": (56.9, 84.5), "TVNet-50": (57.5, 85.5)}


# ------------------------------------------------------------------------------ quantisation ----
def test_quantisation_round_trip_is_tsns_8_bit_code():
    rng = np.random.default_rng(0)
    v = rng.uniform(-30, 30, (4000, 2)).astype(np.float32)
    q = tvnet_tables.quantise_flow(v)
    # NumPy transcription: 128 + v * 128 / 20 rounded to the nearest level, clipped to 0..255
    ref = np.clip(np.floor(v.astype(np.float64) * 6.4 + 0.5) + 128, 0, 255).astype(np.uint8)
    assert q.dtype == np.uint8 and np.array_equal(q, ref)
    back = tvnet_tables.dequantise_flow(q)
    np.testing.assert_array_equal(back, (ref.astype(np.float64) - 128) * 20 / 128)
    inside = (v >= -20) & (v <= 127 * 20 / 128)
    assert np.abs(back - v)[inside].max() <= 20 / 255
    assert (back[v >= 20] == 127 * 20 / 128).all() and (back[v <= -20] == -20).all()  # clipped
    assert tvnet_tables.quantise_flow(np.zeros(3))[0] == 128 and tvnet_tables.dequantise_flow(
        np.uint8([128]))[0] == 0
    with pytest.raises(TypeError, match="uint8"):
        tvnet_tables.dequantise_flow(np.array([1.0]))


def test_every_8_bit_level_survives_the_float16_flow_schema_exactly():
    import tensorflow as tf

    from tfvideo.data import schema

    levels = tvnet_tables.dequantise_flow(np.arange(256, dtype=np.uint8))
    flow = np.stack([levels, levels[::-1]], -1).reshape(16, 16, 2)
    decoded, valid = schema.decode_flows(tf.constant([schema.encode_flow(flow)]), 16, 16)
    np.testing.assert_array_equal(decoded.numpy()[0], flow)
    assert valid.numpy().all()


# ----------------------------------------------------------------------- stored-flow pipeline ----
class _Clip(Item):
    """Six frames of a smooth texture moving by (1.5, -0.75) px a frame."""

    def load(self, short_side=None, fps=None):
        rng = np.random.default_rng(3)
        base = cv2.GaussianBlur(rng.uniform(0, 255, (48, 56, 3)).astype(np.float32), (0, 0), 2.0)
        frames = []
        for t in range(6):
            m = np.float32([[1, 0, 1.5 * t - 4], [0, 1, -0.75 * t - 4]])
            frames.append(cv2.warpAffine(base, m, (56, 48), flags=cv2.INTER_LINEAR)[8:40, 8:48])
        return {"frames": np.clip(np.stack(frames), 0, 255).astype(np.uint8), "fps": 25.0}


@pytest.mark.slow  # building the tf.data pipeline alone takes 3-7 s on the shared 2 cores
def test_stored_flow_pipeline_gives_opencvs_flow_quantised_and_flips_negate_u(tmp_path):
    from tfvideo.data.shards import write_shards

    item = _Clip(video_id="a/clip", label=0, label_text="a", source="clip")
    write_shards([tvnet_tables.StoredFlow("dis").wrap(item)], str(tmp_path / "flow"), split="test",
                 progress=False)
    ds = tvnet_tables.flow_segment_dataset(str(tmp_path / "flow"), "test", training=False, size=(32, 40),
                                           batch_size=2, num_segments=1, flip_views=True, with_video_id=True)
    inputs, labels = next(iter(ds))
    got = inputs["frames"].numpy()  # (2 views, 1 segment, 5 flows, 32, 40, 2)
    assert got.shape == (2, 1, 5, 32, 40, 2) and labels.numpy().tolist() == [0, 0]
    # OpenCV's DIS (fast preset) on the same frames (grey, BT.601), flow t -> t + 1
    frames = item.load()["frames"]
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    want = np.stack([dis.calc(grey[t], grey[t + 1], None) for t in range(5)])
    assert np.abs(want).max() < 19  # nothing clipped here
    assert np.abs(got[0, 0] - want).max() <= 20 / 255 + 1e-6
    np.testing.assert_allclose(got[0] * 6.4, np.round(got[0] * 6.4), atol=1e-4)  # 8-bit levels
    assert abs(np.median(got[0, 0, ..., 0]) - 1.5) < 0.3  # the motion itself
    flipped = got[0, :, :, :, ::-1] * np.array([-1.0, 1.0], np.float32)  # mirror, u negated
    np.testing.assert_allclose(got[1], flipped, atol=1e-6)


def test_precomputed_stream_interleaves_flows_like_flowstack_at_the_tvnet_streams_scale():
    import keras

    from tfvideo.models import tvnet as tvmodels

    model = tvnet_tables.precomputed_stream(3, size=(16, 16))
    flows = np.random.default_rng(1).normal(size=(2, 3, 5, 16, 16, 2)).astype(np.float32)
    stack = keras.Model(model.input, model.get_layer("flow_stack").output)(flows).numpy()
    # FlowStack's channel order (u_1, v_1, ..., u_5, v_5)
    want = np.concatenate([flows[:, :, i] for i in range(5)], axis=-1)
    np.testing.assert_allclose(stack, want, rtol=1e-6)
    assert model(flows).shape == (2, 3)
    # the factor before the CNN is the TVNet stream's for the same backbone
    tv = tvmodels.temporal_stream(3, size=(16, 16), tvnet={"iterations": 1})
    assert model.get_layer("flow_scale").scale == tv.get_layer("flow_scale").scale


# ------------------------------------------------------------------------------------ settings ----
def test_tables_resolve_to_the_documented_settings():
    parser = tvnet_common.build_parser("hmdb51", "")
    t3 = tvnet_common.resolve(parser.parse_args(["--table", "3"]), "hmdb51")
    assert t3["table"] == 3 and t3["segments"] == 1  # one stack per video (seed 002 line 252, 288)
    assert t3["streams"] == list(tvnet_tables.STREAMS) and "Table 3" in t3["table_title"]
    assert (t3["eval_segments"], t3["iterations"]) == (5, 50)  # the profile's test protocol, TVNet-50
    paper3 = tvnet_common.resolve(parser.parse_args(["--table", "3", "--data-dir", "/x"]), "hmdb51")
    assert (paper3["segments"], paper3["eval_segments"], paper3["eval_crops"], paper3["eval_flips"]) == (
        1, 25, 5, True)
    for flags in ([], ["--table", "4"]):
        t4 = tvnet_common.resolve(parser.parse_args(flags), "hmdb51")
        assert t4["table"] == 4 and t4["segments"] == 3 and t4["streams"] is None
        assert "Table 4" in t4["table_title"] and "1:2" in t4["table_title"]
    assert tvnet_common.resolve(parser.parse_args(["--table", "3", "--segments", "3"]),
                                "hmdb51")["segments"] == 3  # a flag wins
    chosen = tvnet_common.resolve(parser.parse_args(["--table", "3", "--streams", "precomputed-dis,tvl1-3-2-10"]),
                                  "hmdb51")
    assert chosen["streams"] == ["precomputed-dis", "tvl1-3-2-10"]


def test_streams_are_the_papers_rows():
    s = {x.key: x for x in tvnet_tables.parse_streams(",".join(tvnet_tables.STREAMS) + ",tvl1-3-2-10", 50)}
    assert (s["tvnet50"].train_tvnet, s["tvnet50"].flow_loss_weight, s["tvnet50"].tvnet) == (
        True, 0.1, {"iterations": 50})
    assert (s["no-flow-loss"].train_tvnet, s["no-flow-loss"].flow_loss_weight) == (True, 0.0)
    assert not s["no-training"].train_tvnet and s["no-training"].tvnet == {"iterations": 50}
    assert s["tvl1-3-2-10"].tvnet == {"scales": 3, "warps": 2, "iterations": 10, "interpolation": "bicubic"}
    assert not s["tvl1-5-5-50"].train_tvnet
    assert {k: v.paper_row for k, v in s.items()} == {
        "tvnet50": "TVNet-50", "no-flow-loss": "TVNet-50 (no flow loss)", "no-training": "TVNet-50 (no training)",
        "tvl1-5-5-50": "TV-L1", "tvl1-3-2-10": "TV-L1", "precomputed-tvl1": "TV-L1",
        "precomputed-dis": "DIS-Fast", "precomputed-deepflow": "Deepflow"}
    assert s["precomputed-dis"].kind == "precomputed" and s["precomputed-dis"].method == "dis"
    for bad in ("flownet2", "tvl1-5-5", "precomputed-brox", "tvnet50,tvnet50", ""):
        with pytest.raises(ValueError):
            tvnet_tables.parse_streams(bad)


def test_coarse_level_warnings_name_the_tv_l1_rows_whose_pyramid_ends_below_12_px():
    streams = tvnet_tables.parse_streams("tvnet50,tvl1-5-5-50,tvl1-3-5-50,precomputed-dis")
    lines = tvnet_tables.coarse_level_warnings(streams, 48)    # 48 -> 24 -> 12 -> 6 -> 3
    assert len(lines) == 1 and "[tvl1-5-5-50]" in lines[0] and "3x3 px" in lines[0] and "tvl1-3-5-50" in lines[0]
    assert tvnet_tables.coarse_level_warnings(streams, 224) == []   # 224 -> ... -> 14 at 5 scales


def test_the_stored_flow_settings_name_the_method():
    a, b = tvnet_tables.StoredFlow("tvl1").settings(), tvnet_tables.StoredFlow("dis").settings()
    assert a != b and "PRESET_FAST" in b["method"] and "uint8" in b["quantisation"]
    with pytest.raises(ValueError, match="method must be one of"):
        tvnet_tables.StoredFlow("brox")


@pytest.mark.parametrize("flags, message", [
    (["--streams", "tvnet50"], "--streams goes with --table 3"),
    (["--table", "3", "--no-flow-loss"], "with --table 3 choose the rows with --streams"),
    (["--table", "3", "--streams", "flownet2"], "unknown stream 'flownet2'"),
    (["--table", "5"], "argument --table: invalid choice"),
])
def test_flags_that_do_not_fit_the_table_exit_2_before_any_work(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        tvnet_hmdb.main(flags + ["--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "data"),
                                 "--quiet"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_table3_printer_puts_the_papers_figures_beside_ours_in_the_right_rows():
    rows = [dict(label=s.label, paper_row=s.paper_row, top1=0.25 + 0.1 * i, top5=0.9, mean_class_accuracy=0.2)
            for i, s in enumerate(tvnet_tables.parse_streams(",".join(tvnet_tables.STREAMS), 50))]
    lines = tvnet_tables.format_table3(rows, "motion")
    assert "HMDB51" in lines[0] and "UCF101" in lines[0] and "NOT the paper's data" in lines[-1]
    for i, (row, line) in enumerate(zip(rows, lines[1:-1])):
        assert line.strip().startswith(row["label"])
        numbers = re.findall(r"\d+\.\d", line[len(row["label"]) + 2:])
        assert float(numbers[0]) == pytest.approx(25 + 10 * i)  # ours first
        assert tuple(map(float, numbers[-2:])) == PAPER_TABLE3[row["paper_row"]]  # the paper's, its row
        assert row["paper_row"] in line
    assert "paper figures: split 1" in tvnet_tables.format_table3(rows[:1], "hmdb51")[-1]


# ---------------------------------------------------------------------------------- end to end ----
@pytest.mark.slow
def test_table3_on_tiny_builtin_data(tmp_path, capsys):
    from tfvideo.data.prepare import check_reusable

    out = tvnet_hmdb.main(["--table", "3", "--streams", "no-training,precomputed-dis", "--videos-per-class", "2",
                           "--steps", "2", "--steps-per-epoch", "1", "--size", "24", "--iterations", "3",
                           "--eval-segments", "2", "--data-out", str(tmp_path / "data"),
                           "--run-dir", str(tmp_path / "run"), "--quiet"])
    printed = capsys.readouterr().out
    assert "reproducing Table 3 of seed 002" in printed and "Table 4" not in printed
    assert "NOT the paper's data" in printed
    summary = json.load(open(tmp_path / "run" / "eval" / "summary.json"))
    assert summary["table"] == "Table 3" and list(summary["results"]) == ["no-training", "precomputed-dis"]
    assert summary["results"]["precomputed-dis"]["paper_row"] == "DIS-Fast"
    assert summary["results"]["no-training"]["num_videos"] == 8 and out["table"] == 3
    for key in ("no-training", "precomputed-dis"):
        lines = [json.loads(l) for l in open(tmp_path / "run" / key / "metrics.jsonl")]
        assert [l["step"] for l in lines if l["kind"] == "epoch"] == [1, 2]
    manifest = json.load(open(tmp_path / "data-flow-dis" / "manifest.json"))
    assert manifest["splits"]["train"]["settings"]["item_transform"]["name"] == "stored-dis"
    # the stored-flow folder belongs to its method: asking it for another is refused
    with pytest.raises(ValueError, match="stored-dis"):
        check_reusable("motion", tmp_path / "data-flow-dis", str(tmp_path / "data" / "videos"),
                       motion_options={"videos_per_class": 2},
                       item_transform=tvnet_tables.StoredFlow("tvl1"))


TINY3 = ["--table", "3", "--videos-per-class", "2", "--steps", "2", "--steps-per-epoch", "1", "--size", "24",
         "--iterations", "3", "--eval-segments", "2", "--quiet"]


@pytest.mark.slow
def test_table3_resume_reads_back_finished_streams_and_retrains_none(tmp_path, capsys):
    """``--table 3 --resume`` after an interruption between two streams: the finished stream's row is read
    back, the other one's training (finished, its backup at the last step) is not repeated and its
    evaluation gives the same figures."""
    args = TINY3 + ["--streams", "no-training,precomputed-dis", "--data-out", str(tmp_path / "data"),
                    "--run-dir", str(tmp_path / "run")]
    first = tvnet_hmdb.main(args)
    run = tmp_path / "run"
    (run / "eval" / "summary.json").unlink()                     # as if killed after the last training ...
    (run / "eval" / "precomputed-dis" / "row.json").unlink()     # ... before its evaluation finished
    capsys.readouterr()
    second = tvnet_hmdb.main(args + ["--resume"])
    printed = capsys.readouterr().out
    assert "[no-training] finished already" in printed and "[precomputed-dis] finished already" not in printed
    for key in ("no-training", "precomputed-dis"):
        assert second["results"][key]["top1"] == first["results"][key]["top1"], key
        steps = [json.loads(l)["step"] for l in open(run / key / "metrics.jsonl") if json.loads(l)["kind"] == "epoch"]
        assert steps == [1, 2], (key, steps)                     # no step trained twice
    assert json.load(open(run / "eval" / "summary.json"))["results"].keys() == {"no-training", "precomputed-dis"}


@pytest.mark.slow
def test_table3_with_split_all_reports_the_mean_of_three_splits_and_resumes(tmp_path, capsys):
    args = TINY3 + ["--streams", "no-training", "--split", "all", "--data-out", str(tmp_path / "data"),
                    "--run-dir", str(tmp_path / "run")]
    out = tvnet_hmdb.main(args)
    printed = capsys.readouterr().out
    per_split = [json.load(open(tmp_path / "run" / f"split{k}" / "eval" / "summary.json")) for k in (1, 2, 3)]
    assert all(s["table"] == "Table 3" for s in per_split)
    top1 = [s["results"]["no-training"]["top1"] for s in per_split]
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    entry = summary["results"]["no-training"]
    assert entry["mean"]["top1"] == pytest.approx(np.mean(top1))
    assert [entry["splits"][str(k)]["top1"] for k in (1, 2, 3)] == top1
    assert out["results"]["no-training"]["mean"]["top1"] == pytest.approx(entry["mean"]["top1"])
    assert entry["paper_row"] == tvnet_tables.parse_streams("no-training")[0].paper_row
    assert "split 1  split 2  split 3     mean" in printed
    capsys.readouterr()
    again = tvnet_hmdb.main(args + ["--resume"])
    printed = capsys.readouterr().out
    assert printed.count("finished already") == 3
    assert again["results"]["no-training"]["mean"]["top1"] == pytest.approx(np.mean(top1))
