"""Optical-flow datasets as :class:`~tfvideo.data.items.Item` s: Middlebury and MPI-Sintel.

Items
-----
:class:`ImageSequenceItem`
    a video stored as one image file per frame (read with OpenCV, converted to RGB; grey images
    become 3 identical channels). Frames are read and resized one at a time, so only the resized
    sequence is held in memory. Also the base of
    :class:`tfvideo.data.segmentation_sets.SegmentationSequenceItem`.
:class:`FlowSequenceItem`
    frames plus ``.flo`` ground truth (:mod:`tfvideo.data.flo`): flow ``i`` goes from frame
    ``flow_frame_index[i]`` to the next frame (default ``0, 1, ...``: one flow per consecutive
    pair), optionally with mask images whose non-zero pixels mark the flow invalid (Sintel's
    ``invalid/``).

``load(short_side=None, fps=None)`` follows :meth:`tfvideo.data.items.Item.load`. ``fps`` must be
``None``: ground-truth flow (and label maps) are defined on the stored frames, so frames cannot be
subsampled. When ``short_side`` resizes the frames (:func:`tfvideo.data.video.resize_short_side`),
flows are resampled to the same size with the same interpolation (INTER_AREA when shrinking,
INTER_LINEAR when enlarging) and their vectors scaled (``u * new_w / old_w``,
``v * new_h / old_h``); see :func:`resize_flow_field` for how unknown vectors are kept out of the
average.

Adapters
--------
Each returns ``(items, problems)``, ``problems`` being ``(path, reason)`` pairs for what was
skipped; a missing root or top-level folder raises ``ValueError`` describing the expected layout.

* :func:`middlebury_items` -- ``<root>/other-data/<scene>/frameNN.png`` and
  ``<root>/other-gt-flow/<scene>/flow10.flo`` (flow from ``frame10`` to ``frame11``).
* :func:`sintel_items` -- ``<root>/training/{clean,final}/<scene>/frame_XXXX.png``,
  ``<root>/training/flow/<scene>/frame_XXXX.flo`` (``XXXX`` -> ``XXXX + 1``), optional
  ``<root>/training/invalid/<scene>/frame_XXXX.png``; ``<root>/test/{clean,final}/<scene>/`` (frames
  only).

Example
-------
>>> import numpy as np, tempfile, os, cv2
>>> from tfvideo.data.flo import write_flo
>>> root = tempfile.mkdtemp()
>>> for k in (10, 11):
...     _ = os.makedirs(f"{root}/other-data/Venus", exist_ok=True)
...     _ = cv2.imwrite(f"{root}/other-data/Venus/frame{k}.png", np.full((12, 16, 3), k, np.uint8))
>>> write_flo(f"{root}/other-gt-flow/Venus/flow10.flo", np.ones((12, 16, 2), np.float32))
>>> items, problems = middlebury_items(root)
>>> out = items[0].load(short_side=6)
>>> items[0].video_id, out["frames"].shape, out["flows"].shape, float(out["flows"][0, 0, 0, 0])
('middlebury/Venus', (2, 6, 8, 3), (1, 6, 8, 2), 0.5)
"""

from __future__ import annotations

import dataclasses
import os
import re

import cv2
import numpy as np

from tfvideo.data.flo import read_flo
from tfvideo.data.items import Item, ReadError
from tfvideo.data.video import resize_short_side

__all__ = ["ImageSequenceItem", "FlowSequenceItem", "read_image", "read_mask", "read_frames",
           "resize_flow_field", "middlebury_items", "sintel_items", "SINTEL_FPS"]

#: Frame rate of MPI-Sintel (the Blender film "Sintel" is rendered at 24 frames per second).
SINTEL_FPS = 24.0


# ------------------------------------------------------------------------------------ reading ----
def _read_bytes(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReadError(path, f"{what} does not exist")
    try:
        data = np.fromfile(path, np.uint8)  # cv2.imread would return None without a reason
    except OSError as err:
        raise ReadError(path, f"cannot read {what}: {err.strerror or err}") from err
    if data.size == 0:
        raise ReadError(path, f"{what} is empty (0 bytes)")
    return data


def read_image(path):
    """Read an image file as RGB ``uint8`` ``(H, W, 3)`` (grey -> 3 channels, alpha dropped).

    Raises :class:`ReadError` if the file is missing, empty or not a decodable image.
    """
    img = cv2.imdecode(_read_bytes(path, "image file"), cv2.IMREAD_COLOR)
    if img is None:
        raise ReadError(path, "cannot be decoded as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path, size):
    """Read a mask image as ``bool`` ``(H, W)``: True where any channel is non-zero.

    ``size`` is the expected ``(height, width)``; a missing/undecodable file or another size raises
    :class:`ReadError`.
    """
    img = cv2.imdecode(_read_bytes(path, "mask image"), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ReadError(path, "cannot be decoded as an image")
    if img.shape[:2] != tuple(size):
        raise ReadError(path, f"mask is {img.shape[1]}x{img.shape[0]} (W x H) but the flow is "
                              f"{size[1]}x{size[0]}")
    return img.any(axis=-1) if img.ndim == 3 else img != 0


def read_frames(paths, short_side=None):
    """Read image files into one RGB ``uint8`` ``(T, H, W, 3)`` array.

    Each frame is resized (:func:`~tfvideo.data.video.resize_short_side`) right after decoding and
    copied into a preallocated array, so at most one full-size frame is held at a time.

    Returns:
      ``(frames, (height, width))``, the second being the size of the files before resizing.
      Raises :class:`ReadError` for an unreadable frame or frames of different sizes.
    """
    paths = list(paths)
    if not paths:
        raise ValueError("paths must name at least one frame, got none")
    frames, size = None, None
    for t, path in enumerate(paths):
        img = read_image(path)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise ReadError(path, f"frame is {img.shape[1]}x{img.shape[0]} (W x H) but frame 0 "
                                  f"({paths[0]}) is {size[1]}x{size[0]}")
        if short_side is not None:
            img = resize_short_side(img, short_side)
        if frames is None:
            frames = np.empty((len(paths),) + img.shape, np.uint8)
        frames[t] = img
    return frames, size


def resize_flow_field(flow, valid, size):
    """Resample a flow field and its validity mask to ``size = (height, width)``.

    Vectors are averaged with INTER_AREA when the area shrinks and interpolated with INTER_LINEAR
    otherwise (as frames are by :func:`~tfvideo.data.video.resize_short_side`), then scaled:
    ``u * new_w / old_w``, ``v * new_h / old_h``. Unknown vectors do not enter the average (the
    resampled ``flow * valid`` is divided by the resampled ``valid``). The new mask is the
    nearest-neighbour (``cv2.INTER_NEAREST``) resampling of ``valid``, additionally False where no
    valid vector contributes. Invalid output vectors are 0.

    Returns:
      ``(flow float32 (height, width, 2), valid bool (height, width))``.
    """
    flow = np.asarray(flow, np.float32)
    valid = np.asarray(valid, bool)
    (h0, w0), (h, w) = flow.shape[:2], tuple(int(s) for s in size)
    if (h, w) == (h0, w0):
        return flow, valid
    interp = cv2.INTER_AREA if h * w < h0 * w0 else cv2.INTER_LINEAR
    if valid.all():
        out = cv2.resize(flow, (w, h), interpolation=interp)
        out_valid = np.ones((h, w), bool)
    else:
        weight = valid.astype(np.float32)
        num = cv2.resize(flow * weight[..., None], (w, h), interpolation=interp)
        den = cv2.resize(weight, (w, h), interpolation=interp)
        nearest = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out_valid = (nearest > 0) & (den > 1e-6)
        out = np.where(out_valid[..., None], num / np.maximum(den, 1e-6)[..., None], 0.0)
    out = out * np.array([w / w0, h / h0], np.float32)
    return out.astype(np.float32), out_valid


# -------------------------------------------------------------------------------------- items ----
@dataclasses.dataclass(kw_only=True)
class ImageSequenceItem(Item):
    """A video stored as one image per frame.

    Attributes (keyword-only, besides those of :class:`~tfvideo.data.items.Item`):
      frame_paths: the frame image files, in order.
      source_fps: frame rate of the sequence, 0.0 if unknown (returned as ``fps``).
    """

    frame_paths: list
    source_fps: float = 0.0

    def __post_init__(self):
        self.frame_paths = [os.fspath(p) for p in self.frame_paths]
        if not self.frame_paths:
            raise ValueError(f"frame_paths of {self.video_id!r} must name at least one frame")

    def _read_frames(self, short_side, fps):
        if fps is not None:
            raise ValueError(
                f"fps must be None for {type(self).__name__} (got {fps!r}): its ground truth (flow "
                "between consecutive frames, label maps of given frames) is defined on the stored "
                "frames, so they cannot be subsampled")
        return read_frames(self.frame_paths, short_side)

    def load(self, short_side=None, fps=None):
        """Return ``dict(frames, fps)``; ``fps`` must be None (see the module doc)."""
        frames, _ = self._read_frames(short_side, fps)
        return {"frames": frames, "fps": self.source_fps}


@dataclasses.dataclass(kw_only=True)
class FlowSequenceItem(ImageSequenceItem):
    """Frames plus ground-truth flows.

    Attributes (keyword-only, besides those of :class:`ImageSequenceItem`):
      flow_paths: ``.flo`` files, or None for frames without ground truth (e.g. Sintel's test
        split: ``load`` then returns ``flows=None``).
      flow_frame_index: start frame of each flow (flow ``i`` goes from frame
        ``flow_frame_index[i]`` to the next one); default ``0, 1, ..., len(flow_paths) - 1``.
      mask_paths: optional, one list per flow of images whose non-zero pixels mark that flow
        invalid (e.g. ``[[".../invalid/alley_1/frame_0001.png"], ...]``).
    """

    flow_paths: list | None = None
    flow_frame_index: list | None = None
    mask_paths: list | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.flow_paths is None:
            if self.flow_frame_index is not None or self.mask_paths is not None:
                raise ValueError("flow_frame_index and mask_paths need flow_paths, got None")
            return
        self.flow_paths = [os.fspath(p) for p in self.flow_paths]
        n, t = len(self.flow_paths), len(self.frame_paths)
        index = list(range(n)) if self.flow_frame_index is None else self.flow_frame_index
        self.flow_frame_index = [int(i) for i in index]
        if len(self.flow_frame_index) != n or any(not 0 <= i <= t - 2 for i in index):
            raise ValueError(f"flow_frame_index must hold {n} start frames in [0, {t - 2}] for "
                             f"{t} frames, got {self.flow_frame_index}")
        masks = [[] for _ in range(n)] if self.mask_paths is None else self.mask_paths
        if len(masks) != n:
            raise ValueError(f"mask_paths must hold one list per flow ({n}), got {len(masks)}")
        self.mask_paths = [[os.fspath(p) for p in m] for m in masks]

    def load(self, short_side=None, fps=None):
        """Return ``dict(frames, fps, flows, flow_frame_index, flow_valid)`` (module doc)."""
        frames, (h0, w0) = self._read_frames(short_side, fps)
        if self.flow_paths is None:
            return {"frames": frames, "fps": self.source_fps, "flows": None,
                    "flow_frame_index": None, "flow_valid": None}
        h, w = frames.shape[1:3]
        flows = np.empty((len(self.flow_paths), h, w, 2), np.float32)
        valid = np.empty((len(self.flow_paths), h, w), bool)
        for i, (path, masks) in enumerate(zip(self.flow_paths, self.mask_paths)):
            flow, ok = read_flo(path)
            if flow.shape[:2] != (h0, w0):
                raise ReadError(path, f"flow is {flow.shape[1]}x{flow.shape[0]} (W x H) but the "
                                      f"frames are {w0}x{h0}")
            for mask in masks:
                ok &= ~read_mask(mask, (h0, w0))
            flows[i], valid[i] = resize_flow_field(flow, ok, (h, w))
        return {"frames": frames, "fps": self.source_fps, "flows": flows,
                "flow_frame_index": np.asarray(self.flow_frame_index, np.int64),
                "flow_valid": valid}


# ----------------------------------------------------------------------------------- adapters ----
def _require_dir(path, layout):
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a folder; expected the layout {layout}")


def _subdirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _numbered(folder, pattern):
    """``{number: path}`` of the files in ``folder`` whose name fully matches ``pattern``."""
    out = {}
    for name in sorted(os.listdir(folder)):
        m = re.fullmatch(pattern, name)
        if m:
            out[int(m.group(1))] = os.path.join(folder, name)
    return out


MIDDLEBURY_LAYOUT = ("<root>/other-data/<scene>/frameNN.png (e.g. frame07.png .. frame14.png) and "
                     "<root>/other-gt-flow/<scene>/flow10.flo")


def middlebury_items(root):
    """List the Middlebury scenes that have ground truth (Baker et al., "other" data).

    Frames: the longest run of consecutively numbered ``frameNN.png`` containing ``frame10`` and
    ``frame11`` (``frame07``..``frame14`` for most scenes, only the pair for some); the one flow
    ``flow10.flo`` starts at ``frame10``. Scenes without ``flow10.flo`` (the benchmark's
    evaluation scenes), without ``frame10``/``frame11``, ground truth without frames, and frames not
    consecutive with ``frame10`` are reported in ``problems``.

    Args:
      root: folder holding ``other-data`` and ``other-gt-flow``.

    Returns:
      ``(items, problems)``: :class:`FlowSequenceItem` s (``label=-1``, ``label_text=""``,
      ``video_id="middlebury/<scene>"``) and ``(path, reason)`` pairs.
    """
    root = os.fspath(root)
    data_dir, gt_dir = os.path.join(root, "other-data"), os.path.join(root, "other-gt-flow")
    _require_dir(root, MIDDLEBURY_LAYOUT)
    _require_dir(data_dir, MIDDLEBURY_LAYOUT)
    _require_dir(gt_dir, MIDDLEBURY_LAYOUT)
    items, problems = [], []
    scenes = _subdirs(data_dir)
    for scene in _subdirs(gt_dir):
        if scene not in scenes:
            problems.append((os.path.join(gt_dir, scene),
                             f"ground truth without frames: {data_dir}/{scene} does not exist"))
    for scene in scenes:
        scene_dir = os.path.join(data_dir, scene)
        gt = os.path.join(gt_dir, scene, "flow10.flo")
        frames = _numbered(scene_dir, r"frame(\d+)\.png")
        if not os.path.isfile(gt):
            problems.append((scene_dir, f"no ground-truth flow ({gt} does not exist); skipped"))
            continue
        if 10 not in frames or 11 not in frames:
            problems.append((scene_dir, "frame10.png and frame11.png are both needed (flow10.flo "
                                        "goes from frame10 to frame11); skipped"))
            continue
        lo, hi = 10, 11
        while lo - 1 in frames:
            lo -= 1
        while hi + 1 in frames:
            hi += 1
        for k in sorted(set(frames) - set(range(lo, hi + 1))):
            problems.append((frames[k], f"not consecutive with frame10/frame11 (frames {lo}..{hi} "
                                        "used); frame not used"))
        items.append(FlowSequenceItem(
            video_id=f"middlebury/{scene}", label=-1, label_text="", source=scene_dir,
            frame_paths=[frames[k] for k in range(lo, hi + 1)], flow_paths=[gt],
            flow_frame_index=[10 - lo]))
    return items, problems


SINTEL_LAYOUT = ("<root>/training/{clean,final}/<scene>/frame_0001.png ..., "
                 "<root>/training/flow/<scene>/frame_0001.flo ... (frame_XXXX.flo: frame XXXX -> "
                 "XXXX+1), optional <root>/training/invalid/<scene>/frame_XXXX.png, and "
                 "<root>/test/{clean,final}/<scene>/frame_0001.png ...")


def sintel_items(root, pass_="clean", split="training", masks=("invalid",)):
    """List the MPI-Sintel scenes (Butler et al. 2012), one item per scene.

    A scene's frames must be numbered ``frame_0001`` .. ``frame_N`` without gaps and (training)
    have exactly the flows ``frame_0001.flo`` .. ``frame_<N-1>.flo``; otherwise the scene is
    reported in ``problems`` and skipped.

    Args:
      root: the Sintel folder (holding ``training/`` and/or ``test/``).
      pass_: ``"clean"`` or ``"final"`` (rendering pass).
      split: ``"training"`` (with flows) or ``"test"`` (frames only: ``flows=None``).
      masks: names of mask folders under ``training/`` whose non-zero pixels mark the flow invalid
        (``frame_XXXX.png`` for flow ``XXXX``). A folder is used when ``<root>/training/<name>``
        exists; then every flow of a scene needs its mask (else the scene is a problem; a mask for
        the last frame, which starts no flow, is ignored). Add
        ``"occlusions"`` to also exclude occluded pixels (Sintel's "noc" evaluation).

    Returns:
      ``(items, problems)``: :class:`FlowSequenceItem` s (``video_id="sintel/<pass>/<scene>"``,
      ``label=-1``, ``source_fps=24``) and ``(path, reason)`` pairs.
    """
    if pass_ not in ("clean", "final"):
        raise ValueError(f"pass_ must be 'clean' or 'final', got {pass_!r}")
    if split not in ("training", "test"):
        raise ValueError(f"split must be 'training' or 'test', got {split!r}")
    root = os.fspath(root)
    _require_dir(root, SINTEL_LAYOUT)
    pass_dir = os.path.join(root, split, pass_)
    _require_dir(pass_dir, SINTEL_LAYOUT)
    flow_dir = os.path.join(root, "training", "flow")
    mask_dirs = []
    if split == "training":
        _require_dir(flow_dir, SINTEL_LAYOUT)
        mask_dirs = [d for d in (os.path.join(root, "training", m) for m in masks)
                     if os.path.isdir(d)]
    items, problems = [], []
    for scene in _subdirs(pass_dir):
        scene_dir = os.path.join(pass_dir, scene)
        frames = _numbered(scene_dir, r"frame_(\d+)\.png")
        n = len(frames)
        if not frames or sorted(frames) != list(range(1, n + 1)):
            missing = sorted(set(range(1, max(frames, default=0) + 1)) - set(frames))
            problems.append((scene_dir, f"frames must be frame_0001.png .. frame_N.png without "
                                        f"gaps; missing numbers {missing[:10]}; skipped"))
            continue
        item = dict(video_id=f"sintel/{pass_}/{scene}", label=-1, label_text="", source=scene_dir,
                    frame_paths=[frames[k] for k in range(1, n + 1)], source_fps=SINTEL_FPS)
        if split == "test":
            items.append(FlowSequenceItem(**item))
            continue
        try:
            flows = _sintel_files(os.path.join(flow_dir, scene), r"frame_(\d+)\.flo", n, "flows")
            mask_files = [_sintel_files(os.path.join(d, scene), r"frame_(\d+)\.png", n, "masks",
                                        extra_ok=True) for d in mask_dirs]
        except ReadError as err:
            problems.append((err.path, f"{err.reason}; scene {scene} skipped"))
            continue
        items.append(FlowSequenceItem(**item, flow_paths=flows,
                                      mask_paths=[list(m) for m in zip(*mask_files)] or None))
    return items, problems


def _sintel_files(folder, pattern, num_frames, what, extra_ok=False):
    """The files ``frame_0001 .. frame_<num_frames - 1>`` of ``folder``.

    ReadError if one is missing or (unless ``extra_ok``: a mask for the last frame is harmless)
    another number is present.
    """
    if not os.path.isdir(folder):
        raise ReadError(folder, f"{what} folder does not exist")
    files = _numbered(folder, pattern)
    expected = range(1, num_frames)
    missing = [k for k in expected if k not in files]
    extra = [] if extra_ok else sorted(set(files) - set(expected))
    if missing or extra:
        raise ReadError(folder, f"{num_frames} frames need {what} 1..{num_frames - 1}; missing "
                                f"{missing[:10]}, unexpected {extra[:10]}")
    return [files[k] for k in expected]
