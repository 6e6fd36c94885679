"""Real photographs that ship with scikit-image (``skimage.data``, no download), one loader for all.

The built-in ``motion`` dataset (:mod:`tfvideo.data.motion`) films them with a virtual camera and the
flow demo (:mod:`tfvideo.demo.flow`) moves them by a known motion. Both load them through
:func:`photo`: float32 RGB in [0, 255], grey photographs repeated to three channels.

This module imports neither TensorFlow nor OpenCV (scikit-image is imported on the first load).

>>> photo("camera").shape, photo("camera").dtype
((512, 512, 3), dtype('float32'))
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["PHOTOS", "photo"]

#: The photographs of ``skimage.data`` stored inside the package (no download needed).
PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "grass",
          "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
          "text")


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """``skimage.data.<name>()`` as a read-only float32 RGB array ``(H, W, 3)`` in [0, 255].

    Grey photographs are repeated to three channels; an alpha channel is dropped. Cached: every call
    with the same name returns the same (read-only) array; copy it to modify it.

    Args:
      name: one of :data:`PHOTOS`.

    Raises:
      ValueError: ``name`` is not one of :data:`PHOTOS` (the message lists them).
    """
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(PHOTOS)}; got {name!r}")
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = np.ascontiguousarray(img[..., :3], dtype=np.float32)
    img.setflags(write=False)
    return img
