"""Deep Feature Flow's feature propagation (seed 003, Zhu et al., "Deep Feature Flow for Video
Recognition", Sec. 3, Eq. 1-4).

:class:`FeatureWarp` is the propagation function ``W`` of Eq. 3::

    f_i = W(f_k, M_{i->k}, S_{i->k}) = warp(f_k, M_{i->k}) * S_{i->k}

with the bilinear warp of Eq. 1-2::

    f_i^c(p) = sum_q G(q, p + dp) f_k^c(q),   G(q, p + dp) = g(q_x, p_x + dp_x) g(q_y, p_y + dp_y),
    g(a, b) = max(0, 1 - |a - b|),   dp = M_{i->k}(p).

Flow convention (docs/ARCHITECTURE.md, "Conventions"). The project's flow ``flow`` of a pair
``(frame0, frame1)`` is ``(..., 2)`` in pixels, ``[..., 0] = x``, and means
``frame1(p + flow(p)) ~= frame0(p)``: ``backward_warp(frame1, flow) ~= frame0``. DFF's
``M_{i->k}`` "projects back a location p in current frame i to the location p + dp in key frame k"
(Sec. 3) and Eq. 1 samples ``f_k`` there: that *is* the project convention with ``frame0`` = the
current frame ``I_i`` and ``frame1`` = the key frame ``I_k`` (and DFF's code agrees:
``GridGenerator(transform_type="warp")`` adds the flow to the pixel grid and ``BilinearSampler``
samples the key features there). So the flow is used as it is, with no sign change and no swap of
``x``/``y``; ``tfvideo.models.flownet.flownet`` returns its flow in this convention, in pixels of the
feature map.

Border (Eq. 1-2, our choice). ``q`` in Eq. 1 runs over the locations *of the feature map* only, so a
sample point outside the map gets the zero contribution of the missing neighbours: a point more than
one pixel outside is 0, a point between the border pixel and one pixel outside is the border value
times its kernel weight. The DFF code does the same (MXNet's ``BilinearSampler`` pads with zeros).
:func:`tfvideo.ops.warp.backward_warp` instead clamps to the border (it repeats the edge pixel), so
this layer pads the features (and the flow) with one ring of zeros and warps the padded map:
clamped sampling of a zero ring is exactly Eq. 1-2's zero outside the map (the zero ring is the only
outside location a bilinear kernel can reach before clamping takes over, and clamping there reads a
zero). The ring is then cropped away. The layer is parameter-free and differentiable with respect to
the features, the flow (Eq. 4, by autodiff through the bilinear weights; like Eq. 2 itself it is
not differentiable where ``p + dp`` crosses an integer) and the scale field.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvideo.ops.warp import backward_warp

__all__ = ["FeatureWarp"]


@keras.saving.register_keras_serializable(package="tfvideo")
class FeatureWarp(keras.layers.Layer):
    """Eq. 3 of DFF: ``[features_k, flow, scale] -> bilinear_warp(features_k, flow) * scale``.

    Inputs (a list of three tensors):
      features_k: ``(B, h, w, C)`` float, the key frame's features ``f_k``.
      flow: ``(B, h, w, 2)`` float, ``M_{i->k}`` in pixels of the feature map, ``[..., 0] = x``,
        project convention (module docstring): the output at ``p`` samples ``features_k`` at
        ``p + flow(p)``.
      scale: ``(B, h, w, C)`` float, the scale field ``S_{i->k}`` (Sec. 3); ``C`` must equal the
        features' channels (the paper: "of the same spatial and channel dimensions as the feature
        maps"). With ``scale=False`` the layer takes only ``[features_k, flow]`` and ``S = 1`` (Sec. 3:
        "the scale function S is set to ones everywhere" when the flow is not trained).

    Output: ``(B, h, w, C)`` in the features' dtype, zero where the sample point is more than one
    pixel outside the map (module docstring, "Border"). ``h`` and ``w`` may be unknown; they must be
    at least 1 (the map is padded to at least 3 x 3 before sampling).
    """

    def __init__(self, scale=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(scale, bool):
            raise TypeError(f"`scale` must be a bool (whether a scale field is the third input); got "
                            f"{scale!r}")
        self.scale = scale

    @property
    def _n_inputs(self):
        return 3 if self.scale else 2

    def _check_shapes(self, shapes):
        names = ("features_k", "flow", "scale")[:self._n_inputs]
        if not isinstance(shapes, (list, tuple)) or len(shapes) != self._n_inputs or not all(
                isinstance(s, (list, tuple, tf.TensorShape)) for s in shapes):
            raise ValueError(f"FeatureWarp takes a list [{', '.join(names)}]; got input shapes {shapes}")
        shapes = [tuple(s) for s in shapes]
        for name, s in zip(names, shapes):
            if len(s) != 4:
                raise ValueError(f"`{name}` must be a rank-4 tensor (batch, h, w, channels); got shape {s}")
        feats, flow = shapes[0], shapes[1]
        if flow[-1] is not None and flow[-1] != 2:
            raise ValueError(f"`flow` must have last dimension 2 (x, y); got shape {flow}")
        for name, s in zip(names[1:], shapes[1:]):
            for axis, what in ((0, "batch size"), (1, "height"), (2, "width")):
                if s[axis] is not None and feats[axis] is not None and s[axis] != feats[axis]:
                    raise ValueError(f"`{name}` must have the {what} of `features_k`; got {name} shape {s} "
                                     f"and features_k shape {feats}")
        if self.scale:
            sc = shapes[2]
            if sc[-1] is not None and feats[-1] is not None and sc[-1] != feats[-1]:
                raise ValueError(f"`scale` must have the channels of `features_k` (Sec. 3: same spatial and "
                                 f"channel dimensions); got scale shape {sc} and features_k shape {feats}")
        return shapes

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.built = True

    def call(self, inputs):
        inputs = list(inputs)
        self._check_shapes([x.shape for x in inputs])
        features = inputs[0]
        if not features.dtype.is_floating:
            raise TypeError(f"`features_k` must be a floating tensor; got {features.dtype.name}")
        flow = tf.cast(inputs[1], features.dtype)
        # one ring of zeros: clamped bilinear sampling of the padded map = Eq. 1-2 (module docstring)
        ring = [[0, 0], [1, 1], [1, 1], [0, 0]]
        warped = backward_warp(tf.pad(features, ring), tf.pad(flow, ring))[:, 1:-1, 1:-1, :]
        if self.scale:
            warped = warped * tf.cast(inputs[2], features.dtype)
        return warped

    def compute_output_shape(self, input_shape):
        return tuple(self._check_shapes(input_shape)[0])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
