"""Video object-detection datasets as items: ImageNet VID and the built-in ``objects`` set with boxes.

Boxes follow :mod:`tfvideo.data.schema` ("Boxes"): float32 ``(x1, y1, x2, y2)`` in pixels of the stored
frame, corners inclusive (width ``x2 - x1 + 1``), classes ``0..C-1`` (no background class; a detector
adds its own). Items return, besides ``frames`` and ``fps``, ``boxes (M, 4)``, ``box_labels (M,)``,
``box_frames (M,)``, ``box_tracks (M,)`` (-1 unknown) and ``box_frame_index (A,)`` (the annotated
frames, frames with zero boxes included), which the shard writer stores.

Resizing (``load(short_side=...)``), :func:`scale_boxes`
  Inclusive corners are pixel *indices*; a box covers the continuous interval ``[x1, x2 + 1)`` of
  pixel edges. Resizing a frame from width ``W`` to ``W'`` maps edges by ``s = W' / W`` (OpenCV's and
  TensorFlow's half-pixel-centre resizing do exactly this), so ``x1' = s x1`` and ``x2' = s (x2 + 1) - 1``
  (same for ``y`` with ``H' / H``): the box keeps its extent, width ``s (x2 - x1 + 1)``. Results are
  clipped to ``[0, W' - 1]``, and a box narrower than one pixel after shrinking keeps width 1
  (``x2' = max(x2', x1')``). py-faster-rcnn and Deep Feature Flow instead multiply all four numbers
  by ``s``, which makes boxes ``s - 1`` px narrower when shrinking (under one pixel).

Adapters return ``(items, problems)`` like the other data sets (``problems``: ``(path, reason)`` of
what was skipped) and raise ``ValueError`` describing the expected layout when the root is wrong:

* :func:`imagenet_vid_items` -- ImageNet VID (ILSVRC2015), official layout, one item per snippet.
* :func:`objects_detection_items` -- the built-in ``objects`` set (:mod:`tfvideo.data.objects`) with
  the box of every object's visible mask in every frame (:func:`visible_boxes`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import xml.etree.ElementTree as ET

import numpy as np

from tfvideo.data import schema
from tfvideo.data.flow_sets import ImageSequenceItem, _require_dir
from tfvideo.data.items import ReadError

__all__ = ["VID_CLASSES", "VID_WNIDS", "VID_FPS", "OBJECTS_DETECTION_CLASSES", "MIN_VISIBLE_PIXELS",
           "scale_boxes", "read_vid_xml", "DetectionSequenceItem", "ObjectsDetectionItem",
           "imagenet_vid_items", "visible_boxes", "objects_detection_items"]

#: The 30 ImageNet VID classes, in the order of the devkit's ``map_vid.txt`` (class ``k`` here is
#: line ``k + 1`` there; Deep Feature Flow's ``lib/dataset/imagenet_vid.py`` uses the same order after
#: its ``__background__``).
VID_CLASSES = ("airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog",
               "domestic_cat", "elephant", "fox", "giant_panda", "hamster", "horse", "lion", "lizard",
               "monkey", "motorcycle", "rabbit", "red_panda", "sheep", "snake", "squirrel", "tiger",
               "train", "turtle", "watercraft", "whale", "zebra")
#: The WordNet id of each of :data:`VID_CLASSES` (the ``<name>`` of an ``<object>`` in the XML).
VID_WNIDS = ("n02691156", "n02419796", "n02131653", "n02834778", "n01503061", "n02924116",
             "n02958343", "n02402425", "n02084071", "n02121808", "n02503517", "n02118333",
             "n02510455", "n02342885", "n02374451", "n02129165", "n01674464", "n02484322",
             "n03790512", "n02324045", "n02509815", "n02411705", "n01726692", "n02355227",
             "n02129604", "n04468005", "n01662784", "n04530566", "n02062744", "n02391049")
#: ImageNet VID snippets are mostly 25-30 fps; the files do not say, so ``fps`` is left unknown (0).
VID_FPS = 0.0
_WNID_INDEX = {w: i for i, w in enumerate(VID_WNIDS)}
_FRAME_EXTENSIONS = (".jpeg", ".jpg")


# -------------------------------------------------------------------------------------- boxes ----
def scale_boxes(boxes, from_size, to_size):
    """Boxes of a ``from_size = (H, W)`` frame -> boxes of the same frame resized to ``to_size``.

    Inclusive corners (module doc): ``x1' = x1 W'/W``, ``x2' = (x2 + 1) W'/W - 1``, clipped to the new
    frame, ``x2' >= x1'`` (same for ``y``). Returns float32 ``(M, 4)``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    (h0, w0), (h1, w1) = from_size, to_size
    s = np.array([w1 / w0, h1 / h0, w1 / w0, h1 / h0])
    out = np.concatenate([boxes[:, :2], boxes[:, 2:] + 1.0], axis=1) * s
    out[:, 2:] -= 1.0
    out = np.clip(out, 0.0, np.array([w1 - 1, h1 - 1, w1 - 1, h1 - 1], np.float64))
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    return out.astype(np.float32)


def _fields(frames, size, boxes, labels, box_frames, tracks, index, source):
    """The detection keys of ``load``: checked at the original ``size``, scaled to the frames'."""
    h, w = frames.shape[1:3]
    try:
        boxes, labels, box_frames, tracks, index = schema.check_boxes(
            boxes, labels, box_frames, num_frames=len(frames), height=size[0], width=size[1],
            box_tracks=tracks, box_frame_index=index)
    except ValueError as err:
        raise ReadError(source, f"bad boxes: {err}") from None
    if (h, w) != tuple(size):
        boxes = scale_boxes(boxes, size, (h, w))
    return {"boxes": boxes, "box_labels": labels, "box_frames": box_frames, "box_tracks": tracks,
            "box_frame_index": index}


@dataclasses.dataclass(kw_only=True)
class DetectionSequenceItem(ImageSequenceItem):
    """Frames plus boxes known at listing time (ImageNet VID).

    Attributes (keyword-only, besides those of :class:`~tfvideo.data.flow_sets.ImageSequenceItem`),
    all in pixels of the frame files:
      boxes: ``(M, 4)`` ``(x1, y1, x2, y2)``, inclusive corners.
      box_labels, box_frames, box_tracks: ``(M,)`` class, frame index, track id (-1 unknown).
      box_frame_index: the annotated frames (increasing; frames without boxes included).
      annotation_size: ``(height, width)`` the annotations were made for (the XML ``<size>``);
        ``load`` raises :class:`~tfvideo.data.items.ReadError` when the frames have another size.
        None: not checked.
    """

    boxes: np.ndarray
    box_labels: np.ndarray
    box_frames: np.ndarray
    box_tracks: np.ndarray
    box_frame_index: np.ndarray
    annotation_size: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        for name in ("box_labels", "box_frames", "box_tracks", "box_frame_index"):
            setattr(self, name, np.asarray(getattr(self, name), np.int64).reshape(-1))

    def load(self, short_side=None, fps=None):
        """Return ``dict(frames, fps, boxes, box_labels, box_frames, box_tracks, box_frame_index)``,
        boxes scaled with the frames (module doc)."""
        frames, size = self._read_frames(short_side, fps)
        if self.annotation_size is not None and tuple(self.annotation_size) != tuple(size):
            raise ReadError(self.source, f"frames are {size[1]}x{size[0]} (W x H) but the annotations "
                                         f"give {self.annotation_size[1]}x{self.annotation_size[0]}")
        out = {"frames": frames, "fps": self.source_fps}
        out.update(_fields(frames, size, self.boxes, self.box_labels, self.box_frames, self.box_tracks,
                           self.box_frame_index, self.source))
        return out


# ------------------------------------------------------------------------------- ImageNet VID ----
VID_LAYOUT = ("<root>/Data/VID/<split>/[ILSVRC2015_VID_train_NNNN/]<snippet>/<NNNNNN>.JPEG and "
              "<root>/Annotations/VID/<split>/[ILSVRC2015_VID_train_NNNN/]<snippet>/<NNNNNN>.xml")


def read_vid_xml(path):
    """Parse one ImageNet VID annotation file.

    Returns ``dict(size=(height, width), boxes float32 (M, 4), labels, tracks)`` with the boxes clipped
    to the frame as Deep Feature Flow does (``x1 = max(xmin, 0)``, ``x2 = min(xmax, width - 1)``; the
    XML coordinates are already 0-based), labels indices into :data:`VID_CLASSES`, tracks the
    ``<trackid>`` (-1 when absent). Raises :class:`~tfvideo.data.items.ReadError` for an unreadable
    file, a missing or bad ``<size>``/``<bndbox>``, an unknown WordNet id, or a box empty after
    clipping.
    """
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise ReadError(path, f"cannot parse the annotation XML: {err}") from None

    def number(node, tag, kind=float):
        text = None if node is None else node.findtext(tag)
        try:
            return kind(text.strip())
        except (AttributeError, ValueError):
            raise ReadError(path, f"<{tag}> must be a number, got {text!r}") from None

    size = root.find("size")
    h, w = number(size, "height", int), number(size, "width", int)
    if h < 1 or w < 1:
        raise ReadError(path, f"<size> must be positive, got {w}x{h} (W x H)")
    boxes, labels, tracks = [], [], []
    for obj in root.findall("object"):
        wnid = (obj.findtext("name") or "").strip().lower()
        if wnid not in _WNID_INDEX:
            raise ReadError(path, f"unknown WordNet id {wnid!r} (not one of the 30 VID classes)")
        bb = obj.find("bndbox")
        if bb is None:
            raise ReadError(path, f"object {wnid} has no <bndbox>")
        x1, y1 = max(number(bb, "xmin"), 0.0), max(number(bb, "ymin"), 0.0)
        x2, y2 = min(number(bb, "xmax"), w - 1.0), min(number(bb, "ymax"), h - 1.0)
        if x2 < x1 or y2 < y1:
            raise ReadError(path, f"box {[x1, y1, x2, y2]} of {wnid} is empty inside the {w}x{h} frame")
        track = obj.findtext("trackid")
        boxes.append((x1, y1, x2, y2))
        labels.append(_WNID_INDEX[wnid])
        tracks.append(-1 if track is None or not track.strip() else number(obj, "trackid", int))
    return {"size": (h, w), "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, np.int64), "tracks": np.asarray(tracks, np.int64)}


def _vid_snippets(data_dir):
    """``{relative snippet path: {frame number: frame path}}`` of every folder holding frames."""
    snippets = {}
    for folder, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        frames = {}
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() in _FRAME_EXTENSIONS and stem.isdigit():
                frames[int(stem)] = os.path.join(folder, name)
        if frames:
            rel = os.path.relpath(folder, os.path.dirname(data_dir)).replace(os.sep, "/")
            snippets[rel] = frames
    return snippets


def _read_image_set(path, split, snippets):
    """``{snippet: set of frame numbers}`` selected by an ImageSets file, and problems."""
    selected, missing, other = {}, [], 0
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split() for line in f]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the image set {path}: {err}") from None
    problems = []
    for number, tokens in enumerate(lines, 1):
        if not tokens:
            continue
        name = tokens[0].strip("/")
        if not name.startswith(f"{split}/"):
            other += 1
            continue
        frames = None
        if len(tokens) == 4 and all(t.lstrip("-").isdigit() for t in tokens[1:]):
            start, length = int(tokens[2]), int(tokens[3])
            frames = {start} if split == "train" else set(range(start, start + length))
            snippet = name
        elif len(tokens) == 2:
            head, _, tail = name.rpartition("/")
            if name in snippets:
                snippet, frames = name, set(snippets[name])
            elif head in snippets and tail.isdigit():
                snippet, frames = head, {int(tail)}
            else:
                snippet = name
        else:
            problems.append((path, f"line {number}: expected '<path> <id>' or '<snippet> <id> <frame> "
                                   f"<length>', got {' '.join(tokens)!r}; line skipped"))
            continue
        have = snippets.get(snippet, {})
        found = {k for k in (frames or ()) if k in have}
        if not found or (frames and found != frames):
            missing.append(name)
        if found:
            selected.setdefault(snippet, set()).update(found)
    if missing:
        problems.append((path, f"{len(missing)} line(s) name snippets or frames not found under "
                               f"Data/VID/{split} (e.g. {missing[:3]}); those frames are skipped"))
    if other:
        problems.append((path, f"{other} line(s) belong to another split than {split!r}; ignored"))
    return selected, problems


def imagenet_vid_items(root, split="train", image_set=None):
    """List ImageNet VID (ILSVRC2015) snippets with their boxes (Russakovsky et al. 2015).

    Layout (the official archive ``ILSVRC2015_VID.tar.gz`` unpacked)::

        <root>/Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.JPEG ...
        <root>/Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG ...
        <root>/Annotations/VID/<the same relative path>/000000.xml ...
        <root>/ImageSets/...   (optional, see ``image_set``)

    Every folder under ``Data/VID/<split>`` holding ``<number>.JPEG`` files is a snippet (one item,
    all its frames stored, in number order; the numbers must be consecutive). Without ``image_set``
    every frame with a usable XML is annotated. All XMLs of the annotated frames are parsed here (the
    whole train split, ~1.1 M files, takes a few minutes), so problems are known before writing.
    A frame is stored but left **unannotated** (not in ``box_frame_index``, so its objects count as
    unknown, never as background) and reported in ``problems`` when its XML is missing, unreadable,
    names an unknown WordNet id, or has a bad ``<size>`` or box (:func:`read_vid_xml`); a snippet with
    non-consecutive frame numbers or no annotated frame left is skipped and reported.
    Boxes are clipped to ``[0, width - 1] x [0, height - 1]`` as Deep Feature Flow does; ``load``
    refuses (ReadError) frames whose size differs from the XMLs' ``<size>``.

    Args:
      root: the ``ILSVRC2015`` folder.
      split: ``"train"`` or ``"val"`` (the test split has no annotations).
      image_set: optional list of the frames to annotate, a path or a file name under
        ``<root>/ImageSets/`` (e.g. ``"VID_train_15frames.txt"``). Supported lines (those of another
        split are ignored and counted in ``problems``):

        * ``<split>/<snippet> <n>`` -- every frame of the snippet (official ``VID/train_<c>.txt``);
        * ``<split>/<snippet>/<frame> <n>`` -- that frame (official ``VID/val.txt``, DFF's
          ``VID_val_frames.txt``);
        * ``<split>/<snippet> <id> <frame> <length>`` -- Deep Feature Flow's files, read as DFF
          uses them: for ``train`` (``VID_train_15frames.txt``) the frame ``<frame>`` (DFF trains on
          15 frames per snippet), otherwise (``VID_val_videos.txt``) the frames ``<frame> ..
          <frame> + <length> - 1``.

        Only snippets with a listed frame become items (all their frames are stored, so key frames
        before a listed frame exist); the other frames are unannotated. ``DET`` images
        (``DET_train_30classes.txt``) are not supported.

    Returns:
      ``(items, problems)``: :class:`DetectionSequenceItem` s (``video_id="imagenet_vid/<split>/..."``,
      the relative snippet path, ``label=-1``, ``source`` = the snippet's frame folder) and
      ``(path, reason)`` pairs.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (the test split has no annotations), got "
                         f"{split!r}")
    root = os.fspath(root)
    data_dir = os.path.join(root, "Data", "VID", split)
    anno_dir = os.path.join(root, "Annotations", "VID", split)
    for path in (root, data_dir, anno_dir):
        _require_dir(path, VID_LAYOUT)
    snippets = _vid_snippets(data_dir)
    if not snippets:
        raise ValueError(f"no <number>.JPEG frames under {data_dir}; expected {VID_LAYOUT}")
    problems = []
    selected = None
    if image_set is not None:
        path = os.fspath(image_set)
        if not os.path.isfile(path):
            path = os.path.join(root, "ImageSets", path)
        if not os.path.isfile(path):
            raise ValueError(f"image_set {image_set!r} is neither a file nor a file under "
                             f"{os.path.join(root, 'ImageSets')}")
        selected, probs = _read_image_set(path, split, snippets)
        problems.extend(probs)
    items = []
    for rel in sorted(snippets):
        if selected is not None and rel not in selected:
            continue
        frames = snippets[rel]
        numbers = sorted(frames)
        folder = os.path.dirname(frames[numbers[0]])
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            problems.append((folder, f"frame numbers are not consecutive (missing {gaps[:10]}); "
                                     "snippet skipped"))
            continue
        wanted = numbers if selected is None else sorted(selected[rel])
        boxes, labels, box_frames, tracks, index, sizes = [], [], [], [], [], set()
        for n in wanted:
            xml = os.path.join(anno_dir, *rel.split("/")[1:], f"{n:06d}.xml")
            if not os.path.isfile(xml):
                problems.append((frames[n], f"no annotation {xml}; frame stored unannotated"))
                continue
            try:
                ann = read_vid_xml(xml)
            except ReadError as err:
                problems.append((err.path, f"{err.reason}; frame stored unannotated"))
                continue
            t = n - numbers[0]
            sizes.add(ann["size"])
            index.append(t)
            boxes.append(ann["boxes"])
            labels.append(ann["labels"])
            tracks.append(ann["tracks"])
            box_frames.append(np.full(len(ann["labels"]), t, np.int64))
        if len(sizes) > 1:
            problems.append((folder, f"the annotations give several frame sizes {sorted(sizes)}; "
                                     "snippet skipped"))
            continue
        if not index:
            problems.append((folder, "no annotated frame; snippet skipped"))
            continue
        items.append(DetectionSequenceItem(
            video_id=f"imagenet_vid/{rel}", label=-1, label_text="", source=folder,
            frame_paths=[frames[n] for n in numbers], source_fps=VID_FPS,
            boxes=np.concatenate(boxes), box_labels=np.concatenate(labels),
            box_frames=np.concatenate(box_frames), box_tracks=np.concatenate(tracks),
            box_frame_index=np.asarray(index, np.int64), annotation_size=sizes.pop()))
    return items, problems


# -------------------------------------------------------------------------- built-in objects ----
#: The detection classes of the built-in ``objects`` set: its object classes without ``background``
#: (detection label = ``objects.CLASSES`` index - 1).
OBJECTS_DETECTION_CLASSES = ("astronaut", "cameraman", "cat", "cells", "coffee", "coins", "retina")
#: An object whose visible part has fewer pixels gets no box in that frame.
MIN_VISIBLE_PIXELS = 16


def visible_boxes(layers, object_labels, min_pixels=MIN_VISIBLE_PIXELS):
    """Boxes of the visible part of every object in every frame.

    Args:
      layers: ``(T, H, W)`` visible layer per pixel (0 = background, ``j`` = object ``j - 1``), as
        :func:`tfvideo.data.objects.clip_geometry` returns it: occlusion by other objects is already
        removed, and the frame border cuts objects.
      object_labels: the detection label of each object (length = number of objects).
      min_pixels: an object with fewer visible pixels in a frame gets no box there (fully hidden or
        cut to a sliver).

    Returns:
      ``(boxes float32 (M, 4), labels, frames, tracks)``: the box is the inclusive extent of the
      visible pixels ``(min x, min y, max x, max y)``, the track the object's index in the clip; boxes
      ordered by frame, then object.
    """
    layers = np.asarray(layers)
    boxes, labels, frames, tracks = [], [], [], []
    for t, layer in enumerate(layers):
        for j, label in enumerate(object_labels):
            ys, xs = np.nonzero(layer == j + 1)
            if len(xs) < max(1, min_pixels):
                continue
            boxes.append((xs.min(), ys.min(), xs.max(), ys.max()))
            labels.append(label)
            frames.append(t)
            tracks.append(j)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
            np.asarray(frames, np.int64), np.asarray(tracks, np.int64))


@dataclasses.dataclass(kw_only=True)
class ObjectsDetectionItem(ImageSequenceItem):
    """A clip of the built-in ``objects`` set; its boxes are computed in ``load`` from the clip's
    scene (:func:`tfvideo.data.objects.clip_spec` with the generator's parameters, then
    :func:`visible_boxes` of :func:`~tfvideo.data.objects.clip_geometry`'s layers).

    Attributes (keyword-only, besides those of :class:`~tfvideo.data.flow_sets.ImageSequenceItem`):
      seed, split, index: which clip (``objects.json``'s seed, the split folder, ``clip_<index>``).
      size: ``(height, width)`` of the generated frames.
      min_pixels: see :func:`visible_boxes`.
    """

    seed: int
    split: str
    index: int
    size: tuple
    min_pixels: int = MIN_VISIBLE_PIXELS

    def load(self, short_side=None, fps=None):
        """Return ``dict(frames, fps, boxes, box_labels, box_frames, box_tracks, box_frame_index)``;
        every frame is annotated."""
        from tfvideo.data.objects import clip_geometry, clip_spec

        frames, size = self._read_frames(short_side, fps)
        if tuple(size) != tuple(self.size):
            raise ReadError(self.source, f"frames are {size[1]}x{size[0]} (W x H) but objects.json "
                                         f"says {self.size[1]}x{self.size[0]}")
        spec = clip_spec(seed=self.seed, split=self.split, index=self.index,
                         num_frames=len(self.frame_paths), size=self.size)
        layers = clip_geometry(spec)["layers"]
        boxes, labels, box_frames, tracks = visible_boxes(
            layers, [o.label - 1 for o in spec.objects], self.min_pixels)
        out = {"frames": frames, "fps": self.source_fps}
        out.update(_fields(frames, size, boxes, labels, box_frames, tracks,
                           np.arange(len(frames), dtype=np.int64), self.source))
        return out


def objects_detection_items(root, split="train", *, min_pixels=MIN_VISIBLE_PIXELS):
    """List the clips of a generated ``objects`` set (:func:`tfvideo.data.objects.generate_objects`)
    as detection items: every frame annotated with the box of each object's visible mask
    (:func:`visible_boxes`: occlusion by objects in front and the frame border removed, no box under
    ``min_pixels`` visible pixels), label = the object's class index - 1
    (:data:`OBJECTS_DETECTION_CLASSES`), track = the object's index in the clip.

    The boxes are not stored on disk: they are recomputed from the clip's scene, exactly, with the
    parameters of ``<root>/objects.json`` (a folder made by another version of the generator is
    refused). Frames are listed as :func:`~tfvideo.data.segmentation_sets.gatech_items` lists them
    (and its problems are returned); a clip whose frame count differs from ``objects.json`` is skipped
    and reported.

    Returns:
      ``(items, problems)``: :class:`ObjectsDetectionItem` s (``video_id="objects/<split>/clip_<k>"``,
      the ids of the segmentation set, ``label=-1``) and ``(path, reason)`` pairs.
    """
    from tfvideo.data.objects import CLASSES, VERSION
    from tfvideo.data.segmentation_sets import gatech_items

    root = os.fspath(root)
    meta_path = os.path.join(root, "objects.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{meta_path} is missing or unreadable ({err}); generate the set with "
                         "tfvideo.data.objects.generate_objects (python -m tfvideo.data.objects)") from None
    if meta.get("version") != VERSION:
        raise ValueError(f"{root} was generated by objects version {meta.get('version')!r}, not "
                         f"{VERSION}: its boxes cannot be recomputed; regenerate it")
    items, problems = gatech_items(root, split, num_classes=len(CLASSES), id_prefix="objects")
    out = []
    for item in items:
        name = os.path.basename(item.source)
        m = re.fullmatch(r"clip_(\d+)", name)
        if not m:
            problems.append((item.source, "not a clip_<k> folder of the objects set; skipped"))
            continue
        if len(item.frame_paths) != meta["num_frames"]:
            problems.append((item.source, f"{len(item.frame_paths)} frames but objects.json says "
                                          f"{meta['num_frames']}; clip skipped"))
            continue
        out.append(ObjectsDetectionItem(
            video_id=item.video_id, label=-1, label_text="", source=item.source,
            frame_paths=item.frame_paths, source_fps=item.source_fps, seed=int(meta["seed"]),
            split=split, index=int(m.group(1)), size=tuple(meta["size"]), min_pixels=min_pixels))
    return out, problems
