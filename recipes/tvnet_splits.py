"""``--split all`` of the TVNet action recipes: splits 1, 2, 3 one after another, then their mean.

The published HMDB51 / UCF101 results are means over the three official splits (seed 002, Table 4:
"Mean classification accuracy"). ``python -m recipes.tvnet_hmdb --split all`` runs the recipe once per
split, each a complete run of its own (shards, run folder, evaluation, export)::

    <run-dir>/split1/   split2/   split3/     the runs (``--split N --run-dir <run-dir>/splitN``)
    <run-dir>/summary.json                    per-split results, their mean, the paper's figures

Shards: ``--data-out X`` becomes ``X/splitN``; by default each split has its folder already
(``tfrecords/<dataset>/splitN``; the built-in ``motion`` set, whose generator writes the three HMDB51-
style split files with different random 70/30 partitions, ``tfrecords/motion`` for split 1 and
``tfrecords/motion_splitN`` for 2 and 3). Exports: ``--export B/name`` becomes ``B/name_splitN``.
``--resume`` continues the split that was interrupted and skips the splits that finished (their
``eval/summary.json`` is read back). Every split's arguments are checked before the first one starts.
"""

from __future__ import annotations

import copy
import json
import os
import time

import numpy as np

from tfvideo.files import atomic_write_json

SPLITS = (1, 2, 3)
METRICS = ("top1", "top5", "mean_class_accuracy")
_LABELS = {"spatial": "RGB stream", "temporal": "TVNet stream", "two_stream": "two-stream 1:2"}


def split_args(args, split, base_run_dir):
    """The arguments of one split's run (a copy of ``args``)."""
    sub = copy.copy(args)
    sub.split = split
    sub.run_dir = os.path.join(base_run_dir, f"split{split}")
    sub.data_out = None if args.data_out is None else os.path.join(args.data_out, f"split{split}")
    sub.export = f"{os.path.normpath(args.export)}_split{split}"
    sub.resume = bool(args.resume) and os.path.exists(os.path.join(sub.run_dir, "config.json"))
    return sub


def aggregate_splits(per_split):
    """``{split: {stream: metrics}}`` -> ``{stream: {"splits": {split: metrics}, "mean": {...}}}``.

    Every stream present in all splits gets the plain mean over the splits of ``top1``, ``top5`` and
    ``mean_class_accuracy`` (fractions) and the total ``num_videos``; other keys of the first split's
    entry (``label``, ``paper_row`` of ``--table 3`` rows) are kept beside.
    """
    if not per_split:
        raise ValueError("per_split must hold the results of at least one split")
    splits = sorted(per_split)
    streams = [k for k in per_split[splits[0]] if all(k in per_split[s] for s in splits[1:])]
    out = {}
    for stream in streams:
        rows = {s: per_split[s][stream] for s in splits}
        mean = {m: float(np.mean([rows[s][m] for s in splits])) for m in METRICS if m in rows[splits[0]]}
        if all("num_videos" in r for r in rows.values()):
            mean["num_videos"] = int(sum(r["num_videos"] for r in rows.values()))
        extra = {k: v for k, v in rows[splits[0]].items() if k not in METRICS and k != "num_videos"
                 and isinstance(v, (str, int, float))}
        out[stream] = {"splits": {s: {m: rows[s][m] for m in (*METRICS, "num_videos") if m in rows[s]}
                                  for s in splits},
                       "mean": mean, **extra}
    return out


def paper_variant(stream, entry):
    """The paper method to compare a stream's 3-split mean with: Table 4's two-stream "Ours" (the
    table of 3-split means), a ``--table 3`` row's own method (the paper gives those on split 1 only:
    ``paper_comparison`` says so), nothing for the single streams of a two-stream run."""
    if stream == "two_stream":
        return "Ours"
    return entry.get("paper_row")


def format_splits_table(aggregated, dataset, *, iterations=None):
    """Lines: one row per stream with its top-1 on every split and the mean, then the paper's figure
    under the streams the paper reports (``evaluation.paper_comparison`` with ``split=None``)."""
    from tfvideo import evaluation

    splits = sorted(next(iter(aggregated.values()))["splits"]) if aggregated else []
    labels = {k: (f"TVNet-{iterations} stream" if k == "temporal" and iterations else
                  v.get("label") or _LABELS.get(k, k)) for k, v in aggregated.items()}
    width = max([len(v) for v in labels.values()] + [len("stream")])
    head = f"  {'stream (top-1)':<{width}}" + "".join(f"  split {s}" for s in splits) + "     mean"
    lines = [head]
    for key, entry in aggregated.items():
        row = f"  {labels[key]:<{width}}" + "".join(f"  {100 * entry['splits'][s]['top1']:6.1f}%"
                                                   for s in splits)
        lines.append(row + f"  {100 * entry['mean']['top1']:6.1f}%")
        variant = paper_variant(key, entry)
        paper = evaluation.paper_comparison(dataset, None, entry["mean"], variant) if variant else None
        if paper:
            lines.append("    " + paper.replace(", top-1: ours", f" mean of splits {', '.join(map(str, splits))}, "
                                                                 "top-1: ours", 1))
    return lines


def _check_all(parser, args, dataset, base):
    """Every split's argument problems, before the first split starts (``parser.error``)."""
    from recipes import tvnet_common

    if args.run_dir is not None and os.path.isfile(os.path.join(args.run_dir, "config.json")):
        parser.error(f"--split all: {args.run_dir} holds a single-split run; choose another --run-dir")
    for split in SPLITS:
        sub = split_args(args, split, base)
        if args.resume and os.path.isfile(os.path.join(sub.run_dir, "eval", "summary.json")):
            continue  # finished: read back
        cfg = tvnet_common.resolve(sub, dataset)
        for problem in tvnet_common.check_args(sub, cfg, dataset):
            parser.error(f"--split all, split {split}: {problem}")


def run_all_splits(parser, args, dataset, run_one):
    """Runs ``run_one(parser, split_args, dataset)`` for splits 1, 2, 3, prints the per-split top-1 and
    the mean beside the paper's figure, writes ``<run-dir>/summary.json``. Returns ``{"splits":
    {split: run result}, "results": aggregated, "run_dir"}``."""
    from tfvideo.cli import timed_log

    builtin = args.data_dir is None
    base = args.run_dir or os.path.join("runs", f"tvnet_{'motion' if builtin else dataset}",
                                        time.strftime("%Y%m%d-%H%M%S") + "-splits")
    _check_all(parser, args, dataset, base)
    log = timed_log()
    runs, per_split = {}, {}
    for split in SPLITS:
        sub = split_args(args, split, base)
        done = os.path.join(sub.run_dir, "eval", "summary.json")
        if args.resume and os.path.isfile(done):
            with open(done) as f:
                per_split[split] = json.load(f)["results"]
            log(f"--split all: split {split} finished already ({sub.run_dir}): its results read back")
            continue
        log(f"--split all: split {split} of 3 -> {sub.run_dir}")
        runs[split] = run_one(parser, sub, dataset)
        if runs[split].get("chief") is False:
            continue  # a non-chief worker: the chief evaluates
        per_split[split] = runs[split]["results"]
    if len(per_split) < len(SPLITS):
        return {"splits": runs, "run_dir": base, "chief": False}
    aggregated = aggregate_splits(per_split)
    first = next(iter(runs.values()), None)
    cfg = first["config"] if first else {}
    name = "the built-in 'motion' set (not " + dataset.upper() + ")" if builtin else dataset.upper()
    log(f"results over splits 1-3 on {name} (each split's own test set; the paper's Table 4 reports "
        "the mean of the three splits):")
    for line in format_splits_table(aggregated, "motion" if builtin else dataset,
                                    iterations=cfg.get("iterations")):
        log(line)
    atomic_write_json(os.path.join(base, "summary.json"),
                      {"splits": list(SPLITS), "dataset": "motion" if builtin else dataset,
                       "results": aggregated})
    return {"splits": runs, "results": aggregated, "run_dir": base}
