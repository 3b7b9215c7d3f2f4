"""The compiled pHash resize gives Pillow's bytes, and the zero-copy pixel access gives
``tobytes()``'s bytes (validation's pixel sha256 and pHash must not change with the speed-up)."""

import logging

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from letitwag.builders.curate import phash_resize
from letitwag.builders.curate.phash_resize import greyscale_hash_input, kernel_matches_pillow, resample_weights
from letitwag.builders.curate.pixels import packed_rgb, rgb_view


def _pillow(image):
    return np.asarray(image.resize((32, 32), Image.LANCZOS).convert("L"))


def _images(count, seed=0):
    """Random sizes (thumbnails to photos, wide, tall, upscaled) and contents (noise, stripes,
    smooth gradients: the three stress different parts of the fixed-point arithmetic)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        width, height = (int(v) for v in rng.integers(1, 700, 2))
        if index % 3 == 0:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        elif index % 3 == 1:
            pixels = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
            pixels[::2] = 255 - pixels[::2]
        else:
            coarse = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
            pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
        yield Image.fromarray(pixels, "RGB")


def test_compiled_resize_equals_pillow_on_random_images():
    assert kernel_matches_pillow()
    mismatches = [image.size for image in _images(400) if not np.array_equal(greyscale_hash_input(image), _pillow(image))]
    assert mismatches == []


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (32, 500), (500, 32), (40, 900), (3, 400), (31, 33), (1, 1)])
def test_edge_shapes_and_the_shapes_left_to_pillow_agree(size):
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    assert np.array_equal(greyscale_hash_input(image), _pillow(image))
    assert np.array_equal(greyscale_hash_input(image, rgb_view(image)), _pillow(image))


def test_non_rgb_modes_take_pillows_resize():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70), dtype=np.uint8), "L")
    assert np.array_equal(greyscale_hash_input(image), _pillow(image))


def test_weights_are_pillows_fixed_point_lanczos():
    first, count, weights = resample_weights(640, 32)
    assert weights.shape[1] % 8 == 0
    assert first[0] == 0 and first[-1] + count[-1] == 640
    # each row of weights sums to 2^22 up to the rounding of each weight
    assert np.all(np.abs(weights.sum(axis=1) - 2**22) <= count)
    assert np.all(weights[np.arange(weights.shape[1])[None, :] >= count[:, None]] == 0)


def test_a_kernel_that_disagrees_with_pillow_is_not_used(monkeypatch, caplog):
    monkeypatch.setattr(phash_resize, "_greyscale_resize", lambda pixels, *weights: np.zeros((32, 32), np.uint8))
    kernel_matches_pillow.cache_clear()
    try:
        image = next(_images(1, seed=3)).resize((200, 150))
        with caplog.at_level(logging.WARNING):
            assert np.array_equal(greyscale_hash_input(image), _pillow(image))
        assert "differs from Pillow" in caplog.text
    finally:
        kernel_matches_pillow.cache_clear()


@pytest.mark.parametrize("size", [(640, 480), (3, 2), (2100, 2050)])  # the last is over Pillow's 16 MB block
def test_packed_rgb_equals_tobytes(size):
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    view = rgb_view(image)
    assert view.shape[:2] == (size[1], size[0])
    assert bytes(packed_rgb(view)) == image.tobytes()


def test_packed_rgb_reuses_its_buffer_correctly_for_a_smaller_image():
    rng = np.random.default_rng(4)
    large, small = (Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for w, h in ((900, 700), (20, 10)))
    assert bytes(packed_rgb(rgb_view(large))) == large.tobytes()
    assert bytes(packed_rgb(rgb_view(small))) == small.tobytes()


def test_rgb_view_refuses_other_modes():
    with pytest.raises(ValueError, match="RGB"):
        rgb_view(Image.new("L", (4, 4)))


def _refuse(image):
    raise ValueError("Image rows are not contiguous in memory.")


_ARROW_ARRAY = pa.array  # the test patches pa.array itself


def _three_byte_layout(image):
    return _ARROW_ARRAY([[1, 2, 3]] * (image.width * image.height), type=pa.list_(pa.uint8(), 3))


@pytest.mark.parametrize("export", [_refuse, _three_byte_layout], ids=["no export", "another layout"])
def test_rgb_view_falls_back_to_a_copy_when_pillow_cannot_export(monkeypatch, export):
    from letitwag.builders.curate import pixels

    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB")
    assert rgb_view(image).shape == (30, 40, 4)  # Pillow's zero-copy view here
    monkeypatch.setattr(pixels.pa, "array", export)
    view = rgb_view(image)
    assert view.shape == (30, 40, 3)
    assert bytes(packed_rgb(view)) == image.tobytes()
    assert np.array_equal(greyscale_hash_input(image, view), _pillow(image))


def test_the_worker_preload_leaves_every_kernel_loaded_and_checked():
    import subprocess
    import sys

    code = ("import letitwag.builders.curate.worker_preload\n"
            "from letitwag.builders.curate import phash_resize, pixels\n"
            "print(phash_resize.kernel_matches_pillow(), phash_resize.kernel_matches_pillow.cache_info().hits,"
            " len(phash_resize._greyscale_resize.signatures) > 0, len(pixels._pack.signatures) > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "1", "True", "True"]  # the check ran once, during the preload
