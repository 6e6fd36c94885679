"""tfvideo.training: strategy choice, run folder, callbacks, and step-exact resume after a crash or a kill.

In-process tests use the session's ``mirrored_strategy`` fixture (never a second MirroredStrategy in this
process); the kill test runs tests/training_worker.py in subprocesses with the default strategy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.files import FolderBusyError
from tfvideo.training import (
    RunDir,
    StepBackupAndRestore,
    describe_strategy,
    replica_batch,
    resolve_strategy,
    train,
)
from tfvideo.training.strategy import _choose_strategy_kind, _is_chief_task

ROOT = Path(__file__).resolve().parents[1]


def epoch_lines(run_dir):
    lines = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [row for row in lines if row["kind"] == "epoch"]


def summaries(folder):
    """{(tag, step): ndarray} of the run's events, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0, ea.IMAGES: 0, ea.SCALARS: 0})
    acc.Reload()
    return {(tag, event.step): tf.make_ndarray(event.tensor_proto)
            for tag in acc.Tags()["tensors"] for event in acc.Tensors(tag)}


# ----------------------------------------------------------------------------------------------------
# strategy
# ----------------------------------------------------------------------------------------------------
def test_choose_strategy_kind():
    two_workers = json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}})
    chief_worker = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}})
    one_worker = json.dumps({"cluster": {"worker": ["a:1"]}})
    assert _choose_strategy_kind(None, 0) == "default"
    assert _choose_strategy_kind("", 1) == "default"
    assert _choose_strategy_kind(None, 2) == "mirrored"
    assert _choose_strategy_kind(two_workers, 0) == "multiworker"
    assert _choose_strategy_kind(chief_worker, 8) == "multiworker"
    assert _choose_strategy_kind(one_worker, 4) == "mirrored"
    with pytest.raises(ValueError, match="TF_CONFIG"):
        _choose_strategy_kind("{not json", 0)


def test_is_chief_task():
    assert _is_chief_task(None, None, {})
    assert _is_chief_task("chief", 0, {"chief": ["a"], "worker": ["b"]})
    assert not _is_chief_task("worker", 0, {"chief": ["a"], "worker": ["b"]})
    assert _is_chief_task("worker", 0, {"worker": ["a", "b"]})
    assert not _is_chief_task("worker", 1, {"worker": ["a", "b"]})


def test_resolve_default_without_gpus_or_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert not tf.config.list_logical_devices("GPU")
    strategy = resolve_strategy("auto")
    assert strategy is tf.distribute.get_strategy() and strategy is resolve_strategy("auto")
    assert strategy.num_replicas_in_sync == 1
    assert "1 replica " in describe_strategy(strategy)
    with pytest.raises(ValueError, match="name"):
        resolve_strategy("tpu")
    with pytest.raises(ValueError, match="devices"):
        resolve_strategy("default", devices=["/cpu:0"])
    with pytest.raises(ValueError, match="at least one device"):
        resolve_strategy("mirrored")  # no GPU and no devices given


def test_resolve_mirrored_is_cached_and_unique(mirrored_strategy):
    assert resolve_strategy(mirrored_strategy) is mirrored_strategy  # adopt the session's strategy
    same = resolve_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert same is mirrored_strategy and resolve_strategy("mirrored", devices=["/CPU:0", "/cpu:1"]) is same
    assert replica_batch(8, same) == 4
    assert describe_strategy(same) == "MirroredStrategy: 2 replicas on CPU:0, CPU:1"
    with pytest.raises(ValueError, match="batch_size=5"):
        replica_batch(5, same)
    with pytest.raises(RuntimeError, match="one strategy per process"):
        resolve_strategy("mirrored", devices=["/cpu:0"])  # refused before anything is created


# ----------------------------------------------------------------------------------------------------
# train under MirroredStrategy
# ----------------------------------------------------------------------------------------------------
def classification_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y


def test_train_writes_run_dir(tmp_path, mirrored_strategy):
    x, y = classification_data()
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4)  # global batch 4: 2 per replica
    val = tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(4)
    with mirrored_strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
        model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])

    def image_fn(m):  # the kernel as a (1, 4, 3, 3) uint8 image
        k = keras.ops.convert_to_numpy(m.layers[0].kernel)
        grey = np.round(255 * (k - k.min()) / (k.max() - k.min())).astype(np.uint8)
        return {"kernel": np.repeat(grey[None, :, :, None], 3, axis=-1)}

    written = {}
    config = {"lr": 0.1, "data": {"batch": 4, "frames": (8, 2)}}
    history = train(model, data, run_dir=tmp_path / "run", epochs=2, steps_per_epoch=3, validation_data=val,
                    config=config, verbose=0, log_every_steps=2, image_fn=lambda m: written.setdefault(
                        int(m.optimizer.iterations.numpy()), image_fn(m)))
    run = RunDir(tmp_path / "run")
    assert int(model.optimizer.iterations.numpy()) == 6 and len(history.history["loss"]) == 2
    assert json.loads(run.config_path.read_text()) == {"lr": 0.1, "data": {"batch": 4, "frames": [8, 2]}}

    lines = epoch_lines(run.path)
    assert [r["epoch"] for r in lines] == [1, 2] and [r["step"] for r in lines] == [3, 6]
    # ExponentialDecay: 0.1 * 0.5 ** (step / 2) at the step after the epoch
    np.testing.assert_allclose([r["lr"] for r in lines], [0.1 * 0.5**1.5, 0.1 * 0.5**3], rtol=1e-6)
    assert all({"loss", "accuracy", "val_loss", "val_accuracy"} <= r.keys() for r in lines)
    step_lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    step_lines = [(r["epoch"], r["step"]) for r in step_lines if r["kind"] == "step" and "loss" in r]
    assert step_lines == [(1, 2), (2, 4), (2, 6)]
    np.testing.assert_allclose([r["val_loss"] for r in lines], history.history["val_loss"], rtol=1e-6)

    reloaded = keras.models.load_model(run.last_checkpoint)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert run.best_checkpoint.exists() and not list(run.checkpoints.glob("*partial*"))
    # keras.callbacks.TensorBoard: epoch scalars at step = epoch index, read with TensorBoard's reader
    train_scalars = summaries(run.tensorboard / "train")
    val_scalars = summaries(run.tensorboard / "validation")
    assert {("epoch_loss", 0), ("epoch_loss", 1), ("epoch_learning_rate", 1)} <= set(train_scalars)
    for step, loss, val_acc in zip((0, 1), history.history["loss"], history.history["val_accuracy"]):
        np.testing.assert_allclose(train_scalars[("epoch_loss", step)], loss, rtol=1e-6)
        np.testing.assert_allclose(val_scalars[("epoch_accuracy", step)], val_acc, rtol=1e-6)
    np.testing.assert_allclose(train_scalars[("epoch_learning_rate", 1)], 0.1 * 0.5**3, rtol=1e-6)

    images = summaries(run.tensorboard / "images")  # tf.summary.image: [width, height, png, ...]
    assert set(images) == {("kernel", 0), ("kernel", 1)}
    width, height, png = images[("kernel", 1)]
    assert (width, height) == (b"3", b"4")
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), written[6]["kernel"][0])

    with pytest.warns(UserWarning, match=r"lr: 0\.1 -> 0\.2"):
        diff = run.write_config({"lr": 0.2, "data": {"batch": 4, "frames": [8, 2]}})
    assert diff == {"lr": (0.1, 0.2)} and json.loads(run.config_path.read_text())["lr"] == 0.1


def test_a_second_live_process_is_refused_before_writing(tmp_path, mirrored_strategy):
    """A run folder held by another live process: train() refuses at once and writes nothing."""
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tfvideo.files import FolderLock; "
                               f"FolderLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        x, y = classification_data()
        with mirrored_strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            model.compile("sgd", "sparse_categorical_crossentropy")
        data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4)
        with pytest.raises(FolderBusyError, match=f"run folder {run} is in use by another live process"):
            train(model, data, run_dir=run, epochs=1, steps_per_epoch=2, config={"a": 1}, verbose=0)
        assert not (run / "config.json").exists() and not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    history = train(model, data, run_dir=run, epochs=1, steps_per_epoch=2, verbose=0)  # free again
    assert len(history.history["loss"]) == 1


class Crash(Exception):
    pass


class CrashAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise Crash


class FirstStep(keras.callbacks.Callback):
    first = None

    def on_train_batch_end(self, batch, logs=None):
        self.first = self.first or int(self.model.optimizer.iterations.numpy())


def test_resume_mid_epoch_replays_an_uninterrupted_run(tmp_path, mirrored_strategy):
    x, y = classification_data(20, seed=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4)  # 5 distinct batches, period 5

    def make():
        with mirrored_strategy.scope():
            keras.utils.set_random_seed(3)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            model.compile(keras.optimizers.SGD(0.2, momentum=0.9), "sparse_categorical_crossentropy")
        return model

    kwargs = dict(epochs=3, steps_per_epoch=3, backup_every_steps=4, tensorboard=False, verbose=0,
                  skip_consumed=True)
    reference = make()
    train(reference, data, run_dir=tmp_path / "ref", **kwargs)

    # crash after step 7: backups were made after steps 4 (epoch 2, batch 1) and nothing since;
    # the epoch-2 line (step 6) was logged after the last backup
    with pytest.raises(Crash):
        train(make(), data, run_dir=tmp_path / "run", callbacks=[CrashAt(7)], **kwargs)
    meta = StepBackupAndRestore.read_metadata(tmp_path / "run" / "backup")
    assert (meta["epoch"], meta["batch"], meta["step"], meta["iterations"]) == (1, 1, 4, 4)
    assert [r["step"] for r in epoch_lines(tmp_path / "run")] == [3, 6]

    first = FirstStep()
    resumed = make()  # fresh weights: everything must come from the backup
    with pytest.warns(UserWarning, match="dropped 1 line"):
        history = train(resumed, data, run_dir=tmp_path / "run", callbacks=[first], **kwargs)
    assert first.first == 5 and int(resumed.optimizer.iterations.numpy()) == 9
    assert len(history.history["loss"]) == 2  # epochs 2 (2 remaining steps) and 3
    lines = epoch_lines(tmp_path / "run")
    assert [r["epoch"] for r in lines] == [1, 2, 3] and [r["step"] for r in lines] == [3, 6, 9]
    for got, want in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # a finished run re-run trains nothing
    again, first = make(), FirstStep()
    train(again, data, run_dir=tmp_path / "run", callbacks=[first], **kwargs)
    assert first.first is None and int(again.optimizer.iterations.numpy()) == 9
    assert len(epoch_lines(tmp_path / "run")) == 3


# ----------------------------------------------------------------------------------------------------
# kill -9 and resume in a subprocess
# ----------------------------------------------------------------------------------------------------
def test_sigkill_mid_epoch_then_resume(tmp_path):
    progress = tmp_path / "progress.txt"
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "tests" / "training_worker.py"), str(run), "--epochs", "3",
           "--steps", "5", "--backup-every", "2", "--sleep", "0.3", "--progress", str(progress)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        steps = []
        while proc.poll() is None and time.time() < deadline:
            steps = [int(s) for s in progress.read_text().split()] if progress.exists() else []
            if steps and steps[-1] >= 7:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    saved = StepBackupAndRestore.read_metadata(run / "backup")["step"]
    assert saved % 2 == 0 and 6 <= saved < 15  # killed mid-epoch 2 (steps 6..10), after >= 7 steps

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"killed after step {steps[-1]}, backup at step {saved}, "
          f"resumed run's first step {result['first_step']}")
    assert result["first_step"] == saved + 1 > 1  # resumed, not restarted
    assert result["iterations"] == 15
    lines = epoch_lines(run)
    assert [r["epoch"] for r in lines] == [1, 2, 3] and [r["step"] for r in lines] == [5, 10, 15]
