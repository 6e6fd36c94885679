"""Whether the code being traced will be compiled by XLA (``jit_compile=True``).

Layers that check their inputs at run time (``tf.debugging`` assertions) must refuse to trace inside
XLA, which drops those checks. TensorFlow has no public API for the question; this is the one place
that uses the private one (``control_flow_util.GraphOrParentsInXlaContext``).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # no public API for the XLA context

__all__ = ["in_xla_context"]


def in_xla_context() -> bool:
    """True while tracing a function (or a function inside one) compiled with ``jit_compile=True``."""
    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph())
