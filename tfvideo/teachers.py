"""Teacher optical flow for "semi-truth" training (V2V, seed 000 Sec. 5).

V2V learns optical flow from a *teacher*: a classical method run on unlabelled video, whose output is
stored in the shards as if it were ground truth (the paper used OpenCV's GPU Brox on UCF101). Here the
teacher is one of :data:`TEACHERS`:

=========  ========================================================================================
name       method
=========  ========================================================================================
``tvl1``   OpenCV's ``cv2.optflow.DualTVL1OpticalFlow_create()`` with its default parameters (5
           scales, scale step 0.8, 5 warps, tau 0.25, lambda 0.15, theta 0.3, epsilon 0.01, median
           filtering 5): the TV-L1 most action-recognition work stores offline.
``tvnet``  our :class:`tfvideo.layers.TVNet`, frozen (exact TV-L1, Algorithm 1 of seed 002), by
           default 3 scales x 5 warps x 50 iterations (``scales``/``warps``/``iterations``).
``dis``    OpenCV's DIS (``cv2.DISOpticalFlow_create(PRESET_MEDIUM)``): fast, coarser.
=========  ========================================================================================

Brox (the paper's teacher) is not in OpenCV's CPU build, so it is not offered. Every teacher sees the
frames as 8-bit grey (ITU-R BT.601 luma) and returns the flow from each frame to the next in the
project's convention (``flow[..., 0]`` = x, ``frame1(p + flow(p)) ~= frame0(p)``).

Use with :func:`tfvideo.data.prepare.prepare` (``item_transform=FlowTeacher("tvl1")``): every listed
item is wrapped in a :class:`TeacherFlowItem` whose ``load`` replaces the stored flows (if any) by the
teacher's, computed on the frames as they are written (after ``short_side`` resizing), and the
teacher's :meth:`FlowTeacher.settings` are recorded with the shards, so a shard folder made with one
teacher is never reused for another.

This module sits on the harness floor (it imports :mod:`tfvideo.layers` for TVNet, lazily) and is
picklable: shard-writing workers rebuild the TVNet layer once per process.

>>> import numpy as np
>>> frames = np.zeros((3, 32, 48, 3), np.uint8)
>>> FlowTeacher("dis")(frames).shape
(2, 32, 48, 2)
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tfvideo.data.items import Item

__all__ = ["TEACHERS", "FlowTeacher", "TeacherFlowItem"]

TEACHERS = ("tvl1", "tvnet", "dis")
#: TVNet teacher defaults: "TV-L1-3-5-50" in the naming of seed 002 (scales-warps-iterations).
TVNET_TEACHER = {"scales": 3, "warps": 5, "iterations": 50}

_TVNET_CACHE: dict = {}  # per process: settings -> (layer, tf.function)


def _grey(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


class FlowTeacher:
    """A flow method used as teacher: ``teacher(frames)`` -> flows between consecutive frames.

    Args:
      name: one of :data:`TEACHERS`.
      scales, warps, iterations: TVNet's (only for ``"tvnet"``; defaults :data:`TVNET_TEACHER`).
      batch_size: frame pairs per TVNet call (memory vs speed; only ``"tvnet"``).

    Raises:
      ValueError: unknown ``name``, or TVNet settings given to another teacher.
    """

    def __init__(self, name: str = "tvl1", *, scales=None, warps=None, iterations=None, batch_size=8):
        if name not in TEACHERS:
            raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}; got {name!r}")
        given = {k: v for k, v in (("scales", scales), ("warps", warps), ("iterations", iterations))
                 if v is not None}
        if given and name != "tvnet":
            raise ValueError(f"{', '.join(given)} only apply to the 'tvnet' teacher, not {name!r}")
        for key, value in given.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.name = name
        self.tvnet = {**TVNET_TEACHER, **given} if name == "tvnet" else None
        self.batch_size = batch_size

    def __repr__(self):
        extra = "" if self.tvnet is None else ", " + ", ".join(f"{k}={v}" for k, v in self.tvnet.items())
        return f"FlowTeacher({self.name!r}{extra})"

    def describe(self) -> str:
        """Short label for tables, e.g. ``"OpenCV TV-L1"`` or ``"TVNet 3-5-50"``."""
        if self.name == "tvnet":
            return "TVNet {scales}-{warps}-{iterations}".format(**self.tvnet)
        return {"tvl1": "OpenCV TV-L1", "dis": "OpenCV DIS"}[self.name]

    def settings(self) -> dict:
        """What the teacher's output depends on (recorded with the shards)."""
        return {"name": self.name, **(self.tvnet or {})}

    def wrap(self, item: Item) -> "TeacherFlowItem":
        """``item`` whose flows are replaced by this teacher's (``prepare(item_transform=...)`` hook)."""
        return TeacherFlowItem(video_id=item.video_id, label=item.label, label_text=item.label_text,
                               source=item.source, base=item, teacher=self)

    def __call__(self, frames) -> np.ndarray:
        """``uint8 (T, H, W, 3)`` RGB frames -> ``float32 (T - 1, H, W, 2)`` flows frame t -> t + 1."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
            raise ValueError(f"frames must be uint8 (T >= 2, H, W, 3), got {frames.dtype} {frames.shape}")
        grey = _grey(frames)
        if self.name == "tvnet":
            return self._tvnet(grey)
        method = (cv2.optflow.DualTVL1OpticalFlow_create() if self.name == "tvl1"
                  else cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM))
        return np.stack([method.calc(grey[t], grey[t + 1], None)
                         for t in range(len(grey) - 1)]).astype(np.float32)

    def _tvnet(self, grey: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        key = tuple(sorted(self.tvnet.items()))
        if key not in _TVNET_CACHE:
            from tfvideo.layers import TVNet

            layer = TVNet(**self.tvnet, trainable=False)
            _TVNET_CACHE[key] = tf.function(lambda a, b: layer([a, b]), reduce_retracing=True)
        run = _TVNET_CACHE[key]
        g = grey.astype(np.float32)[..., None]
        pairs = len(g) - 1
        out = []
        for s in range(0, pairs, self.batch_size):
            e = min(s + self.batch_size, pairs)
            out.append(run(g[s:e], g[s + 1:e + 1]).numpy())
        return np.concatenate(out).astype(np.float32)


@dataclasses.dataclass(kw_only=True)
class TeacherFlowItem(Item):
    """An item whose ``load`` returns the teacher's flows between consecutive frames.

    Everything else ``base.load`` returns (frames, label maps, ...) is kept; ``flows`` (stored ground
    truth, if any) are replaced by ``teacher(frames)``, one flow per consecutive pair, all valid.
    """

    base: Item
    teacher: FlowTeacher

    def load(self, short_side=None, fps=None):
        out = dict(self.base.load(short_side=short_side, fps=fps))
        flows = self.teacher(out["frames"])
        out.update(flows=flows, flow_frame_index=np.arange(len(flows), dtype=np.int64), flow_valid=None)
        return out
