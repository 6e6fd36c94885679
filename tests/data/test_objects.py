"""Tests of the built-in ``objects`` set (tfvideo.data.objects, tfvideo.data.objects_scene)."""

from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np
import pytest

from tests.data.fakes import tree_state
from tfvideo.data import objects as O
from tfvideo.data.flo import read_flo
from tfvideo.data.photos import PHOTOS, photo

TINY = dict(train_videos=2, test_videos=1, num_frames=6, size=(32, 48))


def _grid(h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return xs, ys


def _interior(layers, r):
    """Pixels whose (2r+1)^2 neighbourhood holds a single layer."""
    k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    return cv2.erode(layers, k) == cv2.dilate(layers, k)




# ----------------------------------------------------------------------------------------------------
# classes and photos
# ----------------------------------------------------------------------------------------------------
def test_classes_photos_and_regions():
    assert O.CLASSES[0] == "background" and len(O.CLASSES) == 8 == len(set(O.CLASSES))
    assert set(O.CLASS_PHOTOS) == set(O.CLASSES[1:]) == set(O.CLASS_REGIONS)
    used = set(O.CLASS_PHOTOS.values())
    assert len(used) == 7 and not used & set(O.BACKGROUNDS)  # disjoint: labels are unambiguous
    assert used | set(O.BACKGROUNDS) <= set(PHOTOS) and "cat" not in used  # cat == chelsea
    for name, (x0, y0, x1, y1) in O.CLASS_REGIONS.items():
        h, w = photo(O.CLASS_PHOTOS[name]).shape[:2]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, name


def test_textures_come_from_the_class_region_only():
    """Every object pixel shows its class region: the outline's bounding disc maps inside it."""
    for k in range(60):
        for obj in O.clip_spec(seed=1, index=k, num_frames=2).objects:
            x0, y0, x1, y1 = O.CLASS_REGIONS[obj.class_name]
            reach = obj.outer_radius * obj.texture_zoom
            cx, cy = obj.texture_center
            assert x0 - 1e-6 <= cx - reach and cx + reach <= x1 - 1 + 1e-6, obj
            assert y0 - 1e-6 <= cy - reach and cy + reach <= y1 - 1 + 1e-6, obj


# ----------------------------------------------------------------------------------------------------
# determinism
# ----------------------------------------------------------------------------------------------------
def test_same_seed_same_arrays_other_seed_differs():
    def clip(seed, split="train"):
        return O.render_clip(O.clip_spec(seed=seed, split=split, index=3, num_frames=3,
                                         size=(32, 48)))

    a, b = clip(0), clip(0)
    assert set(a) == {"frames", "labels", "layers", "flows", "occlusions"}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for other in (clip(1), clip(0, "test")):
        assert not np.array_equal(a["frames"], other["frames"])
        assert not np.array_equal(a["flows"], other["flows"])
    assert a["frames"].dtype == np.uint8 and a["labels"].dtype == np.uint8
    assert a["flows"].dtype == np.float32 and a["occlusions"].dtype == bool


# ----------------------------------------------------------------------------------------------------
# exact flow
# ----------------------------------------------------------------------------------------------------
def test_flow_closed_form_for_an_object_and_the_camera():
    """Hand-derived flows: an object turning by ``spin`` and growing by ``exp(scale_rate)`` about its
    moving centre; the camera's content turning and zooming about the frame centre plus the pan
    (which the zoom and spin carry along)."""
    h, w, t = 40, 56, 1
    obj = O.ObjectSpec("coffee", position=(27.3, 19.1), radius=11.2, amplitudes=(0.1, 0.05, 0.02),
                       phases=(0.3, 1.0, 2.0), velocity=(0.8, -0.6), acceleration=(0.03, 0.02),
                       angle=0.2, spin=0.03, scale_rate=0.02, anchor=1.5, texture_zoom=2.0)
    bg = O.BackgroundSpec("grass", center=(250.0, 240.0), zoom=1.3, angle=0.1, velocity=(0.6, 0.2),
                          zoom_rate=0.004, spin=0.002, anchor=1.5)
    spec = O.ClipSpec(3, (h, w), bg, (obj,))
    geo = O.clip_geometry(spec)
    xs, ys = _grid(h, w)

    def centre(tt):
        e = tt - obj.anchor
        return (np.asarray(obj.position) + np.asarray(obj.velocity) * e
                + 0.5 * np.asarray(obj.acceleration) * e * e)

    c0, c1 = centre(t), centre(t + 1)
    m, a = math.exp(obj.scale_rate), obj.spin
    dx, dy = xs - c0[0], ys - c0[1]
    u_obj = c1[0] + m * (math.cos(a) * dx - math.sin(a) * dy) - xs
    v_obj = c1[1] + m * (math.sin(a) * dx + math.cos(a) * dy) - ys
    e1 = t + 1 - bg.anchor
    m, a = math.exp(bg.zoom_rate), bg.spin
    dx, dy = xs - (w - 1) / 2, ys - (h - 1) / 2
    mv, av = math.exp(bg.zoom_rate * e1), bg.spin * e1
    pan = (mv * (math.cos(av) * bg.velocity[0] - math.sin(av) * bg.velocity[1]),
           mv * (math.sin(av) * bg.velocity[0] + math.cos(av) * bg.velocity[1]))
    u_bg = m * (math.cos(a) * dx - math.sin(a) * dy) - dx + pan[0]
    v_bg = m * (math.sin(a) * dx + math.cos(a) * dy) - dy + pan[1]
    on = geo["layers"][t] == 1
    assert 200 < on.sum() < h * w - 200
    expected = np.where(on[..., None], np.stack([u_obj, v_obj], -1), np.stack([u_bg, v_bg], -1))
    np.testing.assert_allclose(geo["flows"][t], expected, atol=1e-4)
    np.testing.assert_array_equal(geo["labels"][t], np.where(on, O.CLASSES.index("coffee"), 0))


@pytest.mark.parametrize("seed", [5, 6])
def test_warping_back_with_exact_flow_reproduces_frame(seed):
    """``cv2.remap`` of frame t+1 at ``p + flow(p)`` reproduces frame t away from object edges.

    Both frames are blurred (sigma 1 px, as in test_motion): that removes the detail that bilinear
    resampling at different sub-pixel phases loses (unblurred, the mean error is about 2.2 grey
    levels for the exact flow), not the motion. Pixels whose 7 x 7 neighbourhood (the blur's reach)
    holds another layer at t or around ``p + flow`` at t+1, and occluded pixels, are left out.
    Measured: mean error 0.8-1.3 grey levels with the clip's noise; bound 2 (noise std up to 1.5
    adds ~0.3), and the exact flow must beat zero flow by 2x and every flow 0.3 px or 20 % off.
    """
    for k in range(4):
        spec = O.clip_spec(seed=seed, index=k, num_frames=3, size=(96, 128))
        clip = O.render_clip(spec)
        frames = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0)
                           for f in clip["frames"].astype(np.float32)])
        layers = clip["layers"]
        h, w = spec.size
        xs, ys = (g.astype(np.float32) for g in _grid(h, w))
        for t in range(2):
            flow = clip["flows"][t]
            xi = np.clip(np.rint(xs + flow[..., 0]).astype(int), 0, w - 1)
            yi = np.clip(np.rint(ys + flow[..., 1]).astype(int), 0, h - 1)
            ok = (~clip["occlusions"][t] & _interior(layers[t], 3)
                  & _interior(layers[t + 1], 4)[yi, xi] & (layers[t + 1][yi, xi] == layers[t]))
            ok[:4], ok[-4:], ok[:, :4], ok[:, -4:] = False, False, False, False
            assert ok.mean() > 0.4

            def error(f, sel):
                f = f.astype(np.float32)
                back = cv2.remap(frames[t + 1], xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR)
                return np.abs(back - frames[t]).mean(-1)[sel].mean()

            err = error(flow, ok)
            assert err < 2.0 and err < 0.5 * error(0 * flow, ok), (k, t, err)
            for layer in np.unique(layers[t][ok]):  # each layer's own motion is the best one
                sel = ok & (layers[t] == layer)
                if sel.sum() < 50:
                    continue
                err = error(flow, sel)
                for wrong in (0.8 * flow, 1.2 * flow, flow + [0.3, 0], flow - [0.3, 0],
                              flow + [0, 0.3], flow - [0, 0.3]):
                    assert err < error(wrong, sel), (k, t, layer)


def test_labels_move_with_the_flow():
    """label[t+1](round(p + flow)) == label[t](p) at non-occluded pixels: > 99 % at the default size,
    and every exception lands next to an outline (rounding can cross it by half a pixel)."""
    fractions = []
    for k in range(8):
        spec = O.clip_spec(seed=7, index=k, num_frames=4, size=(96, 128))
        geo = O.clip_geometry(spec)
        h, w = spec.size
        xs, ys = _grid(h, w)
        for t in range(3):
            ok = ~geo["occlusions"][t]
            xi = np.rint(xs + geo["flows"][t, ..., 0]).astype(int)[ok]
            yi = np.rint(ys + geo["flows"][t, ..., 1]).astype(int)[ok]
            assert xi.min() >= 0 and xi.max() < w and yi.min() >= 0 and yi.max() < h
            same = geo["labels"][t + 1][yi, xi] == geo["labels"][t][ok]
            fractions.append(same.mean())
            assert not _interior(geo["layers"][t + 1], 1)[yi, xi][~same].any()
    assert min(fractions) > 0.99, fractions


def test_background_flow_is_never_zero():
    """Pan at least 0.4 px/frame and zoom / spin bounded by it: the camera alone moves every pixel."""
    for k in range(20):
        spec = O.clip_spec(seed=2, index=k, num_frames=3, size=(96, 128))
        geo = O.clip_geometry(spec)
        bg = geo["layers"][:-1] == 0
        speed = np.linalg.norm(geo["flows"], axis=-1)[bg]
        pan = np.linalg.norm(spec.background.velocity)
        assert 0.4 <= pan <= 1.0 and speed.min() > 0.35 * pan, (k, speed.min(), pan)


# ----------------------------------------------------------------------------------------------------
# occlusions
# ----------------------------------------------------------------------------------------------------
def test_occlusions_of_three_discs_match_the_closed_form():
    """Discs A (back), B, C (front) with constant velocities over a panning background: disc A slides
    behind B, C leaves through the bottom edge, the pan pushes the right column out of the frame."""
    h, w = 40, 64
    bg = O.BackgroundSpec("grass", center=(200.0, 200.0), zoom=1.0, velocity=(0.5, 0.0))
    discs = [("cat", (20.3, 18.6), 8.4, (2.2, 0.3)), ("coins", (34.7, 20.2), 7.3, (-1.1, 0.0)),
             ("retina", (50.2, 33.4), 6.6, (0.7, 1.6))]
    objects = [O.ObjectSpec(c, position=p, radius=r, velocity=v) for c, p, r, v in discs]
    geo = O.clip_geometry(O.ClipSpec(3, (h, w), bg, objects))
    xs, ys = _grid(h, w)

    def inside(k, t, x, y):
        _, p, r, v = discs[k]
        return (x - p[0] - v[0] * t) ** 2 + (y - p[1] - v[1] * t) ** 2 < r * r

    counts = dict(behind=0, covered_bg=0, right_edge=0, bottom_edge=0)
    for t in range(2):
        vis = np.zeros((h, w), int)
        for k in range(3):
            vis[inside(k, t, xs, ys)] = k + 1
        disp = np.array([bg.velocity] + [d[3] for d in discs])[vis]
        x1, y1 = xs + disp[..., 0], ys + disp[..., 1]
        out = (x1 < 0) | (x1 > w - 1) | (y1 < 0) | (y1 > h - 1)
        covered = np.zeros((h, w), bool)
        for k in range(3):
            covered |= (vis < k + 1) & inside(k, t + 1, x1, y1)
        np.testing.assert_array_equal(geo["layers"][t], vis)
        np.testing.assert_allclose(geo["flows"][t], disp, atol=1e-9)
        np.testing.assert_array_equal(geo["occlusions"][t], out | covered)
        counts["behind"] += int((covered & (vis == 1) & inside(1, t + 1, x1, y1)).sum())
        counts["covered_bg"] += int((covered & (vis == 0)).sum())
        counts["right_edge"] += int((out & (vis == 0) & (xs == w - 1)).sum())
        counts["bottom_edge"] += int((out & (vis == 3)).sum())
    assert all(v > 0 for v in counts.values()), counts
    np.testing.assert_array_equal(geo["labels"][0][geo["layers"][0] == 3], 7)  # retina


# ----------------------------------------------------------------------------------------------------
# a class is decided by appearance only
# ----------------------------------------------------------------------------------------------------
def test_shape_size_and_motion_do_not_depend_on_class():
    """Over many specs each class's mean of every geometric statistic equals the pooled mean within
    4.5 standard errors (a class 15 % larger than the others would fail), and classes are balanced."""
    stats = {c: [] for c in O.CLASSES[1:]}
    for k in range(500):
        spec = O.clip_spec(seed=11, index=k, num_frames=2, size=(96, 128))
        n = len(spec.objects)
        for j, o in enumerate(spec.objects):
            stats[o.class_name].append([
                o.radius / 96, o.outer_radius / o.radius, np.hypot(*o.velocity),
                np.hypot(*o.acceleration), o.spin, o.scale_rate, o.angle, (j + 1) / n, n,
                o.position[0] / 127, o.position[1] / 95])
    pooled = np.concatenate([np.array(v) for v in stats.values()])
    counts = [len(v) for v in stats.values()]
    assert max(counts) < 1.25 * np.mean(counts) and min(counts) > 0.75 * np.mean(counts), counts
    for c, values in stats.items():
        values = np.array(values)
        se = pooled.std(0) / math.sqrt(len(values))
        z = np.abs(values.mean(0) - pooled.mean(0)) / se
        assert z.max() < 4.5, (c, np.round(z, 2))
    assert 0.12 <= pooled[:, 0].min() and pooled[:, 0].max() <= 0.28  # radius range of the doc


# ----------------------------------------------------------------------------------------------------
# on disk, adapter, shards, pipelines
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny set generated through ``prepare("objects", ...)`` (shards in ``out``, videos in
    ``out/videos``)."""
    from tfvideo.data.prepare import prepare

    out = tmp_path_factory.mktemp("objects") / "shards"
    summary = prepare("objects", str(out), progress=False, log=None, workers=1,
                      objects_options=TINY)
    return out, summary


def _spec(split, k):
    return O.clip_spec(seed=0, split=split, index=k, num_frames=TINY["num_frames"],
                       size=TINY["size"])


def test_layout_on_disk(prepared):
    root = prepared[0] / "videos"
    assert sorted(os.listdir(root)) == ["README.txt", "objects.json", "test", "train"]
    assert json.loads((root / "objects.json").read_text())["train_videos"] == 2
    assert sorted(os.listdir(root / "train")) == ["clip_000", "clip_001"]
    assert os.listdir(root / "test") == ["clip_000"]
    folder = root / "test" / "clip_000"
    expected = O.render_clip(_spec("test", 0))
    assert sorted(os.listdir(folder / "frames")) == [f"{t:05d}.jpg" for t in range(6)]
    assert sorted(os.listdir(folder / "flows")) == [f"{t:05d}.flo" for t in range(5)]
    for t in range(6):
        frame = cv2.imread(str(folder / "frames" / f"{t:05d}.jpg"))  # the rendered frame, JPEG 95
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(expected["frames"][t], cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.testing.assert_array_equal(frame, cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        label = cv2.imread(str(folder / "labels" / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(label, expected["labels"][t])
    for t in range(5):
        flow, valid = read_flo(folder / "flows" / f"{t:05d}.flo")
        np.testing.assert_array_equal(flow, expected["flows"][t])
        assert valid.all()
        occ = cv2.imread(str(folder / "occlusions" / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(occ, np.where(expected["occlusions"][t], 255, 0))
    assert "cameraman" in (root / "README.txt").read_text()


def test_gatech_items_reads_labels_and_flows(prepared):
    from tfvideo.data.items import ReadError
    from tfvideo.data.segmentation_sets import gatech_items

    root = prepared[0] / "videos"
    items, problems = gatech_items(root, "train", num_classes=len(O.CLASSES), id_prefix="objects")
    assert problems == [] and [i.video_id for i in items] == ["objects/train/clip_000",
                                                              "objects/train/clip_001"]
    expected = O.render_clip(_spec("train", 1))
    out = items[1].load()
    np.testing.assert_array_equal(out["segmentation_frame_index"], range(6))
    np.testing.assert_array_equal(out["segmentations"], expected["labels"])
    np.testing.assert_array_equal(out["flow_frame_index"], range(5))
    np.testing.assert_array_equal(out["flows"], expected["flows"])
    assert out["flow_valid"].all()
    small = items[1].load(short_side=16)  # halved: flows area-averaged and halved
    assert small["frames"].shape == (6, 16, 24, 3) and small["flows"].shape == (5, 16, 24, 2)
    halved = expected["flows"].reshape(5, 16, 2, 24, 2, 2).mean(axis=(2, 4)) / 2
    np.testing.assert_allclose(small["flows"], halved, atol=1e-4)
    top = int(expected["labels"].max())  # labels must be below num_classes
    assert top > 0
    with pytest.raises(ReadError, match=rf"label values \[{top}\] out of range"):
        gatech_items(root, "train", num_classes=top)[0][1].load()


def test_prepared_shards_feed_the_dense_and_pair_pipelines(prepared):
    from tfvideo.data import pipeline

    out, summary = prepared
    assert summary["classes"] == list(O.CLASSES) and summary["videos"] == 3
    assert summary["splits"]["train"]["videos"] == 2 and summary["splits"]["test"]["videos"] == 1
    size = TINY["size"]
    clips = {f"objects/train/clip_{k:03d}": O.render_clip(_spec("train", k)) for k in range(2)}
    common = dict(training=False, size=size, batch_size=2, num_frames=4, crop="center",
                  with_video_id=True)
    # evaluation clip of 4 of 6 frames: centred start (6 - 4) // 2 = 1, frames 1..4
    inputs, flows, weights = next(iter(pipeline.dense_dataset(str(out), "train", target="flow",
                                                              **common)))
    assert inputs["frames"].shape == (2, 4, *size, 3) and flows.shape == (2, 4, *size, 2)
    for i, vid in enumerate(inputs["video_id"].numpy()):
        exact = clips[vid.decode()]["flows"][1:5]
        np.testing.assert_allclose(flows[i].numpy(), exact, rtol=2**-11, atol=1e-3)  # float16
        assert weights[i].numpy().all()
    inputs, labels, weights = next(iter(pipeline.dense_dataset(
        str(out), "train", target="segmentation", **common)))
    assert labels.shape == (2, 4, *size) and weights.numpy().all()
    for i, vid in enumerate(inputs["video_id"].numpy()):
        np.testing.assert_array_equal(labels[i].numpy(), clips[vid.decode()]["labels"][1:5])
    grey, rgb, weights = next(iter(pipeline.dense_dataset(str(out), "train", target="colour",
                                                          **common)))
    assert grey["frames"].shape == (2, 4, *size, 1) and rgb.shape == (2, 4, *size, 3)
    frames, labels, weights = next(iter(pipeline.pair_dataset(
        str(out), "test", training=False, size=size, batch_size=4, eval_offsets=(0, 3),
        crop="center")))
    assert frames.shape == (4, 2, *size, 3) and labels.shape == (4, *size)
    test_labels = O.render_clip(_spec("test", 0))["labels"]
    np.testing.assert_array_equal(labels.numpy(), test_labels[[0, 0, 1, 1]])
    assert weights.numpy().all()
    train = pipeline.dense_dataset(str(out), "train", target="flow", training=True, size=(16, 16),
                                   batch_size=2, num_frames=4, seed=0)
    _, flows, weights = next(iter(train))
    assert flows.shape == (2, 4, 16, 16, 2) and weights.shape == (2, 4, 16, 16)


def test_repeated_prepare_skips_and_other_settings_are_refused(prepared):
    from tfvideo.data.prepare import check_reusable, prepare

    out, _ = prepared
    before = tree_state(out)
    again = prepare("objects", str(out), progress=False, log=None, workers=1, objects_options=TINY)
    assert all(s["written"] == 0 for s in again["splits"].values())
    after = tree_state(out)  # videos and shards untouched (the manifest is rewritten)
    assert {k: v for k, v in after.items() if k not in (".", "manifest.json")} == \
        {k: v for k, v in before.items() if k not in (".", "manifest.json")}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["settings"]["objects"] == {
        "num_frames": 6, "seed": 0, "size": [32, 48], "test_videos": 1, "train_videos": 2}
    with pytest.raises(ValueError, match="objects="):
        check_reusable("objects", str(out), objects_options=dict(TINY, seed=1))
    with pytest.raises(ValueError, match="fps"):
        prepare("objects", str(out), fps=5, progress=False, log=None)


def test_foreign_folder_is_refused(tmp_path):
    from tfvideo.data.prepare import prepare

    foreign = tmp_path / "foreign"
    (foreign / "train" / "clip_000").mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an objects dataset"):
        O.generate_objects(foreign, progress=False, **TINY)
    with pytest.raises(ValueError, match="not an objects dataset"):
        prepare("objects", str(tmp_path / "out"), str(foreign), progress=False, log=None,
                objects_options=TINY)
    assert sorted(os.listdir(foreign)) == ["notes.txt", "train"]  # nothing removed
    assert os.listdir(foreign / "train") == ["clip_000"]


def test_skip_resume_and_regenerate(tmp_path):
    root = tmp_path / "set"
    small = dict(TINY, num_frames=3, size=(16, 16))
    first = O.generate_objects(root, progress=False, **small)
    assert not first["skipped"] and first["written"] == 3
    before = tree_state(root)
    assert O.generate_objects(root, progress=False, **small)["skipped"]
    assert tree_state(root) == before
    # interrupted run: a clip missing and a temporary folder left over -> only that clip is written
    import shutil

    shutil.rmtree(root / "train" / "clip_001")
    (root / "train" / ".tmp-stale").mkdir()
    resumed = O.generate_objects(root, progress=False, **small)
    assert not resumed["skipped"] and resumed["written"] == 1
    assert sorted(os.listdir(root / "train")) == ["clip_000", "clip_001"]
    # other parameters: every clip regenerated, stale ones removed
    other = O.generate_objects(root, progress=False, **dict(small, train_videos=1, test_videos=0))
    assert other["written"] == 1 and os.listdir(root / "train") == ["clip_000"]
    assert os.listdir(root / "test") == []
    assert len(os.listdir(root / "train" / "clip_000" / "frames")) == 3
    assert O.generate_objects(root, progress=False, overwrite=True,
                              **dict(small, train_videos=1, test_videos=0))["written"] == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="train_videos"):
        O.generate_objects(tmp_path / "x", train_videos=0, progress=False)
    with pytest.raises(ValueError, match="size"):
        O.generate_objects(tmp_path / "x", size=(8, 64), progress=False)
    with pytest.raises(ValueError, match="num_frames"):
        O.clip_spec(num_frames=1)
    with pytest.raises(ValueError, match="split"):
        O.clip_spec(split="val")
    with pytest.raises(ValueError, match="class_name"):
        O.ObjectSpec("dog", position=(0, 0), radius=3)
    with pytest.raises(ValueError, match="amplitudes"):
        O.ObjectSpec("cat", position=(0, 0), radius=3, amplitudes=(0.5, 0.3, 0.2))
    with pytest.raises(ValueError, match="photo"):
        O.BackgroundSpec("chelsea", center=(0, 0))
    with pytest.raises(ValueError, match="layer"):
        O.frame_transform(O.clip_spec(num_frames=2, size=(16, 16)), 9, 0)
    assert not os.path.exists(tmp_path / "x")


def test_cli_and_preview(tmp_path, capsys):
    out, sheet = tmp_path / "cli", tmp_path / "sheet.png"
    s = O.main(["--out", str(out), "--train-videos", "1", "--test-videos", "1", "--num-frames", "2",
                "--size", "16x32", "--seed", "4", "--no-progress", "--preview", str(sheet),
                "--preview-videos", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"preview: {sheet}" and "wrote 2 clips" in lines[1]
    assert s["size"] == (16, 32) and s["seed"] == 4
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] >= 2 * 16 + 16 and image.shape[1] >= 5 * 32
    with pytest.raises(SystemExit) as err:
        O.main(["--help"])
    assert err.value.code == 0
    help_text = capsys.readouterr().out
    for opt in ("--out", "--seed", "--train-videos", "--test-videos", "--num-frames", "--size",
                "--overwrite", "--preview"):
        assert opt in help_text
    with pytest.raises(SystemExit) as err:
        O.main(["--out", str(out), "--size", "8x8"])
    assert err.value.code == 2


def test_preview_sheet_shows_labels_in_palette_colours(tmp_path):
    path = O.preview(str(tmp_path / "p.png"), videos=1, num_frames=2, size=(32, 48))
    sheet = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    labels = O.render_clip(O.clip_spec(index=0, num_frames=2, size=(32, 48)))["labels"][0]
    colours = {tuple(c) for c in O.label_image(labels).reshape(-1, 3)}
    found = {tuple(c) for c in sheet.reshape(-1, 3)}
    assert colours <= found and len(colours) == len(np.unique(labels))


def test_module_examples():
    import doctest

    from tfvideo.data import objects_scene

    assert doctest.testmod(objects_scene).failed == 0
    assert doctest.testmod(O).failed == 0


def test_palette_is_the_shared_label_palette():
    from tfvideo.viz import label_palette

    np.testing.assert_array_equal(O.PALETTE, label_palette(len(O.CLASSES)))
