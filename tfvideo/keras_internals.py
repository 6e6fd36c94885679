"""Every private Keras attribute that tfvideo relies on, in one place (tested with Keras 3.15).

Keras has public hooks for almost everything the harness and the optimizers need; where it has none,
the code here reaches into Keras's internals. Each such assumption is listed below, used only through
this module, checked when tfvideo imports it (:func:`check`: a Keras upgrade that renames one fails at
import with a message naming it, instead of training silently wrong), and has its own behavioural test
in ``tests/test_keras_internals.py``. ``setup.cfg`` pins the Keras range these were tested with.

Assumptions:

1. ``Model._initial_epoch``: ``Model.fit`` reads it after ``on_train_begin`` and, when not None, starts
   from that epoch (Keras's own ``BackupAndRestore`` sets it). Used by the step-exact resume of
   :class:`tfvideo.training.StepBackupAndRestore` (:func:`set_initial_epoch`).
2. ``Optimizer._get_variable_index(variable)``: the index of a trainable variable in the list the
   optimizer was built on, also for a replica component of a distributed variable inside
   ``update_step`` (:func:`variable_index`; per-variable learning-rate multipliers).
3. ``Optimizer._use_weight_decay(variable)``: whether decoupled weight decay applies to the variable
   (honours ``exclude_from_weight_decay``) (:func:`uses_weight_decay`).
4. ``Optimizer._apply_weight_decay(variables)``: the step of ``apply`` that applies the decoupled weight
   decay, once per step before the update steps; :class:`tfvideo.optimizers.LRMultiplierMixin`
   overrides it with a no-op and applies the decay inside ``update_step`` with the multiplied rate.
5. ``Optimizer.update_step(gradient, variable, learning_rate)`` is called once per variable (and
   replica) with the current learning rate (public in name, but its call pattern is internal).
6. A workaround, not an attribute: Keras 3.15's ``fit`` of a model created in a strategy's scope
   first calls ``strategy.reduce("MEAN", first_batch, axis=None)`` on the whole nested ``(x, y)``
   batch (``_maybe_symbolic_build``); ``MirroredStrategy`` accepts a nest there but
   ``MultiWorkerMirroredStrategy`` does not ("Attempt to convert a value (PerReplica...) to a
   Tensor"), so ``fit`` fails on every worker; and its train step then reduces the per-replica
   scalar metrics with ``strategy.reduce("MEAN", v, axis=0)``, which fails on 0-d values ("Invalid
   reduction dimension 0"). :func:`reduce_nests` makes the strategy's ``reduce`` map over nests and
   reduce per-replica scalars with ``axis=None`` (the mean over replicas, which is what Keras
   means); values of a dtype collectives cannot reduce (uint8 frames of that first batch, which
   Keras uses only for their shapes) are taken from the local replica. The two-worker tests (a
   small model, and the TVNet recipe on uint8 frames) cover all three.
"""

from __future__ import annotations

import inspect

import keras

__all__ = ["TESTED_KERAS", "check", "reduce_nests", "set_initial_epoch", "uses_weight_decay",
           "variable_index"]

#: the Keras versions these assumptions were tested with (also pinned in setup.cfg).
TESTED_KERAS = ">=3.15,<3.16"

_REQUIRED = (
    # (owner, attribute, leading parameters after self, what relies on it)
    (keras.optimizers.Optimizer, "_get_variable_index", ("variable",), "per-variable learning rates"),
    (keras.optimizers.Optimizer, "_use_weight_decay", ("variable",), "weight decay with multipliers"),
    (keras.optimizers.Optimizer, "_apply_weight_decay", ("variables",), "weight decay with multipliers"),
    (keras.optimizers.Optimizer, "update_step", ("gradient", "variable", "learning_rate"),
     "per-variable learning rates"),
)


def check() -> None:
    """Raises ``ImportError`` naming the first missing or changed private Keras attribute."""
    for owner, name, params, user in _REQUIRED:
        fn = getattr(owner, name, None)
        got = tuple(inspect.signature(fn).parameters)[1:1 + len(params)] if callable(fn) else None
        if got != params:
            raise ImportError(
                f"tfvideo needs {owner.__name__}.{name}({', '.join(params)}) for {user}, but Keras "
                f"{keras.__version__} has {'no such method' if got is None else name + str(got)}: "
                f"tfvideo was tested with keras{TESTED_KERAS} (see tfvideo/keras_internals.py)")


def set_initial_epoch(model, epoch) -> None:
    """Makes the running ``model.fit`` start at ``epoch`` (call from ``on_train_begin``); ``None``
    resets it (Keras leaves it set after a ``BackupAndRestore`` run, which would silently change the
    start epoch of a later ``fit`` of the same model)."""
    model._initial_epoch = epoch


def variable_index(optimizer, variable) -> int:
    """Index of ``variable`` (or of the distributed variable a replica component belongs to) in the
    list ``optimizer`` was built on."""
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether ``optimizer``'s decoupled weight decay applies to ``variable``."""
    return bool(optimizer._use_weight_decay(variable))


def reduce_nests(strategy):
    """Makes ``strategy.reduce`` accept nested values (assumption 6); returns ``strategy``."""
    import tensorflow as tf

    reducible = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)  # by collectives
    reduce = strategy.reduce
    if getattr(reduce, "_tfvideo_nested", False):
        return strategy

    def one(reduce_op, v, axis):
        local = strategy.experimental_local_results(v)
        if getattr(local[0], "dtype", tf.float32) not in reducible:
            return local[0]  # e.g. uint8 frames of the first batch: Keras only needs their shape
        if axis is not None and getattr(local[0], "shape", None) is not None and local[0].shape.rank == 0:
            axis = None  # a per-replica scalar (a metric): the mean over replicas is axis=None
        return reduce(reduce_op, v, axis=axis)

    def nested_reduce(reduce_op, value, axis=None):
        return tf.nest.map_structure(lambda v: one(reduce_op, v, axis), value)

    nested_reduce._tfvideo_nested = True
    strategy.reduce = nested_reduce
    return strategy


check()
