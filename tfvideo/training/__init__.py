"""The training harness shared by every recipe: strategy, run folder, callbacks, exact resume.

One concern per module:

* :mod:`~tfvideo.training.strategy` -- :func:`resolve_strategy` (one ``tf.distribute`` strategy per
  process, multi-worker from ``TF_CONFIG``), :func:`replica_batch`, :func:`is_chief`;
* :mod:`~tfvideo.training.run_dir` -- :class:`RunDir`: the experiment folder, its ``config.json`` and
  its lock;
* :mod:`~tfvideo.training.callbacks` -- JSONL metrics, TensorBoard (Keras's callback) and images,
  atomic ``.keras`` checkpoints;
* :mod:`~tfvideo.training.backup` -- :class:`StepBackupAndRestore`: resume after a kill at the exact
  step;
* :mod:`~tfvideo.training.loop` -- :func:`train` and :func:`build_callbacks`.

Example (a recipe does the same with its own model and ``tf.data`` pipelines)::

    >>> import keras, numpy as np, tensorflow as tf
    >>> from tfvideo.training import resolve_strategy, replica_batch, train
    >>> strategy = resolve_strategy("auto")         # first thing; later calls return the same one
    >>> batch = 8                                   # the GLOBAL batch; replica_batch(batch, strategy) each
    >>> x, y = np.random.rand(64, 4).astype("float32"), np.random.randint(0, 3, 64)
    >>> data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64).repeat().batch(batch)
    >>> with strategy.scope():                      # build AND compile inside the scope
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    ...     model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = train(model, data, run_dir="/tmp/tfvideo_run", epochs=2, steps_per_epoch=4,
    ...                 validation_data=data.take(2), backup_every_steps=2, verbose=0)  # doctest: +SKIP

Re-running the same command after a crash or a kill resumes from the last backup; re-running it after
the run finished trains nothing (the backup is kept on purpose). ``tensorboard --logdir runs/`` shows
the scalars and images of every run.
"""

from tfvideo.training.backup import StepBackupAndRestore
from tfvideo.training.callbacks import AtomicCheckpoint, ImageSummary, JsonlLogger, tensorboard_callback
from tfvideo.training.loop import build_callbacks, train
from tfvideo.training.run_dir import RunDir
from tfvideo.training.strategy import (describe_strategy, is_chief, num_workers, replica_batch, resolve_strategy,
                                      task_name)

__all__ = [
    "AtomicCheckpoint",
    "ImageSummary",
    "JsonlLogger",
    "RunDir",
    "StepBackupAndRestore",
    "build_callbacks",
    "describe_strategy",
    "is_chief",
    "num_workers",
    "replica_batch",
    "resolve_strategy",
    "task_name",
    "tensorboard_callback",
    "train",
]
