"""``train()``: the one training entry point of every recipe, and the default callbacks it uses."""

from __future__ import annotations

from typing import Iterable

import keras
import tensorflow as tf

from tfvideo.checks import positive_int
from tfvideo.files import read_jsonl
from tfvideo.training.backup import StepBackupAndRestore
from tfvideo.training.callbacks import AtomicCheckpoint, ImageSummary, JsonlLogger, tensorboard_callback
from tfvideo.training.run_dir import RunDir
from tfvideo.training.strategy import _is_chief_task

__all__ = ["build_callbacks", "train"]


def _best_logged(metrics_path, monitor: str, mode: str, max_step: int):
    """Best ``monitor`` value on the epoch lines of ``metrics_path`` up to ``max_step`` (None if none)."""
    values = [row[monitor] for row in read_jsonl(metrics_path)
              if row.get("kind") == "epoch" and row.get("step", 0) <= max_step
              and isinstance(row.get(monitor), (int, float))]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def _as_run_dir(run_dir) -> RunDir:
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def build_callbacks(run_dir, *, monitor="val_accuracy", mode="max", backup_every_steps=None, tensorboard=True,
                    image_fn=None, log_every_steps=None, extra: Iterable = (), restore_dir=None) -> list:
    """The default callbacks of a run, in this order (the order matters, see below).

    1. :class:`StepBackupAndRestore` on ``run_dir.backup``, ``save_freq = backup_every_steps or
       "epoch"`` (the backup of a finished run is kept so that re-running the command does not start
       over; delete ``backup/`` to retrain). First, because it ends a resumed epoch early through
       ``model.stop_training``.
    2. ``best.keras``: :class:`AtomicCheckpoint` on ``monitor`` if ``monitor`` is not None. On resume
       its starting "best" is the best ``monitor`` value logged in ``metrics.jsonl`` up to the restored
       step (otherwise the first epoch after a restart would replace ``best.keras``, however bad).
    3. ``last.keras``: :class:`AtomicCheckpoint` at every epoch end.
    4. ``keras.callbacks.TensorBoard`` on ``run_dir.tensorboard`` if ``tensorboard``
       (:func:`tensorboard_callback`).
    5. :class:`JsonlLogger` on ``run_dir.metrics`` (``every_n_steps=log_every_steps``).
    6. :class:`ImageSummary` on ``run_dir.tensorboard`` if ``image_fn`` is given.
    7. ``extra`` callbacks (after the defaults, so e.g. ``EarlyStopping`` sees the logs last).

    Args:
        run_dir: a :class:`RunDir` or a path.
        restore_dir: backup folder to restore from, default ``run_dir.backup`` (multi-worker non-chief
            tasks pass the chief's).

    Returns:
        The list of callbacks for ``model.fit``.
    """
    run_dir = _as_run_dir(run_dir)
    save_freq = "epoch"
    if backup_every_steps is not None:
        save_freq = positive_int(backup_every_steps, "backup_every_steps")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    backup = StepBackupAndRestore(run_dir.backup, save_freq=save_freq, restore_dir=restore_dir)
    callbacks = [backup]
    if monitor:
        best = None
        if run_dir.best_checkpoint.exists():
            best = _best_logged(run_dir.metrics, monitor, mode, backup.saved_step())
        callbacks.append(AtomicCheckpoint(run_dir.best_checkpoint, monitor=monitor, mode=mode,
                                          initial_best=best))
    callbacks.append(AtomicCheckpoint(run_dir.last_checkpoint))
    if tensorboard:
        callbacks.append(tensorboard_callback(run_dir.tensorboard))
    callbacks.append(JsonlLogger(run_dir.metrics, every_n_steps=log_every_steps))
    if image_fn is not None:
        callbacks.append(ImageSummary(run_dir.tensorboard, image_fn))
    callbacks.extend(extra)
    return callbacks


def train(model, train_data, *, run_dir, epochs, steps_per_epoch, validation_data=None, validation_steps=None,
          callbacks=None, config=None, verbose="auto", monitor="val_accuracy", mode="max",
          backup_every_steps=None, tensorboard=True, image_fn=None, log_every_steps=None,
          skip_consumed=False) -> keras.callbacks.History:
    """Trains ``model`` in ``run_dir`` with the default callbacks; resumes from its backup if any.

    The model must have been built and compiled inside ``strategy.scope()`` (the strategy of
    :func:`~tfvideo.training.resolve_strategy`); ``train_data`` and ``validation_data`` yield *global*
    batches (Keras splits each across the replicas: use :func:`~tfvideo.training.replica_batch` to
    check divisibility). ``train_data`` should repeat (``steps_per_epoch`` steps are drawn from one
    iterator across epochs) and be shuffled by the pipeline itself (it is not shuffled here).

    Args:
        model: a built, compiled ``keras.Model``.
        train_data: a ``tf.data.Dataset`` (or anything ``model.fit`` takes) of ``(x, y[, weights])``.
        run_dir: a :class:`RunDir` or path. Locked for the life of the process
            (:meth:`RunDir.lock`): a second live process training into it gets
            :class:`tfvideo.files.FolderBusyError` before anything is written.
        epochs, steps_per_epoch: positive ints; a complete run makes exactly ``epochs *
            steps_per_epoch`` optimizer steps, also across kills and resumes.
        validation_data, validation_steps: passed to ``model.fit``.
        callbacks: extra callbacks, run after the defaults.
        config: the resolved config dict, written to ``config.json`` by :meth:`RunDir.write_config`
            (not written if None).
        verbose: ``model.fit``'s ``verbose``.
        monitor, mode: the metric of ``best.keras``; with no ``validation_data`` a ``val_*`` monitor
            is dropped (no ``best.keras``). Pass ``monitor=None`` for none.
        backup_every_steps, tensorboard, image_fn, log_every_steps: see :func:`build_callbacks`.
        skip_consumed: on resume, skip the ``step`` batches already trained in ``train_data`` (must be
            an infinite ``tf.data.Dataset``): for a deterministic pipeline (fixed seeds, one worker)
            this reproduces an uninterrupted run exactly, at the price of producing and dropping
            ``step`` batches when resuming.

    Multi-worker: the chief (or worker 0 without a chief) writes ``run_dir``, which must be on a file
    system shared by all tasks; the others write to ``run_dir/workers/<type>-<id>`` and restore from
    the chief's backup.

    Returns:
        The ``History`` of this call (only the epochs run by it).
    """
    epochs = positive_int(epochs, "epochs")
    steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or not model.built:
        raise ValueError("model must be built and compiled (inside strategy.scope()) before train()")
    run_dir = _as_run_dir(run_dir)
    write_dir = run_dir
    resolver = getattr(model.distribute_strategy, "cluster_resolver", None)
    if resolver is not None:
        cluster = resolver.cluster_spec().as_dict()
        if not _is_chief_task(resolver.task_type, resolver.task_id, cluster):
            write_dir = run_dir.worker(resolver.task_type, resolver.task_id)
    write_dir.lock()
    if config is not None:
        write_dir.write_config(config)
    if validation_data is None and monitor and monitor.startswith("val_"):
        monitor = None
    default = build_callbacks(write_dir, monitor=monitor, mode=mode, backup_every_steps=backup_every_steps,
                              tensorboard=tensorboard, image_fn=image_fn, log_every_steps=log_every_steps,
                              extra=callbacks or (), restore_dir=run_dir.backup)
    is_dataset = isinstance(train_data, tf.data.Dataset)
    if skip_consumed:
        if not is_dataset or train_data.cardinality() != tf.data.INFINITE_CARDINALITY:
            raise ValueError("skip_consumed=True needs train_data to be a repeated (infinite) "
                             "tf.data.Dataset")
        start = default[0].saved_step()
        if start:
            train_data = train_data.skip(start)
    return model.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                     validation_data=validation_data, validation_steps=validation_steps, callbacks=default,
                     verbose=verbose, shuffle=not is_dataset)
