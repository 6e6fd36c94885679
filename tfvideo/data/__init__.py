"""Video data: decoding, the TFRecord schema, shards, dataset adapters and tf.data pipelines.

* :mod:`tfvideo.data.video` -- OpenCV decode/encode (RGB ``uint8``), bad files -> ``ReadError``.
* :mod:`tfvideo.data.schema` -- the one ``SequenceExample`` schema (writer and reader both use it).
* :mod:`tfvideo.data.shards` -- balanced shards, temp-then-rename, ``manifest.json``, resumable.
* :mod:`tfvideo.data.prepare` -- ``python -m tfvideo.data.prepare DATASET ...``.
* adapters: :mod:`~tfvideo.data.action_sets` (HMDB51, UCF101, folders),
  :mod:`~tfvideo.data.flow_sets` and :mod:`~tfvideo.data.flo` (Middlebury, MPI-Sintel),
  :mod:`~tfvideo.data.segmentation_sets` (Cityscapes sequences, GATECH-style),
  :mod:`~tfvideo.data.motion` (the built-in camera-motion set), :mod:`~tfvideo.data.objects` (the
  built-in labelled set with exact flow and occlusions).
* :mod:`tfvideo.data.pipeline` -- tf.data builders; :mod:`~tfvideo.data.sampling` and
  :mod:`~tfvideo.data.augment` -- the frame samplers and clip-consistent augmentation they use.
"""
