"""The V2V recipes end to end on a tiny built-in ``objects`` set (the same code path as the real data),
their exported signatures (in process and over gRPC) and their configuration."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import v2v_colouring, v2v_common, v2v_flow, v2v_gatech

TINY = ["--videos", "2", "--steps", "2", "--steps-per-epoch", "1", "--frames", "8", "--size", "32x32",
        "--eval-clips", "1", "--quiet"]


def _run(main, tmp_path, name, extra=()):
    return main(TINY + list(extra) + ["--data-out", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
                                      "--export", str(tmp_path / "saved_models" / name)])


@pytest.fixture(scope="module")
def gatech(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gatech")
    return tmp, _run(v2v_gatech.main, tmp, "v2v_gatech")


def test_segmentation_recipe_trains_evaluates_and_exports(gatech):
    tmp, out = gatech
    run = tmp / "run"
    for variant in ("v2v", "2d_v2v"):
        lines = [json.loads(line) for line in open(run / variant / "metrics.jsonl")]
        assert [line["step"] for line in lines if line["kind"] == "epoch"] == [1, 2]
        assert {"accuracy", "mean_iou", "loss"} <= set(lines[-1])
    summary = json.load(open(run / "eval" / "summary.json"))
    assert set(summary["results"]) == {"V2V", "2D-V2V", "'background' everywhere"}
    for name, r in summary["results"].items():
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["mean_iou"] <= 1
        assert (r["fps"] is None) == name.endswith("everywhere")
    # one class everywhere: its IoU is its voxel share; the mean over the classes present is below it
    baseline = summary["results"]["'background' everywhere"]
    assert 0.3 < baseline["accuracy"] < 1 and baseline["mean_iou"] < baseline["accuracy"]
    assert summary["classes"][0] == "background" and len(summary["classes"]) == 8
    gif = tf.io.gfile.GFile(out["gif"], "rb").read()
    assert gif[:6] == b"GIF89a"
    # the exported signature answers like the trained Keras model, for clips of other sizes too
    loaded = tf.saved_model.load(out["export"])
    trained = out["trained"]["v2v"]
    for shape in ((1, 8, 32, 32, 3), (2, 16, 48, 64, 3)):
        frames = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
        served = loaded.signatures["segmentation"](frames=tf.constant(frames))
        expected = out["model"](frames, training=False).numpy()
        np.testing.assert_allclose(served["logits"].numpy(), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(served["labels"].numpy(), np.argmax(expected, -1))
        np.testing.assert_allclose(served["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
    frames = np.random.default_rng(0).integers(0, 256, (1, 8, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(trained(frames, training=False).numpy(), out["model"](frames).numpy(),
                               rtol=1e-5, atol=1e-5)  # the export copies the trained weights
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 8"):  # the size rule at run time
        loaded.signatures["segmentation"](frames=tf.zeros((1, 12, 32, 32, 3), tf.uint8))


def test_segmentation_signature_answers_over_grpc(gatech):
    from tests.serving.test_serving import free_port
    from tfvideo.serving import PredictClient
    from tfvideo.serving.dev_server import DevServer

    tmp, out = gatech
    port = free_port()
    server = DevServer(str(tmp / "saved_models"), port=port, poll_seconds=0)
    server.start()
    try:
        frames = np.random.default_rng(3).integers(0, 256, (1, 8, 32, 48, 3), dtype=np.uint8)
        with PredictClient(f"127.0.0.1:{port}", model_name="v2v_gatech", signature_name="segmentation",
                           retries=5, backoff=0.2) as client:
            answer = client.predict(frames=frames)
    finally:
        server.stop()
    expected = out["model"](frames, training=False).numpy()
    np.testing.assert_allclose(answer["logits"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(answer["labels"], np.argmax(expected, -1))


@pytest.mark.slow  # ~20 s; the flow head's alpha round trip is also in tests/models/test_v2v.py
def test_flow_recipe_student_teacher_and_truth(tmp_path):
    out = _run(v2v_flow.main, tmp_path, "v2v_flow", ["--teacher", "dis"])
    rows = out["results"]
    assert set(rows) == {"V2V (student)", "OpenCV DIS (teacher)", "zero flow (no model)"}
    assert rows["zero flow (no model)"]["epe_truth"] > 0
    student, teacher = rows["V2V (student)"], rows["OpenCV DIS (teacher)"]
    assert student["epe_teacher"] > 0 and student["epe_truth"] > 0 and teacher["epe_truth"] > 0
    assert teacher["epe_teacher"] == 0.0 and teacher["fps"] > 0
    # two shard folders: the exact flows and the teacher's, of the same generated videos
    assert os.path.isdir(tmp_path / "data-teacher-dis") and not os.path.isdir(tmp_path / "data-teacher-dis" / "videos")
    loaded = tf.saved_model.load(out["export"])
    frames = np.random.default_rng(1).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    flow = loaded.signatures["flow"](frames=tf.constant(frames))["flow"].numpy()
    np.testing.assert_allclose(flow, out["model"](frames, training=False).numpy(), rtol=1e-4, atol=1e-4)
    # pixels: alpha x Conv-pre (Sec. 5)
    conv_pre = keras.Model(out["model"].input, out["model"].get_layer("conv_pre").output)
    np.testing.assert_allclose(flow, 15.0 * conv_pre(frames).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # ~15 s; the colour head's clipping is also in tests/models/test_v2v.py
def test_colouring_recipe_grey_in_colour_out(tmp_path):
    out = _run(v2v_colouring.main, tmp_path, "v2v_colouring", ["--variants", "v2v"])
    rows = out["results"]
    assert set(rows) == {"V2V", "grey copied (no model)"}
    assert 0 < rows["grey copied (no model)"]["ade"] < 1
    loaded = tf.saved_model.load(out["export"])
    grey = np.random.default_rng(2).integers(0, 256, (1, 8, 32, 32, 1), dtype=np.uint8)
    colour = loaded.signatures["colour"](frames=tf.constant(grey))["colour"].numpy()
    assert colour.shape == (1, 8, 32, 32, 3) and colour.min() >= 0 and colour.max() <= 1
    np.testing.assert_allclose(colour, out["model"](grey, training=False).numpy(), rtol=1e-4, atol=1e-4)


def test_paper_profile_follows_the_paper():
    for task, (lr, step, total, decay) in v2v_common.PAPER_SCHEDULES.items():
        parser = v2v_common.build_parser(task, "")
        cfg = v2v_common.resolve(parser.parse_args(["--data-dir", "/x"]), task)
        assert (cfg["frames"], tuple(cfg["size"]), cfg["short_side"], cfg["batch_size"]) == (16, (112, 112), 128, 1)
        assert (cfg["optimizer"], cfg["lr_step"], cfg["steps"], cfg["weight_decay"]) == ("sgd", step, total, decay)
        # Caffe's Euclidean loss sums over a clip's voxels; ours averages: same update
        scale = 1 if task == "segmentation" else 16 * 112 * 112
        assert cfg["lr"] == pytest.approx(lr * scale)
    assert v2v_common.PAPER_SCHEDULES["segmentation"] == (1e-4, 30000, 100000, 0.005)
    cpu = v2v_common.resolve(v2v_common.build_parser("flow", "").parse_args(["--steps", "90", "--steps-per-epoch", "30"]), "flow")
    assert cpu["dataset"] == "objects" and cpu["teacher"] == "tvl1" and cpu["lr_step"] is None
    assert (cpu["steps"], cpu["lr"], cpu["optimizer"]) == (90, 1e-4, "adam")


@pytest.mark.parametrize("argv, message", [
    (["--freeze-c3d"], "--freeze-c3d needs --c3d-weights"),
    (["--frames", "12"], "v2v needs frames a multiple of 8"),
    (["--size", "40x48"], "multiples of 16"),
    (["--c3d-weights", "/no/such.npz"], "no such file"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        v2v_gatech.main(argv + ["--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "d")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "d")
