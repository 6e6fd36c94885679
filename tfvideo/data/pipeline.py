"""tf.data pipelines from TFRecord shards to ``(inputs, labels)`` batches ready for ``model.fit``.

Builders (all read shards written by :mod:`tfvideo.data.prepare` with the schema of
:mod:`tfvideo.data.schema`):

=======================  ==========================================  ===============================
builder                  inputs (uint8 unless said)                  labels
=======================  ==========================================  ===============================
:func:`clip_dataset`     ``(B, T, H, W, 3)`` clips of T frames,      class index ``(B,)`` int32
                         stride s
:func:`segment_dataset`  ``(B, S, k, H, W, 3)``: TSN, S segments of  class index ``(B,)`` int32
                         k consecutive frames (k=1 RGB, k=6 for
                         the 5 flows of a TVNet stack)
:func:`pair_dataset`     ``(B, 2, H, W, 3)``: (key frame k, frame    label map of frame i
                         i), 0 <= i - k <= 9 (Deep Feature Flow)     ``(B, H, W)`` int32 + weights
:func:`dense_dataset`    ``(B, T, H, W, 3)`` clips; for ``colour``   ``flow`` ``(B, T, H, W, 2)``,
                         the input is grey ``(B, T, H, W, 1)``       ``segmentation`` ``(B, T, H, W)``
                                                                     or ``colour`` ``(B, T, H, W, 3)``
:func:`detection_pair_   ``(B, 2, H, W, 3)`` as ``pair_dataset``,    ``{"boxes" (B, N, 4), "labels"
dataset`                 over the frames annotated with boxes        (B, N) (-1 pad), "num_boxes"}``
=======================  ==========================================  ===============================

Dense targets come as ``(inputs, labels, sample_weight)``: the weight is 0 where the target is
unknown (invalid flow, label 255 or an unannotated frame), which Keras losses honour.

Training vs evaluation (``training=True/False``)
  Training samples at random (random clip start, TSN's random offset per segment, random key-frame
  distance), augments every frame of a sample the same way (``crop``: TSN corner + scale jitter
  ``"tsn"``, ``"random_resized"``, plain ``"random"`` crop, or ``"center"``; horizontal flip that
  negates horizontal flow; optional colour jitter), shuffles, and repeats. Evaluation is
  deterministic: uniformly spaced clips / centred segments, and ``num_crops`` crops (1, 3, 5 or 10)
  x ``flips`` views per clip. **Multi-view testing** unfolds every video into
  ``num_clips x num_crops x (2 if flip_views else 1)`` consecutive elements and, with
  ``with_video_id=True``, ``inputs`` becomes ``{"frames": ..., "video_id": ...}`` (the ``video/id``
  string of the record, unique within a dataset) so that scores can be averaged per video
  (:func:`tfvideo.evaluation.average_per_video`).

Performance and distribution
  Files are read with ``interleave`` (``cycle_length`` shards at once, parallel), only the sampled
  frames' JPEGs are decoded, maps run with ``AUTOTUNE`` parallelism, and batches are prefetched.
  ``deterministic`` fixes the element order (default: only when a ``seed`` is given); with a seed, a
  pipeline gives identical batches every time it is built. ``cache=True`` caches the parsed
  (still-encoded) records in memory, so random sampling still differs per epoch. The dataset starts
  from the list of shard files, so under ``tf.distribute`` multi-worker strategies the default
  ``AutoShardPolicy.AUTO`` shards **by file** (each worker reads its own shards; keep at least as
  many shards as workers); ``MirroredStrategy`` splits each global batch across replicas.

Example
-------
>>> ds = clip_dataset("tfrecords/motion", "train", training=True, batch_size=8,
...                   num_frames=16, size=(80, 80), seed=0)                    # doctest: +SKIP
>>> frames, labels = next(iter(ds))                                             # doctest: +SKIP
>>> frames.shape, frames.dtype, labels.shape                                    # doctest: +SKIP
(TensorShape([8, 16, 80, 80, 3]), tf.uint8, TensorShape([8]))

Length (over 500 lines, on purpose): the four builders share one reader, one option object and one
view/crop logic; split across files they would import each other's private helpers.
"""

from __future__ import annotations

import functools
import glob
import os
import random

import numpy as np
import tensorflow as tf

from tfvideo.data import augment, sampling, schema
from tfvideo.data.shards import shard_files

__all__ = ["list_shards", "read_records", "read_videos", "clip_dataset", "segment_dataset", "pair_dataset",
           "dense_dataset", "action_flow_dataset", "detection_pair_dataset", "transform_boxes", "CROPS", "TARGETS"]

CROPS = ("tsn", "random_resized", "random", "center")
TARGETS = ("flow", "segmentation", "colour")
AUTOTUNE = tf.data.AUTOTUNE


# ---------------------------------------------------------------------------------- reading ----
def list_shards(data, split=None):
    """Shard files from a folder (``{split}-*.tfrecord`` inside it), a glob pattern, or a list."""
    if isinstance(data, (list, tuple)):
        files = [os.fspath(f) for f in data]
    elif os.path.isdir(data):
        if split is None:
            raise ValueError(f"split is required to pick shards from the folder {data}")
        files = shard_files(data, split)
    else:
        files = sorted(glob.glob(os.fspath(data)))
    if not files:
        where = f"{data} (split {split!r})" if split else str(data)
        raise ValueError(f"no TFRecord shards found in {where}; prepare them with "
                         "`python -m tfvideo.data.prepare`")
    return files


def read_records(data, split=None, *, training=False, seed=None, deterministic=None,
                 cycle_length=4, flow=False, segmentation=False, detection=False, cache=False):
    """Parsed records (dicts of schema keys, frames still JPEG-encoded) from shards.

    Training shuffles the file order every epoch (seeded when ``seed`` is given).
    """
    files = list_shards(data, split)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)),
                       block_length=1, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.map(lambda s: schema.parse_sequence_example(s, flow=flow, segmentation=segmentation,
                                                        detection=detection),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.cache() if cache else ds


def read_videos(data, split=None, *, segmentation=False, flow=False, detection=False, limit=None):
    """Whole videos from shards, one at a time, in shard order, as NumPy (for streaming inference such
    as :class:`tfvideo.models.dff_runner.DFFVideoRunner`, which walks every frame of a video).

    Yields dicts: ``video_id`` (str), ``frames`` uint8 ``(T, H, W, 3)``; with ``segmentation``:
    ``segmentations`` uint8 ``(L, H, W)`` (255 = ignore) and ``segmentation_frame_index`` int64
    ``(L,)``; with ``flow``: ``flows`` float32 ``(F, H, W, 2)`` (0 where unknown), ``flow_valid`` bool
    ``(F, H, W)`` and ``flow_frame_index`` ``(F,)``; with ``detection``: ``boxes`` float32 ``(M, 4)``
    (``x1, y1, x2, y2``, inclusive corners, stored-frame pixels), ``box_labels``, ``box_frames``,
    ``box_tracks`` int64 ``(M,)`` and ``box_frame_index`` int64 ``(A,)`` (the annotated frames).
    ``limit``: at most that many videos.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None; got {limit!r}")
    ds = read_records(data, split, deterministic=True, flow=flow, segmentation=segmentation,
                      detection=detection)
    if limit is not None:
        ds = ds.take(limit)
    for record in ds:
        out = {"video_id": record[schema.VIDEO_ID].numpy().decode(),
               "frames": schema.decode_frames(record[schema.IMAGE]).numpy()}
        if segmentation:
            out["segmentation_frame_index"] = record[schema.SEGMENTATION_INDEX].numpy()
            out["segmentations"] = (schema.decode_segmentations(record[schema.SEGMENTATION]).numpy()
                                    if len(out["segmentation_frame_index"]) else
                                    np.zeros((0, *out["frames"].shape[1:3]), np.uint8))
        if flow:
            h, w = out["frames"].shape[1:3]
            out["flow_frame_index"] = record[schema.FLOW_INDEX].numpy()
            flows, valid = schema.decode_flows(record[schema.FLOW], h, w)
            out["flows"], out["flow_valid"] = flows.numpy(), valid.numpy()
        if detection:
            for key, name in ((schema.DETECTION_BOX, "boxes"), (schema.DETECTION_LABEL, "box_labels"),
                              (schema.DETECTION_FRAME, "box_frames"), (schema.DETECTION_TRACK, "box_tracks"),
                              (schema.DETECTION_INDEX, "box_frame_index")):
                out[name] = record[key].numpy()
        yield out


def _check_choice(value, choices, arg):
    if value not in choices:
        raise ValueError(f"{arg} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _check_size(size):
    if isinstance(size, int):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return tuple(int(s) for s in size)


class _Options:
    """The augmentation and reading options shared by every builder (checked here)."""

    def __init__(self, *, training, size, crop, flip, color_jitter, resize_short_side, num_crops,
                 flip_views, seed, deterministic, shuffle_buffer, cache, cycle_length):
        self.training = bool(training)
        self.size = _check_size(size)
        _check_choice(crop, CROPS, "crop")
        self.crop, self.flip = crop, bool(flip)
        self.color_jitter = dict(color_jitter or {})
        unknown = set(self.color_jitter) - {"brightness", "contrast", "saturation", "hue"}
        if unknown:
            raise ValueError(f"color_jitter keys must be brightness/contrast/saturation/hue, got "
                             f"{sorted(unknown)}")
        self.resize_short_side = resize_short_side
        _check_choice(num_crops, (1, 3, 5, 10), "num_crops")
        self.num_crops, self.flip_views = num_crops, bool(flip_views)
        if deterministic is None and seed is not None:
            deterministic = True  # a seeded pipeline gives the same batches every time
        if seed is None:
            seed = random.randrange(2**31)
        self.seed = int(seed)
        self.deterministic = deterministic
        self.shuffle_buffer, self.cache, self.cycle_length = shuffle_buffer, cache, cycle_length

    @property
    def views(self):
        return self.num_crops * (2 if self.flip_views else 1)

    def train_box(self, h, w, seed):
        if self.crop == "tsn":
            return augment.tsn_crop_box(h, w, self.size, seed=seed)
        if self.crop == "random_resized":
            return augment.random_resized_crop_box(h, w, seed=seed)
        if self.crop == "random":
            seeds = sampling.split_seed(seed, 2)
            ys = sampling.randint(seeds[0], h - self.size[0] + 1)
            xs = sampling.randint(seeds[1], w - self.size[1] + 1)
            return tf.stack([ys, xs, tf.constant(self.size[0]), tf.constant(self.size[1])])
        return augment.center_crop_box(h, w, self.size)

    def augment(self, sample, seed, boxes=False):
        """Training augmentation of one sample (same transform for every frame and target). ``boxes``:
        the sample also holds ``boxes``/``box_labels``/``num_boxes`` of its annotated frame, moved with
        the frames by :func:`transform_boxes` (the same resize, crop and flip draw)."""
        seeds = sampling.split_seed(seed, 3)
        hw0 = tf.shape(sample[augment.FRAMES])[1:3]
        if self.resize_short_side:
            sample = augment.resize_short_side(sample, self.resize_short_side)
        hw = tf.shape(sample[augment.FRAMES])[1:3]
        crop = self.train_box(hw[0], hw[1], seeds[0])
        sample = augment.crop_and_resize(sample, crop, self.size)
        if self.flip:
            sample = augment.random_flip_left_right(sample, seeds[1])
        if self.color_jitter:
            sample[augment.FRAMES] = augment.color_jitter(sample[augment.FRAMES], seed=seeds[2],
                                                          **self.color_jitter)
        if boxes:
            flip = augment.flip_draw(seeds[1]) if self.flip else tf.constant(False)
            sample = _transform_sample_boxes(sample, hw0, hw, crop, self.size, flip)
        return sample

    def views_of(self, sample, boxes=False):
        """Evaluation views: ``num_crops`` crops (x2 with flips), stacked on a new leading axis.
        ``boxes``: one view (the centre crop) with the sample's boxes moved with it."""
        hw0 = tf.shape(sample[augment.FRAMES])[1:3]
        if self.resize_short_side:
            sample = augment.resize_short_side(sample, self.resize_short_side)
        hw = tf.shape(sample[augment.FRAMES])[1:3]
        crops = augment.view_crop_boxes(hw[0], hw[1], self.size, self.num_crops)
        views = [augment.crop_and_resize(sample, crops[i], self.size)
                 for i in range(self.num_crops)]
        if boxes:  # detection_pair_dataset: num_crops 1, no flipped views
            views = [_transform_sample_boxes(views[0], hw0, hw, crops[0], self.size, tf.constant(False))]
        if self.num_crops == 10:  # TSN's 10-crop: the second five are mirrored
            views[5:] = [augment.flip_left_right(v) for v in views[5:]]
        if self.flip_views:
            views += [augment.flip_left_right(v) for v in views]
        return {k: tf.stack([v[k] for v in views]) for k in views[0]}

    def build(self, data, split, sample_fn, structure, batch_size, *, drop_remainder=None,
              with_video_id=False, flow=False, segmentation=False, detection=False):
        """Read the shards (:func:`read_records`) and :meth:`finish` the pipeline."""
        records = read_records(data, split, training=self.training, seed=self.seed,
                               deterministic=self.deterministic, cycle_length=self.cycle_length,
                               flow=flow, segmentation=segmentation, detection=detection,
                               cache=self.cache)
        return self.finish(records, sample_fn, structure, batch_size,
                           drop_remainder=drop_remainder, with_video_id=with_video_id,
                           boxes=detection)

    def augment_with_boxes(self, sample, seed):
        """:meth:`augment` for a sample that also holds ``boxes``/``box_labels``/``num_boxes`` of its
        one annotated frame: the same resize, crop and flip (same seeds and draws as :meth:`augment`),
        applied to the boxes too by :func:`transform_boxes`."""
        seeds = sampling.split_seed(seed, 3)
        hw0 = tf.shape(sample[augment.FRAMES])[1:3]
        if self.resize_short_side:
            sample = augment.resize_short_side(sample, self.resize_short_side)
        hw = tf.shape(sample[augment.FRAMES])[1:3]
        box = self.train_box(hw[0], hw[1], seeds[0])
        sample = augment.crop_and_resize(sample, box, self.size)
        flip = tf.constant(False)
        if self.flip:  # the draw of augment.random_flip_left_right
            flip = tf.random.stateless_uniform([], sampling.split_seed(seeds[1])) < 0.5
            spatial = {augment.FRAMES: sample[augment.FRAMES]}
            sample[augment.FRAMES] = tf.cond(flip, lambda: augment.flip_left_right(spatial),
                                             lambda: dict(spatial))[augment.FRAMES]
        if self.color_jitter:
            sample[augment.FRAMES] = augment.color_jitter(sample[augment.FRAMES], seed=seeds[2],
                                                          **self.color_jitter)
        return _transform_sample_boxes(sample, hw0, hw, box, self.size, flip)

    def views_with_boxes(self, sample):
        """Evaluation view of a sample with boxes: the optional resize then the centre crop (one
        view, stacked on a new leading axis as :meth:`views_of` does)."""
        hw0 = tf.shape(sample[augment.FRAMES])[1:3]
        if self.resize_short_side:
            sample = augment.resize_short_side(sample, self.resize_short_side)
        hw = tf.shape(sample[augment.FRAMES])[1:3]
        box = augment.center_crop_box(hw[0], hw[1], self.size)
        view = _transform_sample_boxes(augment.crop_and_resize(sample, box, self.size), hw0, hw, box,
                                       self.size, tf.constant(False))
        return {k: v[None] for k, v in view.items()}

    def finish(self, records, sample_fn, structure, batch_size, *, drop_remainder=None,
               with_video_id=False, boxes=False):
        """Sample/decode/augment each record, unfold evaluation views, shuffle, batch, prefetch.

        ``sample_fn(record, seed)`` returns a sample dict whose tensors have a leading *clip* axis
        (one clip in training; ``num_clips`` in evaluation); ``structure(sample, with_video_id)``
        turns one clip's sample (plus ``label`` and, in evaluation, ``video_id``) into the
        model's element. ``boxes``: samples hold boxes (``augment`` / ``views_of`` with ``boxes``).
        """
        augment_fn = functools.partial(self.augment, boxes=boxes)
        views_fn = functools.partial(self.views_of, boxes=boxes)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if self.training:
            if self.shuffle_buffer:
                records = records.shuffle(self.shuffle_buffer, seed=self.seed,
                                          reshuffle_each_iteration=True)
            records = records.repeat()
            # One seed per record, drawn by a *sequential* stateful op (deterministic given the
            # order) and mixed with the video id. Not enumerate(): a second source (range) would
            # stop tf.distribute from sharding the pipeline by file.
            records = records.map(lambda r: (tf.random.uniform(
                [], 0, 2**62, tf.int64, seed=self.seed), r))
        else:
            records = records.map(lambda r: (tf.constant(0, tf.int64), r))

        def per_record(draw, record):
            key = tf.strings.to_hash_bucket_fast(record[schema.VIDEO_ID], 2**62)
            seeds = sampling.split_seed(tf.stack([draw, key]), 2)
            clips = sample_fn(record, seeds[0])
            label = tf.cast(record[schema.LABEL_INDEX], tf.int32)
            if self.training:
                sample = augment_fn({k: v[0] for k, v in clips.items()}, seeds[1])
                sample["label"] = label
                return structure(sample, False)
            views = tf.map_fn(views_fn, clips, fn_output_signature={
                k: tf.TensorSpec(None, v.dtype) for k, v in clips.items()})
            flat = {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0))
                    for k, v in views.items()}  # (clips * views, ...), clip-major
            n = tf.shape(flat[augment.FRAMES])[0]
            flat["video_id"] = tf.fill([n], record[schema.VIDEO_ID])
            flat["label"] = tf.fill([n], label)
            return flat

        ds = records.map(per_record, num_parallel_calls=AUTOTUNE, deterministic=self.deterministic)
        if not self.training:
            ds = ds.unbatch().map(lambda d: structure(d, with_video_id))
        drop = self.training if drop_remainder is None else drop_remainder
        ds = ds.batch(batch_size, drop_remainder=drop)
        options = tf.data.Options()
        if self.deterministic is not None:
            options.deterministic = self.deterministic
        return ds.with_options(options).prefetch(AUTOTUNE)


def _gather_frames(record, indices):
    """Decode only the frames at ``indices`` (any shape) -> ``indices.shape + (H, W, 3)``."""
    flat = tf.reshape(indices, [-1])
    frames = schema.decode_frames(tf.gather(record[schema.IMAGE], flat))
    return tf.reshape(frames, tf.concat([tf.shape(indices), tf.shape(frames)[1:]], 0))


def _lookup(frame_index, indices):
    """Position of each of ``indices`` in ``frame_index`` (0 if absent) and whether it is there."""
    match = tf.equal(tf.cast(indices, tf.int64)[..., None], frame_index)
    return tf.argmax(tf.cast(match, tf.int32), axis=-1, output_type=tf.int32), \
        tf.reduce_any(match, axis=-1)


def _record_hw(record):
    return tf.cast(record[schema.HEIGHT], tf.int32), tf.cast(record[schema.WIDTH], tf.int32)


def _flows_at(record, indices):
    """Flows starting at frames ``indices`` (C, T): ``(C, T, H, W, 2)`` + validity ``(C, T, H, W)``."""
    pos, found = _lookup(record[schema.FLOW_INDEX], indices)
    h, w = _record_hw(record)
    count = tf.shape(record[schema.FLOW])[0]

    def decode():
        flow, valid = schema.decode_flows(tf.gather(record[schema.FLOW], tf.reshape(pos, [-1])),
                                          h, w)
        shape = tf.concat([tf.shape(indices), [h, w]], 0)
        return (tf.reshape(flow, tf.concat([shape, [2]], 0)),
                tf.reshape(valid, shape) & found[..., None, None])

    def empty():
        shape = tf.concat([tf.shape(indices), [h, w]], 0)
        return tf.zeros(tf.concat([shape, [2]], 0)), tf.zeros(shape, tf.bool)

    return tf.cond(count > 0, decode, empty)


def _labels_at(record, indices):
    """Label maps of frames ``indices`` (any shape) -> ``indices.shape + (H, W)``, 255 if none."""
    pos, found = _lookup(record[schema.SEGMENTATION_INDEX], indices)
    h, w = _record_hw(record)
    count = tf.shape(record[schema.SEGMENTATION])[0]
    shape = tf.concat([tf.shape(indices), [h, w]], 0)

    def decode():
        maps = schema.decode_segmentations(
            tf.gather(record[schema.SEGMENTATION], tf.reshape(pos, [-1])))
        maps = tf.reshape(maps, shape)
        return tf.where(found[..., None, None], maps, tf.cast(schema.IGNORE_LABEL, tf.uint8))

    return tf.cond(count > 0, decode,
                   lambda: tf.fill(shape, tf.cast(schema.IGNORE_LABEL, tf.uint8)))


def _boxes_at(record, frames, max_boxes):
    """Boxes of frames ``frames`` (P,), padded: ``boxes (P, max_boxes, 4)`` float32 (0 padding),
    ``labels (P, max_boxes)`` int32 (-1 padding), ``num_boxes (P,)`` int32; boxes in stored order."""
    box_frames = tf.cast(record[schema.DETECTION_FRAME], tf.int32)
    boxes = tf.reshape(tf.cast(record[schema.DETECTION_BOX], tf.float32), [-1, 4])
    labels = tf.cast(record[schema.DETECTION_LABEL], tf.int32)
    # max_boxes padding entries (frame -1) so that every row has at least max_boxes candidates
    box_frames = tf.concat([box_frames, tf.fill([max_boxes], -1)], 0)
    boxes = tf.concat([boxes, tf.zeros([max_boxes, 4])], 0)
    labels = tf.concat([labels, tf.fill([max_boxes], -1)], 0)
    match = tf.equal(tf.cast(frames, tf.int32)[:, None], box_frames[None, :])  # (P, M + max_boxes)
    count = tf.reduce_sum(tf.cast(match, tf.int32), axis=1)
    check = tf.debugging.assert_less_equal(count, max_boxes, message=(
        f"a frame holds more boxes than max_boxes={max_boxes}; raise max_boxes"))
    with tf.control_dependencies([check]):
        order = tf.argsort(tf.cast(~match, tf.int32), axis=1, stable=True)[:, :max_boxes]
    inside = tf.range(max_boxes)[None, :] < count[:, None]
    out_boxes = tf.where(inside[..., None], tf.gather(boxes, order), 0.0)
    out_labels = tf.where(inside, tf.gather(labels, order), -1)
    return out_boxes, out_labels, count


def transform_boxes(boxes, frame_size, resized_size, crop, size, flip=False):
    """Boxes of a frame through :func:`tfvideo.data.augment.resize_short_side` (or any resize) to
    ``resized_size``, :func:`~tfvideo.data.augment.crop_and_resize` of ``crop = (y, x, h, w)`` to
    ``size`` and an optional horizontal flip, as the pipelines apply them to frames.

    Inclusive corners (:mod:`tfvideo.data.schema`, "Boxes"): a box covers the pixel edges
    ``[x1, x2 + 1)``; resizes with half-pixel centres map edges linearly (``e' = (e r - x) s``), the crop
    clips them to ``[0, out_w]``, then ``x1' = left``, ``x2' = right - 1``; a flip maps
    ``x1'' = out_w - 1 - x2'``, ``x2'' = out_w - 1 - x1'`` (same for ``y``, without flip).

    Returns:
      ``(boxes float32 (N, 4), keep bool (N,))``: ``keep`` is False for a box whose part inside the
      crop is less than one output pixel wide or high (its row of ``boxes`` is then meaningless).
    """
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float32)
    f = tf.cast(frame_size, tf.float32)
    r = tf.cast(resized_size, tf.float32) / f  # (ry, rx)
    crop = tf.cast(crop, tf.float32)
    out = tf.cast(size, tf.float32)
    s = out / crop[2:]  # (sy, sx)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    left = tf.maximum((x1 * r[1] - crop[1]) * s[1], 0.0)
    right = tf.minimum(((x2 + 1.0) * r[1] - crop[1]) * s[1], out[1])
    top = tf.maximum((y1 * r[0] - crop[0]) * s[0], 0.0)
    bottom = tf.minimum(((y2 + 1.0) * r[0] - crop[0]) * s[0], out[0])
    keep = (right - left >= 1.0) & (bottom - top >= 1.0)
    nx1, nx2 = left, right - 1.0
    if flip is not False:
        flip = tf.convert_to_tensor(flip)
        nx1, nx2 = (tf.where(flip, out[1] - 1.0 - nx2, nx1), tf.where(flip, out[1] - 1.0 - nx1, nx2))
    return tf.stack([nx1, top, nx2, bottom - 1.0], axis=1), keep


def _transform_sample_boxes(sample, frame_hw, resized_hw, crop, size, flip):
    """Apply :func:`transform_boxes` to a sample's padded ``boxes``/``box_labels``/``num_boxes``;
    dropped boxes are removed and the kept ones moved to the front (padding: 0 boxes, -1 labels)."""
    out = dict(sample)
    boxes, labels, num = sample["boxes"], sample["box_labels"], sample["num_boxes"]
    capacity = tf.shape(boxes)[0]
    new, keep = transform_boxes(boxes, frame_hw, resized_hw, crop, size, flip)
    idx = tf.where(keep & (tf.range(capacity) < num))[:, 0]
    count = tf.size(idx, out_type=tf.int32)
    out["boxes"] = tf.pad(tf.gather(new, idx), [[0, capacity - count], [0, 0]])
    out["box_labels"] = tf.pad(tf.gather(labels, idx), [[0, capacity - count]], constant_values=-1)
    out["num_boxes"] = count
    return out


def _clip_indices(record, seed, opts, num_frames, stride, num_clips):
    """Clip frame indices ``(clips, T)``: one random clip in training, ``num_clips`` spaced ones
    in evaluation."""
    n = tf.cast(record[schema.NUM_FRAMES], tf.int32)
    idx = sampling.clip_indices(n, num_frames, stride, training=opts.training,
                                num_clips=1 if opts.training else num_clips, seed=seed)
    return tf.reshape(idx, [-1, num_frames])


def _with_id(inputs, sample, with_video_id):
    if with_video_id:
        return {"frames": inputs, "video_id": sample["video_id"]}
    return inputs


# --------------------------------------------------------------------------------- builders ----
def clip_dataset(data, split=None, *, training, size, batch_size, num_frames=16, stride=1,
                 num_clips=1, with_video_id=False, drop_remainder=None, crop="random", flip=True,
                 color_jitter=None, resize_short_side=None, num_crops=1, flip_views=False, seed=None,
                 deterministic=None, shuffle_buffer=256, cache=False, cycle_length=4):
    """Clips of ``num_frames`` frames every ``stride`` frames, labelled with the video's class.

    Training: one clip per video with a random start. Evaluation: ``num_clips`` clips with
    uniformly spaced starts (:func:`tfvideo.data.sampling.clip_indices`) x views.

    Args:
      data: shard folder (with ``split``), glob pattern or list of files.
      split: the split whose shards to read from a folder (``"train"``, ``"test"``, ...).
      training: ``True``: random sampling, augmentation, shuffling, repeat; ``False``:
        deterministic evaluation views (see the module doc).
      size: output frame size ``(height, width)`` or one int for a square.
      batch_size: global batch size (``tf.distribute`` splits it across replicas).
      num_frames, stride: ``T`` frames, ``stride`` frames apart.
      num_clips: clips per video in evaluation (1 in training).
      with_video_id: inputs become ``{"frames": ..., "video_id": ...}`` (for per-video scores).
      drop_remainder: drop a last partial batch (default: in training only).

      The options below are the same for every builder:

      crop: training crop, one of :data:`CROPS`: ``"tsn"`` (corners + scale jitter),
        ``"random_resized"``, ``"random"`` (default here) or ``"center"``.
      flip: random horizontal flips in training (horizontal flow negated).
      color_jitter: ``{"brightness", "contrast", "saturation", "hue"}`` strengths (training).
      resize_short_side: resize frames so the shorter side has this many pixels before cropping.
      num_crops: evaluation crops per clip, 1, 3, 5 or 10 (TSN's 10-crop mirrors the last five).
      flip_views: also evaluate the mirrored crops (twice the views).
      seed: fixes sampling, augmentation and order (default: a random seed).
      deterministic: fixed element order (default: ``True`` when ``seed`` is given).
      shuffle_buffer: records shuffled in training (0: none).
      cache: cache the parsed, still-encoded records in memory.
      cycle_length: shards read at once.

    Returns:
      ``tf.data.Dataset`` of ``(frames uint8 (B, T, H, W, 3), label int32 (B,))``.
    """
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=num_crops, flip_views=flip_views,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)

    def sample_fn(record, seed):
        idx = _clip_indices(record, seed, opts, num_frames, stride, num_clips)
        return {augment.FRAMES: _gather_frames(record, idx)}

    def structure(sample, with_id):
        frames = tf.ensure_shape(sample[augment.FRAMES], [num_frames, *opts.size, 3])
        return _with_id(frames, sample, with_id), sample["label"]

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id)


def segment_dataset(data, split=None, *, training, size, batch_size, num_segments=3,
                    frames_per_segment=1, with_video_id=False, drop_remainder=None, crop="tsn",
                    flip=True, color_jitter=None, resize_short_side=None, num_crops=1,
                    flip_views=False, seed=None, deterministic=None, shuffle_buffer=256, cache=False,
                    cycle_length=4):
    """TSN sampling: ``num_segments`` segments of ``frames_per_segment`` consecutive frames.

    Training: a random snippet in each segment, TSN augmentation (``crop="tsn"`` by default: corner
    cropping and scale jitter, Wang et al. 2016 Sec. 3.2) and flips. Evaluation: the centre snippet
    of each segment (TVNet tests on 25 stacks: ``num_segments=25``) x views (``num_crops=5,
    flip_views=True`` is the paper's centre + 4 corners + flips).

    Args:
      num_segments: ``S`` segments per video.
      frames_per_segment: ``k`` consecutive frames per segment.
      crop: as in :func:`clip_dataset`, but ``"tsn"`` by default.
      data, split, training, size, batch_size, with_video_id, drop_remainder and the other
        options: see :func:`clip_dataset`.

    Returns:
      ``tf.data.Dataset`` of ``(frames uint8 (B, S, k, H, W, 3), label int32 (B,))``.
    """
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=num_crops, flip_views=flip_views,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)
    s, k = int(num_segments), int(frames_per_segment)

    def sample_fn(record, seed):
        n = tf.cast(record[schema.NUM_FRAMES], tf.int32)
        idx = sampling.segment_indices(n, s, k, training=opts.training, seed=seed)
        return {augment.FRAMES: _gather_frames(record, tf.reshape(idx, [1, s * k]))}

    def structure(sample, with_id):
        frames = sample[augment.FRAMES]
        frames = tf.reshape(frames, tf.concat([[s, k], tf.shape(frames)[1:]], 0))
        frames = tf.ensure_shape(frames, [s, k, *opts.size, 3])
        return _with_id(frames, sample, with_id), sample["label"]

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id)


def _eval_offsets(max_offset, eval_offsets):
    """The key-frame distances evaluated: ``eval_offsets`` or ``0..max_offset`` (checked)."""
    offsets = list(range(max_offset + 1)) if eval_offsets is None else [int(o) for o in eval_offsets]
    if not offsets or min(offsets) < 0:
        raise ValueError(f"eval_offsets must be non-negative ints, got {eval_offsets!r}")
    return offsets


def _key_current_pairs(record, annotated, seed, training, max_offset, offsets):
    """``(P, 2)`` frame indices ``[key k, current i]`` with ``i`` an annotated frame: training, one random
    ``i`` and ``0 <= i - k <= max_offset`` (Zhu et al. 2017, Sec. 4); evaluation, every annotated ``i``
    at every distance of ``offsets`` (reduced so that ``k >= 0``)."""
    n = tf.cast(record[schema.NUM_FRAMES], tf.int32)
    if training:
        seeds = sampling.split_seed(seed, 2)
        i = tf.gather(annotated, sampling.randint(seeds[0], tf.size(annotated)))
        return sampling.frame_pair_indices(n, i, max_offset=max_offset, training=True, seed=seeds[1])[None]
    i, d = tf.meshgrid(annotated, tf.constant(offsets, tf.int32), indexing="ij")
    i, d = tf.reshape(i, [-1]), tf.reshape(d, [-1])
    return tf.stack([i - tf.minimum(d, i), i], axis=1)


def pair_dataset(data, split=None, *, training, size, batch_size, max_offset=9, eval_offsets=None,
                 with_video_id=False, drop_remainder=None, crop="random", flip=True,
                 color_jitter=None, resize_short_side=None, num_crops=1, flip_views=False, seed=None,
                 deterministic=None, shuffle_buffer=256, cache=False, cycle_length=4):
    """Deep Feature Flow pairs: (key frame k, annotated frame i) with ``0 <= i - k <= max_offset``.

    Training: a random annotated frame of the video and a random distance (Zhu et al. 2017, Sec. 4).
    Evaluation: every annotated frame at every distance in ``eval_offsets`` (default
    ``0..max_offset``: with key frames every ``max_offset + 1`` frames, each distance is equally
    likely, so the mean over them is the expected accuracy), each as its own element.

    Args:
      max_offset: largest key-frame distance ``i - k`` in training.
      eval_offsets: the distances evaluated (default ``0..max_offset``).
      data, split, training, size, batch_size, with_video_id, drop_remainder and the other
        options: see :func:`clip_dataset`.

    Returns:
      ``(frames uint8 (B, 2, H, W, 3) [key, current], labels int32 (B, H, W),
      weights float32 (B, H, W))``; labels 255 (ignore) become 0 with weight 0.
    """
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=num_crops, flip_views=flip_views,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)
    offsets = _eval_offsets(max_offset, eval_offsets)

    def sample_fn(record, seed):
        annotated = tf.cast(record[schema.SEGMENTATION_INDEX], tf.int32)
        tf.debugging.assert_positive(tf.size(annotated), message=(
            "pair_dataset needs records with segmentation labels (segmentation/frame_index)"))
        pairs = _key_current_pairs(record, annotated, seed, opts.training, max_offset, offsets)
        return {augment.FRAMES: _gather_frames(record, pairs),
                augment.SEGMENTATION: _labels_at(record, pairs[:, 1:])}

    def structure(sample, with_id):
        labels = tf.ensure_shape(tf.cast(sample[augment.SEGMENTATION][0], tf.int32), opts.size)
        known = labels != schema.IGNORE_LABEL
        frames = tf.ensure_shape(sample[augment.FRAMES], [2, *opts.size, 3])
        return (_with_id(frames, sample, with_id),
                tf.where(known, labels, 0), tf.cast(known, tf.float32))

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id, segmentation=True)


def dense_dataset(data, split=None, *, target, training, size, batch_size, num_frames=16, stride=1,
                  num_clips=1, with_video_id=False, drop_remainder=None, crop="random", flip=True,
                  color_jitter=None, resize_short_side=None, num_crops=1, flip_views=False,
                  seed=None, deterministic=None, shuffle_buffer=256, cache=False, cycle_length=4):
    """Clips with per-frame dense targets aligned with the frames (V2V, Sec. 4-6 of seed 000).

    ``target``:
      * ``"flow"``: the flow from each sampled frame ``t`` to ``t + 1`` (stored ``flow/encoded``),
        ``(B, T, H, W, 2)`` float32 in pixels at the output size (scaled with the crop, ``u``
        negated by flips); weight 0 where unknown or not stored (e.g. the last frame).
      * ``"segmentation"``: label maps ``(B, T, H, W)`` int32; weight 0 on 255 and on frames
        without labels.
      * ``"colour"``: inputs are the grey clip ``(B, T, H, W, 1)`` uint8 (ITU-R BT.601 luma), labels
        the RGB clip ``(B, T, H, W, 3)`` uint8; weight 1.

    Other arguments: see :func:`clip_dataset`.

    Returns:
      ``(inputs, labels, sample_weight float32 (B, T, H, W))``.
    """
    _check_choice(target, TARGETS, "target")
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=num_crops, flip_views=flip_views,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)

    def sample_fn(record, seed):
        idx = _clip_indices(record, seed, opts, num_frames, stride, num_clips)
        sample = {augment.FRAMES: _gather_frames(record, idx)}
        if target == "flow":
            sample[augment.FLOW], sample[augment.FLOW_VALID] = _flows_at(record, idx)
        elif target == "segmentation":
            sample[augment.SEGMENTATION] = _labels_at(record, idx)
        return sample

    def structure(sample, with_id):
        frames = tf.ensure_shape(sample[augment.FRAMES], [num_frames, *opts.size, 3])
        if target == "flow":
            return (_with_id(frames, sample, with_id),
                    tf.ensure_shape(sample[augment.FLOW], [num_frames, *opts.size, 2]),
                    tf.cast(sample[augment.FLOW_VALID], tf.float32))
        if target == "segmentation":
            labels = tf.ensure_shape(tf.cast(sample[augment.SEGMENTATION], tf.int32),
                                     [num_frames, *opts.size])
            known = labels != schema.IGNORE_LABEL
            return (_with_id(frames, sample, with_id), tf.where(known, labels, 0),
                    tf.cast(known, tf.float32))
        grey = tf.saturate_cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(frames, tf.float32))),
                                tf.uint8)
        return (_with_id(grey, sample, with_id), frames,
                tf.ones(tf.shape(frames)[:-1], tf.float32))

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id,
                      flow=target == "flow", segmentation=target == "segmentation")



def action_flow_dataset(data, split=None, *, training, size, batch_size, num_frames=16, num_clips=1,
                        with_video_id=False, drop_remainder=None, crop="random", flip=True,
                        color_jitter=None, resize_short_side=None, num_crops=1, flip_views=False,
                        seed=None, deterministic=None, shuffle_buffer=256, cache=False, cycle_length=4):
    """ActionFlowNet's multitask samples (thesis ch. 4, Eq. 4.2): ``num_frames`` consecutive frames, the
    video's class and the flow of every sampled frame to the next.

    The flow of the last sampled frame ``T - 1`` goes to frame ``T``, which the clip does not show: the
    future flow of digest 4.1; it has weight 0 when the clip ends on the video's last frame (no stored
    flow). Flows come from the shards' ``flow/encoded`` (exact flow of a built-in set, or a teacher's
    pseudo ground truth, :mod:`tfvideo.teachers`), scaled with the crop and with ``u`` negated by flips,
    like :func:`dense_dataset` with ``target="flow"``. Frames are consecutive (digest 4.2: "16
    consecutive frames"); for strided clips and no flow use :func:`clip_dataset`.

    Other arguments: see :func:`clip_dataset`.

    Returns:
      ``(frames uint8 (B, T, H, W, 3), {"logits": label int32 (B,), "flow": float32 (B, T, H, W, 3)})``:
      the flow target's channels are ``(u, v, valid)`` (valid 1 or 0; unknown vectors are 0), the
      layout :class:`tfvideo.losses.FlowEndPointError` reads; the keys are ActionFlowNet's output names
      (:func:`tfvideo.models.actionflownet.actionflownet`), so the dataset goes to ``model.fit`` as is.
    """
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=num_crops, flip_views=flip_views,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)

    def sample_fn(record, seed):
        idx = _clip_indices(record, seed, opts, num_frames, 1, num_clips)
        sample = {augment.FRAMES: _gather_frames(record, idx)}
        sample[augment.FLOW], sample[augment.FLOW_VALID] = _flows_at(record, idx)
        return sample

    def structure(sample, with_id):
        frames = tf.ensure_shape(sample[augment.FRAMES], [num_frames, *opts.size, 3])
        valid = tf.cast(sample[augment.FLOW_VALID], tf.float32)
        flow = tf.ensure_shape(sample[augment.FLOW], [num_frames, *opts.size, 2])
        flow = tf.where(valid[..., None] > 0, flow, 0.0)
        return (_with_id(frames, sample, with_id),
                {"logits": sample["label"], "flow": tf.concat([flow, valid[..., None]], -1)})

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id, flow=True)


def detection_pair_dataset(data, split=None, *, training, size, batch_size, max_offset=9,
                           eval_offsets=None, max_boxes=64, with_video_id=False, drop_remainder=None,
                           crop="random", flip=True, color_jitter=None, resize_short_side=None,
                           seed=None, deterministic=None, shuffle_buffer=256, cache=False,
                           cycle_length=4):
    """Deep Feature Flow detection pairs: (key frame k, annotated frame i), ``0 <= i - k <= max_offset``,
    with the boxes of frame ``i`` (records with ``detection/*`` keys, :mod:`tfvideo.data.schema`).

    Sampling as :func:`pair_dataset` over the *annotated* frames (``detection/frame_index``; frames
    annotated with zero boxes included, as all-background samples): training draws one annotated frame
    and a distance per video; evaluation yields every annotated frame at every distance in
    ``eval_offsets`` (default ``0..max_offset``). Boxes go through the frames' resize, crop and flip
    (:func:`transform_boxes`): a box less than one output pixel wide or high inside the crop is
    dropped, the others are clipped to the crop. Evaluation uses one view, the centre crop of
    ``size`` (after ``resize_short_side``); to evaluate whole frames, make ``size`` the (resized) frame
    size. For the devkit's mAP, compare detections with the stored boxes (:func:`read_videos` with
    ``detection=True``, :func:`tfvideo.detection_eval.vid_map`), mapped back to stored-frame pixels:
    the small-object IoU threshold depends on box size in pixels.

    Args:
      max_offset, eval_offsets: as in :func:`pair_dataset`.
      max_boxes: boxes per element (padding); a frame with more boxes raises an error at run time.
      with_video_id: inputs become ``{"frames", "video_id", "frame_index", "key_frame_index"}`` (the
        two frame indices int32, in the stored video).
      data, split, training, size, batch_size, drop_remainder, crop, flip, color_jitter,
        resize_short_side, seed, deterministic, shuffle_buffer, cache, cycle_length: see
        :func:`clip_dataset`.

    Returns:
      ``(frames uint8 (B, 2, H, W, 3) [key, current], {"boxes": float32 (B, max_boxes, 4)
      (x1, y1, x2, y2) inclusive corners in output pixels, 0 for padding, "labels": int32
      (B, max_boxes), -1 for padding, "num_boxes": int32 (B,)})``; kept boxes come first, in stored
      order.
    """
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) or max_boxes < 1:
        raise ValueError(f"max_boxes must be a positive int, got {max_boxes!r}")
    max_boxes = int(max_boxes)
    opts = _Options(training=training, size=size, crop=crop, flip=flip, color_jitter=color_jitter,
                    resize_short_side=resize_short_side, num_crops=1, flip_views=False,
                    seed=seed, deterministic=deterministic, shuffle_buffer=shuffle_buffer,
                    cache=cache, cycle_length=cycle_length)
    offsets = _eval_offsets(max_offset, eval_offsets)

    def sample_fn(record, seed):
        annotated = tf.cast(record[schema.DETECTION_INDEX], tf.int32)
        check = tf.debugging.assert_positive(tf.size(annotated), message=(
            "detection_pair_dataset needs records with boxes (detection/frame_index); prepare "
            "imagenet_vid or objects_detection"))
        with tf.control_dependencies([check]):
            annotated = tf.identity(annotated)
        pairs = _key_current_pairs(record, annotated, seed, opts.training, max_offset, offsets)
        boxes, labels, num = _boxes_at(record, pairs[:, 1], max_boxes)
        return {augment.FRAMES: _gather_frames(record, pairs), "boxes": boxes, "box_labels": labels,
                "num_boxes": num, "frame_index": pairs[:, 1], "key_frame_index": pairs[:, 0]}

    def structure(sample, with_id):
        frames = tf.ensure_shape(sample[augment.FRAMES], [2, *opts.size, 3])
        targets = {"boxes": tf.ensure_shape(sample["boxes"], [max_boxes, 4]),
                   "labels": tf.ensure_shape(sample["box_labels"], [max_boxes]),
                   "num_boxes": tf.ensure_shape(sample["num_boxes"], [])}
        if with_id:
            frames = {"frames": frames, "video_id": sample["video_id"],
                      "frame_index": sample["frame_index"], "key_frame_index": sample["key_frame_index"]}
        return frames, targets

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id, detection=True)
