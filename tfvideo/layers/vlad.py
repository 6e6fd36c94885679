"""VLAD layers of Ng's thesis, chapter 2 ("Exploiting Local Features from Deep Networks for Image
Retrieval"; digest ``seeds/digest-004-thesis.md``, Sec. 2.1), and the trainable NetVLAD.

Every spatial location of a conv feature map is one local descriptor (digest 2.1 step 3), so the
inputs are local features ``(B, H, W, D)`` (a conv map) or ``(B, N, D)`` (a set, or the frames
``(B, T, D)`` of a video); all axes between the batch and ``D`` are locations and may be unknown.

* :class:`LocalL2Normalize`: each local descriptor divided by its L2 norm (digest 2.1 step 5, "Local
  features are L2-normalised"), shape kept.
* :class:`VLAD`: hard nearest-centre assignment and residual sums (Eq. 2.1), intra-normalisation,
  then a global L2; non-trainable codebook ``centers`` ``(K, D)`` (from
  :func:`tfvideo.retrieval.kmeans`); ``(B, ..., D) -> (B, K * D)``.
* :class:`NetVLAD`: the trainable soft-assignment version of Arandjelovic et al. (CVPR 2016),
  ``a_k(x) = softmax_k(w_k . x + b_k)``, ``V_k = sum_i a_k(x_i) (x_i - c_k)``; a video head for frame
  features ``(B, T, D)`` next to :mod:`tfvideo.layers.temporal_pooling`, or a pooling layer for
  conv maps.

The thesis pipeline (digest 2.1): conv map ``M^l`` -> :class:`LocalL2Normalize` -> :class:`VLAD`
with ``k = 100`` centres learnt by k-means on L2-normalised local features of that layer -> L2
ranking (:mod:`tfvideo.retrieval`), optionally after PCA-whitening to 128-D.

Masks: :class:`VLAD` and :class:`NetVLAD` take an optional ``mask`` (``(B, N)`` or ``(B, H, W)``,
true / non-zero at valid locations) for padded batches of different-size images or clips; a masked
location contributes nothing. A Keras mask propagated from an earlier layer (e.g.
``keras.layers.Masking`` on frames) is used the same way. The output has no mask.

Shared normalisation rule: ``l2(v) = v / sqrt(max(sum(v ** 2), epsilon))`` (``tf.math.l2_normalize``)
with ``epsilon = 1e-12`` on the squared norm, so an all-zero vector (an empty cluster, a zero
descriptor) stays exactly 0 instead of becoming NaN, and any vector with ``||v|| >= 1e-6`` gets unit
norm.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf

__all__ = ["LocalL2Normalize", "VLAD", "NetVLAD", "EPSILON"]

EPSILON = 1e-12
"""Lower bound of the squared norm in every L2 normalisation of this module (module docstring)."""


# --------------------------------------------------------------------------------------- helpers ----
def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be an int >= 1; got {value!r}")
    return int(value)


def _bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False; got {value!r}")
    return bool(value)


def _positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}")
    return float(value)


def _centers_argument(centers, num_clusters, default):
    """``centers=`` of the constructors: ``None`` (``default``), a Keras initializer identifier
    (name, config dict or object), or an array-like ``(num_clusters, D)`` codebook.

    Returns ``(initializer, config_value)``: the callable used by ``add_weight`` and what
    ``get_config`` stores (a serialised initializer, or the array as nested lists).
    """
    if centers is None:
        centers = default
    if isinstance(centers, (str, dict, keras.initializers.Initializer)):
        try:
            init = keras.initializers.get(centers)
        except (ValueError, TypeError) as e:
            raise ValueError(f"`centers` must be a Keras initializer or an array of shape "
                             f"(num_clusters, D); got {centers!r}: {e}") from None
        return init, keras.initializers.serialize(init)
    try:
        array = np.asarray(centers, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"`centers` must be a Keras initializer or an array of shape "
                         f"(num_clusters, D); got {type(centers).__name__}") from None
    if array.ndim != 2 or array.shape[0] != num_clusters or array.shape[1] < 1:
        raise ValueError(f"`centers` must have shape (num_clusters={num_clusters}, D); got "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("`centers` must be finite")
    array = array.astype(np.float32)

    def init(shape, dtype=None):
        if tuple(shape) != array.shape:
            raise ValueError(f"`centers` has shape {array.shape} but the layer needs {tuple(shape)} "
                             f"(num_clusters, D of the input)")
        return tf.constant(array, dtype=dtype or "float32")

    return init, array.tolist()


def _feature_dim(input_shape, layer):
    shape = tuple(input_shape)
    if len(shape) < 3:
        raise ValueError(f"{layer} takes local features of shape (batch, N, D) or (batch, H, W, D); "
                         f"got {shape}")
    if shape[-1] is None:
        raise ValueError(f"{layer} needs a known feature size D (last axis); got {shape}")
    return int(shape[-1])


def _flatten_locations(x, mask, dim, layer):
    """``(B, ..., D) -> (B, N, D)`` and the mask ``(B, ...) -> (B, N, 1)`` (or ``None``)."""
    if x.shape.rank is not None and x.shape.rank < 3:
        raise ValueError(f"{layer} takes local features of shape (batch, N, D) or (batch, H, W, D); "
                         f"got {tuple(x.shape)}")
    if x.shape[-1] is not None and int(x.shape[-1]) != dim:
        raise ValueError(f"{layer} was built for D = {dim} features; got inputs of shape "
                         f"{tuple(x.shape)}")
    batch = tf.shape(x)[0]
    flat = tf.reshape(x, [batch, -1, dim])
    if mask is None:
        return flat, None
    mask = tf.convert_to_tensor(mask)
    ranks = (mask.shape.rank, x.shape.rank)
    if None not in ranks and ranks[0] != ranks[1] - 1:
        raise ValueError(f"{layer}: `mask` must have the shape of the inputs without D, "
                         f"{tuple(x.shape[:-1])}; got {tuple(mask.shape)}")
    mask = tf.reshape(mask, [batch, -1, 1])
    if mask.dtype != tf.bool:
        mask = tf.not_equal(mask, tf.zeros([], mask.dtype))
    mask = tf.cast(mask, flat.dtype)
    return flat, mask


def _encode(assign, flat, centers, intra_normalize, final_l2):
    """Residual sums ``V[b, k] = sum_i a[b, i, k] (x[b, i] - c[k])``, then the normalisations;
    ``(B, N, K), (B, N, D), (K, D) -> (B, K * D)`` (cluster-major); sums and norms in float32 (or
    float64), the result in the input's dtype."""
    num_clusters, dim = centers.shape
    dtype = flat.dtype
    if dtype != tf.float64:  # float16 would flush EPSILON to 0: empty clusters would become NaN
        assign, flat, centers = (tf.cast(t, tf.float32) for t in (assign, flat, centers))
    v = tf.einsum("bnk,bnd->bkd", assign, flat)
    v -= tf.reduce_sum(assign, axis=1)[:, :, None] * centers[None]
    if intra_normalize:
        v = tf.math.l2_normalize(v, axis=-1, epsilon=EPSILON)
    v = tf.reshape(v, [-1, int(num_clusters) * int(dim)])
    if final_l2:
        v = tf.math.l2_normalize(v, axis=-1, epsilon=EPSILON)
    return tf.cast(v, dtype)


def _check_codebook(layer, centers):
    """``centers`` must be a finite ``(K, D)`` codebook for ``layer`` (built for ``D`` here if needed)."""
    if centers.ndim != 2 or centers.shape[0] != layer.num_clusters:
        raise ValueError(f"`centers` must have shape (num_clusters={layer.num_clusters}, D); got "
                         f"{centers.shape}")
    if not np.all(np.isfinite(centers)):
        raise ValueError("`centers` must be finite")
    if not layer.built:
        layer.build((None, None, centers.shape[1]))
    if centers.shape[1] != layer.feature_dim:
        raise ValueError(f"`centers` must have shape ({layer.num_clusters}, {layer.feature_dim}) "
                         f"(the layer is built for D = {layer.feature_dim}); got {centers.shape}")


def _output_shape(input_shape, num_clusters):
    shape = tuple(input_shape)
    dim = shape[-1]
    return (shape[0], None if dim is None else num_clusters * int(dim))


# ------------------------------------------------------------------------------ LocalL2Normalize ----
@keras.saving.register_keras_serializable(package="tfvideo")
class LocalL2Normalize(keras.layers.Layer):
    """L2-normalise every local descriptor: ``y[..., :] = x[..., :] / sqrt(max(||x[...]||^2, eps))``.

    Digest 2.1 step 5: "Local features are L2-normalised" before k-means and VLAD encoding. The last
    axis is the descriptor (``D``); every other axis is kept, so ``(B, H, W, D)`` and ``(B, N, D)``
    (or any rank >= 2) give the same shape back, with unknown batch and locations allowed.
    ``epsilon`` bounds the squared norm from below (default :data:`EPSILON` = ``1e-12``): an all-zero
    descriptor (e.g. a location where every ReLU is off) stays 0.

    Args:
      epsilon: lower bound of the squared norm (> 0).

    Example:

    >>> import numpy as np
    >>> x = np.array([[[3., 4.], [0., 0.]]], np.float32)      # (B=1, N=2, D=2)
    >>> LocalL2Normalize()(x).numpy()
    array([[[0.6, 0.8],
            [0. , 0. ]]], dtype=float32)
    """

    def __init__(self, epsilon=EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _positive_float(epsilon, "epsilon")

    def build(self, input_shape):
        if len(tuple(input_shape)) < 2:
            raise ValueError(f"LocalL2Normalize takes (batch, ..., D); got {tuple(input_shape)}")
        self.built = True

    def call(self, x):
        if x.dtype in (tf.float16, tf.bfloat16):  # keep epsilon representable (mixed precision)
            return tf.cast(tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1,
                                                epsilon=self.epsilon), x.dtype)
        return tf.math.l2_normalize(x, axis=-1, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


# ------------------------------------------------------------------------------------------ VLAD ----
@keras.saving.register_keras_serializable(package="tfvideo")
class VLAD(keras.layers.Layer):
    """Hard-assignment VLAD (thesis Eq. 2.1): ``(B, ..., D) -> (B, K * D)``.

    For the local descriptors ``f`` of one image (all locations, ``N = H * W``) and the codebook
    ``c_1..c_K`` (the non-trainable weight ``centers``, ``(K, D)``):

    * ``NN(f) = argmin_k ||f - c_k||`` (Euclidean; a tie goes to the lowest ``k``),
    * ``v_k = sum_{f : NN(f) = c_k} (f - c_k)`` (Eq. 2.1),
    * intra-normalisation (digest 2.1 step 5, [21]): ``v_k <- v_k / ||v_k||``; a cluster that no
      descriptor chose (or whose residuals cancel exactly) stays 0 (module docstring, ``epsilon``),
    * a final global L2 of ``[v_1, ..., v_K]`` (``final_l2``),
    * output ``[v_1, ..., v_K]`` flattened cluster-major: ``y[b, k * D + d] = v_k[d]``.

    No power / signed-square-root normalisation (the thesis uses intra-normalisation only).

    Choice where the thesis is silent (digest 2.6 q3): ``final_l2=True`` by default. Images are
    ranked by the L2 distance between descriptors (digest 2.1 step 7); after intra-normalisation a
    descriptor's norm is ``sqrt(number of non-empty clusters)``, so without the global L2 the distance
    would also compare how many clusters each image fills; with it the ranking compares unit vectors
    (equivalently, cosine similarity), which is what intra-normalised VLAD is compared with in [21].

    Codebook: learn it with :func:`tfvideo.retrieval.kmeans` on L2-normalised local features of the
    same layer (``k = 100``, digest 2.1 step 5) and load it with :meth:`set_centers`, or pass it as
    ``centers=`` (the array is then kept in ``get_config`` as nested lists, so a ``from_config`` copy
    starts from the same codebook; for large codebooks prefer :meth:`set_centers`, the ``.keras``
    file stores the weight either way). Until then the centres are zeros (every descriptor goes to
    cluster 0), which is only a placeholder. The centres survive ``.keras`` save / load.

    The hard assignment (``argmin``) has no gradient: gradients flow to the inputs only through the
    residual sums (enough for exported signatures and ``tf.function``; use :class:`NetVLAD` to learn
    the codebook). The batch and the location axes may be unknown; ``D`` must be known.

    Args:
      num_clusters: ``K`` (100 in the thesis).
      intra_normalize: L2-normalise each cluster block (thesis: yes).
      final_l2: L2-normalise the whole vector at the end (digest 2.6 q3, see above).
      centers: ``None`` (zeros), a Keras initializer, or an array ``(K, D)`` (the codebook).

    Call arguments:
      inputs: local features ``(B, N, D)`` or ``(B, H, W, D)``.
      mask: optional ``(B, N)`` / ``(B, H, W)``, non-zero at valid locations (padded batches).

    Example:

    >>> import numpy as np
    >>> centers = np.array([[0., 0.], [10., 0.]], np.float32)            # K = 2, D = 2
    >>> f = np.array([[[1., 0.], [0., 2.], [9., 0.]]], np.float32)      # (B=1, N=3, D=2)
    >>> VLAD(2, final_l2=False, centers=centers)(f).numpy()   # v_1 = (1, 2) / sqrt(5), v_2 = (-1, 0)
    array([[ 0.4472136,  0.8944272, -1.       ,  0.       ]], dtype=float32)
    """

    def __init__(self, num_clusters=100, *, intra_normalize=True, final_l2=True, centers=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_clusters = _positive_int(num_clusters, "num_clusters")
        self.intra_normalize = _bool(intra_normalize, "intra_normalize")
        self.final_l2 = _bool(final_l2, "final_l2")
        self._centers_init, self._centers_config = _centers_argument(centers, self.num_clusters,
                                                                     "zeros")
        self.supports_masking = True

    def build(self, input_shape):
        self.feature_dim = _feature_dim(input_shape, type(self).__name__)
        self.centers = self.add_weight(name="centers", shape=(self.num_clusters, self.feature_dim),
                                       initializer=self._centers_init, trainable=False)
        self.built = True

    def set_centers(self, centers):
        """Load the codebook ``(K, D)`` (e.g. from :func:`tfvideo.retrieval.kmeans`); builds the
        layer for ``D`` features if it is not built yet. Returns the layer."""
        centers = np.asarray(centers, dtype=np.float32)
        _check_codebook(self, centers)
        self.centers.assign(centers)
        return self

    def call(self, inputs, mask=None):
        flat, valid = _flatten_locations(inputs, mask, self.feature_dim, type(self).__name__)
        centers = tf.cast(self.centers, flat.dtype)
        # ||f - c||^2 = ||f||^2 - 2 f.c + ||c||^2; ||f||^2 does not change the argmin (computed in
        # at least float32, also under a mixed-precision policy)
        wide = tf.float64 if flat.dtype == tf.float64 else tf.float32
        c_wide = tf.cast(self.centers, wide)
        scores = tf.reduce_sum(tf.square(c_wide), axis=-1) - 2.0 * tf.einsum(
            "bnd,kd->bnk", tf.cast(flat, wide), c_wide)
        assign = tf.one_hot(tf.argmin(scores, axis=-1), self.num_clusters, dtype=flat.dtype)
        if valid is not None:
            assign *= valid
        return _encode(assign, flat, centers, self.intra_normalize, self.final_l2)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.num_clusters)

    def get_config(self):
        return {**super().get_config(), "num_clusters": self.num_clusters,
                "intra_normalize": self.intra_normalize, "final_l2": self.final_l2,
                "centers": self._centers_config}


# --------------------------------------------------------------------------------------- NetVLAD ----
@keras.saving.register_keras_serializable(package="tfvideo")
class NetVLAD(keras.layers.Layer):
    """Trainable soft-assignment VLAD (Arandjelovic et al., "NetVLAD", CVPR 2016):
    ``(B, ..., D) -> (B, K * D)``.

    For the local descriptors (or frame features) ``x_i`` of one example:

    * ``a_k(x_i) = softmax_k(w_k . x_i + b_k)`` (``kernel`` ``(D, K)`` holds the ``w_k`` as columns,
      ``bias`` ``(K,)`` the ``b_k``),
    * ``V_k = sum_i a_k(x_i) (x_i - c_k)`` (``centers`` ``(K, D)``),
    * intra-normalisation of each ``V_k`` and a final global L2, as :class:`VLAD` (same ``epsilon``
      rule and the same default, digest 2.6 q3), flattened cluster-major.

    All three weights are trainable. The paper's initialisation from a codebook,
    :meth:`init_from_centers`: ``w_k = 2 alpha c_k``, ``b_k = -alpha ||c_k||^2``, so that
    ``w_k . x + b_k = -alpha ||x - c_k||^2 + alpha ||x||^2`` and, the last term being the same for
    every ``k``, ``a_k(x) = softmax_k(-alpha ||x - c_k||^2)``: a soft version of :class:`VLAD`'s
    nearest-centre assignment that tends to it as ``alpha`` grows. The layer is always built that way
    (``kernel`` and ``bias`` derived from the initial ``centers`` with the constructor's ``alpha``),
    so a fresh layer is already a soft VLAD of its initial centres; training then decouples
    ``w, b`` from ``c`` as in the paper.

    Choice (the paper sets ``alpha`` from the data): ``alpha=100.0`` by default, a nearly hard
    assignment for L2-normalised descriptors, whose squared distances to different centres differ by
    ~0.01-1; pass another value to the constructor or to :meth:`init_from_centers`.

    Inputs: frame features ``(B, T, D)`` (a video head next to
    :class:`tfvideo.layers.temporal_pooling.TemporalMaxPooling`; ``T`` may be unknown, so a model
    trained on one clip length runs on any other) or local features ``(B, H, W, D)``; an optional
    ``mask`` as in :class:`VLAD`. ``D`` must be known. Differentiable everywhere.

    Args:
      num_clusters: ``K``.
      alpha: the initialisation's sharpness (> 0), used at build and as the default of
        :meth:`init_from_centers`.
      intra_normalize: L2-normalise each cluster block.
      final_l2: L2-normalise the whole vector at the end.
      centers: the initial centres: ``None`` (``RandomNormal(stddev=0.05)``, unseeded: set
        ``keras.utils.set_random_seed`` for reproducible runs), a Keras
        initializer, or an array ``(K, D)`` (kept in ``get_config`` as nested lists).

    Example:

    >>> import numpy as np
    >>> centers = np.array([[0., 0.], [10., 0.]], np.float32)
    >>> f = np.array([[[1., 0.], [0., 2.], [9., 0.]]], np.float32)      # (B=1, T=3, D=2)
    >>> layer = NetVLAD(2, alpha=10.0, final_l2=False, centers=centers)
    >>> np.round(layer(f).numpy(), 4)        # alpha large enough: the hard VLAD of the example above
    array([[ 0.4472,  0.8944, -1.    ,  0.    ]], dtype=float32)
    """

    def __init__(self, num_clusters, *, alpha=100.0, intra_normalize=True, final_l2=True,
                 centers=None, **kwargs):
        super().__init__(**kwargs)
        self.num_clusters = _positive_int(num_clusters, "num_clusters")
        self.alpha = _positive_float(alpha, "alpha")
        self.intra_normalize = _bool(intra_normalize, "intra_normalize")
        self.final_l2 = _bool(final_l2, "final_l2")
        self._centers_init, self._centers_config = _centers_argument(
            centers, self.num_clusters, {"class_name": "RandomNormal",
                                         "config": {"mean": 0.0, "stddev": 0.05, "seed": None}})
        self.supports_masking = True

    def build(self, input_shape):
        self.feature_dim = _feature_dim(input_shape, type(self).__name__)
        k, d = self.num_clusters, self.feature_dim
        self.centers = self.add_weight(name="centers", shape=(k, d), initializer=self._centers_init,
                                       trainable=True)
        c = tf.convert_to_tensor(self.centers)
        kernel, bias = self._from_centers(c, self.alpha)
        self.kernel = self.add_weight(name="kernel", shape=(d, k), trainable=True,
                                      initializer=lambda shape, dtype=None: tf.cast(kernel, dtype))
        self.bias = self.add_weight(name="bias", shape=(k,), trainable=True,
                                    initializer=lambda shape, dtype=None: tf.cast(bias, dtype))
        self.built = True

    @staticmethod
    def _from_centers(centers, alpha):
        return 2.0 * alpha * tf.transpose(centers), -alpha * tf.reduce_sum(tf.square(centers), -1)

    def init_from_centers(self, centers, alpha=None):
        """The paper's initialisation: ``centers <- c``, ``w_k = 2 alpha c_k``,
        ``b_k = -alpha ||c_k||^2`` (``alpha`` defaults to the constructor's). Builds the layer for
        ``D = centers.shape[1]`` if needed. Returns the layer."""
        alpha = self.alpha if alpha is None else _positive_float(alpha, "alpha")
        centers = np.asarray(centers, dtype=np.float64)
        _check_codebook(self, centers)
        self.centers.assign(centers.astype(self.centers.dtype))
        self.kernel.assign((2.0 * alpha * centers.T).astype(self.kernel.dtype))
        self.bias.assign((-alpha * np.sum(centers ** 2, axis=1)).astype(self.bias.dtype))
        return self

    def call(self, inputs, mask=None):
        flat, valid = _flatten_locations(inputs, mask, self.feature_dim, type(self).__name__)
        dtype = flat.dtype
        logits = tf.einsum("bnd,dk->bnk", flat, tf.cast(self.kernel, dtype)) + tf.cast(self.bias,
                                                                                       dtype)
        assign = tf.nn.softmax(logits, axis=-1)
        if valid is not None:
            assign *= valid
        return _encode(assign, flat, tf.cast(self.centers, dtype), self.intra_normalize,
                       self.final_l2)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.num_clusters)

    def get_config(self):
        return {**super().get_config(), "num_clusters": self.num_clusters, "alpha": self.alpha,
                "intra_normalize": self.intra_normalize, "final_l2": self.final_l2,
                "centers": self._centers_config}
