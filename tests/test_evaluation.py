"""Tests of tfvideo.evaluation: metrics by hand, fusion, per-video means, prediction, PNG, files."""

import json
import math
import os
import re

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import evaluation as ev

# Hand-worked example: 4 classes, class 3 never occurs, v1 and v3 are ties.
SCORES = np.array([[0.1, 0.7, 0.1, 0.1],    # label 1 -> 1 (correct, rank 0)
                   [0.5, 0.5, 0.0, 0.0],    # label 1 -> 0 (tie: lowest index wins; rank 1)
                   [0.2, 0.3, 0.4, 0.1],    # label 0 -> 2 (rank 2)
                   [0.0, 0.0, 0.0, 0.0],    # label 2 -> 0 (all tied; rank 2)
                   [0.9, 0.0, 0.05, 0.05],  # label 0 -> 0
                   [0.1, 0.2, 0.6, 0.1],    # label 2 -> 2
                   [0.3, 0.1, 0.5, 0.1]])   # label 2 -> 2
LABELS = np.array([1, 1, 0, 2, 0, 2, 2])


def test_metrics_hand_worked():
    m = ev.classification_metrics(SCORES, LABELS, ["a", "b", "c", "d"], top_k=(1, 2, 5))
    assert m["num_videos"] == 7 and m["num_classes"] == 4
    assert m["predictions"].tolist() == [1, 0, 2, 0, 0, 2, 2]
    assert m["top1"] == pytest.approx(4 / 7)
    assert m["top2"] == pytest.approx(5 / 7)
    assert m["top5"] == 1.0 and m["top_k"] == {"top1": 1, "top2": 2, "top5": 4}  # capped at C
    assert m["support"].tolist() == [2, 2, 3, 0]
    np.testing.assert_allclose(m["per_class_accuracy"][:3], [0.5, 0.5, 2 / 3])
    assert math.isnan(m["per_class_accuracy"][3])
    assert m["mean_class_accuracy"] == pytest.approx(5 / 9)  # absent class 3 not counted
    assert m["confusion"].tolist() == [[1, 0, 1, 0], [1, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["class_names"] == ["a", "b", "c", "d"]


def test_metrics_match_double_loop_reference():
    rng = np.random.default_rng(0)
    c, v = 5, 300
    scores = rng.integers(0, 4, (v, c)).astype(np.float32)  # many ties
    labels = rng.integers(0, c, v)
    m = ev.classification_metrics(scores, labels, top_k=(1, 3))
    confusion = np.zeros((c, c), int)
    hits = {1: 0, 3: 0}
    for i in range(v):
        best = 0
        for j in range(1, c):
            if scores[i, j] > scores[i, best]:
                best = j
        confusion[labels[i], best] += 1
        order = sorted(range(c), key=lambda j: (-scores[i, j], j))
        for k in hits:
            hits[k] += labels[i] in order[:k]
    np.testing.assert_array_equal(m["confusion"], confusion)
    assert m["top1"] == pytest.approx(hits[1] / v) and m["top3"] == pytest.approx(hits[3] / v)
    recall = [confusion[j, j] / confusion[j].sum() for j in range(c)]
    assert m["mean_class_accuracy"] == pytest.approx(np.mean(recall))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="labels"):
        ev.classification_metrics(SCORES, LABELS + 2)
    with pytest.raises(ValueError, match="class_names"):
        ev.classification_metrics(SCORES, LABELS, ["a"])
    with pytest.raises(ValueError, match="scores"):
        ev.classification_metrics(SCORES[:3], LABELS)


def test_average_per_video():
    scores = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 1.0], [2.0, 3.0]])
    ids, means, labels = ev.average_per_video(scores, [b"e", b"e", b"g", b"b", b"b"],
                                              [1, 1, 0, 3, 3])
    np.testing.assert_array_equal(ids, [b"b", b"e", b"g"])
    np.testing.assert_allclose(means, [[1.0, 2.0], [2.0, 1.0], [5.0, 5.0]])
    np.testing.assert_array_equal(labels, [3, 1, 0])
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(6), rng.integers(1, 5, 6))
    scores = rng.normal(size=(len(index), 4))
    ids, means = ev.average_per_video(scores, index)
    np.testing.assert_allclose(means, [scores[index == v].mean(0) for v in range(6)])
    with pytest.raises(ValueError, match="scores"):
        ev.average_per_video(scores[:-1], index)


def test_video_scores_views_out_of_order():
    views = {"video_ids": np.array([b"v2", b"v1", b"v2", b"v1", b"v3"]),
             "labels": np.array([1, 0, 1, 0, 1]),
             "scores": np.array([[0, 4], [2, 0], [2, 2], [4, 2], [1, 1]], np.float32)}
    out = ev.video_scores(views)
    assert out["video_ids"].tolist() == [b"v1", b"v2", b"v3"]
    assert out["labels"].tolist() == [0, 1, 1]
    np.testing.assert_allclose(out["scores"], [[3, 1], [1, 3], [1, 1]])
    np.testing.assert_allclose(ev.video_scores(views, reduce="max")["scores"],
                               [[4, 2], [2, 4], [1, 1]])
    # softmax per view: [0, ln 3] -> [1/4, 3/4]; [0, 0] -> [1/2, 1/2]; mean [3/8, 5/8]
    soft = {"video_ids": np.array([b"a", b"a"]), "labels": np.array([0, 0]),
            "scores": np.array([[0, np.log(3)], [0, 0]])}
    np.testing.assert_allclose(ev.video_scores(soft, softmax=True)["scores"], [[3 / 8, 5 / 8]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="different labels"):
        ev.video_scores({**views, "labels": np.array([1, 0, 0, 0, 1])})


def test_fuse_scores_one_to_two_by_hand():
    rgb = {"video_ids": np.array([b"a", b"b"]), "labels": np.array([0, 1]),
           "scores": np.array([[1.0, 0.0], [0.0, 3.0]])}
    flow = {"b": [3.0, 0.0], "a": [0.0, 3.0]}  # other order, str ids
    fused = ev.fuse_scores([rgb, flow], ev.TWO_STREAM_WEIGHTS)
    assert fused["video_ids"].tolist() == [b"a", b"b"] and fused["labels"].tolist() == [0, 1]
    # a: (1 * [1, 0] + 2 * [0, 3]) / 3;  b: (1 * [0, 3] + 2 * [3, 0]) / 3
    np.testing.assert_allclose(fused["scores"], [[1 / 3, 2], [2, 1]], rtol=1e-6)
    pair = ev.fuse_scores([(["a", "b"], [[1, 0], [0, 3]]), (["b", "a"], [[3, 0], [0, 3]])], [1, 2])
    np.testing.assert_allclose(pair["scores"], fused["scores"])
    with pytest.raises(ValueError, match="same videos"):
        ev.fuse_scores([rgb, {"a": [0, 3], "c": [1, 1]}], [1, 2])
    with pytest.raises(ValueError, match="3 classes"):
        ev.fuse_scores([rgb, {"a": [0, 3, 1], "b": [1, 1, 1]}], [1, 2])
    with pytest.raises(ValueError, match="weights"):
        ev.fuse_scores([rgb, flow], [1])
    with pytest.raises(ValueError, match="labels disagree"):
        ev.fuse_scores([rgb, {**rgb, "labels": np.array([1, 1])}], [1, 2])


# -------------------------------------------------------------------------------- prediction ----
WEIGHTS = np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, -1.0]], np.float32)
BIAS = np.array([0.0, 0.0, 0.0, 10.0], np.float32)


def _model(dict_output=False):
    """Mean colour of the frames -> Dense(4) with fixed weights: logits = mean_rgb @ W + b."""
    frames = keras.Input((2, 4, 4, 3), dtype="uint8")
    mean = keras.layers.Lambda(
        lambda x: keras.ops.mean(keras.ops.cast(x, "float32"), axis=(1, 2, 3)))(frames)
    dense = keras.layers.Dense(4)
    logits = dense(mean)
    dense.set_weights([WEIGHTS, BIAS])
    outputs = {"logits": logits, "probs": keras.layers.Softmax()(logits)} if dict_output else logits
    return keras.Model(frames, outputs)


def _dataset():
    """3 videos x 2 views (consecutive), like the pipeline's evaluation datasets, batches of 4."""
    colours = np.array([[60, 10, 0], [50, 30, 10],      # video a, label 0: argmax 0 in both views
                        [0, 40, 20], [10, 30, 0],       # video b, label 1: views say 1 and 1
                        [10, 10, 40], [0, 0, 0]],       # video c, label 1: views say 2 and 3
                       np.uint8)
    frames = np.broadcast_to(colours[:, None, None, None], (6, 2, 4, 4, 3)).copy()
    ids = np.array([b"a", b"a", b"b", b"b", b"c", b"c"])
    labels = np.array([0, 0, 1, 1, 1, 1], np.int32)
    ds = tf.data.Dataset.from_tensor_slices(({"frames": frames, "video_id": ids}, labels))
    return ds.batch(4), colours.astype(np.float32) @ WEIGHTS + BIAS, ids, labels


def test_predict_views_matches_numpy():
    ds, expected, ids, labels = _dataset()
    views = ev.predict_views(_model(), ds, progress=False)
    assert views["video_ids"].tolist() == ids.tolist()
    assert views["labels"].tolist() == labels.tolist() and views["scores"].dtype == np.float32
    np.testing.assert_allclose(views["scores"], expected, rtol=1e-5, atol=1e-4)
    dict_views = ev.predict_views(_model(dict_output=True), ds, output="logits", progress=False)
    np.testing.assert_allclose(dict_views["scores"], expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="output"):
        ev.predict_views(_model(dict_output=True), ds, progress=False)
    with pytest.raises(ValueError, match="video_id"):
        ev.predict_views(_model(), ds.map(lambda x, y: (x["frames"], y)), progress=False)


def test_evaluate_writes_files(tmp_path):
    ds, expected, _, _ = _dataset()
    names = ["red", "green", "blue", "grey"]
    m = ev.evaluate(_model(), ds, class_names=names, out_dir=tmp_path / "eval", progress=False)
    per_video = np.stack([expected[0:2].mean(0), expected[2:4].mean(0), expected[4:6].mean(0)])
    np.testing.assert_allclose(m["videos"]["scores"], per_video, rtol=1e-5, atol=1e-4)
    hand = per_video.argmax(1)
    assert m["predictions"].tolist() == hand.tolist()
    assert m["top1"] == pytest.approx(np.mean(hand == [0, 1, 1])) and m["num_views"] == 6
    out = tmp_path / "eval"
    assert sorted(os.listdir(out)) == ["confusion_matrix.png", "metrics.json", "per_class.txt",
                                       "scores.npz"]  # no temporary files left
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["top1"] == pytest.approx(m["top1"]) and saved["per_class_accuracy"][2] is None
    assert saved["confusion"] == m["confusion"].tolist() and "videos" not in saved
    assert len((out / "per_class.txt").read_text().splitlines()) == 1 + 4 + 2
    png = cv2.imread(str(out / "confusion_matrix.png"))
    assert png is not None and png.ndim == 3
    with np.load(out / "scores.npz") as npz:
        assert npz["video_ids"].tolist() == [b"a", b"b", b"c"]
        assert npz["class_names"].tolist() == names
        fused = ev.fuse_scores([npz, m["videos"]], [1, 2])  # a stream fused with itself
        np.testing.assert_allclose(fused["scores"], per_video, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------- picture/text ----
def _grid(image, n):
    """Locate the heat map by its blue cells; returns the (n * cell) square and the cell size."""
    img = image.astype(int)
    ys, xs = np.nonzero(img[..., 2] - img[..., 0] > 40)
    side = ys.max() - ys.min() + 1
    assert side == xs.max() - xs.min() + 1 and side % n == 0
    return image[ys.min():ys.max() + 1, xs.min():xs.max() + 1], side // n


def _cell_median(grid, cell, i, j):
    return np.median(grid[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell].astype(float))


def test_confusion_png_diagonal(tmp_path):
    n = 4
    path = ev.confusion_matrix_png(tmp_path / "cm.png", 5 * np.eye(n, dtype=int),
                                   ["jump", "run", "walk", "wave"], title="diag")
    image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    grid, cell = _grid(image, n)
    assert cell == min(56, 720 // n)  # documented cell size
    assert image.shape[0] > n * cell and image.shape[1] > n * cell  # labels and title around it
    for i in range(n):
        for j in range(n):
            if i != j:
                assert _cell_median(grid, cell, i, i) < 128 < _cell_median(grid, cell, i, j)
    # shading follows the row fractions 0.8 > 0.2 > 0
    conf = np.array([[8, 2, 0], [0, 10, 0], [0, 0, 3]])
    grid, cell = _grid(ev.confusion_matrix_image(conf, ["a", "b", "c"]), 3)
    assert (_cell_median(grid, cell, 0, 0) < _cell_median(grid, cell, 0, 1)
            < _cell_median(grid, cell, 0, 2) == 255)


@pytest.mark.parametrize("n", [8, 101])
def test_confusion_png_size_adapts(tmp_path, n):
    conf = np.eye(n, dtype=int) * 7
    path = ev.confusion_matrix_png(tmp_path / f"cm{n}.png", conf, [f"class{i}" for i in range(n)],
                                   normalize=False)
    image = cv2.imread(path)
    grid, cell = _grid(image[..., ::-1], n)
    assert 8 <= cell <= 56 and 400 <= grid.shape[0] <= 900 and max(image.shape) < 1300
    block = grid[:cell, :cell].reshape(-1, 3)
    has_text = len(np.unique(block, axis=0)) > 1
    assert has_text == (n <= 30)  # values drawn in cells only up to 30 classes


def test_per_class_table():
    m = ev.classification_metrics(SCORES, LABELS)
    lines = ev.per_class_table(m, ["jump", "run", "walk", "wave"]).splitlines()
    assert len(lines) == 1 + 4 + 2
    assert lines[1].split() == ["0", "jump", "2", "50.0%"]
    assert lines[3].split() == ["2", "walk", "3", "66.7%"]
    assert lines[4].split() == ["3", "wave", "0", "-"]
    assert lines[5].split()[-1] == "55.6%" and lines[6].split()[-1] == "57.1%"
    assert len({len(line) for line in lines}) == 1  # aligned columns


# The paper's tables, copied verbatim (tabs and markup included) from the TVNet paper's seed text,
# shared/seeds/002_e11203b9a64c6949.txt (Fan et al., CVPR 2018): Table 3 is lines 229-238 (after its
# caption at line 226), Table 4 lines 258-270 (after its caption at line 256). The expected figures
# below come from this text, not from PAPER_RESULTS.
PAPER_TABLE3 = """\
Methods	HMDB51	UCF101
C3D [36]	-	82.3%
ActionFlowNet [27]	56.4%	83.9%
TV-L1	56.0%	85.1%
DIS-Fast	40.4%	71.2%
Deepflow	50.4%	82.1%
Flownet2.0	52.3%	80.1%
TVNet-50 (no training)	55.6%	83.5%
TVNet-50 (no flow loss)	56.9%	84.5%
TVNet-50	<b>57.5</b> %	85.5%
"""
PAPER_TABLE4 = """\
Method	HMDB51	UCF101
ST-ResNet [9]	66.4%	93.4%
ST-ResNet + IDT [9]	70.3%	94.6%
TSN [40]	68.5%	94.0%
KVMF [44]	63.3%	93.1%
TDD [38]	65.9%	91.5%
C3D (3 nets) [36]	-	90.4%
Two-Stream Fusion [10]	65.4%	92.5%
Two-Stream (VGG16) [3]	58.5%	91.4%
Two-Stream+LSTM [28]	-	88.6%
Two-Stream Model [33]	59.4%	88.0%
Ours	71.0%	94.5%
Ours + IDT	<b>72.6</b> %	<b>95.4</b> %
"""
def parse_paper_table(text):
    """{dataset: {method: top-1 % or None}} from a table's text: a header line, then one row per method,
    'name [ref]<TAB>HMDB51 cell<TAB>UCF101 cell' ('-': no figure; '<b>57.5</b> %': a bold figure)."""

    def figure(cell):
        if cell == "-":
            return None
        value = re.fullmatch(r"(?:<b>)?(\d+\.\d)(?:</b> )?%", cell)
        assert value, f"unreadable cell {cell!r}"
        return float(value.group(1))

    header, *rows = text.strip("\n").split("\n")
    assert header.split("\t")[1:] == ["HMDB51", "UCF101"], header
    table = {"hmdb51": {}, "ucf101": {}}
    for row in rows:
        cells = row.split("\t")
        assert len(cells) == 3, f"not 3 tab-separated cells: {row!r}"
        method = re.sub(r" \[\d+\]$", "", cells[0])  # the citation, e.g. "C3D [36]"
        table["hmdb51"][method], table["ucf101"][method] = figure(cells[1]), figure(cells[2])
    return table


def test_paper_results_are_the_papers_tables():
    t3, t4 = parse_paper_table(PAPER_TABLE3), parse_paper_table(PAPER_TABLE4)
    # the parser read every row: 9 methods in Table 3, 12 in Table 4, a few known cells
    assert len(t3["hmdb51"]) == 9 and len(t4["ucf101"]) == 12
    assert t3["hmdb51"]["C3D"] is None and t3["ucf101"]["TVNet-50"] == 85.5 and t4["hmdb51"]["Ours + IDT"] == 72.6
    for name, parsed in (("table3", t3), ("table4", t4)):
        for key in ("hmdb51", "ucf101"):
            assert ev.PAPER_RESULTS[name][key] == parsed[key], (name, key)  # same methods, same figures


def test_paper_comparison():
    t3, t4 = parse_paper_table(PAPER_TABLE3), parse_paper_table(PAPER_TABLE4)
    ours = {"top1": 0.551}
    # only the paper's datasets get a line
    assert ev.paper_comparison("motion", 1, ours) is None
    assert ev.paper_comparison("folder", 1, ours) is None
    # the line: our number (fraction -> %, one decimal), the paper's figure, the table, its TV-L1 counterpart
    assert (ev.paper_comparison("hmdb51", 1, ours)
            == f"HMDB51 split 1, top-1: ours 55.1% | paper TVNet-50 {t3['hmdb51']['TVNet-50']}% (Table 3), "
               f"TV-L1 {t3['hmdb51']['TV-L1']}%")
    assert ev.paper_comparison("hmdb51", 1, {"top1": 0.12345}).startswith("HMDB51 split 1, top-1: ours 12.3% |")
    # dataset names: case, "-" and "_" ignored
    assert (ev.paper_comparison("UCF-101", 1, ours, "TVNet-50 (no training)")
            == f"UCF101 split 1, top-1: ours 55.1% | paper TVNet-50 (no training) "
               f"{t3['ucf101']['TVNet-50 (no training)']}% (Table 3), TV-L1 {t3['ucf101']['TV-L1']}%")
    assert ev.paper_comparison("Hmdb_51", 1, ours) == ev.paper_comparison("hmdb51", 1, ours)
    # no counterpart when the variant is the counterpart itself
    assert ev.paper_comparison("ucf101", 1, ours, "TV-L1").endswith(f"TV-L1 {t3['ucf101']['TV-L1']}% (Table 3)")
    # splits: Table 3 is split 1, Table 4 the mean of the 3 splits; another split is said
    assert f"{t3['hmdb51']['TVNet-50']}% (Table 3, split 1)" in ev.paper_comparison("hmdb51", 2, ours)
    assert ev.paper_comparison("hmdb51", None, ours).startswith("HMDB51, top-1:")
    # Table 4 for the two-stream variants (aliases shown as given), TSN as the counterpart
    assert (ev.paper_comparison("hmdb51", None, ours, "TVNet-50 two-stream")
            == f"HMDB51, top-1: ours 55.1% | paper TVNet-50 two-stream {t4['hmdb51']['Ours']}% (Table 4), "
               f"TSN {t4['hmdb51']['TSN']}%")
    assert ev.paper_comparison("ucf101", 1, ours, "Ours + IDT").endswith(
        f"{t4['ucf101']['Ours + IDT']}% (Table 4, mean of splits 1-3), TSN {t4['ucf101']['TSN']}%")
    # a method without a figure for that dataset ("-" in the paper): None
    assert ev.paper_comparison("hmdb51", 1, ours, "C3D") is None
    assert ev.paper_comparison("hmdb51", None, ours, "Two-Stream+LSTM") is None
    with pytest.raises(ValueError, match="variant"):
        ev.paper_comparison("hmdb51", 1, ours, "TVNet-30")
    with pytest.raises(ValueError, match="top1"):
        ev.paper_comparison("hmdb51", 1, {"top5": 0.9})
