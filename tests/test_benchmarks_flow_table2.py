"""``benchmarks/flow_table2.py`` (TVNet paper, Table 2): the flow error of Eq. 1 against a NumPy
transcription, video reading (an MJPG AVI written here) and its errors, and (slow) quick runs on the
built-in clips and on a video. No timing is asserted."""

import importlib.util
import pathlib
import sys

import cv2
import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "flow_table2.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_flow_table2", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _bilinear_clamped(img, x, y):
    """NumPy bilinear sampling of ``img`` (H, W) at real (x, y), coordinates clamped to the frame (the
    border pixel repeated)."""
    h, w = img.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax, ay = x - x0, y - y0
    top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
    bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
    return top * (1 - ay) + bottom * ay


def _reference(g0, g1, flow, lbda=0.15, eps=1e-12):
    """Eq. 1 per pixel in NumPy: rho = I1(x + u) - I0(x); Eq. 4 forward differences (0 at the end)."""
    g0, g1, flow = (np.asarray(a, np.float64) for a in (g0, g1, flow))
    h, w = g0.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    rho = _bilinear_clamped(g1, xs + flow[..., 0], ys + flow[..., 1]) - g0
    tv_iso = tv_l1 = 0.0
    for d in range(2):
        u = flow[..., d]
        ux = np.zeros_like(u)
        uy = np.zeros_like(u)
        ux[:, :-1] = u[:, 1:] - u[:, :-1]
        uy[:-1, :] = u[1:, :] - u[:-1, :]
        tv_iso = tv_iso + np.sqrt(ux**2 + uy**2 + eps)
        tv_l1 = tv_l1 + np.abs(ux) + np.abs(uy)
    mean_rho = np.abs(rho).mean()
    return mean_rho, (tv_iso + lbda * np.abs(rho)).mean(), lbda * mean_rho + tv_l1.mean()


def test_flow_errors_match_numpy_transcription_of_eq1(bench):
    rng = np.random.default_rng(0)
    g0 = rng.integers(0, 256, size=(2, 16, 20)).astype(np.uint8)
    g1 = rng.integers(0, 256, size=(2, 16, 20)).astype(np.uint8)
    flow = rng.normal(0, 3, size=(2, 16, 20, 2)).astype(np.float32)
    flow[1, :3] += 30.0  # matches far outside the frame: border repeated
    got = bench.flow_errors(g0, g1, flow)
    for i in range(2):
        rho, energy, energy_l1 = _reference(g0[i], g1[i], flow[i])
        assert got["rho"][i] == pytest.approx(rho, rel=1e-4)
        assert got["energy"][i] == pytest.approx(energy, rel=1e-4)
        assert got["energy_l1"][i] == pytest.approx(energy_l1, rel=1e-4)


def test_flow_errors_of_the_exact_translation(bench, photo_grey):
    # I1(x + (2, 1)) = I0(x) exactly (integer shift): the exact flow has rho = 0 except on the last row
    # and the last two columns (matches outside the frame, border repeated) and no TV at all.
    g0 = photo_grey[100:132, 100:140][None]
    g1 = photo_grey[99:131, 98:138][None]
    flow = np.broadcast_to(np.float32([2.0, 1.0]), (1, 32, 40, 2))
    zero = bench.flow_errors(g0, g1, np.zeros_like(flow))
    err = bench.flow_errors(g0, g1, flow)
    last_row = np.abs(g1[0, 31, np.minimum(np.arange(40) + 2, 39)] - g0[0, 31]).sum()  # y + 1 -> 31
    last_cols = np.abs(g1[0, 1:32, 39:40] - g0[0, :31, 38:40]).sum()  # x + 2 -> 39
    border = last_row + last_cols
    assert err["rho"][0] == pytest.approx(border / g0.size, rel=1e-4) and zero["rho"][0] > 5 * err["rho"][0]
    assert err["energy_l1"][0] == pytest.approx(0.15 * err["rho"][0], rel=1e-5)
    with pytest.raises(ValueError, match="flow"):
        bench.flow_errors(g0, g1, flow[..., :1])


def _write_avi(path, frames):
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture
def small_avi(tmp_path, photo_rgb):
    frames = np.stack([photo_rgb[100 + 2 * t: 148 + 2 * t, 120 + 3 * t: 184 + 3 * t] for t in range(5)])
    frames = frames.astype(np.uint8)
    path = tmp_path / "clip.avi"
    _write_avi(path, frames)
    return path, frames


def test_read_video_reads_an_mjpg_avi(bench, small_avi):
    path, frames = small_avi
    got = bench.read_video(str(path))
    assert got.shape == (5, 48, 64, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(float) - frames).mean() < 6  # JPEG round trip, RGB order kept
    assert bench.read_video(str(path), max_frames=3).shape[0] == 3
    assert bench.read_video(str(path), size=(24, 32)).shape == (5, 24, 32, 3)


def test_unreadable_video_gets_a_clear_error(bench, tmp_path, capsys):
    bad = tmp_path / "not_a_video.avi"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="--video"):
        bench.read_video(str(bad))
    with pytest.raises(ValueError, match="--video: no such file"):
        bench.read_video(str(tmp_path / "missing.avi"))
    with pytest.raises(SystemExit) as exc:
        bench.main(["--video", str(bad)])
    assert exc.value.code == 2 and "--video" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--modes", "eager"])


def test_builtin_clips_come_with_exact_flow(bench):
    (frames, flows), = bench.builtin_clips((48, 64), 3, ("pan_left",))
    assert frames.shape == (3, 48, 64, 3) and flows.shape == (2, 48, 64, 2)
    assert np.all(flows[..., 0] > 0)  # pan_left: content moves right


@pytest.mark.slow
def test_quick_run_builtin(bench, capsys):
    res = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "paper FPS" in out and "FlowNet2.0" in out
    rows = {(r["method"], r["batch"]): r for r in res["rows"]}
    zero = rows[("zero flow (baseline)", 1)]
    for key in [("TV-L1 (OpenCV defaults)", 1), ("DIS-Fast", 1), ("TVNet-50 (jit)", 1), ("TVNet-50 (xla-it)", 2)]:
        assert rows[key]["rho"] < zero["rho"] and rows[key]["fps"] > 0 and rows[key]["epe"] < zero["epe"]
    # Batching does not change TVNet's flow.
    assert rows[("TVNet-50 (jit)", 2)]["rho"] == pytest.approx(rows[("TVNet-50 (jit)", 1)]["rho"], rel=1e-4)


@pytest.mark.slow
def test_quick_run_on_a_video(bench, small_avi, capsys):
    path, _ = small_avi
    res = bench.main(["--video", str(path), "--quick", "--modes", "jit", "--batch", "1"])
    assert res["pairs"] == 3 and all(r["epe"] is None for r in res["rows"])
    assert "clip.avi" in capsys.readouterr().out
