"""The process's ``tf.distribute`` strategy: choice, one per process, and who writes the run's files.

Collective strategies (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``) must be created before
TensorFlow's runtime starts when several workers are involved ("Collective ops must be configured at
program startup"), so :func:`resolve_strategy` decides the kind from ``TF_CONFIG`` and the *physical*
device list (which does not start the runtime) and creates the strategy before anything else touches
TensorFlow. A recipe calls it first, right after checking its arguments.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Mapping

import tensorflow as tf

from tfvideo import keras_internals
from tfvideo.checks import positive_int

__all__ = ["describe_strategy", "is_chief", "num_workers", "replica_batch", "resolve_strategy", "task_name",
           "tf_config_workers"]

_KINDS = ("default", "mirrored", "multiworker", "onedevice")
_COLLECTIVE = ("mirrored", "multiworker")
_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}


def _cluster_workers(cluster: Mapping) -> int:
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def tf_config_workers(tf_config_env: str | None = None) -> int:
    """Training tasks (``chief`` + ``worker``) that ``TF_CONFIG`` (default: the environment's) lists;
    0 when it is unset. Reads only the variable: TensorFlow's runtime is not started."""
    tf_config_env = os.environ.get("TF_CONFIG") if tf_config_env is None else tf_config_env
    if not tf_config_env:
        return 0
    try:
        cluster = json.loads(tf_config_env).get("cluster", {})
    except (ValueError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster' entry: {e}") from None
    return _cluster_workers(cluster)


def _choose_strategy_kind(tf_config_env: str | None, num_gpus: int) -> str:
    """The strategy kind ``"auto"`` resolves to (pure function of the environment).

    Returns ``"multiworker"`` if ``TF_CONFIG``'s ``cluster`` lists more than one task of type ``chief``
    or ``worker`` (together), else ``"mirrored"`` if ``num_gpus >= 2``, else ``"default"``.
    """
    if tf_config_env and tf_config_workers(tf_config_env) > 1:
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
                    "process (run a new process for another device set).")
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
            first one's collective keys and fail in its all-reduce); or a multi-worker strategy is
            asked for after TensorFlow's runtime started (create it first thing in the program).
        ValueError: unknown ``name``, ``devices`` given for a kind that takes none, or no device.
    """
    if isinstance(name, tf.distribute.Strategy):
        return _register(_strategy_key(name), lambda: name)
    if name not in ("auto",) + _KINDS:
        raise ValueError(f"name must be one of {('auto',) + _KINDS} or a tf.distribute.Strategy, "
                         f"got {name!r}")
    # physical devices: listing them does not start the runtime (logical devices would, and then a
    # multi-worker strategy can no longer configure its collective ops)
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]
    kind = _choose_strategy_kind(os.environ.get("TF_CONFIG"), len(gpus)) if name == "auto" else name
    if devices is not None and kind in ("default", "multiworker"):
        raise ValueError(f"devices is only used by 'mirrored' and 'onedevice', not {kind!r}")
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "multiworker":
        return _register(("multiworker", None), _multi_worker)
    devices = list(devices) if devices is not None else (gpus or ([] if kind == "mirrored" else ["/cpu:0"]))
    if not devices:
        raise ValueError(f"{kind!r} needs at least one device: pass devices=[...] (no GPU is visible)")
    if kind == "onedevice":
        return _register(("onedevice", (_device_key(devices[0]),)),
                         lambda: tf.distribute.OneDeviceStrategy(devices[0]))
    key = ("mirrored", tuple(_device_key(d) for d in devices))
    return _register(key, lambda: tf.distribute.MirroredStrategy(devices))


def _multi_worker() -> tf.distribute.Strategy:
    try:
        return keras_internals.reduce_nests(tf.distribute.MultiWorkerMirroredStrategy())
    except RuntimeError as err:
        if "program startup" not in str(err):
            raise
        raise RuntimeError(
            "MultiWorkerMirroredStrategy must be created before TensorFlow's runtime starts (before any "
            "tensor, device listing or model is created in this process): call "
            "tfvideo.training.resolve_strategy() first thing in the program") from err


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """One line for logs, e.g. ``"MirroredStrategy: 2 replicas on CPU:0, CPU:1"``.

    Multi-worker strategies also give the number of workers and this task's type and index.
    """
    kind = type(strategy).__name__.lstrip("_")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        kind = "MultiWorkerMirroredStrategy"  # not its implementation's name, CollectiveAllReduceStrategy
    n = strategy.num_replicas_in_sync
    try:
        where = "on " + ", ".join(_device_key(d) for d in strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        where = "on TensorFlow's default device placement"
    text = f"{kind}: {n} replica{'s' if n != 1 else ''} {where}"
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if cluster:
        text += f" ({_cluster_workers(cluster)} workers; this is {resolver.task_type} {resolver.task_id})"
    return text


def replica_batch(global_batch, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch: ``global_batch / strategy.num_replicas_in_sync``.

    Raises:
        ValueError (naming ``batch_size``) if ``global_batch`` is not a positive integer divisible by
        the number of replicas.
    """
    global_batch = positive_int(global_batch, "batch_size (the global batch)")
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


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None, {}
    return resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's shared files (run folder, exports, summaries): always,
    except for the non-chief tasks of a multi-worker strategy."""
    return _is_chief_task(*_task(strategy))


def task_name(strategy: tf.distribute.Strategy) -> str | None:
    """``"<type>-<id>"`` of this task in a multi-worker cluster (e.g. ``"worker-1"``), else None."""
    task_type, task_id, cluster = _task(strategy)
    return f"{task_type}-{task_id}" if cluster and task_type is not None else None


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes taking part in training (chief + workers of a multi-worker cluster, else 1). Input
    pipelines sharded by file need at least this many files."""
    return max(1, _cluster_workers(_task(strategy)[2]))
