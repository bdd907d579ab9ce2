"""Evaluation: metrics against known values, palette recovery, FCN-score, report, eval and summary commands."""

from __future__ import annotations

import io
import json
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.cache import cache_home
from pix2pix.cli import main
from pix2pix.data.synthetic import SYNTHETIC_PALETTE, generate_synthetic_facades, render_facade
from pix2pix.evaluate import fcn_score
from pix2pix.evaluate.pipeline import FcnOptions, ImageFiles, evaluate_images
from pix2pix.evaluate.report import plot_loss_curves
from pix2pix.metrics import compute_image_metrics, compute_mean_ci, evaluate_pairs, to_uint8_array
from pix2pix.training.loop import fit
from tests.helpers import tiny_config

FACADES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "facades"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks gain nothing from intra-op threads, and on a busy shared machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mid_grey_image(seed: int = 0, size: int = 256) -> np.ndarray:
    """Values in [40, 215], so a +-10 offset or small noise never clips."""
    return np.random.default_rng(seed).integers(40, 216, (size, size, 3)).astype(np.uint8)


# ---- metrics against known values


def test_identical_images_are_perfect():
    image = mid_grey_image()
    metrics = compute_image_metrics(image, image)
    assert metrics["l1"] == 0 and metrics["l1_255"] == 0
    assert math.isinf(metrics["psnr"]) and metrics["ssim"] == pytest.approx(1.0)


def test_constant_offset_gives_known_l1_and_psnr():
    target = mid_grey_image()
    metrics = compute_image_metrics(target + np.uint8(10), target)
    assert metrics["l1_255"] == pytest.approx(10.0)
    assert metrics["l1"] == pytest.approx(10 / 127.5)
    assert metrics["psnr"] == pytest.approx(10 * math.log10(255**2 / 100))  # MSE = 100: 28.13 dB
    assert 0 < metrics["ssim"] < 1


def test_known_noise_level_gives_known_psnr_and_l1():
    target = mid_grey_image(size=512)
    noise = np.random.default_rng(1).normal(0, 5.0, target.shape)
    noisy = np.clip(np.rint(target + noise), 0, 255).astype(np.uint8)
    metrics = compute_image_metrics(noisy, target)
    sigma = math.sqrt(25 + 1 / 12)  # rounding to integers adds the variance of a uniform step
    assert metrics["psnr"] == pytest.approx(20 * math.log10(255 / sigma), abs=0.05)
    assert metrics["l1_255"] == pytest.approx(5.0 * math.sqrt(2 / math.pi), abs=0.05)


def test_grayscale_images_are_measured():
    target = mid_grey_image()[:, :, :1]
    metrics = compute_image_metrics(target + np.uint8(4), target)
    assert metrics["l1_255"] == pytest.approx(4.0) and metrics["ssim"] < 1


def wang_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as Wang et al. 2004 define it, written out: local statistics under an 11x11 Gaussian window
    (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2, averaged over the positions where the window fits."""
    from scipy.ndimage import gaussian_filter

    def local_mean(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=1.5, truncate=3.5)  # radius 5: the 11x11 window

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a, var_b = local_mean(a * a) - mu_a**2, local_mean(b * b) - mu_b**2
    covariance = local_mean(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map[5:-5, 5:-5].mean())


def test_ssim_is_wang_et_al_gaussian_ssim():
    """The SSIM of the literature, not scikit-image's default 7x7 uniform window (which gives other values)."""
    target = mid_grey_image(size=48)[:, :, 0]
    noisy = np.clip(target + np.random.default_rng(2).normal(0, 20, target.shape), 0, 255).astype(np.uint8)
    assert compute_image_metrics(noisy, target)["ssim"] == pytest.approx(wang_ssim(noisy, target), abs=1e-6)
    colour = np.stack([target, np.flipud(target), target.T], axis=2)
    colour_noisy = np.stack([noisy, np.flipud(noisy), noisy.T], axis=2)
    per_channel = np.mean([wang_ssim(colour_noisy[..., c], colour[..., c]) for c in range(3)])
    assert compute_image_metrics(colour_noisy, colour)["ssim"] == pytest.approx(per_channel, abs=1e-6)


def test_images_too_small_for_the_ssim_window_are_refused_in_words():
    with pytest.raises(ValueError, match="at least 11x11"):
        compute_image_metrics(mid_grey_image(size=8), mid_grey_image(size=8))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        compute_image_metrics(mid_grey_image(size=32), mid_grey_image(size=16))


def test_evaluate_pairs_on_tensors_matches_the_saved_images():
    outputs, targets = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    means = evaluate_pairs(outputs, targets)
    rows = [compute_image_metrics(to_uint8_array(o), to_uint8_array(t)) for o, t in zip(outputs, targets)]
    for name in ("l1", "l1_255", "psnr", "ssim"):
        assert means[name] == pytest.approx(np.mean([row[name] for row in rows]))
    assert evaluate_pairs(targets, targets)["l1"] == 0
    with pytest.raises(ValueError):
        evaluate_pairs(outputs[:2], targets)


def test_mean_confidence_interval_uses_student_t():
    stats = compute_mean_ci([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) * sd / sqrt(n)
    assert stats["mean"] == 3 and stats["n"] == 5
    assert stats["ci_low"] == pytest.approx(3 - half) and stats["ci_high"] == pytest.approx(3 + half)
    assert math.isnan(compute_mean_ci([2.0])["ci_low"])
    with pytest.raises(ValueError, match="confidence is a fraction, e.g. 0.95 for 95%, got 95"):
        compute_mean_ci([1, 2, 3], confidence=95)  # a percentage gave a nan interval, silently


def test_evaluate_images_of_no_images_says_so(tmp_path):
    with pytest.raises(ValueError, match="no images to evaluate"):
        evaluate_images([], tmp_path / "eval", label="nothing", split="val", progress=False)


# ---- palette recovery


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_noisy_palette_colours_map_to_their_class():
    palette = fcn_score.FACADES_PALETTE
    colours = np.array(palette.colors, dtype=np.int64)  # (K, 3)
    noise = np.random.default_rng(0).integers(-14, 15, (50, *colours.shape))
    noisy = np.clip(colours[None] + noise, 0, 255).astype(np.uint8)  # (50, K, 3)
    labels = fcn_score.recover_labels(noisy, palette)
    assert (labels == np.arange(len(colours))[None]).all()


def test_labels_survive_jpeg_compression():
    palette = fcn_score.FACADES_PALETTE
    # three facades at 256 px, the real data's size: regions of several pixels, 1-2 px mouldings
    truth = np.concatenate([render_facade_labels(seed) for seed in range(3)], axis=1).repeat(2, 0).repeat(2, 1)
    clean = np.asarray(palette.colors, dtype=np.uint8)[truth]
    recovered = fcn_score.recover_labels(jpeg(clean, quality=75), palette)
    # chroma subsampling blends the colours of the pixels along region borders; everywhere else JPEG
    # only adds noise, and the nearest palette colour is the true one
    interior = np.ones_like(truth, dtype=bool)
    for shift in (1, 2):
        for axis in (0, 1):
            interior &= (truth == np.roll(truth, shift, axis)) & (truth == np.roll(truth, -shift, axis))
    assert (recovered == truth)[interior].mean() > 0.998
    assert (recovered == truth).mean() > 0.88


def render_facade_labels(seed: int, size: int = 128) -> np.ndarray:
    _, label_map = render_facade(random.Random(seed), size)
    return fcn_score.recover_labels(np.asarray(label_map), fcn_score.FACADES_PALETTE)


def test_label_maps_are_told_from_photos():
    photo, label_map = render_facade(random.Random(0), 128)
    palette = fcn_score.FACADES_PALETTE
    assert fcn_score.is_label_map([jpeg(np.asarray(label_map), 90)], palette)
    assert not fcn_score.is_label_map([np.asarray(photo)], palette)


def test_palette_file_is_read_and_checked(tmp_path):
    good = tmp_path / "palette.json"
    good.write_text(json.dumps({"sky": [0, 0, 255], "road": [128, 64, 128]}))
    assert fcn_score.load_palette(str(good)).names == ("sky", "road")
    assert fcn_score.load_palette("facades").names == tuple(SYNTHETIC_PALETTE)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sky": [0, 0, 300]}))
    with pytest.raises(ValueError, match="sky"):
        fcn_score.load_palette(str(bad))
    with pytest.raises(FileNotFoundError):
        fcn_score.load_palette(str(tmp_path / "none.json"))


@pytest.mark.skipif(not FACADES.is_dir(), reason=f"real facades not found at {FACADES}")
def test_real_facades_label_side_is_found():
    palette = fcn_score.FACADES_PALETTE
    assert fcn_score.find_label_side(FACADES, palette) == "B"  # photo | label map: BtoA in the release


# ---- FCN-score on a tiny synthetic labelled dataset

SMALL_SEGMENTER = fcn_score.SegmenterSettings(size=32, iterations=150, batch_size=8, width=16, seed=0)


@pytest.fixture(scope="module")
def facades_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("facades") / "synthetic"
    return generate_synthetic_facades(root, size=64, counts={"train": 48, "val": 0, "test": 12})


def split_test_pairs(root: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images = [np.asarray(Image.open(path).convert("RGB")) for path in sorted((root / "test").glob("*.png"))]
    return [image[:, :64] for image in images], [image[:, 64:] for image in images]


@pytest.mark.slow
def test_segmenter_scores_real_photos_high_and_shuffled_ones_low(facades_root):
    palette = fcn_score.FACADES_PALETTE
    segmenter = fcn_score.load_or_train_segmenter(facades_root, palette, SMALL_SEGMENTER, progress=False)
    assert segmenter.path is not None and segmenter.path.parent == cache_home() / "segmenters"
    assert not (facades_root / ".pix2pix-cache").exists()
    label_maps, photos = split_test_pairs(facades_root)
    real, per_image = fcn_score.score_photos(segmenter, photos, label_maps, palette)
    shuffled, _ = fcn_score.score_photos(segmenter, photos[1:] + photos[:1], label_maps, palette)
    assert real["pixel_acc"] > 0.75, real
    assert shuffled["pixel_acc"] < real["pixel_acc"] - 0.2, (real, shuffled)
    assert shuffled["class_iou"] < real["class_iou"]
    assert len(per_image) == len(photos) and all(0 <= a <= 1 for a in per_image)

    cached = fcn_score.load_or_train_segmenter(facades_root, palette, SMALL_SEGMENTER, progress=False)
    assert cached.path == segmenter.path
    assert fcn_score.score_photos(cached, photos, label_maps, palette)[0] == real


def test_two_evaluations_at_once_train_the_segmenter_once(facades_root, monkeypatch):
    """The second waits on the cache entry's lock and then loads what the first trained."""
    import threading
    import time

    settings = fcn_score.SegmenterSettings(size=32, iterations=2, batch_size=2, width=4, seed=11)
    real_train, calls = fcn_score.train_segmenter, []

    def slow_train(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)  # long enough for the other thread to arrive while this one holds the lock
        return real_train(*args, **kwargs)

    monkeypatch.setattr(fcn_score, "train_segmenter", slow_train)
    palette = fcn_score.load_palette("facades")
    results: list = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                fcn_score.load_or_train_segmenter(facades_root, palette, settings, progress=False)
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 2 and results[0].path == results[1].path


def test_segmenter_training_is_seeded():
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (6, 32, 32)).astype(np.uint8)
    settings = fcn_score.SegmenterSettings(size=32, iterations=3, batch_size=2, width=4, seed=7)
    first, second = (fcn_score.train_segmenter(photos, labels, 3, settings, progress=False) for _ in range(2))
    for a, b in zip(first.network.state_dict().values(), second.network.state_dict().values()):
        assert torch.equal(a, b)


def test_scores_of_a_known_confusion():
    confusion = np.array([[8, 2], [0, 0]])  # class 1 never occurs but is predicted twice
    scores = fcn_score.compute_scores(confusion)
    assert scores["pixel_acc"] == 0.8 and scores["class_acc"] == 0.8
    assert scores["class_iou"] == pytest.approx((0.8 + 0.0) / 2)


# ---- report


def write_result_folder(folder: Path, label_maps, photos, outputs) -> list[ImageFiles]:
    for sub in ("inputs", "targets"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    items = []
    for i, (label_map, photo, output) in enumerate(zip(label_maps, photos, outputs)):
        Image.fromarray(label_map).save(folder / "inputs" / f"{i}.png")
        Image.fromarray(photo).save(folder / "targets" / f"{i}.png")
        Image.fromarray(output).save(folder / f"{i}.png")
        items.append(
            ImageFiles(str(i), folder / f"{i}.png", folder / "targets" / f"{i}.png", folder / "inputs" / f"{i}.png")
        )
    return items


def linked_files(page: Path) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page.read_text())


def test_report_has_one_row_per_image_and_links_only_to_existing_files(facades_root, tmp_path):
    label_maps, photos = split_test_pairs(facades_root)
    noisy = [np.clip(p.astype(int) + 20, 0, 255).astype(np.uint8) for p in photos]
    items = write_result_folder(tmp_path / "results", label_maps, photos, noisy)
    (tmp_path / "results" / "inputs" / "0.png").unlink()  # a missing file must not be linked
    items[0] = ImageFiles("0", items[0].output, items[0].target, None)
    fcn = FcnOptions("auto", segmenter=SMALL_SEGMENTER)
    evaluation = evaluate_images(
        items, tmp_path / "eval", label="noisy", split="test", fcn=fcn, data_root=facades_root, progress=False
    )
    page = tmp_path / "eval" / "index.html"
    links = linked_files(page)
    assert links and all((page.parent / link).exists() for link in links)
    assert "inputs/0.png" not in page.read_text()
    body = page.read_text().split("<tbody>")[1]
    assert body.count("<tr>") == len(items)
    assert "sortBy" in page.read_text()
    # the missing input leaves the FCN-score (which needs every label map) to a note
    assert evaluation.fcn is None and any("inputs" in note for note in evaluation.notes)

    document = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert document["n_images"] == len(items)
    assert document["summary"]["l1_255"]["mean"] == pytest.approx(np.mean([r["l1_255"] for r in evaluation.rows]))
    csv_lines = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "name,l1,l1_255,psnr,ssim" and len(csv_lines) == 1 + len(items)


@pytest.mark.slow  # trains the small segmenter unless a test before it has cached it
def test_fcn_score_in_the_report_ranks_real_photos_above_shuffled(facades_root, tmp_path):
    label_maps, photos = split_test_pairs(facades_root)
    shuffled = photos[1:] + photos[:1]
    items = write_result_folder(tmp_path / "results", label_maps, photos, shuffled)
    fcn = FcnOptions("on", segmenter=SMALL_SEGMENTER)
    evaluation = evaluate_images(
        items, tmp_path / "eval", label="shuffled", split="test", fcn=fcn, data_root=facades_root, progress=False
    )
    assert evaluation.fcn is not None and evaluation.fcn["kind"] == "photos"
    generated, real = evaluation.fcn["generated"], evaluation.fcn["real"]
    assert generated["pixel_acc"] < real["pixel_acc"] - 0.2
    assert "FCN-score" in (tmp_path / "eval" / "index.html").read_text()
    assert "fcn_acc" in (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[0]


@pytest.mark.slow  # trains the small segmenter unless a test before it has cached it
def test_a_saved_segmenter_scores_as_the_cached_one_without_the_training_data(
    facades_root, tmp_path, capsys, monkeypatch
):
    label_maps, photos = split_test_pairs(facades_root)
    palette = fcn_score.load_palette("facades")
    items = write_result_folder(tmp_path / "results", label_maps, photos, photos[1:] + photos[:1])
    cached = evaluate_images(
        items, tmp_path / "a", label="x", split="test", fcn=FcnOptions("on", segmenter=SMALL_SEGMENTER),
        data_root=facades_root, progress=False,
    )  # fmt: skip
    saved = tmp_path / "kept.pt"
    saved.write_bytes(Path(cached.fcn["segmenter"]["path"]).read_bytes())
    kept = fcn_score.load_segmenter_file(saved, palette)
    fcn = FcnOptions("on", segmenter=fcn_score.SegmenterSettings(), saved_segmenter=kept)  # other settings: ignored
    again = evaluate_images(items, tmp_path / "b", label="x", split="test", fcn=fcn, data_root=None, progress=False)
    assert again.fcn["generated"] == cached.fcn["generated"] and again.fcn["real"] == cached.fcn["real"]
    assert again.fcn["segmenter"]["size"] == SMALL_SEGMENTER.size and again.fcn["segmenter"]["path"] == str(saved)

    reordered = fcn_score.Palette(palette.names[::-1], palette.colors[::-1])  # same size, other classes
    with pytest.raises(ValueError, match="trained for another palette"):
        fcn_score.load_segmenter_file(saved, reordered)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match="not a segmenter saved by pix2pix eval"):
        fcn_score.load_segmenter_file(tmp_path / "tensor.pt", palette)
    not_one = tmp_path / "not_one.pt"
    torch.save({"weights": torch.zeros(1)}, not_one)
    args = ["eval", "--results", str(tmp_path / "results"), "--fcn-score", "on", "--fcn-segmenter", str(not_one)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pix2pix eval: error: {not_one}: not a segmenter saved by pix2pix eval") and "\n" not in err
    assert not (tmp_path / "results" / "eval").exists()  # refused before measuring anything
    garbage = tmp_path / "garbage.pt"  # no tensor pickle: torch's refusal runs to a page
    garbage.write_bytes(b"not a torch file at all" * 10)
    assert main([*args[:-1], str(garbage)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pix2pix eval: error: {garbage}: not a segmenter") and "\n" not in err

    shutil.copytree(tmp_path / "results", tmp_path / "results2")
    loads = []
    load = fcn_score.load_segmenter_file
    monkeypatch.setattr(fcn_score, "load_segmenter_file", lambda *a: loads.append(a) or load(*a))
    sources = [str(tmp_path / "results"), str(tmp_path / "results2")]
    assert main(["eval", "--results", *sources, "--fcn-score", "on", "--fcn-segmenter", str(saved), "--quiet"]) == 0
    assert len(loads) == 1  # once for both folders


def test_fcn_on_without_label_maps_is_an_error(tmp_path):
    photos = [mid_grey_image(i, 32) for i in range(2)]
    items = write_result_folder(tmp_path / "results", photos, photos, photos)
    with pytest.raises(ValueError, match="label maps"):
        evaluate_images(items, tmp_path / "eval", label="x", split="test", fcn=FcnOptions("on"), progress=False)


# ---- commands


@pytest.fixture
def tiny_run(tiny_dataset, tmp_path) -> Path:
    return fit(tiny_config(tiny_dataset, tmp_path / "run"), progress=False)


def test_eval_without_the_eval_extra_is_refused_before_translating(tiny_run, monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "skimage" else real_find_spec(name, *args)
    )
    assert main(["eval", "--checkpoint", str(tiny_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "pix2pix eval needs skimage" in err and "pip install 'pix2pix[eval]'" in err
    assert not (tiny_run / "eval-test").exists()  # not a single image translated first


def test_eval_cli_end_to_end(tiny_run, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tiny_run), "--quiet"]) == 0
    folder = tiny_run / "eval-test"
    document = json.loads((folder / "metrics.json").read_text())
    assert document["n_images"] == 3 and document["fcn_score"] is None
    assert (folder / "loss_curves.png").exists()
    page = folder / "index.html"
    assert all((folder / link).exists() for link in linked_files(page))
    assert "report:" in capsys.readouterr().out

    # an existing `pix2pix test` folder gives the same numbers (same seed, same protocol)
    results = tmp_path / "results"
    data = document["settings"]["data"]
    assert main(["test", "--checkpoint", str(tiny_run), "--input", data, "--output", str(results), "--quiet"]) == 0
    assert main(["eval", "--results", str(results), "--quiet"]) == 0
    again = json.loads((results / "eval" / "metrics.json").read_text())
    assert again["summary"]["l1"]["mean"] == pytest.approx(document["summary"]["l1"]["mean"])
    # a later `test` of the 2 val pairs into the same folder: the third test image left there is not measured
    argv = ["test", "--checkpoint", str(tiny_run), "--input", data, "--split", "val", "--output", str(results)]
    assert main([*argv, "--quiet"]) == 0 and len(list(results.glob("*.png"))) == 3
    assert main(["eval", "--results", str(results), "--quiet"]) == 0
    assert json.loads((results / "eval" / "metrics.json").read_text())["n_images"] == 2
    # several samples of each image (NAME_sampleK.png): each is measured against NAME's ground truth
    sampled = tmp_path / "sampled"
    argv = ["test", "--checkpoint", str(tiny_run), "--input", data, "--output", str(sampled), "--samples", "2"]
    assert main([*argv, "--quiet"]) == 0
    assert main(["eval", "--results", str(sampled), "--quiet"]) == 0
    assert json.loads((sampled / "eval" / "metrics.json").read_text())["n_images"] == 2 * 3


def test_loss_curves_add_the_validation_row_when_the_run_logged_it(tmp_path):
    fields = ["epoch", "G_GAN", "G_L1", "D_real", "D_fake", "val_G_GAN", "val_G_L1", "val_G", "val_ssim"]
    rows = [",".join(fields)] + [f"{epoch},1,2,3,4,{'5,6,7,0.5' if epoch % 2 == 0 else ',,,'}" for epoch in range(1, 7)]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    assert plot_loss_curves(tmp_path / "log.csv", tmp_path / "with.png")
    (tmp_path / "log.csv").write_text("\n".join(line.rsplit(",", 4)[0] for line in rows) + "\n")
    assert plot_loss_curves(tmp_path / "log.csv", tmp_path / "without.png")
    with Image.open(tmp_path / "with.png") as with_val, Image.open(tmp_path / "without.png") as without:
        assert with_val.width == without.width and with_val.height == 2 * without.height


def test_eval_compares_several_runs(tiny_dataset, tmp_path):
    runs = [
        fit(tiny_config(tiny_dataset, tmp_path / "gan"), progress=False),
        fit(tiny_config(tiny_dataset, tmp_path / "l1only").replace("loss", gan=False), progress=False),
    ]
    out = tmp_path / "compare"
    assert main(["eval", "--checkpoint", *map(str, runs), "--output", str(out), "--quiet"]) == 0
    page = out / "index.html"
    text = page.read_text()
    assert "gan" in text and "l1only" in text
    assert all((out / link).exists() for link in linked_files(page))
    assert text.split("Same test images")[1].count("<tr>") == 1 + 3  # header + one row per test image
    rows = json.loads((out / "comparison.json").read_text())
    assert [row["run"] for row in rows] == ["gan", "l1only"] and all(row["n_images"] == 3 for row in rows)
    assert all((run / "eval-test" / "index.html").exists() for run in runs)


@pytest.mark.slow
def test_eval_on_builtin_data_computes_the_fcn_score(tiny_run, tmp_path, monkeypatch, capsys):
    # a model trained elsewhere, evaluated on the built-in facades, whose label maps are the inputs
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    argv = ["eval", "--checkpoint", str(tiny_run), "--data", "builtin", "--fcn-size", "32", "--fcn-iterations", "20"]
    assert main([*argv, "--fcn-score", "on", "--quiet"]) == 0
    document = json.loads((tiny_run / "eval-test" / "metrics.json").read_text())
    assert document["n_images"] == 20 and document["fcn_score"]["kind"] == "photos"
    assert set(document["fcn_score"]["real"]) == {"pixel_acc", "class_acc", "class_iou"}
    assert Path(document["fcn_score"]["segmenter"]["path"]).is_relative_to(tmp_path / "home")
    assert "FCN-score" in capsys.readouterr().out


def test_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--results", str(tmp_path / "nowhere"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and len(err.splitlines()) == 1


def test_summary_of_the_paper_networks(capsys):
    assert main(["summary", "--generator", "unet_256"]) == 0
    out = capsys.readouterr().out
    assert "54,413,955" in out and "2,768,705" in out
    assert "receptive field: 70x70" in out and "(1, 1, 30, 30)" in out
    assert "encoder.0.0" in out  # the layer table


@pytest.mark.parametrize(
    ("extra", "field"), [(["--disc-layers", "1"], 16), (["--disc-layers", "5"], 286), (["--discriminator", "pixel"], 1)]
)
def test_summary_reports_the_receptive_field(capsys, extra, field):
    assert main(["summary", "--no-layers", *extra]) == 0
    assert f"receptive field: {field}x{field}" in capsys.readouterr().out


def test_summary_of_a_checkpoint(tiny_run, capsys):
    assert main(["summary", "--checkpoint", str(tiny_run), "--no-layers"]) == 0
    out = capsys.readouterr().out
    assert "ngf 8" in out and "input (1, 3, 32, 32)" in out


@pytest.mark.slow
def test_the_segmenter_is_cached_under_the_cache_root_never_in_the_dataset(tmp_path, monkeypatch):
    root = tmp_path / "facades"
    generate_synthetic_facades(root, size=32, counts={"train": 8, "val": 0, "test": 2})
    root.chmod(0o555)  # a shared, read-only dataset: nothing may be written there
    monkeypatch.setenv("PIX2PIX_HOME", str(tmp_path / "home"))
    try:
        segmenter = fcn_score.load_or_train_segmenter(root, fcn_score.FACADES_PALETTE, SMALL_SEGMENTER, progress=False)
    finally:
        root.chmod(0o755)
    assert segmenter.path is not None and segmenter.path.parent == tmp_path / "home" / "segmenters"
    assert not (root / ".pix2pix-cache").exists()


def test_the_cli_trains_the_segmenter_the_library_trains_by_default():
    """`pix2pix eval` and `evaluate_checkpoint(FcnOptions())` give the same FCN-scores only with one segmenter."""
    from pix2pix.cli import build_parser

    args = build_parser().parse_args(["eval", "--checkpoint", "RUN"])
    default = fcn_score.SegmenterSettings()
    assert (args.fcn_size, args.fcn_iterations, args.fcn_seed) == (default.size, default.iterations, default.seed)
    assert FcnOptions().segmenter == default
