"""Retrieval tools of the thesis's chapter 2 (digest 2.1 steps 5-8): k-means, PCA-whitening, L2
ranking and the Oxford / Holidays average precision, against closed forms, brute-force NumPy
references, an SVD reference, loop transcriptions of ``compute_ap.cpp`` and ``holidays_map.py``, and
hand-computed rankings."""

import doctest

import numpy as np
import pytest

from tfvideo import retrieval
from tfvideo.retrieval import (PCAWhitening, average_precision, kmeans, mean_average_precision,
                               nearest_centers, rank_by_l2)

RNG = np.random.default_rng(7)


def test_doctests():
    assert doctest.testmod(retrieval).failed == 0


# --------------------------------------------------------------------------------- references ----
def inertia(x, centers):
    """Sum over features of the squared distance to the nearest centre (brute force, float64)."""
    d = ((x[:, None].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)
    return d.min(axis=1).sum()


def blobs(k=5, per=60, d=8, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(k, d)) * 5.0
    x = np.concatenate([c + spread * rng.normal(size=(per, d)) for c in true])
    return x.astype(np.float32), true


# ------------------------------------------------------------------------------------ k-means ----
def test_kmeans_recovers_separated_blobs():
    x, true = blobs()
    centers = kmeans(x, 5, seed=3)
    assert centers.shape == (5, 8) and centers.dtype == np.float32
    d = np.linalg.norm(centers[:, None] - true[None], axis=-1)
    match = d.argmin(axis=1)
    assert sorted(match) == list(range(5))                       # one centre per blob
    assert d.min(axis=1).max() < 0.05                            # at the blob's mean (noise 0.05/sqrt(60))
    # a Lloyd fixed point: every centre is the mean of the features nearest to it
    labels, d2 = nearest_centers(x, centers)
    for j in range(5):
        np.testing.assert_allclose(centers[j], x[labels == j].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d2.sum(), inertia(x, centers), rtol=1e-5)


def test_kmeans_reproducible_and_better_than_random_centres():
    x = RNG.normal(size=(600, 6)).astype(np.float32)
    a = kmeans(x, 12, seed=1)
    np.testing.assert_array_equal(a, kmeans(x, 12, seed=1))       # same seed, same centres
    assert not np.array_equal(a, kmeans(x, 12, seed=2))
    random_inertias = [inertia(x, x[np.random.default_rng(s).choice(600, 12, replace=False)])
                       for s in range(5)]
    assert inertia(x, a) < 0.8 * min(random_inertias)
    # sampling: clusters 200 of the 600 features, reproducibly
    s1, s2 = kmeans(x, 12, seed=4, sample=200), kmeans(x, 12, seed=4, sample=200)
    np.testing.assert_array_equal(s1, s2)
    assert inertia(x, s1) < min(random_inertias)


def test_kmeans_reseeds_empty_clusters_from_farthest_points():
    x = np.array([[0.], [1.], [10.], [11.], [100.]], np.float32)
    # the third centre gets no feature: re-seeded at 100 (the farthest from its centre); the next
    # iteration empties the second centre, re-seeded at 11; then 0.5 / 10.5 / 100 is stable
    centers = kmeans(x, 3, init=np.array([[0.5], [10.5], [1000.]]))
    np.testing.assert_allclose(centers[:, 0], [0.5, 10.5, 100.0])
    # fewer distinct features than centres: no error, finite centres at the two points
    dup = np.array([[0., 0.]] * 5 + [[1., 1.]] * 5, np.float32)
    centers = kmeans(dup, 3, seed=0)
    assert np.all(np.isfinite(centers))
    assert {tuple(c) for c in centers} <= {(0., 0.), (1., 1.)}
    assert inertia(dup, centers) == 0.0


def test_kmeans_errors():
    x = RNG.normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 20 features"):
        kmeans(x, 20)
    with pytest.raises(ValueError, match="after sampling"):
        kmeans(x, 5, sample=3)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kmeans(x[0], 2)
    with pytest.raises(ValueError, match="finite"):
        kmeans(np.full((10, 3), np.nan), 2)
    with pytest.raises(ValueError, match="init"):
        kmeans(x, 2, init=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`k`"):
        kmeans(x, 0)


def test_kmeans_progress_summary(capsys):
    x, _ = blobs(k=3, per=20, d=4)
    kmeans(x, 3, progress=True)
    assert "k-means: 3 centres of 60 features (D = 4), converged" in capsys.readouterr().err


# ------------------------------------------------------------------------------ PCA-whitening ----
def svd_reference(x, dim, eps):
    """Top-``dim`` principal directions by SVD of the centred data; lambda = s^2 / N."""
    x = x.astype(np.float64)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    lam = s[:dim] ** 2 / len(x)
    return x.mean(axis=0), vt[:dim], lam


@pytest.mark.parametrize("n, d, dim", [(400, 12, 5), (40, 150, 16)])   # covariance / Gram paths
def test_pca_whitening_identity_covariance_and_svd_reference(n, d, dim):
    scales = np.linspace(3.0, 0.2, d)
    x = (RNG.normal(size=(n, d)) * scales + RNG.normal(size=d)).astype(np.float32)
    pca = PCAWhitening(renormalize=False).fit(x, dim=dim, eps=0.0)
    y = pca.transform(x)
    assert y.shape == (n, dim) and y.dtype == np.float32
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(dim), atol=1e-5)   # whitened
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    mean, vt, lam = svd_reference(x, dim, 0.0)
    np.testing.assert_allclose(pca.mean_, mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(pca.eigenvalues_, lam, rtol=1e-6)
    signs = np.sign(np.sum(pca.components_ * vt, axis=1))                          # +-1 each
    np.testing.assert_allclose(pca.components_, vt * signs[:, None], atol=1e-6)
    reference = (x - mean) @ vt.T / np.sqrt(lam) * signs
    np.testing.assert_allclose(y, reference, rtol=1e-4, atol=1e-4)
    # renormalize (the default): the same directions, unit vectors
    z = PCAWhitening().fit(x, dim=dim, eps=0.0).transform(x)
    np.testing.assert_allclose(z, reference / np.linalg.norm(reference, axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_pca_whitening_eps_save_load_and_single_vector(tmp_path):
    x = (RNG.normal(size=(300, 10)) * np.arange(1, 11)).astype(np.float32)
    eps = 0.5
    pca = PCAWhitening(renormalize=False).fit(x, dim=4, eps=eps)
    y = pca.transform(x)
    # with eps the covariance is diag(lambda / (lambda + eps))
    lam = pca.eigenvalues_
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.diag(lam / (lam + eps)), atol=1e-5)
    path = pca.save(tmp_path / "pca.npz")
    loaded = PCAWhitening.load(path)
    assert (loaded.renormalize, loaded.dim, loaded.input_dim, loaded.eps) == (False, 4, 10, eps)
    np.testing.assert_array_equal(loaded.transform(x), y)
    np.testing.assert_allclose(loaded.transform(x[3]), y[3], rtol=1e-6)      # (D,) -> (dim,)
    with pytest.raises(ValueError, match=".npz"):
        pca.save(tmp_path / "pca.bin")


def test_pca_whitening_errors():
    x = RNG.normal(size=(100, 300)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 129 descriptors"):
        PCAWhitening().fit(x, dim=128)
    with pytest.raises(ValueError, match="D = 300"):
        PCAWhitening().fit(RNG.normal(size=(400, 300)), dim=301)
    flat = RNG.normal(size=(50, 3)) @ RNG.normal(size=(3, 20))          # spans 3 dimensions
    with pytest.raises(ValueError, match="span only 3 dimensions"):
        PCAWhitening().fit(flat, dim=5)
    with pytest.raises(ValueError, match="before fit"):
        PCAWhitening().transform(x)
    pca = PCAWhitening().fit(flat, dim=2)
    with pytest.raises(ValueError, match="D = 20"):
        pca.transform(x)
    with pytest.raises(ValueError, match="renormalize"):
        PCAWhitening(renormalize="yes")


# ------------------------------------------------------------------------------------- ranking ----
def test_rank_by_l2_matches_brute_force_and_breaks_ties_by_index():
    db = RNG.normal(size=(30, 5)).astype(np.float32)
    db[7] = db[3]                                                       # exact duplicates
    db[20] = db[3]
    queries = np.concatenate([RNG.normal(size=(6, 5)), db[3:4]]).astype(np.float32)
    out = rank_by_l2(queries, db)
    assert out.shape == (7, 30) and out.dtype == np.int64
    for q in range(7):
        dist = np.sqrt(((db.astype(np.float64) - queries[q]) ** 2).sum(axis=1))
        expected = np.lexsort((np.arange(30), np.round(dist, 9)))       # distance, then index
        np.testing.assert_array_equal(out[q], expected)
        r = list(out[q])
        assert r.index(3) < r.index(7) < r.index(20)                    # tied duplicates by index
    np.testing.assert_array_equal(out[6, :3], [3, 7, 20])               # the query's copies first
    np.testing.assert_array_equal(rank_by_l2(queries, db, chunk_size=2), out)
    with pytest.raises(ValueError, match="same D"):
        rank_by_l2(queries, db[:, :4])


# ---------------------------------------------------------------------------- average precision ----
def ap_compute_ap_cpp(ranking, pos, junk):
    """Loop transcription of compute_ap() of the Oxford Buildings compute_ap.cpp."""
    pos, amb = set(pos), set(junk)
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect, j = 0, 0
    for item in ranking:
        if item in amb:
            continue
        if item in pos:
            intersect += 1
        recall = intersect / len(pos)
        precision = intersect / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def ap_holidays_map(ranking, pos, query):
    """holidays_map.py: ranks of the true positives with the query's rank shift, then
    score_ap_from_ranks_1."""
    tp_ranks, shift = [], 0
    for rank, item in enumerate(ranking):
        if item == query:
            shift = -1
        elif item in pos:
            tp_ranks.append(rank + shift)
    ap, step = 0.0, 1.0 / len(pos)
    for ntp, rank in enumerate(tp_ranks):
        p0 = 1.0 if rank == 0 else ntp / float(rank)
        p1 = (ntp + 1) / float(rank + 1)
        ap += (p1 + p0) * step / 2.0
    return ap


def test_average_precision_hand_computed():
    ranking = [3, 0, 5, 1, 2, 4]
    # junk 5 removed: [3, 0, 1, 2, 4]; positive 0 at rank 1 (0 found before), positive 2 at rank 3
    # (1 found before): AP = 1/2 * (0/1 + 1/2) / 2 + 1/2 * (1/3 + 2/4) / 2 = 1/8 + 5/24 = 1/3
    assert average_precision(ranking, [0, 2], [5]) == pytest.approx(1 / 3, abs=1e-15)
    # without junk removal 2 is at rank 4: 1/2 * (0 + 1/2) / 2 + 1/2 * (1/4 + 2/5) / 2 = 0.2875
    assert average_precision(ranking, [0, 2]) == pytest.approx(0.2875, abs=1e-15)
    # Holidays: the query 9 (junk) ranked first, positives 4 and 6:
    # [9, 4, 1, 6] -> [4, 1, 6]: 1/2 * (1 + 1) / 2 + 1/2 * (1/2 + 2/3) / 2 = 1/2 + 7/24 = 19/24
    assert average_precision([9, 4, 1, 6], [4, 6], [9]) == pytest.approx(19 / 24, abs=1e-15)
    # a truncated ranking that misses positive 8: 1/2 * (1 + 1) / 2 = 1/2
    assert average_precision([4, 1], [4, 8]) == pytest.approx(0.5, abs=1e-15)
    # perfect rankings, junk anywhere: 1
    assert average_precision([2, 0, 1, 3], [2, 0, 1]) == 1.0
    assert average_precision([7, 2, 5, 0, 1, 3], [2, 0], junk=[7, 5]) == 1.0
    # the positive last of 4: 1 * (0/3 + 1/4) / 2 = 1/8
    assert average_precision(np.array([0, 1, 2, 3]), np.array([3])) == pytest.approx(0.125)


def test_average_precision_equals_official_loops():
    rng = np.random.default_rng(11)
    for trial in range(50):
        n = int(rng.integers(5, 40))
        ranking = rng.permutation(n)
        labels = rng.integers(0, 3, n)                                 # 0 negative, 1 pos, 2 junk
        labels[rng.integers(n)] = 1
        pos, junk = np.flatnonzero(labels == 1), np.flatnonzero(labels == 2)
        ours = average_precision(ranking, pos, junk)
        assert ours == pytest.approx(ap_compute_ap_cpp(ranking, pos, junk), abs=1e-12)
        query = int(rng.choice(np.flatnonzero(labels != 1)))          # Holidays: query is junk
        assert average_precision(ranking, pos, [query]) == pytest.approx(
            ap_holidays_map(ranking, pos, query), abs=1e-12)


def test_average_precision_errors():
    with pytest.raises(ValueError, match="without positives"):
        average_precision([0, 1, 2], [], [1])
    with pytest.raises(ValueError, match="both `positives` and `junk`"):
        average_precision([0, 1, 2], [1], [1])
    with pytest.raises(ValueError, match="repeats"):
        average_precision([0, 1, 1], [1])
    with pytest.raises(ValueError, match="integer"):
        average_precision([0.5, 1.0], [1])


def test_mean_average_precision():
    rankings = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])
    positives = [np.array([0]), np.array([0, 1]), np.array([2])]
    junk = [None, np.array([3]), np.array([1])]
    # query 0: 1; query 1: [2, 1, 0] -> 1/2 (0 + 1/2)/2 + 1/2 (1/2 + 2/3)/2 = 1/8 + 7/24 = 5/12;
    # query 2: [0, 3, 2] -> (0/2 + 1/3) / 2 = 1/6
    m, aps = mean_average_precision(rankings, positives, junk)
    np.testing.assert_allclose(aps, [1.0, 5 / 12, 1 / 6], atol=1e-15)
    assert m == pytest.approx((1 + 5 / 12 + 1 / 6) / 3)
    m2, _ = mean_average_precision(list(rankings), positives, junk)
    assert m2 == m
    with pytest.raises(ValueError, match="query 1: .*without positives"):
        mean_average_precision(rankings, [np.array([0]), np.array([], int), np.array([2])])
    with pytest.raises(ValueError, match="one entry per query"):
        mean_average_precision(rankings, positives[:2])


def test_vlad_pipeline_end_to_end():
    """k-means codebook -> VLAD layer -> PCA-whitening -> L2 ranking -> mAP on a toy database where
    images of one group share their local features' distribution (each query's group ranks first)."""
    from tfvideo.layers.vlad import VLAD, LocalL2Normalize

    rng = np.random.default_rng(5)
    groups, per, n_local, d = 4, 10, 30, 6
    protos = rng.normal(size=(groups, 3, d))
    images = np.stack([protos[g][rng.integers(0, 3, n_local)] + 0.3 * rng.normal(size=(n_local, d))
                       for g in range(groups) for _ in range(per)]).astype(np.float32)
    local = LocalL2Normalize()(images).numpy()                                # (40, 30, 6)
    centers = kmeans(local.reshape(-1, d), 8, seed=0)
    vlads = VLAD(8, centers=centers)(local).numpy()                           # (40, 48)
    # whitening keeps the 3 dimensions that separate 4 groups (more would whiten noise up)
    compact = PCAWhitening().fit(vlads, dim=3).transform(vlads)
    label = np.repeat(np.arange(groups), per)
    for desc in (vlads, compact):
        ranking = rank_by_l2(desc, desc)
        positives = [np.flatnonzero((label == label[q]) & (np.arange(len(label)) != q))
                     for q in range(len(label))]
        m, _ = mean_average_precision(ranking, positives, [[q] for q in range(len(label))])
        assert m > 0.9
