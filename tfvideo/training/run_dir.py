"""The run folder: one experiment's files, its config record and its lock.

Layout (:class:`RunDir`)::

    RUN/.lock                    held by the live process training in RUN (a second one is refused)
    RUN/config.json              the resolved config of the run (first use; a resume only warns on changes)
    RUN/metrics.jsonl            one JSON object per line: every epoch end (+ every N steps if asked)
    RUN/checkpoints/best.keras   best model so far on ``monitor`` (only when a monitor is available)
    RUN/checkpoints/last.keras   model at the end of the latest epoch
    RUN/backup/                  step-exact backup (weights + optimizer state + position) for resuming
    RUN/tensorboard/             keras.callbacks.TensorBoard's train/ and validation/, and images/
    RUN/eval/                    left to evaluation scripts
    RUN/workers/<type>-<id>/     multi-worker only: what non-chief workers write (never read back)

Every file is written through :mod:`tfvideo.files` (temporary name, then ``os.replace``);
``metrics.jsonl`` is appended one whole line per write, flushed at once.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Mapping

from tfvideo.files import FolderLock, atomic_write_json, jsonable

__all__ = ["RunDir"]


def _flatten(config: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class RunDir:
    """An experiment folder (layout in the module docstring). Folders are created on construction.

    Args:
        path: the folder (created with its parents if missing).
    """

    def __init__(self, path):
        self.path = Path(path)
        for folder in (self.path, self.checkpoints, self.backup, self.tensorboard, self.eval):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.path, "run folder")

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config_path = property(lambda self: self.path / "config.json", doc="``config.json``.")
    metrics = property(lambda self: self.path / "metrics.jsonl", doc="``metrics.jsonl``.")
    checkpoints = property(lambda self: self.path / "checkpoints", doc="``checkpoints/``.")
    best_checkpoint = property(lambda self: self.checkpoints / "best.keras", doc="``best.keras``.")
    last_checkpoint = property(lambda self: self.checkpoints / "last.keras", doc="``last.keras``.")
    backup = property(lambda self: self.path / "backup", doc="``backup/`` (StepBackupAndRestore).")
    tensorboard = property(lambda self: self.path / "tensorboard", doc="``tensorboard/``.")
    eval = property(lambda self: self.path / "eval", doc="``eval/`` (for evaluation outputs).")

    @staticmethod
    def check_new_or_resume(path, resume: bool) -> str | None:
        """What is wrong with starting (``resume=False``) or resuming a run in ``path``, or None.

        A folder holding a ``config.json`` is a run already: starting another one there is refused
        (pass ``resume``); resuming needs that ``config.json``. Reads only; call it before any work.
        """
        config = Path(path) / "config.json"
        if config.exists() and not resume:
            return f"{path} holds a run already; pass --resume to continue it or choose another --run-dir"
        if resume and not config.exists():
            return f"--resume: {path} holds no run to resume (no config.json)"
        return None

    def lock(self) -> "RunDir":
        """Takes the folder's lock for the life of this process (see :class:`tfvideo.files.FolderLock`).

        Raises:
            tfvideo.files.FolderBusyError: another live process trains in this folder.
        """
        self._lock.acquire()
        return self

    def claim(self, chief: bool = True) -> "RunDir":
        """:meth:`lock` for the process that writes the folder (the chief); other tasks of a multi-worker
        run write to :meth:`worker` folders and take no lock here. Returns ``self``."""
        return self.lock() if chief else self

    def unlock(self) -> None:
        self._lock.release()

    def worker(self, task_type, task_id) -> "RunDir":
        """The private folder ``workers/<type>-<id>/`` of a non-chief multi-worker task."""
        return RunDir(self.path / "workers" / f"{task_type}-{task_id}")

    def read_config(self) -> dict | None:
        """The saved ``config.json``, or None if there is none."""
        if not self.config_path.exists():
            return None
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def write_config(self, config: Mapping) -> dict:
        """Saves ``config`` as ``config.json`` on first use; on later uses compares instead.

        Choice: an existing ``config.json`` is never overwritten (it records how the run started). If
        ``config`` differs from it, a ``UserWarning`` lists the differing keys (nested keys dotted,
        e.g. ``"optimizer.lr"``) with old and new values. Values are compared after a JSON round trip
        (tuples equal lists; non-JSON values such as paths are compared as ``str``).

        Returns:
            ``{key: (saved, new)}`` for the differing keys (empty on first use or if equal); a key
            missing on one side has the value ``"<missing>"`` there.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping (dict), got {type(config).__name__}")
        config = jsonable(dict(config))
        saved = self.read_config()
        if saved is None:
            atomic_write_json(self.config_path, config, sort_keys=True)
            return {}
        old, new = _flatten(saved), _flatten(config)
        keys = sorted(old.keys() | new.keys())
        pairs = {k: (old.get(k, "<missing>"), new.get(k, "<missing>")) for k in keys}
        diff = {k: (a, b) for k, (a, b) in pairs.items() if a != b}
        if diff:
            lines = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            warnings.warn(f"{self.config_path} differs from the config of this run (kept the saved one): "
                          f"{lines}", stacklevel=2)
        return diff
