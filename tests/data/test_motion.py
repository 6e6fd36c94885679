"""Tests of the built-in ``motion`` dataset (tfvideo.data.motion)."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import cv2
import numpy as np
import pytest

from tests.data.fakes import tree_state
from tfvideo.data import motion as M
from tfvideo.data.photos import photo
from tfvideo.data.video import read_video

SMALL = dict(videos_per_class=2, num_frames=6, size=(48, 64), progress=False)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion") / "set"
    return root, M.generate_motion(root, seed=0, **SMALL)


def _videos(root):
    return {c: sorted(os.listdir(os.path.join(root, c))) for c in M.CLASSES}


def _decoded(root):
    return {(c, f): read_video(os.path.join(root, c, f)).frames for c, fs in _videos(root).items()
            for f in fs}


def _grid(h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs, ys


def _clean(spec):
    """The clip without brightness flicker and sensor noise (pure geometry)."""
    return dataclasses.replace(spec, noise=0.0, flicker=None)


# ----------------------------------------------------------------------------------------------------
# layout and determinism
# ----------------------------------------------------------------------------------------------------
def test_class_names_sorted_and_labels():
    assert M.CLASSES == ("pan_down", "pan_left", "pan_right", "pan_up", "rotate_ccw", "rotate_cw",
                         "zoom_in", "zoom_out")
    assert list(M.CLASSES) == sorted(M.CLASSES)
    assert not {"eagle", "lily", "skin", "kidney"} & set(M.PHOTOS)


def test_layout_and_splits(tmp_path):
    root = tmp_path / "m"
    s = M.generate_motion(root, seed=3, videos_per_class=10, num_frames=4, size=(32, 48),
                          progress=False)
    assert s["num_videos"] == 80 and not s["skipped"]
    assert s["splits"] == {k: {"train": 56, "test": 24} for k in (1, 2, 3)}
    assert sorted(os.listdir(root)) == sorted(list(M.CLASSES) + [M.SPLITS_DIR, "README.txt",
                                                                   "motion.json"])
    assert json.loads((root / "motion.json").read_text())["seed"] == 3
    videos = _videos(root)
    for c, files in videos.items():
        assert len(files) == 10 and all(f.startswith(c + "_") and f.endswith(".avi") for f in files)
        v = read_video(os.path.join(root, c, files[0]))
        assert v.frames.shape == (4, 32, 48, 3) and v.fps == pytest.approx(25.0)
    partitions = {}
    for c in M.CLASSES:
        for split in (1, 2, 3):
            lines = (root / M.SPLITS_DIR / f"{c}_test_split{split}.txt").read_text().splitlines()
            rows = [line.split() for line in lines]
            names = [r[0] for r in rows]
            assert sorted(names) == videos[c]  # each video exactly once, and all exist
            ids = [int(r[1]) for r in rows]
            assert ids.count(1) == 7 and ids.count(2) == 3
            partitions[c, split] = frozenset(n for n, i in zip(names, ids) if i == 2)
    # a different random partition per split (C(10, 3) = 120 choices per class)
    assert sum(len({partitions[c, s] for s in (1, 2, 3)}) for c in M.CLASSES) >= 20


def test_same_seed_same_frames_other_seed_differs(small_set, tmp_path):
    root, summary = small_set
    assert summary["num_videos"] == 16
    a = _decoded(root)
    b = _decoded(M.generate_motion(tmp_path / "again", seed=0, **SMALL)["root"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    c = _decoded(M.generate_motion(tmp_path / "other", seed=1, **SMALL)["root"])
    assert list(a.keys()) != list(c.keys()) or not all(np.array_equal(a[k], c[k]) for k in a)
    # the decoded videos are the (Motion-JPEG compressed) rendered clips of clip_spec
    for (cls, f), frames in a.items():
        k = int(f[-7:-4])
        own, other = (M.make_clip(M.clip_spec(cls, seed=s, index=k, num_frames=6, size=(48, 64)))
                      for s in (0, 1))
        err = np.abs(frames.astype(np.float32) - own).mean()
        assert err < 8.0 and err < 0.3 * np.abs(frames.astype(np.float32) - other).mean()




def test_skip_and_regenerate(tmp_path):
    root = tmp_path / "m"
    first = M.generate_motion(root, seed=0, **dict(SMALL, videos_per_class=3))
    before = tree_state(root)
    assert sum(p.endswith(".avi") for p in before) == 3 * len(M.CLASSES)
    again = M.generate_motion(root, seed=0, **dict(SMALL, videos_per_class=3))
    assert not first["skipped"] and again["skipped"]
    assert tree_state(root) == before  # nothing written, renamed, added (temp files) or removed
    # different parameters: regenerated, stale videos removed
    new = M.generate_motion(root, seed=0, **dict(SMALL, videos_per_class=2, num_frames=5))
    assert not new["skipped"]
    videos = _videos(root)
    assert all(len(fs) == 2 for fs in videos.values())
    c = M.CLASSES[0]
    assert read_video(os.path.join(root, c, videos[c][0])).frames.shape[0] == 5
    before = tree_state(root)
    assert M.generate_motion(root, seed=0, **dict(SMALL, videos_per_class=2, num_frames=5))["skipped"]
    assert tree_state(root) == before
    assert not M.generate_motion(root, seed=0, overwrite=True,
                                 **dict(SMALL, videos_per_class=2, num_frames=5))["skipped"]
    rewritten = tree_state(root)  # the check above sees a rewrite: every file's state changed
    assert rewritten.keys() == before.keys()
    assert all(rewritten[p] != before[p] for p in before if os.path.isfile(root / p))
    # an incomplete set (a split file missing) is regenerated
    os.remove(root / M.SPLITS_DIR / f"{c}_test_split2.txt")
    regenerated = M.generate_motion(root, seed=0, **dict(SMALL, videos_per_class=2, num_frames=5))
    assert not regenerated["skipped"]


def test_bad_arguments(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a motion dataset"):
        M.generate_motion(foreign, **SMALL)
    with pytest.raises(ValueError, match="videos_per_class"):
        M.generate_motion(tmp_path / "x", videos_per_class=1, progress=False)
    with pytest.raises(ValueError, match="size"):
        M.clip_spec("pan_up", size=(8, 64))
    with pytest.raises(ValueError, match="class_name"):
        M.clip_spec("walk")
    with pytest.raises(ValueError, match="t must be"):
        M.exact_flow(M.clip_spec("pan_up", num_frames=3, size=(16, 16)), 2)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    s = M.main(["--out", str(out), "--videos-per-class", "2", "--num-frames", "3", "--size", "32x48",
                "--seed", "5", "--no-progress"])
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "wrote 16 videos" in line and s["size"] == (32, 48)
    first = sorted(os.listdir(out / "zoom_in"))[0]
    assert read_video(out / "zoom_in" / first).frames.shape == (3, 32, 48, 3)
    with pytest.raises(SystemExit) as err:
        M.main(["--help"])
    assert err.value.code == 0
    help_text = capsys.readouterr().out
    for opt in ("--out", "--seed", "--videos-per-class", "--num-frames", "--size", "--fps", "--workers",
                "--overwrite"):
        assert opt in help_text
    with pytest.raises(SystemExit) as err:
        M.main(["--out", str(out), "--size", "8x8"])
    assert err.value.code == 2


# ----------------------------------------------------------------------------------------------------
# exact flow
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", M.CLASSES)
def test_exact_flow_closed_form_and_direction(cls):
    spec = M.clip_spec(cls, seed=7, index=4, num_frames=5, size=(48, 64))
    h, w = spec.size
    xs, ys = _grid(h, w)
    t = 2
    j0, j1 = spec.shake[t], spec.shake[t + 1]
    dx, dy = xs - (w - 1) / 2 - j0[0], ys - (h - 1) / 2 - j0[1]
    # hand-derived: content moves by velocity, is magnified by exp(zoom_rate) and turned by spin about
    # the (shaken) frame centre, plus the change of the shake
    m, a = math.exp(spec.zoom_rate), spec.spin
    u = m * (math.cos(a) * dx - math.sin(a) * dy) - dx + spec.velocity[0] + j1[0] - j0[0]
    v = m * (math.sin(a) * dx + math.cos(a) * dy) - dy + spec.velocity[1] + j1[1] - j0[1]
    flow = M.exact_flow(spec, t)
    assert flow.shape == (h, w, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(flow, np.stack([u, v], -1), atol=1e-3)

    flows = M.clip_flows(spec)
    assert flows.shape == (4, h, w, 2)
    fu, fv = flows[..., 0], flows[..., 1]
    div = (np.gradient(fu, axis=2) + np.gradient(fv, axis=1)).mean()
    curl = (np.gradient(fv, axis=2) - np.gradient(fu, axis=1)).mean()
    mag = np.linalg.norm(flows, axis=-1).mean()
    assert 0.3 < mag < 3.0  # the speed range TV-L1 with one scale follows
    expected = {  # (sign of mean u, mean v, divergence, curl), 0 = about zero
        "pan_left": (1, 0, 0, 0), "pan_right": (-1, 0, 0, 0), "pan_up": (0, 1, 0, 0),
        "pan_down": (0, -1, 0, 0), "zoom_in": (0, 0, 1, 0), "zoom_out": (0, 0, -1, 0),
        "rotate_cw": (0, 0, 0, -1), "rotate_ccw": (0, 0, 0, 1)}[cls]
    for value, sign, big in zip((fu.mean(), fv.mean(), div, curl), expected, (0.4, 0.4, 0.02, 0.02)):
        if sign:
            assert value * sign > big, (value, sign)
        else:
            assert abs(value) < big / 2, value
    if cls == "rotate_cw":  # content turns counter-clockwise on screen: the top of the frame goes left
        assert fu[:, : h // 4].mean() < -0.3 and fu[:, -h // 4:].mean() > 0.3


@pytest.mark.parametrize("cls", M.CLASSES)
def test_warping_back_with_exact_flow_reproduces_frame(cls):
    """frame[t+1](p + flow(p)) ~= frame[t](p), and better than with any slightly wrong flow."""
    spec = M.clip_spec(cls, seed=2, index=1, num_frames=4, size=(64, 80))
    # blur (sigma 1 px) both sides: removes the detail that bilinear resampling loses, not the motion
    frames = [cv2.GaussianBlur(f, (0, 0), 1.0) for f in M.make_clip(_clean(spec)).astype(np.float32)]
    h, w = spec.size
    xs, ys = _grid(h, w)

    def error(t, f):
        back = cv2.remap(frames[t + 1], (xs + f[..., 0]).astype(np.float32),
                         (ys + f[..., 1]).astype(np.float32), cv2.INTER_LINEAR)
        return np.abs(back - frames[t])[6:-6, 6:-6].mean()

    for t in range(3):
        flow = M.exact_flow(spec, t)
        err = error(t, flow)
        assert err < 0.4 * error(t, 0 * flow) and err < 0.3 * error(t, -flow)
        for wrong in (0.8 * flow, 1.2 * flow, flow + [0.25, 0], flow - [0.25, 0], flow + [0, 0.25],
                      flow - [0, 0.25]):
            assert err < error(t, wrong)


def test_opencv_tvl1_agrees_with_exact_flow_on_decoded_videos(small_set):
    root, _ = small_set
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    epes, zeros = [], []
    for cls, names in _videos(root).items():
        for name in names:
            frames = read_video(os.path.join(root, cls, name)).frames
            spec = M.clip_spec(cls, seed=0, index=int(name[-7:-4]), num_frames=6, size=(48, 64))
            g0, g1 = (cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY) for i in (2, 3))
            gt = M.exact_flow(spec, 2)
            epe = lambda f: np.linalg.norm(f - gt, axis=-1)[6:-6, 6:-6].mean()  # noqa: E731
            epes.append(epe(tvl1.calc(g0, g1, None)))
            zeros.append(epe(np.zeros_like(gt)))
    epes, zeros = np.array(epes), np.array(zeros)
    assert epes.mean() < 0.4 and epes.max() < 0.8, epes
    assert np.all(epes < 0.75 * zeros) and epes.mean() < 0.3 * zeros.mean(), (epes, zeros)


# ----------------------------------------------------------------------------------------------------
# a single frame does not tell the class
# ----------------------------------------------------------------------------------------------------
def test_every_class_uses_the_same_photos(small_set, tmp_path):
    def photos(root):
        out = {}
        for c, files in _videos(root).items():
            out[c] = sorted(f[len(c) + 1: -8] for f in files)  # <class>_<photo>_<k:03d>.avi
            assert all(p in M.PHOTOS for p in out[c])
        return out

    p = photos(small_set[0])
    assert all(v == p[M.CLASSES[0]] for v in p.values())
    big = photos(M.generate_motion(tmp_path / "b", seed=4, videos_per_class=20, num_frames=2,
                                   size=(16, 16), progress=False)["root"])
    assert all(v == big[M.CLASSES[0]] for v in big.values())
    counts = [big[M.CLASSES[0]].count(x) for x in M.PHOTOS]
    assert max(counts) - min(counts) <= 1 and sum(counts) == 20  # balanced


def test_per_frame_scale_tilt_and_appearance_do_not_depend_on_class():
    n, t_len, size = 100, 10, (32, 48)
    log_scale, tilt, colour, sharp = {}, {}, {}, {}
    for c in M.CLASSES:
        log_scale[c], tilt[c], col, sh = [], [], [], []
        for k in range(n):
            spec = M.clip_spec(c, seed=9, index=k, num_frames=t_len, size=size)
            short = min(photo(spec.photo).shape[:2])
            for t in range(t_len):
                a = M.frame_transform(spec, t)  # photo px per frame px, and camera roll
                log_scale[c].append(math.log(math.sqrt(np.linalg.det(a[:, :2])) * size[0] / short))
                tilt[c].append(math.atan2(a[1, 0], a[0, 0]))
            if k < 2 * len(M.PHOTOS):
                frame = M.make_clip(spec)[k % t_len].astype(np.float32)
                col.append(frame.mean((0, 1)))
                sh.append(np.abs(np.diff(frame.mean(-1), axis=1)).mean())
        colour[c], sharp[c] = np.mean(col, 0), np.mean(sh)

    def spread(stat, classes):
        return np.std(np.concatenate([stat[c] for c in classes]))

    # Zoom (rotation) clips change scale (tilt) along the clip; the other classes get a static offset
    # with the same distribution, so one frame's scale (tilt) has the same spread in every class.
    # Without the offsets these ratios would be ~1.5 (scale) and ~2.6 (tilt).
    for stat, moving in ((log_scale, ("zoom_in", "zoom_out")), (tilt, ("rotate_ccw", "rotate_cw"))):
        ratio = spread(stat, moving) / spread(stat, [c for c in M.CLASSES if c not in moving])
        assert abs(ratio - 1) < 0.15, ratio
    pooled = np.mean(list(sharp.values()))
    assert all(abs(v / pooled - 1) < 0.2 for v in sharp.values()), sharp
    pooled = np.mean(list(colour.values()), 0)
    assert all(np.abs(v - pooled).max() < 15 for v in colour.values()), colour


def test_preview_sheet_has_one_row_per_class(tmp_path):
    import cv2

    from tfvideo.data.motion import preview

    path = preview(str(tmp_path / "sheet.png"), num_frames=3, size=(24, 32))
    sheet = cv2.imread(path)
    assert sheet is not None and sheet.shape[0] >= 8 * 24 and sheet.shape[1] >= 5 * 24


def test_exact_flow_goes_into_the_shards(tmp_path):
    """``prepare(item_transform=ExactFlow())``: every stored flow is the renderer's exact flow of that clip
    (rebuilt from the file name and motion.json), half-float rounded."""
    from tfvideo.data import pipeline
    from tfvideo.data.motion import ExactFlow, clip_flows, clip_spec
    from tfvideo.data.prepare import prepare

    opts = {"videos_per_class": 2, "num_frames": 5, "size": (24, 32)}
    prepare("motion", tmp_path / "s", motion_options=opts, item_transform=ExactFlow(), progress=False, log=None)
    videos = list(pipeline.read_videos(str(tmp_path / "s"), "test", flow=True))
    assert len(videos) == len(M.CLASSES)
    for v in videos:
        cls, stem = v["video_id"].split("/")
        photo, index = stem[len(cls) + 1:-4], int(stem[-3:])
        spec = clip_spec(cls, seed=0, index=index, num_frames=5, size=(24, 32), photo=photo)
        np.testing.assert_array_equal(v["flow_frame_index"], np.arange(4))
        np.testing.assert_allclose(v["flows"], clip_flows(spec), atol=2e-3)


def test_exact_flow_refuses_files_that_are_not_motion_videos(tmp_path):
    from tfvideo.data.items import Item, ReadError
    from tfvideo.data.motion import ExactFlow

    class Fake(Item):
        def load(self, short_side=None, fps=None):
            return {"frames": np.zeros((3, 16, 16, 3), np.uint8), "fps": 25.0}

    (tmp_path / "pan_up").mkdir()
    item = ExactFlow().wrap(Fake("pan_up/x", 3, "pan_up", str(tmp_path / "pan_up" / "x.avi")))
    with pytest.raises(ReadError, match="motion"):
        item.load()
