"""The training harness shared by every recipe: strategy, run folder, callbacks, exact resume.

Run folder layout (:class:`RunDir`)::

    RUN/config.json              the resolved config of the run (first use; a resume only warns on changes)
    RUN/metrics.jsonl            one JSON object per line: every epoch end (+ every N steps if asked)
    RUN/checkpoints/best.keras   best model so far on ``monitor`` (only when a monitor is available)
    RUN/checkpoints/last.keras   model at the end of the latest epoch
    RUN/backup/                  step-exact backup (weights + optimizer state + position) for resuming
    RUN/tensorboard/             epoch scalars (train/, validation/; ScalarSummary) and images/ (ImageSummary)
    RUN/eval/                    left to evaluation scripts
    RUN/workers/<type>-<id>/     multi-worker only: what non-chief workers write (never read back)

Every file is written under a temporary name in its folder and renamed (``os.replace``) when complete;
``metrics.jsonl`` is appended one whole line per ``write`` call, flushed at once.

Example (a recipe does the same with its own model and ``tf.data`` pipelines)::

    >>> import keras, numpy as np, tensorflow as tf
    >>> from tfvideo.training import resolve_strategy, replica_batch, train
    >>> strategy = resolve_strategy("auto")         # once per process; later calls return the same one
    >>> batch = 8                                   # the GLOBAL batch; replica_batch(batch, strategy) each
    >>> x, y = np.random.rand(64, 4).astype("float32"), np.random.randint(0, 3, 64)
    >>> data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64).repeat().batch(batch)
    >>> with strategy.scope():                      # build AND compile inside the scope
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    ...     model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = train(model, data, run_dir="/tmp/tfvideo_run", epochs=2, steps_per_epoch=4,
    ...                 validation_data=data.take(2), backup_every_steps=2, verbose=0)  # doctest: +SKIP

Re-running the same command after a crash or a kill resumes from the last backup; re-running it after
the run finished trains nothing (the backup is kept on purpose, see :func:`build_callbacks`).

Mid-epoch resume: what Keras does and what this module adds. Keras 3.15's
``keras.callbacks.BackupAndRestore(save_freq=k)`` saves weights every ``k`` batches together with
``{"epoch", "batch"}`` metadata, but on restore it only uses ``epoch`` (``model._initial_epoch``): the
interrupted epoch is re-run from its first step, so a run killed mid-epoch ends with more than
``epochs * steps_per_epoch`` optimizer steps (its ``batch`` counter is also not carried over: after a
resume it writes ``epoch`` 0 until the first epoch ends). Its files are also written in place (a kill
while saving can leave a torn file). :class:`StepBackupAndRestore` (a subclass) instead

* records ``{"epoch", "batch", "step", "steps_per_epoch", "weights"}``; the weights go to a new file
  ``ckpt-<step>.weights.h5`` and the metadata file, replaced atomically afterwards, is the commit point;
* on restore sets the initial epoch to ``epoch`` and ends that epoch after the ``steps_per_epoch -
  batch`` steps it still owes (by setting ``model.stop_training`` at that batch, which in Keras's fit
  loop only leaves the batch loop; the epoch is then validated and closed normally and the callback
  resets the flag in ``on_epoch_end``, before the fit loop checks it), so the total is exactly
  ``epochs * steps_per_epoch`` steps;
* defers a backup that falls on the last step of an epoch to after the epoch's ``on_epoch_end`` (so
  the epoch's validation, checkpoints and log line are done before the backup says they are).

Data order after a resume: a new process makes a new iterator of ``train_data``, so the resumed run
continues with batches from the start of the pipeline rather than the ones the killed run would have
seen next (the consumed steps are not replayed: the epoch just gets fewer steps). For a repeated,
shuffled pipeline this is statistically the same thing. ``train(..., skip_consumed=True)`` instead
applies ``train_data.skip(step)`` to a repeated (infinite) dataset, which reproduces an uninterrupted
run exactly for a deterministic pipeline (fixed seeds, single worker), at the price of producing and
dropping ``step`` batches when resuming.

``metrics.jsonl`` after a resume: lines whose ``step`` is beyond the restored optimizer step (written by
the killed run after its last backup) are dropped when training restarts (with a warning), so every
epoch has exactly one line. TensorBoard event files are append-only: a killed run's events after its
last backup stay there and are written again by the resumed run.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfvideo.viz import atomic_write_text

__all__ = [
    "ImageSummary",
    "JsonlLogger",
    "RunDir",
    "ScalarSummary",
    "StepBackupAndRestore",
    "build_callbacks",
    "describe_strategy",
    "replica_batch",
    "resolve_strategy",
    "train",
]


# ----------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------


def _jsonable(value):
    """Converts ``value`` to JSON types (NumPy/TF scalars to numbers, tuples to lists, else ``str``)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(obj):
    if hasattr(obj, "numpy"):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _read_jsonl(path) -> list[dict]:
    """The JSON objects of a ``.jsonl`` file; a torn (unparseable) line, e.g. from a kill, is skipped."""
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    return rows


# ----------------------------------------------------------------------------------------------------
# strategy
# ----------------------------------------------------------------------------------------------------
_KINDS = ("default", "mirrored", "multiworker", "onedevice")
_COLLECTIVE = ("mirrored", "multiworker")
_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}


def _choose_strategy_kind(tf_config_env: str | None, num_gpus: int) -> str:
    """The strategy kind ``"auto"`` resolves to (pure function of the environment).

    Args:
        tf_config_env: the value of the ``TF_CONFIG`` environment variable, or None/"" if unset.
        num_gpus: number of visible GPUs.

    Returns:
        ``"multiworker"`` if ``TF_CONFIG``'s ``cluster`` lists more than one task of type ``chief`` or
        ``worker`` (together), else ``"mirrored"`` if ``num_gpus >= 2``, else ``"default"``.
    """
    if tf_config_env:
        try:
            cluster = json.loads(tf_config_env).get("cluster", {})
        except (ValueError, AttributeError) as e:
            raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster' entry: {e}") from None
        if sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) > 1:
            return "multiworker"
    return "mirrored" if num_gpus >= 2 else "default"


def _device_key(device) -> str:
    """``"/cpu:1"`` and ``"/job:localhost/replica:0/task:0/device:CPU:1"`` both give ``"CPU:1"``."""
    spec = tf.DeviceSpec.from_string(str(device))
    if not spec.device_type:
        raise ValueError(f"devices entries must name a device such as '/gpu:0', got {device!r}")
    return f"{spec.device_type.upper()}:{spec.device_index or 0}"


def _strategy_key(strategy: tf.distribute.Strategy) -> tuple:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return ("multiworker", None)
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return ("mirrored", tuple(_device_key(d) for d in strategy.extended.worker_devices))
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return ("onedevice", (_device_key(strategy.extended.worker_devices[0]),))
    return ("default", None)


def _register(key: tuple, make: Callable[[], tf.distribute.Strategy]) -> tf.distribute.Strategy:
    if key in _STRATEGIES:
        return _STRATEGIES[key]
    if key[0] in _COLLECTIVE:
        for other in _STRATEGIES:
            if other[0] in _COLLECTIVE:
                raise RuntimeError(
                    f"a {other[0]} strategy {other[1] or ''} already exists in this process and a "
                    f"different one ({key[0]} {key[1] or ''}) was asked for: TensorFlow reuses the "
                    "collective instance keys of the first strategy, so the second one's all-reduce "
                    "can fail ('Shape mismatch in the collective instance'). Create one strategy per "
                    "process (run a new process for another device set)."
                )
    _STRATEGIES[key] = make()
    return _STRATEGIES[key]


def resolve_strategy(name="auto", devices=None) -> tf.distribute.Strategy:
    """Returns the process's ``tf.distribute`` strategy, creating it on first use.

    Args:
        name: ``"auto"``: ``MultiWorkerMirroredStrategy`` when the ``TF_CONFIG`` environment variable
            lists more than one worker (chief + workers; the way to grow past one machine: start the
            same command on each machine with its own ``TF_CONFIG``), else ``MirroredStrategy`` over
            the visible GPUs when there are at least 2, else the default strategy.
            ``"default"``: ``tf.distribute.get_strategy()`` (one device, TF's placement).
            ``"mirrored"``: ``MirroredStrategy(devices)``, ``devices`` defaulting to all visible GPUs.
            ``"multiworker"``: ``MultiWorkerMirroredStrategy()`` (cluster from ``TF_CONFIG``).
            ``"onedevice"``: ``OneDeviceStrategy(devices[0])``, default ``"/gpu:0"`` if a GPU is
            visible, else ``"/cpu:0"``.
            A ``tf.distribute.Strategy`` instance is adopted: registered as the process's strategy
            (so that later calls asking for the same kind and devices return it) and returned.
        devices: list of device names for ``"mirrored"``/``"onedevice"``, e.g. ``["/cpu:0", "/cpu:1"]``.

    Returns:
        The strategy. Calls with arguments resolving to the same kind and devices return the same
        object.

    Raises:
        RuntimeError: a mirrored or multi-worker strategy already exists and a different one is asked
            for (TensorFlow limitation: a second collective strategy in one process can reuse the
            first one's collective keys and fail in its all-reduce).
        ValueError: unknown ``name``, ``devices`` given for a kind that takes none, or no device.
    """
    if isinstance(name, tf.distribute.Strategy):
        return _register(_strategy_key(name), lambda: name)
    if name not in ("auto",) + _KINDS:
        raise ValueError(f"name must be one of {('auto',) + _KINDS} or a tf.distribute.Strategy, "
                         f"got {name!r}")
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_logical_devices("GPU")))]
    kind = _choose_strategy_kind(os.environ.get("TF_CONFIG"), len(gpus)) if name == "auto" else name
    if devices is not None and kind in ("default", "multiworker"):
        raise ValueError(f"devices is only used by 'mirrored' and 'onedevice', not {kind!r}")
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "multiworker":
        return _register(("multiworker", None), tf.distribute.MultiWorkerMirroredStrategy)
    devices = list(devices) if devices is not None else (gpus or ([] if kind == "mirrored" else ["/cpu:0"]))
    if not devices:
        raise ValueError(f"{kind!r} needs at least one device: pass devices=[...] (no GPU is visible)")
    if kind == "onedevice":
        return _register(("onedevice", (_device_key(devices[0]),)),
                         lambda: tf.distribute.OneDeviceStrategy(devices[0]))
    key = ("mirrored", tuple(_device_key(d) for d in devices))
    return _register(key, lambda: tf.distribute.MirroredStrategy(devices))


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """One line for logs, e.g. ``"MirroredStrategy: 2 replicas on CPU:0, CPU:1"``.

    Multi-worker strategies also give the number of workers and this task's type and index.
    """
    kind = type(strategy).__name__.lstrip("_")
    n = strategy.num_replicas_in_sync
    try:
        where = "on " + ", ".join(_device_key(d) for d in strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        where = "on TensorFlow's default device placement"
    text = f"{kind}: {n} replica{'s' if n != 1 else ''} {where}"
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if cluster:
        workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker"))
        text += f" ({workers} workers; this is {resolver.task_type} {resolver.task_id})"
    return text


def replica_batch(global_batch, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch: ``global_batch / strategy.num_replicas_in_sync``.

    Raises:
        ValueError (naming ``batch_size``) if ``global_batch`` is not a positive integer divisible by
        the number of replicas.
    """
    global_batch = _positive_int(global_batch, "batch_size (the global batch)")
    n = strategy.num_replicas_in_sync
    if global_batch % n:
        raise ValueError(f"batch_size={global_batch} (the global batch) must be divisible by the number "
                         f"of replicas, {n} ({describe_strategy(strategy)})")
    return global_batch // n


def _is_chief_task(task_type, task_id, cluster: Mapping) -> bool:
    """Whether a task writes the run's files: ``chief``, or worker 0 when the cluster has no chief, or
    any task when there is no cluster."""
    if not cluster or task_type is None:
        return True
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)


# ----------------------------------------------------------------------------------------------------
# run folder
# ----------------------------------------------------------------------------------------------------
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

    def worker(self, task_type, task_id) -> RunDir:
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
        config = _jsonable(dict(config))
        saved = self.read_config()
        if saved is None:
            atomic_write_text(self.config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
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


# ----------------------------------------------------------------------------------------------------
# callbacks
# ----------------------------------------------------------------------------------------------------
def _iterations(model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def _learning_rate(model) -> float:
    """Current learning rate; Keras evaluates a schedule at ``optimizer.iterations`` (the next step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class JsonlLogger(keras.callbacks.Callback):
    """Appends one JSON object per line to ``path``: at each epoch end and, optionally, every N steps.

    Line fields: ``kind`` (``"epoch"`` or ``"step"``), ``epoch`` (1-based, as Keras prints it; for a
    step line the epoch in progress), ``step`` (``optimizer.iterations`` after the step, i.e. the
    global number of optimizer updates), ``lr`` (``optimizer.learning_rate``: for a
    ``LearningRateSchedule``, Keras evaluates it at the current ``iterations``, i.e. the rate of the
    next step), ``time`` (Unix wall time, s), ``elapsed`` (s since this ``fit`` started) and all Keras
    ``logs`` (running means over the epoch; ``val_*`` on epoch lines). A log key equal to one of those
    fields is overridden by the field.

    Each line is written with one ``write`` and flushed. On resume the file is appended to; at the first
    epoch start of a ``fit``, lines whose ``step`` exceeds the current ``optimizer.iterations`` (written
    by a killed run after its last backup) are removed (file rewritten atomically, with a warning).

    Args:
        path: the ``.jsonl`` file.
        every_n_steps: also write a ``"step"`` line whenever the global step reaches a multiple of it
            (None: epoch lines only).
    """

    def __init__(self, path, every_n_steps=None):
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = None if every_n_steps is None else _positive_int(every_n_steps, "every_n_steps")
        self._synced = False

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._synced = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start_step = _iterations(self.model)
        self._last_logged = self._epoch_start_step
        if not self._synced:  # first epoch of this fit: any backup has been restored by now
            self._synced = True
            self._drop_lines_after(self._epoch_start_step)

    def _drop_lines_after(self, step: int) -> None:
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [row for row in _read_jsonl(self.path) if row.get("step", 0) <= step]
        if len(keep) < len(lines):  # lines after ``step``, or a torn last line
            warnings.warn(f"{self.path}: dropped {len(lines) - len(keep)} line(s) logged after step {step} "
                          "(where training restarts) or unreadable", stacklevel=2)
            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in keep))

    def _write(self, kind: str, epoch: int, logs) -> None:
        row = {k: _jsonable(v) for k, v in (logs or {}).items()}
        now = time.time()
        row.update(kind=kind, epoch=epoch + 1, step=_iterations(self.model), lr=_learning_rate(self.model),
                   time=now, elapsed=now - self._start)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps is None:
            return
        estimate = self._epoch_start_step + batch + 1  # no device sync unless a line is due
        if estimate // self.every_n_steps > self._last_logged // self.every_n_steps:
            self._last_logged = estimate
            self._write("step", self._epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write("epoch", epoch, logs)


def _write_summary(tag: str, tensor, step: int, plugin: str) -> None:
    """Writes one TensorBoard summary with core TF only (``tf.summary.write``; the ``tensorboard``
    package, which ``tf.summary.scalar``/``image`` need, is not a TF 2.21 dependency)."""
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin))
    tf.summary.write(tag, tensor, step=step, metadata=metadata)


class ScalarSummary(keras.callbacks.Callback):
    """Epoch-end scalars for TensorBoard, like ``keras.callbacks.TensorBoard(update_freq="epoch")``.

    Writes ``epoch_<name>`` for every training log to ``log_dir/train`` (plus ``epoch_learning_rate``)
    and for every ``val_<name>`` log to ``log_dir/validation`` (as ``epoch_<name>``), the layout and
    tags of the Keras callback, in the TensorBoard "scalars" plugin format. Choice: the step is
    ``optimizer.iterations`` (Keras uses the epoch index), the same axis as :class:`ImageSummary` and
    ``metrics.jsonl``. Why not the Keras callback: it needs the ``tensorboard`` package, which
    TensorFlow 2.21 no longer installs; these files need only TensorFlow.

    Args:
        log_dir: the TensorBoard folder.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers = {}

    def on_train_begin(self, logs=None):
        self._writers = {part: tf.summary.create_file_writer(str(self.log_dir / part))
                         for part in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        step = _iterations(self.model)
        values = {"train": {"learning_rate": _learning_rate(self.model)}, "validation": {}}
        for name, value in (logs or {}).items():
            part = "validation" if name.startswith("val_") else "train"
            values[part][name.removeprefix("val_")] = value
        for part, scalars in values.items():
            with self._writers[part].as_default():
                for name, value in scalars.items():
                    _write_summary(f"epoch_{name}", tf.constant(float(value), tf.float32), step, "scalars")
            self._writers[part].flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class ImageSummary(keras.callbacks.Callback):
    """Writes images returned by ``image_fn(model)`` to TensorBoard at the end of every N-th epoch.

    Args:
        log_dir: TensorBoard folder; the images go to ``log_dir/images`` at ``step =
            optimizer.iterations``, all images of each entry, in the format of ``tf.summary.image``
            (TensorBoard "images" plugin: a string tensor ``[width, height, png_1, ..., png_N]``),
            written with core TF only (see :class:`ScalarSummary`).
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
        self.every_n_epochs = _positive_int(every_n_epochs, "every_n_epochs")
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
        step = _iterations(self.model)
        with self._writer.as_default():
            for name, value in images.items():
                value = np.asarray(keras.ops.convert_to_numpy(value))
                if value.dtype != np.uint8 or value.ndim != 4 or value.shape[-1] != 3 or not value.size:
                    raise ValueError(f"image_fn()[{name!r}] must be uint8 (N, H, W, 3), got {value.dtype} "
                                     f"{value.shape}")
                pngs = [tf.io.encode_png(image) for image in value]
                size = [tf.constant(str(value.shape[2])), tf.constant(str(value.shape[1]))]
                _write_summary(str(name), tf.stack(size + pngs), step, "images")
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class StepBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that resumes mid-epoch at the exact step (see module doc).

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
    (callbacks only see every ``steps_per_execution``-th step). Resuming mid-epoch needs a known
    number of steps per epoch (``steps_per_epoch`` or a dataset of
    known cardinality). On ``on_train_end`` it resets ``model._initial_epoch`` (which the Keras class
    leaves set, silently changing the start epoch of a later ``fit`` of the same model).

    Args:
        backup_dir: the folder written to.
        save_freq: ``"epoch"`` or a number of steps (batches); in both cases a last backup is made when
            ``fit`` ends. A backup due on the last step of an epoch is made after that epoch's
            ``on_epoch_end`` (validation, checkpoints, log lines).
        delete_checkpoint: delete ``backup_dir`` when ``fit`` ends. Default False (unlike Keras): the
            backup of a finished run makes re-running its command a no-op instead of a new run.
        restore_dir: the folder read on ``on_train_begin`` (default ``backup_dir``); a multi-worker
            non-chief task restores from the chief's backup and writes its own elsewhere.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=False, restore_dir=None):
        if save_freq != "epoch":
            save_freq = _positive_int(save_freq, "save_freq")
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint)
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
        self._load_model()

    def _load_model(self):
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
        model._initial_epoch = epoch  # read by Keras's fit loop after on_train_begin

    # -- bookkeeping -----------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if self._pending:
            self._save_model()
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
                self._save_model()

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
            self._save_model()
        self.model._initial_epoch = None
        super().on_train_end(logs)

    def _save_model(self):
        self._pending, self._since_save = False, 0
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{self._step:09d}.weights.h5"
        tmp = folder / f"ckpt-{self._step:09d}.partial.weights.h5"
        self.model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, folder / name)
        meta = {"epoch": self._epoch, "batch": self._batch, "step": self._step,
                "steps_per_epoch": self._steps, "iterations": _iterations(self.model), "weights": name}
        atomic_write_text(folder / "training_metadata.json", json.dumps(meta) + "\n")
        for old in folder.glob("ckpt-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


class _AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` to a fixed ``.keras`` path that saves to ``<stem>.partial.keras`` and renames."""

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        tmp = os.path.join(os.path.dirname(final), Path(final).stem + ".partial.keras")
        self.filepath = tmp
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            self.filepath = final
        if os.path.exists(tmp):
            os.replace(tmp, final)


def _best_logged(metrics_path, monitor: str, mode: str, max_step: int):
    """Best ``monitor`` value on the epoch lines of ``metrics_path`` up to ``max_step`` (None if none)."""
    values = [row[monitor] for row in _read_jsonl(metrics_path)
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
       "epoch"``, ``delete_checkpoint=False`` (choice: the backup of a finished run is kept so that
       re-running the command does not start over; delete ``backup/`` to retrain). First, because it
       ends a resumed epoch early through ``model.stop_training``.
    2. ``best.keras``: ``ModelCheckpoint(save_best_only=True, monitor=monitor, mode=mode)`` if
       ``monitor`` is not None. On resume its starting "best" is the best ``monitor`` value logged in
       ``metrics.jsonl`` up to the restored step (Keras would otherwise overwrite ``best.keras`` with
       the first epoch after a restart, however bad).
    3. ``last.keras``: ``ModelCheckpoint`` at every epoch end. Both checkpoints are full ``.keras``
       models saved to a ``.partial.keras`` file and renamed.
    4. :class:`ScalarSummary` on ``run_dir.tensorboard`` if ``tensorboard``: epoch scalars only (what
       ``keras.callbacks.TensorBoard(update_freq="epoch", profile_batch=0, write_graph=False)``
       writes, without needing the ``tensorboard`` package).
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
        save_freq = _positive_int(backup_every_steps, "backup_every_steps")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    backup = StepBackupAndRestore(run_dir.backup, save_freq=save_freq, delete_checkpoint=False,
                                  restore_dir=restore_dir)
    callbacks = [backup]
    if monitor:
        best = None
        if run_dir.best_checkpoint.exists():
            best = _best_logged(run_dir.metrics, monitor, mode, backup.saved_step())
        callbacks.append(_AtomicModelCheckpoint(str(run_dir.best_checkpoint), monitor=monitor, mode=mode,
                                                save_best_only=True, initial_value_threshold=best))
    callbacks.append(_AtomicModelCheckpoint(str(run_dir.last_checkpoint)))
    if tensorboard:
        callbacks.append(ScalarSummary(run_dir.tensorboard))
    callbacks.append(JsonlLogger(run_dir.metrics, every_n_steps=log_every_steps))
    if image_fn is not None:
        callbacks.append(ImageSummary(run_dir.tensorboard, image_fn))
    callbacks.extend(extra)
    return callbacks


# ----------------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------------
def train(model, train_data, *, run_dir, epochs, steps_per_epoch, validation_data=None, validation_steps=None,
          callbacks=None, config=None, verbose="auto", monitor="val_accuracy", mode="max",
          backup_every_steps=None, tensorboard=True, image_fn=None, log_every_steps=None,
          skip_consumed=False) -> keras.callbacks.History:
    """Trains ``model`` in ``run_dir`` with the default callbacks; resumes from its backup if any.

    The model must have been built and compiled inside ``strategy.scope()`` (the strategy of
    :func:`resolve_strategy`); ``train_data`` and ``validation_data`` yield *global* batches (Keras
    splits each across the replicas: use :func:`replica_batch` to check divisibility). ``train_data``
    should repeat (``steps_per_epoch`` steps are drawn from one iterator across epochs) and be
    shuffled by the pipeline itself (it is not shuffled here).

    Args:
        model: a built, compiled ``keras.Model``.
        train_data: a ``tf.data.Dataset`` (or anything ``model.fit`` takes) of ``(x, y[, weights])``.
        run_dir: a :class:`RunDir` or path.
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
            an infinite ``tf.data.Dataset``), to replay an uninterrupted run exactly (see module doc).

    Multi-worker: the chief (or worker 0 without a chief) writes ``run_dir``, which must be on a file
    system shared by all tasks; the others write to ``run_dir/workers/<type>-<id>`` and restore from
    the chief's backup.

    Returns:
        The ``History`` of this call (only the epochs run by it).
    """
    epochs = _positive_int(epochs, "epochs")
    steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch")
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
