"""The input stage of DFF's flow networks (seed 003, Zhu et al., Sec. 4 and the authors' ``get_flownet``).

:class:`FlowNetInput` turns a frame pair ``(B, 2, H, W, 3)`` (0..255, RGB) into FlowNet's input
``(B, H/2, W/2, 6)``:

1. per-channel mean subtraction with :data:`DFF_MEAN_RGB` and division by 255. DFF's data loader
   (``lib/utils/image.py::transform``) gives the network RGB channels minus the config's
   ``PIXEL_MEANS`` (listed B, G, R = 103.06, 115.90, 123.15, applied channel for channel, so R - 123.15,
   G - 115.90, B - 103.06), and ``get_flownet`` divides both images by 255.
2. the two frames concatenated on channels, ``frames[:, 0]`` first (``Concat(img_cur / 255,
   img_ref / 255)``: the current frame first, the key frame second).
3. halving: "the input image is half-sized" (Sec. 4). The DFF code does it with a 2 x 2 average
   pooling of stride 2 (``resize_data``), which we keep: it is the exact area (box-filter,
   antialiased) resize by 1/2, and it has an XLA kernel where ``tf.image.resize(antialias=True)``
   has none (DESIGN.md, measured facts).
4. the size rule: ``H`` and ``W`` multiples of ``multiple`` (128 for FlowNet: the half-size input is
   divided by 2 six times, so it must be a multiple of 64, and the decoder's deconvolutions then give
   back each skip's size exactly). Known sizes: ``ValueError``; unknown sizes (exported signatures):
   a ``tf.debugging`` assertion with the same message, and the layer refuses XLA (which would drop it).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.ops.xla import in_xla_context

__all__ = ["DFF_MEAN_RGB", "FlowNetInput"]

#: DFF's ``PIXEL_MEANS`` in RGB order (the config lists them B, G, R).
DFF_MEAN_RGB = (123.15, 115.90, 103.06)


@keras.saving.register_keras_serializable(package="tfvideo")
class FlowNetInput(keras.layers.Layer):
    """``(B, 2, H, W, 3)`` frames (uint8 or float in 0..255) -> ``(B, H/2, W/2, 6)`` float FlowNet input.

    See the module docstring for the four steps (mean, /255, channel concatenation, 2 x 2 average,
    size rule). ``mean`` is the per-channel mean subtracted before the division by 255.
    """

    def __init__(self, mean=DFF_MEAN_RGB, multiple=128, **kwargs):
        super().__init__(**kwargs)
        try:
            mean = tuple(float(m) for m in mean)
        except (TypeError, ValueError):
            raise ValueError(f"`mean` must be 3 numbers (R, G, B); got {mean!r}") from None
        if len(mean) != 3:
            raise ValueError(f"`mean` must be 3 numbers (R, G, B); got {mean!r}")
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 2 or multiple % 2:
            raise ValueError(f"`multiple` must be an even int >= 2; got {multiple!r}")
        self.mean = mean
        self.multiple = multiple

    @property
    def rule(self):
        return (f"FlowNet size rule: frame height H and width W must be multiples of {self.multiple} "
                f"(the half-size input is halved {(self.multiple // 2).bit_length() - 1} times and the "
                "refinement must give back every skip's size)")

    def _check_static(self, shape):
        shape = tuple(shape)
        if len(shape) != 5 or shape[1] not in (None, 2) or shape[-1] not in (None, 3):
            raise ValueError(f"`frames` must have shape (batch, 2, H, W, 3) (current frame, key frame); "
                             f"got {shape}")
        bad = [f"{n}={d}" for n, d in zip("HW", shape[2:4]) if d is not None and int(d) % self.multiple]
        if bad:
            raise ValueError(f"{self.rule}; got {', '.join(bad)} (frames shape {shape})")

    def build(self, input_shape):
        self._check_static(input_shape)
        if any(d is None for d in tuple(input_shape)[2:4]):
            self.supports_jit = False  # the runtime assertion would be dropped by XLA
        self.built = True

    def call(self, frames):
        self._check_static(frames.shape)
        if not (frames.dtype == tf.uint8 or frames.dtype.is_floating):
            raise TypeError(f"`frames` must be uint8 or float in 0..255; got {frames.dtype.name}")
        checks = []
        if frames.shape[2] is None or frames.shape[3] is None:
            if in_xla_context():
                raise ValueError(f"FlowNetInput cannot check unknown frame sizes inside an XLA-compiled "
                                 f"function (jit_compile=True): give static sizes ({self.rule})")
            shape = tf.shape(frames)
            checks.append(tf.debugging.Assert(
                tf.reduce_all(tf.equal(tf.math.floormod(shape[2:4], self.multiple), 0)),
                [f"{self.rule}; got frames shape (batch, 2, H, W, 3) =", shape], summarize=5))
        dtype = self.compute_dtype
        x = (tf.cast(frames, dtype) - tf.constant(self.mean, dtype)) / tf.cast(255.0, dtype)
        x = tf.concat([x[:, 0], x[:, 1]], axis=-1)
        x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        if checks:
            with tf.control_dependencies(checks):
                x = tf.identity(x)
        return x

    def compute_output_shape(self, input_shape):
        b, _, h, w, _ = tuple(input_shape)
        return (b, None if h is None else h // 2, None if w is None else w // 2, 6)

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "multiple": self.multiple}
