"""Tests of tfvideo.optimizers: per-layer learning-rate multipliers (TVNet paper, Sec. 5.2: lr / 255).

References are independent: NumPy transcriptions of Keras's SGD-momentum and Adam rules, the plain
Keras optimizers run on the same weights and gradients, and hand-written expectations.

Float32 note: a weight delta ``w1 - w0`` of a weight of size ~1 is only known to ~1 ulp of ``w0``
(the update ``w0 + step`` is rounded), so deltas of real models are compared to that tolerance, while
quantities without cancellation (SGD's momentum slot, which after one step *is* the step, and
variables that start at zero) are compared at rtol 1e-5.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.layers import TVNet
from tfvideo.optimizers import SGD, Adam, AdamW, matched_variables

R = 1.0 / 255.0
LR, MOMENTUM = 0.005, 0.9


# ----------------------------------------------------------------------------- helpers
def _tvnet_model():
    """Frames (8, 8, 1) pair -> TVNet(iterations=2) -> flatten -> Dense(1)."""
    f0, f1 = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    flow = TVNet(iterations=2, name="tvnet")([f0, f1])
    out = keras.layers.Dense(1, name="head")(keras.layers.Flatten()(flow))
    return keras.Model([f0, f1], out)


def _small_model():
    """A cheap stand-in (traces and compiles in well under a second, unlike TVNet's training graph) for
    the tests of the Keras machinery (fit under a strategy, XLA, saving): a Conv2D named "tvnet"."""
    x = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, name="tvnet")(x)
    return keras.Model(x, keras.layers.Dense(1, name="head")(keras.layers.Flatten()(h)))


def _model_pair(make):
    """Two models from ``make`` with identical weights (seeded: the same draw on every machine)."""
    keras.utils.set_random_seed(0)
    a, b = make(), make()
    b.set_weights(a.get_weights())
    return a, b


def _frames(n=4, seed=0):
    """A batch of TVNet inputs (frame1 = frame0 shifted by 1 px, plus noise) and regression targets."""
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(0, 255, (n, 8, 8, 1)).astype("float32")
    f1 = np.roll(f0, 1, axis=2) + rng.normal(0, 5, f0.shape).astype("float32")
    return [f0, f1], rng.normal(0, 1, (n, 1)).astype("float32")


def _images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, 8, 8, 1)).astype("float32"), rng.normal(0, 1, (n, 1)).astype("float32")


def _weights(model):
    return {v.path: np.asarray(v.numpy(), np.float64) for v in model.trainable_variables}


def _momentums(model, opt=None):
    opt = opt or model.optimizer
    return {v.path: np.asarray(m.numpy(), np.float64) for v, m in zip(model.trainable_variables, opt.momentums)}


def _check_first_step(w0, w_plain, w_mult, m_plain, m_mult):
    """The TVNet step of the multiplied run is 1/255 of the plain one, the head's step is the same.

    ``m_*`` are SGD's momentum slots after one step from zero (= the step itself, no rounding
    against the weights): compared at rtol 1e-5. Weight deltas: to 2 ulp of the weights."""
    tv = [p for p in w0 if p.startswith("tvnet/")]
    assert tv and len(tv) < len(w0)
    for path in w0:
        ratio = R if path in tv else 1.0
        assert np.abs(m_plain[path]).max() > 1e-7, path  # the step is not vacuous
        np.testing.assert_allclose(m_mult[path], ratio * m_plain[path], rtol=1e-5, atol=1e-12, err_msg=path)
        d_plain, d_mult = w_plain[path] - w0[path], w_mult[path] - w0[path]
        ulp = np.spacing(np.abs(w0[path]).astype(np.float32)).astype(np.float64)
        np.testing.assert_array_less(np.abs(d_mult - ratio * d_plain), 2 * ulp + 1e-5 * np.abs(ratio * d_plain))
        # and the two runs really differ by the factor: the TVNet step is far from the plain step
        if path in tv:
            big = np.abs(d_plain) > 1e3 * ulp
            assert big.any() and np.all(np.abs(d_mult[big]) < 0.01 * np.abs(d_plain[big])), path


def _scoped_variables(values: dict[str, np.ndarray], dtype="float32"):
    """Keras variables with the given paths (``"scope/.../name"``) and initial values."""
    out = []
    for path, value in values.items():
        *scopes, name = path.split("/")
        with contextlib.ExitStack() as stack:
            for scope in scopes:
                stack.enter_context(keras.name_scope(scope))
            out.append(keras.Variable(np.asarray(value, dtype), name=name))
        assert out[-1].path == path
    return out


# ----------------------------------------------------------------------------- SGD momentum
def test_sgd_momentum_tvnet_step_is_exactly_1_over_255():
    """The paper's setting on a real TVNet: the same gradients (one eager backward pass) applied by
    the plain and the multiplied SGD-momentum to two copies of the model."""
    plain, mult = _model_pair(_tvnet_model)
    x, y = _frames()
    with tf.GradientTape() as tape:
        loss = keras.losses.mean_squared_error(y, plain(x))
    grads = tape.gradient(loss, plain.trainable_variables)
    opt_plain = keras.optimizers.SGD(LR, momentum=MOMENTUM)
    opt_mult = SGD(LR, momentum=MOMENTUM, lr_multipliers={"tvnet": R})
    w0 = _weights(plain)
    opt_plain.apply(grads, plain.trainable_variables)
    opt_mult.apply(grads, mult.trainable_variables)
    _check_first_step(w0, _weights(plain), _weights(mult), _momentums(plain, opt_plain), _momentums(mult, opt_mult))
    assert matched_variables(opt_mult, mult.trainable_variables) == {
        "tvnet/forward_kernels": R,
        "tvnet/divergence_kernels": R,
        "tvnet/u0": R,
    }


def test_sgd_momentum_fixed_gradients_every_step_matches_numpy():
    rng = np.random.default_rng(1)
    shapes = {"tvnet/forward_kernels": (2, 3), "head/kernel": (4,)}
    # constant sign per entry: the velocities never cancel, so rtol 1e-5 is meaningful at every step
    sign = {p: rng.choice([-1.0, 1.0], s) for p, s in shapes.items()}
    grads = [{p: sign[p] * rng.uniform(0.5, 2.0, s) for p, s in shapes.items()} for _ in range(6)]
    zeros = {p: np.zeros(s) for p, s in shapes.items()}
    v_plain, v_mult = _scoped_variables(zeros), _scoped_variables(zeros)
    opt_plain = keras.optimizers.SGD(LR, momentum=MOMENTUM)
    opt_mult = SGD(LR, momentum=MOMENTUM, lr_multipliers={"tvnet": R})
    # NumPy transcription of keras.optimizers.SGD (momentum, not Nesterov): m = momentum*m - lr*g; w += m
    ref = {p: {"w": np.zeros(s), "m": np.zeros(s)} for p, s in shapes.items()}
    for g in grads:
        opt_plain.apply([g[p].astype("float32") for p in shapes], v_plain)
        opt_mult.apply([g[p].astype("float32") for p in shapes], v_mult)
        for p in shapes:
            lr = LR * (R if p.startswith("tvnet") else 1.0)
            ref[p]["m"] = MOMENTUM * ref[p]["m"] - lr * g[p]
            ref[p]["w"] = ref[p]["w"] + ref[p]["m"]
        (tv_p, head_p), (tv_m, head_m) = [[v.numpy().astype(np.float64) for v in vs] for vs in (v_plain, v_mult)]
        np.testing.assert_allclose(tv_m, tv_p * R, rtol=1e-5)  # cumulative update: exactly 1/255
        np.testing.assert_array_equal(head_m, head_p)  # identical ops, identical inputs
        np.testing.assert_allclose(tv_m, ref["tvnet/forward_kernels"]["w"], rtol=1e-5)
        np.testing.assert_allclose(head_m, ref["head/kernel"]["w"], rtol=1e-5)


# ----------------------------------------------------------------------------- Adam / AdamW
def _adam_reference(w, grads, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """NumPy transcription of keras.optimizers.Adam.update_step (amsgrad off); returns w after each step.

    As in Keras, the bias corrections use the betas rounded to float32 (``ops.cast`` of a Python float
    goes through a float32 tensor) while the moment updates use ``1 - beta`` in double precision."""
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    b1, b2 = float(np.float32(beta_1)), float(np.float32(beta_2))
    for t, g in enumerate(grads, start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        w = w - m * alpha / (np.sqrt(v) + eps)
        out.append(w)
    return out


def test_adam_multiplier_scales_the_step_but_gradient_scaling_does_not():
    rng = np.random.default_rng(2)
    grads = [rng.choice([-1.0, 1.0], (5,)) * rng.uniform(0.1, 1.0, (5,)) for _ in range(3)]
    grads = [g * (1.0 + 0.1 * i) for i, g in enumerate(grads)]
    grads = [np.abs(g) * np.sign(grads[0]) for g in grads]  # constant sign: no cancellation in the sums
    lr = 1e-3
    runs = {}
    for name, opt, scale in (
        ("plain", keras.optimizers.Adam(lr), 1.0),
        ("mult", Adam(lr, lr_multipliers={"tvnet": R}), 1.0),
        ("grad_scaled", keras.optimizers.Adam(lr), R),
    ):
        var = _scoped_variables({"tvnet/u0": np.zeros(5)})
        runs[name] = []
        for g in grads:
            opt.apply([(scale * g).astype("float32")], var)
            runs[name].append(var[0].numpy().astype(np.float64))
    ref = _adam_reference(np.zeros(5), grads, lr * R)
    for t in range(len(grads)):
        np.testing.assert_allclose(runs["mult"][t], runs["plain"][t] * R, rtol=1e-5)
        np.testing.assert_allclose(runs["mult"][t], ref[t], rtol=1e-5)
        # Adam is invariant to the gradient's scale: g/255 gives (almost) the unscaled step, not 1/255 of it
        np.testing.assert_allclose(runs["grad_scaled"][t], runs["plain"][t], rtol=0.02)  # eps = 1e-7 matters a bit
        assert np.all(np.abs(runs["grad_scaled"][t]) > 100 * np.abs(runs["mult"][t]))


def test_adamw_weight_decay_uses_the_multiplied_rate_and_is_unchanged_elsewhere():
    # float64 variables: no rounding issue; lr * 0.25 is exact in the float32 learning-rate variable
    w0 = {"tvnet/forward_kernels": np.array([1.0, -2.0, 0.5]), "head/kernel": np.array([0.3, -0.7])}
    g = {"tvnet/forward_kernels": np.array([0.2, -0.1, 0.4]), "head/kernel": np.array([-0.5, 0.05])}
    lr, wd, mult = 0.1, 0.2, 0.25
    runs = {}
    for name, opt in (
        ("keras", keras.optimizers.AdamW(lr, weight_decay=wd)),
        ("mult", AdamW(lr, weight_decay=wd, lr_multipliers={"tvnet": mult})),
    ):
        variables = _scoped_variables(w0, dtype="float64")
        opt.apply([g[p] for p in w0], variables)
        runs[name] = {v.path: v.numpy() for v in variables}
    lr32, wd32 = float(np.float32(lr)), float(np.float32(wd))  # Keras casts both through float32
    for path, m in (("tvnet/forward_kernels", mult), ("head/kernel", 1.0)):
        decayed = w0[path] - w0[path] * wd32 * lr32 * m  # Keras's decoupled decay, then the Adam step
        expected = _adam_reference(decayed, [g[path]], lr32 * m)[0]
        np.testing.assert_allclose(runs["mult"][path], expected, rtol=1e-12)
        step_keras, step_mult = runs["keras"][path] - w0[path], runs["mult"][path] - w0[path]
        np.testing.assert_allclose(step_mult, m * step_keras, rtol=1e-9)


# ----------------------------------------------------------------------------- schedules
def test_multiplier_applies_to_the_scheduled_learning_rate():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    g = np.array([0.5, -1.5, 2.0])
    var_plain = _scoped_variables({"tvnet/u0": np.zeros(3)})
    var_mult = _scoped_variables({"tvnet/u0": np.zeros(3)})
    opt_plain, opt_mult = keras.optimizers.SGD(schedule), SGD(schedule, lr_multipliers={"tvnet": R})
    w_plain_prev, w_mult_prev = np.zeros(3), np.zeros(3)
    for step in range(5):
        opt_plain.apply([g.astype("float32")], var_plain)
        opt_mult.apply([g.astype("float32")], var_mult)
        lr = 0.1 if step <= 2 else 0.01  # PiecewiseConstantDecay: values[0] while iterations <= 2
        w_plain, w_mult = var_plain[0].numpy().astype(np.float64), var_mult[0].numpy().astype(np.float64)
        np.testing.assert_allclose(w_plain - w_plain_prev, -lr * g, rtol=1e-5)
        np.testing.assert_allclose(w_mult - w_mult_prev, -lr * R * g, rtol=1e-5)
        w_plain_prev, w_mult_prev = w_plain, w_mult
    assert float(opt_mult.learning_rate) == pytest.approx(0.01)  # the boundary was crossed


# ----------------------------------------------------------------------------- distribution and XLA
def test_first_step_ratio_under_mirrored_strategy(mirrored_strategy):
    x, y = _images(seed=3)
    after_first = {}
    with mirrored_strategy.scope():
        plain, mult = _model_pair(_small_model)
        plain.compile(optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM), loss="mse")
        mult.compile(optimizer=SGD(LR, momentum=MOMENTUM, lr_multipliers={"tvnet": R}), loss="mse")
        assert isinstance(mult.trainable_variables[0].value, tf.distribute.DistributedValues)
        w0 = _weights(plain)
        for name, model in (("plain", plain), ("mult", mult)):

            def record(batch, logs, model=model, name=name):
                if batch == 0:
                    after_first[name] = (_weights(model), _momentums(model))

            cb = keras.callbacks.LambdaCallback(on_train_batch_end=record)
            model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
            assert int(model.optimizer.iterations.numpy()) == 2
    (w_p, m_p), (w_m, m_m) = after_first["plain"], after_first["mult"]
    _check_first_step(w0, w_p, w_m, m_p, m_m)
    for v in mult.trainable_variables:  # the replicas agree
        a, b = (np.asarray(t) for t in v.value.values)
        np.testing.assert_array_equal(a, b)


def test_first_step_ratio_under_jit_compile():
    plain, mult = _model_pair(_small_model)
    plain.compile(optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM), loss="mse", jit_compile=True)
    mult.compile(optimizer=SGD(LR, momentum=MOMENTUM, lr_multipliers={"tvnet": R}), loss="mse", jit_compile=True)
    assert mult.jit_compile is True
    x, y = _images(seed=4)
    w0 = _weights(plain)
    plain.train_on_batch(x, y)
    mult.train_on_batch(x, y)
    _check_first_step(w0, _weights(plain), _weights(mult), _momentums(plain), _momentums(mult))


# ----------------------------------------------------------------------------- matching rules
def test_matching_components_prefixes_and_longest_key():
    variables = _scoped_variables(
        {
            "temporal/tvnet/u0": np.zeros(1),
            "temporal/tvnet/forward_kernels": np.zeros(1),
            "tvnet/u0": np.zeros(1),
            "dense_1/kernel": np.zeros(1),
            "dense/kernel": np.zeros(1),
        }
    )
    opt = SGD(0.1, lr_multipliers={"tvnet": 0.5, "temporal/tvnet/u0": 0.25, "dense": 2.0})
    assert matched_variables(opt, variables) == {
        "temporal/tvnet/u0": 0.25,  # the longest matching key wins
        "temporal/tvnet/forward_kernels": 0.5,  # "tvnet" is a component
        "tvnet/u0": 0.5,  # "tvnet" is a prefix
        "dense/kernel": 2.0,  # "dense" does not match "dense_1/kernel" (whole components only)
    }
    opt.build(variables)
    assert matched_variables(keras.optimizers.SGD(0.1), variables) == {}


# ----------------------------------------------------------------------------- serialization and errors
def test_serialize_deserialize_round_trip():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])
    for opt in (
        SGD(LR, momentum=MOMENTUM, nesterov=True, lr_multipliers={"tvnet": R}),
        Adam(schedule, beta_1=0.8, lr_multipliers={"tvnet": R, "head/kernel": 2.0}),
        AdamW(1e-3, weight_decay=0.01, lr_multipliers={"temporal/tvnet": 0.5}),
    ):
        config = keras.optimizers.serialize(opt)
        assert config["registered_name"] == f"tfvideo>{type(opt).__name__}"
        back = keras.optimizers.deserialize(config)
        assert type(back) is type(opt)
        assert back.lr_multipliers == opt.lr_multipliers
        assert back.get_config() == opt.get_config()
    assert back.weight_decay == 0.01
    assert SGD.from_config(SGD(lr_multipliers={"a": 3}).get_config()).lr_multipliers == {"a": 3.0}


def test_keras_model_file_reloads_the_multiplier_optimizer(tmp_path):
    model = _small_model()
    model.compile(optimizer=SGD(LR, momentum=MOMENTUM, lr_multipliers={"tvnet": R}), loss="mse")
    x, y = _images(seed=5)
    model.train_on_batch(x, y)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is SGD
    assert loaded.optimizer.lr_multipliers == {"tvnet": R}
    assert loaded.optimizer.momentum == MOMENTUM
    for a, b in zip(_momentums(model).values(), _momentums(loaded).values()):
        np.testing.assert_array_equal(a, b)
    # one more identical step on both: the reloaded optimizer applies the same (multiplied) update
    w0 = _weights(model)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    w1, w1_loaded = _weights(model), _weights(loaded)
    for p in w0:
        np.testing.assert_allclose(w1_loaded[p] - w0[p], w1[p] - w0[p], rtol=1e-5, atol=1e-7, err_msg=p)


@pytest.mark.parametrize("bad", [0, -1.0, "0.5", None, True, float("nan"), float("inf")])
def test_bad_multiplier_values_raise(bad):
    with pytest.raises(ValueError, match=r"lr_multipliers\['tvnet'\].*finite number > 0"):
        SGD(0.1, lr_multipliers={"tvnet": bad})


def test_bad_multiplier_containers_raise():
    with pytest.raises(TypeError, match="lr_multipliers.*dict"):
        SGD(0.1, lr_multipliers=[("tvnet", 0.5)])
    with pytest.raises(TypeError, match="lr_multipliers.*keys"):
        Adam(0.1, lr_multipliers={3: 0.5})


def test_unmatched_key_raises_at_build_listing_variable_paths():
    model = _tvnet_model()
    opt = SGD(0.1, lr_multipliers={"tvnet": R, "tvnett": 0.5})
    with pytest.raises(ValueError, match=r"'tvnett' matches none.*'tvnet/forward_kernels'.*'head/kernel'"):
        opt.build(model.trainable_variables)
    small = _small_model()
    small.compile(optimizer=SGD(0.1, lr_multipliers={"tvnet/ker": 0.5}), loss="mse")  # no raw-string prefix
    with pytest.raises(ValueError, match="'tvnet/ker' matches none"):
        small.train_on_batch(*_images())
