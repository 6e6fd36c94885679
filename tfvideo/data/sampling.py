"""Frame-index samplers for ``tf.data``: which frames of a stored video make one training example.

Every sampler is a pure TensorFlow function of the video length ``num_frames`` (a scalar int tensor,
known only at run time inside ``tf.data.Dataset.map``) and returns **int32 frame indices** to
``tf.gather`` from the decoded frames (or, better, from the still-encoded JPEG strings, so that only
sampled frames are decoded). Randomness is *stateless*: a training call takes an explicit
``seed`` (int32/int64 tensor of shape ``[2]``) and returns the same indices for the same seed;
evaluation calls (``training=False``) use no randomness at all.

* :func:`clip_indices` -- ``T`` frames with a temporal stride (3D-CNN / TVNet clip sampling).
* :func:`segment_indices` -- TSN sparse sampling: ``S`` segments of ``k`` consecutive frames.
* :func:`frame_pair_indices` -- Deep Feature Flow (key frame, current frame) pairs.
* :func:`split_seed` -- validate a ``[2]`` seed and split it into independent sub-seeds.

Videos shorter than what is asked for are handled by **clamping** indices to the last frame (the last
frame repeats, i.e. zero motion), never by looping (a loop would put a jump across the video boundary
into the clip, which motion models see as a huge, meaningless flow).

Example:
  >>> import tensorflow as tf
  >>> clip_indices(tf.constant(20), 4, 2, training=False).numpy()        # centre clip
  array([[ 6,  8, 10, 12]], dtype=int32)
  >>> segment_indices(30, 3, 6, training=False).numpy()[:, 0]            # TSN segment starts
  array([ 4, 12, 20], dtype=int32)
  >>> idx = clip_indices(20, 4, 2, training=True, seed=tf.constant([1, 2]))  # random, reproducible
  >>> idx.shape
  TensorShape([4])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfvideo.checks import positive_int

__all__ = ["clip_indices", "segment_indices", "frame_pair_indices", "split_seed", "randint"]


# ------------------------------------------------------------------------------------- helpers ----
def split_seed(seed, num: int | None = None, arg: str = "seed") -> tf.Tensor:
    """Validate a stateless-RNG seed and optionally split it into ``num`` independent seeds.

    Args:
      seed: int32/int64 tensor (or list) of shape ``[2]``.
      num: if given, return ``num`` seeds derived with ``tf.random.experimental.stateless_split``.
      arg: argument name used in error messages.

    Returns:
      The seed as a tensor of shape ``[2]`` (``num`` is None) or ``[num, 2]``, dtype kept.

    Raises:
      ValueError: if ``seed`` is None or does not have shape ``[2]``.
      TypeError: if ``seed`` is not int32/int64.
    """
    if seed is None:
        raise ValueError(f"`{arg}` is required here: pass an int32/int64 tensor of shape [2]")
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"`{arg}` must be an int32 or int64 tensor of shape [2], got dtype {seed.dtype.name}")
    if not seed.shape.is_compatible_with([2]):
        raise ValueError(f"`{arg}` must have shape [2], got shape {seed.shape}")
    seed = tf.ensure_shape(seed, [2])
    return seed if num is None else tf.random.experimental.stateless_split(seed, num)


def _check_bool(training) -> bool:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"`training` must be a Python bool, got {type(training).__name__}")
    return bool(training)


def _scalar_int(value, arg: str, minimum: int) -> tf.Tensor:
    """``value`` as an int32 scalar tensor, checked statically when possible and at run time otherwise."""
    value = tf.convert_to_tensor(value)
    if not value.dtype.is_integer:
        raise TypeError(f"`{arg}` must be an integer scalar, got dtype {value.dtype.name}")
    if value.shape.rank not in (None, 0):
        raise ValueError(f"`{arg}` must be a scalar, got shape {value.shape}")
    static = tf.get_static_value(value)
    if static is not None:
        if int(static) < minimum:
            raise ValueError(f"`{arg}` must be >= {minimum}, got {int(static)}")
        return tf.constant(int(static), tf.int32)
    value = tf.cast(tf.reshape(value, []), tf.int32)
    check = tf.debugging.assert_greater_equal(value, minimum, message=f"`{arg}` must be >= {minimum}")
    with tf.control_dependencies([check]):
        return tf.identity(value)


def randint(seed, maxval, shape=()) -> tf.Tensor:
    """Stateless uniform int32 in ``[0, maxval)``; ``maxval < 1`` is raised to 1 (the draw is then 0)."""
    return tf.random.stateless_uniform(
        shape, seed, minval=0, maxval=tf.maximum(maxval, 1), dtype=tf.int32)


# -------------------------------------------------------------------------------------- clips ----
def clip_indices(num_frames, num_steps: int, stride: int = 1, *, training: bool, num_clips: int = 1,
                 seed=None) -> tf.Tensor:
    """Indices of ``num_steps`` frames taken every ``stride`` frames.

    The clip covers ``(T - 1) * s + 1`` frames (``T = num_steps``, ``s = stride``); its start lies in
    ``[0, max_start]`` with ``max_start = max(0, n - (T - 1) * s - 1)``.

    * Training: one clip whose start is uniform over ``[0, max_start]`` (``seed`` required).
    * Evaluation: ``num_clips`` clips with starts uniformly spaced over ``[0, max_start]``: the centre
      ``max_start // 2`` for one clip, else ``round(i * max_start / (num_clips - 1))`` for
      ``i = 0..num_clips-1`` (NumPy's ``round(linspace(0, max_start, num_clips))``, ties to even).

    Videos shorter than the clip (``n < (T - 1) * s + 1``) start at 0 and their indices are clamped to
    ``n - 1``: the last frame repeats (zero motion) rather than the video looping.

    Args:
      num_frames: number of frames ``n >= 1``, scalar int (tensor) -- may be unknown until run time.
      num_steps: ``T``, frames per clip (Python int >= 1).
      stride: ``s``, temporal step between sampled frames (Python int >= 1).
      training: Python bool selecting the random (True) or deterministic (False) rule.
      num_clips: clips per video in evaluation (Python int >= 1); must be 1 when training.
      seed: int32/int64 ``[2]`` stateless seed, required when training, ignored otherwise.

    Returns:
      int32 indices: shape ``(T,)`` when training, ``(num_clips, T)`` in evaluation.

    Raises:
      ValueError / TypeError: for bad arguments (named in the message).
    """
    n = _scalar_int(num_frames, "num_frames", 1)
    num_steps = positive_int(num_steps, "num_steps")
    stride = positive_int(stride, "stride")
    num_clips = positive_int(num_clips, "num_clips")
    offsets = tf.range(num_steps, dtype=tf.int32) * stride
    max_start = tf.maximum(n - (num_steps - 1) * stride - 1, 0)
    if _check_bool(training):
        if num_clips != 1:
            raise ValueError(f"`num_clips` must be 1 when training (one random clip), got {num_clips}")
        start = randint(split_seed(seed), max_start + 1)
        return tf.minimum(start + offsets, n - 1)
    if num_clips == 1:
        starts = tf.reshape(max_start // 2, [1])
    else:  # one correctly rounded float64 division per start: ties are exact, so rounding is exact
        ratio = tf.range(num_clips, dtype=tf.float64) * tf.cast(max_start, tf.float64) / (num_clips - 1)
        starts = tf.cast(tf.round(ratio), tf.int32)
    return tf.minimum(starts[:, None] + offsets[None, :], n - 1)


# ----------------------------------------------------------------------------------- segments ----
def segment_indices(num_frames, num_segments: int, frames_per_segment: int = 1, *, training: bool,
                    seed=None) -> tf.Tensor:
    """TSN sparse sampling: ``S`` segments, each contributing ``k`` consecutive frames.

    Temporal Segment Networks (Wang et al., ECCV 2016, Sec 3.1; TVNet uses it with 3 segments, Sec
    5.2). This transcribes the reference implementation (``yjxiong/tsn-pytorch``, ``dataset.py``) with
    0-based frames. With ``n`` frames, ``S = num_segments``, ``k = frames_per_segment``, the valid
    snippet starts are ``0..n-k`` (``m = n - k + 1`` of them):

    * Training (``_sample_indices``): ``avg = m // S``; if ``avg > 0``,
      ``start_i = i * avg + randint(avg)`` (one independent draw per segment); elif ``n > S``
      (possible only when ``k > 1``) and ``m >= 1``: ``S`` sorted uniform draws from ``[0, m)`` (the
      reference omits ``size=S`` there, a known bug; later TSN-based code, e.g. TSM, fixed it this
      way); else every start is 0.
    * Evaluation (``_get_test_indices``): ``tick = m / S``, ``start_i = int(tick / 2 + tick * i)``
      (float64, truncated), clamped at 0. Choice: this test-time rule is used for every length,
      rather than ``_get_val_indices``, which sends all segments to frame 0 when ``m <= S``.

    The snippet of segment ``i`` is ``start_i + arange(k)``, clamped to ``[0, n - 1]`` (videos shorter
    than ``k`` repeat their last frame, as the reference's loader does).

    Args:
      num_frames: number of frames ``n >= 1``, scalar int (tensor).
      num_segments: ``S`` (Python int >= 1).
      frames_per_segment: ``k`` (Python int >= 1), TSN's ``new_length``.
      training: Python bool.
      seed: int32/int64 ``[2]`` stateless seed, required when training.

    Returns:
      int32 indices of shape ``(S, k)``; flatten with ``tf.reshape(idx, [-1])`` to gather frames.
    """
    n = _scalar_int(num_frames, "num_frames", 1)
    s = positive_int(num_segments, "num_segments")
    k = positive_int(frames_per_segment, "frames_per_segment")
    m = n - k + 1
    if _check_bool(training):
        seeds = split_seed(seed, 2)
        avg = m // s  # floor division; negative when the video is shorter than one snippet
        stratified = tf.range(s, dtype=tf.int32) * avg + randint(seeds[0], avg, [s])
        anywhere = tf.sort(randint(seeds[1], m, [s]))
        starts = tf.where(avg > 0, stratified,
                          tf.where((n > s) & (m >= 1), anywhere, tf.zeros([s], tf.int32)))
    else:
        tick = tf.cast(m, tf.float64) / s
        starts = tf.maximum(tf.cast(tick / 2 + tick * tf.range(s, dtype=tf.float64), tf.int32), 0)
    return tf.clip_by_value(starts[:, None] + tf.range(k, dtype=tf.int32)[None, :], 0, n - 1)


# -------------------------------------------------------------------------------------- pairs ----
def frame_pair_indices(num_frames, label_index, *, max_offset: int = 9, training: bool, seed=None,
                       offset=None) -> tf.Tensor:
    """(key frame, current frame) indices for Deep Feature Flow training/evaluation.

    Deep Feature Flow (Zhu et al., CVPR 2017, Sec 4): for an annotated frame ``i`` the key frame ``k``
    is drawn at random with ``0 <= i - k <= 9``. Here ``k = i - d``:

    * Training: ``d`` uniform over ``[0, min(max_offset, i)]`` (never before frame 0; ``d = 0`` means
      the key frame is the annotated frame itself, as in the paper's range).
    * Evaluation: ``d = offset`` (default 0), reduced to ``i`` when it would reach before frame 0.

    Args:
      num_frames: number of frames ``n >= 1``, scalar int (tensor); ``label_index`` must be ``< n``.
      label_index: ``i``, the annotated frame, scalar int (tensor) in ``[0, n - 1]``.
      max_offset: largest key-frame distance when training (Python int >= 0).
      training: Python bool.
      seed: int32/int64 ``[2]`` stateless seed, required when training.
      offset: evaluation distance ``d >= 0`` (Python int or scalar int tensor), default 0.

    Returns:
      int32 tensor ``[key, current] = [i - d, i]`` of shape ``(2,)``.
    """
    n = _scalar_int(num_frames, "num_frames", 1)
    i = _scalar_int(label_index, "label_index", 0)
    max_offset = positive_int(max_offset, "max_offset", minimum=0)
    static_n, static_i = tf.get_static_value(n), tf.get_static_value(i)
    if static_n is not None and static_i is not None and static_i >= static_n:
        raise ValueError(f"`label_index` must be < `num_frames` = {static_n}, got {static_i}")
    check = tf.debugging.assert_less(i, n, message="`label_index` must be < `num_frames`")
    with tf.control_dependencies([check]):
        i = tf.identity(i)
    if _check_bool(training):
        d = randint(split_seed(seed), tf.minimum(max_offset, i) + 1)
    else:
        d = tf.minimum(_scalar_int(0 if offset is None else offset, "offset", 0), i)
    return tf.stack([i - d, i])
