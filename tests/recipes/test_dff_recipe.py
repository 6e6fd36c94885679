"""``recipes.dff_cityscapes`` end to end: on a tiny built-in ``objects`` set (streaming protocol) and on a
fake Cityscapes tree in the official layout (the paper's key-offset protocol, checked against the pair
model computed directly), its export (signatures answer like the Keras parts) and its configuration."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from recipes import dff_cityscapes
from tfvideo.models.dff import speedup

TINY = ["--frame-steps", "2", "--flow-steps", "2", "--steps", "2", "--steps-per-epoch", "1", "--batch-size", "2",
        "--eval-videos", "1", "--key-intervals", "2", "--adaptive-interval", "3", "--quiet"]


def _run(tmp_path, extra=()):
    return dff_cityscapes.main(TINY + list(extra) + [
        "--data-out", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
        "--export", str(tmp_path / "saved_models" / "dff")])


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dff_builtin")
    return tmp, _run(tmp, ["--videos", "2", "--size", "128x128"])


@pytest.mark.slow  # ~2 min: three trainings (each first step traces a training graph) and seven streamed rows
def test_builtin_run_rows_speedups_and_export(builtin):
    tmp, out = builtin
    summary = json.load(open(tmp / "run" / "eval" / "summary.json"))
    rows = summary["results"]
    assert list(rows) == ["Frame", "DFF, l = 1 (its N on every frame)", "DFF, l = 2", "DFF separate, l = 2",
                          "DFF, adaptive",
                          "DFF, l = 5, no flow (features copied)", "'background' everywhere"]
    for name, r in rows.items():
        assert 0 <= r["mean_iou"] <= 1 and 0 <= r["accuracy"] <= 1, name
    # key frames: every frame for Frame, every other one for l = 2 (a 32-frame test video)
    assert rows["Frame"]["key_share"] == 1.0 and rows["DFF, l = 2"]["key_share"] == 0.5
    # separate = Frame's N with the pretrained F: on key frames (every other one at l = 2) it is Frame
    assert rows["DFF separate, l = 2"]["key_share"] == 0.5
    assert 0 < rows["DFF, adaptive"]["key_share"] <= 1
    # Eq. 7 beside each row: l / (1 + (l - 1) r) with r of Eq. 5 from the cost model
    r = summary["cost"]["r"]
    assert rows["DFF, l = 2"]["eq7"] == pytest.approx(2 / (1 + r)) == pytest.approx(speedup(r, 2))
    # the export: Frame is serving_default; key_features + propagate + task reproduce the pair model
    loaded = tf.saved_model.load(out["export"])
    trained = out["trained"]["dff"]
    rng = np.random.default_rng(0)
    key, current = (rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8) for _ in range(2))
    features = loaded.signatures["key_features"](frames=tf.constant(key))["features"]
    propagated = loaded.signatures["propagate"](frame=tf.constant(current), key_frame=tf.constant(key),
                                                features=features)["features"]
    served = loaded.signatures["task"](features=propagated, frame=tf.constant(current))["logits"].numpy()
    expected = trained(np.stack([key, current], 1), training=False).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-4)
    gif = tf.io.gfile.GFile(out["gif"], "rb").read()
    assert gif[:6] == b"GIF89a"


# ------------------------------------------------------------------------------ fake Cityscapes ----
H, W = 128, 256


def _city_tree(root, rng):
    """Two train snippets and one val snippet (30 frames each: a bright square moving right over a dark
    gradient) with 19-class labels at the 20th frame (the square is class 13 'car', the rest 0 'road')."""
    yy, xx = np.mgrid[:H, :W]
    labels = {}
    for split, seq in (("train", "000000"), ("train", "000001"), ("val", "000002")):
        x0 = int(rng.integers(10, 60))
        for t in range(30):
            frame = np.stack([xx % 256 // 4, yy // 2, np.full_like(xx, 40)], -1).astype(np.uint8)
            box = (slice(40, 80), slice(x0 + 3 * t, x0 + 3 * t + 40))
            frame[box] = (220, 200, 60)
            path = f"{root}/leftImg8bit_sequence/{split}/aachen/aachen_{seq}_{t:06d}_leftImg8bit.png"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            cv2.imwrite(path, frame[..., ::-1])
            if t == 19:
                label = np.zeros((H, W), np.uint8)
                label[box] = 13
                label[:2] = 255
                labels[split, seq] = label
                stem = f"{root}/gtFine/{split}/aachen/aachen_{seq}_{t:06d}_gtFine"
                os.makedirs(os.path.dirname(stem), exist_ok=True)
                cv2.imwrite(f"{stem}_labelTrainIds.png", label)
    return labels


def _iou(confusion):
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return (tp[union > 0] / union[union > 0]).mean()


@pytest.mark.slow  # ~1.5 min
def test_cityscapes_key_offset_protocol_equals_the_pair_model(tmp_path):
    labels = _city_tree(tmp_path / "cityscapes", np.random.default_rng(0))
    out = dff_cityscapes.main(TINY + [
        "--data-dir", str(tmp_path / "cityscapes"), "--profile", "cpu", "--short-side", "128",
        "--flow-steps", "0", "--variants", "dff", "--data-out", str(tmp_path / "shards"),
        "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "saved_models" / "dff")])
    rows = out["results"]
    frames = np.stack([cv2.imread(f"{tmp_path}/cityscapes/leftImg8bit_sequence/val/aachen/"
                                  f"aachen_000002_{t:06d}_leftImg8bit.png")[..., ::-1] for t in range(30)])
    truth = labels["val", "000002"]
    known = truth != 255
    model = out["trained"]["dff"]
    # Sec. 5.2: for the annotated frame i = 19 and l = 2, the pairs (19, 19) and (18, 19), through the
    # pair model itself (not the runner)
    confusion = np.zeros((19, 19))
    for k in (19, 18):
        pred = np.argmax(model(np.stack([frames[k], frames[19]])[None], training=False).numpy()[0], -1)
        confusion += np.bincount(19 * truth[known].astype(int) + pred[known], minlength=361).reshape(19, 19)
    assert rows["DFF, l = 2"]["mean_iou"] == pytest.approx(_iou(confusion), abs=1e-6)
    assert rows["DFF, l = 2"]["accuracy"] == pytest.approx(np.diag(confusion).sum() / confusion.sum(), abs=1e-6)
    frame_model = out["trained"]["frame"]
    pred = np.argmax(frame_model(frames[19:20], training=False).numpy()[0], -1)
    confusion = np.bincount(19 * truth[known].astype(int) + pred[known], minlength=361).reshape(19, 19)
    assert rows["Frame"]["mean_iou"] == pytest.approx(_iou(confusion), abs=1e-6)
    assert out["config"]["size"] == (128, 256) and out["config"]["dataset"] == "cityscapes"


# ------------------------------------------------------------------------------------ configuration ----
def test_paper_profile_follows_the_paper():
    parser = dff_cityscapes.build_parser()
    cfg = dff_cityscapes.resolve(parser.parse_args(["--data-dir", "/x"]))
    # Sec. 4-5.1: ResNet-101 + FlowNet, short side 1024 (F gets half inside), 8 GPUs x 1, 20K iterations,
    # 1e-3 then 1e-4 for the last 5K; SGD with the DFF code's momentum and weight decay
    assert (cfg["backbone"], cfg["flow"], cfg["weights"], cfg["size"]) == ("resnet101", "s", "imagenet", (1024, 2048))
    assert (cfg["batch_size"], cfg["steps"], cfg["frame_steps"], cfg["lr"]) == (8, 20000, 20000, 1e-3)
    assert (cfg["optimizer"], cfg["momentum"], cfg["weight_decay"]) == ("sgd", 0.9, 5e-4)
    schedule = dff_cityscapes.optimizer(cfg, cfg["steps"])._learning_rate
    assert float(schedule(14999)) == pytest.approx(1e-3) and float(schedule(15000)) == pytest.approx(1e-4)
    assert dff_cityscapes.resolve(parser.parse_args(["--data-dir", "/x", "--weights", "none"]))["weights"] is None
    cpu = dff_cityscapes.resolve(parser.parse_args([]))
    assert (cpu["backbone"], cpu["flow"], cpu["size"], cpu["dataset"]) == ("small", "tiny", (128, 256), "objects")


@pytest.mark.parametrize("argv, message", [
    (["--size", "128x200"], "multiples of 128"),
    (["--flownet-weights", "/no/such.npz", "--flow", "s"], "no such file"),
    (["--data-dir", "{tmp}", "--size", "128x128"], "--size is for the built-in set"),
    (["--data-dir", "{tmp}", "--short-side", "100"], "multiples of 128"),
    (["--weights", "/no/such.h5", "--backbone", "resnet50"], "--weights"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as info:
        dff_cityscapes.main(argv + ["--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "d")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "d")
