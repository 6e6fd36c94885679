"""Smoke test of ``benchmarks/video_heads.py`` (no timing asserted): a tiny run prints the three tables and
times every row."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "video_heads.py"


@pytest.mark.slow  # ~40 s: fourteen models traced
def test_quick_run_prints_every_table(capsys):
    spec = importlib.util.spec_from_file_location("benchmarks_video_heads", _PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--quick", "--frames", "3", "--size", "32", "--batch", "2", "--repeats", "1"])
    printed = capsys.readouterr().out
    for title in ("1. deep LSTM", "2. chapter-3 heads", "3. TDN"):
        assert title in printed
    assert "DeepLSTM, peepholes | train step" in out["lstm"] and "Ng & Davis 2018 TDN | train step" in out["tdn"]
    assert "per-frame CNN alone (TimeDistributed) | forward" in out["heads"]
    assert all(t > 0 for table in ("lstm", "heads", "tdn") for t in out[table].values())
