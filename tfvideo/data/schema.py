"""The one TFRecord schema of tfvideo: a ``tf.train.SequenceExample`` per video.

Both the shard writer (:mod:`tfvideo.data.shards`) and the tf.data reader
(:mod:`tfvideo.data.pipeline`) use the keys and codecs defined here, and nothing else does.

Compatible with TF Model Garden's video reader (``official/vision/dataloaders/video_input.py``):
it reads ``image/encoded`` and ``clip/label/index``.

Context features
----------------
==========================  =======  ===================================================
``clip/label/index``        int64    class index (``-1`` when the video has no class)
``clip/label/text``         bytes    class name (UTF-8, empty when no class)
``video/id``                bytes    stable id, e.g. ``brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0``
``video/fps``               float    frame rate of the stored frames (after subsampling)
``video/height``            int64    stored frame height
``video/width``             int64    stored frame width
``video/num_frames``        int64    number of stored frames
``flow/frame_index``        int64[]  for each ``flow/encoded`` entry, the frame ``t`` it starts at
``segmentation/frame_index`` int64[] for each ``segmentation/encoded`` entry, its frame
``detection/frame_index``   int64[]  optional: the frames annotated with boxes, increasing, frames
                                     with zero boxes included (a frame not listed is *unannotated*:
                                     its objects are unknown)
``detection/frame``         int64[]  for each box, its frame (one of ``detection/frame_index``)
``detection/label``         int64[]  for each box, its class ``0..C-1`` (no background class)
``detection/track``         int64[]  for each box, its object track id within the video (-1 unknown)
``detection/box``           float[]  4 per box, flat: ``x1, y1, x2, y2`` (see below)
==========================  =======  ===================================================

Boxes
-----
``(x1, y1, x2, y2)`` float32 in pixels of the *stored* frame, corners inclusive as in ImageNet VID's XML
and py-faster-rcnn: pixel centres at integer coordinates, the box covers pixels ``x1..x2`` and
``y1..y2``, width ``x2 - x1 + 1``; ``0 <= x1 <= x2 <= width - 1`` (same for y). The detection keys are
optional and new (old shards without them read as "no annotated frame"); they are written only when
an item returns ``boxes``.

Feature lists
-------------
``image/encoded``        one JPEG per frame, RGB.
``flow/encoded``         optional; one entry per flow field, the flow from frame ``t`` to ``t + 1``
                         (``t`` from ``flow/frame_index``) in the project convention (pixels,
                         ``[..., 0]`` = x, ``frame[t+1](p + flow(p)) ~= frame[t](p)``), stored as raw
                         little-endian **float16** ``(height, width, 2)`` bytes. Unknown vectors (e.g.
                         Middlebury's > 1e9 values, occlusions) are stored as NaN and come back as a
                         validity mask. Choice: float16 keeps 11 significant bits (error < 0.016 px up to
                         32 px, < 0.125 px up to 256 px) with no range to choose, unlike a quantised
                         PNG, and decodes with one ``tf.io.decode_raw``.
``segmentation/encoded`` optional; one single-channel 8-bit PNG per annotated frame (frames given by
                         ``segmentation/frame_index``; labels are usually sparse), ``255`` = ignore.
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

__all__ = [
    "SCHEMA_VERSION", "LABEL_INDEX", "LABEL_TEXT", "VIDEO_ID", "FPS", "HEIGHT", "WIDTH", "NUM_FRAMES",
    "IMAGE", "FLOW", "FLOW_INDEX", "SEGMENTATION", "SEGMENTATION_INDEX", "IGNORE_LABEL",
    "DETECTION_INDEX", "DETECTION_FRAME", "DETECTION_LABEL", "DETECTION_TRACK", "DETECTION_BOX",
    "make_sequence_example", "parse_sequence_example", "decode_frames", "decode_flows",
    "decode_segmentations", "encode_jpeg", "encode_png", "encode_flow", "check_boxes",
]

SCHEMA_VERSION = 1

LABEL_INDEX = "clip/label/index"
LABEL_TEXT = "clip/label/text"
VIDEO_ID = "video/id"
FPS = "video/fps"
HEIGHT = "video/height"
WIDTH = "video/width"
NUM_FRAMES = "video/num_frames"
IMAGE = "image/encoded"
FLOW = "flow/encoded"
FLOW_INDEX = "flow/frame_index"
SEGMENTATION = "segmentation/encoded"
SEGMENTATION_INDEX = "segmentation/frame_index"
IGNORE_LABEL = 255
DETECTION_INDEX = "detection/frame_index"
DETECTION_FRAME = "detection/frame"
DETECTION_LABEL = "detection/label"
DETECTION_TRACK = "detection/track"
DETECTION_BOX = "detection/box"


# ----------------------------------------------------------------------------------- encoding ----
def encode_jpeg(frame, quality=90):
    """RGB ``uint8`` ``(H, W, 3)`` -> JPEG bytes (OpenCV, 4:2:0)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot JPEG-encode a frame of shape {np.shape(frame)}")
    return buf.tobytes()


def encode_png(label_map):
    """Single-channel ``uint8`` ``(H, W)`` label map -> PNG bytes."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise ValueError(f"segmentation must be uint8 (height, width), got {label_map.dtype} "
                         f"{label_map.shape}")
    ok, buf = cv2.imencode(".png", label_map)
    if not ok:
        raise ValueError("cannot PNG-encode the segmentation")
    return buf.tobytes()


def encode_flow(flow, valid=None):
    """Flow ``(H, W, 2)`` -> little-endian float16 bytes; invalid vectors become NaN."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (height, width, 2), got {flow.shape}")
    flow = flow.copy()
    if valid is not None:
        flow[~np.asarray(valid, bool)] = np.nan
    flow[~np.isfinite(flow).all(-1)] = np.nan
    return flow.astype("<f2").tobytes()


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _int_vector(values, name, length):
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != length or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold {length} integers, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def check_boxes(boxes, box_labels, box_frames, *, num_frames, height, width, box_tracks=None,
                box_frame_index=None):
    """Check detection annotations against a video of ``num_frames`` frames of ``height x width``.

    Returns ``(boxes float32 (M, 4), labels, frames, tracks, frame_index)`` (int64 vectors; defaults:
    ``tracks`` all -1, ``frame_index`` every frame ``0..T-1``). Raises ``ValueError`` naming the
    argument and what was expected: boxes not ``(M, 4)`` finite with ``0 <= x1 <= x2 <= width - 1``
    and ``0 <= y1 <= y2 <= height - 1`` (inclusive corners, module doc), labels < 0, tracks < -1,
    ``box_frame_index`` not strictly increasing in ``[0, T-1]``, or a box frame not in it.
    """
    boxes = np.asarray(boxes, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (num_boxes, 4) (x1, y1, x2, y2), got {boxes.shape}")
    m = len(boxes)
    if box_labels is None or box_frames is None:
        raise ValueError("boxes need box_labels and box_frames (one per box), got None")
    labels = _int_vector(box_labels, "box_labels", m)
    frames = _int_vector(box_frames, "box_frames", m)
    tracks = np.full(m, -1, np.int64) if box_tracks is None else _int_vector(box_tracks, "box_tracks", m)
    index = (np.arange(num_frames, dtype=np.int64) if box_frame_index is None else
             _int_vector(box_frame_index, "box_frame_index", len(np.asarray(box_frame_index).reshape(-1))))
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    x1, y1, x2, y2 = boxes.T
    bad = ~((0 <= x1) & (x1 <= x2) & (x2 <= width - 1) & (0 <= y1) & (y1 <= y2) & (y2 <= height - 1))
    if bad.any():
        raise ValueError(f"boxes must satisfy 0 <= x1 <= x2 <= {width - 1} and 0 <= y1 <= y2 <= "
                         f"{height - 1} (inclusive corners in a {width}x{height} frame), got "
                         f"{boxes[bad][:3].tolist()} (box {np.flatnonzero(bad)[:3].tolist()})")
    if (labels < 0).any():
        raise ValueError(f"box_labels must be class indices >= 0, got {labels[labels < 0][:5].tolist()}")
    if (tracks < -1).any():
        raise ValueError(f"box_tracks must be >= -1 (-1 = unknown), got {tracks[tracks < -1][:5].tolist()}")
    if len(index) and (index.min() < 0 or index.max() >= num_frames or (np.diff(index) <= 0).any()):
        raise ValueError(f"box_frame_index must be strictly increasing frames in [0, {num_frames - 1}], "
                         f"got {index.tolist()[:20]}")
    unlisted = ~np.isin(frames, index)
    if unlisted.any():
        raise ValueError(f"box_frames must be annotated frames (listed in box_frame_index), got "
                         f"{np.unique(frames[unlisted])[:10].tolist()}")
    return boxes, labels, frames, tracks, index


def make_sequence_example(frames, *, label=-1, label_text="", video_id="", fps=0.0, flows=None,
                          flow_frame_index=None, flow_valid=None, segmentations=None,
                          segmentation_frame_index=None, boxes=None, box_labels=None, box_frames=None,
                          box_tracks=None, box_frame_index=None, jpeg_quality=90):
    """Build the ``tf.train.SequenceExample`` of one video.

    Args:
      frames: ``uint8`` ``(T, H, W, 3)`` RGB.
      label, label_text, video_id, fps: context (see the module doc).
      flows: optional ``(F, H, W, 2)`` flows; ``flow_frame_index`` (length F) gives the start frame
        of each, default ``0..F-1`` (consecutive flows). ``flow_valid``: optional ``(F, H, W)`` bool.
      segmentations: optional ``(L, H, W)`` uint8 label maps; ``segmentation_frame_index`` (length
        L) says which frames they annotate, default ``0..L-1``.
      boxes: optional ``(M, 4)`` boxes ``(x1, y1, x2, y2)`` (inclusive corners, module doc; ``M`` may be
        0), with ``box_labels`` and ``box_frames`` (required with boxes, length M), ``box_tracks``
        (default -1) and ``box_frame_index``, the annotated frames (default: every frame). Checked
        by :func:`check_boxes`; the other ``box_*`` arguments need ``boxes``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (time, height, width, 3), got {frames.dtype} "
                         f"{frames.shape}")
    t, h, w = frames.shape[:3]
    context = {
        LABEL_INDEX: _ints([label]),
        LABEL_TEXT: _bytes([str(label_text).encode("utf-8")]),
        VIDEO_ID: _bytes([str(video_id).encode("utf-8")]),
        FPS: _floats([fps]),
        HEIGHT: _ints([h]),
        WIDTH: _ints([w]),
        NUM_FRAMES: _ints([t]),
    }
    lists = {IMAGE: tf.train.FeatureList(
        feature=[_bytes([encode_jpeg(f, jpeg_quality)]) for f in frames])}
    if flows is not None:
        flows = np.asarray(flows)
        if flows.ndim != 4 or flows.shape[1:] != (h, w, 2):
            raise ValueError(f"flows must be (num_flows, {h}, {w}, 2) to match the frames, got "
                             f"{flows.shape}")
        index = np.arange(len(flows)) if flow_frame_index is None else np.asarray(flow_frame_index)
        if index.shape != (len(flows),) or (len(index) and (index.min() < 0 or index.max() >= t - 1)):
            raise ValueError(f"flow_frame_index must hold {len(flows)} start frames in [0, {t - 2}], "
                             f"got {index.tolist()}")
        valid = [None] * len(flows) if flow_valid is None else np.asarray(flow_valid, bool)
        lists[FLOW] = tf.train.FeatureList(
            feature=[_bytes([encode_flow(f, v)]) for f, v in zip(flows, valid)])
        context[FLOW_INDEX] = _ints(index)
    if segmentations is not None:
        segmentations = np.asarray(segmentations)
        if segmentations.ndim != 3 or segmentations.shape[1:] != (h, w):
            raise ValueError(f"segmentations must be (num_labels, {h}, {w}) to match the frames, "
                             f"got {segmentations.shape}")
        index = (np.arange(len(segmentations)) if segmentation_frame_index is None
                 else np.asarray(segmentation_frame_index))
        if index.shape != (len(segmentations),) or (
                len(index) and (index.min() < 0 or index.max() >= t)):
            raise ValueError(f"segmentation_frame_index must hold {len(segmentations)} frames in "
                             f"[0, {t - 1}], got {index.tolist()}")
        lists[SEGMENTATION] = tf.train.FeatureList(
            feature=[_bytes([encode_png(s)]) for s in segmentations])
        context[SEGMENTATION_INDEX] = _ints(index)
    if boxes is not None:
        boxes, labels, box_frames, tracks, index = check_boxes(
            boxes, box_labels, box_frames, num_frames=t, height=h, width=w, box_tracks=box_tracks,
            box_frame_index=box_frame_index)
        context[DETECTION_INDEX] = _ints(index)
        context[DETECTION_FRAME] = _ints(box_frames)
        context[DETECTION_LABEL] = _ints(labels)
        context[DETECTION_TRACK] = _ints(tracks)
        context[DETECTION_BOX] = _floats(boxes.reshape(-1))
    elif any(v is not None for v in (box_labels, box_frames, box_tracks, box_frame_index)):
        raise ValueError("box_labels, box_frames, box_tracks and box_frame_index need boxes, got "
                         "boxes=None")
    return tf.train.SequenceExample(context=tf.train.Features(feature=context),
                                    feature_lists=tf.train.FeatureLists(feature_list=lists))


# ----------------------------------------------------------------------------------- decoding ----
def parse_sequence_example(serialized, *, flow=False, segmentation=False, detection=False):
    """Parse one serialized example (a scalar string tensor) into a dict of tensors.

    Keys are the schema keys; JPEG/PNG/flow bytes stay encoded (decode only what you sample with
    :func:`decode_frames`, :func:`decode_flows`, :func:`decode_segmentations`). Works inside
    ``tf.data`` maps and ``tf.function``. With ``detection``: ``detection/frame_index``,
    ``detection/frame``, ``detection/label``, ``detection/track`` int64 vectors and
    ``detection/box`` float32 ``(M, 4)`` (all empty for a record without boxes).
    """
    context = {
        LABEL_INDEX: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        LABEL_TEXT: tf.io.FixedLenFeature([], tf.string, default_value=""),
        VIDEO_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        FPS: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
    }
    sequence = {IMAGE: tf.io.FixedLenSequenceFeature([], tf.string)}
    if flow:
        context[FLOW_INDEX] = tf.io.VarLenFeature(tf.int64)
        sequence[FLOW] = tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
    if segmentation:
        context[SEGMENTATION_INDEX] = tf.io.VarLenFeature(tf.int64)
        sequence[SEGMENTATION] = tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
    if detection:
        for key in (DETECTION_INDEX, DETECTION_FRAME, DETECTION_LABEL, DETECTION_TRACK):
            context[key] = tf.io.VarLenFeature(tf.int64)
        context[DETECTION_BOX] = tf.io.VarLenFeature(tf.float32)
    ctx, seq = tf.io.parse_single_sequence_example(serialized, context_features=context,
                                                   sequence_features=sequence)
    out = dict(ctx)
    out.update(seq)
    for key in (FLOW_INDEX, SEGMENTATION_INDEX, DETECTION_INDEX, DETECTION_FRAME, DETECTION_LABEL,
                DETECTION_TRACK, DETECTION_BOX):
        if key in out:
            out[key] = tf.sparse.to_dense(out[key])
    if detection:
        out[DETECTION_BOX] = tf.reshape(out[DETECTION_BOX], [-1, 4])
    return out


def decode_frames(encoded):
    """``(T,)`` JPEG strings -> ``uint8`` ``(T, H, W, 3)``."""
    return tf.map_fn(lambda s: tf.io.decode_jpeg(s, channels=3), encoded,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def decode_flows(encoded, height, width):
    """``(F,)`` float16 byte strings -> ``(flow float32 (F, H, W, 2), valid bool (F, H, W))``.

    NaN vectors (unknown flow) are returned as 0 with ``valid=False``.
    """
    raw = tf.io.decode_raw(encoded, tf.float16, little_endian=True)
    flow = tf.reshape(tf.cast(raw, tf.float32), tf.stack(
        [tf.shape(encoded)[0], tf.cast(height, tf.int32), tf.cast(width, tf.int32), 2]))
    valid = tf.reduce_all(tf.math.is_finite(flow), axis=-1)
    flow = tf.where(valid[..., None], flow, tf.zeros_like(flow))
    return flow, valid


def decode_segmentations(encoded):
    """``(L,)`` PNG strings -> ``uint8`` ``(L, H, W)``."""
    maps = tf.map_fn(lambda s: tf.io.decode_png(s, channels=1), encoded,
                     fn_output_signature=tf.TensorSpec([None, None, 1], tf.uint8))
    return maps[..., 0]
