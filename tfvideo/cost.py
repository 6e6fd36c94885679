"""Floating-point operations of built Keras models, counted from their layers' shapes.

:func:`flops` walks a functional model (and the functional models nested in it) and counts, per
example, the multiply-adds of its convolution-like layers as **2 FLOPs each** (one multiply, one add; some
papers' tables count a multiply-add as one operation: divide ours by 2 to compare with those):

=============================  =====================================================================
layer                          FLOPs per example
=============================  =====================================================================
``Conv1D/2D/3D``               ``2 x prod(kernel) x C_in / groups x C_out x prod(output size)``
``Conv2DTranspose/3D``         ``2 x prod(kernel) x C_in x C_out x prod(input size)`` (every input
                               value is scattered through the whole kernel)
``DepthwiseConv2D``            ``2 x prod(kernel) x C_in x depth_multiplier x prod(output size)``
``Dense``                      ``2 x units_in x units_out x prod(leading output dims)``
=============================  =====================================================================

Biases, activations, pooling, normalisation, concatenation and resizing are not counted (they are
a few percent of a convolutional network's work, and the peers we compare with do not count them
either). Layers whose shapes are unknown (``None`` besides the batch) raise a ``ValueError``: build
the model with fixed input sizes to count it.

>>> import keras
>>> x = keras.Input((4, 8, 8, 3)); m = keras.Model(x, keras.layers.Conv3D(5, 3, padding="same")(x))
>>> flops(m)  # 2 * 27 * 3 * 5 * (4 * 8 * 8)
207360
"""

from __future__ import annotations

import math

import keras

__all__ = ["flops", "layer_flops"]

_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSE = (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


def _known(shape, what):
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(f"{what} has unknown sizes {tuple(shape)}: build the model with fixed input sizes "
                         "to count its FLOPs")
    return dims


def layer_flops(layer) -> int:
    """FLOPs per example of one built layer inside a functional model (0 for uncounted layers)."""
    if isinstance(layer, keras.Model):
        return flops(layer)
    if isinstance(layer, _TRANSPOSE):
        c_in = _known(layer.input.shape, layer.name)
        return 2 * math.prod(layer.kernel_size) * c_in[-1] * layer.filters * math.prod(c_in[:-1])
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        out = _known(layer.output.shape, layer.name)
        return 2 * math.prod(layer.kernel_size) * math.prod(out)
    if isinstance(layer, _CONV):
        c_in = _known(layer.input.shape, layer.name)[-1]
        out = _known(layer.output.shape, layer.name)
        return 2 * math.prod(layer.kernel_size) * (c_in // layer.groups) * math.prod(out)
    if isinstance(layer, keras.layers.Dense):
        out = _known(layer.output.shape, layer.name)
        c_in = _known(layer.input.shape, layer.name)[-1]
        return 2 * c_in * math.prod(out)
    return 0


def flops(model, *, by_layer=False):
    """FLOPs per example of a functional ``model`` (nested functional models included).

    Args:
      model: a built functional ``keras.Model`` with fixed input sizes.
      by_layer: also return ``{layer name: FLOPs}`` of the counted layers.

    Returns:
      ``int`` total, or ``(total, dict)`` with ``by_layer``.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a functional keras.Model, got {type(model).__name__}")
    per = {}
    for layer in model.layers:
        n = layer_flops(layer)
        if n:
            per[layer.name] = n
    total = sum(per.values())
    return (total, per) if by_layer else total
