"""Algorithm 1 of Deep Feature Flow (seed 003): streaming inference with key frames.

:class:`DFFVideoRunner` walks a frame sequence; on a key frame it runs the feature network and caches
the features (never recomputed), on the other frames it runs only the flow network and propagates the
cached features (Eq. 3), then the task network. Key frames are chosen by a scheduler:

* ``"fixed"``: every ``key_interval`` frames (``l``: 5 for segmentation, 10 for detection, Sec. 5);
* ``"adaptive"`` (the paper's future work, Sec. 6): frame ``i`` becomes a key frame when the content has
  changed too much since the key frame, measured after the (cheap) flow network: ``measure="flow"``:
  mean flow magnitude in feature-map pixels; ``"scale"``: mean ``|1 - S|``; ``"warp_error"``: mean
  absolute difference between frame ``i`` and the key frame warped by the flow (grey levels / 255,
  at 1/8 of the frame) -- the one that does not depend on the flow network being trained, as a scene
  cut changes the picture whatever the flow. Above ``threshold`` the frame is a key frame (its flow is
  then discarded); ``max_interval`` forces one anyway.

The runner takes three callables, so the same loop runs on a Keras model
(:meth:`DFFVideoRunner.from_model`) or on exported signatures:

* ``key_features(frame) -> features`` (N_feat);
* ``motion(current, key) -> (flow, scale)`` (F: flow in feature-map pixels, scale field);
* ``task(features, frame) -> output`` (N_task: logits cropped to the frame, or detections ``(N, 6)``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfvideo.layers.dff import CropToFrame
from tfvideo.layers.feature_warp import FeatureWarp
from tfvideo.ops.warp import backward_warp

__all__ = ["DFFVideoRunner", "SCHEDULERS", "MEASURES", "signatures"]

SCHEDULERS = ("fixed", "adaptive")
MEASURES = ("flow", "scale", "warp_error")


class DFFVideoRunner:
    """Algorithm 1 over a sequence of frames (module docstring).

    Args:
      key_features, motion, task: the three callables of the module docstring (batch of one frame).
      scheduler: ``"fixed"`` or ``"adaptive"``.
      key_interval: ``l`` of the fixed scheduler (>= 1; 1 = per-frame).
      measure, threshold, max_interval: the adaptive scheduler's change measure, its threshold and the
        longest run of non-key frames (default: none).

    Attributes:
      feature_calls: how many times ``key_features`` ran (= key frames, tested).
      key_frames: indices of the key frames of the last :meth:`run`.
    """

    def __init__(self, key_features, motion, task, *, scheduler="fixed", key_interval=5, measure="warp_error",
                 threshold=0.1, max_interval=None):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"`scheduler` must be one of {SCHEDULERS}; got {scheduler!r}")
        if measure not in MEASURES:
            raise ValueError(f"`measure` must be one of {MEASURES}; got {measure!r}")
        for arg, value in (("key_interval", key_interval), ("max_interval", max_interval)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{arg}` must be a positive int; got {value!r}")
        if not threshold > 0:
            raise ValueError(f"`threshold` must be > 0; got {threshold!r}")
        self.key_features, self.motion, self.task = key_features, motion, task
        self.scheduler, self.key_interval = scheduler, key_interval
        self.measure, self.threshold, self.max_interval = measure, float(threshold), max_interval
        self.feature_calls = 0
        self.key_frames = []
        warp = FeatureWarp()
        # graph functions: eager per-frame ops would cost more than a small flow network
        self._warp = tf.function(lambda f, flow, s: warp([f, flow, s]), reduce_retracing=True)
        self._change_fn = tf.function(self._change_measure, reduce_retracing=True)

    @classmethod
    def from_model(cls, model, *, jit_compile=False, **kwargs):
        """A runner on a :func:`tfvideo.models.dff.dff_segmenter` or :func:`tfvideo.models.rfcn.dff_detector`
        model (its layers ``n_feat``, ``n_task``, ``flownet``, and ``rfcn_head``), each part a ``tf.function`` (``jit_compile=True``: XLA-compiled, one
        compilation per frame size; it fuses the many small operations of a small flow network)."""
        n_feat, flow_net = model.get_layer("n_feat"), model.get_layer("flownet")
        task = _task_output(model)
        # XLA needs static shapes: each frame size is its own trace (reduce_retracing would relax them)
        graph = dict(jit_compile=True) if jit_compile else dict(reduce_retracing=True)

        @tf.function(**graph)
        def motion(current, key):
            out = flow_net(tf.stack([current, key], axis=1), training=False)
            return out["flow"], out["scale"]

        if _is_detector(model):  # NMS has no XLA kernel: the head runs in a plain graph
            return cls(tf.function(lambda f: n_feat(f, training=False), **graph), motion,
                       tf.function(task, reduce_retracing=True), **kwargs)
        return cls(tf.function(lambda f: n_feat(f, training=False), **graph), motion,
                   tf.function(task, **graph), **kwargs)

    @classmethod
    def from_signatures(cls, loaded, **kwargs):
        """A runner on a SavedModel exported with :func:`signatures` (``tf.saved_model.load`` result, or
        anything with the same ``signatures`` mapping): the TF Serving deployment's loop."""
        sig = loaded.signatures

        def motion(current, key):
            out = sig["motion"](frame=tf.cast(current, tf.uint8), key_frame=tf.cast(key, tf.uint8))
            return out["flow"], out["scale"]

        def task(x, f):
            out = sig["task"](features=x, frame=tf.cast(f, tf.uint8))
            return out["logits"] if "logits" in out else out["detections"]

        return cls(lambda f: sig["key_features"](frames=tf.cast(f, tf.uint8))["features"], motion, task, **kwargs)

    def _change(self, current, key, flow, scale):
        return float(self._change_fn(current, key, tf.convert_to_tensor(flow), tf.convert_to_tensor(scale)))

    def _change_measure(self, current, key, flow, scale):
        if self.measure == "flow":
            return tf.reduce_mean(tf.norm(flow, axis=-1))
        if self.measure == "scale":
            return tf.reduce_mean(tf.abs(1.0 - scale))
        # warp error at 1/8 of the frame: the key frame warped to the current one by the flow
        size = tf.shape(current)[1:3] // 8
        grey = lambda x: tf.image.resize(tf.image.rgb_to_grayscale(tf.cast(x, tf.float32)), size,  # noqa: E731
                                         antialias=True)
        flow8 = tf.image.resize(flow, size) * (tf.cast(size[0], tf.float32) / tf.cast(tf.shape(flow)[1], tf.float32))
        warped = backward_warp(grey(key), flow8)
        return tf.reduce_mean(tf.abs(warped - grey(current))) / 255.0

    def run(self, frames):
        """Yields ``(index, output, is_key)`` for every frame of ``frames`` (an iterable of uint8
        ``(H, W, 3)`` arrays or an array ``(T, H, W, 3)``), in order, streaming."""
        self.key_frames = []
        key = features = None
        since_key = 0
        for i, frame in enumerate(frames):
            frame = tf.convert_to_tensor(np.asarray(frame)[None])
            is_key = key is None
            if not is_key and self.scheduler == "fixed":
                is_key = since_key + 1 >= self.key_interval
            if not is_key:
                flow, scale = self.motion(frame, key)
                if self.scheduler == "adaptive":
                    is_key = self._change(frame, key, flow, scale) > self.threshold or (
                        self.max_interval is not None and since_key + 1 >= self.max_interval)
            if is_key:
                key, features, since_key = frame, self.key_features(frame), 0
                self.feature_calls += 1
                self.key_frames.append(i)
                current = features
            else:
                since_key += 1
                current = self._warp(features, flow, scale)
            yield i, np.asarray(self.task(current, frame))[0], is_key


def _is_detector(model):
    return "rfcn_head" in [layer.name for layer in model.layers]


def _task_output(model):
    """``(features, frame) -> output`` of N_task: logits cropped to the frame (segmentation,
    :func:`tfvideo.models.dff.dff_segmenter`) or the detections ``(B, N, 6)`` of the R-FCN head
    (:func:`tfvideo.models.rfcn.dff_detector`)."""
    n_task = model.get_layer("n_task")
    if _is_detector(model):
        head = model.get_layer("rfcn_head")
        return lambda x, f: head({**n_task(x, training=False), "frames": f}, training=False)
    crop = CropToFrame()
    return lambda x, f: crop([n_task(x, training=False), f])


def signatures(model):
    """Serving signatures of a :func:`tfvideo.models.dff.dff_segmenter` or
    :func:`tfvideo.models.rfcn.dff_detector` model, for :func:`tfvideo.export.export_for_serving`:
    everything Algorithm 1 needs, uint8 frames of any size (multiples of 128) in:

    * ``key_features``: ``frames`` (B, H, W, 3) -> ``features`` (N_feat; run on key frames);
    * ``motion``: ``frame``, ``key_frame`` -> ``flow``, ``scale`` (F);
    * ``propagate``: ``frame``, ``key_frame``, ``features`` -> ``features`` (F then W, Eq. 3);
    * ``task``: ``features``, ``frame`` -> the task's outputs (N_task on given features);
    * ``serving_default``: ``frames`` -> the same outputs: the per-frame network ("Frame").

    The outputs: segmentation ``logits`` (B, H, W, K) cropped to the frame and ``labels`` (B, H, W);
    detection ``boxes`` (B, N, 4) ``(x1, y1, x2, y2)`` inclusive corners in frame pixels, ``scores``
    (B, N), ``classes`` (B, N) int32 (-1 for unused rows), ``num_detections`` (B,) and ``detections``
    (B, N, 6), the same packed (:func:`tfvideo.models.rfcn.split_detections`).
    """
    from tfvideo.models.rfcn import split_detections

    n_feat, flow_net = model.get_layer("n_feat"), model.get_layer("flownet")
    warp, task = FeatureWarp(), _task_output(model)
    detector = _is_detector(model)
    channels = int(n_feat.output.shape[-1])
    frame = tf.TensorSpec((None, None, None, 3), tf.uint8)
    feats = tf.TensorSpec((None, None, None, channels), tf.float32)

    def motion(f, k):
        out = flow_net(tf.stack([f, k], axis=1), training=False)
        return out["flow"], out["scale"]

    def head(x, f):
        out = task(x, f)
        if detector:
            return {**split_detections(out), "detections": out}
        return {"logits": out, "labels": tf.argmax(out, axis=-1, output_type=tf.int32)}

    def propagate(frame, key_frame, features):
        flow, scale = motion(frame, key_frame)
        return {"features": warp([features, flow, scale])}

    return {
        "key_features": tf.function(lambda frames: {"features": n_feat(frames, training=False)},
                                    input_signature=[tf.TensorSpec(frame.shape, tf.uint8, name="frames")]),
        "motion": tf.function(lambda frame, key_frame: dict(zip(("flow", "scale"), motion(frame, key_frame))),
                              input_signature=[tf.TensorSpec(frame.shape, tf.uint8, name="frame"),
                                               tf.TensorSpec(frame.shape, tf.uint8, name="key_frame")]),
        "propagate": tf.function(propagate, input_signature=[
            tf.TensorSpec(frame.shape, tf.uint8, name="frame"), tf.TensorSpec(frame.shape, tf.uint8, name="key_frame"),
            tf.TensorSpec(feats.shape, tf.float32, name="features")]),
        "task": tf.function(head, input_signature=[tf.TensorSpec(feats.shape, tf.float32, name="features"),
                                                    tf.TensorSpec(frame.shape, tf.uint8, name="frame")]),
        "serving_default": tf.function(lambda frames: head(n_feat(frames, training=False), frames),
                                       input_signature=[tf.TensorSpec(frame.shape, tf.uint8, name="frames")]),
    }
