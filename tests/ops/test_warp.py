"""dense_image_warp / interpolate_bilinear against OpenCV, closed forms and numerical gradients."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tfvideo.ops.warp import (
    backward_warp,
    dense_image_warp,
    interpolate_bilinear,
    opencv_flow_to_tfa,
    tfa_flow_to_opencv,
)


def smooth_random_flow(h, w, amplitude, seed):
    """A smooth random (dy, dx) field: coarse noise upsampled bicubically."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-amplitude, amplitude, size=(6, 6, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def test_matches_cv2_remap_on_photograph(photo_rgb):
    img = photo_rgb[100:260, 120:320]  # real photograph, 160 x 200 x 3
    h, w = img.shape[:2]
    flow = smooth_random_flow(h, w, amplitude=7.0, seed=1)  # reaches past the borders too
    ours = dense_image_warp(img[None], flow[None]).numpy()[0]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    map_x = xs - flow[..., 1]
    map_y = ys - flow[..., 0]
    ref = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # OpenCV quantises the interpolation weights to 1/32 pixel (INTER_TAB_SIZE), so the two agree up to
    # 1/32 of the local intensity range of the 2x2 neighbourhood that is sampled.
    x0 = np.clip(np.floor(np.clip(map_x, 0, w - 1)), 0, w - 2).astype(int)
    y0 = np.clip(np.floor(np.clip(map_y, 0, h - 1)), 0, h - 2).astype(int)
    corners = np.stack([img[y0, x0], img[y0, x0 + 1], img[y0 + 1, x0], img[y0 + 1, x0 + 1]])
    local_range = corners.max(0) - corners.min(0)
    err = np.abs(ours - ref)
    assert np.all(err <= local_range / 32.0 + 1e-3)
    assert err.mean() < 0.2
    # and the warp really moved things: far from identity
    assert np.abs(ours - img).mean() > 5.0


def test_zero_flow_is_identity(photo_grey):
    img = photo_grey[:64, :80, None][None]
    out = dense_image_warp(img, np.zeros((1, 64, 80, 2), np.float32))
    np.testing.assert_array_equal(out.numpy(), img)


@pytest.mark.parametrize("dy,dx", [(2, -3), (-1, 4), (0, 1)])
def test_integer_shift_is_translation(photo_grey, dy, dx):
    img = photo_grey[:40, :50]
    flow = np.zeros((1, 40, 50, 2), np.float32)
    flow[..., 0], flow[..., 1] = dy, dx
    out = dense_image_warp(img[None, ..., None], flow).numpy()[0, ..., 0]
    rolled = np.roll(img, shift=(dy, dx), axis=(0, 1))  # rolled[y, x] = img[y - dy, x - dx]
    ys = slice(max(dy, 0), 40 + min(dy, 0))
    xs = slice(max(dx, 0), 50 + min(dx, 0))
    np.testing.assert_allclose(out[ys, xs], rolled[ys, xs], atol=1e-4)


def test_out_of_image_queries_clamp_to_border():
    img = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    flow = np.full((1, 3, 4, 2), 100.0, np.float32)  # samples far up-left -> top-left pixel
    np.testing.assert_array_equal(dense_image_warp(img, flow).numpy(), np.zeros_like(img))
    flow = np.full((1, 3, 4, 2), -100.0, np.float32)  # far down-right -> bottom-right pixel
    np.testing.assert_array_equal(dense_image_warp(img, flow).numpy(), np.full_like(img, 11.0))


def test_gradient_check():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (2, 5, 6, 2))
    # keep query points away from integer positions (where bilinear interpolation has kinks)
    flow = rng.uniform(0.1, 0.4, (2, 5, 6, 2)) * rng.choice([-1.0, 1.0], (2, 5, 6, 2))
    theoretical, numerical = tf.test.compute_gradient(
        lambda a, b: dense_image_warp(a, b), [tf.constant(img), tf.constant(flow)], delta=1e-5
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64])
def test_dtypes(photo_grey, dtype):
    img = photo_grey[:32, :32, None][None] / 255.0
    flow = smooth_random_flow(32, 32, 2.0, seed=3)[None]
    ref = dense_image_warp(img, flow).numpy()
    out = dense_image_warp(tf.cast(img, dtype), tf.cast(flow, dtype))
    assert out.dtype == dtype
    tol = {tf.float16: 5e-3, tf.bfloat16: 3e-2, tf.float64: 1e-6}[dtype]
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), ref, atol=tol)


@pytest.mark.parametrize("jit", [False, True])
def test_unknown_sizes_in_tf_function(photo_grey, jit):
    spec = [tf.TensorSpec([None, None, None, None], tf.float32), tf.TensorSpec([None, None, None, 2], tf.float32)]
    fn = tf.function(dense_image_warp, input_signature=spec, jit_compile=jit)
    for h, w in [(17, 23), (30, 12)]:
        img = np.stack([photo_grey[:h, :w], photo_grey[5 : 5 + h, 7 : 7 + w]])[..., None]
        flow = np.stack([smooth_random_flow(h, w, 3.0, seed=s) for s in (4, 5)])
        np.testing.assert_allclose(fn(img, flow).numpy(), dense_image_warp(img, flow).numpy(), atol=1e-4)


def test_interpolate_bilinear_indexing():
    grid = np.arange(20, dtype=np.float32).reshape(1, 4, 5, 1)  # value = 5 y + x
    pts_ij = np.array([[[1.5, 2.25], [0.0, 4.0], [3.0, 0.5]]], np.float32)
    expected = 5 * pts_ij[..., 0] + pts_ij[..., 1]
    np.testing.assert_allclose(interpolate_bilinear(grid, pts_ij).numpy()[..., 0], expected, atol=1e-5)
    np.testing.assert_allclose(
        interpolate_bilinear(grid, pts_ij[..., ::-1], indexing="xy").numpy()[..., 0], expected, atol=1e-5
    )
    with pytest.raises(ValueError, match="indexing"):
        interpolate_bilinear(grid, pts_ij, indexing="yx")


def test_opencv_convention_helpers(photo_grey):
    frame0 = photo_grey[100:160, 100:180]
    u, v = 3.0, -2.0  # frame1(p + (u, v)) = frame0(p)
    frame1 = photo_grey[100 - 2 : 160 - 2, 100 + 3 : 180 + 3]
    frame1 = photo_grey[100 + int(v) : 160 + int(v), 100 + int(u) : 180 + int(u)]
    # frame1[y, x] = photo[y + v + 100, x + u + 100] -> frame1(p - (u, v)) = frame0(p); so the OpenCV
    # flow from frame0 to frame1 is -(u, v) here. Build the matching pair the other way round instead.
    frame1 = np.roll(frame0, shift=(int(v), int(u)), axis=(0, 1))  # frame1[y, x] = frame0[y - v, x - u]
    flow = np.zeros((1, 60, 80, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    back = backward_warp(frame1[None, ..., None], flow).numpy()[0, ..., 0]
    inner = (slice(5, -5), slice(5, -5))
    np.testing.assert_allclose(back[inner], frame0[inner], atol=1e-4)
    tfa = opencv_flow_to_tfa(flow).numpy()
    np.testing.assert_array_equal(tfa[..., 0], -v)
    np.testing.assert_array_equal(tfa[..., 1], -u)
    np.testing.assert_array_equal(tfa_flow_to_opencv(tfa).numpy(), flow)
    cv_ref = cv2.remap(
        frame1, *np.meshgrid(np.arange(80, dtype=np.float32) + u, np.arange(60, dtype=np.float32) + v),
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )
    np.testing.assert_allclose(back, cv_ref, atol=1e-3)


@pytest.mark.parametrize(
    "img_shape,flow_shape,match",
    [
        ((8, 8, 1), (1, 8, 8, 2), "image"),
        ((1, 8, 8, 1), (8, 8, 2), "flow"),
        ((1, 8, 8, 1), (1, 8, 8, 3), "last dimension 2"),
        ((2, 8, 8, 1), (1, 8, 8, 2), "batch size"),
        ((1, 8, 8, 1), (1, 8, 9, 2), "width"),
        ((1, 8, 8, 1), (1, 7, 8, 2), "height"),
    ],
)
def test_bad_shapes_raise(img_shape, flow_shape, match):
    with pytest.raises(ValueError, match=match):
        dense_image_warp(np.zeros(img_shape, np.float32), np.zeros(flow_shape, np.float32))


def test_bad_dtype_raises():
    with pytest.raises(TypeError, match="image"):
        dense_image_warp(np.zeros((1, 4, 4, 1), np.uint8), np.zeros((1, 4, 4, 2), np.float32))


def test_mismatch_detected_at_run_time_with_unknown_shapes():
    spec = [tf.TensorSpec([None, None, None, 1], tf.float32), tf.TensorSpec([None, None, None, 2], tf.float32)]
    fn = tf.function(dense_image_warp, input_signature=spec)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size, height and width"):
        fn(np.zeros((1, 8, 8, 1), np.float32), np.zeros((1, 8, 9, 2), np.float32))


def test_bicubic_matches_cv2_remap_cubic(photo_rgb):
    img = photo_rgb[100:260, 120:320]
    h, w = img.shape[:2]
    flow = smooth_random_flow(h, w, amplitude=7.0, seed=2)
    ours = dense_image_warp(img[None], flow[None], interpolation="bicubic").numpy()[0]
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    ref = cv2.remap(img, xs - flow[..., 1], ys - flow[..., 0], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    # integer shifts are exact translations with bicubic weights too
    shift = np.zeros((1, h, w, 2), np.float32)
    shift[..., 0], shift[..., 1] = 2, -3
    out = dense_image_warp(img[None], shift, interpolation="bicubic").numpy()[0]
    np.testing.assert_allclose(out[2:, : w - 3], img[:-2, 3:], atol=1e-3)


def test_bicubic_gradient_check():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (1, 6, 7, 2))
    flow = rng.uniform(0.1, 0.4, (1, 6, 7, 2)) * rng.choice([-1.0, 1.0], (1, 6, 7, 2))
    theoretical, numerical = tf.test.compute_gradient(
        lambda a, b: dense_image_warp(a, b, interpolation="bicubic"), [tf.constant(img), tf.constant(flow)], delta=1e-5
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)


def test_bad_interpolation_name():
    with pytest.raises(ValueError, match="interpolation"):
        dense_image_warp(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 2), np.float32), interpolation="cubic")
