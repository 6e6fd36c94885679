"""Smoke test of ``benchmarks/tvnet_train.py`` (no timing asserted): a tiny run times the frozen and the
trainable step in every mode and reports first calls and memory."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "tvnet_train.py"


@pytest.mark.slow  # ~1 min: six models traced
def test_quick_run_times_frozen_and_trainable_steps(capsys):
    spec = importlib.util.spec_from_file_location("benchmarks_tvnet_train", _PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--quick", "--batch", "1"])
    printed = capsys.readouterr().out
    assert "training step of the temporal stream at 32 x 32" in printed and "vs frozen" in printed
    step = out["sizes"][32]["step"]
    assert set(step) == {f"{m} | TVNet {t}" for m in bench.MODES for t in ("frozen", "trainable")}
    assert all(v > 0 for v in step.values())
