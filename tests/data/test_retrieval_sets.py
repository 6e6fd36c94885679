"""Tests of tfvideo.data.retrieval_sets: Holidays / Oxford / Paris readers on fake trees written here,
and the built-in benchmark (closed-form renders, determinism, the protocol)."""

import doctest
import math
import os

import cv2
import numpy as np
import pytest

from tfvideo.data import photos, retrieval_sets
from tfvideo.data.items import ReadError
from tfvideo.data.retrieval_sets import (BUILTIN_PHOTOS, RetrievalSet, ViewSpec, builtin_retrieval, holidays,
                                         oxford5k, paris6k, render_view, view_spec)


def _jpg(path, value=0, size=(6, 8)):
    """A tiny JPEG; ``value`` is an RGB triple (or a grey level); returns the RGB array written."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgb = np.empty(size + (3,), np.uint8)
    rgb[...] = value
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    return rgb


def _lines(path, *lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))


# ----------------------------------------------------------------------------------------------------
# Holidays
# ----------------------------------------------------------------------------------------------------
def _holidays_tree(root):
    # group 1000: query + 2; 1001: query + 1; 1002: no query; 1003: query alone; a stray file
    for n in ("100000", "100001", "100002", "100100", "100101", "100201", "100300"):
        _jpg(root / "jpg" / f"{n}.jpg", 10)
    _jpg(root / "jpg" / "notes.jpg")
    return root


def test_holidays_groups_queries_positives_and_junk(tmp_path):
    ds = holidays(_holidays_tree(tmp_path))
    names = [os.path.basename(p) for p in ds.database]
    assert names == ["100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg", "100201.jpg",
                     "100300.jpg"]
    assert ds.query_names == ["100000.jpg", "100100.jpg"]
    assert ds.queries.tolist() == [0, 3]  # queries are database images
    assert [p.tolist() for p in ds.positives] == [[1, 2], [4]]  # the rest of the group
    assert [j.tolist() for j in ds.junk] == [[0], [3]]  # the query is excluded from its own ranking
    assert all(p.dtype == np.int64 for p in ds.positives + ds.junk)
    problems = dict(ds.problems)
    assert "1002" in problems and "no query" in problems["1002"]
    assert "no positive" in problems["100300.jpg"]
    assert any(p.endswith("notes.jpg") for p, _ in ds.problems)
    assert ds.query_boxes is None and ds.rotations == {}
    assert "holidays_map.py" in ds.protocol and "2.6 q7" in ds.protocol


def test_holidays_images_directly_in_root_and_rgb_decoding(tmp_path):
    red = _jpg(tmp_path / "000100.jpg", (250, 0, 0))
    _jpg(tmp_path / "000101.jpg", (0, 0, 250))
    ds = holidays(tmp_path)
    assert ds.query_names == ["000100.jpg"] and ds.positives[0].tolist() == [1]
    img = ds.load_query(0)
    assert img.dtype == np.uint8 and img.shape == (6, 8, 3)
    np.testing.assert_allclose(img.astype(int), red.astype(int), atol=3)  # RGB, not BGR
    assert ds.load_image(1)[0, 0, 2] > 240


def test_holidays_rotate_fix_is_clockwise_and_validated(tmp_path):
    root = tmp_path
    _jpg(root / "100000.jpg")
    grad = np.tile(np.arange(0, 240, 30, dtype=np.uint8), (6, 1))  # 6 x 8, bright to the right
    cv2.imwrite(str(root / "100001.jpg"), grad)
    plain = holidays(root).load_image(1)
    rotated = holidays(root, rotate={"100001.jpg": 90}).load_image(1)
    assert rotated.shape == (8, 6, 3)
    np.testing.assert_array_equal(rotated, np.rot90(plain, k=-1))  # clockwise: right edge goes down
    assert rotated[-1, 0, 0] > rotated[0, 0, 0]
    np.testing.assert_array_equal(holidays(root, rotate={"100001": 180}).load_image(1), plain[::-1, ::-1])
    with pytest.raises(ValueError, match="multiple of 90"):
        holidays(root, rotate={"100001.jpg": 45})
    with pytest.raises(ValueError, match="not in the set.*nope.jpg"):
        holidays(root, rotate={"nope.jpg": 90})


def test_unreadable_image_raises_read_error_and_can_be_dropped(tmp_path):
    _holidays_tree(tmp_path)
    (tmp_path / "jpg" / "100002.jpg").write_bytes(b"not a jpeg")
    ds = holidays(tmp_path)
    with pytest.raises(ReadError, match="100002.jpg: cannot be decoded"):
        ds.load_image(2)
    os.remove(tmp_path / "jpg" / "100101.jpg")
    with pytest.raises(ReadError, match="does not exist"):
        ds.load_image(4)
    bad = []
    for i in range(ds.num_images):
        try:
            ds.load_image(i)
        except ReadError:
            bad.append(i)
    assert bad == [2, 4]
    kept = ds.without_images(bad)
    # database 0 1 3 5 6 -> 0 1 2 3 4; query 100100 lost its only positive
    assert kept.num_images == 5 and kept.query_names == ["100000.jpg"]
    assert kept.queries.tolist() == [0] and kept.positives[0].tolist() == [1] and kept.junk[0].tolist() == [0]
    reasons = dict(kept.problems)
    assert "every positive is unreadable" in reasons["100100.jpg"]
    assert sum("removed from the database" in r for r in reasons.values()) == 2


def test_holidays_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        holidays(tmp_path / "missing")
    with pytest.raises(ValueError, match="no Holidays images.*NNNNSS"):
        holidays(tmp_path)


# ----------------------------------------------------------------------------------------------------
# Oxford / Paris
# ----------------------------------------------------------------------------------------------------
def _oxford_tree(root, gt="gt_files_170407"):
    for n in ("all_souls_000001", "all_souls_000002", "all_souls_000003", "all_souls_000004",
              "ashmolean_000001", "ashmolean_000002", "random_000001"):
        _jpg(root / "jpg" / f"{n}.jpg")
    g = root / gt
    _lines(g / "all_souls_1_query.txt", "oxc1_all_souls_000001 136.5 34.1 648.5 955.7")
    _lines(g / "all_souls_1_good.txt", "all_souls_000001", "all_souls_000002")
    _lines(g / "all_souls_1_ok.txt", "all_souls_000003")
    _lines(g / "all_souls_1_junk.txt", "all_souls_000004", "")
    _lines(g / "ashmolean_1_query.txt", "oxc1_ashmolean_000002 1 2 3 4")
    _lines(g / "ashmolean_1_good.txt", "ashmolean_000001")
    _lines(g / "ashmolean_1_ok.txt")
    _lines(g / "ashmolean_1_junk.txt", "ashmolean_000001", "all_souls_000002")  # 000001 also good
    return root


def test_oxford_ground_truth_prefix_roi_and_protocol(tmp_path):
    ds = oxford5k(_oxford_tree(tmp_path))
    stems = [os.path.splitext(os.path.basename(p))[0] for p in ds.database]
    assert stems == sorted(stems) and len(stems) == 7 and "random_000001" in stems  # distractor kept
    idx = {s: i for i, s in enumerate(stems)}
    assert ds.query_names == ["all_souls_1"]  # ashmolean_1 lost its only positive to junk
    assert ds.queries.tolist() == [idx["all_souls_000001"]]  # oxc1_ removed; the full image
    # good + ok; the query image is in good and stays a positive (compute_ap does not remove it)
    assert ds.positives[0].tolist() == [idx["all_souls_000001"], idx["all_souls_000002"],
                                        idx["all_souls_000003"]]
    assert ds.junk[0].tolist() == [idx["all_souls_000004"]]
    np.testing.assert_array_equal(ds.query_boxes, [[136.5, 34.1, 648.5, 955.7]])
    reasons = dict(ds.problems)
    assert "good/ok and junk" in reasons["ashmolean_1: ashmolean_000001"]
    assert "no positive" in reasons["ashmolean_1"]
    assert ds.load_query(0).shape == (6, 8, 3)


def test_read_landmark_ground_truth(tmp_path):
    _oxford_tree(tmp_path, gt="gt")
    gt = retrieval_sets.read_landmark_ground_truth(tmp_path / "gt")
    assert list(gt) == ["all_souls_1", "ashmolean_1"]
    assert gt["all_souls_1"] == {"image": "all_souls_000001", "box": (136.5, 34.1, 648.5, 955.7),
                                 "good": ["all_souls_000001", "all_souls_000002"],
                                 "ok": ["all_souls_000003"], "junk": ["all_souls_000004"]}
    _lines(tmp_path / "gt" / "bad_1_query.txt", "oxc1_all_souls_000001 1 2 3")
    with pytest.raises(ReadError, match="bad_1_query.txt: expected one line"):
        retrieval_sets.read_landmark_ground_truth(tmp_path / "gt")


def test_paris_subfolders_without_prefix(tmp_path):
    for lm, n in (("defense", 1), ("defense", 2), ("eiffel", 1), ("eiffel", 2), ("eiffel", 3)):
        _jpg(tmp_path / "jpg" / "paris" / lm / f"paris_{lm}_{n:06d}.jpg")
    g = tmp_path / "gt"
    _lines(g / "eiffel_1_query.txt", "paris_eiffel_000003 10 20 30 40")
    _lines(g / "eiffel_1_good.txt", "paris_eiffel_000001")
    _lines(g / "eiffel_1_ok.txt", "paris_eiffel_000002")
    _lines(g / "eiffel_1_junk.txt", "paris_defense_000002")
    _lines(g / "defense_1_query.txt", "paris_defense_000001 0 0 5 5")
    _lines(g / "defense_1_good.txt", "paris_defense_000002")
    ds = paris6k(tmp_path)  # defense_1 has no ok/junk files: empty lists
    stems = [os.path.basename(p)[:-4] for p in ds.database]
    assert stems == ["paris_defense_000001", "paris_defense_000002", "paris_eiffel_000001",
                     "paris_eiffel_000002", "paris_eiffel_000003"]
    assert os.path.dirname(ds.database[2]).endswith(os.path.join("paris", "eiffel"))
    assert ds.query_names == ["defense_1", "eiffel_1"]
    assert ds.queries.tolist() == [0, 4]
    assert [p.tolist() for p in ds.positives] == [[1], [2, 3]]
    assert [j.tolist() for j in ds.junk] == [[], [1]]
    np.testing.assert_array_equal(ds.query_boxes, [[0, 0, 5, 5], [10, 20, 30, 40]])
    assert ds.name == "paris6k" and "ROIs ignored" in ds.protocol


def test_missing_images_error_lists_them_or_skip(tmp_path):
    _oxford_tree(tmp_path, gt="gt")
    os.remove(tmp_path / "jpg" / "all_souls_000003.jpg")
    os.remove(tmp_path / "jpg" / "all_souls_000001.jpg")
    with pytest.raises(ValueError, match=r"2 image\(s\) named by the oxford5k ground truth are not under "
                                         r".*all_souls_000001, all_souls_000003 \(pass missing='skip'"):
        oxford5k(tmp_path)
    ds = oxford5k(tmp_path, missing="skip")
    assert ds.num_images == 5 and ds.num_queries == 0  # all_souls_1's query image is gone
    reasons = dict(ds.problems)
    assert "not on disk" in reasons["all_souls_000003"]
    assert "its image all_souls_000001 is not on disk" in reasons["all_souls_1"]
    with pytest.raises(ValueError, match="missing must be 'error' or 'skip'"):
        oxford5k(tmp_path, missing="ignore")


def test_landmark_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="no .jpg images"):
        oxford5k(tmp_path)
    _jpg(tmp_path / "jpg" / "a" / "x_1.jpg")
    with pytest.raises(ValueError, match="no oxford5k ground truth"):
        oxford5k(tmp_path)
    _jpg(tmp_path / "jpg" / "b" / "x_1.jpg")
    with pytest.raises(ValueError, match="1 image names occur more than once.*x_1"):
        paris6k(tmp_path)


# ----------------------------------------------------------------------------------------------------
# RetrievalSet checks
# ----------------------------------------------------------------------------------------------------
def test_retrieval_set_validates_the_ranking_problem():
    base = dict(name="t", database=["a", "b", "c"], queries=[0], query_names=["a"])
    RetrievalSet(**base, positives=[[2, 1]], junk=[[0]])
    with pytest.raises(ValueError, match="disjoint; both hold \\[1\\]"):
        RetrievalSet(**base, positives=[[1]], junk=[[1, 0]])
    with pytest.raises(ValueError, match="positives\\[0\\] .* is empty"):
        RetrievalSet(**base, positives=[[]], junk=[[0]])
    with pytest.raises(ValueError, match="positives\\[0\\] must hold database indices in \\[0, 3\\)"):
        RetrievalSet(**base, positives=[[3]], junk=[[]])
    with pytest.raises(ValueError, match="junk must have one entry per query"):
        RetrievalSet(**base, positives=[[1]], junk=[])
    with pytest.raises(ValueError, match="query_images must have one entry per query"):
        RetrievalSet(**{**base, "queries": [-1]}, positives=[[1]], junk=[[]])
    ds = RetrievalSet(**base, positives=[[2, 1, 2]], junk=[[0]])
    assert ds.positives[0].tolist() == [1, 2]  # sorted, unique


# ----------------------------------------------------------------------------------------------------
# built-in set
# ----------------------------------------------------------------------------------------------------
SMALL = dict(size=(32, 40), variants=2, queries_per_photo=2, photos=("astronaut", "camera", "text"))


def test_builtin_shapes_protocol_and_positives_are_the_same_photo_views():
    ds = builtin_retrieval(seed=3, **SMALL)
    assert ds.num_images == 6 and ds.num_queries == 6
    for i in range(ds.num_images):
        img = ds.load_image(i)
        assert img.dtype == np.uint8 and img.shape == (32, 40, 3)
    for q in range(ds.num_queries):
        img = ds.load_query(q)
        assert img.dtype == np.uint8 and img.shape == (32, 40, 3)
    assert (ds.queries == -1).all()  # queries are not database images
    photo_of = [n.split("/")[0] for n in ds.database]
    for q, qname in enumerate(ds.query_names):
        same = [i for i, p in enumerate(photo_of) if p == qname.split("/")[0]]
        assert len(same) >= 1 and ds.positives[q].tolist() == same and ds.junk[q].size == 0
    # every image is the render of its own spec (nothing else mixed in)
    spec = view_spec("camera", seed=3, kind="query", index=1, size=(32, 40))
    np.testing.assert_array_equal(ds.load_query(3), render_view(spec))
    spec = view_spec("text", seed=3, kind="database", index=0, size=(32, 40))
    np.testing.assert_array_equal(ds.load_image(4), render_view(spec))


def test_builtin_is_deterministic_and_seed_dependent():
    a, b, c = (builtin_retrieval(seed=s, **SMALL) for s in (0, 0, 1))
    for i in range(a.num_images):
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        assert np.abs(a.load_image(i).astype(int) - c.load_image(i)).mean() > 5
    for q in range(a.num_queries):
        np.testing.assert_array_equal(a.load_query(q), b.load_query(q))
    # more views per photo do not change the earlier ones
    more = builtin_retrieval(seed=0, **{**SMALL, "variants": 3})
    np.testing.assert_array_equal(more.load_image(3), a.load_image(2))  # camera/db0


def test_builtin_defaults_and_describe():
    ds = builtin_retrieval()
    assert "cat" not in BUILTIN_PHOTOS and len(BUILTIN_PHOTOS) == len(photos.PHOTOS) - 1
    assert ds.num_images == 16 * 4 and ds.num_queries == 16 * 2
    assert ds.load_image(0).shape == (192, 256, 3)
    text = ds.describe()
    assert "64 database images, 32 queries (not in the database)" in text
    assert "rotation U(-30, 30) deg" in text and "JPEG" in text and "gamma" in text


def test_builtin_refuses_duplicate_pictures_and_bad_arguments():
    with pytest.raises(ValueError, match="'cat' and 'chelsea' are the same picture"):
        builtin_retrieval(photos=("cat", "chelsea"), size=(16, 16), variants=1, queries_per_photo=1)
    with pytest.raises(ValueError, match="variants must be an integer >= 1"):
        builtin_retrieval(variants=0)
    with pytest.raises(ValueError, match="size must be two integers >= 16"):
        builtin_retrieval(size=(8, 64))
    with pytest.raises(ValueError, match="max_rotation must be in"):
        builtin_retrieval(max_rotation=120)
    with pytest.raises(ValueError, match="photos must be names from"):
        builtin_retrieval(photos=("lena",))


def test_view_spec_windows_stay_inside_the_photo_and_overlap():
    """Geometry of every default view for 3 seeds: the rotated window lies inside the photo, the
    rotation is within +-30 degrees, and each query window shares >= 10 % of its area with each
    database window of its photo (sampled points mapped through the two affine maps)."""
    for seed in range(3):
        for name in BUILTIN_PHOTOS:
            ph, pw = photos.photo(name).shape[:2]
            specs = {kind: [view_spec(name, seed=seed, kind=kind, index=j, photo_shape=(ph, pw))
                            for j in range(n)] for kind, n in (("database", 4), ("query", 2))}
            for s in specs["database"] + specs["query"]:
                h, w = s.size
                corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [-0.5, h - 0.5, 1],
                                    [w - 0.5, h - 0.5, 1]]) @ s.matrix().T
                assert corners[:, 0].min() >= -0.5 - 1e-6 and corners[:, 0].max() <= pw - 0.5 + 1e-6
                assert corners[:, 1].min() >= -0.5 - 1e-6 and corners[:, 1].max() <= ph - 0.5 + 1e-6
                assert abs(s.angle) <= 30
            for q in specs["query"]:
                h, w = q.size
                ys, xs = np.mgrid[0:h:4, 0:w:4]
                pts = q.matrix() @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
                for d in specs["database"]:
                    inv = np.linalg.inv(np.vstack([d.matrix(), [0, 0, 1]]))
                    p = inv @ np.vstack([pts, np.ones(pts.shape[1])])
                    inside = (p[0] >= -0.5) & (p[0] <= w - 0.5) & (p[1] >= -0.5) & (p[1] <= h - 0.5)
                    assert inside.mean() >= 0.1, (seed, name)


def test_render_view_closed_forms():
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 255, (40, 50, 3)).astype(np.float32)
    # rotation by 90 degrees, zoom 1: output pixel p shows photo pixel c + R(90)(p - o): np.rot90 (CCW)
    s = ViewSpec(photo="camera", size=(16, 16), centre=(20.5, 17.5), zoom=1.0, angle=90.0)
    crop = photo[10:26, 13:29]  # rows 17.5 +- 7.5, cols 20.5 +- 7.5
    np.testing.assert_allclose(render_view(s, photo).astype(float), np.rint(np.rot90(crop)), atol=1)
    # zoom 2, no rotation: the INTER_AREA half-size photo, cropped. Half-size pixel x' covers photo
    # pixels 2x', 2x' + 1 (centre 2x' + 0.5): x' = p + 2 needs photo x = 2p + 4.5, c = 4.5 + 2 o
    s = ViewSpec(photo="camera", size=(16, 20), centre=(23.5, 19.5), zoom=2.0, angle=0.0)
    half = cv2.resize(photo, (25, 20), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(render_view(s, photo).astype(float), np.rint(half[2:18, 2:22]), atol=1)
    # photometric: 255 * (clip(x * gain * brightness) / 255) ** gamma on a constant photo
    flat = np.full((30, 30, 3), 100, np.float32)
    s = ViewSpec(photo="camera", size=(16, 16), centre=(14.5, 14.5), zoom=1.0, angle=0.0,
                 gain=(1.2, 1.0, 0.5), brightness=1.5, gamma=2.0)
    expected = [255 * (min(100 * g * 1.5, 255) / 255) ** 2 for g in (1.2, 1.0, 0.5)]
    np.testing.assert_allclose(render_view(s, flat)[8, 8], np.rint(expected), atol=1)
    # noise: its std, JPEG: close to the input
    s = ViewSpec(photo="camera", size=(64, 64), centre=(14.5, 14.5), zoom=0.4, angle=0.0, noise=5.0)
    out = render_view(s, flat).astype(float)
    assert abs(out.std() - 5.0) < 0.3 and abs(out.mean() - 100) < 0.5
    plain = ViewSpec(photo="astronaut", size=(64, 64), centre=(255.5, 255.5), zoom=2.0, angle=0.0)
    jpeg = render_view(ViewSpec(**{**plain.__dict__, "jpeg_quality": 90})).astype(float)
    assert 0 < np.abs(jpeg - render_view(plain)).mean() < 4


def test_view_spec_matrix_convention():
    s = ViewSpec(photo="camera", size=(10, 20), centre=(100.0, 50.0), zoom=2.0, angle=30.0)
    m = s.matrix()
    o = np.array([9.5, 4.5])
    a = math.radians(30)
    for p in ([0.0, 0.0], [19.0, 9.0], [3.0, 7.0]):
        d = np.array(p) - o
        expected = np.array([100 + 2 * (math.cos(a) * d[0] - math.sin(a) * d[1]),
                             50 + 2 * (math.sin(a) * d[0] + math.cos(a) * d[1])])
        np.testing.assert_allclose(m @ [*p, 1], expected)


def test_preview_png_contact_sheet(tmp_path):
    ds = builtin_retrieval(**SMALL)
    path = ds.preview_png(tmp_path / "sheet.png", queries=[0, 5], height=32)
    img = cv2.imread(path)
    assert img is not None and img.shape[0] > 64 and img.shape[1] > 3 * 32


def test_doctests():
    assert doctest.testmod(retrieval_sets).failed == 0
