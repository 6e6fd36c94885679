"""The flow demo: its ground truth is right (checked with cv2.remap) and TVNet beats zero motion."""

import cv2
import numpy as np
import pytest

from tfvideo.demo import flow as demo


def test_ground_truth_flow_maps_frame1_onto_frame0():
    pair = demo.make_frame_pair((96, 128), seed=3, photo="coffee", max_motion=4.0)
    assert (pair.height, pair.width) == (96, 128)
    h, w = pair.height, pair.width
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    g0, g1 = pair.grey0.astype(np.float32), pair.grey1.astype(np.float32)
    back = cv2.remap(g1, xs + pair.flow[..., 0], ys + pair.flow[..., 1], cv2.INTER_CUBIC)
    inner = (slice(8, -8), slice(8, -8))
    err_true = np.abs(back - g0)[inner].mean()
    err_zero = np.abs(g1 - g0)[inner].mean()
    assert pair.motion["max_px"] > 2.0
    assert err_true < 2.5, err_true  # two bicubic resamplings and uint8 rounding
    assert err_true < 0.2 * err_zero, (err_true, err_zero)


def test_demo_runs_and_tvnet_beats_zero_flow(tmp_path):
    res = demo.main(["--out", str(tmp_path), "--size", "64x96", "--scales", "2", "--warps", "2",
                     "--iterations", "20", "--max-motion", "3"])
    png = tmp_path / "flow_comparison.png"
    assert png.exists()
    image = cv2.imread(str(png))
    assert image.shape[:2] == res["png_shape"][:2]
    assert (res["height"], res["width"]) == (64, 96)  # --size is HEIGHTxWIDTH
    # frame0 | frame1 | ground truth | TVNet | OpenCV (96 px each) | square 64-px legend, 4-px gaps
    assert image.shape[1] == 5 * 96 + 64 + 5 * 4
    assert image.shape[0] > 64  # the frames plus the label strip
    assert res["epe_tvnet"] < 0.5 * res["epe_zero"], res
    assert res["epe_opencv"] < 0.5 * res["epe_zero"], res


def test_size_is_height_first_or_square():
    parse = demo.build_parser().parse_args
    assert parse([]).size == demo.DEFAULT_SIZE == (173, 256)
    assert parse(["--size", "64x96"]).size == (64, 96)
    assert parse(["--size", "48"]).size == (48, 48)
    assert demo.make_frame_pair(40, max_motion=1.0).frame0.shape == (40, 40, 3)


@pytest.mark.parametrize("argv", [["--size", "4"], ["--size", "64x4000"], ["--size", "96,64"],
                                  ["--iterations", "0"], ["--max-motion", "0"],
                                  ["--size", "64x64", "--max-motion", "40"]])
def test_bad_arguments_exit_with_usage_error(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["--out", str(tmp_path), *argv])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_too_small_frame_is_a_value_error():
    with pytest.raises(ValueError, match="between 32 and"):
        demo.make_frame_pair(4)
    with pytest.raises(ValueError, match="photo must be one of .*astronaut"):
        demo.make_frame_pair(64, photo="lena")
