"""Smoke test of ``benchmarks/dff.py`` (no timing asserted): a tiny run finishes, prints the table, and its
r from FLOPs is :func:`tfvideo.models.dff.cost_model`'s for the same networks."""

import importlib.util
import pathlib

import keras
import pytest

from tfvideo.models import dff

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "dff.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_dff", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table2_r_and_measured_r(bench):
    assert bench.table2_r("resnet50", "s") == pytest.approx(1 / 9.20)
    assert bench.table2_r("resnet101", "inception") == pytest.approx(1 / 95.24)
    assert bench.table2_r("small", "tiny") is None and bench.table2_r("resnet50", "tiny") is None
    assert bench.measured_r(10.0, 2.0, 1.0, 1.0) == pytest.approx(4 / 11)  # Eq. 5 with times


def test_quick_run_prints_the_table_with_cost_models_r(bench, capsys):
    out = bench.main(["--backbone", "small", "--size", "128x128", "--frames", "4", "--repeats", "1",
                      "--intervals", "1,2", "--warp", "runner,eager"])
    printed = capsys.readouterr().out
    assert "s(r_meas)" in printed and "meas/pred" in printed and "r: FLOPs" in printed
    (res,) = out["configs"]
    keras.utils.set_random_seed(0)
    model = dff.dff_segmenter("small", 19, flow="tiny", frame_size=(128, 128))
    cost = dff.cost_model(*(model.get_layer(n) for n in ("n_feat", "n_task", "flownet")))
    assert res["r_flops"] == pytest.approx(cost["r"]) and res["r_table2"] is None
    parts = res["ms_per_frame_parts"]
    for mode in ("runner", "eager"):
        m = res["modes"][mode]
        assert m["r_measured"] == pytest.approx(bench.measured_r(parts["feat"], parts["flow"],
                                                                 parts[f"warp_{mode}"], parts["task"]))
        assert [row["l"] for row in m["rows"]] == [1, 2]
        assert m["rows"][0]["s_measured"] == 1.0
        assert m["rows"][1]["s_eq7_r_measured"] == pytest.approx(dff.speedup(m["r_measured"], 2))
        assert m["rows"][1]["s_eq7_r_flops"] == pytest.approx(2 / (1 + cost["r"]))


def test_quick_detection_run(bench, capsys):
    """``--task detection``: the R-FCN detector's runner; r from FLOPs is cost_model's for it."""
    from tfvideo.models import rfcn

    out = bench.main(["--task", "detection", "--backbone", "small", "--size", "128x128", "--frames", "4",
                      "--repeats", "1", "--intervals", "1,2", "--num-classes", "3"])
    assert "R-FCN detection" in capsys.readouterr().out
    (res,) = out["configs"]
    keras.utils.set_random_seed(0)
    model = rfcn.dff_detector("small", 3, flow="tiny", frame_size=(128, 128))
    cost = dff.cost_model(*(model.get_layer(n) for n in ("n_feat", "n_task", "flownet")))
    assert res["task"] == "detection" and res["r_flops"] == pytest.approx(cost["r"])
    assert all(v > 0 for v in res["ms_per_frame_parts"].values())
