"""Video semantic-segmentation datasets as items: Cityscapes sequences and GATECH-style folders.

:class:`SegmentationSequenceItem` is an image sequence
(:class:`~tfvideo.data.flow_sets.ImageSequenceItem`) with sparse label maps
``{frame_index: label_png}``. ``load(short_side=None, fps=None)`` returns
``dict(frames, fps, segmentations, segmentation_frame_index)``: frames RGB ``uint8``
``(T, H, W, 3)`` (read and resized one at a time), label maps ``uint8`` ``(L, H, W)`` resized to the
frames' size with ``cv2.INTER_NEAREST`` (no new label value can appear). ``fps`` must be None
(labels belong to given frames). Label maps must be single-channel 8-bit PNGs (a paletted or RGB
"colour" label image is rejected) of the frames' size, with values in ``[0, num_classes)`` or
``255`` (ignore); anything else raises :class:`~tfvideo.data.items.ReadError` naming the file and
the bad values. An item with ``flow_paths`` (GATECH-style folders with ``flows/``, e.g. the
built-in :mod:`tfvideo.data.objects` set) also returns ``flows``, ``flow_frame_index`` and
``flow_valid`` (as :class:`~tfvideo.data.flow_sets.FlowSequenceItem`: flow ``i`` goes from frame
``flow_frame_index[i]`` to the next frame, resized with
:func:`~tfvideo.data.flow_sets.resize_flow_field` when ``short_side`` resizes the frames).

Adapters return ``(items, problems)`` (``problems``: ``(path, reason)`` for what was skipped) and
raise ``ValueError`` describing the expected layout when the root or its top folders are missing:

* :func:`cityscapes_items` --
  ``leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_<label_kind>.png``: one item per label file,
  the 30-frame snippet around it, label at index 19.
* :func:`gatech_items` -- our "GATECH-style" layout (see the function): one item per video.

Example
-------
>>> import numpy as np, tempfile, os, cv2
>>> root = tempfile.mkdtemp()
>>> for k in range(3):
...     _ = os.makedirs(f"{root}/train/v1/frames", exist_ok=True)
...     _ = cv2.imwrite(f"{root}/train/v1/frames/{k:05d}.png", np.full((8, 16, 3), k, np.uint8))
>>> _ = os.makedirs(f"{root}/train/v1/labels")
>>> _ = cv2.imwrite(f"{root}/train/v1/labels/00002.png", np.full((8, 16), 7, np.uint8))
>>> items, problems = gatech_items(root, "train")
>>> out = items[0].load(short_side=4)
>>> out["frames"].shape, out["segmentations"].shape, out["segmentation_frame_index"].tolist()
((3, 4, 8, 3), (1, 4, 8), [2])
"""

from __future__ import annotations

import dataclasses
import os
import re

import cv2
import numpy as np

from tfvideo.data.flo import read_flo
from tfvideo.data.flow_sets import (ImageSequenceItem, _read_bytes, _require_dir, _subdirs,
                                    resize_flow_field)
from tfvideo.data.items import ReadError

__all__ = ["SegmentationSequenceItem", "read_label_map", "cityscapes_items", "gatech_items",
           "IGNORE_LABEL", "CITYSCAPES_NUM_CLASSES", "CITYSCAPES_FPS", "CITYSCAPES_SNIPPET",
           "CITYSCAPES_ANNOTATED_INDEX", "GATECH_CLASSES"]

#: Label value meaning "not annotated" (same as ``tfvideo.data.schema.IGNORE_LABEL``).
IGNORE_LABEL = 255
#: Number of classes per Cityscapes label kind: the 19 evaluation classes of ``labelTrainIds``
#: (made by cityscapesScripts' ``createTrainIdLabelImgs``; other classes are 255) and the 34 ids
#: 0..33 of ``labelIds`` (shipped with gtFine).
CITYSCAPES_NUM_CLASSES = {"labelTrainIds": 19, "labelIds": 34}
#: Cityscapes sequences are recorded at 17 Hz (30 frames = 1.8 s).
CITYSCAPES_FPS = 17.0
#: Frames per Cityscapes snippet and the position of the annotated frame in it (the 20th).
CITYSCAPES_SNIPPET = 30
CITYSCAPES_ANNOTATED_INDEX = 19
#: GATECH geometric-context classes (Raza et al., "Geometric Context from Videos", CVPR 2013), in
#: label order 0..7.
GATECH_CLASSES = ("sky", "ground", "solid", "porous", "cars", "humans", "vertical mix", "main mix")


def read_label_map(path, num_classes, size=None):
    """Read a label PNG as ``uint8`` ``(H, W)`` and check its values.

    Args:
      path: single-channel 8-bit image file.
      num_classes: valid labels are ``0 .. num_classes - 1``, plus ``255`` (ignore).
      size: optional expected ``(height, width)``.

    Raises:
      ReadError: unreadable file, not single-channel 8-bit, other size, or labels out of range
        (the message lists the bad values).
    """
    img = cv2.imdecode(_read_bytes(path, "label map"), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ReadError(path, "cannot be decoded as an image")
    if img.ndim != 2 or img.dtype != np.uint8:
        channels = 1 if img.ndim == 2 else img.shape[-1]
        raise ReadError(path, f"label map must be single-channel 8-bit, got {channels} channel(s) "
                              f"of {img.dtype}")
    if size is not None and img.shape != tuple(size):
        raise ReadError(path, f"label map is {img.shape[1]}x{img.shape[0]} (W x H) but the frames "
                              f"are {size[1]}x{size[0]}")
    values = np.unique(img)
    bad = values[(values >= num_classes) & (values != IGNORE_LABEL)]
    if bad.size:
        raise ReadError(path, f"label values {bad.tolist()[:20]} out of range: expected 0..."
                              f"{num_classes - 1} or {IGNORE_LABEL} (ignore)")
    return img


@dataclasses.dataclass(kw_only=True)
class SegmentationSequenceItem(ImageSequenceItem):
    """Frames plus sparse label maps.

    Attributes (keyword-only, besides those of :class:`~tfvideo.data.flow_sets.ImageSequenceItem`):
      label_paths: ``{frame_index: label_png}``.
      num_classes: labels must be in ``[0, num_classes)`` or 255.
      flow_paths: optional ``{frame_index: flo_file}``, the flow from that frame to the next one
        (frame indices in ``[0, T - 2]``); ``None`` (default) or empty: no flows, and ``load``
        returns no flow keys.
    """

    label_paths: dict
    num_classes: int
    flow_paths: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        t = len(self.frame_paths)
        self.label_paths = {int(k): os.fspath(v) for k, v in sorted(self.label_paths.items())}
        if any(not 0 <= k < t for k in self.label_paths):
            raise ValueError(f"label_paths keys must be frame indices in [0, {t - 1}], got "
                             f"{list(self.label_paths)}")
        if not 1 <= int(self.num_classes) <= IGNORE_LABEL:
            raise ValueError(f"num_classes must be in [1, {IGNORE_LABEL}], got {self.num_classes}")
        flows = self.flow_paths or {}
        self.flow_paths = {int(k): os.fspath(v) for k, v in sorted(flows.items())} or None
        if any(not 0 <= k <= t - 2 for k in self.flow_paths or ()):
            raise ValueError(f"flow_paths keys must be start frames in [0, {t - 2}] for {t} frames, "
                             f"got {list(self.flow_paths)}")

    def load(self, short_side=None, fps=None):
        """Return ``dict(frames, fps, segmentations, segmentation_frame_index)`` plus, with
        ``flow_paths``, ``flows``, ``flow_frame_index`` and ``flow_valid`` (module doc)."""
        frames, size = self._read_frames(short_side, fps)
        h, w = frames.shape[1:3]
        segmentations = np.empty((len(self.label_paths), h, w), np.uint8)
        for i, path in enumerate(self.label_paths.values()):
            label = read_label_map(path, self.num_classes, size)
            if label.shape != (h, w):
                label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
            segmentations[i] = label
        out = {"frames": frames, "fps": self.source_fps, "segmentations": segmentations,
               "segmentation_frame_index": np.asarray(list(self.label_paths), np.int64)}
        if self.flow_paths:
            flows = np.empty((len(self.flow_paths), h, w, 2), np.float32)
            valid = np.empty((len(self.flow_paths), h, w), bool)
            for i, path in enumerate(self.flow_paths.values()):
                flow, ok = read_flo(path)
                if flow.shape[:2] != tuple(size):
                    raise ReadError(path, f"flow is {flow.shape[1]}x{flow.shape[0]} (W x H) but the "
                                          f"frames are {size[1]}x{size[0]}")
                flows[i], valid[i] = resize_flow_field(flow, ok, (h, w))
            out.update(flows=flows, flow_valid=valid,
                       flow_frame_index=np.asarray(list(self.flow_paths), np.int64))
        return out


CITYSCAPES_LAYOUT = (
    "<root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png and "
    "<root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_<label_kind>.png")


def cityscapes_items(root, split="train", label_kind="labelTrainIds"):
    """List the annotated Cityscapes frames with their 30-frame snippets (Cordts et al. 2016).

    For a label file of frame number ``f`` (6 digits) the snippet is frames ``f - 19 .. f + 10`` of
    the same ``<city>_<seq>``; the item's frames are those 30 images and its one label map is at
    index 19. A label whose snippet misses frames is reported in ``problems`` (path of the first
    missing frame) and skipped. Frames are 2048x1024: pass ``short_side`` to ``load``.
    Note: the official test labels are placeholders.

    Args:
      root: folder holding ``leftImg8bit_sequence`` and ``gtFine``.
      split: ``"train"``, ``"val"`` or ``"test"``.
      label_kind: ``"labelTrainIds"`` (19 classes, 255 ignore) or ``"labelIds"`` (34 ids).

    Returns:
      ``(items, problems)``: :class:`SegmentationSequenceItem` s
      (``video_id="cityscapes/<split>/<city>_<seq>_<frame>"``, ``label=-1``, ``source`` = the label
      file, ``source_fps=17``) and ``(path, reason)`` pairs.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if label_kind not in CITYSCAPES_NUM_CLASSES:
        raise ValueError(f"label_kind must be one of {sorted(CITYSCAPES_NUM_CLASSES)}, got "
                         f"{label_kind!r}")
    root = os.fspath(root)
    seq_dir = os.path.join(root, "leftImg8bit_sequence", split)
    gt_dir = os.path.join(root, "gtFine", split)
    for path in (root, seq_dir, gt_dir):
        _require_dir(path, CITYSCAPES_LAYOUT)
    items, problems, num_labels = [], [], 0
    for city in _subdirs(gt_dir):
        pattern = rf"{re.escape(city)}_(\d+)_(\d+)_gtFine_{label_kind}\.png"
        for name in sorted(os.listdir(os.path.join(gt_dir, city))):
            m = re.fullmatch(pattern, name)
            if not m:
                continue
            num_labels += 1
            label_path = os.path.join(gt_dir, city, name)
            seq, frame = m.groups()
            first = int(frame) - CITYSCAPES_ANNOTATED_INDEX
            numbers = range(first, first + CITYSCAPES_SNIPPET)
            paths = [os.path.join(seq_dir, city, f"{city}_{seq}_{k:0{len(frame)}d}_leftImg8bit.png")
                     for k in numbers]
            missing = [k for k, p in zip(numbers, paths) if k < 0 or not os.path.isfile(p)]
            if missing:
                first_missing = paths[numbers.index(missing[0])] if missing[0] >= 0 else label_path
                problems.append((first_missing,
                                 f"snippet of {name} (frames {first}..{numbers[-1]}) misses "
                                 f"{len(missing)} frame(s) {missing[:10]}; skipped"))
                continue
            items.append(SegmentationSequenceItem(
                video_id=f"cityscapes/{split}/{city}_{seq}_{frame}", label=-1, label_text="",
                source=label_path, frame_paths=paths, source_fps=CITYSCAPES_FPS,
                label_paths={CITYSCAPES_ANNOTATED_INDEX: label_path},
                num_classes=CITYSCAPES_NUM_CLASSES[label_kind]))
    if not num_labels:
        raise ValueError(
            f"no *_gtFine_{label_kind}.png under {gt_dir}; expected {CITYSCAPES_LAYOUT} "
            "(labelTrainIds files are made by cityscapesScripts' createTrainIdLabelImgs; or use "
            "label_kind='labelIds')")
    return items, problems


GATECH_LAYOUT = ("<root>/<split>/<video>/frames/<NNNNN>.png|.jpg and "
                 "<root>/<split>/<video>/labels/<NNNNN>.png (optional "
                 "<root>/<split>/<video>/flows/<NNNNN>.flo)")
_FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")


def gatech_items(root, split="train", *, num_classes=len(GATECH_CLASSES), id_prefix="gatech"):
    """List GATECH-style geometric-context videos (Raza et al. 2013; 63 train / 38 test videos).

    The original distribution's layout is not reproduced here; we define this one (convert to it)::

        <root>/<split>/<video>/frames/00000.png   (or .jpg/.jpeg; integer names, any zero-padding)
        <root>/<split>/<video>/labels/00000.png   (label maps for some frames, same file stem)
        <root>/<split>/<video>/flows/00000.flo    (optional: Middlebury .flo, the flow from the frame
                                                   of the same stem to the next frame in order)

    Label maps are single-channel 8-bit, values ``0..num_classes-1`` (:data:`GATECH_CLASSES` order
    for GATECH) or 255 (ignore). Frames are ordered by the integer value of their names. A video
    with a ``flows/`` folder gets its flows loaded too (frames without a flow file simply have
    none); other folders (e.g. the ``occlusions/`` of :mod:`tfvideo.data.objects`) are ignored.
    Reported in ``problems``: a video without ``frames/`` or ``labels/``, with non-integer or
    duplicate frame names, or without any label (the video is skipped); a label (flow) file without
    a frame of the same stem, a flow file of the last frame (no next frame), or a file that is not
    a ``.png`` in ``labels/`` (not a ``.flo`` in ``flows/``) (that file is skipped). Files in
    ``frames/`` that are not ``.png``/``.jpg``/``.jpeg`` are ignored.

    Args:
      root: folder holding ``train/`` and ``test/``.
      split: ``"train"`` or ``"test"``.
      num_classes: labels must be below it (8 for GATECH; ``len(objects.CLASSES)`` for the
        built-in ``objects`` set).
      id_prefix: first part of the video ids (``"objects"`` for the built-in set).

    Returns:
      ``(items, problems)``: :class:`SegmentationSequenceItem` s (one per video,
      ``video_id="<id_prefix>/<split>/<video>"``, ``label=-1``, ``num_classes``, ``flow_paths``
      when ``flows/`` exists) and ``(path, reason)`` pairs.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or not 1 <= num_classes <= IGNORE_LABEL):
        raise ValueError(f"num_classes must be an integer in [1, {IGNORE_LABEL}], got "
                         f"{num_classes!r}")
    if not isinstance(id_prefix, str) or not id_prefix:
        raise ValueError(f"id_prefix must be a non-empty string, got {id_prefix!r}")
    root = os.fspath(root)
    split_dir = os.path.join(root, split)
    _require_dir(root, GATECH_LAYOUT)
    _require_dir(split_dir, GATECH_LAYOUT)
    items, problems = [], []
    for video in _subdirs(split_dir):
        video_dir = os.path.join(split_dir, video)
        frames_dir = os.path.join(video_dir, "frames")
        labels_dir = os.path.join(video_dir, "labels")
        if not (os.path.isdir(frames_dir) and os.path.isdir(labels_dir)):
            problems.append((video_dir, "needs frames/ and labels/ folders; skipped"))
            continue
        frames = {}  # stem -> path
        bad = None
        for name in sorted(os.listdir(frames_dir)):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in _FRAME_EXTENSIONS:
                continue
            if not stem.isdigit() or stem in frames:
                bad = (os.path.join(frames_dir, name),
                       "frame names must be unique integers (e.g. 00012.png); video skipped")
                break
            frames[stem] = os.path.join(frames_dir, name)
        if bad or not frames:
            problems.append(bad or (frames_dir, "no .png/.jpg frame; video skipped"))
            continue
        order = sorted(frames, key=int)
        if len({int(s) for s in order}) != len(order):
            problems.append((frames_dir, "two frame names have the same number (e.g. 1.png and "
                                         "01.png); video skipped"))
            continue
        index = {stem: i for i, stem in enumerate(order)}
        labels = _files_by_frame(labels_dir, ".png", "label map", index, frames_dir, problems)
        if not labels:
            problems.append((labels_dir, "no usable label map; video skipped"))
            continue
        flows = _gatech_flows(os.path.join(video_dir, "flows"), index, frames_dir, problems)
        items.append(SegmentationSequenceItem(
            video_id=f"{id_prefix}/{split}/{video}", label=-1, label_text="", source=video_dir,
            frame_paths=[frames[s] for s in order], label_paths=labels,
            num_classes=int(num_classes), flow_paths=flows))
    return items, problems


def _gatech_flows(flows_dir, index, frames_dir, problems):
    """``{start frame index: .flo path}`` of a video's ``flows/`` folder (None without one); files
    that cannot be used are appended to ``problems``."""
    if not os.path.isdir(flows_dir):
        return None
    return _files_by_frame(flows_dir, ".flo", "flow file", index, frames_dir, problems, last=False)


def _files_by_frame(folder, ext, what, index, frames_dir, problems, last=True):
    """``{frame index: path}`` of the ``<stem><ext>`` files of ``folder`` whose stem names a frame
    (``index``: stem -> frame index); other files go to ``problems``. ``last=False``: a file of the
    last frame is refused too (a flow starting there has no next frame)."""
    found = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stem, suffix = os.path.splitext(name)
        if suffix.lower() != ext:
            problems.append((path, f"not a {ext} {what}; file skipped"))
        elif stem not in index:
            problems.append((path, f"no frame named {stem}.* in {frames_dir}; {what.split()[0]} skipped"))
        elif not last and index[stem] == len(index) - 1:
            problems.append((path, f"starts at the last frame (there is no next frame); {what.split()[0]} "
                                   "skipped"))
        else:
            found[index[stem]] = path
    return found
