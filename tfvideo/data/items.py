"""What the shard writer consumes: :class:`Item` s that know how to load one example.

Dataset adapters (HMDB51, UCF101, folders, Sintel, Middlebury, Cityscapes, GATECH, the built-in
``motion`` set) turn a dataset on disk into a list of items per split; the writer
(:mod:`tfvideo.data.shards`) calls ``item.load(...)`` in worker processes and writes the returned
fields with :func:`tfvideo.data.schema.make_sequence_example`. An item that cannot be loaded raises
:class:`ReadError`; the writer skips it and lists it in the manifest. Video files are
:class:`tfvideo.data.action_sets.VideoItem` s; the other adapters define their own items.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ReadError", "Item"]


class ReadError(Exception):
    """An example that cannot be read: ``err.path`` names the file, ``err.reason`` says why."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = str(reason)


@dataclasses.dataclass
class Item:
    """One example to write. Subclasses implement :meth:`load`.

    Attributes:
      video_id: stable, unique id within the dataset (``video/id``), e.g. ``"<class>/<stem>"``.
      label: class index, ``-1`` if the dataset has no classes.
      label_text: class name, ``""`` if none.
      source: the main file or folder (for messages and the manifest).
    """

    video_id: str
    label: int
    label_text: str
    source: str

    def load(self, short_side=None, fps=None):
        """Return the keyword arguments of :func:`~tfvideo.data.schema.make_sequence_example`.

        ``frames`` (uint8 RGB ``(T, H, W, 3)``), ``fps`` and optionally ``flows``,
        ``flow_frame_index``, ``flow_valid``, ``segmentations``, ``segmentation_frame_index``,
        and the detection keys ``boxes (M, 4)``, ``box_labels (M,)``, ``box_frames (M,)``,
        ``box_tracks (M,)``, ``box_frame_index (A,)`` (:mod:`tfvideo.data.schema`, "Boxes");
        ``label``/``label_text``/``video_id`` are filled in by the writer from the item. Frames are
        resized so their shorter side is ``short_side`` (dense targets resized consistently: flow
        vectors scaled, label maps nearest-neighbour, boxes scaled by
        :func:`tfvideo.data.detection_sets.scale_boxes`) and, for videos, subsampled to ``fps``.
        Raises :class:`ReadError` when the example cannot be read.
        """
        raise NotImplementedError
