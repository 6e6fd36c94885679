"""``benchmarks/flow_large.py``: the large-displacement pairs have the exact flow and occlusions they
claim (checked with OpenCV's ``cv2.remap`` and the closed-form motion), the EPE pooling is right, and
(slow) a quick run ranks the methods. No timing is asserted."""

import importlib.util
import math
import pathlib
import sys

import cv2
import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "flow_large.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_flow_large", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _warp_error(pair, flow):
    """Mean |frame1(p + flow(p)) - frame0(p)| over the RGB channels, per pixel (cv2.remap bicubic)."""
    h, w = pair.flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(pair.frame1.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)
    return np.abs(back - pair.frame0.astype(np.float32)).mean(axis=-1)


@pytest.mark.parametrize("kind", ["global", "piecewise"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_flow_reproduces_frame0_on_non_occluded_pixels(bench, kind, seed):
    pair = bench.make_large_pair((72, 96), kind, seed=seed, motion=(15, 24))
    assert pair.flow.shape == (72, 96, 2) and pair.valid.dtype == bool
    assert 0.05 < 1 - pair.valid.mean() < 0.7  # large motion: a real share of occluded pixels
    err = _warp_error(pair, pair.flow)
    noc = err[pair.valid].mean()
    # Interpolation error only: far below no motion, and below the flow moved by half a pixel.
    assert noc < 4.0 and noc < 0.1 * np.abs(pair.frame1.astype(float) - pair.frame0).mean()
    for dx, dy in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
        off = _warp_error(pair, pair.flow + np.float32([dx, dy]))[pair.valid].mean()
        assert noc < 0.8 * off, (dx, dy, noc, off)
    assert err[~pair.valid].mean() > 3 * noc  # occluded pixels really are not matched


def test_flow_is_the_stated_motion(bench):
    pair = bench.make_large_pair((80, 112), "piecewise", seed=3, motion=(20, 26))
    prm = pair.params
    h, w = pair.flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    a = math.radians(prm["angle_deg"])
    lin = prm["zoom"] * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    d = np.stack([xs, ys], -1) - c
    background = d @ lin.T + prm["translation"] - d
    assert 20 <= np.hypot(*prm["translation"]) <= 26
    assert 1 <= abs(prm["angle_deg"]) <= 3 and 0.01 <= abs(prm["zoom"] - 1) <= 0.04
    bg = pair.layers0 == 0
    np.testing.assert_allclose(pair.flow[bg], background[bg], atol=1e-4)
    assert len(prm["objects"]) == 2
    tdir = math.atan2(prm["translation"][1], prm["translation"][0])
    for k, obj in enumerate(prm["objects"], start=1):
        cx, cy, ea, eb = obj["ellipse"]
        inside = ((xs - cx) / ea) ** 2 + ((ys - cy) / eb) ** 2 <= 1
        top = inside & (pair.layers0 == k)
        assert top.any() and np.all(pair.layers0[inside] >= k)  # object k+1 lies above object k
        np.testing.assert_allclose(pair.flow[top], np.broadcast_to(obj["shift"], (top.sum(), 2)), atol=1e-5)
        assert 20 <= np.hypot(*obj["shift"]) <= 26
        diff = abs((math.atan2(obj["shift"][1], obj["shift"][0]) - tdir + math.pi) % (2 * math.pi) - math.pi)
        assert diff >= math.radians(60) - 1e-9
    # Occlusion rule: a frame0 pixel whose match falls outside frame1 is occluded.
    q = np.stack([xs, ys], -1) + pair.flow
    outside = (q[..., 0] < 0) | (q[..., 0] > w - 1) | (q[..., 1] < 0) | (q[..., 1] > h - 1)
    assert outside.any() and not pair.valid[outside].any()


def test_pair_is_deterministic_and_checks_arguments(bench):
    a = bench.make_large_pair((64, 64), "global", seed=5, motion=(20, 21))
    b = bench.make_large_pair((64, 64), "global", seed=5, motion=(20, 21))
    np.testing.assert_array_equal(a.frame1, b.frame1)
    with pytest.raises(ValueError, match="kind"):
        bench.make_large_pair((64, 64), "rotate")
    with pytest.raises(ValueError, match="motion"):
        bench.make_large_pair((64, 64), motion=(20, 40))  # more than a third of the side
    with pytest.raises(ValueError, match="size"):
        bench.make_large_pair((32, 64))
    with pytest.raises(ValueError, match="objects"):
        bench.make_large_pair((64, 64), "piecewise", motion=(10, 12), objects=3)


def test_epe_sums_pool_by_mask_and_bucket(bench):
    pair = bench.make_large_pair((64, 80), "piecewise", seed=0, motion=(15, 21))
    err = np.zeros_like(pair.flow)
    err[..., 0] = 3.0
    err[~pair.valid, 1] = 4.0  # EPE 5 on occluded pixels, 3 elsewhere
    sums = bench.epe_sums(pair.flow + err, pair)
    n = pair.valid.size
    assert sums["all"][1] == n and sums["noc"][1] == pair.valid.sum() and sums["occ"][1] == n - pair.valid.sum()
    assert sums["noc"][0] / sums["noc"][1] == pytest.approx(3.0)
    assert sums["occ"][0] / sums["occ"][1] == pytest.approx(5.0)
    buckets = [k for k in sums if k not in ("all", "noc", "occ")]
    assert buckets == ["<20", "20-30", "30-40", ">=40"]
    assert sum(sums[k][1] for k in buckets) == sums["noc"][1]
    mag = np.linalg.norm(pair.flow, axis=-1)
    assert sums["<20"][1] == int((pair.valid & (mag < 20)).sum())
    assert bench.pooled([sums, sums], "occ") == pytest.approx(5.0)


def test_parse_configs(bench):
    assert bench.parse_configs("1-1-50,5-5-50c,8-5-30c@0.7") == [
        ("1-1-50", (1, 1, 50), "bilinear", 0.5), ("5-5-50c", (5, 5, 50), "bicubic", 0.5),
        ("8-5-30c@0.7", (8, 5, 30), "bicubic", 0.7)]
    with pytest.raises(ValueError, match="--configs"):
        bench.parse_configs("5-5")
    with pytest.raises(ValueError, match="--configs"):
        bench.parse_configs("5-5-50@1.5")


@pytest.mark.slow
def test_quick_run_ranks_methods(bench, capsys):
    res = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "rank method" in out and "noc" in out
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) >= {"zero flow", "opencv-5-5-50", "dis-fast", "tvnet 1-1-50", "tvnet 5-5-50"}
    for r in rows.values():
        assert r["all"]["all"] is not None and r["all"]["noc"] is not None
    # 20-30 px: the pyramid finds it, one level does not (TV-L1's linearisation).
    assert rows["tvnet 5-5-50"]["all"]["noc"] < 0.5 * rows["tvnet 1-1-50"]["all"]["noc"]
    assert rows["tvnet 5-5-50"]["all"]["noc"] < rows["zero flow"]["all"]["noc"]
