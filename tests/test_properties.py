"""Property-based tests of image loading and the paired transforms on random sizes and modes."""

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pix2pix.data import apply_preprocess, load_image, sample_jitter, split_pair

MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def coordinate_image(width: int, height: int) -> Image.Image:
    """R encodes x, G encodes y: any crop or flip shows in the pixels."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x % 256, y % 256, (x // 256 + 4 * (y // 256)) % 256], -1).astype(np.uint8))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(1, 80),
    height=st.integers(1, 80),
    mode=st.sampled_from(MODES),
    channels=st.sampled_from((1, 3)),
)
def test_any_mode_and_size_loads_as_8_bit_with_the_right_shape(tmp_path, width, height, mode, channels):
    image = coordinate_image(width, height)
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 257).astype(np.uint16))
    else:
        image = image.convert(mode)
    path = tmp_path / f"image_{mode.replace(';', '')}.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    loaded = load_image(path, channels)
    assert loaded.mode == ("L" if channels == 1 else "RGB")
    assert loaded.size == (width, height)


@settings(max_examples=60, deadline=None)
@given(
    half_width=st.integers(16, 90),
    height=st.integers(16, 90),
    preprocess=st.sampled_from(PREPROCESS),
    crop=st.sampled_from((8, 16)),
    extra=st.integers(0, 20),
    multiple=st.sampled_from((1, 4, 8)),
    seed=st.integers(0, 10_000),
    flip=st.booleans(),
)
def test_paired_jitter_keeps_a_and_b_aligned_and_the_shape_right(
    half_width, height, preprocess, crop, extra, multiple, seed, flip
):
    # both halves carry the same coordinate pattern, so after the jitter they must still be equal
    half = coordinate_image(half_width, height)
    pair = Image.new("RGB", (2 * half_width, height))
    pair.paste(half, (0, 0))
    pair.paste(half, (half_width, 0))
    a, b = split_pair(pair, "pair.png")
    load = crop + extra
    if preprocess == "crop" and (half_width < crop or height < crop):
        return  # a crop larger than the image is refused with a DataError, tested elsewhere
    options = {"preprocess": preprocess, "load_size": load, "crop_size": crop}
    jitter = sample_jitter(random.Random(seed), a.size, flip=flip, **options)
    a_out = apply_preprocess(a, jitter, size_multiple=multiple, **options)
    b_out = apply_preprocess(b, jitter, size_multiple=multiple, **options)
    assert np.array_equal(np.asarray(a_out), np.asarray(b_out))
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        assert a_out.size == (crop, crop)
    else:
        assert a_out.size[0] % multiple == 0 and a_out.size[1] % multiple == 0
