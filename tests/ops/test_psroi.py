"""psroi_pool / ps_vote against a NumPy loop transcription of R-FCN's PSROIPooling CUDA kernel,
hand-computed cases and numerical gradients."""

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
import tensorflow as tf

from tfvideo.ops.psroi import ps_vote, psroi_pool


def c_round(v):
    """C's round(): halves away from zero (Decimal's ROUND_HALF_UP)."""
    return float(Decimal(float(v)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def psroi_reference(data_nchw, rois, output_dim, group_size, spatial_scale):
    """PSROIPoolForwardKernel of dff_rfcn/operator_cxx/psroi_pooling.cu, one output element at a time,
    with DType = float32 arithmetic (pooled_size == group_size). Output (N, output_dim, k, k)."""
    f = np.float32
    _, channels, height, width = data_nchw.shape
    k = group_size
    out = np.zeros((len(rois), output_dim, k, k), np.float32)
    for n, roi in enumerate(rois.astype(np.float32)):
        b = int(roi[0])
        roi_start_w = f(c_round(roi[1])) * f(spatial_scale)
        roi_start_h = f(c_round(roi[2])) * f(spatial_scale)
        roi_end_w = f(c_round(roi[3]) + 1.0) * f(spatial_scale)
        roi_end_h = f(c_round(roi[4]) + 1.0) * f(spatial_scale)
        roi_width = f(max(roi_end_w - roi_start_w, f(0.1)))
        roi_height = f(max(roi_end_h - roi_start_h, f(0.1)))
        bin_h = f(roi_height / f(k))
        bin_w = f(roi_width / f(k))
        for ctop in range(output_dim):
            for ph in range(k):
                for pw in range(k):
                    hstart = int(np.floor(f(f(ph) * bin_h) + roi_start_h))
                    wstart = int(np.floor(f(f(pw) * bin_w) + roi_start_w))
                    hend = int(np.ceil(f(f(ph + 1) * bin_h) + roi_start_h))
                    wend = int(np.ceil(f(f(pw + 1) * bin_w) + roi_start_w))
                    hstart, hend = min(max(hstart, 0), height), min(max(hend, 0), height)
                    wstart, wend = min(max(wstart, 0), width), min(max(wend, 0), width)
                    if hend <= hstart or wend <= wstart:
                        continue  # empty bin: 0
                    gw, gh = pw, ph  # floor(pw * group_size / pooled_width) with pooled == group
                    c = (ctop * k + gh) * k + gw
                    s = 0.0
                    for h in range(hstart, hend):
                        for w in range(wstart, wend):
                            s += data_nchw[b, c, h, w]
                    out[n, ctop, ph, pw] = s / ((hend - hstart) * (wend - wstart))
    return out


def random_rois(rng, n, batch, img_h, img_w):
    x = rng.uniform(-0.3 * img_w, 1.2 * img_w, size=(n, 2))
    y = rng.uniform(-0.3 * img_h, 1.2 * img_h, size=(n, 2))
    rois = np.stack([rng.integers(0, batch, n), x.min(1), y.min(1), x.max(1), y.max(1)], 1)
    return rois.astype(np.float32)


def special_rois():
    return np.array([
        [0, 3.5, 4.5, 40.5, 30.5],    # .5 corners: C round goes away from zero (4.5 -> 5, not 4)
        [1, -2.5, -0.5, 20.0, 17.0],  # partly outside the map (negative start)
        [0, 60.0, 50.0, 200.0, 150.0],  # partly outside on the right / bottom
        [1, 300.0, 300.0, 400.0, 400.0],  # entirely outside: every bin empty -> 0
        [0, 20.0, 20.0, 20.0, 20.0],  # a single pixel
        [1, 30.0, 10.0, 25.0, 5.0],   # inverted: width forced to 0.1 feature pixels
        [0, 0.0, 0.0, 87.0, 71.0],    # the whole image
        [1.9, 8.0, 8.0, 23.0, 23.0],  # batch index 1.9 truncates to 1
    ], np.float32)


@pytest.mark.parametrize("k,output_dim,scale", [(3, 2, 1 / 8), (7, 3, 1 / 16), (2, 4, 0.25)])
def test_matches_cuda_kernel_transcription(k, output_dim, scale):
    rng = np.random.default_rng(k)
    b, h, w = 2, 9, 11
    img_h, img_w = h / scale, w / scale
    data = rng.normal(size=(b, output_dim * k * k, h, w)).astype(np.float32)
    rois = np.concatenate([random_rois(rng, 12, b, img_h, img_w), special_rois()])
    ref = psroi_reference(data, rois, output_dim, k, scale)
    ours = psroi_pool(np.transpose(data, (0, 2, 3, 1)), rois, output_dim, group_size=k, spatial_scale=scale)
    assert ours.shape == (len(rois), k, k, output_dim)
    np.testing.assert_allclose(ours.numpy(), np.transpose(ref, (0, 2, 3, 1)), rtol=1e-5, atol=1e-5)
    # the "entirely outside" roi pools to exact zeros; the others are not all zero
    assert np.all(ours.numpy()[12 + 3] == 0)
    assert np.count_nonzero(ours.numpy()) > 0.5 * ours.numpy().size


def test_channel_layout_hand_case():
    # map value = its channel index everywhere -> bin (by, bx) of class c reads channel (c*k + by)*k + bx
    k, dim = 3, 2
    maps = np.broadcast_to(np.arange(dim * k * k, dtype=np.float32), (1, 6, 6, dim * k * k))
    out = psroi_pool(maps, [[0, 0, 0, 95, 95]], dim, group_size=k, spatial_scale=1 / 16).numpy()[0]
    by, bx, c = np.meshgrid(np.arange(k), np.arange(k), np.arange(dim), indexing="ij")
    np.testing.assert_array_equal(out, (c * k + by) * k + bx)


def test_bins_average_the_integer_pixels_hand_case():
    # roi [0, 0, 31, 31] at scale 1/8: start 0, end 32/8 = 4 feature pixels, k = 2 -> bins [0, 2) x [0, 2) ...
    plane = np.arange(36, dtype=np.float32).reshape(6, 6)
    maps = np.repeat(plane[None, :, :, None], 4, axis=-1)  # output_dim 1, k 2: 4 identical channels
    out = psroi_pool(maps, [[0, 0, 0, 31, 31]], 1, group_size=2, spatial_scale=1 / 8).numpy()[0, ..., 0]
    expected = [[plane[0:2, 0:2].mean(), plane[0:2, 2:4].mean()], [plane[2:4, 0:2].mean(), plane[2:4, 2:4].mean()]]
    np.testing.assert_allclose(out, expected)
    # roi [0, 0, 39, 39]: end 5 -> bin size 2.5, bins [0, 3) and [2, 5): neighbouring bins share a pixel
    out = psroi_pool(maps, [[0, 0, 0, 39, 39]], 1, group_size=2, spatial_scale=1 / 8).numpy()[0, ..., 0]
    np.testing.assert_allclose(out[0, 0], plane[0:3, 0:3].mean())
    np.testing.assert_allclose(out[1, 1], plane[2:5, 2:5].mean())


def test_gradient_check():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(2, 4, 5, 2 * 2 * 2))
    rois = np.array([[0, 0, 0, 40, 30], [1, 10, 5, 95, 70], [1, -20, -20, 30, 30], [0, 30, 30, 20, 20]],
                    np.float64)
    pool = tf.function(lambda m: psroi_pool(m, rois, 2, group_size=2, spatial_scale=1 / 16))
    theoretical, numerical = tf.test.compute_gradient(pool, [tf.constant(maps)], delta=1e-4)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)
    assert np.abs(theoretical[0]).sum() > 0


def test_no_gradient_through_rois():
    maps = tf.ones((1, 4, 4, 4))
    rois = tf.constant([[0.0, 0.0, 0.0, 40.0, 40.0]])
    with tf.GradientTape() as tape:
        tape.watch(rois)
        out = psroi_pool(maps, rois, 1, group_size=2, spatial_scale=1 / 16)
    assert tape.gradient(out, rois) is None


def test_graph_mode_unknown_sizes():
    fn = tf.function(lambda m, r: psroi_pool(m, r, 2, group_size=3, spatial_scale=1 / 8),
                     input_signature=[tf.TensorSpec([None, None, None, 18]), tf.TensorSpec([None, 5])])
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 7, 8, 18)).astype(np.float32)
    rois = random_rois(rng, 5, 2, 56, 64)
    np.testing.assert_allclose(fn(maps, rois).numpy(), psroi_pool(maps, rois, 2, 3, 1 / 8).numpy(), atol=1e-6)
    assert fn(maps, rois[:0]).shape == (0, 3, 3, 2)


def test_ps_vote_is_bin_average():
    pooled = np.random.default_rng(1).normal(size=(4, 7, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(ps_vote(pooled).numpy(), pooled.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    maps = np.zeros((1, 4, 4, 8), np.float32)
    with pytest.raises(ValueError, match="score_maps.*output_dim \\* group_size"):
        psroi_pool(maps, [[0, 0, 0, 1, 1]], output_dim=3, group_size=2)
    with pytest.raises(ValueError, match="rois.*batch_index, x1, y1, x2, y2"):
        psroi_pool(maps, [[0, 0, 1, 1]], output_dim=2, group_size=2)
    with pytest.raises(ValueError, match="group_size"):
        psroi_pool(maps, [[0, 0, 0, 1, 1]], output_dim=2, group_size=0)
    with pytest.raises(ValueError, match="spatial_scale"):
        psroi_pool(maps, [[0, 0, 0, 1, 1]], output_dim=2, group_size=2, spatial_scale=0)
    with pytest.raises(TypeError, match="score_maps"):
        psroi_pool(maps.astype(np.int32), [[0, 0, 0, 1, 1]], output_dim=2, group_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch index"):
        psroi_pool(maps, [[1, 0, 0, 1, 1]], output_dim=2, group_size=2)
    with pytest.raises(ValueError, match="pooled"):
        ps_vote(np.zeros((2, 3)))
