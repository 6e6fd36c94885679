"""Write :class:`~tfvideo.data.items.Item` s to balanced TFRecord shards with a manifest.

Layout of an output folder::

    <out>/train-00000-of-00004.tfrecord ... <out>/test-00001-of-00002.tfrecord
    <out>/manifest.json

* Items are sorted by (label, id) and dealt round-robin, so shard sizes differ by at most one and
  every shard holds every class.
* Each shard is written through :func:`tfvideo.files.atomic_path` (a hidden temporary file
  ``.<name>.<random>.tmp.tfrecord`` in the same folder, renamed when complete): a crash never leaves a
  file with a shard's name that is not a whole shard. Stale temporary files (of a killed run) are
  removed on the next run.
* ``manifest.json`` is rewritten (atomically) after every finished shard. It records the dataset,
  schema and tool versions, creation time, the settings (``short_side``, ``fps``, ...), and per split
  the shards (number of videos and frames, a hash of the ids they hold), counts per class and the
  skipped files with their reasons.
* Re-running skips the shards that the manifest records with the same ids and settings; ``overwrite``
  rewrites everything. Settings that differ from those recorded are an error unless ``overwrite``.
* Records are serialised deterministically (sorted map keys): the same items give byte-identical
  shards, whatever the number of workers.
* Decoding runs in ``workers`` processes (``spawn``: safe with TensorFlow loaded); the main process
  writes records in order and shows a progress bar with ETA.

Example
-------
>>> from tfvideo.data.shards import write_shards                                 # doctest: +SKIP
>>> summary = write_shards(items, "tfrecords/mine", split="train", num_shards=4)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import math
import multiprocessing
import os

import tensorflow as tf
from tqdm.auto import tqdm

import tfvideo
from tfvideo.data import schema
from tfvideo.data.items import Item, ReadError
from tfvideo.files import atomic_path, atomic_write_json

__all__ = ["write_shards", "make_pool", "shard_name", "read_manifest", "shard_files", "MANIFEST"]

MANIFEST = "manifest.json"
VIDEOS_PER_SHARD = 64  # default shard size: ~100 MB of 256-px JPEG frames for HMDB51-length videos


def shard_name(split, index, num_shards):
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def shard_files(out_dir, split):
    """Sorted paths of the finished shards of ``split`` in ``out_dir`` (temporary files excluded)."""
    return sorted(glob.glob(os.path.join(glob.escape(os.fspath(out_dir)),
                                         f"{split}-?????-of-?????.tfrecord")))


def read_manifest(out_dir):
    """The manifest of ``out_dir`` as a dict (``{}`` if there is none)."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _ids_hash(items):
    return hashlib.sha1("\n".join(i.video_id for i in items).encode()).hexdigest()


def _encode(args):
    """Worker: load one item and serialise it; never raises for a bad file (returns the reason)."""
    item, short_side, fps, jpeg_quality = args
    try:
        fields = item.load(short_side=short_side, fps=fps)
        example = schema.make_sequence_example(
            label=item.label, label_text=item.label_text, video_id=item.video_id,
            jpeg_quality=jpeg_quality, **fields)
        return True, example.SerializeToString(deterministic=True), len(fields["frames"])
    except ReadError as err:
        return False, err.reason, 0
    except Exception as err:  # a file that breaks a decoder in an unexpected way: skip, list, go on
        return False, f"unexpected {type(err).__name__}: {err}", 0


def make_pool(workers):
    """A ``spawn`` process pool for :func:`write_shards` (``None`` for ``workers <= 1``).

    Spawned workers import TensorFlow once (a few seconds); share one pool across splits.
    """
    if workers <= 1:
        return None
    saved = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the workers: quiet imports
    try:
        return multiprocessing.get_context("spawn").Pool(workers)
    finally:
        if saved is None:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]


def write_shards(items, out_dir, *, split, num_shards=None, dataset="", settings=None,
                 short_side=None, fps=None, jpeg_quality=90, workers=1, overwrite=False,
                 problems=(), progress=True, pool=None):
    """Write ``items`` to ``out_dir/{split}-{i:05d}-of-{n:05d}.tfrecord`` and update the manifest.

    Args:
      items: list of :class:`~tfvideo.data.items.Item` (unique ``video_id`` s).
      out_dir: output folder (created).
      split: split name used in file names and the manifest (``train``, ``test``, ...).
      num_shards: default ``ceil(len(items) / 64)``; at most ``len(items)``.
      dataset: dataset name for the manifest.
      settings: extra settings that must match on re-runs (e.g. ``{"split": 1}``).
      short_side, fps, jpeg_quality: passed to ``item.load`` and the JPEG encoder.
      workers: decoding processes (1 = in this process).
      overwrite: rewrite finished shards too.
      problems: ``(path, reason)`` pairs found while listing the dataset (missing files, ...); they
        are recorded as skipped with the files that fail to decode.
      pool: a pool from :func:`make_pool` to use instead of starting one.

    Returns:
      dict with ``written`` / ``reused`` shard counts, ``videos``, ``frames``, ``skipped`` (list of
      ``{"path", "reason"}``) and ``shards`` (paths). The manifest holds the same.
    """
    items = list(items)
    if not all(isinstance(i, Item) for i in items):
        raise TypeError("items must be tfvideo.data.items.Item instances")
    ids = [i.video_id for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"items must have unique video_id, duplicated: {dup}")
    if not items:
        raise ValueError(f"no items to write for split {split!r}")
    if num_shards is None:
        num_shards = math.ceil(len(items) / VIDEOS_PER_SHARD)
    if int(num_shards) < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    num_shards = min(int(num_shards), len(items))
    workers = max(1, int(workers))
    os.makedirs(out_dir, exist_ok=True)

    settings = dict(settings or {}, short_side=short_side, fps=fps, jpeg_quality=jpeg_quality,
                    num_shards=num_shards)
    manifest = read_manifest(out_dir)
    old = manifest.get("splits", {}).get(split)
    if old is not None and old.get("settings") != settings and not overwrite:
        before = old.get("settings", {})
        diff = ", ".join(f"{k}={before.get(k)!r} (now {settings.get(k)!r})"
                         for k in sorted(set(before) | set(settings))
                         if before.get(k) != settings.get(k))
        raise ValueError(f"{out_dir} already holds {split!r} shards made with {diff}; pass "
                         "overwrite=True (--overwrite) or choose another output folder")
    if overwrite or old is None or old.get("settings") != settings:
        old = {"shards": {}}
    stale = [f".{split}-*.tfrecord.*.tmp.tfrecord",  # atomic_path's temporary shards
             f"{split}-*.tfrecord.tmp-*"]  # the temporary shard names of earlier versions
    for pattern in stale:
        for path in glob.glob(os.path.join(glob.escape(out_dir), pattern)):
            os.remove(path)  # left by a killed run
    for path in shard_files(out_dir, split):  # shards of another sharding of this split
        if not os.path.basename(path).endswith(f"-of-{num_shards:05d}.tfrecord"):
            os.remove(path)

    items.sort(key=lambda i: (i.label, i.video_id))
    assignment = [items[k::num_shards] for k in range(num_shards)]
    record = {
        "settings": settings, "num_shards": num_shards, "shards": {},
        "skipped": [{"path": str(p), "reason": str(r)} for p, r in problems],
    }
    if manifest.get("dataset") not in (None, "", dataset) and not overwrite:
        raise ValueError(f"{out_dir} holds dataset {manifest['dataset']!r}, not {dataset!r}")
    manifest.update(dataset=dataset, schema_version=schema.SCHEMA_VERSION,
                    tool=f"tfvideo {tfvideo.__version__}")
    manifest.setdefault("splits", {})
    todo, reused = [], 0
    for k, shard_items in enumerate(assignment):
        name = shard_name(split, k, num_shards)
        prev = old["shards"].get(name)
        if (prev is not None and prev.get("ids_sha1") == _ids_hash(shard_items)
                and os.path.exists(os.path.join(out_dir, name))):
            record["shards"][name] = prev
            record["skipped"].extend(prev.get("skipped", []))
            reused += 1
        else:
            todo.append((k, name, shard_items))

    def save():
        written = list(record["shards"].values())
        counts = {}
        for s in written:
            for label, n in s["counts"].items():
                counts[label] = counts.get(label, 0) + n
        record.update(num_videos=sum(s["videos"] for s in written),
                      num_frames=sum(s["frames"] for s in written),
                      counts_per_class=dict(sorted(counts.items())),
                      complete=len(written) == num_shards,
                      created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                          timespec="seconds"))
        manifest["splits"][split] = record
        atomic_write_json(os.path.join(out_dir, MANIFEST), manifest, sort_keys=True)

    jobs = [(item, short_side, fps, jpeg_quality) for _, _, its in todo for item in its]
    bar = tqdm(total=len(jobs), desc=f"{dataset or 'data'} {split}", unit="video",
               disable=not progress, dynamic_ncols=True)
    own_pool = pool is None and workers > 1 and len(jobs) > 1
    if own_pool:
        pool = make_pool(workers)
    results = map(_encode, jobs) if pool is None else pool.imap(_encode, jobs, chunksize=1)
    try:
        for k, name, shard_items in todo:
            entry = {"videos": 0, "frames": 0, "counts": {}, "skipped": [],
                     "ids_sha1": _ids_hash(shard_items)}
            # a hidden temporary file, renamed to the shard's name when complete (removed on any
            # exception, KeyboardInterrupt included); a shard of only bad items is a valid empty file
            with atomic_path(os.path.join(out_dir, name), allow_empty=True) as tmp, \
                    tf.io.TFRecordWriter(tmp) as writer:
                for item in shard_items:
                    ok, payload, frames = next(results)
                    bar.update(1)
                    if not ok:
                        entry["skipped"].append({"path": item.source, "reason": payload})
                        continue
                    writer.write(payload)
                    entry["videos"] += 1
                    entry["frames"] += frames
                    key = item.label_text or str(item.label)
                    entry["counts"][key] = entry["counts"].get(key, 0) + 1
            record["shards"][name] = entry
            record["skipped"].extend(entry["skipped"])
            save()
    finally:
        bar.close()
        if own_pool:
            pool.terminate()
            pool.join()
    if reused and not todo:
        save()
    return {
        "split": split, "written": len(todo), "reused": reused, "videos": record["num_videos"],
        "frames": record["num_frames"], "skipped": record["skipped"],
        "shards": [os.path.join(out_dir, n) for n in sorted(record["shards"])],
    }
