"""Video decoding and encoding with OpenCV (``cv2.VideoCapture`` / ``cv2.VideoWriter``).

Frames are returned as ``uint8`` arrays ``(time, height, width, 3)`` in **RGB** order (OpenCV decodes
BGR; we convert). Bad files raise :class:`VideoReadError` with a one-line reason so that data tools can
skip them and list them at the end:

* the file cannot be opened (missing, not a video, unknown codec);
* it opens but yields no frame;
* decoding stops early: fewer than 90% of the frames the container announces (minus one, since
  container counts are estimates) could be decoded -- a file broken mid-way.

Example
-------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "clip.avi")
>>> write_video(path, np.zeros((8, 48, 64, 3), np.uint8), fps=25)
>>> video = read_video(path, short_side=24)
>>> video.frames.shape, video.fps
((8, 24, 32, 3), 25.0)
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from tfvideo.data.items import ReadError
from tfvideo.files import atomic_path

__all__ = ["Video", "VideoReadError", "read_video", "resize_short_side", "write_video",
           "subsample_indices"]


class VideoReadError(ReadError):
    """A video that cannot be decoded; ``err.reason`` says why, ``err.path`` names the file."""


@dataclasses.dataclass
class Video:
    """Decoded frames plus what the container said about them."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float  # frame rate of ``frames`` (after subsampling)
    source_fps: float
    source_size: tuple  # (height, width) before resizing
    source_num_frames: int  # frames decoded before subsampling


def resize_short_side(frame, short_side):
    """Resize so that the shorter side is ``short_side`` pixels, keeping the aspect ratio.

    INTER_AREA when shrinking (no aliasing), INTER_LINEAR when enlarging. Sides are rounded to the
    nearest integer (at least 1).
    """
    short_side = int(short_side)
    if short_side < 1:
        raise ValueError(f"short_side must be a positive integer, got {short_side}")
    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    if scale == 1.0:
        return frame
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interp)


def subsample_indices(num_frames, source_fps, fps):
    """Source frame indices kept when resampling ``source_fps`` to ``fps`` (never upsamples).

    Output frame ``k`` is the source frame nearest to time ``k / fps``:
    ``round(k * source_fps / fps)``, for as long as that index exists.
    """
    if fps is None or source_fps <= 0 or fps >= source_fps:
        return np.arange(num_frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    step = source_fps / fps
    idx = np.round(np.arange(int(np.ceil(num_frames / step)) + 1) * step).astype(np.int64)
    return np.unique(idx[idx < num_frames])


def read_video(path, *, short_side=None, fps=None, max_frames=None):
    """Decode a whole video file into RGB ``uint8`` frames.

    Args:
      path: video file (anything FFmpeg in OpenCV reads: avi, mp4, ...).
      short_side: if given, resize every frame so its shorter side has this many pixels.
      fps: if given and lower than the file's frame rate, keep the frames nearest to multiples of
        ``1 / fps`` seconds (see :func:`subsample_indices`).
      max_frames: stop after this many output frames.

    Returns:
      :class:`Video`. Raises :class:`VideoReadError` for the bad files described in the module doc.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoReadError(path, "file does not exist")
    if os.path.getsize(path) == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoReadError(path, "cannot be opened as a video")
        source_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        raw = []
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            raw.append(frame)
            if max_frames is not None and fps is None and len(raw) >= max_frames:
                break
    finally:
        cap.release()
    if not raw:
        raise VideoReadError(path, "contains no decodable frame")
    truncated_by_us = max_frames is not None and fps is None and len(raw) >= max_frames
    if announced > 0 and not truncated_by_us and len(raw) < 0.9 * announced - 1:
        raise VideoReadError(
            path, f"decoding stopped after {len(raw)} of the {announced} frames the file announces")
    keep = subsample_indices(len(raw), source_fps, fps)
    if max_frames is not None:
        keep = keep[:max_frames]
    source_size = raw[0].shape[:2]
    frames = []
    for i in keep:
        f = raw[i]
        if f.ndim == 2:
            f = cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)
        else:
            f = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
        if short_side is not None:
            f = resize_short_side(f, short_side)
        frames.append(f)
    out_fps = source_fps if (fps is None or fps >= source_fps or source_fps <= 0) else float(fps)
    return Video(np.stack(frames), out_fps, source_fps, tuple(source_size), len(raw))


def write_video(path, frames, fps=25.0, fourcc="MJPG"):
    """Write RGB ``uint8`` frames ``(T, H, W, 3)`` to a video file (Motion-JPEG AVI by default).

    Written through :func:`tfvideo.files.atomic_path` (a temporary name in the same folder that keeps
    the extension, from which OpenCV picks the container; renamed when complete), so a crash never
    leaves a partial video under ``path``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (time, height, width, 3), got {frames.dtype} "
                         f"{frames.shape}")
    path = os.fspath(path)
    h, w = frames.shape[1:3]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
        try:
            if not writer.isOpened():
                raise OSError(f"OpenCV cannot write {fourcc!r} video to {path}")
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
