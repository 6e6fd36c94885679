import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data import schema
from tfvideo.data.items import Item, ReadError
from tfvideo.data.shards import read_manifest, shard_files, write_shards


@dataclasses.dataclass
class ArrayItem(Item):
    """Frames made in memory; ``fail`` = "read" raises ReadError, "crash" a KeyboardInterrupt."""

    num_frames: int = 3
    fail: str = ""

    def load(self, short_side=None, fps=None):
        if self.fail == "read":
            raise ReadError(self.source, "broken on purpose")
        if self.fail == "crash":
            raise KeyboardInterrupt("simulated crash")
        if self.fail == "sleep":
            time.sleep(60)
        return {"frames": np.full((self.num_frames, 8, 8, 3), 10 * self.label, np.uint8),
                "fps": 25.0}


def items(n, classes=2, **kw):
    return [ArrayItem(f"c{k % classes}/v{k:02d}", k % classes, f"c{k % classes}", f"src/v{k:02d}",
                      num_frames=1 + k % 4, **kw) for k in range(n)]


def ids_in(path):
    out = []
    for record in tf.data.TFRecordDataset(path):
        out.append(schema.parse_sequence_example(record)[schema.VIDEO_ID].numpy().decode())
    return out


def test_balanced_shards_hold_every_item_once_and_every_class(tmp_path):
    its = items(10)
    summary = write_shards(its, str(tmp_path), split="train", num_shards=3, dataset="toy",
                           progress=False)
    files = shard_files(tmp_path, "train")
    assert [os.path.basename(f) for f in files] == [
        "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord"]
    per_shard = [ids_in(f) for f in files]
    assert sorted(len(s) for s in per_shard) == [3, 3, 4]
    assert sorted(sum(per_shard, [])) == sorted(i.video_id for i in its)
    assert all({v.split("/")[0] for v in s} == {"c0", "c1"} for s in per_shard)
    manifest = read_manifest(tmp_path)
    split = manifest["splits"]["train"]
    assert manifest["dataset"] == "toy" and manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["tool"].startswith("tfvideo ") and split["created"] and split["complete"]
    assert split["counts_per_class"] == {"c0": 5, "c1": 5}
    assert split["num_frames"] == sum(i.num_frames for i in its) == summary["frames"]


def test_bad_items_are_skipped_and_listed(tmp_path):
    its = items(4)
    its[1] = dataclasses.replace(its[1], fail="read")
    summary = write_shards(its, str(tmp_path), split="test", num_shards=2, progress=False,
                           problems=[("src/ghost.avi", "listed but missing")])
    assert summary["videos"] == 3
    skipped = read_manifest(tmp_path)["splits"]["test"]["skipped"]
    assert {(s["path"], s["reason"]) for s in skipped} == {
        ("src/v01", "broken on purpose"), ("src/ghost.avi", "listed but missing")}
    assert its[1].video_id not in sum((ids_in(f) for f in shard_files(tmp_path, "test")), [])


def test_rerun_reuses_finished_shards_and_overwrite_rewrites(tmp_path):
    its = items(6)
    write_shards(its, str(tmp_path), split="train", num_shards=2, progress=False)
    mtimes = {f: os.path.getmtime(f) for f in shard_files(tmp_path, "train")}
    time.sleep(0.05)
    again = write_shards(its, str(tmp_path), split="train", num_shards=2, progress=False)
    assert (again["written"], again["reused"]) == (0, 2)
    assert {f: os.path.getmtime(f) for f in shard_files(tmp_path, "train")} == mtimes
    forced = write_shards(its, str(tmp_path), split="train", num_shards=2, progress=False,
                          overwrite=True)
    assert forced["written"] == 2
    with pytest.raises(ValueError, match="short_side=None \\(now 4\\)"):
        write_shards(its, str(tmp_path), split="train", num_shards=2, short_side=4,
                     progress=False)


def test_crash_mid_shard_leaves_no_partial_file_and_a_rerun_completes(tmp_path):
    its = items(6)
    crashing = list(its)
    crashing[3] = dataclasses.replace(its[3], fail="crash")  # sorted by label: shard 1's 2nd item
    with pytest.raises(KeyboardInterrupt):
        write_shards(crashing, str(tmp_path), split="train", num_shards=2, progress=False)
    left = sorted(os.listdir(tmp_path))
    assert not [f for f in left if ".tmp" in f]
    for f in shard_files(tmp_path, "train"):  # whatever has a shard name is a whole shard
        entry = read_manifest(tmp_path)["splits"]["train"]["shards"][os.path.basename(f)]
        assert len(ids_in(f)) == entry["videos"] == 3
    assert len(shard_files(tmp_path, "train")) < 2
    summary = write_shards(its, str(tmp_path), split="train", num_shards=2, progress=False)
    assert summary["videos"] == 6 and summary["written"] + summary["reused"] == 2


def test_killed_writer_leaves_only_whole_shards(tmp_path):
    """SIGKILL while a shard is being written: no file with a shard name is partial, and the
    next run removes the temporary file and finishes."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.getcwd()!r})
        from tests.data.test_shards import items
        import dataclasses
        from tfvideo.data.shards import write_shards
        its = items(6)
        its[4] = dataclasses.replace(its[4], fail="sleep")
        write_shards(its, {str(tmp_path)!r}, split="train", num_shards=2, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline and not any(".tmp" in f for f in os.listdir(tmp_path)):
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    names = os.listdir(tmp_path)
    assert any(".tmp" in f for f in names), names  # it was killed mid-shard
    for f in shard_files(tmp_path, "train"):
        assert len(ids_in(f)) == 3
    summary = write_shards(items(6), str(tmp_path), split="train", num_shards=2, progress=False)
    assert summary["videos"] == 6
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_two_worker_processes_write_the_same_records(tmp_path):
    its = items(5)
    write_shards(its, str(tmp_path / "one"), split="train", num_shards=2, progress=False)
    write_shards(its, str(tmp_path / "two"), split="train", num_shards=2, workers=2,
                 progress=False)
    for a, b in zip(shard_files(tmp_path / "one", "train"), shard_files(tmp_path / "two", "train")):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unique video_id"):
        write_shards(items(2) * 2, str(tmp_path), split="train", progress=False)
    with pytest.raises(ValueError, match="no items"):
        write_shards([], str(tmp_path), split="train", progress=False)
    with pytest.raises(TypeError, match="Item"):
        write_shards(["a.avi"], str(tmp_path), split="train", progress=False)
    with pytest.raises(ValueError, match="num_shards"):
        write_shards(items(2), str(tmp_path), split="train", num_shards=0, progress=False)
