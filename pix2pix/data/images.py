"""Decode image files into 8-bit "L" or "RGB" images and convert them to and from the networks' arrays.

Errors are one line naming the file. Only numpy and Pillow: an exported model runs this without torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_CHANNEL_MODES = {1: "L", 3: "RGB"}


class DataError(ValueError):
    """A dataset file or folder that cannot be used; the message is one line naming it."""


def list_images(folder: Path) -> dict[str, Path]:
    """Image files directly in `folder`, by stem, sorted by name; hidden and non-image files (README...)
    are left out. Two files with one stem would give one output name, so that is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if path.stem in found:
            raise DataError(f"{folder}: {found[path.stem].name} and {path.name} share the name {path.stem!r}; keep one")
        found[path.stem] = path
    return found


def load_image(path: Path | str, channels: int) -> Image.Image:
    """Fully decode `path` and return it as "L" (channels=1) or "RGB" (channels=3)."""
    if channels not in _CHANNEL_MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    with explain_image_errors(path, "cannot decode image (truncated or corrupt)"), Image.open(path) as image:
        image.load()  # open() reads only the header; decode now so bad bytes fail here
        return convert_channels(image, channels)


def read_image_header(path: Path | str) -> tuple[int, int]:
    """(width, height) from the file header, after Pillow's integrity check; DataError if unusable.

    Much cheaper than decoding: meant for checking a whole dataset before a run starts.
    """
    with explain_image_errors(path, "corrupt image header"), Image.open(path) as image:
        size = image.size
        image.verify()  # structure and checksums where the format has them (PNG CRCs)
        return size


@contextmanager
def explain_image_errors(path: Path | str, corrupt: str) -> Iterator[None]:
    """Turn Pillow's many failure types into one-line DataErrors naming the file."""
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a dataset should refuse both.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path}: refusing a possible decompression bomb ({_one_line(err)})") from err
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except UnidentifiedImageError as err:
        raise DataError(f"{path}: not a readable image (unknown format or not an image)") from err
    # Pillow's decoders fail with many exception types (OSError, SyntaxError, struct.error...).
    except Exception as err:
        raise DataError(f"{path}: {corrupt}: {_one_line(err)}") from err


def convert_channels(image: Image.Image, channels: int) -> Image.Image:
    """Return a new 8-bit "L"/"RGB" copy of `image`, whatever its mode."""
    target_mode = _CHANNEL_MODES[channels]
    if image.mode.startswith("I"):
        image = _scale_16bit_to_8bit(image)
    elif "transparency" in image.info or image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        # A transparent pixel has no colour of its own; show it on white, as viewers do.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert(target_mode)


def resize_for_inference(image: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resize to `size` (a side, or (width, height)) with no jitter, as at test time."""
    width, height = (size, size) if isinstance(size, int) else size
    target = (width, height)  # a tuple, as image.size is, whatever sequence `size` was
    if target == image.size:
        return image.copy()
    return image.resize(target, Image.Resampling.BICUBIC)


def image_to_array(image: Image.Image) -> np.ndarray:
    """8-bit "L"/"RGB" image -> float32 (C, H, W) array in [-1, 1], the networks' input scale."""
    if image.mode not in _CHANNEL_MODES.values():
        raise ValueError(f"expected an 'L' or 'RGB' image, got mode {image.mode!r}")
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1)) / 127.5 - 1.0  # (H, W, C) -> (C, H, W)


def array_to_image(array: np.ndarray) -> Image.Image:
    """(C, H, W) array in [-1, 1] with C = 1 or 3 -> "L"/"RGB" image (values clamped, rounded half to even)."""
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) array with C = 1 or 3, got shape {tuple(array.shape)}")
    values = (np.clip(array.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    pixels = np.rint(values).astype(np.uint8).transpose(1, 2, 0)  # (H, W, C)
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def split_pair(image: Image.Image, path: Path | str) -> tuple[Image.Image, Image.Image]:
    """Split a side-by-side A|B image into its left half A and right half B."""
    width, height = image.size
    if width % 2:
        raise DataError(f"{path}: width {width} is odd, so it cannot be split into equal A|B halves")
    half = width // 2
    return image.crop((0, 0, half, height)), image.crop((half, 0, width, height))


def _scale_16bit_to_8bit(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips at 255, which turns most 16-bit images white.
    # "I" images are treated as 16-bit too: that is what 16-bit PNG/TIFF files decode to.
    values = np.asarray(image, dtype=np.float64)
    scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
