"""Prepare TFRecord shards from a dataset on disk.

Usage::

    python -m tfvideo.data.prepare DATASET --data-dir SRC --out tfrecords/DATASET \\
        [--split N] [--shards K] [--short-side S] [--fps F] [--workers W] [--overwrite]

``DATASET`` is one of ``hmdb51``, ``ucf101``, ``folder`` (one subfolder per class), ``motion`` (the
built-in camera-motion set, generated into ``--data-dir``, default ``<out>/videos``, in HMDB51's
layout and then read by the HMDB51 code), the dense-target sets ``middlebury``, ``sintel``,
``cityscapes``, ``gatech``, and ``objects`` (the built-in labelled set with exact flow,
:mod:`tfvideo.data.objects`, generated the same way in the GATECH-style layout and read by the
GATECH code with its flows), and the detection sets ``imagenet_vid`` (ILSVRC2015 VID, splits
train/val, optionally restricted by ``--image-set SPLIT=FILE``) and ``objects_detection`` (the same
built-in clips with the box of every visible object instead of labels and flows;
:mod:`tfvideo.data.detection_sets`). Writes ``<out>/{split}-XXXXX-of-YYYYY.tfrecord`` and
``<out>/manifest.json`` (see :mod:`tfvideo.data.shards`). Unreadable videos are skipped and listed
at the end and in the manifest. The exit code is 1 if no video was written, 2 for bad arguments or
layouts.

Example (the built-in set, about half a minute on 2 cores)::

    python -m tfvideo.data.prepare motion --out tfrecords/motion --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys

from tfvideo.data import action_sets
from tfvideo.data.shards import MANIFEST, VIDEOS_PER_SHARD, make_pool, read_manifest, write_shards

__all__ = ["DATASETS", "check_reusable", "list_dataset", "prepare", "main", "wait_until_prepared"]

DATASETS = ("hmdb51", "ucf101", "folder", "motion", "middlebury", "sintel", "cityscapes", "gatech",
            "objects", "imagenet_vid", "objects_detection")
#: The built-in sets: generated into ``data_dir`` (default ``<out>/videos``) before listing.
BUILTIN = ("motion", "objects", "objects_detection")
#: Dense-target sets: their targets belong to consecutive stored frames (no ``fps`` subsampling).
DENSE = ("middlebury", "sintel", "cityscapes", "gatech", "objects", "imagenet_vid",
         "objects_detection")


def _dense_listing(dataset, root, sintel_pass, image_sets=None):
    """Listing for the flow / segmentation sets (one adapter call per split folder present)."""
    calls, classes = {}, []
    if dataset == "middlebury":
        from tfvideo.data.flow_sets import middlebury_items
        calls = {"train": lambda: middlebury_items(root)}
    elif dataset == "sintel":
        from tfvideo.data.flow_sets import sintel_items
        calls = {"train": lambda: sintel_items(root, pass_=sintel_pass)}
    elif dataset == "cityscapes":
        from tfvideo.data.segmentation_sets import cityscapes_items
        calls = {s: (lambda s=s: cityscapes_items(root, split=s)) for s in ("train", "val")
                 if os.path.isdir(os.path.join(root, "leftImg8bit_sequence", s))}
    elif dataset == "gatech":
        from tfvideo.data.segmentation_sets import GATECH_CLASSES, gatech_items
        calls = {s: (lambda s=s: gatech_items(root, split=s)) for s in ("train", "test")
                 if os.path.isdir(os.path.join(root, s))}
        classes = list(GATECH_CLASSES)
    elif dataset == "objects":
        from tfvideo.data.objects import CLASSES as OBJECT_CLASSES
        from tfvideo.data.segmentation_sets import gatech_items
        calls = {s: (lambda s=s: gatech_items(root, split=s, num_classes=len(OBJECT_CLASSES),
                                              id_prefix="objects"))
                 for s in ("train", "test") if os.path.isdir(os.path.join(root, s))}
        classes = list(OBJECT_CLASSES)
    elif dataset == "imagenet_vid":
        from tfvideo.data.detection_sets import VID_CLASSES, imagenet_vid_items
        calls = {s: (lambda s=s: imagenet_vid_items(root, s, image_set=(image_sets or {}).get(s)))
                 for s in ("train", "val") if os.path.isdir(os.path.join(root, "Data", "VID", s))}
        classes = list(VID_CLASSES)
    elif dataset == "objects_detection":
        from tfvideo.data.detection_sets import OBJECTS_DETECTION_CLASSES, objects_detection_items
        calls = {s: (lambda s=s: objects_detection_items(root, s))
                 for s in ("train", "test") if os.path.isdir(os.path.join(root, s))}
        classes = list(OBJECTS_DETECTION_CLASSES)
    if not calls:
        module = ("flow_sets" if dataset in ("middlebury", "sintel") else "detection_sets"
                  if dataset in ("imagenet_vid", "objects_detection") else "segmentation_sets")
        raise ValueError(f"{root}: no split folders of {dataset} found (see tfvideo.data.{module} "
                         "for the layout)")
    splits, problems = {}, []
    for split, call in calls.items():
        items, probs = call()
        splits[split] = items
        problems.extend(probs)
    return action_sets.Listing(splits, classes, problems)


def _check_image_sets(dataset, image_sets):
    """``image_sets`` (``{split: file}``, imagenet_vid only) checked; returns a plain dict."""
    if image_sets is None:
        return {}
    if dataset != "imagenet_vid":
        raise ValueError(f"image_sets only applies to imagenet_vid, not {dataset}")
    if not isinstance(image_sets, dict) or not all(
            k in ("train", "val") and isinstance(v, (str, os.PathLike)) for k, v in image_sets.items()):
        raise ValueError(f"image_sets must map 'train'/'val' to an ImageSets file, got {image_sets!r}")
    return {k: os.fspath(v) for k, v in sorted(image_sets.items())}


def list_dataset(dataset, data_dir, *, split=1, test_fraction=0.0, sintel_pass="clean",
                 image_sets=None):
    """The :class:`~tfvideo.data.action_sets.Listing` of ``dataset`` stored at ``data_dir``.

    ``image_sets``: for ``imagenet_vid``, ``{split: ImageSets file}`` (see
    :func:`tfvideo.data.detection_sets.imagenet_vid_items`)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    if dataset in ("hmdb51", "motion"):
        return action_sets.hmdb51(data_dir, split)
    if dataset == "ucf101":
        return action_sets.ucf101(data_dir, split)
    if dataset == "folder":
        return action_sets.folder(data_dir, test_fraction)
    return _dense_listing(dataset, os.fspath(data_dir), sintel_pass,
                          _check_image_sets(dataset, image_sets))


def _generator(dataset):
    """The generator of a built-in set and the arguments its content depends on."""
    if dataset == "motion":
        from tfvideo.data.motion import generate_motion
        return generate_motion, ("seed", "videos_per_class", "num_frames", "size", "fps")
    from tfvideo.data.objects import generate_objects
    return generate_objects, ("seed", "train_videos", "test_videos", "num_frames", "size")


def _settings(dataset, out, data_dir, split, test_fraction, sintel_pass, motion_options,
              objects_options=None, item_transform=None, image_sets=None):
    """The source settings recorded with the shards (the shard writer adds its own)."""
    if dataset in BUILTIN:
        data_dir = data_dir or os.path.join(out, "videos")
    settings = {"split": split, "source": os.path.abspath(data_dir) if data_dir else None}
    if dataset == "folder":
        settings["test_fraction"] = test_fraction
    if dataset == "sintel":
        settings["sintel_pass"] = sintel_pass
    if dataset == "imagenet_vid":
        settings["image_sets"] = _check_image_sets(dataset, image_sets)
    if dataset in BUILTIN:  # what the generated videos depend on, defaults filled in
        import inspect

        from tfvideo.files import jsonable

        generate, keys = _generator(dataset)
        options = motion_options if dataset == "motion" else objects_options
        params = {k: p.default for k, p in inspect.signature(generate).parameters.items()
                  if k in keys}
        params.update({k: v for k, v in (options or {}).items() if k in params})
        settings[dataset] = jsonable(dict(sorted(params.items())))
    if item_transform is not None:
        settings["item_transform"] = _transform_settings(item_transform)
    return settings


def _transform_settings(item_transform):
    """``item_transform.settings()`` checked: the hook's protocol is ``wrap(item) -> Item`` and
    ``settings() -> dict`` (JSON-able: recorded with the shards)."""
    from tfvideo.files import jsonable

    if not (callable(getattr(item_transform, "wrap", None)) and callable(getattr(item_transform, "settings", None))):
        raise TypeError("item_transform must have wrap(item) -> Item and settings() -> dict (e.g. "
                        f"tfvideo.teachers.FlowTeacher); got {type(item_transform).__name__}")
    return jsonable(dict(item_transform.settings()))


def check_reusable(dataset, out, data_dir=None, *, split=1, test_fraction=0.0, sintel_pass="clean",
                   motion_options=None, objects_options=None, item_transform=None, image_sets=None):
    """Raises ``ValueError`` if ``out`` holds shards of another dataset or made from other source
    settings (another split, source folder, built-in set size, ...).

    The rule (one for every dataset): a shard folder belongs to the dataset and source settings it was
    made with. Asking for anything else in the same folder is refused before any work, naming the
    differences; choose another ``--out``/``--data-out`` or pass ``overwrite`` to rebuild it. Writer
    settings (``short_side``, ``fps``, ...) are checked the same way by the shard writer.
    """
    _check_settings(dataset, os.fspath(out),
                    _settings(dataset, os.fspath(out), data_dir, split, test_fraction, sintel_pass,
                              motion_options, objects_options, item_transform, image_sets))


def _check_settings(dataset, out, want):
    manifest = read_manifest(out)
    if not manifest.get("splits"):
        return
    if manifest.get("dataset") not in (None, "", dataset):
        raise ValueError(f"{out} holds shards of {manifest['dataset']!r}, not {dataset!r}: choose another "
                         "shard folder (--data-out / --out) or delete this one")
    for name, record in manifest["splits"].items():
        have = record.get("settings", {})
        diff = [f"{k}={have.get(k)!r} (now {v!r})" for k, v in want.items() if have.get(k) != v]
        if diff:
            raise ValueError(f"{out} holds {dataset} {name!r} shards made with {', '.join(diff)}: choose "
                             "another shard folder (--data-out / --out), or delete this one, or rebuild "
                             "it with python -m tfvideo.data.prepare --overwrite")


def wait_until_prepared(out, splits=("train", "test"), *, timeout=3600.0, poll=2.0, log=None) -> dict:
    """Waits until ``out``'s manifest lists every shard of ``splits`` (another process, e.g. the chief of
    a multi-worker run, is writing them); returns the manifest. ``TimeoutError`` after ``timeout`` s."""
    import time

    start, said = time.time(), False
    while True:
        try:
            manifest = read_manifest(os.fspath(out))
        except ValueError:  # replaced while read: try again
            manifest = {}
        records = [manifest.get("splits", {}).get(s) for s in splits]
        if all(r and len(r.get("shards", {})) == r.get("num_shards") for r in records):
            return manifest
        if time.time() - start > timeout:
            raise TimeoutError(f"{out}: the shards of {', '.join(splits)} were not complete after "
                               f"{timeout:.0f} s")
        if log and not said:
            log(f"waiting for the shards in {out} (written by the chief)")
            said = True
        time.sleep(poll)


def prepare(dataset, out, data_dir=None, *, split=1, shards=None, min_shards=1, short_side=None, fps=None,
            workers=1, overwrite=False, jpeg_quality=90, test_fraction=0.0, sintel_pass="clean",
            motion_options=None, objects_options=None, item_transform=None, image_sets=None,
            progress=True, log=print):
    """List ``dataset`` and write its shards to ``out``; returns a summary dict.

    For ``motion`` the videos are generated first (into ``data_dir``, default ``<out>/videos``;
    ``motion_options`` go to :func:`tfvideo.data.motion.generate_motion`), then read exactly like
    HMDB51. ``objects`` likewise (``objects_options`` go to
    :func:`tfvideo.data.objects.generate_objects`), then read like GATECH, flows included; its
    ``classes`` are :data:`tfvideo.data.objects.CLASSES`. ``objects_detection`` generates the same
    clips (same ``objects_options``; a shared ``data_dir`` is reused) and writes frames and boxes
    (:func:`tfvideo.data.detection_sets.objects_detection_items`; ``classes`` are
    :data:`~tfvideo.data.detection_sets.OBJECTS_DETECTION_CLASSES`). ``image_sets``: for
    ``imagenet_vid``, ``{split: ImageSets file}`` restricting the annotated frames. ``shards`` per
    split default to one per 64 videos, at least ``min_shards`` (a multi-worker run needs one per
    worker: tf.distribute shards the input by file). ``item_transform``: an object with
    ``wrap(item) -> Item`` and ``settings() -> dict`` applied to every listed item before writing (e.g.
    :class:`tfvideo.teachers.FlowTeacher`, which replaces the flows by a teacher's); its settings
    are recorded with the shards, so a folder made with one transform is not reused for another.
    Returns ``{"dataset", "out",
    "classes", "splits": {name: write_shards summary}, "videos", "skipped"}``.
    """
    out = os.fspath(out)
    if fps is not None and dataset in DENSE:
        raise ValueError(f"fps must not be set for {dataset}: its targets belong to consecutive "
                         "frames")
    settings = _settings(dataset, out, data_dir, split, test_fraction, sintel_pass, motion_options,
                         objects_options, item_transform, image_sets)
    if not overwrite:  # before anything is generated or written
        _check_settings(dataset, out, settings)
    if dataset == "motion":
        from tfvideo.data.motion import generate_motion
        data_dir = data_dir or os.path.join(out, "videos")
        # rendering in one process: a spawn pool costs more to start than the default set takes
        generate_motion(data_dir, **{"workers": 1, "overwrite": overwrite, "progress": progress,
                                     **(motion_options or {})})
    if dataset in ("objects", "objects_detection"):
        from tfvideo.data.objects import generate_objects
        data_dir = data_dir or os.path.join(out, "videos")
        generate_objects(data_dir, **{"overwrite": overwrite, "progress": progress,
                                      **(objects_options or {})})
    if data_dir is None:
        raise ValueError(f"data_dir (--data-dir) is required for {dataset}")
    listing = list_dataset(dataset, data_dir, split=split, test_fraction=test_fraction,
                           sintel_pass=sintel_pass, image_sets=image_sets)
    if item_transform is not None:
        listing = action_sets.Listing({k: [item_transform.wrap(i) for i in v] for k, v in listing.splits.items()},
                                      listing.classes, listing.problems)
    summary = {"dataset": dataset, "out": out, "classes": listing.classes, "splits": {}}
    problems = list(listing.problems)
    pool = make_pool(workers)
    try:
        for name, items in listing.splits.items():
            if not items:
                continue
            count = shards
            if count is None and min_shards > 1:
                count = max(min_shards, -(-len(items) // VIDEOS_PER_SHARD))
            summary["splits"][name] = write_shards(
                items, out, split=name, num_shards=count, dataset=dataset, settings=settings,
                short_side=short_side, fps=fps, jpeg_quality=jpeg_quality, workers=workers,
                overwrite=overwrite, problems=problems, progress=progress, pool=pool)
            problems = []  # listing problems are recorded once, with the first split
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    summary["videos"] = sum(s["videos"] for s in summary["splits"].values())
    summary["skipped"] = [s for split in summary["splits"].values() for s in split["skipped"]]
    if log:
        for name, s in summary["splits"].items():
            log(f"{dataset} {name}: {s['videos']} videos, {s['frames']} frames in "
                f"{len(s['shards'])} shards ({s['written']} written, {s['reused']} already done)")
        if summary["skipped"]:
            log(f"skipped {len(summary['skipped'])} (also listed in {os.path.join(out, MANIFEST)}):")
            for s in summary["skipped"]:
                log(f"  {s['path']}: {s['reason']}")
        log(f"{summary['videos']} videos of {dataset} -> {out}")
    return summary


def _parser():
    p = argparse.ArgumentParser(prog="python -m tfvideo.data.prepare", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=DATASETS, help="dataset layout to read")
    p.add_argument("--data-dir", help="dataset root (for the built-in motion and objects: where "
                                      "to generate the videos, default <out>/videos)")
    p.add_argument("--out", help="output folder for shards and manifest.json "
                                 "(default tfrecords/DATASET)")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3),
                   help="official split for hmdb51/ucf101/motion (default 1)")
    p.add_argument("--shards", type=int, help="shards per split (default: one per 64 videos)")
    p.add_argument("--short-side", type=int, help="resize frames so the shorter side has this "
                                                  "many pixels (default: keep)")
    p.add_argument("--fps", type=float, help="subsample videos to this frame rate (default: keep)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="decoding processes (default: number of CPUs). Each worker imports "
                        "TensorFlow when it starts (3-8 s on 2 cores), so use 1 for small sets "
                        "such as motion (see benchmarks/data_pipeline.py)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of stored frames")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="folder: fraction of each class held out as 'test' when there are no "
                        "train/test subfolders (default 0)")
    p.add_argument("--sintel-pass", default="clean", choices=("clean", "final"))
    p.add_argument("--image-set", action="append", metavar="SPLIT=FILE",
                   help="imagenet_vid: annotate only the frames an ImageSets file lists for SPLIT "
                        "(train or val), e.g. train=VID_train_15frames.txt (a path or a name under "
                        "DATA_DIR/ImageSets/); repeatable")
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite shards that are already complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    out = args.out or os.path.join("tfrecords", args.dataset)
    image_sets = None
    if args.image_set:
        image_sets = dict(v.split("=", 1) for v in args.image_set if "=" in v)
        if len(image_sets) != len(args.image_set):
            print(f"error: --image-set must be SPLIT=FILE, got {args.image_set}", file=sys.stderr)
            return 2
    try:
        summary = prepare(args.dataset, out, args.data_dir, split=args.split, shards=args.shards,
                          short_side=args.short_side, fps=args.fps, workers=args.workers,
                          overwrite=args.overwrite, jpeg_quality=args.jpeg_quality,
                          test_fraction=args.test_fraction, sintel_pass=args.sintel_pass,
                          image_sets=image_sets, progress=not args.quiet)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if summary["videos"] == 0:
        print(f"error: no video of {args.dataset} could be written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
