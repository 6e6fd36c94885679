"""Step-exact backup and resume: a run killed mid-epoch continues at the step where its backup was made.

Keras 3.15's ``keras.callbacks.BackupAndRestore(save_freq=k)`` saves weights every ``k`` batches with
``{"epoch", "batch"}`` metadata, but on restore it only uses ``epoch``: the interrupted epoch is re-run
from its first step, so a run killed mid-epoch ends with more than ``epochs * steps_per_epoch``
optimizer steps, and its files are written in place (a kill while saving can leave a torn file).
:class:`StepBackupAndRestore` instead

* records ``{"epoch", "batch", "step", "steps_per_epoch", "weights"}``; the weights go to a new file
  ``ckpt-<step>.weights.h5`` and the metadata file, replaced atomically afterwards, is the commit point;
* on restore makes ``fit`` start at ``epoch`` (:func:`tfvideo.keras_internals.set_initial_epoch`) and
  ends that epoch after the ``steps_per_epoch - batch`` steps it still owes (by setting
  ``model.stop_training`` at that batch, which in Keras's fit loop only leaves the batch loop; the
  epoch is then validated and closed normally and the callback resets the flag in ``on_epoch_end``,
  before the fit loop checks it), so the total is exactly ``epochs * steps_per_epoch`` steps;
* defers a backup that falls on the last step of an epoch to after the epoch's ``on_epoch_end`` (so
  the epoch's validation, checkpoints and log line are done before the backup says they are).

Data order after a resume: a new process makes a new iterator of the training data, so the resumed run
continues with batches from the start of the pipeline rather than the ones the killed run would have
seen next. For a repeated, shuffled pipeline this is statistically the same thing;
``train(..., skip_consumed=True)`` replays an uninterrupted run exactly (see :func:`train`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras

from tfvideo import keras_internals
from tfvideo.checks import positive_int
from tfvideo.files import atomic_path, atomic_write_json
from tfvideo.training.callbacks import iterations

__all__ = ["StepBackupAndRestore"]


class StepBackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every ``save_freq`` steps and restores it exactly on the next ``fit``.

    Files in ``backup_dir``: ``ckpt-<step>.weights.h5`` (``model.save_weights``: model and optimizer
    variables, including ``optimizer.iterations``) and ``training_metadata.json``
    ``{"epoch", "batch", "step", "steps_per_epoch", "iterations", "weights"}``: the next step is batch
    ``batch`` (0-based) of epoch ``epoch`` (0-based), ``step`` batches have been trained in all. The
    metadata is replaced atomically after the weights file is complete, and older weights files are
    then deleted, so a kill at any moment leaves a consistent backup.

    Must come first in the callback list (:func:`build_callbacks` puts it there): it ends the resumed
    epoch early through ``model.stop_training`` and clears that flag in its ``on_epoch_end`` before a
    later callback (e.g. ``EarlyStopping``) may set it for real. (A stop requested by a later callback
    in ``on_train_batch_end`` of the last step of a resumed, shortened epoch is therefore lost.)
    With ``steps_per_execution > 1``, ``save_freq`` and the steps of an epoch should be multiples of it
    (callbacks only see every ``steps_per_execution``-th step). Resuming mid-epoch needs a known number
    of steps per epoch (``steps_per_epoch`` or a dataset of known cardinality).

    Args:
        backup_dir: the folder written to.
        save_freq: ``"epoch"`` or a number of steps (batches); in both cases a last backup is made when
            ``fit`` ends. A backup due on the last step of an epoch is made after that epoch's
            ``on_epoch_end`` (validation, checkpoints, log lines).
        restore_dir: the folder read on ``on_train_begin`` (default ``backup_dir``); a multi-worker
            non-chief task restores from the chief's backup and writes its own elsewhere.

    The backup of a finished run is kept (unlike Keras's ``delete_checkpoint=True`` default): re-running
    the command of a finished run then trains nothing instead of starting over.
    """

    def __init__(self, backup_dir, save_freq="epoch", restore_dir=None):
        super().__init__()
        if save_freq != "epoch":
            save_freq = positive_int(save_freq, "save_freq")
        self.backup_dir = Path(backup_dir)
        self.save_freq = save_freq
        self.restore_dir = Path(restore_dir if restore_dir is not None else backup_dir)

    @staticmethod
    def read_metadata(backup_dir) -> dict | None:
        """The ``training_metadata.json`` of ``backup_dir`` (None if absent or not from this class)."""
        path = Path(backup_dir) / "training_metadata.json"
        if not path.exists():
            return None
        meta = json.loads(path.read_text(encoding="utf-8"))
        return meta if "step" in meta and "weights" in meta else None

    def saved_step(self) -> int:
        """Steps trained according to the backup that ``on_train_begin`` will restore (0 if none)."""
        meta = self.read_metadata(self.restore_dir)
        return int(meta["step"]) if meta else 0

    # -- restore ---------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._steps = (self.params or {}).get("steps")
        self._epoch = self._batch = self._step = self._since_save = 0
        self._pending = self._ended_early = False
        self._resume = None
        self._restore()

    def _restore(self):
        meta = self.read_metadata(self.restore_dir)
        if meta is None:
            return
        model = self.model
        if not model.built:
            raise ValueError(f"To resume from {self.restore_dir}, the model must be built before fit() "
                             "(call it on a batch or build it).")
        with model.distribute_strategy.scope():
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(self.restore_dir / meta["weights"]))
        epoch, batch = int(meta["epoch"]), int(meta["batch"])
        if meta.get("steps_per_epoch") != self._steps:
            warnings.warn(f"resuming from a backup made with steps_per_epoch={meta.get('steps_per_epoch')} "
                          f"with steps_per_epoch={self._steps}", stacklevel=2)
        if batch and self._steps is None:
            raise ValueError("resuming mid-epoch needs steps_per_epoch (or data of known cardinality)")
        if batch and batch >= self._steps:
            epoch, batch = epoch + 1, 0
        self._step = int(meta["step"])
        self._resume = (epoch, batch)
        keras_internals.set_initial_epoch(model, epoch)

    # -- bookkeeping -----------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if self._pending:
            self._save()
        if self._resume is not None and epoch == self._resume[0]:
            self._batch = self._resume[1]
        else:
            self._batch = 0
            if self._resume is None and self._step == 0 and self._steps:  # fit(initial_epoch=...)
                self._step = epoch * self._steps
        self._resume = None
        self._epoch, self._last_end = epoch, -1

    def on_train_batch_end(self, batch, logs=None):
        done = batch - self._last_end  # > 1 with steps_per_execution
        self._last_end = batch
        self._batch += done
        self._step += done
        self._since_save += done
        epoch_done = self._steps is not None and self._batch >= self._steps
        if epoch_done and batch + 1 < self._steps and not self.model.stop_training:
            self.model.stop_training = True  # leaves the batch loop; cleared in on_epoch_end
            self._ended_early = True
        if self.save_freq != "epoch" and self._since_save >= self.save_freq:
            if epoch_done:
                self._pending = True
            else:
                self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self._ended_early:
            self.model.stop_training = False
            self._ended_early = False
        if self._steps is None or self._batch >= self._steps:  # not if another callback stopped it
            self._epoch, self._batch = epoch + 1, 0
        if self.save_freq == "epoch":
            self._pending = True

    def on_train_end(self, logs=None):
        if self._pending or self._since_save:
            self._save()
        keras_internals.set_initial_epoch(self.model, None)

    def _save(self):
        self._pending, self._since_save = False, 0
        folder = self.backup_dir
        folder.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{self._step:09d}.weights.h5"
        with atomic_path(folder / name) as tmp:  # tmp keeps the .weights.h5 ending Keras wants
            self.model.save_weights(tmp, overwrite=True)
        atomic_write_json(folder / "training_metadata.json",
                          {"epoch": self._epoch, "batch": self._batch, "step": self._step,
                           "steps_per_epoch": self._steps, "iterations": iterations(self.model),
                           "weights": name}, indent=None)
        for old in folder.glob("ckpt-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
