"""Subprocess worker of tests/test_training.py: a tiny ``train`` run that the test kills and resumes.

``python tests/training_worker.py RUN_DIR --epochs 3 --steps 5 --backup-every 2 --sleep 0.3 --progress FILE``
trains a softmax regression on a fixed in-memory dataset with the default strategy. After each step it
appends ``optimizer.iterations`` to FILE (one line, flushed) and then sleeps, so the test can kill it at a
known step. At the end it prints ``{"iterations": ..., "first_step": ...}`` (the first step this process
finished) as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvideo.training import resolve_strategy, train  # noqa: E402


class Progress(keras.callbacks.Callback):
    def __init__(self, path, sleep):
        super().__init__()
        self.path, self.sleep, self.first = path, sleep, None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.first = step if self.first is None else self.first
        with open(self.path, "a") as f:
            f.write(f"{step}\n")
        time.sleep(self.sleep)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--backup-every", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.3)
    parser.add_argument("--progress", required=True)
    args = parser.parse_args()

    strategy = resolve_strategy("default")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.integers(0, 3, size=40)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40, seed=0).repeat().batch(4)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    progress = Progress(args.progress, args.sleep)
    config = {"epochs": args.epochs, "steps": args.steps, "backup_every": args.backup_every}
    train(model, data, run_dir=args.run_dir, epochs=args.epochs, steps_per_epoch=args.steps,
          backup_every_steps=args.backup_every, callbacks=[progress], config=config, verbose=0)
    print(json.dumps({"iterations": int(model.optimizer.iterations.numpy()), "first_step": progress.first}))


if __name__ == "__main__":
    main()
