"""Middlebury ``.flo`` optical-flow files (also used by MPI-Sintel, FlyingChairs, KITTI tools...).

Format (all little-endian):

=========  =========================  ==============================================
bytes      type                       content
=========  =========================  ==============================================
0..3       float32                    tag ``202021.25`` (the bytes ``b"PIEH"``)
4..7       int32                      width ``W``
8..11      int32                      height ``H``
12..       float32 ``(H, W, 2)``      ``(u, v)`` interleaved, row-major
=========  =========================  ==============================================

``u`` is horizontal (x, right), ``v`` vertical (y, down), in pixels, from the first frame to the
second: the project convention (``frame1(p + flow(p)) ~= frame0(p)``). A vector with ``|u|`` or
``|v|`` greater than ``1e9`` is *unknown* (Middlebury writes ``1e10``); we also treat NaN/inf as
unknown. :func:`read_flo` returns the flow with unknown vectors set to 0 plus a validity mask;
:func:`write_flo` writes invalid (or non-finite) vectors as ``1e10``.

A file whose tag is wrong, whose size does not match its header (truncated or with trailing bytes)
or whose header announces an absurd size raises :class:`~tfvideo.data.items.ReadError`.

Example
-------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "flow.flo")
>>> flow = np.zeros((4, 6, 2), np.float32); flow[..., 0] = 1.5
>>> valid = np.ones((4, 6), bool); valid[0, 0] = False
>>> write_flo(path, flow, valid)
>>> flow2, valid2 = read_flo(path)
>>> flow2.shape, float(flow2[0, 0, 0]), float(flow2[1, 1, 0]), int(valid2.sum())
((4, 6, 2), 0.0, 1.5, 23)
"""

from __future__ import annotations

import os
import struct

import numpy as np

from tfvideo.data.items import ReadError
from tfvideo.files import atomic_path

__all__ = ["FLO_TAG", "UNKNOWN_FLOW_THRESH", "UNKNOWN_FLOW", "MAX_FLO_SIDE", "read_flo",
           "write_flo"]

#: The first four bytes of every ``.flo`` file (the float32 ``202021.25``).
FLO_TAG = b"PIEH"
#: Components with an absolute value above this are unknown (same as
#: ``tfvideo.ops.flow.UNKNOWN_FLOW_THRESH``; not imported to keep this reader free of TensorFlow).
UNKNOWN_FLOW_THRESH = 1e9
#: Value written for unknown vectors.
UNKNOWN_FLOW = 1e10
#: Header sizes above this (per side) are rejected as corrupt rather than allocated.
MAX_FLO_SIDE = 100_000

_HEADER = struct.Struct("<4sii")


def read_flo(path):
    """Read a ``.flo`` file.

    Args:
      path: file path (str or path-like).

    Returns:
      ``(flow, valid)``: ``float32`` ``(H, W, 2)`` flow (unknown vectors set to 0) and ``bool``
      ``(H, W)`` mask, False where the file holds an unknown (``> 1e9`` or non-finite) vector.

    Raises:
      ReadError: missing/unreadable file, wrong tag, absurd size, or data size not matching
        the header.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReadError(path, "flow file does not exist")
    try:
        with open(path, "rb") as f:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise ReadError(path, f"truncated .flo header: {len(header)} of {_HEADER.size} "
                                      "bytes")
            tag, width, height = _HEADER.unpack(header)
            if tag != FLO_TAG:
                raise ReadError(path, f"not a .flo file: tag {tag!r} (float "
                                      f"{struct.unpack('<f', tag)[0]!r}), expected {FLO_TAG!r} "
                                      "(202021.25)")
            if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE):
                raise ReadError(path, f"absurd .flo size in header: width {width}, height {height} "
                                      f"(each must be in [1, {MAX_FLO_SIDE}])")
            expected = 8 * width * height
            actual = os.fstat(f.fileno()).st_size - _HEADER.size
            if actual != expected:
                what = "truncated" if actual < expected else "trailing bytes after the data"
                raise ReadError(path, f"{what}: header says {width}x{height} (W x H), i.e. "
                                      f"{expected} data bytes, but the file has {actual}")
            data = f.read(expected)
    except OSError as err:
        raise ReadError(path, f"cannot read file: {err.strerror or err}") from err
    if len(data) != expected:  # file shrank while reading
        raise ReadError(path, f"truncated: read {len(data)} of {expected} data bytes")
    flow = np.frombuffer(data, "<f4").reshape(height, width, 2).astype(np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.all(np.isfinite(flow) & (np.abs(flow) <= UNKNOWN_FLOW_THRESH), axis=-1)
    flow[~valid] = 0.0
    return flow, valid


def write_flo(path, flow, valid=None):
    """Write a ``.flo`` file (to a temporary name in the same folder, then renamed).

    Args:
      path: destination file.
      flow: ``(H, W, 2)`` array (any real dtype, stored as float32), pixels, ``[..., 0] = u``.
      valid: optional ``(H, W)`` bool mask; vectors where it is False, and non-finite vectors, are
        written as unknown (``1e10``).
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2 or 0 in flow.shape:
        raise ValueError(f"flow must be a non-empty (height, width, 2) array, got shape "
                         f"{flow.shape}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise TypeError(f"flow must have a real numeric dtype, got {flow.dtype}")
    height, width = flow.shape[:2]
    data = flow.astype("<f4")  # a copy
    unknown = ~np.isfinite(data).all(-1)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != (height, width):
            raise ValueError(f"valid must have shape {(height, width)} (the flow's height, width), "
                             f"got {valid.shape}")
        unknown |= ~valid.astype(bool)
    data[unknown] = UNKNOWN_FLOW
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_HEADER.pack(FLO_TAG, width, height))
        f.write(data.tobytes())
