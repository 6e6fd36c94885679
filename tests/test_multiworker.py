"""Two worker processes on loopback ports (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``) train the
same weights as one process trained on the same global batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "multiworker_worker.py"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_shards(folder, files=4, per_file=8):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for k in range(files):
        with tf.io.TFRecordWriter(str(folder / f"part-{k}.tfrecord")) as w:
            for _ in range(per_file):
                x = rng.normal(size=4).astype("float32")
                y = np.array([x[0] - x[1], x[2] * x[3]], "float32")
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
                    "y": tf.train.Feature(float_list=tf.train.FloatList(value=y))}))
                w.write(ex.SerializeToString())


def env_for(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def test_two_loopback_workers_match_one_process(tmp_path):
    shards = tmp_path / "shards"
    write_shards(shards)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for i in range(2):
        cmd = [sys.executable, str(WORKER), str(shards), str(tmp_path / "run"), str(tmp_path / f"w{i}.npz")]
        log = open(tmp_path / f"w{i}.log", "w")
        procs.append((subprocess.Popen(cmd, env=env_for({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                                       stdout=log, stderr=subprocess.STDOUT), log))
    reference = subprocess.run([sys.executable, str(WORKER), str(shards), str(tmp_path / "ref"),
                                str(tmp_path / "ref.npz"), "--reference"], env=env_for(),
                               capture_output=True, text=True, timeout=300)
    for proc, log in procs:
        try:
            proc.wait(timeout=300)
        finally:
            proc.kill()
            log.close()
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    for (proc, _), text in zip(procs, logs):
        assert proc.returncode == 0, text[-3000:]
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert "MultiWorkerMirroredStrategy: 2 replicas" in logs[0] and "(2 workers; this is worker 1)" in logs[1]

    got = [np.load(tmp_path / f"w{i}.npz") for i in range(2)]
    want = np.load(tmp_path / "ref.npz")
    assert int(got[0]["iterations"]) == int(want["iterations"]) == 6
    for key in want.files:
        np.testing.assert_allclose(got[0][key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(got[1][key], got[0][key], rtol=1e-6, atol=1e-7, err_msg=key)
    # the chief wrote the run folder, worker 1 its private folder
    assert (tmp_path / "run" / "checkpoints" / "last.keras").exists()
    assert (tmp_path / "run" / "workers" / "worker-1" / "metrics.jsonl").exists()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]


@pytest.mark.slow
def test_the_tvnet_recipe_runs_under_two_loopback_workers(tmp_path):
    """``python -m recipes.tvnet_hmdb`` on two workers: the chief prepares (one shard per worker),
    both train, the chief evaluates and exports; both exit 0 (about a minute on 2 cores)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    cmd = [sys.executable, "-m", "recipes.tvnet_hmdb", "--videos-per-class", "4", "--steps", "4",
           "--steps-per-epoch", "2", "--size", "24", "--iterations", "3", "--eval-segments", "2",
           "--run-dir", str(tmp_path / "run"), "--data-out", str(tmp_path / "data"),
           "--export", str(tmp_path / "sm" / "tvnet_hmdb"), "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env_for({"cluster": cluster, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=600)[0])
        finally:
            proc.kill()
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:]
    assert "(2 workers; this is worker 0)" in outs[0] and "worker-1 done" in outs[1]
    assert "exported the two-stream model" in outs[0] and "exported" not in outs[1]
    assert len(list((tmp_path / "data").glob("train-*-of-00002.tfrecord"))) == 2
    assert (tmp_path / "sm" / "tvnet_hmdb" / "1" / "saved_model.pb").exists()
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    assert summary["results"]["temporal"]["num_videos"] == 8
