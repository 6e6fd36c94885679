"""One shared check of the conventions every Keras layer of tfvideo keeps (DESIGN.md, "Conventions").

In the spirit of keras-hub's ``run_layer_test``: :func:`check_layer` takes a layer factory and a sample
NumPy input and asserts, raising ``AssertionError`` with a message that starts with the failed check:

* ``config:`` ``get_config()`` is JSON-serialisable and names every explicit constructor argument;
  ``Layer.from_config(config)`` (of the JSON round trip, as ``.keras`` loading sees it) gives a layer of
  the same class with the same ``get_config()``, before and after building, and with the original's
  weights it gives the same output.
* ``save/load:`` the layer wrapped in a functional ``keras.Model`` on ``keras.Input``s survives
  ``model.save(... .keras)`` + ``keras.saving.load_model``: a new layer object that shares no variable
  with the original (checked by identity and by changing the original's values), same config, same
  weight counts, same output. The weights are perturbed (seeded) before saving, so a layer whose
  weights are not saved, or are re-initialised on load, fails even when its initial values are
  constants.
* ``output shape:`` ``compute_output_shape`` equals the output shape of the eager call (and
  ``expected_output_shape`` when given), the shape of the symbolic output on ``keras.Input``s with
  unknown batch (and on a fresh layer built from ``symbolic_shapes``, whose unknown dims may include
  time and space), and the static shape TensorFlow infers when the call is traced with those unknown
  dims (Keras derives a symbolic output from ``compute_output_shape`` itself when a layer defines it:
  the trace is the independent check). The symbolic shapes must be compatible with the eager one, and
  the model built on the unknown dims must run on the sample and give its shape.
* ``tf.function:`` the call traced by ``tf.function`` (with the sample's shapes, and with unknown
  batch / ``symbolic_shapes``) gives the eager output.
* ``weights:`` the numbers of trainable and non-trainable weights of the layer, of a model wrapping
  it and of the loaded copy equal the counts the caller states (work them out from the layer's
  definition, do not copy them from a run).
"""

from __future__ import annotations

import copy
import inspect
import json

import keras
import numpy as np
import tensorflow as tf

__all__ = ["check_layer"]


def _fail(check, message):
    raise AssertionError(f"{check}: {message}")


def _json(config, what):
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as e:
        _fail("config", f"get_config() of {what} is not JSON-serialisable: {e}")


def _close(actual, expected, check, what, rtol, atol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        _fail(check, f"{what}: shape {actual.shape} != {expected.shape}")
    try:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    except AssertionError as e:
        _fail(check, f"{what} differs:\n{e}")


def _shape(shape):
    return tuple(None if d is None else int(d) for d in shape)


def _compatible(a, b):
    a, b = _shape(a), _shape(b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _counts(obj):
    return len(obj.trainable_weights), len(obj.non_trainable_weights)


def _check_counts(obj, what, expected):
    if _counts(obj) != expected:
        _fail("weights", f"{what} has (trainable, non-trainable) = {_counts(obj)} weights, expected "
                         f"{expected}: {[(w.path, w.trainable) for w in obj.weights]}")


def _constructor_arguments(cls):
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_layer(make_layer, inputs, *, trainable_weights, non_trainable_weights,
                expected_output_shape=None, symbolic_shapes=None, rtol=1e-6, atol=1e-6, tmp_path,
                seed=0):
    """Assert the layer conventions (module docstring) for ``make_layer()`` on ``inputs``.

    Args:
      make_layer: a function without arguments returning a new, unbuilt layer (called twice: the
        layer under test and a fresh one for ``symbolic_shapes``).
      inputs: a NumPy array, or a list of arrays for a layer called on a list; the first axis is the
        batch.
      trainable_weights, non_trainable_weights: the expected numbers of weights after building.
      expected_output_shape: optional exact shape of the output on ``inputs``.
      symbolic_shapes: shapes *without* the batch axis (one per input; a single tuple for a single
        input) with ``None`` where the layer accepts an unknown size (time, space, ...). Default: the
        sample's shapes; the batch is unknown in every symbolic check.
      rtol, atol: tolerance of every output comparison.
      tmp_path: a directory for the ``.keras`` file (pytest's ``tmp_path``).
      seed: seed of the weight perturbation.
    """
    multi = isinstance(inputs, (list, tuple))
    arrays = [np.asarray(x) for x in (inputs if multi else [inputs])]
    tensors = [tf.constant(x) for x in arrays]
    shapes = [tuple(x.shape) for x in arrays]
    if symbolic_shapes is None:
        symbolic = [s[1:] for s in shapes]
    else:
        symbolic = [tuple(s) for s in (symbolic_shapes if multi else [symbolic_shapes])]
        if len(symbolic) != len(arrays):
            raise ValueError(f"{len(symbolic)} symbolic shapes for {len(arrays)} inputs")
    expected_counts = (trainable_weights, non_trainable_weights)

    def arg(xs):
        return list(xs) if multi else xs[0]

    def shape_arg(ss):
        return [tuple(s) for s in ss] if multi else tuple(ss[0])

    layer = make_layer()
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"make_layer() must return a keras Layer; got {type(layer).__name__}")
    cls = type(layer)

    # ---- config (unbuilt): JSON, every constructor argument, from_config gives the same config
    config = _json(layer.get_config(), f"unbuilt {cls.__name__}")
    missing = [a for a in _constructor_arguments(cls) if a not in config]
    if missing:
        _fail("config", f"{cls.__name__}.get_config() lacks the constructor arguments {missing}")
    clone = cls.from_config(copy.deepcopy(config))
    if type(clone) is not cls:
        _fail("config", f"from_config gave a {type(clone).__name__}, not a {cls.__name__}")
    if _json(clone.get_config(), "clone") != config:
        _fail("config", f"from_config(get_config()).get_config() != get_config():\n"
                        f"{_json(clone.get_config(), 'clone')}\n!=\n{config}")

    # ---- functional model on keras.Input with unknown batch
    sym = [keras.Input(shape=s[1:], dtype=str(x.dtype), name=f"input_{i}")
           for i, (s, x) in enumerate(zip(shapes, arrays))]
    out = layer(arg(sym))
    model = keras.Model(arg(sym), out)
    batchless = [(None, *s[1:]) for s in shapes]
    if _shape(out.shape) != _shape(layer.compute_output_shape(shape_arg(batchless))):
        _fail("output shape", f"symbolic output {out.shape} != compute_output_shape "
                              f"{layer.compute_output_shape(shape_arg(batchless))} for {batchless}")

    # ---- weight counts, then perturb the weights (seeded) so that save/load must restore them
    _check_counts(layer, cls.__name__, expected_counts)
    _check_counts(model, f"a model of one {cls.__name__}", expected_counts)
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = np.asarray(w.numpy())
        if np.issubdtype(value.dtype, np.floating):
            noisy = value * rng.uniform(0.9, 1.1, value.shape) + rng.uniform(-0.05, 0.05, value.shape)
            w.assign(noisy.astype(value.dtype))

    # ---- eager output and its shape
    y = layer(arg(tensors))
    y_np = np.asarray(y)
    computed = _shape(layer.compute_output_shape(shape_arg(shapes)))
    if _shape(y.shape) != computed:
        _fail("output shape", f"eager output {tuple(y.shape)} != compute_output_shape {computed}")
    if expected_output_shape is not None and _shape(y.shape) != _shape(expected_output_shape):
        _fail("output shape", f"eager output {tuple(y.shape)} != expected {expected_output_shape}")
    _close(model(arg(tensors)), y_np, "save/load", "the model wrapping the layer", rtol, atol)

    # ---- config (built): same config, same output with the same weights
    config = _json(layer.get_config(), f"built {cls.__name__}")
    clone = cls.from_config(copy.deepcopy(config))
    clone(arg(tensors))  # builds it
    if _json(clone.get_config(), "built clone") != config:
        _fail("config", f"built from_config(get_config()).get_config() != get_config():\n"
                        f"{_json(clone.get_config(), 'clone')}\n!=\n{config}")
    try:
        clone.set_weights(layer.get_weights())
    except ValueError as e:
        _fail("config", f"the from_config copy has other weights: {e}")
    _close(clone(arg(tensors)), y_np, "config", "output of from_config(get_config()) with the same "
           "weights", rtol, atol)

    # ---- .keras save / load
    path = tmp_path / f"{cls.__name__}_check.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.get_layer(layer.name)
    if loaded_layer is layer or type(loaded_layer) is not cls:
        _fail("save/load", f"the loaded model holds {loaded_layer!r}, not a new {cls.__name__}")
    shared = {id(v) for v in layer.weights} & {id(v) for v in loaded_layer.weights}
    if shared:
        _fail("save/load", f"the loaded layer shares {len(shared)} variables with the original")
    if _json(loaded_layer.get_config(), "loaded layer") != config:
        _fail("save/load", f"loaded config {loaded_layer.get_config()} != {config}")
    _check_counts(loaded_layer, f"the loaded {cls.__name__}", expected_counts)
    _check_counts(loaded, "the loaded model", expected_counts)
    _close(loaded(arg(tensors)), y_np, "save/load", "output of the loaded model", rtol, atol)
    before = [np.array(w.numpy()) for w in loaded_layer.weights]
    originals = [np.array(w.numpy()) for w in layer.weights]
    for w, value in zip(layer.weights, originals):  # change the original: the copy must not follow
        w.assign(value + np.ones_like(value))
    changed = [w.path for w, b in zip(loaded_layer.weights, before) if not np.array_equal(w.numpy(), b)]
    for w, value in zip(layer.weights, originals):
        w.assign(value)
    if changed:
        _fail("save/load", f"changing the original's weights changed the loaded copy's {changed}")

    # ---- tf.function: same shapes, then unknown batch / symbolic_shapes
    def call(*xs):
        return layer(arg(xs))

    _close(tf.function(call)(*tensors), y_np, "tf.function", "tf.function output (sample shapes)",
           rtol, atol)
    specs = [tf.TensorSpec((None, *s), x.dtype) for s, x in zip(symbolic, tensors)]
    traced = tf.function(call, input_signature=specs)
    static = traced.get_concrete_function().structured_outputs.shape
    unknown = [(None, *s) for s in symbolic]
    computed = layer.compute_output_shape(shape_arg(unknown))
    if _shape(static) != _shape(computed):
        _fail("output shape", f"traced with inputs {unknown} the output is {static}, not "
                              f"compute_output_shape {computed}")
    _close(traced(*tensors), y_np, "tf.function", f"tf.function output (inputs {unknown})", rtol, atol)

    # ---- a fresh layer built on symbolic_shapes
    fresh = make_layer()
    sym = [keras.Input(shape=s, dtype=x.dtype.name, name=f"input_{i}")
           for i, (s, x) in enumerate(zip(symbolic, tensors))]
    out = fresh(arg(sym))
    computed = fresh.compute_output_shape(shape_arg(unknown))
    if _shape(out.shape) != _shape(computed):
        _fail("output shape", f"symbolic output {out.shape} != compute_output_shape {computed} for "
                              f"{unknown}")
    if not _compatible(out.shape, y.shape):
        _fail("output shape", f"symbolic output {out.shape} for {unknown} is incompatible with the "
                              f"eager output {tuple(y.shape)}")
    _check_counts(fresh, f"{cls.__name__} built on {unknown}", expected_counts)
    y_fresh = keras.Model(arg(sym), out)(arg(tensors))
    if _shape(y_fresh.shape) != _shape(y.shape):
        _fail("output shape", f"built on {unknown} the output on the sample is {tuple(y_fresh.shape)},"
                              f" not {tuple(y.shape)}")
    return y_np
