"""One test per private Keras assumption listed in tfvideo/keras_internals.py: a Keras upgrade that
breaks one fails here, by name, rather than in a training run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo import keras_internals


def tiny_model(strategy=None):
    scope = strategy.scope() if strategy is not None else tf.name_scope("x")
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    return model


def data():
    x = np.arange(24, dtype="float32").reshape(8, 3) / 24
    return x, np.ones((8, 2), "float32")


def test_check_names_a_missing_attribute(monkeypatch):
    keras_internals.check()  # the installed Keras satisfies every assumption
    class Renamed:  # as if a Keras upgrade renamed the method
        def _get_variable_idx(self, variable):
            pass

    monkeypatch.setattr(keras_internals, "_REQUIRED", ((Renamed, "_get_variable_index", ("variable",), "x"),))
    with pytest.raises(ImportError, match=r"Renamed\._get_variable_index\(variable\).*keras>=3\.15"):
        keras_internals.check()

    class Changed:
        def _get_variable_index(self, var, extra):
            pass

    monkeypatch.setattr(keras_internals, "_REQUIRED", ((Changed, "_get_variable_index", ("variable",), "x"),))
    with pytest.raises(ImportError, match=r"has _get_variable_index\('var',\)"):
        keras_internals.check()


def test_1_initial_epoch_set_in_on_train_begin_starts_fit_there():
    class StartAt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            keras_internals.set_initial_epoch(self.model, 2)

    model = tiny_model()
    model.compile("sgd", "mse")
    epochs = []
    log = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
    model.fit(*data(), epochs=4, batch_size=4, verbose=0, callbacks=[StartAt(), log])
    assert epochs == [2, 3]
    keras_internals.set_initial_epoch(model, None)  # reset: the next fit starts at 0 again
    epochs.clear()
    model.fit(*data(), epochs=2, batch_size=4, verbose=0, callbacks=[log])
    assert epochs == [0, 1]


class Recording(keras.optimizers.SGD):
    """Records what the mixin relies on, from inside the optimizer's own step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def update_step(self, gradient, variable, learning_rate):
        self.calls.append(("update", keras_internals.variable_index(self, variable),
                           float(keras.ops.convert_to_numpy(learning_rate))))
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        self.calls.append(("decay", len(variables)))
        super()._apply_weight_decay(variables)


def test_2_5_variable_index_and_update_step_per_variable_and_replica(mirrored_strategy):
    model = tiny_model(mirrored_strategy)
    with mirrored_strategy.scope():
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [0.5, 0.25])
        opt = Recording(schedule)
        model.compile(opt, "mse", run_eagerly=True)
    model.fit(*data(), epochs=1, batch_size=8, steps_per_epoch=1, verbose=0)
    assert [v.path.split("/", 1)[1] for v in model.trainable_variables] == ["d/kernel", "d/bias"]
    updates = [c for c in opt.calls if c[0] == "update"]
    # once per variable and replica (2 logical CPUs), with the index of the distributed variable and
    # the schedule's current value (step 0: 0.5)
    assert sorted(updates) == [("update", 0, 0.5), ("update", 0, 0.5), ("update", 1, 0.5), ("update", 1, 0.5)]
    # 4: _apply_weight_decay runs once per step and replica, before the update steps, on the
    # trainable variables
    assert opt.calls[0] == ("decay", 2)
    assert [c for c in opt.calls if c[0] == "decay"] == [("decay", 2)] * 2


def test_3_uses_weight_decay_honours_exclusions():
    model = tiny_model()
    opt = keras.optimizers.AdamW(0.1, weight_decay=0.01)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build(model.trainable_variables)
    kernel, bias = model.trainable_variables
    assert keras_internals.uses_weight_decay(opt, kernel) and not keras_internals.uses_weight_decay(opt, bias)
    assert keras_internals.variable_index(opt, bias) == 1
