"""The built-in synthetic facades: deterministic, cached, and a non-trivial translation task."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.cache import cache_home
from pix2pix.data.synthetic import (
    FACADE,
    SYNTHETIC_PALETTE,
    default_synthetic_root,
    generate_synthetic_facades,
    render_facade,
)

PALETTE = np.array(list(SYNTHETIC_PALETTE.values()))  # (classes, 3)
SMALL_COUNTS = {"train": 3, "val": 1, "test": 1}


def to_classes(label_map: Image.Image) -> np.ndarray:
    """(H, W) class index per pixel; -1 where the colour is not in the palette."""
    rgb = np.asarray(label_map).astype(int)
    matches = (rgb[:, :, None, :] == PALETTE).all(-1)  # (H, W, classes)
    return np.where(matches.any(-1), matches.argmax(-1), -1)


def render_many(count: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Photos as floats in [0, 1] (N, H, W, 3) and class maps (N, H, W)."""
    pairs = [render_facade(random.Random(i), size) for i in range(count)]
    photos = np.stack([np.asarray(photo, dtype=np.float64) / 255 for photo, _ in pairs])
    return photos, np.stack([to_classes(label_map) for _, label_map in pairs])


def test_palette_has_the_facades_classes():
    expected = "background facade window door cornice sill balcony blind deco molding pillar shop".split()
    assert list(SYNTHETIC_PALETTE) == expected  # CMP order; the class indices rely on it
    assert list(SYNTHETIC_PALETTE)[FACADE] == "facade"
    assert len(set(SYNTHETIC_PALETTE.values())) == len(SYNTHETIC_PALETTE)


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_render_returns_square_rgb_pair(size):
    photo, label_map = render_facade(random.Random(0), size)
    for image in (photo, label_map):
        assert image.mode == "RGB"
        assert image.size == (size, size)


def test_render_rejects_tiny_sizes():
    with pytest.raises(ValueError, match="size"):
        render_facade(random.Random(0), 16)


def test_render_is_deterministic():
    first = [image.tobytes() for image in render_facade(random.Random("0/train/1"), 64)]
    again = [image.tobytes() for image in render_facade(random.Random("0/train/1"), 64)]
    other = [image.tobytes() for image in render_facade(random.Random("0/train/2"), 64)]
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_label_map_uses_only_palette_colours():
    for seed in range(10):
        _, label_map = render_facade(random.Random(seed), 128)
        classes = to_classes(label_map)
        assert (classes >= 0).all()
        assert FACADE in classes


def test_photo_is_not_a_function_of_the_label_colour():
    photos, classes = render_many(16)
    # Bricks, mortar, light and shadow vary within a single wall.
    for photo, labels in zip(photos, classes, strict=True):
        assert photo[labels == FACADE].std(axis=0).mean() > 0.05
    # The best label-colour-only predictor (mean photo colour per class) leaves much unexplained...
    class_means = np.zeros((len(PALETTE), 3))
    for label in np.unique(classes):
        class_means[label] = photos[classes == label].mean(axis=0)
    residual = photos - class_means[classes]
    assert np.sqrt((residual**2).mean()) > 0.1
    unexplained = (residual**2).mean() / photos.var()
    # ...yet the classes still explain a good share: the photo follows the layout.
    assert 0.25 < unexplained < 0.8


def test_generate_writes_the_pix2pix_layout(tmp_path):
    root = generate_synthetic_facades(tmp_path / "facades", size=64, counts=SMALL_COUNTS, seed=3)
    assert root == tmp_path / "facades"
    for split, count in SMALL_COUNTS.items():
        names = sorted(path.name for path in (root / split).iterdir())
        assert names == sorted(f"{index}.png" for index in range(1, count + 1))
    pair = Image.open(root / "train" / "1.png")
    assert (pair.mode, pair.size) == ("RGB", (128, 64))
    # label | photo: labels -> photo is AtoB
    photo, label_map = render_facade(random.Random("3/train/1"), 64)
    assert pair.crop((0, 0, 64, 64)).tobytes() == label_map.tobytes()
    assert pair.crop((64, 0, 128, 64)).tobytes() == photo.tobytes()
    assert json.loads((root / "DONE").read_text())["seed"] == 3
    assert [path.name for path in tmp_path.iterdir()] == ["facades"]  # no staging left behind


def test_generate_is_deterministic(tmp_path):
    one = generate_synthetic_facades(tmp_path / "one", size=64, counts=SMALL_COUNTS)
    two = generate_synthetic_facades(tmp_path / "two", size=64, counts=SMALL_COUNTS)
    for path in sorted(one.glob("*/*.png")):
        assert path.read_bytes() == (two / path.relative_to(one)).read_bytes()


def test_generate_reuses_a_finished_dataset(tmp_path):
    root = generate_synthetic_facades(tmp_path / "facades", size=64, counts=SMALL_COUNTS)
    image = root / "train" / "1.png"
    mtime = image.stat().st_mtime_ns
    generate_synthetic_facades(root, size=64, counts=SMALL_COUNTS)
    assert image.stat().st_mtime_ns == mtime


def test_generate_replaces_a_dataset_made_with_other_parameters(tmp_path):
    root = generate_synthetic_facades(tmp_path / "facades", size=64, counts=SMALL_COUNTS)
    generate_synthetic_facades(root, size=32, counts={"train": 2})
    assert sorted(path.name for path in root.iterdir()) == ["DONE", "train"]
    assert Image.open(root / "train" / "2.png").size == (64, 32)


def test_generate_never_overwrites_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_synthetic_facades(tmp_path / "mine", size=32, counts={"train": 1})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("counts", [{"training": 1}, {"train": -1}])
def test_generate_rejects_bad_counts(tmp_path, counts):
    with pytest.raises(ValueError, match="train"):
        generate_synthetic_facades(tmp_path / "facades", size=32, counts=counts)


def test_the_cache_root_is_pix2pix_home_else_xdg_cache_home_else_dot_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_synthetic_root() == tmp_path / "home" / "datasets" / "synthetic-facades"
    monkeypatch.delenv("PIX2PIX_HOME")
    assert cache_home() == tmp_path / "xdg" / "pix2pix"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert cache_home() == Path.home() / ".cache" / "pix2pix"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_home() == Path.home() / ".cache" / "pix2pix"
