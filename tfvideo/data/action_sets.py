"""Action-recognition datasets on disk -> :class:`VideoItem` lists per split.

Every adapter returns a :class:`Listing`: ``splits`` (``{"train": [...], "test": [...]}``),
``classes`` (label index -> name) and ``problems`` (``(path, reason)`` pairs: videos a split file names
that are missing, lines that cannot be parsed, labels out of range). Problems are skipped and
listed by the shard writer, never dropped silently. A missing root or split folder is a
``ValueError`` that names the layout expected.

HMDB51 (Kuehne et al. 2011)::

    <root>/<class>/<video>.avi
    <root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   # "<video>.avi 0|1|2"

``1`` = train, ``2`` = test, ``0`` = unused in that split. Labels are the class names in sorted order
(51 classes for the real set; any number is accepted, so the built-in ``motion`` set uses the same
code).

UCF101 (Soomro et al. 2012)::

    <root>/<Class>/v_<Class>_gXX_cYY.avi
    <root>/ucfTrainTestlist/classInd.txt            # "1 ApplyEyeMakeup" (1-based)
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt   # "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt    # "ApplyEyeMakeup/v_..._g01_c01.avi" (no label)

Labels are ``classInd - 1``; test lists carry no label, so the class comes from the folder. A
train-list label that disagrees with the folder is a problem. File names are matched
case-insensitively inside the class folder when the exact name is missing (the official lists
spell ``HandStandPushups`` inside ``HandstandPushups/``).

Folder (any videos)::

    <root>/<class>/*.{avi,mp4,mkv,mov,webm,mpg,mpeg,m4v}                    # one split "train"
    <root>/{train,val,test}/<class>/*.avi                                    # or one split per folder

With a single tree, ``test_fraction`` moves a deterministic fraction of each class (by a hash of
the file name) to ``test``.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os

from tfvideo.data.items import Item
from tfvideo.data.video import read_video

__all__ = ["Listing", "VideoItem", "hmdb51", "ucf101", "folder", "VIDEO_EXTENSIONS",
           "HMDB51_SPLIT_DIR", "UCF101_LIST_DIR"]

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
HMDB51_SPLIT_DIR = "testTrainMulti_7030_splits"
UCF101_LIST_DIR = "ucfTrainTestlist"


@dataclasses.dataclass
class VideoItem(Item):
    """A video file decoded with OpenCV (:func:`tfvideo.data.video.read_video`); what every adapter
    of this module lists."""

    def load(self, short_side=None, fps=None):
        video = read_video(self.source, short_side=short_side, fps=fps)
        return {"frames": video.frames, "fps": video.fps}


@dataclasses.dataclass
class Listing:
    splits: dict  # split name -> list of VideoItem
    classes: list  # label index -> class name
    problems: list  # (path, reason)


def _check_split(split):
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")


def _require_dir(path, layout):
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a folder; expected the layout\n{layout}")


def _read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


def hmdb51(root, split=1):
    """List HMDB51 (or anything in its layout) for split 1, 2 or 3. See the module doc."""
    _check_split(split)
    root = os.fspath(root)
    layout = f"  {root}/<class>/<video>.avi\n  {root}/{HMDB51_SPLIT_DIR}/<class>_test_split{split}.txt"
    _require_dir(root, layout)
    _require_dir(os.path.join(root, HMDB51_SPLIT_DIR), layout)
    suffix = f"_test_split{split}.txt"
    files = sorted(glob.glob(os.path.join(glob.escape(root), HMDB51_SPLIT_DIR, f"*{suffix}")))
    if not files:
        raise ValueError(f"no split files *{suffix} in {os.path.join(root, HMDB51_SPLIT_DIR)}; "
                         f"expected the layout\n{layout}")
    classes = sorted(os.path.basename(f)[:-len(suffix)] for f in files)
    splits, problems = {"train": [], "test": []}, []
    for label, name in enumerate(classes):
        list_file = os.path.join(root, HMDB51_SPLIT_DIR, name + suffix)
        for lineno, line in _read_lines(list_file):
            parts = line.split()
            where = f"{list_file}:{lineno}"
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                problems.append((where, f"expected '<video>.avi 0|1|2', got {line!r}"))
                continue
            if parts[1] == "0":
                continue
            path = os.path.join(root, name, parts[0])
            if not os.path.isfile(path):
                problems.append((path, f"listed in {os.path.basename(list_file)} but missing"))
                continue
            subset = "train" if parts[1] == "1" else "test"
            splits[subset].append(VideoItem(f"{name}/{os.path.splitext(parts[0])[0]}", label,
                                            name, path))
    return Listing(splits, classes, problems)


def _find_case_insensitive(folder, name):
    exact = os.path.join(folder, name)
    if os.path.isfile(exact) or not os.path.isdir(folder):
        return exact
    for entry in os.listdir(folder):
        if entry.lower() == name.lower():
            return os.path.join(folder, entry)
    return exact


def ucf101(root, split=1):
    """List UCF101 (or anything in its layout) for split 1, 2 or 3. See the module doc."""
    _check_split(split)
    root = os.fspath(root)
    lists = os.path.join(root, UCF101_LIST_DIR)
    layout = (f"  {root}/<Class>/v_<Class>_gXX_cYY.avi\n  {lists}/classInd.txt\n"
              f"  {lists}/trainlist0{split}.txt, testlist0{split}.txt")
    _require_dir(root, layout)
    _require_dir(lists, layout)
    for name in ("classInd.txt", f"trainlist0{split}.txt", f"testlist0{split}.txt"):
        if not os.path.isfile(os.path.join(lists, name)):
            raise ValueError(f"{os.path.join(lists, name)} is missing; expected the layout\n{layout}")
    index = {}
    for lineno, line in _read_lines(os.path.join(lists, "classInd.txt")):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{lists}/classInd.txt:{lineno}: expected '<1-based index> <Class>', "
                             f"got {line!r}")
        index[parts[1]] = int(parts[0]) - 1
    classes = [None] * len(index)
    for name, k in index.items():
        if not 0 <= k < len(index) or classes[k] is not None:
            raise ValueError(f"{lists}/classInd.txt: indices must be 1..{len(index)} without "
                             f"repeats; {name!r} has {k + 1}")
        classes[k] = name
    by_lower = {name.lower(): name for name in classes}
    splits, problems = {"train": [], "test": []}, []
    for subset in ("train", "test"):
        list_file = os.path.join(lists, f"{subset}list0{split}.txt")
        for lineno, line in _read_lines(list_file):
            parts = line.split()
            where = f"{list_file}:{lineno}"
            rel = parts[0].replace("\\", "/") if parts else ""
            folder = rel.split("/")[0] if "/" in rel else ""
            name = by_lower.get(folder.lower())
            if name is None:
                problems.append((where, f"class folder {folder!r} is not in classInd.txt"))
                continue
            label = index[name]
            if subset == "train":
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    problems.append((where, f"expected '<Class>/<video>.avi <label>', got {line!r}"))
                    continue
                given = int(parts[1]) - 1
                if not 0 <= given < len(classes):
                    problems.append((where, f"label {given + 1} out of range 1..{len(classes)}"))
                    continue
                if given != label:
                    problems.append((where, f"label {given + 1} ({classes[given]}) disagrees with "
                                            f"folder {folder} ({label + 1})"))
                    continue
            path = _find_case_insensitive(os.path.join(root, name), rel.split("/", 1)[1])
            if not os.path.isfile(path):
                problems.append((path, f"listed in {os.path.basename(list_file)} but missing"))
                continue
            stem = os.path.splitext(os.path.basename(path))[0]
            splits[subset].append(VideoItem(f"{name}/{stem}", label, name, path))
    return Listing(splits, classes, problems)


def _videos_in(folder):
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), "*"))
                  if os.path.splitext(p)[1].lower() in VIDEO_EXTENSIONS)


def _class_tree(root):
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                  and not d.startswith("."))


def folder(root, test_fraction=0.0):
    """List a folder of class subfolders (or ``train``/``val``/``test`` trees of them)."""
    root = os.fspath(root)
    layout = f"  {root}/<class>/<video>.avi   or   {root}/{{train,val,test}}/<class>/<video>.avi"
    _require_dir(root, layout)
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    split_dirs = [s for s in ("train", "val", "test") if os.path.isdir(os.path.join(root, s))]
    trees = {s: os.path.join(root, s) for s in split_dirs} or {"train": root}
    classes = sorted({c for tree in trees.values() for c in _class_tree(tree)})
    if not classes:
        raise ValueError(f"no class subfolders found; expected the layout\n{layout}")
    splits, problems = {s: [] for s in trees}, []
    for subset, tree in trees.items():
        for label, name in enumerate(classes):
            for path in _videos_in(os.path.join(tree, name)):
                stem = os.path.splitext(os.path.basename(path))[0]
                item = VideoItem(f"{name}/{stem}", label, name, path)
                target = subset
                if len(trees) == 1 and test_fraction > 0:
                    h = int(hashlib.sha1(f"{name}/{stem}".encode()).hexdigest()[:8], 16) / 2**32
                    target = "test" if h < test_fraction else "train"
                splits.setdefault(target, []).append(item)
    return Listing({k: v for k, v in splits.items() if v}, classes, problems)
