"""`pix2pix data combine|pairs|unpair|check` and the Lab conversions, on tiny datasets made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cli import main
from pix2pix.data import DataError, PairedDataset, find_pairs, load_pair
from pix2pix.data.lab import image_to_lab_array, lab_array_to_image, lab_to_rgb, rgb_to_lab
from pix2pix.data.tensors import image_to_lab_tensors, lab_batch_to_rgb, lab_tensors_to_image
from pix2pix.data.tools.check import check_dataset, compute_difference_hash
from pix2pix.data.tools.combine import combine_folders
from pix2pix.data.tools.holdout import carve_holdout
from pix2pix.data.tools.pairs import KINDS, assign_splits, build_pairs, make_input
from pix2pix.data.tools.unpair import read_unpair_record, unpair
from tests.helpers import write_pairs

SHARED_FACADES = Path(__file__).resolve().parents[2] / "shared" / "data" / "facades"


def smooth_image(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    """A random low-frequency RGB image: distinct seeds give clearly different difference hashes."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def write_photos(folder: Path, count: int, size: tuple[int, int] = (40, 36)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        smooth_image(i, size).save(folder / f"photo{i}.png")
    return folder


def write_side_by_side(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = np.concatenate([np.asarray(smooth_image(seed)), np.asarray(smooth_image(seed + 1000))], axis=1)
    Image.fromarray(pair).save(path)


# --- combine ---------------------------------------------------------------------------------------


def test_combine_joins_matching_names_and_reports_the_rest(tmp_path, capsys):
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    a_dir.mkdir()
    b_dir.mkdir()
    for i in range(3):
        smooth_image(i).save(a_dir / f"{i}.png")
        smooth_image(i + 10).save(b_dir / f"{i}.jpg")  # matched by stem, whatever the extension
    smooth_image(20).save(a_dir / "lonely_a.png")
    smooth_image(21).save(b_dir / "lonely_b.png")
    smooth_image(22).save(a_dir / "small.png")
    smooth_image(23, (16, 16)).save(b_dir / "small.png")
    out = tmp_path / "out"
    assert main(["data", "combine", "--a", str(a_dir), "--b", str(b_dir), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert (
        "wrote 3 pairs" in printed and "only in A: train/lonely_a" in printed and "only in B: train/lonely_b" in printed
    )
    assert "small.png is 32x32 but" in printed
    pairs = find_pairs(out, "train")
    assert [p.name for p in pairs] == ["0", "1", "2"]
    source, target = load_pair(pairs[1], direction="AtoB", in_channels=3, out_channels=3)
    assert np.array_equal(np.asarray(source), np.asarray(smooth_image(1)))
    assert np.abs(np.asarray(target, int) - np.asarray(Image.open(b_dir / "1.jpg").convert("RGB"), int)).max() == 0


def test_combine_mirrors_split_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for side in ("A", "B"):
            for i in range(count):
                (tmp_path / side / split).mkdir(parents=True, exist_ok=True)
                smooth_image(i).save(tmp_path / side / split / f"{i}.png")
    report = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "out", progress=False)
    assert report.written == {"test": 2, "train": 3} and not (report.only_a or report.only_b or report.skipped)
    assert Image.open(tmp_path / "out" / "test" / "1.png").size == (64, 32)


def test_combine_without_any_match_fails_in_one_line(tmp_path, capsys):
    write_photos(tmp_path / "A", 2)
    (tmp_path / "B").mkdir()
    smooth_image(0).save(tmp_path / "B" / "other.png")
    args = ["data", "combine", "--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"), "--out", str(tmp_path / "o")]
    assert main([*args, "--quiet"]) == 2
    assert "no pairs written" in capsys.readouterr().err


# --- pairs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_makes_an_rgb_input_of_the_photo_size(kind):
    photo = smooth_image(0, (48, 40))
    made = make_input(photo, kind)
    assert made.mode == "RGB" and made.size == photo.size
    pixels = np.asarray(made)
    if kind in ("edges", "gray", "sketch"):
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    if kind == "edges":  # black lines on white
        assert set(np.unique(pixels)) <= {0, 255} and (pixels == 255).mean() > 0.5 and (pixels == 0).any()
    if kind in ("blur", "lowres"):  # smoother than the photo
        assert (
            np.abs(np.diff(pixels.astype(int), axis=1)).mean() < np.abs(np.diff(np.asarray(photo, int), axis=1)).mean()
        )


def test_splits_follow_the_ratios_and_the_seed():
    names = assign_splits(100, (0.8, 0.1, 0.1), seed=3)
    assert [names.count(s) for s in ("train", "val", "test")] == [80, 10, 10]
    assert names == assign_splits(100, (8, 1, 1), seed=3)  # proportions are normalised
    assert names != assign_splits(100, (0.8, 0.1, 0.1), seed=4)
    assert assign_splits(3, (1, 0, 0), seed=0) == ["train"] * 3
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        assign_splits(10, (0.5, 0.5), seed=0)


def test_pairs_then_check_end_to_end(tmp_path, capsys):
    photos = write_photos(tmp_path / "photos", 10)
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.png").write_bytes(b"not really a png")
    out = tmp_path / "edges"
    args = ["--photos", str(photos), "--kind", "edges", "--out", str(out), "--split", "0.6,0.2,0.2", "--size", "32"]
    assert main(["data", "pairs", *args, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 10 edges pairs" in printed and "1 photos skipped" in printed and "broken.png" in printed
    counts = {split: len(find_pairs(out, split)) for split in ("train", "val", "test")}
    assert sum(counts.values()) == 10 and counts["train"] >= 5
    assert Image.open(next((out / "train").iterdir())).size == (64, 32)

    assert main(["data", "check", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith("usable")

    item = PairedDataset(out, "train", load_size=32, crop_size=32)[0]  # what training will read
    assert item["source"].shape == item["target"].shape == (3, 32, 32)


def test_pairs_refuses_a_folder_that_is_not_empty(tmp_path):
    photos = write_photos(tmp_path / "photos", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="out: folder is not empty"):
        build_pairs(photos, tmp_path / "out", kind="gray", progress=False)


def test_pairs_rejects_bad_split_ratios(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "pairs", "--photos", str(tmp_path), "--kind", "gray", "--out", str(tmp_path), "--split", "1,2"])
    assert "three non-negative proportions" in capsys.readouterr().err


# --- holdout -----------------------------------------------------------------------------------------


def test_holdout_carves_a_seeded_disjoint_val_split_and_links_the_rest(tmp_path, capsys):
    source = write_pairs(tmp_path / "source", "train", 20)
    write_pairs(source, "test", 3, seed=1)
    out = tmp_path / "carved"
    assert main(["data", "holdout", str(source), "--out", str(out), "--fraction", "0.2", "--seed", "3"]) == 0
    assert "train 16, val 4 pairs" in capsys.readouterr().out
    train, val = ({p.name for p in find_pairs(out, split)} for split in ("train", "val"))
    assert len(val) == 4 and not train & val and train | val == {p.name for p in find_pairs(source, "train")}
    assert all((out / "val" / f"{name}.png").is_symlink() for name in val)
    assert len(find_pairs(out, "test")) == 3  # other splits come along unchanged
    record = json.loads((out / "holdout.json").read_text())
    assert set(record["val"]) == val and record["seed"] == 3 and record["fraction"] == 0.2
    assert not (source / "val").exists() and len(find_pairs(source, "train")) == 20  # the source is untouched

    again = carve_holdout(source, tmp_path / "again", fraction=0.2, seed=3, copy=True)
    assert again == {"train": 16, "val": 4}
    assert {p.name for p in find_pairs(tmp_path / "again", "val")} == val  # same seed, same split
    assert not (tmp_path / "again" / "val" / f"{min(val)}.png").is_symlink()
    carve_holdout(source, tmp_path / "other", fraction=0.2, seed=4)
    assert {p.name for p in find_pairs(tmp_path / "other", "val")} != val


def test_holdout_keeps_the_a_b_folder_layout(tmp_path):
    source = tmp_path / "source"
    for side in ("A", "B"):
        write_photos(source / "train" / side, 10)
    carve_holdout(source, tmp_path / "out", fraction=0.3)
    pairs = find_pairs(tmp_path / "out", "val")
    assert len(pairs) == 3 and all(p.a_path.parent.name == "A" and p.b_path.parent.name == "B" for p in pairs)


def test_holdout_refuses_what_it_cannot_do_safely(tmp_path):
    source = write_pairs(tmp_path / "source", "train", 4)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        carve_holdout(source, tmp_path / "busy")
    with pytest.raises(ValueError, match="between 0 and 1"):
        carve_holdout(source, tmp_path / "out", fraction=1.0)
    with pytest.raises(ValueError, match="cannot give both"):
        carve_holdout(source, tmp_path / "out", fraction=0.01)
    write_pairs(source, "val", 1)
    with pytest.raises(ValueError, match="already has a val split"):
        carve_holdout(source, tmp_path / "out")


# --- check -----------------------------------------------------------------------------------------


def test_check_finds_corrupt_files_duplicates_and_size_mismatches(tmp_path, capsys):
    root = tmp_path / "data"
    for i in range(6):
        write_side_by_side(root / "train" / f"{i}.png", seed=i)
    write_side_by_side(root / "test" / "copy.png", seed=2)  # planted exact duplicate of train/2
    near = Image.open(root / "train" / "4.png").convert("RGB")
    near.save(root / "test" / "near.jpg", quality=85)  # re-encoded: same picture, different pixels
    write_side_by_side(root / "test" / "fresh.png", seed=50)
    (root / "test" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # planted corrupt file
    (root / "test" / "README.txt").write_text("notes")
    (root / "val" / "A").mkdir(parents=True)
    (root / "val" / "B").mkdir()
    for i, b_size in enumerate([(32, 32), (24, 32)]):  # two-folder layout with one A/B size mismatch
        smooth_image(100 + i).save(root / "val" / "A" / f"{i}.png")
        smooth_image(200 + i, b_size).save(root / "val" / "B" / f"{i}.png")

    report = check_dataset(root, progress=False)
    by_name = {s.name: s for s in report.splits}
    assert [s.name for s in report.splits] == ["train", "val", "test"]
    assert by_name["train"].pairs == 6 and by_name["train"].sizes == {(32, 32): 6}
    assert by_name["val"].layout == "A/ B/" and by_name["val"].pairs == 1
    assert len(by_name["val"].mismatched) == 1 and "1.png is 32x32 but" in by_name["val"].mismatched[0]
    assert (
        by_name["test"].pairs == 3 and len(by_name["test"].corrupt) == 1 and "broken.jpg" in by_name["test"].corrupt[0]
    )
    assert by_name["test"].non_images == [str(root / "test" / "README.txt")]
    found = {(d.kind, d.first, d.second) for d in report.duplicates}
    assert found == {("exact", "train/2", "test/copy"), ("near", "train/4", "test/near")}
    assert not report.usable and report.problems == ["1 corrupt file", "1 A/B problem"]

    assert main(["data", "check", str(root), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "test/copy is an exact copy of train/2" in captured.out and "UNUSABLE" in captured.out
    assert captured.err.count("\n") == 1 and "dataset is unusable: 1 corrupt file; 1 A/B problem" in captured.err


def test_check_a_dataset_without_train_is_unusable(tmp_path, tiny_dataset):
    assert check_dataset(tiny_dataset, progress=False).usable
    write_side_by_side(tmp_path / "only_test" / "test" / "0.png", seed=0)
    report = check_dataset(tmp_path / "only_test", progress=False)
    assert report.problems == ["no train split"]
    assert main(["data", "check", str(tmp_path / "missing")]) == 2


def test_check_refuses_a_threshold_beyond_the_hash_bits(tiny_dataset, capsys):
    for threshold in ("-1", "129"):
        assert main(["data", "check", str(tiny_dataset), "--threshold", threshold]) == 2
        assert capsys.readouterr().err == (
            f"pix2pix data: error: the near-duplicate threshold counts hash bits: 0 to 128, got {threshold}\n"
        )
    assert main(["data", "check", str(tiny_dataset), "--threshold", "128", "--quiet"]) == 0


def test_check_reads_an_unpaired_layout_image_by_image(tmp_path, tiny_dataset, capsys):
    root = tmp_path / "unpaired"
    unpair(tiny_dataset, root, direction="AtoB", progress=False)
    assert main(["data", "check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "images" in out.splitlines()[1] and out.strip().endswith("usable")
    report = check_dataset(root, progress=False)
    counts = {split.name: split.pairs for split in report.splits}
    assert counts == {"trainA": 6, "trainB": 6, "valA": 2, "valB": 2, "testA": 3, "testB": 3}
    assert report.usable and not report.duplicates


def test_check_of_an_unpaired_layout_finds_broken_files_and_leaks_within_a_domain(tmp_path):
    root = tmp_path / "unpaired"
    for domain, offset in (("A", 0), ("B", 100)):
        for split, seeds in (("train", range(4)), ("test", range(4, 6))):
            (root / f"{split}{domain}").mkdir(parents=True)
            for seed in seeds:
                smooth_image(seed + offset).save(root / f"{split}{domain}" / f"{seed}.png")
    smooth_image(1).save(root / "testA" / "leaked.png")  # trainA/1.png again
    smooth_image(2).save(root / "testB" / "from_a.png")  # an A image in B: a different domain, no leak
    (root / "trainB" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    report = check_dataset(root, progress=False)
    assert [(d.kind, d.first, d.second) for d in report.duplicates] == [("exact", "trainA/1", "testA/leaked")]
    assert report.problems == ["1 corrupt file"]
    empty = write_photos(tmp_path / "empty" / "trainA", 2).parent
    (empty / "trainB").mkdir()
    assert check_dataset(empty, progress=False).problems == ["no usable images in trainB"]
    half_made = write_photos(tmp_path / "half" / "trainA", 2).parent  # read as pairs, its images were cut in two
    report = check_dataset(half_made, progress=False)
    assert report.unpaired and report.problems == ["no trainB split"]


def test_difference_hash_is_stable_under_reencoding_and_tells_images_apart(tmp_path):
    image = smooth_image(7, (64, 64))
    image.save(tmp_path / "a.jpg", quality=75)
    reencoded = Image.open(tmp_path / "a.jpg")
    assert bin(compute_difference_hash(image) ^ compute_difference_hash(reencoded)).count("1") <= 3
    assert bin(compute_difference_hash(image) ^ compute_difference_hash(smooth_image(8, (64, 64)))).count("1") > 10


@pytest.mark.skipif(not SHARED_FACADES.is_dir(), reason="../shared/data/facades is absent (real data for developers)")
def test_check_on_the_real_facades_finds_a_usable_dataset():
    report = check_dataset(SHARED_FACADES, progress=False)
    assert report.usable and report.splits[0].pairs == 400 and report.splits[0].sizes == {(256, 256): 400}


# --- Lab -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_lab_round_trip_is_within_one_level(seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (int(rng.integers(8, 40)), int(rng.integers(8, 40)), 3), dtype=np.uint8)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1
    lab = image_to_lab_array(Image.fromarray(rgb))  # through the float32 network scale
    assert lab.shape == (3, *rgb.shape[:2]) and lab.dtype == np.float32 and np.abs(lab).max() <= 1
    assert np.abs(np.asarray(lab_array_to_image(lab), int) - rgb).max() <= 1


def test_lab_tensors_of_a_pil_image_and_a_batch():
    image = smooth_image(3, (24, 16))
    lightness, ab = image_to_lab_tensors(image)
    back = np.asarray(lab_tensors_to_image(lightness, ab), int)
    assert np.abs(back - np.asarray(image, int)).max() <= 1
    gray_lightness, gray_ab = image_to_lab_tensors(image.convert("L"))
    assert gray_ab.abs().max() < 1e-3  # gray has no colour
    batch = lab_batch_to_rgb(torch.stack([lightness, gray_lightness]), torch.stack([ab, gray_ab]))
    assert batch.shape == (2, 3, 16, 24) and batch.min() >= -1 and batch.max() <= 1
    wild = lab_batch_to_rgb(lightness[None], torch.full_like(ab[None], 1.0))  # out of gamut: clipped, no error
    assert torch.isfinite(wild).all()
    with pytest.raises(ValueError, match=r"expected L \(B, 1, H, W\)"):
        lab_batch_to_rgb(lightness, ab)
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_lab(np.zeros((4, 4, 3)))


# ---- unpair


def test_unpair_cuts_every_split_into_its_halves_as_the_direction_reads_them(tmp_path, capsys):
    root = write_pairs(tmp_path / "paired", "train", 4)
    write_pairs(root, "val", 2, seed=1)
    out = tmp_path / "unpaired"
    assert main(["data", "unpair", str(root), "--out", str(out), "--direction", "BtoA"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: trainA 4, trainB 4, valA 2, valB 2 images"
    assert sorted(p.name for p in out.iterdir()) == ["trainA", "trainB", "unpair.json", "valA", "valB"]
    for split in ("train", "val"):
        for pair in find_pairs(root, split):
            label, photo = load_pair(pair, direction="BtoA", in_channels=3, out_channels=3)  # BtoA: right half first
            a, b = (np.asarray(Image.open(out / f"{split}{domain}" / f"{pair.name}.png")) for domain in "AB")
            assert np.array_equal(a, np.asarray(label)) and np.array_equal(b, np.asarray(photo))


def test_unpair_disjoint_takes_each_domain_from_other_training_pairs_and_keeps_held_out_splits_whole(tmp_path):
    root = write_pairs(tmp_path / "paired", "train", 5)
    write_pairs(root, "test", 2, seed=1)
    unpair(root, tmp_path / "out", disjoint=True)
    names = {folder: sorted(p.stem for p in (tmp_path / "out" / folder).iterdir()) for folder in ("trainA", "trainB")}
    assert names == {"trainA": ["0", "1"], "trainB": ["2", "3", "4"]}  # no image meets its counterpart
    assert sorted(p.stem for p in (tmp_path / "out" / "testA").iterdir()) == ["0", "1"]
    assert sorted(p.stem for p in (tmp_path / "out" / "testB").iterdir()) == ["0", "1"]


def test_unpair_fills_an_empty_output_folder_and_records_what_it_was_made_from(tmp_path):
    root = write_pairs(tmp_path / "paired", "train", 2)
    (tmp_path / "empty").mkdir()
    assert unpair(root, tmp_path / "empty", direction="BtoA", progress=False) == {"train": (2, 2)}
    record = read_unpair_record(tmp_path / "empty")
    assert record == {
        "source": str(root.resolve()),
        "direction": "BtoA",
        "disjoint": False,
        "images": {"train": [2, 2]},
    }
    assert not list(tmp_path.glob(".empty.*"))  # no staging folder left
    single = write_pairs(tmp_path / "single", "train", 1)
    with pytest.raises(DataError, match="1 pair\\(s\\) cannot be halved into two domains"):
        unpair(single, tmp_path / "none", disjoint=True, progress=False)
    assert not (tmp_path / "none").exists()


def test_unpair_refuses_a_used_output_folder_and_a_dataset_without_train(tmp_path, capsys):
    root = write_pairs(tmp_path / "paired", "train", 2)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert main(["data", "unpair", str(root), "--out", str(used)]) == 2
    assert "output folder exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    with pytest.raises(DataError, match="dataset root not found"):
        unpair(tmp_path / "nothing", tmp_path / "new")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new-*"))
