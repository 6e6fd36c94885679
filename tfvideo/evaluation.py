"""Video classification evaluation: multi-view testing, metrics, confusion matrix, paper figures.

Flow of an evaluation (:func:`evaluate` runs all of it)::

    evaluation dataset          predict_views        video_scores         classification_metrics
    ({"frames", "video_id"}, -> per-view scores  ->  per-video scores  -> top-1/top-5, mean
     label) batches, views      (N, C) + ids +       (V, C) + ids +       class accuracy, per-class
     of a video consecutive     labels               labels               accuracy, confusion

Layouts
  * *views* and *videos* dicts: ``{"video_ids": (N,) bytes, "labels": (N,) int64, "scores": (N, C)
    float32}``; one row per view (from :func:`predict_views`) or per video (from
    :func:`video_scores`, videos in sorted id order). ``scores.npz`` written by :func:`evaluate`
    holds the per-video dict (plus ``class_names``), so two streams evaluated separately can be
    fused afterwards with :func:`fuse_scores` (``np.load`` gives a mapping it accepts).
  * metrics dict (:func:`classification_metrics`): accuracies are fractions in [0, 1]; per-class
    arrays are indexed by class; ``confusion[true, predicted]`` counts videos.

Choices
  * Per-video scores average what the model outputs (``softmax=False``, the default: logits when the
    model ends in logits); ``softmax=True`` averages per-view probabilities instead. The TVNet recipes
    use the default, as TSN does (its ``default_aggregation_func`` averages the pre-softmax scores of
    all snippets and crops, then fuses streams on those averages): the TVNet paper (Sec. 5.2) feeds
    "all the sampled snippets (250 in total)" -- 25 stacks x (centre + 4 corners) x 2 flips -- "and
    their outputs are averaged for prediction". A TVNet stream's view is one crop/flip of all 25 stacks
    and already outputs the mean of their logits (``SegmentConsensus``), so the mean over a video's
    10 views is exactly the mean over its 250 snippet logits (every view has the same 25 stacks).
    (The mean of logits is, up to normalisation, the log of the geometric mean of the snippets'
    distributions: it can rank classes differently from the mean of their softmax scores.)
  * Ties: the prediction is the lowest class index among the maxima (``np.argmax``), and in top-k
    a tied class with a lower index ranks first, so top-1 always equals accuracy of the argmax.
  * Two-stream fusion is a weighted *mean* of per-video scores (the TVNet paper, Sec. 5.2,
    combines spatial and temporal predictions "with a fixed weight (i.e., 1:2)":
    :data:`TWO_STREAM_WEIGHTS`); dividing by the weight sum does not change any prediction.

Example
-------
>>> import numpy as np
>>> m = classification_metrics(np.array([[2., 1, 0], [0, 3, 1], [1, 0, 0]]), np.array([0, 2, 0]))
>>> round(m["top1"], 4), m["confusion"].tolist()
(0.6667, [[2, 0, 0], [0, 0, 0], [0, 1, 0]])
>>> paper_comparison("motion", 1, m) is None     # no paper figures beside other data
True
>>> print(paper_comparison("hmdb51", 1, m))
HMDB51 split 1, top-1: ours 66.7% | paper TVNet-50 57.5% (Table 3), TV-L1 56.0%

Length (over 500 lines, on purpose): prediction, per-video pooling, metrics, fusion, the confusion
PNG and the paper's figures form one pipeline whose steps pass the same dicts; the paper tables
(transcribed data) make up a good part of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tfvideo.files import atomic_path, atomic_write_json, atomic_write_text
from tfvideo.viz import save_png

__all__ = ["predict_views", "average_per_video", "video_scores", "classification_metrics",
           "fuse_scores", "confusion_matrix_image", "confusion_matrix_png", "per_class_table", "paper_comparison",
           "evaluate", "PAPER_RESULTS", "TWO_STREAM_WEIGHTS"]

from tfvideo.layers.segments import TWO_STREAM_WEIGHTS  # noqa: E402  (spatial RGB, temporal flow)

# Transcribed from Fan et al., "End-to-End Learning of Motion Representation for Video
# Understanding" (CVPR 2018), shared/seeds/002_e11203b9a64c6949.txt. Top-1 accuracy in %, None
# where the paper prints "-".
PAPER_RESULTS = {
    "table3": {
        "caption": "Table 3: single (temporal) stream on split 1; BN-Inception on 5-flow stacks, "
                   "25 stacks x (centre + 4 corners) x flips at test time",
        "splits": "split 1",
        "hmdb51": {"C3D": None, "ActionFlowNet": 56.4, "TV-L1": 56.0, "DIS-Fast": 40.4,
                   "Deepflow": 50.4, "Flownet2.0": 52.3, "TVNet-50 (no training)": 55.6,
                   "TVNet-50 (no flow loss)": 56.9, "TVNet-50": 57.5},
        "ucf101": {"C3D": 82.3, "ActionFlowNet": 83.9, "TV-L1": 85.1, "DIS-Fast": 71.2,
                   "Deepflow": 82.1, "Flownet2.0": 80.1, "TVNet-50 (no training)": 83.5,
                   "TVNet-50 (no flow loss)": 84.5, "TVNet-50": 85.5},
    },
    "table4": {
        "caption": "Table 4: two-stream (RGB:flow = 1:2) with 3-segment temporal pooling, mean "
                   "over the 3 splits ('Ours'; Sec. 5.2's text says 71.6% on HMDB51 where the "
                   "table prints 71.0%)",
        "splits": "mean of splits 1-3",
        "hmdb51": {"ST-ResNet": 66.4, "ST-ResNet + IDT": 70.3, "TSN": 68.5, "KVMF": 63.3,
                   "TDD": 65.9, "C3D (3 nets)": None, "Two-Stream Fusion": 65.4,
                   "Two-Stream (VGG16)": 58.5, "Two-Stream+LSTM": None, "Two-Stream Model": 59.4,
                   "Ours": 71.0, "Ours + IDT": 72.6},
        "ucf101": {"ST-ResNet": 93.4, "ST-ResNet + IDT": 94.6, "TSN": 94.0, "KVMF": 93.1,
                   "TDD": 91.5, "C3D (3 nets)": 90.4, "Two-Stream Fusion": 92.5,
                   "Two-Stream (VGG16)": 91.4, "Two-Stream+LSTM": 88.6, "Two-Stream Model": 88.0,
                   "Ours": 94.5, "Ours + IDT": 95.4},
    },
}
_PAPER_ALIASES = {"TVNet-50 two-stream": "Ours", "TVNet-50 two-stream + IDT": "Ours + IDT"}
_PAPER_REFERENCE = {"table3": "TV-L1", "table4": "TSN"}  # the TV-L1 counterpart in each table
_DATASET_NAMES = {"hmdb51": "HMDB51", "ucf101": "UCF101"}


# ------------------------------------------------------------------------------- prediction ----
def _select_output(outputs, output):
    if isinstance(outputs, Mapping):
        if output is None:
            if len(outputs) != 1:
                raise ValueError(f"the model returns a dict with keys {sorted(outputs)}; pass "
                                 "`output` to choose the class scores")
            output = next(iter(outputs))
        if output not in outputs:
            raise ValueError(f"output {output!r} is not among the model outputs {sorted(outputs)}")
        return outputs[output]
    if isinstance(outputs, (list, tuple)):
        if not isinstance(output, int):
            raise ValueError(f"the model returns {len(outputs)} outputs; pass `output` as an index")
        return outputs[output]
    return outputs


def predict_views(model, dataset, *, output=None, progress=True):
    """Class scores of every view of an evaluation dataset.

    Args:
      model: a Keras model (or any callable) taking the frames tensor; called with
        ``training=False`` inside a ``tf.function``.
      dataset: batches of ``({"frames": ..., "video_id": string}, label)`` (a pipeline builder
        with ``training=False, with_video_id=True``).
      output: when the model returns a dict, the key of the class scores (e.g. ``"logits"``; may be
        omitted for a one-key dict); for a list/tuple, the index.
      progress: show a tqdm bar (batches; total known only when the dataset's cardinality is).

    Returns:
      ``{"video_ids": (N,) bytes, "labels": (N,) int64, "scores": (N, C) float32}``, one row per
      view in dataset order.
    """
    step = tf.function(lambda frames: model(frames, training=False), reduce_retracing=True)
    total = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else -1
    ids, labels, scores = [], [], []
    for element in tqdm(dataset, desc="evaluating", unit="batch", disable=not progress,
                        total=total if total >= 0 else None):
        if not (isinstance(element, tuple) and len(element) == 2 and isinstance(element[0], Mapping)
                and {"frames", "video_id"} <= set(element[0])):
            raise ValueError("dataset must yield ({'frames': ..., 'video_id': ...}, label) batches "
                             "(build it with training=False, with_video_id=True)")
        inputs, label = element
        batch = np.asarray(_select_output(step(inputs["frames"]), output), np.float32)
        label = np.asarray(label).reshape(-1)
        if batch.ndim != 2 or len(batch) != len(label):
            raise ValueError(f"model output must be (batch, classes) = ({len(label)}, C), got "
                             f"{batch.shape}")
        ids.extend(inputs["video_id"].numpy().tolist())
        labels.append(label)
        scores.append(batch)
    if not scores:
        raise ValueError("dataset yielded no elements")
    return {"video_ids": np.array(ids, dtype=bytes),
            "labels": np.concatenate(labels).astype(np.int64), "scores": np.concatenate(scores)}


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def average_per_video(scores, video_ids, labels=None):
    """Average view scores per video (multi-view testing).

    Args:
      scores: ``(N, C)`` array of per-view scores (e.g. logits or probabilities).
      video_ids: ``(N,)`` video of each view (``inputs["video_id"]`` of the evaluation pipelines of
        :mod:`tfvideo.data.pipeline`: strings or bytes; any hashable, sortable ids work).
      labels: optional ``(N,)`` labels of the views (all views of a video share the label).

    Returns:
      ``(ids (V,), mean_scores (V, C))`` or, with ``labels``, ``(ids, mean_scores,
      video_labels (V,))``; videos in sorted id order.
    """
    scores, video_ids = np.asarray(scores, np.float64), np.asarray(video_ids).reshape(-1)
    if scores.ndim != 2 or len(scores) != len(video_ids):
        raise ValueError(f"scores must be (N, C) with N = len(video_ids) = {len(video_ids)}, "
                         f"got {scores.shape}")
    ids, inverse = np.unique(video_ids, return_inverse=True)
    sums = np.zeros((len(ids), scores.shape[1]))
    np.add.at(sums, inverse, scores)
    means = sums / np.bincount(inverse)[:, None]
    if labels is None:
        return ids, means
    labels = np.asarray(labels).reshape(-1)
    video_labels = np.zeros(len(ids), labels.dtype)
    video_labels[inverse] = labels
    return ids, means, video_labels


def video_scores(views, *, reduce="mean", softmax=False):
    """Per-video scores from per-view scores (multi-view testing).

    Args:
      views: :func:`predict_views` result (views of a video may come in any order).
      reduce: ``"mean"`` (TSN/TVNet: outputs of all views averaged, via
        :func:`average_per_video`) or ``"max"``.
      softmax: convert each view's logits to probabilities before reducing. Default ``False``
        reduces what the model outputs (raw class scores, as TSN does).

    Returns:
      ``{"video_ids": (V,), "labels": (V,), "scores": (V, C) float32}`` in sorted id order.

    Raises:
      ValueError: when views of one video carry different labels.
    """
    if not isinstance(views, Mapping) or not {"video_ids", "labels", "scores"} <= set(views):
        raise ValueError("views must be a dict with 'video_ids', 'labels' and 'scores'")
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    scores = np.asarray(views["scores"], np.float64)
    if softmax:
        scores = _softmax(scores)
    ids, pooled, video_labels = average_per_video(scores, views["video_ids"], views["labels"])
    inverse = np.searchsorted(ids, np.asarray(views["video_ids"]).reshape(-1))
    mixed = video_labels[inverse] != np.asarray(views["labels"]).reshape(-1)
    if np.any(mixed):
        raise ValueError("views of one video carry different labels: "
                         f"{ids[np.unique(inverse[mixed])][:5].tolist()}")
    if reduce == "max":
        pooled = np.full_like(pooled, -np.inf)
        np.maximum.at(pooled, inverse, scores)
    return {"video_ids": ids, "labels": video_labels.astype(np.int64),
            "scores": pooled.astype(np.float32)}


# ---------------------------------------------------------------------------------- metrics ----
def classification_metrics(scores, labels, class_names=None, top_k=(1, 5)):
    """Video-level classification metrics.

    Args:
      scores: ``(V, C)`` per-video class scores (finite).
      labels: ``(V,)`` true class indices in ``[0, C)``.
      class_names: optional ``C`` names, kept in the result.
      top_k: ks of the top-k accuracies; each k is capped at ``C`` (``top5`` with 3 classes is 1).

    Returns:
      dict with ``num_videos``, ``num_classes``, ``top{k}`` for each k (fractions; ``top_k`` maps
      each key to the k used), ``mean_class_accuracy`` (mean per-class recall over the classes
      present in ``labels``), ``per_class_accuracy`` ``(C,)`` (NaN for classes without videos),
      ``support`` ``(C,)`` int64, ``confusion`` ``(C, C)`` int64 (rows true, columns predicted),
      ``predictions`` ``(V,)`` and ``class_names``. Ties go to the lowest class index.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[1] == 0 or len(scores) != len(labels) or not len(labels):
        raise ValueError(f"scores must be (V, C) with V = len(labels) = {len(labels)} > 0, got "
                         f"{scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    v, c = scores.shape
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"labels must be integer class indices in [0, {c}), got {labels.dtype} "
                         f"in [{labels.min()}, {labels.max()}]")
    if class_names is not None and len(class_names) != c:
        raise ValueError(f"class_names must have {c} entries, got {len(class_names)}")
    if any(not isinstance(k, (int, np.integer)) or k < 1 for k in top_k):
        raise ValueError(f"top_k must be positive ints, got {top_k!r}")
    predictions = np.argmax(scores, axis=1)
    true = scores[np.arange(v), labels][:, None]
    index = np.arange(c)[None]
    rank = np.sum((scores > true) | ((scores == true) & (index < labels[:, None])), axis=1)
    confusion = np.zeros((c, c), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / support, np.nan)
    metrics = {"num_videos": v, "num_classes": c}
    metrics.update({f"top{k}": float(np.mean(rank < min(k, c))) for k in top_k})
    metrics.update(top_k={f"top{k}": int(min(k, c)) for k in top_k},
                   mean_class_accuracy=float(np.nanmean(per_class)),
                   per_class_accuracy=per_class, support=support, confusion=confusion,
                   predictions=predictions,
                   class_names=None if class_names is None else [str(n) for n in class_names])
    return metrics


def _as_ids(ids):
    return np.array([i.encode() if isinstance(i, str) else bytes(i) for i in np.asarray(ids)
                     .reshape(-1).tolist()], dtype=bytes)


def _as_video_table(item, i):
    """One fuse_scores input -> (ids bytes (V,), scores (V, C), labels or None)."""
    labels = None
    if isinstance(item, Mapping) and {"video_ids", "scores"} <= set(item):
        ids, scores = _as_ids(item["video_ids"]), np.asarray(item["scores"], np.float64)
        labels = np.asarray(item["labels"]).reshape(-1) if "labels" in item else None
    elif isinstance(item, Mapping):  # {video_id: (C,) scores}
        ids = _as_ids(list(item))
        scores = np.stack([np.asarray(s, np.float64).reshape(-1) for s in item.values()])
    elif isinstance(item, (tuple, list)) and len(item) == 2:  # (video_ids, scores)
        ids, scores = _as_ids(item[0]), np.asarray(item[1], np.float64)
    else:
        raise TypeError(f"scores_list[{i}] must be a dict of video_ids/scores(/labels), a "
                        f"{{video_id: scores}} dict or a (video_ids, scores) pair, got {type(item)}")
    if scores.ndim != 2 or len(scores) != len(ids):
        raise ValueError(f"scores_list[{i}] scores must be (V, C) with one row per video id, got "
                         f"{scores.shape} for {len(ids)} ids")
    return ids, scores, labels


def fuse_scores(scores_list, weights):
    """Weighted mean of per-video scores of several models (two-stream fusion).

    Args:
      scores_list: per-video scores, each a :func:`video_scores` result (or ``np.load`` of an
        ``evaluate`` ``scores.npz``), a ``{video_id: (C,) scores}`` dict, or a ``(video_ids (V,),
        scores (V, C))`` pair. Every entry must cover the same videos with the same C; entries
        are aligned by id (order may differ), and their labels, when given, must agree.
      weights: one non-negative weight per entry (sum > 0), e.g. :data:`TWO_STREAM_WEIGHTS`
        ``(1, 2)`` for [spatial, temporal] as in the TVNet paper.

    Returns:
      ``{"video_ids", "scores" (V, C) float32, "labels" (when any entry has them)}`` in the first
      entry's video order; ``scores = sum_i w_i s_i / sum_i w_i``.
    """
    if not isinstance(scores_list, (list, tuple)) or not scores_list:
        raise ValueError("scores_list must be a non-empty list of per-video scores")
    weights = np.asarray(weights, np.float64).reshape(-1)
    if len(weights) != len(scores_list) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"weights must be {len(scores_list)} non-negative numbers with a positive "
                         f"sum, got {weights.tolist()}")
    tables = [_as_video_table(item, i) for i, item in enumerate(scores_list)]
    ids0, scores0, _ = tables[0]
    if len(np.unique(ids0)) != len(ids0):
        raise ValueError("scores_list[0] has duplicate video ids")
    fused, labels = np.zeros_like(scores0), None
    for i, ((ids, scores, lab), w) in enumerate(zip(tables, weights)):
        if scores.shape[1] != scores0.shape[1]:
            raise ValueError(f"scores_list[{i}] has {scores.shape[1]} classes, scores_list[0] "
                             f"{scores0.shape[1]}")
        order = np.argsort(ids)
        pos = order[np.searchsorted(ids[order], ids0).clip(0, len(ids) - 1)]
        if len(ids) != len(ids0) or np.any(ids[pos] != ids0):
            missing = np.setdiff1d(ids0, ids).tolist() + np.setdiff1d(ids, ids0).tolist()
            raise ValueError(f"scores_list[{i}] does not cover the same videos as scores_list[0] "
                             f"(differing ids: {missing[:5]}{'...' if len(missing) > 5 else ''})")
        fused += w * scores[pos]
        if lab is not None:
            if labels is not None and np.any(lab[pos] != labels):
                raise ValueError(f"scores_list[{i}] labels disagree with the earlier entries")
            labels = lab[pos]
    result = {"video_ids": ids0, "scores": (fused / weights.sum()).astype(np.float32)}
    if labels is not None:
        result["labels"] = labels.astype(np.int64)
    return result


# -------------------------------------------------------------------------- confusion image ----
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _DARK_BLUE = np.array([255.0, 255, 255]), np.array([8.0, 48, 107])


def _ascii(text, max_len=20):
    text = str(text).encode("ascii", "replace").decode()
    return text if len(text) <= max_len else text[:max_len - 2] + ".."


def _fit_scale(texts, width, height, limit=0.5):
    """Largest Hershey scale (<= limit) at which every text fits in width x height pixels."""
    w = max(cv2.getTextSize(t, _FONT, 1.0, 1)[0][0] for t in texts)
    h = cv2.getTextSize("Ag", _FONT, 1.0, 1)[0][1]
    return min(limit, width / max(w, 1), height / h)


def _text_image(text, scale, height):
    """White strip ``(height, text width + 6)`` with black ``text`` vertically centred."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    img = np.full((height, tw + 6, 3), 255, np.uint8)
    cv2.putText(img, text, (3, (height + th) // 2), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def confusion_matrix_image(confusion, class_names, *, normalize=True, title=None):
    """The heat map of :func:`confusion_matrix_png` as a uint8 RGB ``(H, W, 3)`` array."""
    confusion = np.asarray(confusion, np.float64)
    n = len(class_names)
    if confusion.shape != (n, n) or n == 0 or np.any(confusion < 0):
        raise ValueError(f"confusion must be a non-negative ({n}, {n}) matrix for the {n} "
                         f"class_names, got shape {confusion.shape}")
    if normalize:
        rows = confusion.sum(axis=1, keepdims=True)
        values = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
        shade, texts = values, [f"{round(100 * x)}" for x in values.ravel()]
    else:
        shade = confusion / max(confusion.max(), 1)
        texts = [f"{int(round(x))}" for x in confusion.ravel()]
    cell = int(np.clip(720 // n, 8, 56))
    grid = np.repeat(np.repeat(_WHITE + (_DARK_BLUE - _WHITE) * shade[..., None], cell, 0), cell, 1)
    grid = np.rint(grid).astype(np.uint8)
    if n <= 30:  # values in the cells (zeros left blank)
        scale = _fit_scale(texts + ["100"], 0.8 * cell, 0.45 * cell)
        for k, (text, s) in enumerate(zip(texts, shade.ravel())):
            if text != "0":
                (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
                y, x = divmod(k, n)
                cv2.putText(grid, text, (x * cell + (cell - tw) // 2, y * cell + (cell + th) // 2),
                            _FONT, scale, (255, 255, 255) if s > 0.5 else (0, 0, 0), 1,
                            cv2.LINE_AA)
    names = [_ascii(c) for c in class_names]
    scale = _fit_scale(names, 1e9, 0.75 * cell, limit=0.45)
    rows = [_text_image(t, scale, cell) for t in names]
    label_w = max(r.shape[1] for r in rows) + 4

    def stack(right_aligned):  # (n * cell, label_w) column of names
        return np.concatenate([np.pad(r, ((0, 0), ((label_w - r.shape[1], 0) if right_aligned else
                                                   (0, label_w - r.shape[1])), (0, 0)),
                                      constant_values=255) for r in rows])

    left, top = stack(True), np.rot90(stack(False))  # top: read bottom-to-top, class 0 leftmost
    end = label_w + n * cell  # grid in [label_w, end); 1-pixel grey frame around it
    body = np.full((end + 1, end + 1, 3), 255, np.uint8)
    body[label_w:end, :label_w], body[:label_w, label_w:end] = left, top
    body[label_w:end, label_w:end] = grid
    cv2.rectangle(body, (label_w - 1, label_w - 1), (end, end), (160, 160, 160), 1)
    heads = [_text_image(_ascii(title, 120), 0.6, 26)] if title else []
    heads.append(_text_image("rows: true class, columns: predicted; " + (
        "row-normalised %" if normalize else "counts") + ", white 0 .. dark blue max", 0.4, 18))
    width = max([body.shape[1] + 8] + [h.shape[1] + 8 for h in heads])
    out = np.full((sum(h.shape[0] for h in heads) + body.shape[0] + 12, width, 3), 255, np.uint8)
    y = 4
    for h in heads:
        out[y:y + h.shape[0], 4:4 + h.shape[1]] = h
        y += h.shape[0]
    out[y + 4:y + 4 + body.shape[0], 4:4 + body.shape[1]] = body
    return out


def confusion_matrix_png(path, confusion, class_names, *, normalize=True, title=None):
    """Write a confusion-matrix heat map as PNG (OpenCV/NumPy drawing, atomic write).

    Cells go from white (0) to dark blue (1 = whole row when ``normalize``, else the largest
    count); with up to 30 classes each non-zero cell shows its value (row percentage or count).
    Class names (ASCII, cut to 20 characters) label the rows (true) on the left and the columns
    (predicted) on top, written bottom-to-top. Cells are ``clip(720 // n, 8, 56)`` pixels, so 8
    classes give a ~450 px grid and 101 classes ~800 px.

    Args:
      path: destination ``.png`` (parent folders are created).
      confusion: ``(C, C)`` counts, rows true and columns predicted.
      class_names: ``C`` names.
      normalize: shade and label by row fractions (rows without videos stay white).
      title: optional line above the matrix.

    Returns:
      ``path`` as a string.
    """
    return save_png(path, confusion_matrix_image(confusion, class_names, normalize=normalize,
                                                 title=title))


# ------------------------------------------------------------------------------------ text ----
def per_class_table(metrics, class_names=None):
    """Aligned text table (index, class, videos, accuracy) in class order, then the means.

    Args:
      metrics: :func:`classification_metrics` result.
      class_names: names by class index (default: ``metrics["class_names"]`` or the indices).

    Returns:
      the table as one string (no trailing newline); classes without videos show ``-``.
    """
    support, acc = np.asarray(metrics["support"]), np.asarray(metrics["per_class_accuracy"])
    names = class_names if class_names is not None else metrics.get("class_names")
    names = [str(n) for n in (names if names is not None else range(len(support)))]
    if len(names) != len(support):
        raise ValueError(f"class_names must have {len(support)} entries, got {len(names)}")
    w = max([len(n) for n in names] + [len("mean class accuracy")])
    iw = len(str(len(names) - 1))
    lines = [f"{'#':>{iw}}  {'class':<{w}}  {'videos':>6}  {'accuracy':>8}"]
    for i, (name, s, a) in enumerate(zip(names, support, acc)):
        lines.append(f"{i:>{iw}}  {name:<{w}}  {s:>6d}  {'-' if s == 0 else f'{100 * a:.1f}%':>8}")
    lines.append(f"{'':>{iw}}  {'mean class accuracy':<{w}}  {'':>6}  "
                 f"{100 * metrics['mean_class_accuracy']:>7.1f}%")
    lines.append(f"{'':>{iw}}  {'top-1 (all videos)':<{w}}  {int(support.sum()):>6d}  "
                 f"{100 * metrics['top1']:>7.1f}%")
    return "\n".join(lines)


def paper_comparison(dataset, split, ours, variant="TVNet-50"):
    """Our top-1 beside the TVNet paper's figure, only for the datasets the paper reports.

    Args:
      dataset: dataset name; ``hmdb51``/``ucf101`` (case, ``-`` and ``_`` ignored) get a line,
        anything else (e.g. the built-in ``motion`` set) gets ``None``.
      split: the split evaluated (int, or ``None`` for a mean over splits); shown in the line.
      ours: metrics dict with ``top1`` (a fraction).
      variant: a method of Table 3 (single flow stream, split 1: ``"TVNet-50"``, ``"TVNet-50 (no
        flow loss)"``, ``"TVNet-50 (no training)"``, ``"TV-L1"``, ...) or of Table 4 (two-stream,
        mean of 3 splits: ``"Ours"`` alias ``"TVNet-50 two-stream"``, ``"TSN"``, ...).

    Returns:
      one line, e.g. ``"HMDB51 split 1, top-1: ours 55.1% | paper TVNet-50 57.5% (Table 3),
      TV-L1 56.0%"`` (the table's TV-L1 counterpart is added: TV-L1 in Table 3, TSN in Table 4;
      the line says when the paper's protocol is not the split given), or ``None``.
    """
    key = str(dataset).lower().replace("-", "").replace("_", "")
    if key not in _DATASET_NAMES:
        return None
    if not isinstance(ours, Mapping) or "top1" not in ours:
        raise ValueError("ours must be a metrics dict with 'top1' (a fraction)")
    method = _PAPER_ALIASES.get(variant, variant)
    table = next((t for t in ("table3", "table4") if method in PAPER_RESULTS[t][key]), None)
    if table is None:
        known = sorted(set(PAPER_RESULTS["table3"][key]) | set(PAPER_RESULTS["table4"][key])
                       | set(_PAPER_ALIASES))
        raise ValueError(f"variant must be one of {known}, got {variant!r}")
    figures = PAPER_RESULTS[table][key]
    if figures[method] is None:
        return None
    shown = next((a for a, m in _PAPER_ALIASES.items() if m == method), method)
    note = f"Table {table[-1]}"
    if (table == "table3" and split not in (1, "1")) or (table == "table4" and split is not None):
        note += f", {PAPER_RESULTS[table]['splits']}"
    where = f"{_DATASET_NAMES[key]}{'' if split is None else f' split {split}'}"
    line = (f"{where}, top-1: ours {100 * ours['top1']:.1f}% | paper {shown} "
            f"{figures[method]:.1f}% ({note})")
    reference = _PAPER_REFERENCE[table]
    if reference != method:
        line += f", {reference} {figures[reference]:.1f}%"
    return line


# --------------------------------------------------------------------------------- evaluate ----
def evaluate(model, dataset, *, class_names, out_dir=None, output=None, softmax=False,
             reduce="mean", progress=True):
    """Multi-view evaluation of a classifier: views -> per-video scores -> metrics (+ files).

    Args:
      model, dataset, output, progress: see :func:`predict_views`.
      class_names: names by class index (their number must match the model's outputs).
      out_dir: when given, writes (each atomically) ``metrics.json`` (the metrics, NaN as null,
        without ``videos``), ``confusion_matrix.png`` (row-normalised), ``per_class.txt``
        (:func:`per_class_table`) and ``scores.npz`` (``video_ids``, ``labels``, per-video
        ``scores``, ``class_names``) for later two-stream fusion.
      softmax, reduce: see :func:`video_scores`.

    Returns:
      :func:`classification_metrics` dict plus ``num_views`` and ``videos`` (the per-video
      scores dict).
    """
    views = predict_views(model, dataset, output=output, progress=progress)
    videos = video_scores(views, reduce=reduce, softmax=softmax)
    metrics = classification_metrics(videos["scores"], videos["labels"], class_names)
    metrics["num_views"] = len(views["labels"])
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        atomic_write_json(os.path.join(out_dir, "metrics.json"), metrics, indent=1)
        confusion_matrix_png(os.path.join(out_dir, "confusion_matrix.png"), metrics["confusion"],
                             class_names, title=f"{metrics['num_videos']} videos, top-1 "
                             f"{100 * metrics['top1']:.1f}%")
        atomic_write_text(os.path.join(out_dir, "per_class.txt"),
                          per_class_table(metrics, class_names) + "\n")
        with atomic_path(os.path.join(out_dir, "scores.npz")) as tmp:
            np.savez(tmp, **videos, class_names=np.array([str(c) for c in class_names]))
    metrics["videos"] = videos
    return metrics
