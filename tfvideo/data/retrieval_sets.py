"""Image-retrieval datasets of thesis chapter 2: INRIA Holidays, Oxford5k, Paris6k, and a built-in set.

Every reader returns a :class:`RetrievalSet`: a database of images, a list of queries and, per query,
the **ranking problem** that the mAP code (``tfvideo.retrieval``) scores::

    positives[q]: int64 (P_q,) database indices that count as correct answers
    junk[q]:      int64 (J_q,) database indices removed from the ranking before AP is computed
                  (neither correct nor wrong); every other database image is a negative

``positives[q]`` and ``junk[q]`` are sorted, unique and disjoint; every query has at least one
positive. A query is either a database image (``queries[q] >= 0``: Holidays, Oxford, Paris) or an
image outside the database (``queries[q] == -1``: the built-in set), loaded by
:meth:`RetrievalSet.load_query`. Database images are loaded one at a time by
:meth:`RetrievalSet.load_image` as RGB ``uint8`` ``(H, W, 3)``; an unreadable file raises
:class:`~tfvideo.data.items.ReadError` (the caller skips it, lists it, and can drop it from the
protocol with :meth:`RetrievalSet.without_images`).

Datasets (digest 2.3) and the "standard protocol" of each (digest 2.6 q6 leaves it open; we follow
the evaluation code published with each dataset):

* :func:`holidays` -- INRIA Holidays (1491 images, 500 queries in the real set; not assumed). Files
  ``NNNNSS.jpg``: group ``NNNN``, image ``SS`` in the group; the query of a group is ``SS == "00"``
  ("the first image of each category is the query", digest 2.3). Positives: the other images of the
  group. The query image is in the database and is **junk** for its own query, i.e. excluded from
  its own ranking, as ``holidays_map.py`` of the Holidays package does. No rotation correction
  (digest 2.6 q7: none is mentioned); ``rotate=`` applies one if wanted.
* :func:`oxford5k` / :func:`paris6k` -- Oxford Buildings (5062 images) and Paris (6412 images), 55
  queries each. Ground truth ``<query>_{query,good,ok,junk}.txt`` as read by the datasets'
  ``compute_ap.cpp``: positives = good + ok, junk = junk, every other image negative. **The full
  query image is the query; its ROI is ignored** (digest 2.3) but kept in ``query_boxes``. The query
  image stays in the database (``compute_ap`` ranks every database image and does not treat the
  query specially; the query image is normally listed in its own ``good`` file and so counts as a
  positive).
* :func:`builtin_retrieval` -- an offline benchmark built from the real photographs of
  :mod:`tfvideo.data.photos` (no download): the database holds several transformed views of each
  photo, each query is another view; positives are the database views of the same photo.

Image decoding (all disk readers): OpenCV, ``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION``,
converted to RGB: the pixels as stored in the file, **EXIF orientation ignored** (our choice, the
thesis is silent: the Caffe-era pipelines read pixels with ``skimage.io``/``cv2`` without EXIF
rotation, and the datasets' ground truth boxes refer to the stored pixels).

Example
-------
>>> ds = builtin_retrieval(seed=0, size=(48, 64), variants=2, queries_per_photo=1,
...                        photos=("astronaut", "camera", "coffee"))
>>> ds.num_images, ds.num_queries, ds.load_image(0).shape, ds.load_query(0).dtype
(6, 3, (48, 64, 3), dtype('uint8'))
>>> [p.tolist() for p in ds.positives], [j.tolist() for j in ds.junk]
([[0, 1], [2, 3], [4, 5]], [[], [], []])
>>> ds.queries.tolist(), ds.query_names[0], ds.database[:2]
([-1, -1, -1], 'astronaut/q0', ['astronaut/db0', 'astronaut/db1'])
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Callable, Sequence

import cv2
import numpy as np

from tfvideo.data.flow_sets import _read_bytes
from tfvideo.data.items import ReadError

__all__ = ["RetrievalSet", "read_rgb", "holidays", "oxford5k", "paris6k", "read_landmark_ground_truth",
           "builtin_retrieval", "ViewSpec", "view_spec", "render_view", "BUILTIN_PHOTOS",
           "HOLIDAYS_PROTOCOL", "LANDMARKS_PROTOCOL", "BUILTIN_PROTOCOL", "IMAGE_EXTENSIONS"]

#: File extensions taken as images when a folder is indexed (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg")

HOLIDAYS_PROTOCOL = (
    "INRIA Holidays, as holidays_map.py: one query per group, the image NNNN00.jpg; positives = the "
    "other images of its group; the query image is in the database and is junk for its own query "
    "(excluded from its own ranking); mAP = mean over queries of the AP (area under the "
    "precision-recall curve). No rotation correction unless rotate= is given (digest 2.6 q7).")
LANDMARKS_PROTOCOL = (
    "Oxford/Paris, as compute_ap.cpp: positives = <query>_good.txt + <query>_ok.txt, junk = "
    "<query>_junk.txt (removed from the ranking), every other database image negative; the full "
    "query image is the query, ROIs ignored (digest 2.3; kept in query_boxes); the query image stays "
    "in the database (normally in its own good list, hence a positive).")
BUILTIN_PROTOCOL = (
    "Built-in: queries are views that are not in the database; positives = every database view of "
    "the same photograph; no junk; mAP over queries.")

_GT_DIRS = ("gt", "gt_files_170407")
_HOLIDAYS_NAME = re.compile(r"^(\d+)(\d\d)\.jpe?g$", re.IGNORECASE)
_GT_QUERY = re.compile(r"^(.+)_query\.txt$")


# ----------------------------------------------------------------------------------------------------
# the data structure
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(eq=False)
class RetrievalSet:
    """A retrieval benchmark: database images, queries, and per query ``positives`` / ``junk``.

    Attributes:
      name: dataset name (``"holidays"``, ``"oxford5k"``, ``"paris6k"``, ``"builtin"``).
      database: ``N`` image file paths, or ids (``"<photo>/db<j>"``) when ``images`` holds them.
      queries: int64 ``(Q,)``: the database index of each query image, ``-1`` when the query is not a
        database image (then ``query_images[q]`` gives it).
      query_names: ``Q`` names (Holidays: file name; Oxford/Paris: the ground-truth name, e.g.
        ``"all_souls_1"``; built-in: ``"<photo>/q<j>"``).
      positives: ``Q`` sorted int64 arrays of database indices (never empty).
      junk: ``Q`` sorted int64 arrays of database indices, disjoint from ``positives[q]``.
      protocol: how positives/junk were defined (one of the ``*_PROTOCOL`` texts).
      images: ``None`` (read ``database`` files) or ``N`` in-memory RGB ``uint8`` ``(H, W, 3)`` images.
      query_images: ``None`` or ``Q`` entries used where ``queries[q] == -1``: an RGB ``uint8`` array,
        or a file path.
      query_boxes: ``None`` or float64 ``(Q, 4)`` query regions ``x1, y1, x2, y2`` in pixels of the
        stored image (Oxford/Paris; **ignored** by the thesis pipeline, digest 2.3).
      rotations: ``{database index: clockwise degrees in {90, 180, 270}}`` applied by
        :meth:`load_image` (empty: no correction, digest 2.6 q7).
      problems: ``(path or name, reason)`` for everything left out while reading (never silent).
      description: free text returned by :meth:`describe` after the counts (transformations of the
        built-in set).
    """

    name: str
    database: list
    queries: np.ndarray
    query_names: list
    positives: list
    junk: list
    protocol: str = ""
    images: list | None = None
    query_images: list | None = None
    query_boxes: np.ndarray | None = None
    rotations: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    description: str = ""

    def __post_init__(self):
        self.database = [str(p) for p in self.database]
        self.query_names = [str(n) for n in self.query_names]
        n = len(self.database)
        self.queries = np.asarray(self.queries, np.int64).reshape(-1)
        nq = len(self.queries)
        for arg in ("query_names", "positives", "junk"):
            if len(getattr(self, arg)) != nq:
                raise ValueError(f"{arg} must have one entry per query ({nq}), got "
                                 f"{len(getattr(self, arg))}")
        if nq and (self.queries.min() < -1 or self.queries.max() >= n):
            raise ValueError(f"queries must be database indices in [0, {n}) or -1, got "
                             f"{self.queries.tolist()}")
        self.positives = [_index_array(p, n, f"positives[{q}]") for q, p in enumerate(self.positives)]
        self.junk = [_index_array(j, n, f"junk[{q}]") for q, j in enumerate(self.junk)]
        for q in range(nq):
            if self.positives[q].size == 0:
                raise ValueError(f"positives[{q}] (query {self.query_names[q]!r}) is empty: every query "
                                 "needs at least one positive")
            both = np.intersect1d(self.positives[q], self.junk[q])
            if both.size:
                raise ValueError(f"positives[{q}] and junk[{q}] must be disjoint; both hold "
                                 f"{both.tolist()}")
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"images must have one entry per database image ({n}), got "
                             f"{len(self.images)}")
        if (self.queries < 0).any():
            if self.query_images is None or len(self.query_images) != nq:
                raise ValueError("query_images must have one entry per query when a query is not a "
                                 "database image (queries == -1)")
        if self.query_boxes is not None:
            self.query_boxes = np.asarray(self.query_boxes, np.float64)
            if self.query_boxes.shape != (nq, 4):
                raise ValueError(f"query_boxes must have shape ({nq}, 4), got {self.query_boxes.shape}")
        rotations = {}
        for i, deg in dict(self.rotations).items():
            if not 0 <= int(i) < n:
                raise ValueError(f"rotations: database index {i} out of range [0, {n})")
            rotations[int(i)] = _check_rotation(deg, f"rotations[{i}]")
        self.rotations = {i: d for i, d in rotations.items() if d}
        self.problems = [(str(p), str(r)) for p, r in self.problems]

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        """``N``, the number of database images."""
        return len(self.database)

    @property
    def num_queries(self) -> int:
        """``Q``, the number of queries."""
        return len(self.queries)

    # -- loading -------------------------------------------------------------------------------------
    def load_image(self, i: int) -> np.ndarray:
        """Database image ``i`` as RGB ``uint8`` ``(H, W, 3)`` (rotation fix applied, if any).

        Raises :class:`~tfvideo.data.items.ReadError` for a missing, empty or undecodable file and
        ``IndexError`` for ``i`` outside ``[0, N)``.
        """
        i = int(i)
        if not 0 <= i < self.num_images:
            raise IndexError(f"database index {i} out of range [0, {self.num_images})")
        img = self.images[i] if self.images is not None else read_rgb(self.database[i])
        deg = self.rotations.get(i, 0)
        return _rotate(img, deg) if deg else img

    def load_query(self, q: int) -> np.ndarray:
        """The full image of query ``q`` (digest 2.3: ROIs ignored), RGB ``uint8`` ``(H, W, 3)``."""
        q = int(q)
        if not 0 <= q < self.num_queries:
            raise IndexError(f"query index {q} out of range [0, {self.num_queries})")
        if self.queries[q] >= 0:
            return self.load_image(self.queries[q])
        entry = self.query_images[q]
        return read_rgb(entry) if isinstance(entry, (str, os.PathLike)) else np.asarray(entry)

    # -- editing -------------------------------------------------------------------------------------
    def without_images(self, indices, reason: str = "unreadable") -> "RetrievalSet":
        """A copy without the database images ``indices`` (e.g. files that raised ``ReadError``).

        Database indices are renumbered; the dropped images leave every ``positives``/``junk`` list.
        A query whose own database image is dropped, or that is left without positives, is dropped too.
        Every removal is added to ``problems`` as ``(name, reason)``.
        """
        drop = np.unique(np.asarray(list(indices), np.int64))
        if drop.size and (drop.min() < 0 or drop.max() >= self.num_images):
            raise ValueError(f"indices must be database indices in [0, {self.num_images}), got "
                             f"{drop.tolist()}")
        keep = np.setdiff1d(np.arange(self.num_images), drop)
        new_index = np.full(self.num_images, -1, np.int64)
        new_index[keep] = np.arange(keep.size)
        problems = list(self.problems) + [(self.database[i], f"{reason}: removed from the database")
                                          for i in drop]
        kept_q, pos, junk = [], [], []
        for q in range(self.num_queries):
            own = self.queries[q]
            p = new_index[self.positives[q]]
            p = p[p >= 0]
            if own >= 0 and new_index[own] < 0:
                problems.append((self.query_names[q], f"query dropped: its image is {reason}"))
                continue
            if p.size == 0:
                problems.append((self.query_names[q], f"query dropped: every positive is {reason}"))
                continue
            j = new_index[self.junk[q]]
            kept_q.append(q)
            pos.append(p)
            junk.append(j[j >= 0])
        queries = np.array([new_index[self.queries[q]] if self.queries[q] >= 0 else -1 for q in kept_q],
                           np.int64)
        return dataclasses.replace(
            self, database=[self.database[i] for i in keep], queries=queries,
            query_names=[self.query_names[q] for q in kept_q], positives=pos, junk=junk,
            images=None if self.images is None else [self.images[i] for i in keep],
            query_images=None if self.query_images is None else [self.query_images[q] for q in kept_q],
            query_boxes=None if self.query_boxes is None else self.query_boxes[kept_q],
            rotations={int(new_index[i]): d for i, d in self.rotations.items() if new_index[i] >= 0},
            problems=problems)

    # -- text and pictures ---------------------------------------------------------------------------
    def describe(self) -> str:
        """A few lines: name, counts, the protocol, the description and the problems (first 10)."""
        npos = [p.size for p in self.positives]
        lines = [f"{self.name}: {self.num_images} database images, {self.num_queries} queries "
                 f"({'not ' if (self.queries < 0).all() and self.num_queries else ''}in the database), "
                 f"positives per query {min(npos, default=0)}-{max(npos, default=0)} "
                 f"(mean {np.mean(npos) if npos else 0:.1f}), junk {sum(j.size for j in self.junk)}",
                 f"protocol: {self.protocol}"]
        if self.rotations:
            lines.append(f"rotation fixes: {len(self.rotations)} images")
        if self.description:
            lines.append(self.description)
        if self.problems:
            lines.append(f"problems ({len(self.problems)}):")
            lines += [f"  {p}: {r}" for p, r in self.problems[:10]]
            if len(self.problems) > 10:
                lines.append(f"  ... and {len(self.problems) - 10} more")
        return "\n".join(lines)

    def preview_png(self, path, *, queries: Sequence[int] | None = None, max_positives: int = 6,
                    height: int = 96) -> str:
        """Write a contact sheet PNG: one row per query, the query then its positives (``height``
        pixels high; unreadable images are drawn grey). ``queries`` defaults to the first 8.
        Returns the path."""
        from tfvideo.viz import save_png, side_by_side

        queries = list(range(min(8, self.num_queries))) if queries is None else list(queries)
        if not queries:
            raise ValueError("queries must name at least one query")
        rows = []
        for q in queries:
            imgs = [_thumb(lambda: self.load_query(q), height)]
            label = self.query_names[q]
            room = max(4, imgs[0].shape[1] // 9)  # characters that fit above the thumbnail
            labels = [label if len(label) <= room else label[: room - 2] + ".."]
            for i in self.positives[q][:max_positives]:
                imgs.append(_thumb(lambda i=i: self.load_image(i), height))
                labels.append(f"+ {i}")
            rows.append(side_by_side(imgs, labels=labels))
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        return save_png(path, np.concatenate(rows, axis=0))


def _thumb(load: Callable[[], np.ndarray], height: int) -> np.ndarray:
    try:
        img = load()
    except ReadError:
        return np.full((height, height, 3), 128, np.uint8)
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _index_array(values, n, arg):
    arr = np.asarray(values if values is not None else [], dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{arg} must hold database indices in [0, {n}), got {arr.tolist()[:20]}")
    return np.unique(arr)


def _check_rotation(deg, arg) -> int:
    try:
        d = int(deg)
    except (TypeError, ValueError):
        d = None
    if d is None or d != deg or d % 90:
        raise ValueError(f"{arg} must be a multiple of 90 degrees (clockwise), got {deg!r}")
    return d % 360


def _rotate(img, deg):
    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[deg]
    return cv2.rotate(np.ascontiguousarray(img), code)


def read_rgb(path) -> np.ndarray:
    """Decode an image file with OpenCV to RGB ``uint8`` ``(H, W, 3)``; EXIF orientation ignored.

    Raises :class:`~tfvideo.data.items.ReadError` for a missing, empty or undecodable file.
    """
    img = cv2.imdecode(_read_bytes(path, "image file"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise ReadError(path, "cannot be decoded as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _require_dir(root, what):
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"{what} root {root!r} is not a folder")
    return root


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


# ----------------------------------------------------------------------------------------------------
# INRIA Holidays
# ----------------------------------------------------------------------------------------------------
def holidays(root, *, rotate: dict | None = None) -> RetrievalSet:
    """Read INRIA Holidays from ``root/jpg/*.jpg`` or ``root/*.jpg`` (the first if ``root/jpg`` exists).

    Layout: file names ``<group><SS>.jpg`` (real set: ``NNNNSS``, 4-digit group, 2-digit index; we
    take the last two digits as ``SS`` and all the digits before as the group, case-insensitive
    ``.jpg``/``.jpeg``). Database: every such file, sorted by name. Queries: the ``SS == "00"`` image
    of each group (digest 2.3), in name order; ``positives`` = the other images of the group;
    ``junk`` = the query's own database index (excluded from its own ranking, as ``holidays_map.py``).
    The counts (1491 / 500) are not assumed.

    Left out and listed in ``problems`` (our choices): files whose name does not match (not in the
    database); groups without an ``SS == "00"`` image (no query; their images stay in the database as
    distractors); groups with a query but no other image (no positive: AP undefined; the image stays
    in the database).

    Args:
      root: dataset folder.
      rotate: optional ``{file name or stem: clockwise degrees}`` (multiples of 90) applied by
        ``load_image``, e.g. the "rotated Holidays" fixes used by later work. Default: no correction
        (digest 2.6 q7: the thesis mentions none).

    Raises:
      ValueError: ``root`` is not a folder, holds no Holidays image, or ``rotate`` names an unknown
        file or a bad angle.

    >>> import tempfile, cv2, numpy as np
    >>> root = tempfile.mkdtemp()
    >>> for n in ("100000", "100001", "100100", "100101", "100102"):
    ...     _ = cv2.imwrite(f"{root}/{n}.jpg", np.zeros((8, 8, 3), np.uint8))
    >>> ds = holidays(root)
    >>> ds.query_names, [p.tolist() for p in ds.positives], [j.tolist() for j in ds.junk]
    (['100000.jpg', '100100.jpg'], [[1], [3, 4]], [[0], [2]])
    """
    root = _require_dir(root, "Holidays")
    folder = os.path.join(root, "jpg") if os.path.isdir(os.path.join(root, "jpg")) else root
    names, problems = [], []
    for name in sorted(os.listdir(folder)):
        if not os.path.isfile(os.path.join(folder, name)):
            continue
        if _HOLIDAYS_NAME.match(name):
            names.append(name)
        elif _is_image(name):
            problems.append((os.path.join(folder, name), "name is not <group><NN>.jpg: not used"))
    if not names:
        raise ValueError(f"no Holidays images in {folder!r}: expected <root>/jpg/NNNNSS.jpg or "
                         "<root>/NNNNSS.jpg (NNNN = group, SS = index in the group, 00 = the query)")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(_HOLIDAYS_NAME.match(name).group(1), []).append(i)
    queries, positives, junk = [], [], []
    for group, members in groups.items():
        query = [i for i in members if _HOLIDAYS_NAME.match(names[i]).group(2) == "00"]
        if not query:
            problems.append((group, "group has no query image (<group>00.jpg): no query, its images "
                                    "stay in the database"))
            continue
        others = [i for i in members if i != query[0]]
        if not others:
            problems.append((names[query[0]], "query has no other image in its group (no positive): "
                                              "not a query, the image stays in the database"))
            continue
        queries.append(query[0])
        positives.append(others)
        junk.append([query[0]])

    rotations = {}
    if rotate:
        by_name = {}
        for i, name in enumerate(names):
            by_name[name] = by_name[os.path.splitext(name)[0]] = i
        unknown = [k for k in rotate if os.path.basename(str(k)) not in by_name]
        if unknown:
            raise ValueError(f"rotate names images that are not in the set: {unknown[:20]}")
        rotations = {by_name[os.path.basename(str(k))]: _check_rotation(v, f"rotate[{k!r}]")
                     for k, v in rotate.items()}
    return RetrievalSet(
        name="holidays", database=[os.path.join(folder, n) for n in names], queries=queries,
        query_names=[names[i] for i in queries], positives=positives, junk=junk,
        protocol=HOLIDAYS_PROTOCOL, rotations=rotations, problems=problems)


# ----------------------------------------------------------------------------------------------------
# Oxford5k / Paris6k
# ----------------------------------------------------------------------------------------------------
def read_landmark_ground_truth(gt_dir) -> dict:
    """Parse the Oxford/Paris ground truth folder.

    Returns ``{query name: dict(image=stem, box=(x1, y1, x2, y2), good=[...], ok=[...], junk=[...])}``
    sorted by query name. ``<q>_query.txt`` holds one line ``<image> x1 y1 x2 y2``; the ``oxc1_``
    prefix of Oxford's image names is removed (Paris has none). ``<q>_{good,ok,junk}.txt`` hold one
    image stem per line (blank lines ignored; a missing list file counts as empty).

    Raises :class:`~tfvideo.data.items.ReadError` for a malformed query file and ``ValueError`` when
    the folder has no ``*_query.txt`` file.
    """
    gt_dir = os.fspath(gt_dir)
    names = sorted(m.group(1) for m in map(_GT_QUERY.match, os.listdir(gt_dir)) if m)
    if not names:
        raise ValueError(f"no <query>_query.txt files in {gt_dir!r}")
    gt = {}
    for q in names:
        path = os.path.join(gt_dir, f"{q}_query.txt")
        with open(path, encoding="utf-8") as f:
            fields = f.read().split()
        if len(fields) != 5:
            raise ReadError(path, f"expected one line '<image> x1 y1 x2 y2', got {' '.join(fields)!r}")
        try:
            box = tuple(float(v) for v in fields[1:])
        except ValueError:
            raise ReadError(path, f"box must be 4 numbers, got {fields[1:]}") from None
        image = fields[0][len("oxc1_"):] if fields[0].startswith("oxc1_") else fields[0]
        entry = {"image": _stem(image), "box": box}
        for kind in ("good", "ok", "junk"):
            list_path = os.path.join(gt_dir, f"{q}_{kind}.txt")
            entry[kind] = []
            if os.path.isfile(list_path):
                with open(list_path, encoding="utf-8") as f:
                    entry[kind] = [_stem(line.strip()) for line in f if line.strip()]
        gt[q] = entry
    return gt


def _stem(name):
    return name[: -len(ext)] if (ext := os.path.splitext(name)[1]).lower() in IMAGE_EXTENSIONS else name


def oxford5k(root, *, gt_dir=None, missing: str = "error") -> RetrievalSet:
    r"""Read the Oxford Buildings set (Oxford5k; :func:`paris6k` reads Paris the same way).

    Layout: images are every ``.jpg``/``.jpeg`` under ``root/jpg/`` (or under ``root`` when there is
    no ``jpg`` folder), at any depth, indexed by file stem: Oxford's flat ``jpg/*.jpg`` and Paris's
    ``jpg/paris/<landmark>/*.jpg`` both work; the ground-truth folder is not searched. Ground truth:
    ``gt_dir``, else ``root/gt/`` or ``root/gt_files_170407/``, else ``root`` itself (parsed by
    :func:`read_landmark_ground_truth`; Oxford's ``oxc1_`` prefix is removed). Database: every indexed
    image, sorted by stem (distractors that no ground truth names included). Queries: one per
    ``<q>_query.txt``, sorted by name; the query is the database image it names (full image: its ROI
    is kept in ``query_boxes`` and ignored, digest 2.3). ``positives`` = good + ok, ``junk`` = junk;
    an image listed both as good/ok and junk is junk (``compute_ap.cpp`` tests junk first) and listed
    in ``problems``. The query image is not removed from the database (``compute_ap`` does not
    either; it is normally in the query's good list, so it counts as a positive).

    Ground truth naming images that are not on disk (our choice, ``missing``): ``"error"`` (default)
    raises ``ValueError`` listing them; ``"skip"`` leaves them out of the lists (a query whose image is
    missing, or left without positives, is dropped) and lists each in ``problems``. Files that exist
    but cannot be decoded (e.g. the known corrupt Paris images) are found only by ``load_image``
    (``ReadError``); drop them with :meth:`RetrievalSet.without_images`.

    Raises:
      ValueError: no folder, no images, no ground truth, duplicate stems, bad ``missing``, or (with
        ``missing="error"``) images named by the ground truth but not on disk.

    >>> import tempfile, os, cv2, numpy as np
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(f"{root}/jpg"); os.makedirs(f"{root}/gt")
    >>> for n in ("a_1", "a_2", "a_3", "b_1"):
    ...     _ = cv2.imwrite(f"{root}/jpg/{n}.jpg", np.zeros((8, 8, 3), np.uint8))
    >>> for kind, text in (("query", "oxc1_a_1 1 2 5 6"), ("good", "a_1\na_2"), ("ok", ""),
    ...                    ("junk", "a_3")):
    ...     _ = open(f"{root}/gt/a_{kind}.txt", "w").write(text + "\n")
    >>> ds = oxford5k(root)
    >>> ds.queries.tolist(), ds.positives[0].tolist(), ds.junk[0].tolist(), ds.query_boxes.tolist()
    ([0], [0, 1], [2], [[1.0, 2.0, 5.0, 6.0]])
    """
    return _landmarks("oxford5k", root, gt_dir, missing)


def paris6k(root, *, gt_dir=None, missing: str = "error") -> RetrievalSet:
    """Read the Paris set (Paris6k), exactly as :func:`oxford5k` (images flat or in
    ``paris/<landmark>/`` subfolders; query files name the image without a prefix)."""
    return _landmarks("paris6k", root, gt_dir, missing)


def _landmarks(name, root, gt_dir, missing) -> RetrievalSet:
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    root = _require_dir(root, name)
    if gt_dir is None:
        gt_dir = next((os.path.join(root, d) for d in _GT_DIRS if os.path.isdir(os.path.join(root, d))),
                      root)
    elif not os.path.isdir(gt_dir):
        raise ValueError(f"gt_dir {os.fspath(gt_dir)!r} is not a folder")
    image_dir = os.path.join(root, "jpg") if os.path.isdir(os.path.join(root, "jpg")) else root
    skip_dirs = {os.path.realpath(gt_dir)} if os.path.realpath(gt_dir) != os.path.realpath(root) else set()
    paths: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(image_dir):
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.realpath(os.path.join(dirpath, d)) not in skip_dirs)
        for f in filenames:
            if _is_image(f):
                paths.setdefault(os.path.splitext(f)[0], []).append(os.path.join(dirpath, f))
    if not paths:
        raise ValueError(f"no .jpg images under {image_dir!r}: expected {name} images in <root>/jpg/ "
                         "(flat, or in per-landmark subfolders)")
    dups = {s: p for s, p in paths.items() if len(p) > 1}
    if dups:
        listed = "; ".join(f"{s}: {', '.join(p)}" for s, p in list(dups.items())[:10])
        raise ValueError(f"{len(dups)} image names occur more than once under {image_dir!r}: {listed}")
    try:
        gt = read_landmark_ground_truth(gt_dir)
    except ValueError:
        raise ValueError(f"no {name} ground truth: expected <query>_query.txt, _good.txt, _ok.txt and "
                         f"_junk.txt files in <root>/gt/ or <root>/gt_files_170407/ (looked in "
                         f"{gt_dir!r})") from None
    stems = sorted(paths)
    index = {s: i for i, s in enumerate(stems)}

    absent = sorted({s for e in gt.values() for s in [e["image"], *e["good"], *e["ok"], *e["junk"]]}
                    - set(index))
    if absent and missing == "error":
        raise ValueError(f"{len(absent)} image(s) named by the {name} ground truth are not under "
                         f"{image_dir!r}: {', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''} "
                         "(pass missing='skip' to leave them out)")
    problems = [(s, "named by the ground truth but not on disk: left out") for s in absent]
    queries, qnames, boxes, positives, junk = [], [], [], [], []
    for q, e in gt.items():
        if e["image"] not in index:
            problems.append((q, f"query dropped: its image {e['image']} is not on disk"))
            continue
        junk_set = {index[s] for s in e["junk"] if s in index}
        pos_set = {index[s] for s in e["good"] + e["ok"] if s in index}
        for i in sorted(pos_set & junk_set):
            problems.append((f"{q}: {stems[i]}", "listed as good/ok and junk: junk"))
        pos_set -= junk_set
        if not pos_set:
            problems.append((q, "query dropped: no positive image on disk"))
            continue
        queries.append(index[e["image"]])
        qnames.append(q)
        boxes.append(e["box"])
        positives.append(sorted(pos_set))
        junk.append(sorted(junk_set))
    return RetrievalSet(
        name=name, database=[paths[s][0] for s in stems], queries=queries, query_names=qnames,
        positives=positives, junk=junk, protocol=LANDMARKS_PROTOCOL,
        query_boxes=np.asarray(boxes, np.float64).reshape(-1, 4), problems=problems)


# ----------------------------------------------------------------------------------------------------
# built-in benchmark from scikit-image photographs
# ----------------------------------------------------------------------------------------------------
#: Photos of the built-in set: :data:`tfvideo.data.photos.PHOTOS` without ``cat``, which is the
#: same picture as ``chelsea`` (pixel-identical): keeping both would make one photo's views wrong
#: answers for the other's queries.
BUILTIN_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass",
                  "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
                  "rocket", "text")

VIEW_FRACTION = (0.55, 1.0)  # view size / largest view that fits, log-uniform
CENTRE_JITTER = 0.25  # centre offset <= this fraction of the view's extent (and of the free room)
CHANNEL_GAIN = (0.85, 1.15)  # per channel, uniform
BRIGHTNESS = (0.7, 1.3)  # log-uniform
GAMMA = (0.7, 1.4)  # log-uniform
NOISE_STD = (0.0, 6.0)  # grey levels, uniform
JPEG_QUALITY = (30, 90)  # inclusive, uniform integer

_BUILTIN_DOC = """Built-in views (builtin_retrieval), each drawn independently from
numpy.random.default_rng([seed, photo index, 0 = database / 1 = query, view index]):
  geometry: a similarity warp of the photo: rotation U(-{rot:g}, {rot:g}) deg; size = f x the largest
    rotated {h}x{w} window inside the photo, f log-uniform in [{f0:g}, {f1:g}] (scale changes up to
    {fr:.1f}x between views); centre offset from the photo centre U(-1, 1) x min(free room / 2,
    {cj:g} x window extent) per axis, so views of a photo overlap; area-averaged then bilinear
    (cv2.INTER_AREA, cv2.warpAffine);
  colour: per-channel gain U({g0:g}, {g1:g}), brightness log-U({b0:g}, {b1:g}), gamma log-U({ga0:g},
    {ga1:g}); Gaussian noise std U({n0:g}, {n1:g}); JPEG re-compression, quality U{{{q0}..{q1}}}.
Grey photographs are treated as colour (3 equal channels before the colour changes).
photos ({n}): {photos}"""


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One transformed view of a photo (see :func:`builtin_retrieval` for the distributions).

    Output pixel ``p = (x, y)`` (pixel centres at integers) shows photo pixel
    ``centre + zoom * R(angle) (p - ((W - 1) / 2, (H - 1) / 2))``, ``R(a) = [[cos a, -sin a],
    [sin a, cos a]]`` (``angle > 0``: the content turns counter-clockwise on screen), then
    ``255 * (clip(photo * gain * brightness, 0, 255) / 255) ** gamma`` plus Gaussian noise of std
    ``noise``, rounded to ``uint8`` and JPEG-compressed at ``jpeg_quality`` (``0``: no JPEG).
    """

    photo: str
    size: tuple
    centre: tuple
    zoom: float
    angle: float  # degrees
    gain: tuple = (1.0, 1.0, 1.0)
    brightness: float = 1.0
    gamma: float = 1.0
    noise: float = 0.0
    jpeg_quality: int = 0
    noise_seed: int = 0

    def matrix(self) -> np.ndarray:
        """The ``(2, 3)`` affine map from output pixel ``(x, y, 1)`` to photo pixel coordinates."""
        h, w = self.size
        a = math.radians(self.angle)
        lin = self.zoom * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        origin = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        return np.concatenate([lin, (np.asarray(self.centre) - lin @ origin)[:, None]], axis=1)


def view_spec(photo_name: str, *, seed: int = 0, kind: str = "database", index: int = 0,
              size=(192, 256), max_rotation: float = 30.0, photo_shape=None) -> ViewSpec:
    """Draw the :class:`ViewSpec` of view ``index`` of ``photo_name`` (``kind``: ``"database"`` or
    ``"query"``), deterministic from ``(seed, photo, kind, index)`` alone (more views per photo never
    change the earlier ones). ``photo_shape`` ``(H, W)`` avoids loading the photo."""
    from tfvideo.data import photos

    if kind not in ("database", "query"):
        raise ValueError(f"kind must be 'database' or 'query', got {kind!r}")
    if photo_name not in photos.PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(photos.PHOTOS)}, got {photo_name!r}")
    h, w = _check_size(size)
    ph, pw = photo_shape if photo_shape is not None else photos.photo(photo_name).shape[:2]
    rng = np.random.default_rng([int(seed), photos.PHOTOS.index(photo_name), kind == "query", int(index)])
    angle = float(rng.uniform(-max_rotation, max_rotation))
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    box_w, box_h = w * c + h * s, w * s + h * c  # rotated window extent per unit zoom
    zoom = min(pw / box_w, ph / box_h) * _log_uniform(rng, VIEW_FRACTION)
    centre = []
    for extent, length in ((zoom * box_w, pw), (zoom * box_h, ph)):
        room = max(length - extent, 0.0)
        centre.append((length - 1) / 2.0 + rng.uniform(-1, 1) * min(room / 2, CENTRE_JITTER * extent))
    return ViewSpec(
        photo=photo_name, size=(h, w), centre=tuple(centre), zoom=float(zoom), angle=angle,
        gain=tuple(float(g) for g in rng.uniform(*CHANNEL_GAIN, size=3)),
        brightness=_log_uniform(rng, BRIGHTNESS), gamma=_log_uniform(rng, GAMMA),
        noise=float(rng.uniform(*NOISE_STD)),
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
        noise_seed=int(rng.integers(2**31)))


def _log_uniform(rng, bounds):
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _check_size(size):
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h < 16 or w < 16 or (h, w) != tuple(size):
        raise ValueError(f"size must be two integers >= 16 (height, width), got {size!r}")
    return h, w


def render_view(spec: ViewSpec, photo: np.ndarray | None = None) -> np.ndarray:
    """Render ``spec`` as RGB ``uint8`` ``(H, W, 3)`` (``photo``: float RGB ``(h, w, 3)`` in [0, 255],
    default :func:`tfvideo.data.photos.photo` of ``spec.photo``).

    Anti-aliasing: when ``zoom > 1`` the photo is first area-averaged (``cv2.INTER_AREA``) by the zoom;
    the warp itself is bilinear (borders reflected; the drawn windows lie inside the photo).
    """
    from tfvideo.data import photos

    src = np.asarray(photos.photo(spec.photo) if photo is None else photo, np.float32)
    h, w = spec.size
    m = spec.matrix()
    if spec.zoom > 1:
        ph, pw = src.shape[:2]
        nw, nh = max(1, round(pw / spec.zoom)), max(1, round(ph / spec.zoom))
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = pw / nw, ph / nh  # photo px per small px; x_small = (x + 0.5) / sx - 0.5
        m = np.diag([1 / sx, 1 / sy]) @ m + np.array([[0, 0, 0.5 / sx - 0.5], [0, 0, 0.5 / sy - 0.5]])
    out = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101)
    out = np.clip(out * (np.asarray(spec.gain, np.float32) * spec.brightness), 0, 255)
    if spec.gamma != 1.0:
        out = 255.0 * (out / 255.0) ** spec.gamma
    if spec.noise > 0:
        out = out + np.random.default_rng(spec.noise_seed).normal(0, spec.noise, out.shape)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if spec.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(spec.jpeg_quality)])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def builtin_retrieval(seed: int = 0, *, size=(192, 256), variants: int = 4, queries_per_photo: int = 2,
                      photos: Sequence[str] = BUILTIN_PHOTOS, max_rotation: float = 30.0) -> RetrievalSet:
    """An offline retrieval benchmark from the real photographs that ship with scikit-image.

    For photo ``k`` (of ``P = len(photos)``) the database holds ``variants`` views (indices
    ``k * variants + j``, ids ``"<photo>/db<j>"``) and there are ``queries_per_photo`` query views
    (``"<photo>/q<j>"``, not in the database, ``queries == -1``); a query's positives are exactly the
    ``variants`` database views of its photo, junk is empty. Every view is a :class:`ViewSpec` drawn by
    :func:`view_spec` and rendered by :func:`render_view` (deterministic from ``seed``):

    * geometry: rotation ``U(-max_rotation, max_rotation)`` degrees; the view window (aspect of
      ``size``) is ``f`` times the largest rotated window that fits in the photo, ``f`` log-uniform in
      ``[0.55, 1]`` (so scale changes up to 1.8x between two views); the centre is offset from the
      photo centre by at most a quarter of the window (and of the free room), so views of one photo
      overlap;
    * photometric: per-channel gain ``U(0.85, 1.15)``, brightness log-uniform ``[0.7, 1.3]``, gamma
      log-uniform ``[0.7, 1.4]``, Gaussian noise std ``U(0, 6)``, JPEG re-compression at quality
      ``U{30..90}``.

    Grey photographs (``camera``, ``brick``, ...) are treated like colour ones (3 equal channels, then
    the same changes). Default photos: :data:`BUILTIN_PHOTOS`, the 17 of
    :data:`tfvideo.data.photos.PHOTOS` without ``cat`` (pixel-identical to ``chelsea``), hence
    16 x 4 = 64 database images and 32 queries: a VGG-16 forward pass (convolutional part) of all 96
    at 224 x 224 took 41 s on our 2 CPU cores while they were shared with other jobs. Images are
    held in memory (``images``, ``query_images``): about 14 MB at the default ``size``.

    Args:
      seed: the seed; the same seed gives the same pixels (same OpenCV build), another seed other views.
      size: ``(height, width)`` of every view, each >= 16.
      variants: database views per photo (>= 1).
      queries_per_photo: query views per photo (>= 1).
      photos: names from :data:`tfvideo.data.photos.PHOTOS`, distinct pictures (``cat`` together with
        ``chelsea`` is refused).
      max_rotation: largest rotation in degrees, in ``[0, 90]``.

    Raises:
      ValueError: for a bad argument (naming it).

    >>> ds = builtin_retrieval(size=(32, 48), variants=1, queries_per_photo=1, photos=("moon", "text"))
    >>> ds.num_images, ds.num_queries, [p.tolist() for p in ds.positives]
    (2, 2, [[0], [1]])
    """
    from tfvideo.data import photos as photo_lib

    h, w = _check_size(size)
    for arg, value in (("variants", variants), ("queries_per_photo", queries_per_photo)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
    if not 0 <= float(max_rotation) <= 90:
        raise ValueError(f"max_rotation must be in [0, 90] degrees, got {max_rotation!r}")
    if isinstance(photos, str):
        photos = (photos,)
    photos = tuple(photos)
    if not photos:
        raise ValueError("photos must name at least one photo")
    bad = [p for p in photos if p not in photo_lib.PHOTOS]
    if bad:
        raise ValueError(f"photos must be names from {', '.join(photo_lib.PHOTOS)}; got {bad}")
    if len(set(photos)) != len(photos):
        raise ValueError(f"photos must be distinct, got {list(photos)}")
    for a in range(len(photos)):
        for b in range(a + 1, len(photos)):
            pa, pb = photo_lib.photo(photos[a]), photo_lib.photo(photos[b])
            if pa.shape == pb.shape and np.array_equal(pa, pb):
                raise ValueError(f"photos {photos[a]!r} and {photos[b]!r} are the same picture: keep one")

    database, images, qnames, qimages, positives = [], [], [], [], []
    for k, name in enumerate(photos):
        src = photo_lib.photo(name)
        for j in range(variants):
            spec = view_spec(name, seed=seed, kind="database", index=j, size=(h, w),
                             max_rotation=max_rotation, photo_shape=src.shape[:2])
            database.append(f"{name}/db{j}")
            images.append(render_view(spec, src))
        for j in range(queries_per_photo):
            spec = view_spec(name, seed=seed, kind="query", index=j, size=(h, w),
                             max_rotation=max_rotation, photo_shape=src.shape[:2])
            qnames.append(f"{name}/q{j}")
            qimages.append(render_view(spec, src))
            positives.append(np.arange(k * variants, (k + 1) * variants))
    description = _BUILTIN_DOC.format(
        rot=float(max_rotation), h=h, w=w, f0=VIEW_FRACTION[0], f1=VIEW_FRACTION[1],
        fr=VIEW_FRACTION[1] / VIEW_FRACTION[0], cj=CENTRE_JITTER, g0=CHANNEL_GAIN[0], g1=CHANNEL_GAIN[1],
        b0=BRIGHTNESS[0], b1=BRIGHTNESS[1], ga0=GAMMA[0], ga1=GAMMA[1], n0=NOISE_STD[0], n1=NOISE_STD[1],
        q0=JPEG_QUALITY[0], q1=JPEG_QUALITY[1], n=len(photos), photos=" ".join(photos))
    description = f"seed {seed}, {variants} database views + {queries_per_photo} queries per photo\n" + \
        description
    return RetrievalSet(
        name="builtin", database=database, queries=np.full(len(qnames), -1, np.int64), query_names=qnames,
        positives=positives, junk=[np.zeros(0, np.int64)] * len(qnames), protocol=BUILTIN_PROTOCOL,
        images=images, query_images=qimages, description=description)
