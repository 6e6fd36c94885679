"""Every check of :func:`tests.layer_checks.check_layer` can fail: deliberately broken toy layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_checks import check_layer

X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
_SHARED = {}


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class Scale(keras.layers.Layer):
    """A correct layer: ``x * w * factor + offset``, one trainable and one non-trainable weight."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(input_shape[-1],), initializer="ones")
        self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        return x * self.w * self.factor + self.offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class DropsArgument(Scale):
    def get_config(self):
        config = super().get_config()
        del config["factor"]
        return config


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class WrongOutputShape(Scale):
    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class DiffersInGraph(Scale):
    def call(self, x):
        y = super().call(x)
        return y * 2.0 if tf.executing_eagerly() else y


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class SharedVariable(Scale):
    """Its weight is a module-level variable: every instance, also a loaded one, uses the same."""

    def build(self, input_shape):
        if "w" not in _SHARED:
            _SHARED["w"] = keras.Variable(np.ones(input_shape[-1], np.float32), name="w")
        self.w = _SHARED["w"]
        self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=False)


@keras.saving.register_keras_serializable(package="tfvideo_tests")
class ClaimsKnownSize(keras.layers.Layer):
    """``compute_output_shape`` right for the sample (last axis 4) but claims 4 for an unknown axis."""

    def call(self, x):
        return 2.0 * x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 4)


def test_a_correct_layer_passes(tmp_path):
    out = check_layer(lambda: Scale(3.0), X, trainable_weights=1, non_trainable_weights=1,
                      expected_output_shape=(2, 3, 4), symbolic_shapes=(None, 4), tmp_path=tmp_path)
    assert out.shape == (2, 3, 4)


@pytest.mark.parametrize("make, match", [
    (lambda: DropsArgument(3.0), "^config: .*lacks the constructor arguments \\['factor'\\]"),
    (lambda: WrongOutputShape(), "^output shape: "),
    (lambda: DiffersInGraph(), "^tf.function: "),
    (lambda: SharedVariable(), "^save/load: .*shares 1 variables"),
])
def test_broken_layers_fail(tmp_path, make, match):
    with pytest.raises(AssertionError, match=match):
        check_layer(make, X, trainable_weights=1, non_trainable_weights=1, tmp_path=tmp_path)


@pytest.mark.parametrize("counts", [(2, 1), (1, 0), (0, 2)])
def test_wrong_weight_counts_fail(tmp_path, counts):
    with pytest.raises(AssertionError, match="^weights: "):
        check_layer(lambda: Scale(), X, trainable_weights=counts[0], non_trainable_weights=counts[1],
                    tmp_path=tmp_path)


def test_wrong_expected_shape_fails(tmp_path):
    with pytest.raises(AssertionError, match="^output shape: .*expected"):
        check_layer(lambda: Scale(), X, trainable_weights=1, non_trainable_weights=1,
                    expected_output_shape=(2, 3, 5), tmp_path=tmp_path)


def test_output_shape_claimed_for_unknown_dims_fails(tmp_path):
    check_layer(ClaimsKnownSize, X, trainable_weights=0, non_trainable_weights=0, tmp_path=tmp_path)
    with pytest.raises(AssertionError, match="^output shape: traced with inputs"):
        check_layer(ClaimsKnownSize, X, trainable_weights=0, non_trainable_weights=0,
                    symbolic_shapes=(None, None), tmp_path=tmp_path)
