"""Paired dataset: layouts, decoding of awkward files, paired jitter, determinism, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pix2pix.data import (
    PREPROCESS,
    DataError,
    Jitter,
    PairedDataset,
    PairFile,
    apply_preprocess,
    check_pair_headers,
    find_pairs,
    image_to_tensor,
    load_image,
    resize_for_inference,
    sample_jitter,
    tensor_to_image,
)
from pix2pix.data.transforms import check_preprocess
from tests.helpers import logged, write_pairs

HALF_W, HALF_H = 48, 40  # each half of a generated pair


def make_coordinate_half(width: int = HALF_W, height: int = HALF_H) -> np.ndarray:
    """(H, W, 3) uint8 whose pixels spell their own position: R = 5x, G = 6y."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 5, ys * 6, np.full_like(xs, 128)], axis=-1).astype(np.uint8)


def save_pair(path: Path, a: np.ndarray, b: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path)
    return path


def make_coordinate_dataset(root: Path, count: int = 3) -> Path:
    """Side-by-side PNG pairs whose A and B halves are identical coordinate images."""
    half = make_coordinate_half()
    for i in range(1, count + 1):
        save_pair(root / "train" / f"{i}.png", half, half)
    return root


def assert_one_line_naming(err: pytest.ExceptionInfo[DataError], name: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert name in message


# --- paired jitter -------------------------------------------------------------------------------


@pytest.mark.parametrize("preprocess", PREPROCESS)
def test_source_and_target_get_identical_crop_and_flip(tmp_path: Path, preprocess: str) -> None:
    root = make_coordinate_dataset(tmp_path)
    outputs = set()
    for seed in range(16):
        options = {"preprocess": preprocess, "load_size": 40, "crop_size": 32, "size_multiple": 16}
        dataset = PairedDataset(root, "train", seed=seed, **options)
        item = dataset[1]
        assert torch.equal(item["source"], item["target"])
        outputs.add(item["source"].numpy().tobytes())
    # Every mode flips, and the cropping modes also move the crop: the jitter is not the identity.
    assert len(outputs) > 2 if "crop" in preprocess else len(outputs) == 2


def test_crop_mode_cuts_the_sampled_window_without_resizing(tmp_path: Path) -> None:
    root = make_coordinate_dataset(tmp_path)
    offsets, flips = set(), set()
    for seed in range(16):
        dataset = PairedDataset(root, "train", preprocess="crop", crop_size=32, seed=seed)
        red, green = (np.asarray(tensor_to_image(dataset[0]["source"]))[..., c] for c in (0, 1))
        x0, y0 = int(red[0].min()) // 5, int(green[:, 0].min()) // 6
        flipped = red[0, 0] > red[0, -1]
        xs = np.arange(x0, x0 + 32)[::-1] if flipped else np.arange(x0, x0 + 32)
        np.testing.assert_array_equal(red[0], xs * 5)
        np.testing.assert_array_equal(green[:, 0], np.arange(y0, y0 + 32) * 6)
        offsets.add((x0, y0))
        flips.add(bool(flipped))
    assert len(offsets) > 1 and flips == {True, False}


def test_flip_false_never_mirrors() -> None:
    rng = random.Random(0)
    jitters = [
        sample_jitter(rng, (60, 50), preprocess="crop", load_size=1, crop_size=32, flip=False) for _ in range(50)
    ]
    assert not any(j.flip for j in jitters)


def test_resize_and_crop_gives_crop_size(tmp_path: Path) -> None:
    root = make_coordinate_dataset(tmp_path)
    dataset = PairedDataset(root, "train", load_size=36, crop_size=32, size_multiple=32)
    assert dataset[0]["source"].shape == (3, 32, 32)
    assert dataset[0]["target"].shape == (3, 32, 32)


def test_scale_width_rounds_each_side_to_size_multiple() -> None:
    image = Image.new("RGB", (HALF_W, HALF_H))
    options = {"preprocess": "scale_width", "load_size": 36, "crop_size": 16}
    out = apply_preprocess(image, Jitter(0, 0, False), size_multiple=8, **options)
    # width 36 -> 40 (nearest multiple of 8); height int(36 * 40 / 48) = 30 -> 32
    assert out.size == (40, 32)


def test_scale_width_keeps_at_least_crop_size_height() -> None:
    image = Image.new("RGB", (200, 20))
    options = {"preprocess": "scale_width", "load_size": 64, "crop_size": 32}
    assert apply_preprocess(image, Jitter(0, 0, False), size_multiple=1, **options).size == (64, 32)


def test_none_rounds_to_size_multiple_and_at_least_one_multiple() -> None:
    options = {"preprocess": "none", "load_size": 1, "crop_size": 1}
    image = Image.new("L", (50, 5))
    assert apply_preprocess(image, Jitter(0, 0, False), size_multiple=16, **options).size == (48, 16)


def test_invalid_preprocess_options_raise_value_error() -> None:
    image = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="--crop-size 300 is larger than --load-size 286"):
        options = {"preprocess": "resize_and_crop", "load_size": 286, "crop_size": 300}
        apply_preprocess(image, Jitter(0, 0, False), size_multiple=1, **options)
    with pytest.raises(ValueError, match="allowed: resize_and_crop, crop"):
        sample_jitter(random.Random(0), (64, 64), preprocess="zoom", load_size=64, crop_size=32, flip=True)
    with pytest.raises(ValueError, match="--crop-size 48 is not a multiple of 256, the generator's stride"):
        check_preprocess("resize_and_crop", load_size=64, crop_size=48, size_multiple=256)


def test_image_smaller_than_crop_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    make_coordinate_dataset(tmp_path, count=1)
    dataset = PairedDataset(tmp_path, "train", preprocess="crop", crop_size=64)
    with pytest.raises(DataError) as err:
        dataset[0]
    assert_one_line_naming(err, "1.png")


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_epoch_index_gives_same_tensors_and_epochs_differ(tmp_path: Path) -> None:
    root = make_coordinate_dataset(tmp_path, count=4)

    def epoch_items(epoch: int) -> list[torch.Tensor]:
        dataset = PairedDataset(root, "train", load_size=40, crop_size=32, seed=3)
        dataset.set_epoch(epoch)
        return [dataset[i]["source"] for i in range(len(dataset))]

    first, again, later = epoch_items(0), epoch_items(0), epoch_items(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, later, strict=True))


def test_jitter_does_not_depend_on_worker_count(tmp_path: Path) -> None:
    root = make_coordinate_dataset(tmp_path, count=4)
    dataset = PairedDataset(root, "train", load_size=40, crop_size=32, seed=1)
    dataset.set_epoch(5)
    single = torch.cat([b["source"] for b in DataLoader(dataset, batch_size=2)])
    workers = torch.cat([b["source"] for b in DataLoader(dataset, batch_size=2, num_workers=2)])
    assert torch.equal(single, workers)


def test_eval_mode_resizes_without_randomness(tmp_path: Path) -> None:
    root = make_coordinate_dataset(tmp_path)
    items = [PairedDataset(root, "train", load_size=40, crop_size=32, train=False, seed=seed)[0] for seed in range(4)]
    assert items[0]["source"].shape == (3, 32, 32)
    assert all(torch.equal(items[0]["source"], item["source"]) for item in items)
    expected = image_to_tensor(resize_for_inference(Image.fromarray(make_coordinate_half()), 32))
    assert torch.equal(items[0]["source"], expected)


# --- layouts, direction, channels ----------------------------------------------------------------


def test_direction_swaps_halves(tmp_path: Path) -> None:
    a = make_coordinate_half()
    b = 255 - a
    save_pair(tmp_path / "train" / "1.png", a, b)
    options = {"preprocess": "none", "train": False}
    a_to_b = PairedDataset(tmp_path, "train", direction="AtoB", **options)[0]
    b_to_a = PairedDataset(tmp_path, "train", direction="BtoA", **options)[0]
    a_tensor, b_tensor = image_to_tensor(Image.fromarray(a)), image_to_tensor(Image.fromarray(b))
    assert torch.equal(a_to_b["source"], a_tensor) and torch.equal(a_to_b["target"], b_tensor)
    assert torch.equal(b_to_a["source"], b_tensor) and torch.equal(b_to_a["target"], a_tensor)
    with pytest.raises(ValueError, match="AtoB, BtoA"):
        PairedDataset(tmp_path, "train", direction="AB")


@pytest.mark.parametrize("in_channels, out_channels", [(1, 3), (3, 1), (1, 1)])
def test_channel_counts_and_value_range(tmp_path: Path, in_channels: int, out_channels: int) -> None:
    root = make_coordinate_dataset(tmp_path, count=1)
    channels = {"in_channels": in_channels, "out_channels": out_channels}
    item = PairedDataset(root, "train", load_size=40, crop_size=32, **channels)[0]
    assert item["source"].shape == (in_channels, 32, 32)
    assert item["target"].shape == (out_channels, 32, 32)
    for tensor in (item["source"], item["target"]):
        assert tensor.dtype == torch.float32
        assert tensor.min() >= -1 and tensor.max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_tensor_round_trip_is_exact_on_uint8(mode: str) -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    array = values if mode == "L" else np.stack([values, values.T, 255 - values], axis=-1)
    image = Image.fromarray(array)
    tensor = image_to_tensor(image)
    assert tensor.shape == (1 if mode == "L" else 3, 16, 16)
    assert tensor.min() == -1 and tensor.max() == 1
    back = tensor_to_image(tensor)
    assert back.mode == mode
    np.testing.assert_array_equal(np.asarray(back), array)


def test_tensor_to_image_clamps_out_of_range_values() -> None:
    image = tensor_to_image(torch.tensor([[[-3.0, 0.0, 3.0]]]))
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), [[0, 128, 255]])


def test_two_folder_layout_matched_by_name(tmp_path: Path) -> None:
    split = tmp_path / "train"
    (split / "A").mkdir(parents=True)
    (split / "B").mkdir()
    a, b = make_coordinate_half(), 255 - make_coordinate_half()
    for name in ("10", "2", "1"):
        Image.fromarray(a).save(split / "A" / f"{name}.png")
        Image.fromarray(b).save(split / "B" / f"{name}.bmp")  # B may use another extension
    pairs = find_pairs(tmp_path, "train")
    assert [p.name for p in pairs] == ["1", "2", "10"]
    assert pairs[1].a_path.name == "2.png" and pairs[1].b_path == split / "B" / "2.bmp"
    item = PairedDataset(tmp_path, "train", direction="BtoA", preprocess="none", train=False)[2]
    assert item["name"] == "10"
    assert torch.equal(item["source"], image_to_tensor(Image.fromarray(b)))
    assert torch.equal(item["target"], image_to_tensor(Image.fromarray(a)))


def test_two_folder_name_mismatch_names_the_unmatched_files(tmp_path: Path) -> None:
    split = tmp_path / "train"
    for folder, names in (("A", ("1", "2", "3")), ("B", ("1", "2", "4"))):
        (split / folder).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (8, 8)).save(split / folder / f"{name}.png")
    with pytest.raises(DataError) as err:
        find_pairs(tmp_path, "train")
    assert_one_line_naming(err, "3.png")
    assert "4.png" in str(err.value)


def test_two_folder_size_mismatch_names_both_files(tmp_path: Path) -> None:
    split = tmp_path / "train"
    (split / "A").mkdir(parents=True)
    (split / "B").mkdir()
    Image.new("RGB", (32, 32)).save(split / "A" / "x.png")
    Image.new("RGB", (32, 24)).save(split / "B" / "x.png")
    with pytest.raises(DataError) as err:
        PairedDataset(tmp_path, "train", preprocess="none")[0]
    assert_one_line_naming(err, "32x24")
    assert str(split / "A" / "x.png") in str(err.value) and str(split / "B" / "x.png") in str(err.value)


def test_natural_order_and_non_images_ignored(tmp_path: Path) -> None:
    half = make_coordinate_half(8, 8)
    for name in ("10.png", "2.PNG", "1.jpg"):
        save_pair(tmp_path / "train" / name, half, half)
    (tmp_path / "train" / "README.txt").write_text("facades")
    (tmp_path / "train" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "train" / ".hidden.png").write_bytes(b"not an image")
    pairs = find_pairs(tmp_path, "train")
    assert [p.name for p in pairs] == ["1", "2", "10"]
    assert all(p.b_path is None for p in pairs)


# --- errors --------------------------------------------------------------------------------------


def test_missing_root_and_split_and_empty_split(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        find_pairs(tmp_path / "nowhere", "train")
    assert_one_line_naming(err, "nowhere")

    (tmp_path / "val").mkdir()
    with pytest.raises(DataError) as err:
        find_pairs(tmp_path, "train")
    assert_one_line_naming(err, "train")
    assert "val" in str(err.value)  # the folders that do exist

    (tmp_path / "val" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError) as err:
        PairedDataset(tmp_path, "val")
    assert_one_line_naming(err, "val")
    assert "no images" in str(err.value)


def write_bytes_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "train" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jpeg_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 128, 3), np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["random_jpg", "truncated_jpg", "text_as_png"])
def test_undecodable_files_raise_data_error_naming_them(tmp_path: Path, kind: str) -> None:
    name, data = {
        "random_jpg": ("12.jpg", np.random.default_rng(0).bytes(2000)),
        "truncated_jpg": ("12.jpg", jpeg_bytes(tmp_path)[:1500]),
        "text_as_png": ("12.png", b"label,photo\nthis is a csv file\n"),
    }[kind]
    write_bytes_file(tmp_path, name, data)
    dataset = PairedDataset(tmp_path, "train", load_size=40, crop_size=32)
    with pytest.raises(DataError) as err:
        dataset[0]
    assert_one_line_naming(err, name)


def test_skip_bad_replaces_a_pair_that_fails_to_decode_despite_a_good_header(tmp_path: Path, caplog) -> None:
    write_pairs(tmp_path, "train", 3, size=32)
    (tmp_path / "train" / "1.png").unlink()
    truncated = write_bytes_file(tmp_path, "1.jpg", jpeg_bytes(tmp_path)[:1500])
    check_pair_headers(PairFile("1", truncated, None))  # the start-up check cannot see this one

    strict = PairedDataset(tmp_path, "train", load_size=32, crop_size=32)
    with pytest.raises(DataError, match="1.jpg"):
        strict[1]
    lenient = PairedDataset(tmp_path, "train", load_size=32, crop_size=32, skip_bad=True)
    item = lenient[1]
    assert logged(caplog, r"skipping .*1\.jpg")
    assert item["name"] == "2"  # the next readable pair stands in
    assert lenient[0]["name"] == "0"


def test_skip_bad_gives_up_when_nothing_decodes(tmp_path: Path, caplog) -> None:
    write_bytes_file(tmp_path, "1.jpg", jpeg_bytes(tmp_path)[:1500])
    with pytest.raises(DataError, match="no pair of 1 could be decoded"):
        PairedDataset(tmp_path, "train", skip_bad=True)[0]
    assert logged(caplog, "skipping")


def test_odd_width_is_a_data_error_naming_file_and_width(tmp_path: Path) -> None:
    Image.new("RGB", (301, 150)).save(write_bytes_file(tmp_path, "odd.png", b""))
    with pytest.raises(DataError) as err:
        PairedDataset(tmp_path, "train")[0]
    assert_one_line_naming(err, "odd.png")
    assert "301" in str(err.value)


@pytest.mark.parametrize("pixels", [101, 201])  # above the limit: Pillow warns; above twice: errors
def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pixels: int) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (pixels, 1)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError) as err:
        load_image(path, 3)
    assert_one_line_naming(err, "bomb.png")


# --- image modes ---------------------------------------------------------------------------------


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16)).save(path)
    gray = load_image(path, 1)
    assert gray.mode == "L"
    np.testing.assert_array_equal(np.asarray(gray), [[0, 1, 128, 255]])
    rgb = load_image(path, 3)
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb)[0, :, 1], [0, 1, 128, 255])


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    pixels = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    rgb = np.asarray(load_image(path, 3)).astype(int)
    np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])  # transparent -> white
    np.testing.assert_array_equal(rgb[0, 1], [0, 0, 255])  # opaque -> unchanged
    assert all(abs(v - 127) <= 1 for v in rgb[0, 2])  # half-transparent black -> mid grey
    assert load_image(path, 1).mode == "L"


def test_palette_image_uses_its_palette(tmp_path: Path) -> None:
    path = tmp_path / "labels.png"
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    image.save(path)
    np.testing.assert_array_equal(np.asarray(load_image(path, 3)), [[[10, 20, 30], [200, 100, 50]]])


def test_cmyk_la_and_bilevel_images_convert(tmp_path: Path) -> None:
    cmyk = tmp_path / "print.tif"
    Image.frombytes("CMYK", (2, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0])).save(cmyk)
    np.testing.assert_array_equal(np.asarray(load_image(cmyk, 3)), [[[255, 255, 255], [0, 255, 255]]])

    la = tmp_path / "la.png"
    Image.frombytes("LA", (2, 1), bytes([40, 255, 0, 0])).save(la)
    np.testing.assert_array_equal(np.asarray(load_image(la, 1)), [[40, 255]])

    bilevel = tmp_path / "mask.bmp"
    Image.frombytes("L", (2, 1), bytes([0, 255])).convert("1").save(bilevel)
    np.testing.assert_array_equal(np.asarray(load_image(bilevel, 1)), [[0, 255]])


@pytest.mark.parametrize(
    ("preprocess", "expected"),
    [
        ("resize_and_crop", (32, 32)),  # the crop-size square the network trained on
        ("crop", (96, 64)),  # own scale, 100x60 rounded to the stride
        ("none", (96, 64)),
        ("scale_width", (64, 32)),  # width to load_size 48 (-> 64, halves round up), height 28 -> crop_size
        ("scale_width_and_crop", (64, 32)),
    ],
)
def test_validation_translates_at_the_training_scale_without_the_random_parts(tmp_path, preprocess, expected):
    from pix2pix.data.transforms import test_time_size

    options = {"preprocess": preprocess, "load_size": 48, "crop_size": 32}
    assert test_time_size((100, 60), size_multiple=32, **options) == expected
    save_pair(tmp_path / "val" / "x.png", make_coordinate_half(100, 60), make_coordinate_half(100, 60))
    item = PairedDataset(tmp_path, "val", train=False, size_multiple=32, **options)[0]
    assert item["source"].shape == (3, expected[1], expected[0])
