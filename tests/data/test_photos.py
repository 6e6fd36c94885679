"""Tests of tfvideo.data.photos: the one loader of scikit-image photographs."""

import numpy as np
import pytest
from skimage import data

from tfvideo.data import photos


@pytest.mark.parametrize("name", ["astronaut", "camera"])  # colour, grey
def test_photo_is_float32_rgb_in_0_255_as_skimage_gives_it(name):
    img = photos.photo(name)
    raw = getattr(data, name)()
    assert img.dtype == np.float32 and img.shape == raw.shape[:2] + (3,)
    expected = raw if raw.ndim == 3 else np.repeat(raw[..., None], 3, axis=-1)
    np.testing.assert_array_equal(img, expected.astype(np.float32))
    assert 0 <= img.min() and img.max() <= 255


def test_photo_is_cached_and_read_only():
    img = photos.photo("coffee")
    assert photos.photo("coffee") is img
    with pytest.raises(ValueError, match="read-only"):
        img[0, 0, 0] = 1.0


def test_every_listed_photo_loads_without_a_download():
    for name in photos.PHOTOS:
        img = photos.photo(name)
        assert img.ndim == 3 and img.shape[-1] == 3 and min(img.shape[:2]) >= 150, name


def test_unknown_photo_lists_the_valid_names():
    with pytest.raises(ValueError, match="photo must be one of astronaut, .*text; got 'lena'"):
        photos.photo("lena")
