"""Tests of tfvideo.data.flo: files built by hand with struct, round trips and bad files."""

from __future__ import annotations

import doctest
import os
import struct

import numpy as np
import pytest

from tfvideo.data import flo
from tfvideo.data.flo import read_flo, write_flo
from tfvideo.data.items import ReadError


def _hand_made(path, width, height, values):
    """A .flo written with struct only: tag, width, height, then little-endian float32 values."""
    with open(path, "wb") as f:
        f.write(b"PIEH" + struct.pack("<ii", width, height))
        f.write(struct.pack(f"<{len(values)}f", *values))


def test_read_hand_made_file(tmp_path):
    path = tmp_path / "hand.flo"
    # 3 wide, 2 high; row-major, (u, v) interleaved.
    values = [0.5, -1.0, 1.0, 2.0, 3.25, 4.0,
              -5.0, 6.0, 1e10, 0.0, 7.0, float("nan")]
    _hand_made(path, 3, 2, values)
    flow, valid = read_flo(path)
    assert flow.dtype == np.float32 and flow.shape == (2, 3, 2)
    assert valid.dtype == bool and valid.shape == (2, 3)
    expected = np.array([[[0.5, -1.0], [1.0, 2.0], [3.25, 4.0]],
                         [[-5.0, 6.0], [0.0, 0.0], [0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(flow, expected)
    np.testing.assert_array_equal(valid, [[True, True, True], [True, False, False]])


def test_struct_float_tag_is_the_pieh_bytes():
    assert struct.pack("<f", 202021.25) == b"PIEH" == flo.FLO_TAG


def test_writer_bytes_match_the_format(tmp_path):
    flow = np.array([[[1.5, -2.0], [3.0, 4.0]]], np.float32)  # H=1, W=2
    valid = np.array([[True, False]])
    write_flo(tmp_path / "w.flo", flow, valid)
    expected = b"PIEH" + struct.pack("<ii", 2, 1) + struct.pack("<4f", 1.5, -2.0, 1e10, 1e10)
    assert (tmp_path / "w.flo").read_bytes() == expected
    assert os.listdir(tmp_path) == ["w.flo"]  # the temporary file was renamed


def test_round_trip_with_unknown_vectors(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(scale=20, size=(7, 5, 2)).astype(np.float32)
    valid = rng.random((7, 5)) > 0.3
    flow[0, 0, 1] = np.inf  # non-finite -> unknown too
    write_flo(tmp_path / "r.flo", flow, valid)
    got, got_valid = read_flo(tmp_path / "r.flo")
    expected_valid = valid.copy()
    expected_valid[0, 0] = False
    np.testing.assert_array_equal(got_valid, expected_valid)
    np.testing.assert_array_equal(got[expected_valid], flow[expected_valid])
    assert np.all(got[~expected_valid] == 0)


def test_unknown_threshold(tmp_path):
    # |u| or |v| > 1e9 is unknown; exactly 1e9 is still a (huge) known vector.
    _hand_made(tmp_path / "t.flo", 4, 1, [1e9, 0.0, 0.0, -2e9, float("-inf"), 1.0, 3e9, 3e9])
    flow, valid = read_flo(tmp_path / "t.flo")
    np.testing.assert_array_equal(valid, [[True, False, False, False]])
    np.testing.assert_array_equal(flow[0, 0], [1e9, 0.0])
    assert flo.UNKNOWN_FLOW_THRESH == 1e9


def test_threshold_matches_ops():
    from tfvideo.ops.flow import UNKNOWN_FLOW_THRESH

    assert flo.UNKNOWN_FLOW_THRESH == UNKNOWN_FLOW_THRESH


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.flo"
    _hand_made(path, 3, 2, [0.0] * 11)  # one float short
    with pytest.raises(ReadError, match="truncated") as err:
        read_flo(path)
    assert err.value.path == str(path)
    assert "48 data bytes" in err.value.reason and "44" in err.value.reason


def test_truncated_header(tmp_path):
    path = tmp_path / "short.flo"
    path.write_bytes(b"PIEH\x03\x00")
    with pytest.raises(ReadError, match="truncated .flo header"):
        read_flo(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long.flo"
    _hand_made(path, 1, 1, [0.0, 0.0, 0.0])
    with pytest.raises(ReadError, match="trailing bytes"):
        read_flo(path)


def test_wrong_tag(tmp_path):
    path = tmp_path / "png.flo"
    path.write_bytes(b"\x89PNG" + struct.pack("<ii", 1, 1) + bytes(8))
    with pytest.raises(ReadError, match="not a .flo file: tag") as err:
        read_flo(path)
    assert "202021.25" in err.value.reason


@pytest.mark.parametrize("width, height", [(0, 5), (-3, 5), (5, 10**9)])
def test_absurd_sizes(tmp_path, width, height):
    path = tmp_path / "absurd.flo"
    path.write_bytes(b"PIEH" + struct.pack("<ii", width, height))
    with pytest.raises(ReadError, match="absurd .flo size"):
        read_flo(path)


def test_missing_file(tmp_path):
    with pytest.raises(ReadError, match="does not exist"):
        read_flo(tmp_path / "nope.flo")


def test_write_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="flow must be"):
        write_flo(tmp_path / "a.flo", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="valid must have shape"):
        write_flo(tmp_path / "a.flo", np.zeros((4, 4, 2)), np.ones((4, 5), bool))
    with pytest.raises(TypeError, match="dtype"):
        write_flo(tmp_path / "a.flo", np.zeros((4, 4, 2), complex))
    assert not os.listdir(tmp_path)


def test_module_example():
    assert doctest.testmod(flo).failed == 0
