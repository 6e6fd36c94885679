"""TVNet: TV-L1 optical flow unrolled as a trainable Keras layer (Fan et al., seed 002, Sec. 3.2 and 4).

Each iteration is one step of the paper's Algorithm 1 (the dual TV-L1 of Zach et al.)::

    rho   = rho_c + grad_I1w . u                       # linearised brightness residual
    v     = u + { lbda*theta*grad_I1w            if rho < -lbda*theta*|grad_I1w|^2
              { -lbda*theta*grad_I1w           if rho >  lbda*theta*|grad_I1w|^2
              { -rho*grad_I1w/(|grad_I1w|^2+eps) otherwise                    (Sec. 4.1)
    u_d   = v_d + theta * div(p_d)                     d = 1, 2             (Eq. 5 / 9)
    p_d   = (p_d + tau/theta grad u_d) / (1 + tau/theta sqrt(|grad u_d|^2 + eps))   (Eq. 4 / 8, 11)

(in code the three cases are one expression, ``v = u - clip(rho / (|grad_I1w|^2 + eps), -lbda*theta,
lbda*theta) * grad_I1w``, which is the same function: the clip saturates exactly when ``rho`` passes
the thresholds), where ``rho_c = I1(x+u0) - grad_I1w . u0 - I0`` is fixed at the start of each warp, and ``I1(x+u0)``
and ``grad I1(x+u0)`` are re-sampled there by bilinear warping (:func:`tfvideo.ops.backward_warp`,
i.e. ``dense_image_warp``, Eq. 10). The dual variables ``p`` start at zero at every scale and carry
over between warps, as in Algorithm 1 and the authors' code.

Trainable parameters (Sec. 4.2, and the authors' code):

* ``forward_kernels``: shape ``(scales, warps, iterations, 2, 2, 2)`` indexed
  ``[scale, warp, iteration, d, direction, tap]`` — the two-tap forward-difference kernels of ``u_1``
  and ``u_2`` (d), along x and y (direction), for every (scale, warp, iteration); initialised to
  ``w_f = (-1, 1)`` (correlation order, see :mod:`tfvideo.ops.differences`).
* ``divergence_kernels``: the same shape, the backward-difference kernels ``w_b`` of ``div(p_1)`` and
  ``div(p_2)``; initialised to ``(-1, 1)``.
* ``u0``: the initial flow at the coarsest level, initialised to zero, shape ``(u0_height, u0_width, 2)``
  (see *u0 and other image sizes* below). Trainable only if ``trainable_u0=True``.

The central-difference kernel of the image gradient (Eq. 3) stays fixed. With ``layer.trainable =
False`` the layer has no trainable weights and computes exact TV-L1 (with the paper's bilinear
warping and epsilon); with ``trainable = True`` the kernels and ``u0`` learn.

u0 and other image sizes
------------------------
``u0`` is a flow field stored at a fixed size, ``u0_size``. At call time it is resized bilinearly to the
coarsest pyramid level of the input, and its vectors are scaled by the size ratio (as
:func:`tfvideo.ops.resize_flow` does), so the layer accepts any image size. By default ``u0_size`` is
the coarsest-level size of the input shape the layer is built with, so for that size no resizing
happens; if the spatial size is unknown at build time (``None``), ``u0_size`` is ``(1, 1)`` — a single
trainable flow vector per layer, broadcast over the image.

Pyramid (scales > 1)
--------------------
Level ``s`` has size ``max(2, floor(H * zfactor**s)) x max(2, floor(W * zfactor**s))`` and is made
from level ``s-1`` by a Gaussian pre-smoothing with ``sigma = 0.6 * sqrt(1/zfactor**2 - 1)`` (the
anti-aliasing rule of Sanchez, Meinhardt-Llopis and Facciolo's TV-L1, IPOL 2013; radius
``ceil(2 sigma)``, edge-replicated border), then bilinear sampling to the level size. The finest level
is not smoothed. (We measured ``tf.image.resize(antialias=True)`` as a cheaper low-pass, but it has no
XLA kernel, and the layer must also run under ``jit_compile``.) Solving
runs coarse to fine; the flow of a coarser level is upsampled bilinearly and its vectors multiplied by
the size ratio of the two levels, which is ``1/zfactor`` (the paper's "divided by zfactor") whenever
the sizes divide exactly, and the exact ratio otherwise (e.g. 125 -> 62 pixels).

The layer always builds ``scales`` levels, down to 2 pixels, as the paper's ``N_scales`` says. A coarsest
level of a few pixels has almost no texture, and there TV-L1's data term explains a brightness change between
the frames as motion, which every finer level then doubles (its warps cannot undo the shift of a textureless
image). Measured on a built-in ``motion`` pair at 96 x 128 whose second frame is 1.5% brighter (grey 132 vs
134): 5-5-50's 6 x 8 level finds a uniform 1 px motion where the true one is 0.01 px, 28 px at full size
(EPE 21.8 px), while 4 scales (coarsest 12 x 16) give EPE 0.09 px. Keep the coarsest level at about 12
pixels or more (:func:`max_scales`; OpenCV's ``DualTVL1`` stops its pyramid at 16 px, IPOL's TV-L1 caps the
scales at ``hypot(H, W) / 16``, the authors' code at ``hypot(H, W) / 4``).

Graph size
----------
Warps and iterations run in two nested ``tf.while_loop``s that index the stacked per-(warp, iteration)
kernels, so the traced graph does not grow with ``warps`` or ``iterations``. The solver of one pyramid level
is one ``tf.function`` with unknown batch and spatial sizes (:meth:`TVNet._scale_solver`), traced once per
layer (once for the plain loop, once for the adjoint) and called at every level: a 5-scale TVNet traces one
level, not five (first call of a frozen 5-5-50 TVNet at 125 x 185 in ``tf.function``: 3.4 -> 2.0 s of CPU
time; a frozen layer stops its weights' gradient, or a training step's tape would record this call with every
intermediate: see ``TVNet.call``). Inside an
XLA-compiled function (``jit_compile=True``) the levels are traced inline instead: there the nested function
made XLA recompile the whole function at every call.
"""

from __future__ import annotations

import functools
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from tfvideo.layers.tvnet_adjoint import adjoint_iterations, iteration_step, less_than
from tfvideo.losses import tvl1_energy
from tfvideo.ops.differences import BACKWARD_TAPS, FORWARD_TAPS, central_gradient
from tfvideo.ops.flow import resize_flow
from tfvideo.ops.image import to_grey
from tfvideo.ops.warp import backward_warp
from tfvideo.ops.xla import in_xla_context

__all__ = ["TVNet", "max_scales", "pyramid_sizes"]


def _level_extent(n, level: int, zfactor: float):
    """Height or width of pyramid ``level``: ``max(2, floor(n * zfactor**level))``; ``n`` an int or a
    scalar tensor (then an int32 tensor is returned)."""
    if isinstance(n, numbers.Integral):
        return max(2, int(math.floor(n * zfactor**level)))
    return tf.maximum(2, tf.cast(tf.floor(tf.cast(n, tf.float64) * zfactor**level), tf.int32))


def pyramid_sizes(height: int, width: int, scales: int, zfactor: float) -> list[tuple[int, int]]:
    """Static pyramid sizes, finest first (the rule documented in the module docstring)."""
    return [(_level_extent(height, s, zfactor), _level_extent(width, s, zfactor)) for s in range(scales)]


def max_scales(height: int, width: int, min_size: int = 12, zfactor: float = 0.5) -> int:
    """The most pyramid levels whose coarsest level keeps ``min_size`` pixels on its smaller side (at least 1):
    the largest ``scales`` worth using at ``height x width`` (module docstring, *Pyramid*).

    The default 12 is what we measured: coarsest levels of 12 x 16 and 15 x 20 px are fine, 6 x 8 failed
    (module docstring; ``benchmarks/flow_large.py`` runs 5 scales at 240 x 320). ``min_size=16`` is OpenCV's rule.

    >>> max_scales(96, 128), max_scales(240, 320), max_scales(96, 128, min_size=16)
    (4, 5, 3)
    """
    for arg, v in (("height", height), ("width", width), ("min_size", min_size)):
        _check_positive_int(v, arg)
    if isinstance(zfactor, bool) or not isinstance(zfactor, numbers.Real) or not 0 < zfactor < 1:
        raise ValueError(f"`zfactor` must be a number in (0, 1); got {zfactor!r}")
    scales = 1
    while True:
        coarsest, next_level = pyramid_sizes(height, width, scales + 1, zfactor)[-2:]
        # levels stop shrinking at 2 pixels (pyramid_sizes): a min_size <= 2 ends there, not in an endless loop
        if min(next_level) < min_size or next_level == coarsest:
            return scales
        scales += 1


def _gaussian_taps(zfactor: float) -> np.ndarray:
    """Normalised 1-D Gaussian, sigma = 0.6 sqrt(1/zfactor^2 - 1), radius ceil(2 sigma) (>= 1)."""
    sigma = 0.6 * math.sqrt(1.0 / zfactor**2 - 1.0)
    radius = max(1, int(math.ceil(2.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _xla_with_recomputed_gradient(fn):
    """``fn`` compiled with XLA, with a gradient that re-runs ``fn`` and its backward pass in XLA.

    A plain ``jit_compile`` function inside TF control flow cannot be differentiated: the gradient
    accumulators (TensorLists) of its while loop would have to cross the XLA/TF boundary, which TF
    does not support. So the backward pass recomputes the forward pass inside one XLA cluster
    (rematerialisation: one extra forward pass per backward pass, cheap once fused).
    """
    forward = tf.function(fn, jit_compile=True, autograph=False)

    @tf.function(jit_compile=True, autograph=False)
    def vjp(args, upstream):
        with tf.GradientTape() as tape:
            tape.watch(args)
            outs = fn(*args)
        return tape.gradient(outs, args, output_gradients=upstream, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    @tf.custom_gradient
    def wrapped(*args):
        outs = forward(*(tf.stop_gradient(a) for a in args))  # no tape inside: grad below

        def grad(*upstream):
            return vjp(list(args), list(upstream))

        return outs, grad

    return wrapped


class _FunctionCache:
    """A plain holder of traced functions: not a dict attribute of the layer, which Keras and TF would track and
    then try (and fail) to save into a SavedModel as objects; the functions are traced into the exported
    signatures instead."""

    def __init__(self):
        self.functions = {}


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}")
    return int(value)


def _check_positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number; got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="tfvideo")
class TVNet(keras.layers.Layer):
    """TV-L1 optical flow as a Keras layer, exact at initialisation and trainable end to end.

    Args:
      scales: number of pyramid levels (``N_scales``).
      warps: warps per level (``N_warps``).
      iterations: iterations per warp (``N_iters``); the paper's "TVNet-50" is 1-1-50.
      tau: time step of the dual update.
      lbda: data-term weight lambda.
      theta: coupling weight theta between u and v.
      zfactor: down-sampling factor between pyramid levels, in (0, 1).
      epsilon: the small constant of Sec. 4.1 (in ``|grad I1|^2 + eps`` and inside the square root of
        Eq. 11).
      trainable_u0: whether the initial flow ``u0`` is trainable (when the layer is).
      trainable_kernels: whether the finite-difference kernels ``forward_kernels`` and
        ``divergence_kernels`` are trainable (when the layer is). ``trainable_kernels=False`` with
        ``trainable_u0=True`` is the "Training u0" column of Table 1 (Sec. 5.1): only ``u0`` learns, the
        iterations stay exact TV-L1 ones.
      flow_loss_weight: if > 0, ``flow_loss_weight * tvl1_energy(frame0, frame1, flow, lbda)`` is added
        with ``add_loss`` (the L_f term of Eq. 13, computed with the fixed finite differences).
      u0_size: ``(height, width)`` at which ``u0`` is stored; ``None`` picks the coarsest-level size of
        the build shape (``(1, 1)`` if unknown). See the module docstring.
      xla_iterations: compile the iteration loop of each warp with XLA (``jit_compile``). On CPU this
        fuses the ~100 small ops of an iteration: 2-15x faster forward and backward passes (most at
        small sizes), at the price of a compilation of about 0.5-2.5 s per pyramid level for every new
        input shape. Worth it for training and serving at a fixed size; off by default. The warps
        stay outside XLA (XLA's CPU gathers make the bilinear warp slow).
      interpolation: how ``I1`` and its gradient are warped at the start of each warp:
        ``"bilinear"`` (the paper's choice, Sec. 4.1, Eq. 10; the default) or ``"bicubic"`` (Keys
        a = -0.75, what classical TV-L1 and OpenCV's ``DualTVL1`` use). Bilinear resampling blurs by an
        amount that depends on the sub-pixel position, which biases the linearised data term: on our
        benchmark pairs the same 5-5-50 solver has EPE ~0.05 px with bilinear and ~0.03 px with bicubic
        warps (``benchmarks/flow_tvl1.py``), at about 3x the cost of each warp.
      gradient: how the gradient of each warp's iterations is computed while the layer is trainable:
        ``"adjoint"`` (default): the hand-derived adjoint of Eq. 6-11 (:mod:`tfvideo.layers.tvnet_adjoint`;
        the state of every iteration is stored, the backward loop recomputes one iteration at a time):
        a 2.5x faster training step than ``"autodiff"`` in graph mode, ~15% under XLA
        (``benchmarks/tvnet_train.py``); ``"autodiff"``: TF's while-loop gradient of the same loop, kept
        for checking (both agree to 1e-5). A frozen layer runs the plain loop either way, and so does a
        trainable one called with ``training=False`` (``predict``, ``evaluate``): nothing is stored there, and
        autodiff still gives gradients w.r.t. the frames.
      check_finite: check that both (float) frames are free of NaN and inf before anything is
        computed, and raise ``tf.errors.InvalidArgumentError`` naming the frame otherwise (see
        *Non-finite input*). Off by default: it adds a pass over the input.

    Call:
      ``flow = layer([frame0, frame1])`` with frames ``(batch, H, W, C)``, C = 1 or 3 (RGB converted
      to grey with ITU-R 601 weights), values in [0, 255], H, W >= 8 (any dtype, cast to float32).
      Returns ``(batch, H, W, 2)`` float32 flow in pixels, ``[..., 0]`` horizontal and ``[..., 1]``
      vertical, with ``frame1(p + flow(p)) ~= frame0(p)`` (OpenCV's convention).

    Example:
      >>> import numpy as np
      >>> layer = TVNet(iterations=10)
      >>> f0 = np.random.uniform(0, 255, (1, 32, 32, 3)).astype("float32")
      >>> layer([f0, f0]).shape
      TensorShape([1, 32, 32, 2])

    Non-finite input:
      Without ``check_finite`` a NaN or inf pixel passes silently. A NaN spreads through the difference
      stencils by one pixel per iteration, and by ``1 / zfactor`` times that from a coarser level; other
      batch items are unaffected. Measured at 125 x 185 with one NaN pixel in ``frame0``, the NaN part
      of the flow is 1.2% with 1-1-10, 32% with 1-1-50 (TVNet-50), 100% with 3-3-10. An inf in
      ``frame1`` acts alike (34% with 1-1-50); a lone inf in ``frame0`` is absorbed by the data term's
      clip at one scale (0%), not with ``scales > 1``. On CPU outside XLA a NaN flow reaching a finer
      level can instead fail the warp with an unrelated ``indices[...] = -2147483648`` gather error.
      ``check_finite=True`` raises ``InvalidArgumentError: TVNet input `frame0` contains NaN or inf``
      first (eager, ``tf.function``, ``xla_iterations``). XLA drops TF's runtime checks (TF 2.21,
      tensorflow/tensorflow#117319), so such a layer refuses to trace inside a ``jit_compile``
      function (``ValueError``) and sets ``supports_jit = False`` (Keras' ``jit_compile="auto"``).
    """

    def __init__(
        self,
        scales=1,
        warps=1,
        iterations=50,
        tau=0.25,
        lbda=0.15,
        theta=0.3,
        zfactor=0.5,
        epsilon=1e-12,
        trainable_u0=True,
        trainable_kernels=True,
        flow_loss_weight=0.0,
        u0_size=None,
        xla_iterations=False,
        interpolation="bilinear",
        check_finite=False,
        gradient="adjoint",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"`interpolation` must be 'bilinear' or 'bicubic'; got {interpolation!r}")
        self.interpolation = interpolation
        self.check_finite = bool(check_finite)
        self.supports_jit = not self.check_finite  # XLA would drop the check (class docstring)
        self.xla_iterations = bool(xla_iterations)
        if gradient not in ("adjoint", "autodiff"):
            raise ValueError(f"`gradient` must be 'adjoint' or 'autodiff'; got {gradient!r}")
        self.gradient = gradient
        self.scales = _check_positive_int(scales, "scales")
        self.warps = _check_positive_int(warps, "warps")
        self.iterations = _check_positive_int(iterations, "iterations")
        self.tau = _check_positive_float(tau, "tau")
        self.lbda = _check_positive_float(lbda, "lbda")
        self.theta = _check_positive_float(theta, "theta")
        self.epsilon = _check_positive_float(epsilon, "epsilon")
        if isinstance(zfactor, bool) or not isinstance(zfactor, numbers.Real) or not 0 < zfactor < 1:
            raise ValueError(f"`zfactor` must be a number in (0, 1); got {zfactor!r}")
        self.zfactor = float(zfactor)
        self._gauss = _gaussian_taps(self.zfactor)
        self._plain_iterate = (_xla_with_recomputed_gradient(self._iterations) if self.xla_iterations
                               else self._iterations)
        # the adjoint stores the state of every iteration for its backward pass: used only while the layer is
        # trainable (a frozen TVNet runs the plain loop, which autodiff still differentiates w.r.t. the frames)
        self._adjoint_iterate = (adjoint_iterations(self.iterations, lbda=self.lbda, theta=self.theta, tau=self.tau,
                                                    epsilon=self.epsilon, xla=self.xla_iterations)
                                 if self.gradient == "adjoint" else None)
        self.trainable_u0 = bool(trainable_u0)
        self.trainable_kernels = bool(trainable_kernels)
        if isinstance(flow_loss_weight, bool) or not isinstance(flow_loss_weight, numbers.Real) or flow_loss_weight < 0:
            raise ValueError(f"`flow_loss_weight` must be a number >= 0; got {flow_loss_weight!r}")
        self.flow_loss_weight = float(flow_loss_weight)
        if u0_size is not None:
            if len(u0_size) != 2:
                raise ValueError(f"`u0_size` must be None or (height, width); got {u0_size!r}")
            u0_size = tuple(_check_positive_int(v, "u0_size") for v in u0_size)
        self.u0_size = u0_size
        self._scale_fns = _FunctionCache()  # adjoint or not -> the traced one-level solver (_scale_solver)

    # ------------------------------------------------------------------ building
    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not all(
            isinstance(s, (list, tuple)) or s is None for s in input_shape
        ):
            raise ValueError(
                "TVNet expects a list of two frames [frame0, frame1], each (batch, H, W, C); "
                f"got input shape {input_shape!r}"
            )
        return input_shape

    def build(self, input_shape):
        shape0, _ = self._split_shapes(input_shape)
        if self.u0_size is None:
            h, w = (tuple(shape0)[1:3] if shape0 is not None and len(shape0) == 4 else (None, None))
            if h is not None and w is not None:
                self.u0_size = pyramid_sizes(h, w, self.scales, self.zfactor)[-1]
            else:
                self.u0_size = (1, 1)
        kshape = (self.scales, self.warps, self.iterations, 2, 2, 2)
        fwd = np.broadcast_to(np.asarray(FORWARD_TAPS, np.float32), kshape)
        bwd = np.broadcast_to(np.asarray(BACKWARD_TAPS, np.float32), kshape)
        self.forward_kernels = self.add_weight(
            name="forward_kernels", shape=kshape, initializer=keras.initializers.Constant(fwd.copy()),
            trainable=self.trainable_kernels
        )
        self.divergence_kernels = self.add_weight(
            name="divergence_kernels", shape=kshape, initializer=keras.initializers.Constant(bwd.copy()),
            trainable=self.trainable_kernels
        )
        self.u0 = self.add_weight(
            name="u0", shape=(*self.u0_size, 2), initializer="zeros", trainable=self.trainable_u0
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        shape0, _ = self._split_shapes(input_shape)
        return (*tuple(shape0)[:3], 2)

    # ------------------------------------------------------------------ helpers
    def _validate(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "TVNet expects `inputs` = [frame0, frame1], two tensors of shape (batch, H, W, C); "
                f"got {type(inputs).__name__}"
                + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple)) else "")
            )
        frames = []
        for arg, x in zip(("frame0", "frame1"), inputs):
            x = tf.convert_to_tensor(x)
            if x.shape.rank != 4:
                raise ValueError(f"`{arg}` must have shape (batch, H, W, C); got {x.shape}")
            for axis, what in ((1, "height"), (2, "width")):
                if x.shape[axis] is not None and x.shape[axis] < 8:
                    raise ValueError(f"`{arg}` {what} must be at least 8 pixels; got shape {x.shape}")
            frames.append(x)
        a, b = frames[0].shape, frames[1].shape
        for axis in range(4):
            if a[axis] is not None and b[axis] is not None and a[axis] != b[axis]:
                raise ValueError(f"`frame0` and `frame1` must have the same shape; got {a} and {b}")
        if self.check_finite:
            frames = [self._check_finite(x, arg) for arg, x in zip(("frame0", "frame1"), frames)]
        return frames

    @staticmethod
    def _check_finite(x, arg):
        """``x`` after a NaN/inf check (float dtypes: integer frames are always finite)."""
        if not x.dtype.is_floating:
            return x
        if in_xla_context():
            raise ValueError(
                f"TVNet(check_finite=True) cannot check `{arg}` for NaN or inf inside an XLA-compiled "
                "function (jit_compile=True): XLA drops TensorFlow's runtime checks. Check the frames "
                "before the compiled function, or use xla_iterations=True without jit_compile"
            )
        return tf.debugging.check_numerics(x, f"TVNet input `{arg}` contains NaN or inf")

    def _downsample(self, image, size):
        """One pyramid step: Gaussian pre-smoothing, then bilinear sampling (module docstring).

        The blur is separable, written as shifted slices of an edge-padded image (the padding is a
        gather of clamped indices, so it works for levels smaller than the kernel radius): plain ops that
        run under XLA, unlike ``tf.image.resize(antialias=True)``, and cheaper on CPU than a
        single-channel ``conv2d``.
        """
        taps = self._gauss
        r = (len(taps) - 1) // 2
        x = image
        for axis in (1, 2):
            n = tf.shape(x)[axis]
            idx = tf.clip_by_value(tf.range(-r, n + r), 0, n - 1)
            padded = tf.gather(x, idx, axis=axis)
            parts = []
            for i, k in enumerate(taps):
                sl = [slice(None)] * 4
                sl[axis] = slice(i, None) if i == 2 * r else slice(i, i - 2 * r)
                parts.append(float(k) * padded[tuple(sl)])
            x = tf.add_n(parts)
        return tf.image.resize(x, size, method="bilinear", antialias=False)

    def _level_sizes(self, height, width):
        """Dynamic pyramid sizes, finest first, as int32 (h, w) tensors."""
        return [
            tf.stack([_level_extent(height, s, self.zfactor), _level_extent(width, s, self.zfactor)])
            for s in range(self.scales)
        ]

    def _iterations(self, fwd_w, div_w, g1, g2, grad, rho_c, u1, u2, p11, p12, p21, p22):
        """The ``iterations`` steps of one warp (the while-loop of Algorithm 1).

        ``fwd_w``/``div_w``: ``(iterations, 8)`` kernel taps, index ``d * 4 + direction * 2 + tap``.
        Returns the new ``(u1, u2, p11, p12, p21, p22)``.
        """
        l_t = self.lbda * self.theta
        taut = self.tau / self.theta
        theta = self.theta
        eps = self.epsilon

        @tf.autograph.experimental.do_not_convert
        def iteration(n, *state):
            # the three cases of Algorithm 1 are one clip: with r = rho / (|grad I1|^2 + eps),
            #   rho < -l_t |grad I1|^2 -> v = u + l_t grad I1; rho > l_t |grad I1|^2 -> v = u - l_t grad I1;
            #   otherwise v = u - rho grad I1 / (|grad I1|^2 + eps)  (tfvideo/layers/tvnet_adjoint.py::iteration_step)
            new, _ = iteration_step(tf.unstack(tf.gather(fwd_w, n)), tf.unstack(tf.gather(div_w, n)), g1, g2, grad,
                                    rho_c, state, l_t, taut, theta, eps)
            return (n + 1, *new)

        out = tf.while_loop(
            less_than(self.iterations), iteration, (tf.constant(0), u1, u2, p11, p12, p21, p22),
            maximum_iterations=self.iterations,
        )
        return out[1:]

    def _scale_solver(self, adjoint):
        """:meth:`_single_scale` as a ``tf.function`` of any batch and level size, traced once for all the
        levels (module docstring, *Graph size*); one for the plain loop and one for the adjoint."""
        key = bool(adjoint)
        if key not in self._scale_fns.functions:
            image = tf.TensorSpec((None, None, None, 1), tf.float32)
            kernels = tf.TensorSpec((self.warps, self.iterations, 2, 2, 2), tf.float32)
            self._scale_fns.functions[key] = tf.function(
                functools.partial(self._single_scale, adjoint=key), autograph=False,
                input_signature=(image, image, tf.TensorSpec((None, None, None, 2), tf.float32), kernels, kernels))
        return self._scale_fns.functions[key]

    def _single_scale(self, i0, i1, u, fwd, div, adjoint=False):
        """Algorithm 1 at one pyramid level. ``fwd``/``div``: ``(warps, iterations, 2, 2, 2)`` kernels.

        Warps and iterations are two nested ``tf.while_loop``s, so the traced graph (and the gradient
        accumulators TF adds to it) has one copy of the warp step and one of the iteration step per
        scale, whatever the numbers of warps and iterations.

        The flow components, image gradients and dual variables are kept as separate one-channel
        tensors and the kernel taps as scalars: every product is then tensor x scalar, which TF's CPU
        kernels run about ten times faster than the channel-broadcasting products of a 2-channel layout.
        """
        eps = self.epsilon
        i1x, i1y = central_gradient(i1)
        stacked = tf.concat([i1, i1x, i1y], axis=-1)
        # taps flattened per (warp, iteration): index = d * 4 + direction * 2 + tap
        fwd = tf.reshape(fwd, [self.warps, self.iterations, 8])
        div = tf.reshape(div, [self.warps, self.iterations, 8])
        zeros = tf.zeros_like(i0)
        iterate = self._adjoint_iterate if adjoint else self._plain_iterate

        @tf.autograph.experimental.do_not_convert
        def warp_step(w, u1, u2, p11, p12, p21, p22):
            warped = backward_warp(stacked, tf.concat([u1, u2], axis=-1), interpolation=self.interpolation)
            # split, not three slices: a slice's gradient is a full-size zero map per slice (and their sum), a split's
            # one concatenation (graph-mode training step at 96 px, trainable TVNet)
            i1w, g1, g2 = tf.split(warped, 3, axis=-1)  # I1(x+u0), grad I1(x+u0)
            grad = tf.square(g1) + tf.square(g2) + eps  # |grad I1|^2 + eps (Sec. 4.1)
            rho_c = i1w - g1 * u1 - g2 * u2 - i0
            state = iterate(
                tf.gather(fwd, w), tf.gather(div, w), g1, g2, grad, rho_c, u1, u2, p11, p12, p21, p22
            )
            return (w + 1, *(tf.ensure_shape(t, u1.shape) for t in state))

        out = tf.while_loop(
            less_than(self.warps), warp_step, (tf.constant(0), *tf.split(u, 2, axis=-1), zeros, zeros, zeros, zeros),
            maximum_iterations=self.warps,
        )
        return tf.concat([out[1], out[2]], axis=-1)

    # ------------------------------------------------------------------ call
    def call(self, inputs, training=None):
        frame0, frame1 = self._validate(inputs)
        # the adjoint stores every iteration's state for a backward pass: only while training (True, or None as
        # in a custom loop); predict / evaluate (training=False) run the plain loop, which autodiff still
        # differentiates (e.g. w.r.t. the frames) -- at the paper's evaluation sizes the stored states of one
        # batch would take tens of GB
        adjoint = self._adjoint_iterate is not None and self.trainable and training is not False
        i0 = to_grey(frame0, "frame0")
        i1 = to_grey(frame1, "frame1")
        shape = tf.shape(i0)
        batch, height, width = shape[0], shape[1], shape[2]
        sizes = self._level_sizes(height, width)
        # both frames go down the pyramid together (stacked on the batch axis)
        levels = [tf.concat([i0, i1], axis=0)]
        for s in range(1, self.scales):
            levels.append(self._downsample(levels[-1], sizes[s]))
        pyr0 = [lvl[:batch] for lvl in levels]
        pyr1 = [lvl[batch:] for lvl in levels]

        fwd = tf.cast(tf.convert_to_tensor(self.forward_kernels), tf.float32)
        div = tf.cast(tf.convert_to_tensor(self.divergence_kernels), tf.float32)
        u0 = tf.cast(tf.convert_to_tensor(self.u0), tf.float32)
        if not self.trainable:
            # a frozen layer's variables keep the tf.Variable's trainable flag they were created with, so a training
            # step's tape still watches them, and records the level solver's function call with every intermediate
            # for a gradient nobody asks for (measured: frozen training step 197 -> 357 CPU ms, +1 GB at 48 px)
            fwd, div, u0 = (tf.stop_gradient(t) for t in (fwd, div, u0))
        u = resize_flow(u0[tf.newaxis], sizes[-1])
        u = tf.tile(u, [batch, 1, 1, 1])
        # inside an XLA-compiled function the levels are traced inline: a nested shape-polymorphic function there
        # made XLA recompile the whole step at every call (measured: 8 s instead of 1.5 s per training step)
        # (and eagerly the levels run op by op, as before: no graph to trace for a one-off call)
        solve = (functools.partial(self._single_scale, adjoint=adjoint) if tf.executing_eagerly() or in_xla_context()
                 else self._scale_solver(adjoint))
        for s in range(self.scales - 1, -1, -1):
            u = solve(pyr0[s], pyr1[s], u, fwd[s], div[s])
            if s > 0:
                u = resize_flow(u, sizes[s - 1])
        flow = tf.ensure_shape(u, (*frame0.shape[:3], 2))
        if self.flow_loss_weight > 0:
            self.add_loss(self.flow_loss_weight * tvl1_energy(frame0, frame1, flow, lbda=self.lbda))
        return flow

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            scales=self.scales,
            warps=self.warps,
            iterations=self.iterations,
            tau=self.tau,
            lbda=self.lbda,
            theta=self.theta,
            zfactor=self.zfactor,
            epsilon=self.epsilon,
            trainable_u0=self.trainable_u0,
            trainable_kernels=self.trainable_kernels,
            flow_loss_weight=self.flow_loss_weight,
            u0_size=list(self.u0_size) if self.u0_size is not None else None,
            xla_iterations=self.xla_iterations,
            interpolation=self.interpolation,
            check_finite=self.check_finite,
            gradient=self.gradient,
        )
        return config
