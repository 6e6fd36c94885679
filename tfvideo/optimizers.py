"""Keras 3 optimizers with per-layer learning-rate multipliers.

The TVNet paper (Fan et al., "End-to-End Learning of Motion Representation for Video Understanding",
seed 002, Sec. 5.2) trains TVNet jointly with a CNN by SGD (momentum 0.9, learning rate 0.005), and
"the learning rate for TVNets is further divided by 255". Keras 3 has one learning rate per
optimizer; :class:`LRMultiplierMixin` adds ``lr_multipliers``, a dict mapping a layer name or
variable-path prefix to a factor on the learning rate of the matching variables::

    >>> import keras, numpy as np
    >>> from tfvideo.optimizers import SGD, matched_variables
    >>> inputs = keras.Input((4,))
    >>> outputs = keras.layers.Dense(1, name="head")(keras.layers.Dense(3, name="tvnet")(inputs))
    >>> model = keras.Model(inputs, outputs)
    >>> opt = SGD(0.005, momentum=0.9, lr_multipliers={"tvnet": 1 / 255})
    >>> model.compile(optimizer=opt, loss="mse")
    >>> _ = model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 1), "float32"))
    >>> matched_variables(opt, model.trainable_variables)  # doctest: +ELLIPSIS
    {'tvnet/kernel': 0.00392..., 'tvnet/bias': 0.00392...}

Matching. Keras 3 variables have a ``path`` such as ``"tvnet/forward_kernels"`` or
``"temporal/tvnet/u0"`` (the names of the enclosing layers, then the variable's name). A key matches
a variable if the key's ``/``-separated components occur as consecutive components of the path: a key
equal to one component (``"tvnet"`` matches both paths above) or a prefix of the path at a component
boundary (``"temporal/tvnet"``, ``"tvnet/u0"``). Choice: matching is by whole components, never by raw
string prefix, so ``"dense"`` does not match ``"dense_1/kernel"``. If several keys match, the longest
(most specific) wins, ties going to the key listed first; unmatched variables keep multiplier 1. The
multiplier of each variable is resolved once, when the optimizer is built, into a Python float, so
the traced train step holds one scalar multiply per multiplied variable and no string ops. Every key
must match at least one variable at build time, otherwise ``build`` raises a ``ValueError`` listing
some variable paths (a misspelt layer name would otherwise silently train at the full rate).
Multipliers must be finite and > 0 (freeze a layer with ``layer.trainable = False`` instead).

What is multiplied. The Keras TensorFlow backend applies an update by calling
``update_step(gradient, variable, learning_rate)`` once per trainable variable
(``TFOptimizer._distributed_tf_update_step``; under ``tf.distribute`` once per variable and replica,
inside ``strategy.extended.update``, with the per-replica component as ``variable``; under
``jit_compile`` the same Python code is traced into the XLA function). The mixin overrides
``update_step`` and passes ``learning_rate * multiplier`` to the optimizer's own rule, where
``learning_rate`` is the current value, so with a ``LearningRateSchedule`` the multiplier applies to
the scheduled rate. The variable is identified by the optimizer's own variable index, which maps
replica components back to their distributed variable. Keras's decoupled weight decay
(``weight_decay=``; ``variable -= variable * weight_decay * lr``) is also moved into ``update_step``
so that it uses the multiplied rate, as per-parameter-group learning rates do in PyTorch: the whole
step of a variable, decay included, is then ``multiplier`` times the step it would otherwise take
(for one step from the same state; with momentum the velocity of the multiplied variable is itself
``multiplier`` times the plain one when the gradients are the same).

Why a learning-rate multiplier and not gradient scaling. For SGD, with or without momentum, scaling
the gradient of a variable by ``c`` is the same as scaling its learning rate by ``c``
(``m = momentum * m - lr * g`` is linear in ``lr * g``). Adam-type optimizers (Adam, AdamW, RMSprop,
...) normalise the gradient by its running RMS, so their step is (up to ``epsilon``) invariant to the
scale of the gradient: multiplying the gradient by 1/255 changes almost nothing. Only scaling the
step, i.e. the learning rate, implements "the learning rate is divided by 255" for every optimizer.

Classes: :class:`SGD`, :class:`Adam`, :class:`AdamW` (the Keras optimizers plus the mixin, registered
as ``"tfvideo>SGD"`` etc. so that a ``.keras`` model compiled with one reloads); other Keras
optimizers get the behaviour with ``class MyRMSprop(LRMultiplierMixin, keras.optimizers.RMSprop)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import keras
from keras import ops

from tfvideo import keras_internals

__all__ = ["LRMultiplierMixin", "SGD", "Adam", "AdamW", "matched_variables"]


def _check_multipliers(lr_multipliers) -> tuple[tuple[str, float], ...]:
    """Validates ``lr_multipliers`` and returns it as ``((key, float), ...)``."""
    if lr_multipliers is None:
        return ()
    if not isinstance(lr_multipliers, Mapping):
        raise TypeError(
            "`lr_multipliers` must be a dict {layer name or variable-path prefix: multiplier}; "
            f"got {type(lr_multipliers).__name__}"
        )
    items = []
    for key, value in lr_multipliers.items():
        if not isinstance(key, str) or not key.strip("/"):
            raise TypeError(
                f"`lr_multipliers` keys must be non-empty strings (layer names or variable paths); got {key!r}"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
            raise ValueError(f"`lr_multipliers[{key!r}]` must be a finite number > 0; got {value!r}")
        items.append((key, float(value)))
    return tuple(items)


def _variable_path(variable) -> str:
    """``variable.path`` (Keras 3), else the TF name without its ``:0`` suffix."""
    path = getattr(variable, "path", None)
    return path if path else variable.name.split(":")[0]


def _key_matches(key: str, path: str) -> bool:
    """True if the components of ``key`` occur consecutively among those of ``path``."""
    k, p = key.strip("/").split("/"), path.split("/")
    return any(p[i : i + len(k)] == k for i in range(len(p) - len(k) + 1))


def _match(items, path: str):
    """``(key, multiplier)`` of the longest key of ``items`` matching ``path`` (first on ties), or
    ``(None, 1.0)``."""
    best = (None, 1.0)
    for key, value in items:
        if _key_matches(key, path) and (best[0] is None or len(key) > len(best[0])):
            best = (key, value)
    return best


def matched_variables(optimizer, variables) -> dict[str, float]:
    """The variables that ``optimizer``'s ``lr_multipliers`` match, for logging.

    Args:
      optimizer: an optimizer with ``lr_multipliers`` (any other optimizer matches nothing).
      variables: Keras variables, e.g. ``model.trainable_variables``.

    Returns:
      ``{variable path: multiplier}`` for every matched variable, in the order of ``variables``
      (variables not listed train at the optimizer's learning rate).
    """
    items = _check_multipliers(getattr(optimizer, "lr_multipliers", None))
    out = {}
    for v in variables:
        key, value = _match(items, _variable_path(v))
        if key is not None:
            out[_variable_path(v)] = value
    return out


class LRMultiplierMixin:
    """Adds ``lr_multipliers`` to a Keras optimizer; put it first among the bases.

    Args:
      lr_multipliers: ``{layer name or variable-path prefix: multiplier}``; the learning rate of a
        matching variable is ``learning_rate * multiplier`` (matching rules in the module docstring).
        ``None`` or ``{}``: the plain optimizer.
      *args, **kwargs: passed to the Keras optimizer.

    Raises:
      TypeError: ``lr_multipliers`` is not a dict of string keys.
      ValueError: a multiplier is not a finite number > 0; at ``build``, a key matches no variable.
    """

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        items = _check_multipliers(lr_multipliers)
        super().__init__(*args, **kwargs)
        self._lr_multiplier_items = items
        self._variable_multipliers = ()

    @property
    def lr_multipliers(self) -> dict[str, float]:
        """The ``lr_multipliers`` argument, as a new dict of floats."""
        return dict(self._lr_multiplier_items)

    def build(self, variables):
        if self.built:
            return
        paths = [_variable_path(v) for v in variables]
        for key, _ in self._lr_multiplier_items:
            if not any(_key_matches(key, p) for p in paths):
                shown = ", ".join(repr(p) for p in paths[:8]) + (", ..." if len(paths) > 8 else "")
                raise ValueError(
                    f"`lr_multipliers` key {key!r} matches none of the {len(paths)} variables the optimizer "
                    "is built on (keys are layer names or '/'-separated variable-path prefixes); "
                    f"variable paths: [{shown}]"
                )
        super().build(variables)
        self._variable_multipliers = tuple(_match(self._lr_multiplier_items, p)[1] for p in paths)

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._variable_multipliers[keras_internals.variable_index(self, variable)]
        if multiplier != 1.0:
            learning_rate = ops.multiply(learning_rate, multiplier)
        if self.weight_decay is not None and keras_internals.uses_weight_decay(self, variable):
            lr = ops.cast(learning_rate, variable.dtype)
            wd = ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, ops.multiply(ops.multiply(variable, wd), lr))
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        """No-op: the decay is applied per variable in :meth:`update_step`, with the multiplied rate
        (Keras applies it just before the update steps, to the same variables, with the same rate;
        assumption 4 of :mod:`tfvideo.keras_internals`)."""

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = self.lr_multipliers
        return config


@keras.saving.register_keras_serializable(package="tfvideo")
class SGD(LRMultiplierMixin, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``lr_multipliers`` (see :class:`LRMultiplierMixin`).

    Example (the paper's setting, Sec. 5.2): ``SGD(0.005, momentum=0.9, lr_multipliers={"tvnet": 1 / 255})``.
    """


@keras.saving.register_keras_serializable(package="tfvideo")
class Adam(LRMultiplierMixin, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``lr_multipliers`` (see :class:`LRMultiplierMixin`)."""


@keras.saving.register_keras_serializable(package="tfvideo")
class AdamW(LRMultiplierMixin, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with ``lr_multipliers`` (see :class:`LRMultiplierMixin`); the
    decoupled weight decay of a multiplied variable uses its multiplied learning rate."""
