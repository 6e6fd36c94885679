"""Subprocess worker of tests/test_multiworker.py: one task of a loopback multi-worker cluster (its
``TF_CONFIG`` in the environment) or, with ``--reference``, one process that trains on the same
global batches. Trains a small regression with ``tfvideo.training.train`` on TFRecord shards and
writes the final weights to ``OUT`` (.npz).

``python tests/multiworker_worker.py SHARD_DIR RUN_DIR OUT [--reference]``
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvideo.training import describe_strategy, resolve_strategy, train  # noqa: E402

GLOBAL_BATCH, STEPS, EPOCHS = 8, 3, 2


def parse(record):
    import tensorflow as tf

    f = tf.io.parse_single_example(record, {"x": tf.io.FixedLenFeature([4], tf.float32),
                                            "y": tf.io.FixedLenFeature([2], tf.float32)})
    return f["x"], f["y"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shards")
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--reference", action="store_true")
    args = p.parse_args()

    strategy = resolve_strategy("auto")  # first TensorFlow call of the process: must not fail
    print(describe_strategy(strategy), flush=True)
    import keras
    import numpy as np
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(args.shards, "*.tfrecord")))
    if args.reference:  # worker i reads files i, i + 2, ... and takes GLOBAL_BATCH / 2 of them per step
        halves = [tf.data.TFRecordDataset(files[i::2]).map(parse).repeat().batch(GLOBAL_BATCH // 2)
                  for i in (0, 1)]
        data = tf.data.Dataset.zip(tuple(halves)).map(
            lambda a, b: (tf.concat([a[0], b[0]], 0), tf.concat([a[1], b[1]], 0)))
    else:  # file auto-sharding by tf.distribute: one reader over the whole file list
        data = tf.data.TFRecordDataset(files).map(parse).repeat().batch(GLOBAL_BATCH)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(2)])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    train(model, data, run_dir=args.run_dir, epochs=EPOCHS, steps_per_epoch=STEPS, monitor=None,
          verbose=0, config={"global_batch": GLOBAL_BATCH})
    np.savez(args.out, *model.get_weights(), iterations=int(model.optimizer.iterations.numpy()))
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
