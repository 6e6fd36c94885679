"""Tables 3 and 4 of the TVNet paper (seed 002) as settings of the action recipe (``--table 3|4``).

``python -m recipes.tvnet_hmdb --table 3`` (or ``recipes.tvnet_ucf101``) trains one *temporal* network per
motion descriptor, one after another with the same budget, seed and classification network, and prints
them as one table beside the paper's Table 3; ``--table 4`` (the default) is the two-stream run of
:mod:`recipes.tvnet_common`.

Our reading of the paper (line numbers of ``shared/seeds/002_e11203b9a64c6949.txt``)
------------------------------------------------------------------------------------
* **Table 3** (line 226: "Classification accuracy of various motion descriptors on HMDB51 (split 1) and
  UCF101 (split 1)"): the flow network alone -- no RGB stream, no fusion. Sec. 5.2 (line 252): "We sample
  a stack of 6 consecutive images from each video and extract 5 flow frames for every consecutive pair.
  The resulting stack of optical flows are fed to the BN-Inception network", with TSN's corner cropping and
  scale jittering; test: 25 stacks x (centre + 4 corners) x flips (line 272). The 3-segment temporal
  pooling is introduced only later, for Table 4, as one of the "practical tricks" added "to compare with
  state-of-the-art methods" (line 288: "Second, to take the long-term temporal awareness into account, we
  perform the temporal pooling of 3 sampled segments"). So ``--table 3`` trains on **one stack per video
  (1 segment)**, TSN's augmentation and the same test protocol; ``--segments`` overrides it.
* Table 3's baselines (line 274): "For all baselines, we compute the optical flow beforehand and store the
  flow fields as JPEG images by linear compression. All methods share the same training setting and
  classification network". TV-L1 means TV-L1-5-5-50 (line 244: "denote TV-L1-5-5-50 as TV-L1").
* **Table 4** (line 256, "Mean classification accuracy ..."; text line 288): two-stream, RGB:flow 1:2,
  3 segments in training, mean over the three splits: :mod:`recipes.tvnet_common` as it was.

Table 3's streams (``--streams``, comma-separated; default: all of them)
------------------------------------------------------------------------
======================  ================================================  =========================
stream                  what                                              paper's row
======================  ================================================  =========================
``tvnet50``             TVNet-50 trained end to end, ``L = L_c + 0.1 L_f``  TVNet-50
``no-flow-loss``        the same without ``L_f``                          TVNet-50 (no flow loss)
``no-training``         TVNet-50 frozen (exact TV-L1, bilinear warps)     TVNet-50 (no training)
``tvl1-S-W-N``          frozen TVNet with S scales, W warps, N            TV-L1 (computed on the
                        iterations and bicubic warps: classical TV-L1     fly, not stored)
                        on the fly (e.g. ``tvl1-5-5-50``)
``precomputed-tvl1``    OpenCV ``DualTVL1OpticalFlow`` (defaults: 5       TV-L1
                        scales x 0.8, 5 warps), stored 8-bit
``precomputed-dis``     OpenCV DIS, ``PRESET_FAST``, stored 8-bit         DIS-Fast
``precomputed-deepflow`` OpenCV's DeepFlow (``cv2.optflow``; without       Deepflow
                        DeepMatching), stored 8-bit
======================  ================================================  =========================

FlowNet2.0 (the paper's fourth baseline) needs its pretrained network, which we cannot download: not
offered. ``tvl1-S-W-N`` keeps TVNet's other defaults (scale factor 0.5 between pyramid levels, where
OpenCV's DualTVL1 uses 0.8; tau 0.25, lambda 0.15, theta 0.3) and is frozen (no gradient, no ``L_f``).
The other TVNet streams use ``--iterations`` (default 50) for their TVNet-N; their label says N.

Stored flow (the ``precomputed-*`` streams)
-------------------------------------------
The flow is computed once, while the shards are written (a :class:`StoredFlow` item transform given to
:func:`tfvideo.data.prepare.prepare`, wrapping items in :class:`tfvideo.teachers.TeacherFlowItem` like the
recipes' flow teachers), on the stored frames (grey, ITU-R BT.601), from each frame to the next. It is
stored the way TSN stores flow: each component clipped and quantised linearly to 8 bits around 128
(:func:`quantise_flow`)::

    q = clip(round(v * 128 / 20) + 128, 0, 255)        (uint8; q = 128 is v = 0)
    v = (q - 128) * 20 / 128                            (dequantise_flow)

so ``v`` covers ``-20 .. +19.84`` px in steps of 0.156 px (rounding error <= 0.078 px = 20/256 inside,
values beyond are clipped to the ends). The CNN then sees ``v * flow_scale(backbone)``
(:func:`tfvideo.models.tvnet.flow_scale`), the factor the TVNet streams multiply their flows by: for the
Caffe-range ``resnet50`` that is ``128 / 20`` (``FLOW_SCALE``), so the input is exactly ``q - 128``,
TSN's flow images minus their mean 128; for the [-1, 1] backbones ``1 / 20``, i.e. ``(q - 128) / 128``.
**Container**: the shard schema stores flow as float16 (``flow/encoded``, :mod:`tfvideo.data.schema`,
which this recipe does not change); every 8-bit level ``(q - 128) * 5 / 32`` is exactly representable
in float16 (11 significant bits), so the shards hold exactly TSN's 8-bit code, at 2 bytes a component
instead of 1 (and without the extra loss of TSN's JPEG compression). Reading them back gives the levels
exactly (tested). The flows then go through the same crops (bilinear, vectors scaled with the crop, as
the TVNet streams compute their flow on the cropped frames) and flips (``u`` negated) as the frames of
the TVNet streams (:func:`flow_segment_dataset`). One difference remains, as in TSN against TVNet: the
stored flow is computed on the whole stored frame before cropping and resizing, the TVNet streams' on
the crops (in the ``cpu`` profile 48 px crops of 96 x 128 frames, half the resolution; in the paper
profile 224 of 256, nearly the same).

A precomputed-flow shard folder is never reused for another method: the transform's
:meth:`StoredFlow.settings` (method, OpenCV preset, quantisation) are recorded in the shard manifest
and ``prepare`` refuses a folder made with other settings (:func:`tfvideo.data.prepare.check_reusable`).
The default folder is the frames' folder plus ``-flow-<method>`` (``tfrecords/motion-flow-tvl1``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time

import numpy as np

from tfvideo.files import atomic_write_json

__all__ = ["TABLES", "STREAMS", "FLOW_BOUND", "quantise_flow", "dequantise_flow", "StoredFlow", "Stream",
           "parse_streams", "flow_segment_dataset", "precomputed_stream", "add_table_flags", "apply_table",
           "table_title", "format_table3", "run_table3"]

#: What each table's setting implies (applied by :func:`apply_table` over the profile; flags win).
TABLES = {
    3: dict(segments=1, two_stream=False,
            title="Table 3 of seed 002: one temporal network per motion descriptor (no RGB stream, no "
                  "fusion), 1 stack per video in training, paper: split 1"),
    4: dict(segments=3, two_stream=True,
            title="Table 4 of seed 002: two-stream (RGB + TVNet flow), 3 segments, RGB:flow 1:2, "
                  "paper: mean of splits 1-3"),
}
FLOW_BOUND = 20.0  # TSN's +-20 px
_LEVELS_PER_PX = 128.0 / FLOW_BOUND
_METHODS = {"tvl1": "OpenCV DualTVL1 (defaults: 5 scales x 0.8, 5 warps)",
            "dis": "OpenCV DIS PRESET_FAST", "deepflow": "OpenCV DeepFlow (no DeepMatching)"}
_PRECOMPUTED_ROWS = {"tvl1": "TV-L1", "dis": "DIS-Fast", "deepflow": "Deepflow"}
STREAMS = ("tvnet50", "no-flow-loss", "no-training", "tvl1-5-5-50", "precomputed-tvl1", "precomputed-dis",
           "precomputed-deepflow")


# ------------------------------------------------------------------------------- quantisation ----
def quantise_flow(flow):
    """Flow (any shape, pixels) -> ``uint8`` codes ``clip(round(v * 128 / 20) + 128, 0, 255)`` (TSN's
    8-bit flow images, 128 = 0; NaN -> 128)."""
    v = np.nan_to_num(np.asarray(flow, np.float32), nan=0.0)
    return np.clip(np.round(v * _LEVELS_PER_PX) + 128, 0, 255).astype(np.uint8)


def dequantise_flow(q):
    """``uint8`` codes -> flow in pixels ``(q - 128) * 20 / 128`` (float32)."""
    q = np.asarray(q)
    if q.dtype != np.uint8:
        raise TypeError(f"q must be uint8 codes, got {q.dtype}")
    return ((q.astype(np.float32) - 128.0) / _LEVELS_PER_PX).astype(np.float32)


class StoredFlow:
    """Item transform for :func:`tfvideo.data.prepare.prepare`: flows of ``method`` between consecutive
    frames, quantised to TSN's 8 bits (module doc), replace the items' flows.

    Args:
      method: ``"tvl1"``, ``"dis"`` or ``"deepflow"`` (:data:`_METHODS`).
    """

    def __init__(self, method):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
        self.method = method

    def __repr__(self):
        return f"StoredFlow({self.method!r})"

    def describe(self):
        return f"{_METHODS[self.method]}, 8-bit +-{FLOW_BOUND:g} px"

    def settings(self):
        """What the stored flow depends on (recorded in the shard manifest)."""
        return {"name": f"stored-{self.method}", "method": _METHODS[self.method],
                "quantisation": f"uint8 q = clip(round(v * 128 / {FLOW_BOUND:g}) + 128, 0, 255)"}

    def wrap(self, item):
        from tfvideo.teachers import TeacherFlowItem

        return TeacherFlowItem(video_id=item.video_id, label=item.label, label_text=item.label_text,
                               source=item.source, base=item, teacher=self)

    def _flow_method(self):
        import cv2

        if self.method == "tvl1":
            return cv2.optflow.DualTVL1OpticalFlow_create()
        if self.method == "dis":
            return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        return cv2.optflow.createOptFlow_DeepFlow()

    def raw(self, frames):
        """``uint8 (T, H, W, 3)`` RGB -> OpenCV's float flows ``(T - 1, H, W, 2)`` (not quantised)."""
        import cv2

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
            raise ValueError(f"frames must be uint8 (T >= 2, H, W, 3), got {frames.dtype} {frames.shape}")
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        method = self._flow_method()
        return np.stack([method.calc(grey[t], grey[t + 1], None)
                         for t in range(len(grey) - 1)]).astype(np.float32)

    def __call__(self, frames):
        """The flows as stored: :meth:`raw`, quantised and dequantised (exact in float16)."""
        return dequantise_flow(quantise_flow(self.raw(frames)))


# ------------------------------------------------------------------------------------ streams ----
@dataclasses.dataclass(frozen=True)
class Stream:
    """One row of Table 3: ``kind`` ``"tvnet"`` (flow computed in the network from frames) or
    ``"precomputed"`` (flow read from shards written with :class:`StoredFlow` ``(method)``)."""

    key: str
    label: str
    paper_row: str
    kind: str
    tvnet: dict | None = None
    train_tvnet: bool = False
    flow_loss_weight: float = 0.0
    method: str | None = None


def _stream(key, iterations):
    n = iterations
    if key == "tvnet50":
        return Stream(key, f"TVNet-{n} trained, L_c + 0.1 L_f", "TVNet-50", "tvnet",
                      {"iterations": n}, True, 0.1)
    if key == "no-flow-loss":
        return Stream(key, f"TVNet-{n} trained, L_c only", "TVNet-50 (no flow loss)", "tvnet",
                      {"iterations": n}, True, 0.0)
    if key == "no-training":
        return Stream(key, f"TVNet-{n} frozen (TV-L1, bilinear)", "TVNet-50 (no training)", "tvnet",
                      {"iterations": n}, False, 0.0)
    m = re.fullmatch(r"tvl1-(\d+)-(\d+)-(\d+)", key)
    if m:
        s, w, i = (int(g) for g in m.groups())
        if min(s, w, i) < 1:
            raise ValueError(f"{key}: scales, warps and iterations must be >= 1")
        return Stream(key, f"TV-L1-{s}-{w}-{i} on the fly (bicubic)", "TV-L1", "tvnet",
                      {"scales": s, "warps": w, "iterations": i, "interpolation": "bicubic"}, False, 0.0)
    m = re.fullmatch(r"precomputed-(\w+)", key)
    if m and m.group(1) in _METHODS:
        return Stream(key, f"{_METHODS[m.group(1)].split(' (')[0]}, stored 8-bit",
                      _PRECOMPUTED_ROWS[m.group(1)], "precomputed", method=m.group(1))
    raise ValueError(f"unknown stream {key!r}: expected tvnet50, no-flow-loss, no-training, tvl1-S-W-N "
                     f"(e.g. tvl1-5-5-50) or precomputed-{{{','.join(_METHODS)}}}")


def coarse_level_warnings(streams, size):
    """A line for every on-the-fly TV-L1 stream whose pyramid, at ``size`` px crops, ends below 12 px: there a
    textureless coarsest level takes brightness changes for motion and every finer level doubles it
    (``tfvideo/layers/tvnet.py``, *Pyramid*; measured: TV-L1-5-5-50 at 48 px, coarsest 3 x 3, 34.4% top-1 on the
    built-in set where every other row is at 98-100%)."""
    from tfvideo.layers.tvnet import max_scales, pyramid_sizes

    lines, most = [], max_scales(size, size)
    for stream in streams:
        scales = (stream.tvnet or {}).get("scales", 1)
        if stream.kind == "tvnet" and scales > most:
            h, w = pyramid_sizes(size, size, scales, 0.5)[-1]
            lines.append(f"warning: [{stream.key}] {scales} scales at {size} px crops end at {h}x{w} px, where "
                         f"brightness changes pass for motion; at most {most} scales keep 12 px "
                         f"(e.g. --streams tvl1-{most}-{stream.tvnet['warps']}-{stream.tvnet['iterations']})")
    return lines


def parse_streams(text, iterations=50):
    """``"tvnet50,precomputed-dis"`` -> list of :class:`Stream` (order kept, no repeats)."""
    keys = [k.strip() for k in str(text).split(",") if k.strip()]
    if not keys:
        raise ValueError("expected at least one stream")
    if len(set(keys)) != len(keys):
        raise ValueError(f"a stream is named twice in {text!r}")
    return [_stream(k, iterations) for k in keys]


def _streams_type(text):
    try:
        parse_streams(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


# ------------------------------------------------------------------------ data and the model ----
def flow_segment_dataset(data, split=None, *, training, size, batch_size, num_segments=1,
                         flows_per_stack=5, with_video_id=False, drop_remainder=None, crop="tsn", flip=True,
                         resize_short_side=None, num_crops=1, flip_views=False, seed=None,
                         deterministic=None, shuffle_buffer=256, cycle_length=4):
    """:func:`tfvideo.data.pipeline.segment_dataset`'s TSN sampling, but the stacks are the stored flows.

    Each segment gives the ``flows_per_stack`` flows ``t -> t + 1`` of its ``flows_per_stack + 1``
    consecutive frames (the frame indices ``segment_dataset(frames_per_segment=flows_per_stack + 1)``
    draws with the same seed), read from the shards' ``flow/encoded``; crops resize them bilinearly and
    scale the vectors with the crop, flips negate ``u`` (:mod:`tfvideo.data.augment`); a flow the shards
    do not hold (the repeated last frame of a too-short video) is 0.

    Returns:
      ``(flows float32 (B, S, F, H, W, 2), label int32 (B,))``; with ``with_video_id`` the flows are
      under the key ``"frames"`` (the key :func:`tfvideo.evaluation.predict_views` reads).
    """
    import tensorflow as tf

    from tfvideo.data import augment, pipeline, sampling

    opts = pipeline._Options(training=training, size=size, crop=crop, flip=flip, color_jitter=None,
                             resize_short_side=resize_short_side, num_crops=num_crops,
                             flip_views=flip_views, seed=seed, deterministic=deterministic,
                             shuffle_buffer=shuffle_buffer, cache=False, cycle_length=cycle_length)
    s, f = int(num_segments), int(flows_per_stack)
    if s < 1 or f < 1:
        raise ValueError(f"num_segments and flows_per_stack must be >= 1, got {num_segments}, {flows_per_stack}")

    def sample_fn(record, seed):
        n = tf.cast(record["video/num_frames"], tf.int32)
        idx = sampling.segment_indices(n, s, f + 1, training=opts.training, seed=seed)
        # one frame per segment (the augmentations read the frame size from the frames)
        sample = {augment.FRAMES: pipeline._gather_frames(record, tf.reshape(idx[:, 0], [1, s]))}
        sample[augment.FLOW], sample[augment.FLOW_VALID] = pipeline._flows_at(
            record, tf.reshape(idx[:, :f], [1, s * f]))
        return sample

    def structure(sample, with_id):
        valid = tf.cast(sample[augment.FLOW_VALID], tf.float32)[..., None]
        flows = tf.reshape(sample[augment.FLOW] * valid, [s, f, *opts.size, 2])
        return pipeline._with_id(flows, sample, with_id), sample["label"]

    return opts.build(data, split, sample_fn, structure, batch_size, drop_remainder=drop_remainder,
                      with_video_id=with_video_id, flow=True)


def precomputed_stream(num_classes, *, size=(112, 112), flows_per_stack=5, backbone_name="small",
                       weights=None, dropout=0.7, flow_scale=None, name="temporal"):
    """The temporal stream of :func:`tfvideo.models.tvnet.temporal_stream` on stored flows: ``flows``
    float32 ``(B, S, F, H, W, 2)`` in pixels -> interleaved ``(u_1, v_1, ..., u_F, v_F)`` channels (as
    ``FlowStack`` does) x ``flow_scale(backbone_name)`` (the TVNet streams' factor) -> the same backbone,
    head and segment consensus."""
    import keras

    from tfvideo.models import tvnet as tvmodels

    h, w = size
    flows = keras.Input((None, flows_per_stack, h, w, 2), dtype="float32", name="flows")
    x = keras.layers.Permute((1, 3, 4, 2, 5), name="flows_last")(flows)
    x = keras.layers.Reshape((-1, h, w, 2 * flows_per_stack), name="flow_stack")(x)
    # the TVNet streams' scale for this backbone (+-20 px -> the backbone's RGB input range)
    scale = tvmodels.flow_scale(backbone_name) if flow_scale is None else float(flow_scale)
    x = keras.layers.Rescaling(scale, name="flow_scale")(x)
    net = tvmodels.backbone(backbone_name, (h, w, 2 * flows_per_stack), weights=weights,
                            model_name=f"{name}_{backbone_name}")
    features = tvmodels.PerSegment(net, name=f"{name}_cnn")(x)
    logits = tvmodels._head(features, num_classes, dropout, name)
    return keras.Model(flows, tvmodels.SegmentConsensus(name="consensus")(logits), name=name)


# -------------------------------------------------------------------------------- the settings ----
def add_table_flags(p):
    """``--table`` and ``--streams`` on the action recipe's parser."""
    p.add_argument("--table", type=int, choices=(3, 4), default=4,
                   help="the paper table whose setting the run reproduces: 3 = one temporal network per "
                        "motion descriptor (--streams), 1 training segment, no RGB stream; 4 = two-stream, "
                        "3 segments, 1:2 fusion")
    p.add_argument("--streams", type=_streams_type,
                   help=f"--table 3's rows, comma-separated (default all: {','.join(STREAMS)}); tvl1-S-W-N "
                        "is any frozen bicubic TVNet")


def apply_table(args, cfg):
    """Sets what ``--table`` implies in ``cfg`` (flags given explicitly win): ``table``, ``segments``,
    ``streams`` (Table 3) and ``table_title``."""
    table = getattr(args, "table", None) or 4
    cfg["table"] = table
    cfg["table_title"] = TABLES[table]["title"]
    if getattr(args, "segments", None) is None:
        cfg["segments"] = TABLES[table]["segments"]
    cfg["streams"] = ([s.key for s in parse_streams(args.streams or ",".join(STREAMS))]
                      if table == 3 else None)
    return cfg


def table_title(cfg):
    return cfg.get("table_title") or TABLES[cfg.get("table", 4)]["title"]


def table_problems(args):
    """Flags that do not go with the chosen table (texts for ``parser.error``)."""
    if (getattr(args, "table", 4) or 4) == 4:
        return ["--streams goes with --table 3 (Table 4 is the two-stream run)"] if args.streams else []
    bad = [f for f, given in (("--no-flow-loss", args.no_flow_loss), ("--freeze-tvnet", args.freeze_tvnet))
           if given]
    if bad:
        return [f"{', '.join(bad)}: with --table 3 choose the rows with --streams (no-flow-loss, no-training)"]
    return []


def format_table3(rows, dataset):
    """The results table: one row per stream, ours beside the paper's Table 3 row (both datasets).

    ``rows``: dicts with ``label``, ``paper_row``, ``top1``, ``top5``, ``mean_class_accuracy`` (fractions).
    """
    from tfvideo.evaluation import PAPER_RESULTS

    paper = PAPER_RESULTS["table3"]
    name = {"hmdb51": "HMDB51", "ucf101": "UCF101"}.get(dataset, dataset)
    lines = [f"  {'stream':40s} {'top-1':>6s} {'top-5':>6s} {'mean cl':>7s}   {'paper row (Table 3)':24s}"
             f" {'HMDB51':>6s} {'UCF101':>6s}"]
    for r in rows:
        fig = [paper[d].get(r["paper_row"]) for d in ("hmdb51", "ucf101")]
        figs = " ".join(f"{'-' if v is None else f'{v:.1f}':>6s}" for v in fig)
        lines.append(f"  {r['label']:40s} {100 * r['top1']:6.1f} {100 * r['top5']:6.1f} "
                     f"{100 * r['mean_class_accuracy']:7.1f}   {r['paper_row']:24s} {figs}")
    note = ("paper figures: split 1, BN-Inception, 224 px crops" if dataset in ("hmdb51", "ucf101") else
            f"paper figures are HMDB51 / UCF101 split 1; ours are on {name}, NOT the paper's data: "
            "only the ordering of the rows is comparable")
    lines.append(f"  ({note})")
    return lines


# --------------------------------------------------------------------------------- Table 3 run ----
def _flow_out(plain_out, method):
    return os.path.normpath(plain_out) + f"-flow-{method}"


def _check_table3(args, cfg, dataset):
    from recipes import tvnet_common
    from tfvideo.data.prepare import check_reusable

    problems = table_problems(args) or tvnet_common.check_args(args, cfg, dataset)
    if problems:
        return problems
    name, plain, data_dir = tvnet_common.data_source(args, cfg, dataset)
    for stream in _streams(cfg):
        if stream.kind == "precomputed":
            try:
                check_reusable(name, _flow_out(plain, stream.method),
                               os.path.join(plain, "videos") if name == "motion" else data_dir,
                               split=cfg["split"], motion_options=tvnet_common.motion_options(cfg),
                               item_transform=StoredFlow(stream.method))
            except ValueError as err:
                return [str(err)]
    return []


def _streams(cfg):
    return parse_streams(",".join(cfg["streams"]), cfg["iterations"])


def _prepare_table3(args, cfg, dataset, log, chief, workers):
    """The frames' shards, then one stored-flow shard folder per precomputed method."""
    from recipes import tvnet_common
    from tfvideo.data.prepare import prepare, wait_until_prepared

    plain, classes = tvnet_common.prepare_data(args, cfg, dataset, log, chief=chief, workers=workers)
    name, _, data_dir = tvnet_common.data_source(args, cfg, dataset)
    flows = {}
    for stream in _streams(cfg):
        if stream.kind != "precomputed":
            continue
        out, transform = _flow_out(plain, stream.method), StoredFlow(stream.method)
        if not chief:
            wait_until_prepared(out, log=log)
        started = time.time()
        summary = prepare(name, out, os.path.join(plain, "videos") if name == "motion" else data_dir,
                          split=cfg["split"], workers=args.workers, min_shards=workers,
                          short_side=None if name == "motion" else cfg["short_side"],
                          progress=not args.quiet and chief, log=None, item_transform=transform,
                          motion_options=tvnet_common.motion_options(cfg))
        done = sum(s["written"] for s in summary["splits"].values())
        log(f"stored flow: {out} ({transform.describe()}; "
            f"{'already written' if not done else f'{done} shards written in {time.time() - started:.0f} s'})")
        if list(summary["classes"]) != list(classes):
            raise ValueError(f"{out}: its classes differ from {plain}'s")
        flows[stream.method] = out
    return plain, classes, flows


def _datasets_for(stream, cfg, plain, flows, eval_only_batches=None):
    from recipes import tvnet_common

    if stream.kind == "tvnet":
        return tvnet_common.datasets(plain, cfg, eval_only_batches)
    size = (cfg["size"], cfg["size"])
    train = flow_segment_dataset(flows[stream.method], "train", training=True, batch_size=cfg["batch_size"],
                                 num_segments=cfg["segments"], size=size, seed=cfg["seed"], crop="tsn",
                                 flip=cfg["dataset"] != "motion")  # as tvnet_common.datasets
    views = cfg["eval_crops"] * (2 if cfg["eval_flips"] else 1)
    test = flow_segment_dataset(flows[stream.method], "test", training=False,
                                batch_size=max(1, min(views, 10)), num_segments=cfg["eval_segments"],
                                size=size, num_crops=cfg["eval_crops"], flip_views=cfg["eval_flips"],
                                with_video_id=True,
                                resize_short_side=cfg["short_side"] and round(cfg["size"] * 256 / 224))
    if eval_only_batches:
        test = test.take(eval_only_batches)
    return train, test


def run_table3(parser, args, cfg, dataset):
    """``--table 3``: every stream of ``cfg["streams"]`` trained and evaluated in turn (same budget, seed,
    backbone and schedule), then one table beside the paper's Table 3. Nothing is exported (the table
    compares descriptors; ``--table 4`` exports the two-stream model)."""
    from recipes import tvnet_common
    from recipes.harness import begin

    log, strategy, chief, run_dir, (plain, classes, flows) = begin(
        parser, args, cfg, _check_table3(args, cfg, dataset),
        lambda log, chief, workers: _prepare_table3(args, cfg, dataset, log, chief, workers))

    import keras

    from tfvideo import evaluation, training
    from tfvideo.models import tvnet as tvmodels

    size = (cfg["size"], cfg["size"])
    streams = _streams(cfg)
    log(f"reproducing {table_title(cfg)}")
    log(f"run dir: {run_dir.path}; streams: {', '.join(s.key for s in streams)}; each {cfg['steps']} steps "
        f"x batch {cfg['batch_size']} ({cfg['epochs']} epochs of {cfg['steps_per_epoch']}), "
        f"{cfg['segments']} segment(s) in training, lr {cfg['lr']} (/10 at {cfg['lr_boundaries']}), "
        f"seed {cfg['seed']}, backbone {cfg['backbone']}, {cfg['size']}px crops; test {cfg['eval_segments']} "
        f"stacks x {cfg['eval_crops']} crops{' x 2 flips' if cfg['eval_flips'] else ''}")
    for line in coarse_level_warnings(streams, cfg["size"]):
        log(line)
    jit = training.num_workers(strategy) == 1
    rows, results = [], {}
    for stream in streams:
        row_file = run_dir.eval / stream.key / "row.json"
        if args.resume and chief and row_file.is_file():  # finished and evaluated before the interruption
            with open(row_file) as f:
                results[stream.key] = json.load(f)
            rows.append(results[stream.key])
            log(f"[{stream.key}] finished already: top-1 {100 * results[stream.key]['top1']:.1f}% read back "
                f"from {row_file}")
            continue
        keras.utils.set_random_seed(cfg["seed"])  # the same initial CNN and data order for every row
        train_ds, test_ds = _datasets_for(stream, cfg, plain, flows, 1 if args.dry_run else None)
        with strategy.scope():
            if stream.kind == "tvnet":
                model = tvmodels.temporal_stream(
                    len(classes), size=size, backbone_name=cfg["backbone"], weights=cfg["weights"],
                    tvnet={**stream.tvnet, "xla_iterations": True}, flow_loss_weight=stream.flow_loss_weight,
                    train_tvnet=stream.train_tvnet, preprocess=cfg.get("preprocess", "none"),
                    flow_scale=tvnet_common.flow_input_scale(cfg))
            else:
                model = precomputed_stream(len(classes), size=size, backbone_name=cfg["backbone"],
                                           weights=cfg["weights"], flow_scale=tvnet_common.flow_input_scale(cfg))
            tvnet_common.compile_model(model, {**cfg, "train_tvnet": stream.train_tvnet},
                                       tvnet=stream.kind == "tvnet", jit_compile=jit)
        log(f"[{stream.key}] training: {stream.label}")
        started = time.time()
        training.train(model, train_ds, run_dir=os.path.join(run_dir.path, stream.key), epochs=cfg["epochs"],
                       steps_per_epoch=cfg["steps_per_epoch"], config={**cfg, "stream": stream.key},
                       monitor=None, backup_every_steps=cfg["steps_per_epoch"],
                       verbose=0 if args.quiet else "auto")
        train_min = (time.time() - started) / 60
        if not chief:
            continue
        # as the Table 4 run: every view's logits averaged per video
        r = evaluation.evaluate(model, test_ds, class_names=classes, softmax=False,
                                out_dir=run_dir.eval / stream.key, progress=not args.quiet)
        results[stream.key] = {**{m: r[m] for m in ("top1", "top5", "mean_class_accuracy", "num_videos")},
                               "label": stream.label, "paper_row": stream.paper_row,
                               "train_minutes": round(train_min, 2)}
        rows.append(results[stream.key])
        atomic_write_json(row_file, results[stream.key])  # --resume skips this stream from now on
        log(f"[{stream.key}] top-1 {100 * r['top1']:.1f}% ({train_min:.1f} min of training)")
        line = evaluation.paper_comparison(cfg["dataset"], cfg["split"], r, stream.paper_row)
        if line:
            log("    " + line)
    if not chief:
        log(f"{training.task_name(strategy)} done: the chief evaluates")
        return {"config": cfg, "run_dir": str(run_dir.path), "chief": False}
    n = next(iter(results.values()))["num_videos"]
    log(f"results, {table_title(cfg)}; ours on {cfg['dataset']} split {cfg['split']} test ({n} videos, "
        f"chance {100 / len(classes):.1f}%):")
    for line in format_table3(rows, cfg["dataset"]):
        log(line)
    atomic_write_json(run_dir.eval / "summary.json",
                      {"table": "Table 3", "config": cfg, "results": results})
    log(f"done in {(time.time() - log.started) / 60:.1f} min (Table 3 runs export nothing)")
    return {"config": cfg, "results": results, "run_dir": str(run_dir.path), "table": 3}
