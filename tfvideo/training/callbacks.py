"""Callbacks of the harness: JSONL metrics, TensorBoard (Keras's own) plus images, atomic checkpoints.

* :func:`tensorboard_callback`: ``keras.callbacks.TensorBoard`` as every run uses it (epoch scalars in
  ``train/`` and ``validation/``, ``epoch_learning_rate``, step = epoch index; no graph, no profiler).
* :class:`ImageSummary`: ``tf.summary.image`` of what ``image_fn(model)`` returns, into ``images/``,
  on the same epoch axis.
* :class:`JsonlLogger`: one JSON object per line at every epoch end (and every N steps).
* :class:`AtomicCheckpoint`: the ``last.keras`` / ``best.keras`` checkpoints, saved under a temporary
  name and renamed, the best one restartable from a logged best value.

View a run with ``tensorboard --logdir runs/``.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfvideo.checks import positive_int
from tfvideo.files import append_jsonl, atomic_path, atomic_write_text, read_jsonl

__all__ = ["AtomicCheckpoint", "ImageSummary", "JsonlLogger", "tensorboard_callback"]


def iterations(model) -> int:
    """``model.optimizer.iterations`` as an int: the number of optimizer steps taken."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def learning_rate(model) -> float:
    """Current learning rate; Keras evaluates a schedule at ``optimizer.iterations`` (the next step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def tensorboard_callback(log_dir) -> keras.callbacks.TensorBoard:
    """``keras.callbacks.TensorBoard(log_dir, update_freq="epoch", write_graph=False, profile_batch=0)``.

    Writes ``epoch_<metric>`` scalars (and ``epoch_learning_rate``) to ``log_dir/train`` and
    ``log_dir/validation`` at step = epoch index (0-based; a resumed run continues the numbering).
    """
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), update_freq="epoch", write_graph=False,
                                       profile_batch=0)


class JsonlLogger(keras.callbacks.Callback):
    """Appends one JSON object per line to ``path``: at each epoch end and, optionally, every N steps.

    Line fields: ``kind`` (``"epoch"`` or ``"step"``), ``epoch`` (1-based, as Keras prints it; for a
    step line the epoch in progress), ``step`` (``optimizer.iterations`` after the step, i.e. the
    global number of optimizer updates), ``lr`` (``optimizer.learning_rate``: for a
    ``LearningRateSchedule``, Keras evaluates it at the current ``iterations``, i.e. the rate of the
    next step), ``time`` (Unix wall time, s), ``elapsed`` (s since this ``fit`` started) and all Keras
    ``logs`` (running means over the epoch; ``val_*`` on epoch lines). A log key equal to one of those
    fields is overridden by the field.

    On resume the file is appended to; at the first epoch start of a ``fit``, lines whose ``step``
    exceeds the current ``optimizer.iterations`` (written by a killed run after its last backup) are
    removed (file rewritten atomically, with a warning), so every epoch has exactly one line.

    Args:
        path: the ``.jsonl`` file.
        every_n_steps: also write a ``"step"`` line whenever the global step reaches a multiple of it
            (None: epoch lines only).
    """

    def __init__(self, path, every_n_steps=None):
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = None if every_n_steps is None else positive_int(every_n_steps, "every_n_steps")
        self._synced = False

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._synced = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start_step = iterations(self.model)
        self._last_logged = self._epoch_start_step
        if not self._synced:  # first epoch of this fit: any backup has been restored by now
            self._synced = True
            self._drop_lines_after(self._epoch_start_step)

    def _drop_lines_after(self, step: int) -> None:
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [row for row in read_jsonl(self.path) if row.get("step", 0) <= step]
        if len(keep) < len(lines):  # lines after ``step``, or a torn last line
            warnings.warn(f"{self.path}: dropped {len(lines) - len(keep)} line(s) logged after step {step} "
                          "(where training restarts) or unreadable", stacklevel=2)
            import json

            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in keep))

    def _write(self, kind: str, epoch: int, logs) -> None:
        row = dict(logs or {})
        now = time.time()
        row.update(kind=kind, epoch=epoch + 1, step=iterations(self.model), lr=learning_rate(self.model),
                   time=now, elapsed=now - self._start)
        append_jsonl(self.path, row)

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps is None:
            return
        estimate = self._epoch_start_step + batch + 1  # no device sync unless a line is due
        if estimate // self.every_n_steps > self._last_logged // self.every_n_steps:
            self._last_logged = estimate
            self._write("step", self._epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write("epoch", epoch, logs)


class ImageSummary(keras.callbacks.Callback):
    """Writes images returned by ``image_fn(model)`` to TensorBoard at the end of every N-th epoch.

    Args:
        log_dir: TensorBoard folder; the images go to ``log_dir/images`` with ``tf.summary.image``
            (all images of each entry), at step = epoch index, the axis of the Keras scalars.
        image_fn: ``image_fn(model) -> {name: images}`` with ``images`` uint8 ``(N, H, W, 3)``
            (NumPy or tensor), e.g. flows of a fixed validation batch coloured with ``flow_to_color``.
        every_n_epochs: write after epochs ``every_n_epochs``, ``2 * every_n_epochs``, ... (1-based).
    """

    def __init__(self, log_dir, image_fn: Callable, every_n_epochs=1):
        super().__init__()
        if not callable(image_fn):
            raise TypeError(f"image_fn must be callable (model -> {{name: uint8 images}}), got {image_fn!r}")
        self.log_dir = Path(log_dir) / "images"
        self.image_fn = image_fn
        self.every_n_epochs = positive_int(every_n_epochs, "every_n_epochs")
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        images = self.image_fn(self.model)
        if not isinstance(images, Mapping):
            raise TypeError("image_fn must return a dict {name: uint8 (N, H, W, 3)}, "
                            f"got {type(images).__name__}")
        with self._writer.as_default():
            for name, value in images.items():
                value = np.asarray(keras.ops.convert_to_numpy(value))
                if value.dtype != np.uint8 or value.ndim != 4 or value.shape[-1] != 3 or not value.size:
                    raise ValueError(f"image_fn()[{name!r}] must be uint8 (N, H, W, 3), got {value.dtype} "
                                     f"{value.shape}")
                tf.summary.image(str(name), value, step=epoch, max_outputs=len(value))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (``.keras``) to ``path`` at epoch ends: every epoch, or only when
    ``monitor`` improves. The file is written under a temporary name and renamed, so a kill while
    saving never leaves a torn checkpoint.

    Args:
        path: the ``.keras`` file.
        monitor: a log key (e.g. ``"val_accuracy"``) to save only on improvement; None saves every
            epoch. An epoch whose logs lack ``monitor`` (or hold NaN) is not saved, with a warning.
        mode: ``"max"`` or ``"min"``: what improving means.
        initial_best: the best value so far (a resumed run passes the best value it logged), so the
            first epoch after a restart only replaces ``best.keras`` if it really is better.
    """

    def __init__(self, path, monitor=None, mode="max", initial_best=None):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.path = Path(path)
        self.monitor, self.mode, self.best = monitor, mode, initial_best

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is not None:
            value = (logs or {}).get(self.monitor)
            if value is None or not math.isfinite(float(value)):
                warnings.warn(f"{self.path.name}: '{self.monitor}' is not in the logs of epoch {epoch + 1} "
                              f"(have {sorted(logs or {})}); not saved", stacklevel=2)
                return
            if not self._improved(float(value)):
                return
            self.best = float(value)
        with atomic_path(self.path) as tmp:  # tmp ends in ".tmp.keras", as Keras wants
            self.model.save(tmp)
