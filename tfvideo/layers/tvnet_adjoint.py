"""The TV-L1 iterations of one TVNet warp with a hand-derived adjoint (reverse-mode gradient).

One iteration (Algorithm 1 of seed 002, Eq. 6-11; the forward pass is :meth:`tfvideo.layers.TVNet._iterations`'s),
with ``D_x`` / ``D_y`` the divergence and ``F_x`` / ``F_y`` the forward-difference stencils and their per-iteration
taps ``kd`` / ``kf`` (``tfvideo/ops/differences.py``)::

    rho = rho_c + g1 u1 + g2 u2            q = rho / G            r = clip(q, -lt, lt)
    w_d = u_d - r g_d + theta (D_x(p_d1) + D_y(p_d2))                                d = 1, 2
    a_d = F_x(w_d)   b_d = F_y(w_d)        s_d = sqrt(a_d^2 + b_d^2 + eps)   den_d = 1 + taut s_d
    p_d1' = (p_d1 + taut a_d) / den_d      p_d2' = (p_d2 + taut b_d) / den_d

Its adjoint, for upstream adjoints ``(W_d, P_d1, P_d2)`` of ``(w_d, p_d1', p_d2')`` (all element-wise or
fixed-size stencils; ``Z`` zeroes the last column / row, ``N`` reads the next pixel, ``P`` the previous one, so
``N^T = P`` and ``Z^T = Z``)::

    n_d1 = P_d1 / den_d   n_d2 = P_d2 / den_d          (adjoints of the numerators)
    s_d~ = -taut (n_d1 (p_d1 + taut a_d) + n_d2 (p_d2 + taut b_d)) / den_d
    a_d~ = taut n_d1 + s_d~ a_d / s_d                  b_d~ = taut n_d2 + s_d~ b_d / s_d
    w_d~ = W_d + kf0 Z a~ + kf1 P(Z a~) + (same along y with b~)        kf grads: sum Z a~ w, sum Z a~ N(w), ...
    p_d1~ = n_d1 + theta Z(kd0 N(w_d~) + kd1 w_d~)     (p_d2~ along y)  kd grads: theta sum w~ P(Z p), sum w~ Z p
    r~ = -(w_1~ g1 + w_2~ g2)    q~ = r~ [|q| <= lt]   rho~ = q~ / G    G~ = -q~ q / G
    u_d~ = w_d~ + rho~ g_d       g_d~ = -w_d~ r + rho~ u_d             rho_c~ = rho~

The forward loop stores the state ``(u1, u2, p11, p12, p21, p22)`` entering every iteration (six one-channel
maps per iteration, one TensorArray per variable, each map stacked as ``(batch, height, width)``: slot 0 holds
the initial state and iteration n writes the state it computes into slot n + 1; a stacked 6-map TensorArray cost
10% more backward time, storing the incoming state made XLA copy the six loop-carried maps in every iteration,
and stacks with the unit channel axis were copied whole once per ``jit_compile`` step); the backward loop runs the
iterations in reverse, recomputes each iteration's intermediates from its stored state and applies the adjoint
above, with no while-loop gradient accumulators. Under ``xla=True`` the forward loop is one XLA cluster; the
backward loop is one in every mode (it only runs in training, and compiled it takes about half the CPU time of
TF's own ops). The gradients equal TF's autodiff of the same loop (tests/layers/test_tvnet_adjoint.py: random and
real frames, finite differences).

Cost (``benchmarks/tvnet_train.py``; figures in ``benchmarks/README.md``): a backward iteration has about four
times the arithmetic of a forward one once XLA has fused it (it recomputes producers in several consumers) and
2.5 times its one-pixel shifts, which XLA's CPU loops read element by element; the forward and backward loops of
TVNet-50 (48 px, 60 pairs) take 54 and ~140 ms of CPU time against 37 ms for the plain loop of a frozen layer.
The 16 tap gradients are sums over all pixels; XLA's CPU code for a reduction to one scalar runs about ten times
slower per element than an element-wise loop, so they are summed along each row first (vectorised) and then over
the rows (:func:`_sum`: 20% off the backward pass). We tried and measured, without gain: optimization barriers
around the recomputed intermediates, one matrix product or one variadic reduction for the 16 tap gradients, a
stacked state array, reading the state back from the stacks instead of carrying it, XLA's pre-thunk CPU runtime.
"""

from __future__ import annotations

import tensorflow as tf

from tfvideo.ops.differences import divergence, forward_gradient
# the stencils' shifts and masks (tfvideo/ops/differences.py's own, so the adjoint follows its boundaries)
from tfvideo.ops.differences import _next as _shift_next
from tfvideo.ops.differences import _prev as _shift_prev
from tfvideo.ops.differences import _zero_last

__all__ = ["adjoint_iterations", "iteration_step", "less_than"]


def _sum(x):
    """``tf.reduce_sum(x)`` of a ``(batch, height, width, 1)`` map inside the XLA-compiled backward loop, in two
    stages: along each row first, then over the rows. XLA's CPU code for a reduction to one scalar is about ten
    times slower per element than an element-wise loop; a reduction along the contiguous axis is vectorised. The
    optimisation barrier keeps XLA from merging the two stages back into one (it does, without it). Measured on
    the training step of TVNet-50 at 48 px, 60 pairs: forward + backward 566 / 592 -> 469 / 505 CPU ms."""
    from tensorflow.compiler.tf2xla.python import xla

    return tf.reduce_sum(xla.optimization_barrier(tf.reduce_sum(x, axis=[2, 3])))


def less_than(limit):
    """``tf.while_loop`` condition ``n < limit`` (not converted by autograph)."""
    @tf.autograph.experimental.do_not_convert
    def cond(n, *_):
        return n < limit
    return cond


def iteration_step(kf, kd, g1, g2, grad, rho_c, state, lt, taut, theta, eps):
    """One TV-L1 iteration (module docstring; ``lt = lambda theta``, ``taut = tau / theta``): the new state
    ``(u1, u2, p11, p12, p21, p22)`` and the intermediates the adjoint needs. ``TVNet._iterations`` (the
    plain loop) and both loops here run this one function."""
    u1, u2, p11, p12, p21, p22 = state
    rho = rho_c + g1 * u1 + g2 * u2
    q = rho / grad
    r = tf.clip_by_value(q, -lt, lt)
    w1 = u1 - r * g1 + theta * divergence(p11, p12, taps_x=kd[0:2], taps_y=kd[2:4])
    w2 = u2 - r * g2 + theta * divergence(p21, p22, taps_x=kd[4:6], taps_y=kd[6:8])
    a1, b1 = forward_gradient(w1, taps_x=kf[0:2], taps_y=kf[2:4])
    a2, b2 = forward_gradient(w2, taps_x=kf[4:6], taps_y=kf[6:8])
    s1 = tf.sqrt(tf.square(a1) + tf.square(b1) + eps)
    s2 = tf.sqrt(tf.square(a2) + tf.square(b2) + eps)
    den1, den2 = 1.0 + taut * s1, 1.0 + taut * s2
    n11, n12, n21, n22 = p11 + taut * a1, p12 + taut * b1, p21 + taut * a2, p22 + taut * b2
    new = (w1, w2, n11 / den1, n12 / den1, n21 / den2, n22 / den2)
    return new, dict(q=q, r=r, w=(w1, w2), a=(a1, a2), b=(b1, b2), s=(s1, s2), den=(den1, den2),
                     n=((n11, n12), (n21, n22)))


def _adjoint_step(kf, kd, g1, g2, grad, rho_c, state, bar, lt, taut, theta, eps):
    """Adjoints of one iteration's inputs: ``(state~, kf~ (8,), kd~ (8,), g1~, g2~, grad~, rho_c~)``."""
    _, c = iteration_step(kf, kd, g1, g2, grad, rho_c, state, lt, taut, theta, eps)
    u1, u2, p11, p12, p21, p22 = state
    ps = ((p11, p12), (p21, p22))
    wbar, pbar, gkf, gkd = [], [], [], []
    for d in range(2):
        big_w, bar_x, bar_y = bar[d], bar[2 + 2 * d], bar[3 + 2 * d]
        den, s, a, b, w = c["den"][d], c["s"][d], c["a"][d], c["b"][d], c["w"][d]
        nx, ny = c["n"][d]
        nbx, nby = bar_x / den, bar_y / den
        sbar = -taut * (nbx * nx + nby * ny) / den
        abar = taut * nbx + sbar * a / s
        bbar = taut * nby + sbar * b / s
        za, zb = _zero_last(abar, 2), _zero_last(bbar, 1)
        k = kf[4 * d:4 * d + 4]
        wb = big_w + k[0] * za + k[1] * _shift_prev(za, 2) + k[2] * zb + k[3] * _shift_prev(zb, 1)
        gkf += [_sum(za * w), _sum(za * _shift_next(w, 2)), _sum(zb * w), _sum(zb * _shift_next(w, 1))]
        dbar = theta * wb
        kk = kd[4 * d:4 * d + 4]
        px, py = ps[d]
        pxm, pym = _zero_last(px, 2), _zero_last(py, 1)
        pbar += [nbx + _zero_last(kk[0] * _shift_next(dbar, 2) + kk[1] * dbar, 2),
                 nby + _zero_last(kk[2] * _shift_next(dbar, 1) + kk[3] * dbar, 1)]
        gkd += [_sum(dbar * _shift_prev(pxm, 2)), _sum(dbar * pxm), _sum(dbar * _shift_prev(pym, 1)), _sum(dbar * pym)]
        wbar.append(wb)
    q, r = c["q"], c["r"]
    rbar = -(wbar[0] * g1 + wbar[1] * g2)
    qbar = rbar * tf.cast((q >= -lt) & (q <= lt), q.dtype)   # tf.clip_by_value's gradient: inside, ends included
    rhobar = qbar / grad
    gradbar = -qbar * q / grad
    u1b = wbar[0] + rhobar * g1
    u2b = wbar[1] + rhobar * g2
    g1b = -wbar[0] * r + rhobar * u1
    g2b = -wbar[1] * r + rhobar * u2
    return (u1b, u2b, *pbar), tf.stack(gkf), tf.stack(gkd), g1b, g2b, gradbar, rhobar


def adjoint_iterations(iterations, *, lbda, theta, tau, epsilon, xla=False):
    """``f(fwd_w, div_w, g1, g2, grad, rho_c, u1, u2, p11, p12, p21, p22) -> (u1, u2, p11, p12, p21, p22)``:
    the ``iterations`` TV-L1 iterations of one warp (taps ``fwd_w`` / ``div_w`` ``(iterations, 8)``, index
    ``d * 4 + direction * 2 + tap``), differentiable through the hand-derived adjoint (module docstring) with
    respect to every argument."""
    lt, taut, eps = lbda * theta, tau / theta, epsilon

    def forward(fwd_w, div_w, g1, g2, grad, rho_c, *state):
        # slot n of each stack holds the state entering iteration n: the initial state is written before the loop
        # and each iteration writes the state it computes into slot n + 1. Writing the incoming state instead made
        # XLA copy all six loop-carried maps in every iteration (the stores read what the iteration overwrites):
        # the forward pass of TVNet-50 at 48 px, 60 pairs, 69 -> 54 CPU ms (slot `iterations` is unused: 2% more memory)
        @tf.autograph.experimental.do_not_convert
        def body(n, states, *st):
            new, _ = iteration_step(tf.unstack(fwd_w[n]), tf.unstack(div_w[n]), g1, g2, grad, rho_c, st,
                                     lt, taut, theta, eps)
            return (n + 1, [ta.write(n + 1, x[..., 0]) for ta, x in zip(states, new)], *new)

        states = [tf.TensorArray(x.dtype, size=iterations + 1, element_shape=x.shape[:-1]).write(0, x[..., 0])
                  for x in state]
        out = tf.while_loop(less_than(iterations), body, (tf.constant(0), states, *state),
                            maximum_iterations=iterations)
        return (*out[2:], *[ta.stack() for ta in out[1]])

    def backward(fwd_w, div_w, g1, g2, grad, rho_c, stored, *bar):
        zero = tf.zeros_like(g1)

        @tf.autograph.experimental.do_not_convert
        def body(i, gkf, gkd, g1b, g2b, gradb, rcb, *b):
            n = iterations - 1 - i
            state = tuple(x[n][..., tf.newaxis] for x in stored)
            sb, kf_b, kd_b, a1, a2, a3, a4 = _adjoint_step(tf.unstack(fwd_w[n]), tf.unstack(div_w[n]), g1, g2,
                                                           grad, rho_c, state, b, lt, taut, theta, eps)
            return (i + 1, gkf.write(n, kf_b), gkd.write(n, kd_b), g1b + a1, g2b + a2, gradb + a3, rcb + a4, *sb)

        gkf = tf.TensorArray(fwd_w.dtype, size=iterations)
        gkd = tf.TensorArray(div_w.dtype, size=iterations)
        out = tf.while_loop(less_than(iterations), body, (tf.constant(0), gkf, gkd, zero, zero, zero, zero, *bar),
                            maximum_iterations=iterations)
        return (out[1].stack(), out[2].stack(), *out[3:7], *out[7:])

    if xla:
        forward = tf.function(forward, jit_compile=True, autograph=False)
    # the backward loop is compiled with XLA in every mode: it runs only in training, where XLA is always at hand
    # (TF's CPU and GPU builds), and compiled it costs about half of TF's own ops (benchmarks/tvnet_train.py)
    backward = tf.function(backward, jit_compile=True, autograph=False)

    @tf.custom_gradient
    def iterate(fwd_w, div_w, g1, g2, grad, rho_c, u1, u2, p11, p12, p21, p22):
        args = (fwd_w, div_w, g1, g2, grad, rho_c, u1, u2, p11, p12, p21, p22)
        out = forward(*(tf.stop_gradient(a) for a in args))  # nothing to record: the gradient is grad_fn
        new, stored = out[:6], out[6:]

        def grad_fn(*upstream):
            bar = [tf.zeros_like(t) if g is None else g for g, t in zip(upstream, new)]
            res = backward(fwd_w, div_w, g1, g2, grad, rho_c, stored, *bar)
            gkf, gkd, g1b, g2b, gradb, rcb = res[:6]
            return [gkf, gkd, g1b, g2b, gradb, rcb, *res[6:]]

        return tuple(new), grad_fn

    return iterate
