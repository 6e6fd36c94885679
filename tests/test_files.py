"""Tests of tfvideo.files: atomic writers, jsonable, JSONL and the folder lock (checked across real
processes: a second interpreter, and a holder killed with SIGKILL)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfvideo.files import (FolderBusyError, FolderLock, append_jsonl, atomic_directory, atomic_path,
                           atomic_write_json, atomic_write_text, jsonable, read_jsonl)


# ------------------------------------------------------------------------------ atomic_path ----
@pytest.mark.parametrize("error", [RuntimeError("writer crashed"), KeyboardInterrupt()])
def test_atomic_path_leaves_nothing_on_an_exception_and_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(type(error)):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half of the new cont")
            raise error
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_renames_when_complete_and_keeps_every_suffix(tmp_path):
    path = tmp_path / "sub" / "ckpt-3.weights.h5"  # parent folder is created
    with atomic_path(path) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path / "sub")
        assert os.path.basename(tmp).startswith(".ckpt-3.weights.h5.")  # hidden while written
        assert tmp.endswith(".weights.h5")  # writers that check the extension accept it
        assert not path.exists()
        with open(tmp, "wb") as f:
            f.write(b"data")
    assert path.read_bytes() == b"data"
    assert os.listdir(tmp_path / "sub") == ["ckpt-3.weights.h5"]


def test_atomic_path_refuses_an_empty_result_unless_allowed(tmp_path):
    with pytest.raises(OSError, match="no data written"):
        with atomic_path(tmp_path / "empty.bin"):
            pass
    assert os.listdir(tmp_path) == []
    with atomic_path(tmp_path / "empty.bin", allow_empty=True):
        pass
    assert (tmp_path / "empty.bin").read_bytes() == b""


def test_written_files_and_folders_get_the_usual_permissions(tmp_path):
    """Not mkstemp's 0o600 / mkdtemp's 0o700: another user (e.g. a server) can read them."""
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "1"):
            pass
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "1").st_mode) == 0o755


def test_atomic_write_text_and_json(tmp_path):
    assert atomic_write_text(tmp_path / "t.txt", "héllo\n") == str(tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_text(tmp_path / "t.txt", "")  # empty text is allowed
    assert (tmp_path / "t.txt").read_text() == ""
    atomic_write_json(tmp_path / "m.json", {"b": np.float32(0.5), "a": float("nan")}, sort_keys=True)
    text = (tmp_path / "m.json").read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": None, "b": 0.5}


# ------------------------------------------------------------------------- atomic_directory ----
def test_atomic_directory_renames_when_complete(tmp_path):
    final = tmp_path / "toy" / "1"
    with atomic_directory(final, prefix=".tmp-export-") as tmp:
        assert os.path.basename(tmp).startswith(".tmp-export-") and not final.exists()
        (pathlib.Path(tmp) / "saved_model.pb").write_bytes(b"pb")
    assert (final / "saved_model.pb").read_bytes() == b"pb"
    assert os.listdir(tmp_path / "toy") == ["1"]


def test_atomic_directory_refuses_an_existing_target_and_cleans_up(tmp_path):
    final = tmp_path / "1"
    final.mkdir()
    (final / "keep").write_text("old")
    with pytest.raises(FileExistsError, match="exists already"):
        with atomic_directory(final) as tmp:
            (pathlib.Path(tmp) / "new").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["1"] and os.listdir(final) == ["keep"]


@pytest.mark.parametrize("error", [ValueError("check failed"), KeyboardInterrupt()])
def test_atomic_directory_removes_the_folder_on_an_exception(tmp_path, error):
    with pytest.raises(type(error)):
        with atomic_directory(tmp_path / "2") as tmp:
            (pathlib.Path(tmp) / "variables").mkdir()
            raise error
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------- jsonable ----
def test_jsonable_rules():
    value = {
        "f32": np.float32(0.25), "i64": np.int64(7), "bool": np.bool_(True),
        "array": np.arange(4, dtype=np.int32).reshape(2, 2), "nan": float("nan"),
        "np_inf": np.float64("inf"), "nan_in_array": np.array([1.0, np.nan]), "tuple": (1, (2, 3)),
        "bytes": b"video/1", "bad_bytes": b"\xff", "path": pathlib.Path("a") / "b.txt",
        "none": None, "text": "x", 3: "int key",
    }
    out = jsonable(value)
    assert out == {
        "f32": 0.25, "i64": 7, "bool": True, "array": [[0, 1], [2, 3]], "nan": None, "np_inf": None,
        "nan_in_array": [1.0, None], "tuple": [1, [2, 3]], "bytes": "video/1", "bad_bytes": "\ufffd",
        "path": os.path.join("a", "b.txt"), "none": None, "text": "x", "3": "int key",
    }
    assert type(out["i64"]) is int and type(out["f32"]) is float and type(out["bool"]) is bool
    json.dumps(out, allow_nan=False)  # valid strict JSON


def test_jsonable_tensors():
    import tensorflow as tf

    assert jsonable({"t": tf.constant([1.5, math.inf]), "v": tf.Variable(3)}) == {"t": [1.5, None],
                                                                                  "v": 3}


# ------------------------------------------------------------------------------------ jsonl ----
def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_jsonl(path) == []  # missing file
    append_jsonl(path, {"epoch": 0, "loss": np.float32(1.5)})
    append_jsonl(path, {"epoch": 1, "loss": float("nan")})
    with open(path, "a") as f:
        f.write('{"epoch": 2, "lo')  # killed mid-write
    assert read_jsonl(path) == [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": None}]


# ------------------------------------------------------------------------------- FolderLock ----
_TRY_LOCK = textwrap.dedent("""
    import sys
    from tfvideo.files import FolderBusyError, FolderLock
    try:
        FolderLock(sys.argv[1], "run folder").acquire()
    except FolderBusyError as err:
        print("busy:", err)
        sys.exit(3)
    print("acquired")
""")

_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from tfvideo.files import FolderLock
    FolderLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def _try_lock_in_another_process(folder):
    proc = subprocess.Popen([sys.executable, "-c", _TRY_LOCK, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 3), err
    return proc.returncode, out


def test_folder_lock_excludes_a_second_process_until_released(tmp_path):
    folder = tmp_path / "run"
    lock = FolderLock(folder).acquire()
    try:
        assert lock.held and (folder / ".lock").exists()
        code, out = _try_lock_in_another_process(folder)
        assert code == 3, out
        assert f"run folder {folder} is in use by another live process" in out
        assert f"pid {os.getpid()}" in out  # names the owner
        again = FolderLock(folder).acquire()  # the same process: a no-op, no error
        assert again.held and lock.held
        assert _try_lock_in_another_process(folder)[0] == 3  # still held
    finally:
        lock.release()
    assert not lock.held
    code, out = _try_lock_in_another_process(folder)
    assert code == 0 and out.strip() == "acquired"


def test_folder_lock_is_freed_when_its_holder_is_killed(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError, match=f"{folder}.*pid {holder.pid}"):
            FolderLock(folder).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert holder.returncode == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()
    lock = FolderLock(folder).acquire()  # the OS released the flock of the dead process
    lock.release()
    assert _try_lock_in_another_process(folder)[0] == 0


def test_folder_lock_release_through_another_object_never_closes_a_reused_descriptor(tmp_path):
    first = FolderLock(tmp_path / "a").acquire()
    second = FolderLock(tmp_path / "a").acquire()  # shares the first one's descriptor
    second.release()  # releases the lock for both objects
    assert not first.held and not second.held
    with open(tmp_path / "other.txt", "w") as other:  # may get the freed descriptor number
        first.release()  # a no-op: must not close `other`
        other.write("still open")
    assert (tmp_path / "other.txt").read_text() == "still open"
    again = first.acquire()  # a released object can lock again
    assert again.held and _try_lock_in_another_process(tmp_path / "a")[0] == 3
    again.release()


def test_files_module_does_not_import_tensorflow():
    code = "import sys, tfvideo.files, tfvideo.checks, tfvideo.cli; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
