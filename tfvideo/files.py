"""Writing files safely, without TensorFlow: atomic writers, JSON conversion, JSONL, folder locks.

Every file that tfvideo and its recipes write goes through this module:

* :func:`atomic_path` / :func:`atomic_write_text` / :func:`atomic_write_json`: the data is written to a
  temporary file in the destination folder and renamed (``os.replace``) when complete, so a crash or
  a kill never leaves a partial file under the final name (the temporary file is removed on error).
* :func:`jsonable`: NumPy / TensorFlow scalars and arrays, tuples, paths and bytes to JSON types (one
  rule for the run folders, the manifests and the evaluation summaries).
* :func:`read_jsonl` / :func:`append_jsonl`: one JSON object per line, each line written with one
  ``write`` and flushed; a torn last line (a kill mid-write) is skipped when reading.
* :class:`FolderLock`: an exclusive lock on a folder held by a live process (``fcntl.flock``, released
  by the OS when the process ends, even on ``kill -9``), so that two processes never train into the
  same run folder.

This module imports only the standard library (and NumPy lazily), so data-preparation workers and
command-line tools can use it without starting TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from typing import Any, Iterator

__all__ = ["FolderBusyError", "FolderLock", "append_jsonl", "atomic_directory", "atomic_path", "atomic_write_json",
           "atomic_write_text", "jsonable", "read_jsonl"]


@contextlib.contextmanager
def atomic_path(path, allow_empty: bool = False) -> Iterator[str]:
    """Yields a temporary file name next to ``path`` (same suffixes, e.g. ``.weights.h5``, so writers
    that check the extension accept it); renames it to ``path`` on success.

    Parent directories are created. On any exception the temporary file is deleted and ``path`` is left
    untouched; an empty result is an error unless ``allow_empty``. The file gets the permissions
    ``open()`` would give it (``0o666`` minus the umask), not ``mkstemp``'s owner-only ``0o600``.

    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with atomic_path(out) as tmp, open(tmp, "w") as f:
    ...     _ = f.write("hello")
    >>> open(out).read()
    'hello'
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    stem = base.lstrip(".")
    ext = stem[stem.index("."):] if "." in stem else ""  # all suffixes: ".weights.h5", ".tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        if not os.path.exists(tmp) or (os.path.getsize(tmp) == 0 and not allow_empty):
            raise OSError(f"writing {path!r} failed (no data written)")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path, prefix: str = ".tmp-") -> Iterator[str]:
    """Yields a new temporary folder next to ``path`` (named ``<prefix>...``); renames it to ``path``
    when the block ends without an exception, else deletes it. ``path`` must not exist yet
    (``FileExistsError``). Used for SavedModel versions: TF Serving ignores folders whose name is not
    all digits, so it never sees a half-written version. The folder gets the permissions ``mkdir``
    would give it (``0o777`` minus the umask), not ``mkdtemp``'s owner-only ``0o700``, so that a
    server running as another user can read it."""
    import shutil

    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists already")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> str:
    """Writes ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path, allow_empty=True) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return os.fspath(path)


def atomic_write_json(path, value, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Writes ``jsonable(value)`` as JSON (plus a final newline) through :func:`atomic_path`."""
    return atomic_write_text(path, json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys) + "\n")


def jsonable(value) -> Any:
    """``value`` converted to JSON types.

    Rules: mappings -> dicts with ``str`` keys; lists, tuples, sets and arrays -> lists; NumPy and
    TensorFlow scalars (anything with ``.numpy()`` or ``.item()``) -> Python numbers; non-finite floats
    -> ``None`` (JSON has no NaN); ``bytes`` -> text (undecodable bytes replaced); ``bool``, ``int``,
    ``str`` and ``None`` as they are; anything else (paths, dtypes, ...) -> ``str(value)``.

    >>> import numpy as np
    >>> jsonable({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": float("nan"), 3: b"x"})
    {'a': 0.5, 'b': [1, 2], 'c': None, '3': 'x'}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "numpy") and callable(value.numpy):  # tf.Tensor / tf.Variable
        value = value.numpy()
    if hasattr(value, "tolist") and callable(value.tolist):  # NumPy array or scalar
        listed = value.tolist()
        if listed is not value:
            return jsonable(listed)
    return str(value)


def read_jsonl(path) -> list[dict]:
    """The JSON objects of a ``.jsonl`` file (empty if the file is missing); unparseable lines (a torn
    last line after a kill) are skipped."""
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    return rows


def append_jsonl(path, row) -> None:
    """Appends ``jsonable(row)`` as one line to ``path`` with a single ``write``, flushed at once."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(jsonable(row)) + "\n")
        f.flush()


class FolderBusyError(RuntimeError):
    """Another live process holds the lock of this folder."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` held by this process (``folder/.lock``).

    ``fcntl.flock`` on an open file: the OS releases it when the process ends in any way (including
    ``kill -9``), so a crashed run never leaves a stale lock behind. The lock file holds the owner's
    pid and command line, quoted in the error of a second process. Reentrant within one process (an
    ``acquire`` of a folder this process holds already is a no-op). Locks are advisory and work
    on local file systems; on network file systems support varies (NFS v4 supports them).

    Args:
        folder: the folder (created if missing).
        what: a noun for messages, e.g. ``"run folder"``.

    Raises (on :meth:`acquire`):
        FolderBusyError: another process holds the lock; the message names it.

    >>> import tempfile
    >>> lock = FolderLock(tempfile.mkdtemp()).acquire()
    >>> lock.release()
    """

    _held: dict = {}  # real path of the lock file -> fd, for every lock this process holds

    def __init__(self, folder, what: str = "folder"):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, ".lock")
        self.what = what
        self._fd = None
        self._key = None

    def acquire(self) -> "FolderLock":
        """Takes the lock (a no-op if this process holds it already, through any object)."""
        if self.held:
            return self
        import fcntl

        key = os.path.realpath(self.path)
        if key in FolderLock._held:
            self._fd, self._key = FolderLock._held[key], key
            return self

        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = ""
            with contextlib.suppress(OSError):
                owner = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
            os.close(fd)
            raise FolderBusyError(
                f"{self.what} {self.folder} is in use by another live process"
                f"{' (' + owner + ')' if owner else ''}: wait for it to finish or stop it, or choose "
                "another folder") from None
        os.ftruncate(fd, 0)
        import sys

        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode(), 0)
        self._fd = FolderLock._held[key] = fd
        self._key = key
        return self

    def release(self) -> None:
        """Releases the lock (for every object of this process that holds it); a no-op when it was
        released already (through this or another object: its descriptor is never closed twice, as
        the number may belong to another file by then)."""
        fd, self._fd = self._fd, None
        if fd is None or FolderLock._held.get(self._key) != fd:
            return
        import fcntl

        del FolderLock._held[self._key]
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this process holds the lock through this object."""
        return self._fd is not None and FolderLock._held.get(self._key) == self._fd

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
