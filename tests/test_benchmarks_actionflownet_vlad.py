"""Smoke test of ``benchmarks/actionflownet_vlad.py`` (no timing asserted): a tiny run prints both tables and
times every row; the k-means inertias of ours and SciPy's are both reported."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "actionflownet_vlad.py"


@pytest.mark.slow  # ~35 s
def test_quick_run_prints_both_tables(capsys):
    spec = importlib.util.spec_from_file_location("benchmarks_actionflownet_vlad", _PATH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--quick"])
    printed = capsys.readouterr().out
    assert "1. ActionFlowNet at inference" in printed and "2. VLAD tools" in printed
    assert "two-stream peer: + TVNet flow + flow 3D-ResNet-18 | forward" in out["actionflownet"]
    assert all(t > 0 for table in ("actionflownet", "vlad") for t in out[table].values())
    assert len(out["kmeans_inertia"]) == 2 and all(v > 0 for v in out["kmeans_inertia"].values())
