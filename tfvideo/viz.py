"""Visualisation writers: PNG, GIF and MP4 output, flow images, side-by-side panels, flow legend.

All images are RGB ``uint8`` NumPy arrays ``(H, W, 3)`` (or ``(H, W)`` grey). OpenCV's BGR ordering is
handled internally. Every writer creates missing parent directories and writes through
:func:`tfvideo.files.atomic_path` (a temporary file in the destination directory, renamed with
``os.replace`` once complete), so a crash or an exception never leaves a partial file under the final
name (and the temporary file is removed).

This module depends only on ``tfvideo.ops.flow`` and ``tfvideo.files`` (plus OpenCV/Pillow/NumPy).
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from tfvideo.files import atomic_path
from tfvideo.ops.flow import flow_to_color

__all__ = ["draw_boxes", "flow_image", "flow_legend", "label_image", "label_overlay", "label_palette", "save_gif",
           "save_mp4", "save_png", "side_by_side"]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------
def _to_uint8_image(image, arg: str = "image", allow_grey: bool = True) -> np.ndarray:
    """Validates an image and returns it as uint8 ``(H, W, 3)`` or ``(H, W)``.

    Float images must be in [0, 255]; they are clipped and rounded. ``(H, W, 1)`` is squeezed to grey.
    """
    if hasattr(image, "numpy"):
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ok_shape = (image.ndim == 3 and image.shape[-1] == 3) or (allow_grey and image.ndim == 2)
    if not ok_shape or image.shape[0] == 0 or image.shape[1] == 0:
        expected = "(H, W, 3) RGB or (H, W) grey" if allow_grey else "(H, W, 3) RGB"
        raise ValueError(f"`{arg}` must have shape {expected}, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"`{arg}` contains NaN or inf values")
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(image.dtype, np.integer):
        if image.min() < 0 or image.max() > 255:
            raise ValueError(
                f"`{arg}` integer values must be in [0, 255], got range [{image.min()}, {image.max()}]"
            )
        return image.astype(np.uint8)
    raise ValueError(f"`{arg}` must be uint8 (or float in [0, 255]), got dtype {image.dtype}")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """Grey ``(H, W)`` uint8 -> ``(H, W, 3)``; RGB passes through."""
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def _frames_to_list(frames, arg: str = "frames") -> list[np.ndarray]:
    """Validates a sequence / array of frames as a non-empty list of equally sized uint8 RGB images."""
    if hasattr(frames, "numpy"):
        frames = frames.numpy()
    if isinstance(frames, np.ndarray):
        if frames.ndim not in (3, 4):
            raise ValueError(f"`{arg}` array must have shape (T, H, W, 3) or (T, H, W), got {frames.shape}")
        frames = list(frames)
    if len(frames) == 0:
        raise ValueError(f"`{arg}` must contain at least one frame")
    out = [_to_rgb(_to_uint8_image(f, f"{arg}[{i}]")) for i, f in enumerate(frames)]
    shape0 = out[0].shape
    for i, f in enumerate(out):
        if f.shape != shape0:
            raise ValueError(
                f"all `{arg}` must have the same shape; {arg}[0] is {shape0} but {arg}[{i}] is {f.shape}"
            )
    return out


# ----------------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------------
def save_png(path, image) -> str:
    """Writes an RGB ``(H, W, 3)`` or grey ``(H, W)`` image to a PNG file (lossless) with OpenCV.

    Args:
      path: destination file (parent directories are created).
      image: uint8 array (float arrays in [0, 255] are rounded and clipped; ``(H, W, 1)`` is grey).

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: for a bad shape or dtype. OSError if OpenCV cannot write the file.

    Example:
      >>> save_png("/tmp/red.png", np.full((4, 4, 3), (255, 0, 0), np.uint8))
      '/tmp/red.png'
    """
    image = _to_uint8_image(image, "image")
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OSError(f"cv2.imwrite could not write {path!r}")
    return path


def save_gif(path, frames, fps: float = 10) -> str:
    """Writes frames as an infinitely looping animated GIF with Pillow.

    Args:
      path: destination file (parent directories are created).
      frames: sequence or ``(T, H, W, 3)`` / ``(T, H, W)`` array of equally sized uint8 frames.
      fps: frames per second (frame duration ``1000 / fps`` ms, rounded to the GIF 10 ms resolution by
        viewers).

    Returns:
      ``path`` as a string.

    Note:
      GIF is paletted (256 colours per frame), and Pillow merges *identical consecutive* frames into one
      frame of longer duration, so a static clip may yield fewer GIF frames (same total duration).

    Example:
      >>> save_gif("/tmp/a.gif", [np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
      '/tmp/a.gif'
    """
    from PIL import Image

    if not fps > 0:
        raise ValueError(f"`fps` must be positive, got {fps}")
    frames = _frames_to_list(frames)
    pil = [Image.fromarray(f) for f in frames]
    duration = max(1, int(round(1000.0 / fps)))
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        pil[0].save(
            tmp, format="GIF", save_all=True, append_images=pil[1:], duration=duration, loop=0, optimize=False
        )
    return path


def save_mp4(path, frames, fps: float = 10) -> str:
    """Writes frames as an MPEG-4 Part 2 video (``mp4v`` fourcc) with ``cv2.VideoWriter``.

    Args:
      path: destination file, normally ending in ``.mp4`` (parent directories are created).
      frames: sequence or ``(T, H, W, 3)`` / ``(T, H, W)`` array of equally sized uint8 RGB frames.
      fps: frames per second.

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: for bad frames or fps. OSError if no video writer can be opened.

    Example:
      >>> save_mp4("/tmp/a.mp4", np.zeros((5, 16, 16, 3), np.uint8), fps=5)
      '/tmp/a.mp4'
    """
    if not fps > 0:
        raise ValueError(f"`fps` must be positive, got {fps}")
    frames = _frames_to_list(frames)
    h, w = frames[0].shape[:2]
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise OSError(f"cv2.VideoWriter could not open {path!r} with fourcc 'mp4v'")
        try:
            for f in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path


# ----------------------------------------------------------------------------------------------------
# composition
# ----------------------------------------------------------------------------------------------------
def flow_image(flow, max_flow: float | None = None) -> np.ndarray:
    """Middlebury colour image ``(H, W, 3)`` uint8 of one ``(H, W, 2)`` flow (see ``flow_to_color``).

    Example:
      >>> flow_image(np.zeros((2, 3, 2))).shape
      (2, 3, 3)
    """
    if hasattr(flow, "numpy"):
        flow = flow.numpy()
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"`flow` must have shape (H, W, 2), got shape {flow.shape}")
    return flow_to_color(flow, max_flow=max_flow)


def side_by_side(images: Sequence, labels: Sequence[str] | None = None, pad: int = 4) -> np.ndarray:
    """Tiles images horizontally, optionally with a text label above each.

    Every image is resized (aspect ratio kept, ``cv2.INTER_AREA``/``INTER_LINEAR``) to the height of the
    first one; images are separated by ``pad`` white pixels. With ``labels`` a white strip is added above
    the row and each label is drawn (black, ``cv2.putText``) above its image.

    Args:
      images: non-empty sequence of uint8 ``(H, W, 3)`` RGB (or ``(H, W)`` grey) images.
      labels: optional sequence of strings, one per image (ASCII; OpenCV Hershey fonts).
      pad: white gap in pixels between images (>= 0).

    Returns:
      uint8 RGB image of shape ``(H0 + strip, sum(W_i') + pad * (n - 1), 3)``.

    Example:
      >>> side_by_side([np.zeros((10, 10, 3), np.uint8), np.zeros((5, 10, 3), np.uint8)], pad=2).shape
      (10, 32, 3)
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if len(images) == 0:
        raise ValueError("`images` must contain at least one image")
    if pad < 0:
        raise ValueError(f"`pad` must be >= 0, got {pad}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"`labels` must have one entry per image ({len(images)}), got {len(labels)}")
    imgs = [_to_rgb(_to_uint8_image(im, f"images[{i}]")) for i, im in enumerate(images)]
    h0 = imgs[0].shape[0]
    resized = []
    for im in imgs:
        h, w = im.shape[:2]
        if h != h0:
            new_w = max(1, int(round(w * h0 / h)))
            interp = cv2.INTER_AREA if h0 < h else cv2.INTER_LINEAR
            im = cv2.resize(im, (new_w, h0), interpolation=interp)
        resized.append(im)

    total_w = sum(im.shape[1] for im in resized) + pad * (len(resized) - 1)
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    strip = 0
    if labels is not None:
        text_h = max(cv2.getTextSize(str(t) or " ", font, scale, thick)[0][1] for t in labels)
        baseline = cv2.getTextSize("g", font, scale, thick)[1]
        strip = text_h + baseline + 8
    canvas = np.full((h0 + strip, total_w, 3), 255, np.uint8)
    x = 0
    for i, im in enumerate(resized):
        w = im.shape[1]
        canvas[strip:, x : x + w] = im
        if labels is not None and str(labels[i]):
            org = (x + 2, strip - baseline - 4)
            cv2.putText(canvas, str(labels[i]), org, font, scale, (0, 0, 0), thick, cv2.LINE_AA)
        x += w + pad
    return canvas


def flow_legend(size: int = 128) -> np.ndarray:
    """The Middlebury colour-coding legend: ``flow_to_color`` of a radial field.

    Pixel ``(y, x)`` shows the colour of the flow vector pointing from the image centre to it, with
    ``max_flow = size / 2``: white in the centre, fully saturated at the inscribed circle (right = +x =
    red, down = +y = orange/yellow, left = cyan-blue, up = violet), and darkened ("out of range") in the
    corners.

    Args:
      size: side length in pixels (>= 2).

    Returns:
      uint8 RGB image ``(size, size, 3)``.

    Example:
      >>> flow_legend(64)[32, 63]  # right edge: (almost pure) red
      array([255,   6,   3], dtype=uint8)
    """
    size = int(size)
    if size < 2:
        raise ValueError(f"`size` must be an int >= 2, got {size}")
    c = (size - 1) / 2.0
    coords = np.arange(size, dtype=np.float64) - c
    u, v = np.meshgrid(coords, coords)  # u varies along x (columns), v along y (rows)
    return flow_to_color(np.stack([u, v], axis=-1), max_flow=size / 2.0)


# ----------------------------------------------------------------------------------------------------
# label maps
# ----------------------------------------------------------------------------------------------------
#: The first 20 class colours: dark grey for class 0 (background), then Trubetskoy's 19 distinct colours.
_PALETTE_20 = ((40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
               (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
               (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
               (255, 215, 180), (0, 0, 128))


def label_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 RGB colours, one per class: class 0 dark grey (background), then 19
    colours chosen to be told apart (Trubetskoy's list); beyond 20 classes hues spread by the golden
    angle. The same ``num_classes`` always gives the same palette, a prefix of a larger one.

    Example:
      >>> label_palette(3).tolist()
      [[40, 40, 40], [230, 25, 75], [60, 180, 75]]
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}")
    colours = [np.array(c, np.uint8) for c in _PALETTE_20[:num_classes]]
    for k in range(len(colours), num_classes):
        hsv = np.array([[[int(k * 137.508 / 2) % 180, 200 if k % 2 else 255, 220]]], np.uint8)
        colours.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return np.stack(colours)


def label_image(labels, num_classes: int, ignore_label: int = 255) -> np.ndarray:
    """Colour image ``(H, W, 3)`` of a label map ``(H, W)``: class ``k`` in ``label_palette(k)``,
    ``ignore_label`` (not annotated) white.

    Raises:
      ValueError: ``labels`` is not 2-D, or holds a value outside ``[0, num_classes)`` other than
        ``ignore_label``.
    """
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if labels.ndim != 2:
        raise ValueError(f"`labels` must have shape (H, W), got shape {labels.shape}")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | ((labels >= num_classes) & (labels != ignore_label))
    if bad.any():
        raise ValueError(f"`labels` must be in [0, {num_classes}) or {ignore_label}; got "
                         f"{sorted(set(labels[bad].tolist()))[:5]}")
    palette = np.concatenate([label_palette(num_classes), np.full((1, 3), 255, np.uint8)])
    return palette[np.where(labels == ignore_label, num_classes, labels)]


def label_overlay(frame, labels, num_classes: int, alpha: float = 0.5, ignore_label: int = 255) -> np.ndarray:
    """``frame`` (``(H, W, 3)`` or grey ``(H, W)`` uint8) blended with the colours of ``labels``:
    ``(1 - alpha) frame + alpha colour`` (ignored pixels keep the frame)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    img = _to_rgb(_to_uint8_image(frame, "frame")).astype(np.float32)
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if labels.shape != img.shape[:2]:
        raise ValueError(f"`labels` must have the frame's size {img.shape[:2]}, got {labels.shape}")
    colour = label_image(labels, num_classes, ignore_label).astype(np.float32)
    a = np.where(labels[..., None] == ignore_label, 0.0, alpha)
    return np.clip(np.round((1 - a) * img + a * colour), 0, 255).astype(np.uint8)


def draw_boxes(frame, boxes, classes, scores=None, class_names=None, num_classes: int | None = None,
               min_score: float = 0.0, thickness: int = 1) -> np.ndarray:
    """``frame`` with detection boxes drawn: a rectangle per box in its class colour
    (:func:`label_palette` shifted by one, so class ``c`` gets the colour of label ``c + 1``: the same
    colour as the object's label in a segmentation overlay of the built-in sets) and a caption
    ``name score`` above it.

    Args:
      frame: uint8 ``(H, W, 3)`` RGB (or grey) image; not modified.
      boxes: ``(N, 4)`` ``(x1, y1, x2, y2)`` inclusive pixel corners.
      classes: ``(N,)`` ints ``0 .. C - 1``; rows with a negative class are skipped (padding).
      scores: optional ``(N,)``; rows below ``min_score`` are skipped, the score is printed.
      class_names: optional names by class index (default: the index).
      num_classes: the palette's size (default: the largest class + 1).

    Returns:
      uint8 RGB ``(H, W, 3)``.

    Example:
      >>> draw_boxes(np.zeros((20, 20, 3), np.uint8), [[2, 2, 10, 10]], [0])[2, 2].tolist()
      [230, 25, 75]
    """
    image = _to_rgb(_to_uint8_image(frame, "frame")).copy()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if len(classes) != len(boxes):
        raise ValueError(f"`classes` must have one entry per box ({len(boxes)}), got {len(classes)}")
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"`scores` must have one entry per box ({len(boxes)}), got {len(scores)}")
    known = classes[classes >= 0]
    count = int(num_classes if num_classes is not None else (known.max() + 1 if known.size else 1))
    palette = label_palette(count + 1)[1:]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.35
    for i, (box, c) in enumerate(zip(boxes, classes)):
        if c < 0 or (scores is not None and scores[i] < min_score):
            continue
        colour = tuple(int(v) for v in palette[c % count])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        name = str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        cv2.putText(image, text, (x1 + 1, max(y1 - 2, 8)), font, scale, colour, 1, cv2.LINE_AA)
    return image
