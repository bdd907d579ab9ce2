"""FID and LPIPS from user-supplied TorchScript files, on tiny stand-in networks saved by the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from torch import nn

from pix2pix.cli import main
from pix2pix.evaluate.compare import write_comparison
from pix2pix.evaluate.perceptual import (
    FeatureExtractor,
    LpipsModel,
    PerceptualModels,
    compute_frechet_distance,
    load_perceptual_models,
)
from pix2pix.evaluate.pipeline import FcnOptions, ImageFiles, evaluate_images
from pix2pix.training.loop import fit
from tests.helpers import tiny_config

FEATURES = 16


def evaluate_perceptual(items, folder, perceptual, label="results"):
    """`pix2pix eval` of result images with only the perceptual metrics (FCN-score off)."""
    return evaluate_images(
        items, folder, label=label, split="test", fcn=FcnOptions("off"), perceptual=perceptual, progress=False
    )


def seeded_conv(seed: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    with torch.random.fork_rng():  # fixed weights without touching the other tests' random state
        torch.manual_seed(seed)
        return nn.Conv2d(3, out_channels, 3, stride=stride)


class RandomFeatures(nn.Module):
    """A fixed random conv + global pool: the FID's feature network, with NVIDIA's call convention."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = seeded_conv(0, FEATURES, stride=2)

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = torch.relu(self.conv(images / 255.0)).mean((2, 3))  # (N, F)
        return features if return_features else features.sum(1)  # without the flag: not features


class PlainFeatures(nn.Module):
    """The same features from a module whose forward takes the images only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = seeded_conv(0, FEATURES, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(images / 255.0)).mean((2, 3))


class FeatureDistance(nn.Module):
    """An LPIPS stand-in: mean squared distance of fixed random conv features, (N, 1, 1, 1) as LPIPS."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = seeded_conv(1, 8)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.conv(output) - self.conv(target)).pow(2).mean((1, 2, 3), keepdim=True)


class OneNumber(nn.Module):
    """Wrong for both flags: one number for the whole batch."""

    def forward(self, output: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        return output.mean()


def save_script(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    torch.save(RandomFeatures().state_dict(), folder / "state_dict.pth")
    (folder / "notes.txt").write_text("not a network\n")
    return {
        "fid": save_script(RandomFeatures(), folder / "fid.pt"),
        "plain": save_script(PlainFeatures(), folder / "plain.pt"),
        "lpips": save_script(FeatureDistance(), folder / "lpips.pt"),
        "one_number": save_script(OneNumber(), folder / "one_number.pt"),
        "state_dict": folder / "state_dict.pth",
        "text": folder / "notes.txt",
    }


def random_images(count: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    return list(np.random.default_rng(seed).integers(30, 226, (count, size, size, 3), dtype=np.uint8))


def shifted(images: list[np.ndarray], offset: int) -> list[np.ndarray]:
    return [np.clip(image.astype(int) + offset, 0, 255).astype(np.uint8) for image in images]


def reference_frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root, independent of the code under test."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


# ---- FID


def test_fid_of_a_set_against_itself_is_zero(weights):
    features = FeatureExtractor.load(weights["fid"]).extract(random_images(40))
    assert features.shape == (40, FEATURES)
    assert compute_frechet_distance(features, features) == pytest.approx(0.0, abs=1e-9)


def test_fid_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200, 6))
    b = rng.normal(0.5, 1, (150, 6)) @ rng.normal(0, 1, (6, 6))  # another mean and covariance
    assert compute_frechet_distance(a, b) == pytest.approx(reference_frechet_distance(a, b), rel=1e-6)


def test_fid_on_network_features_matches_the_textbook_formula(weights):
    extractor = FeatureExtractor.load(weights["fid"])
    outputs, targets = extractor.extract(random_images(40, seed=1)), extractor.extract(random_images(40, seed=2))
    fid = compute_frechet_distance(outputs, targets)
    assert fid > 0 and fid == pytest.approx(reference_frechet_distance(outputs, targets), rel=1e-5)


def test_fid_with_fewer_images_than_features_stays_finite():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (5, 64)), rng.normal(0, 1, (5, 64))  # rank-deficient covariances
    fid = compute_frechet_distance(a, b)
    assert np.isfinite(fid) and fid > 0
    assert compute_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fid_grows_as_the_generated_images_drift(weights):
    extractor = FeatureExtractor.load(weights["fid"])
    targets = random_images(40)
    target_features = extractor.extract(targets)
    fids = [
        compute_frechet_distance(extractor.extract(shifted(targets, offset)), target_features) for offset in (0, 15, 45)
    ]
    assert fids[0] == pytest.approx(0.0, abs=1e-9) and 0 < fids[1] < fids[2]


@pytest.mark.parametrize("name", ["fid", "plain"])
def test_features_are_the_modules_output_on_0_255_images(weights, name):
    """With `return_features` in forward's signature it is passed as True; without, the module is called plainly."""
    images = random_images(3) + random_images(2, size=40)  # two sizes: two forwards
    features = FeatureExtractor.load(weights[name]).extract(images)
    network = RandomFeatures()
    expected = [network(torch.from_numpy(image).permute(2, 0, 1)[None].float(), True)[0] for image in images]
    assert np.allclose(features, torch.stack(expected).detach().double().numpy(), atol=1e-6)


# ---- LPIPS


def test_lpips_values_are_the_modules_output_on_minus_1_1_images(weights):
    outputs = random_images(3) + random_images(2, size=40, seed=3)
    targets = random_images(3, seed=1) + random_images(2, size=40, seed=4)
    distances = LpipsModel.load(weights["lpips"]).measure(outputs, targets)
    network = FeatureDistance()

    def to_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1

    expected = [network(to_tensor(o), to_tensor(t)).item() for o, t in zip(outputs, targets)]
    assert distances == pytest.approx(expected, rel=1e-5)
    assert LpipsModel.load(weights["lpips"]).measure(outputs, outputs) == pytest.approx([0.0] * 5)


# ---- unusable files: one line naming the flag and the file


@pytest.mark.parametrize("flag", ["fid", "lpips"])
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing", "not found"),
        ("state_dict", "not a TorchScript"),
        ("text", "not a TorchScript"),
        ("one_number", "()"),
    ],
)
def test_unusable_weights_are_one_clear_error(weights, flag, name, reason):
    path = weights.get(name, weights["fid"].parent / "missing.pt")
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        load_perceptual_models(path if flag == "fid" else None, path if flag == "lpips" else None)
    message = str(error.value)
    assert message.startswith(f"--{flag}-weights {path}:") and reason in message
    assert len(message.splitlines()) == 1


def test_an_lpips_network_is_no_fid_network(weights):
    # FeatureDistance takes two batches; called with one it fails on the probe, not mid-evaluation
    with pytest.raises(ValueError, match=r"^--fid-weights .*lpips\.pt: the module failed"):
        FeatureExtractor.load(weights["lpips"])
    with pytest.raises(ValueError, match=r"^--lpips-weights .*fid\.pt: the module failed"):
        LpipsModel.load(weights["fid"])


# ---- in the evaluation: metrics.json, metrics.csv, report, comparison


def write_results(folder: Path, outputs: list[np.ndarray], targets: list[np.ndarray]) -> list[ImageFiles]:
    (folder / "targets").mkdir(parents=True)
    items = []
    for i, (output, target) in enumerate(zip(outputs, targets)):
        Image.fromarray(output).save(folder / f"{i}.png")
        Image.fromarray(target).save(folder / "targets" / f"{i}.png")
        items.append(ImageFiles(str(i), folder / f"{i}.png", folder / "targets" / f"{i}.png", None))
    return items


def test_evaluation_reports_lpips_per_image_and_the_fid(weights, tmp_path):
    models = load_perceptual_models(weights["fid"], weights["lpips"])
    targets = random_images(20)
    items = write_results(tmp_path / "results", shifted(targets, 25), targets)
    evaluation = evaluate_perceptual(items, tmp_path / "eval", models, label="shifted")
    assert models.lpips and models.fid
    expected_lpips = models.lpips.measure(shifted(targets, 25), targets)
    assert [row["lpips"] for row in evaluation.rows] == pytest.approx(expected_lpips)
    features = models.fid.extract(shifted(targets, 25)), models.fid.extract(targets)

    document = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert document["fid"]["value"] == pytest.approx(compute_frechet_distance(*features))
    assert document["fid"]["n_images"] == 20 and document["fid"]["feature_dim"] == FEATURES
    lpips = document["summary"]["lpips"]
    assert (
        lpips["mean"] == pytest.approx(np.mean(expected_lpips)) and lpips["ci_low"] < lpips["mean"] < lpips["ci_high"]
    )
    assert [image["lpips"] for image in document["images"]] == pytest.approx(expected_lpips)
    assert any("FID from only 20 images" in note for note in document["notes"])
    assert document["settings"]["LPIPS weights"] == str(weights["lpips"])
    assert (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[0] == "name,l1,l1_255,psnr,ssim,lpips"

    page = (tmp_path / "eval" / "index.html").read_text()
    assert re.search(r'<th class="sortable" onclick="sortBy\(this\)">LPIPS</th>', page)
    assert "<tr><td>LPIPS</td>" in page and "<td>lower</td></tr>" in page.split("<tr><td>LPIPS</td>")[1][:120]
    assert "FID between the 20 generated and the 20 target images" in page

    same = evaluate_perceptual(write_results(tmp_path / "same", targets, targets), tmp_path / "same-eval", models)
    assert same.fid and same.fid["value"] == pytest.approx(0.0, abs=1e-9)
    assert evaluation.fid and evaluation.fid["value"] > 0.01
    write_comparison(tmp_path / "compare", [evaluation, same])
    rows = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert [row["fid"] for row in rows] == pytest.approx([evaluation.fid["value"], 0.0], abs=1e-9)
    assert rows[0]["lpips"] > rows[1]["lpips"] == 0
    assert ">FID</th>" in (tmp_path / "compare" / "index.html").read_text()


def test_without_the_flags_nothing_changes(tmp_path):
    targets = random_images(4)
    items = write_results(tmp_path / "results", shifted(targets, 10), targets)
    for perceptual in (None, PerceptualModels()):
        evaluation = evaluate_perceptual(items, tmp_path / "eval", perceptual)
        document = json.loads((tmp_path / "eval" / "metrics.json").read_text())
        assert evaluation.fid is None and document["fid"] is None and "lpips" not in document["summary"]
        assert not document["notes"] and "LPIPS" not in (tmp_path / "eval" / "index.html").read_text()


# ---- `pix2pix eval`


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from tests.helpers import write_pairs

    root = tmp_path_factory.mktemp("cli")
    write_pairs(root / "data", "train", 4)
    write_pairs(root / "data", "test", 3, seed=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks gain nothing from intra-op threads on a busy machine
    try:
        return fit(tiny_config(root / "data", root / "run"), progress=False)
    finally:
        torch.set_num_threads(threads)


def test_eval_cli_with_both_flags(tiny_run, weights, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(tiny_run), "--output", str(out), "--quiet"]
    assert main([*argv, "--fid-weights", str(weights["fid"]), "--lpips-weights", str(weights["lpips"])]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert document["fid"]["n_images"] == 3 and document["fid"]["value"] > 0
    assert document["summary"]["lpips"]["n"] == 3 and all(image["lpips"] > 0 for image in document["images"])
    printed = capsys.readouterr().out
    assert "LPIPS" in printed and "FID" in printed and "biased upward" in printed


@pytest.mark.parametrize("flag", ["--fid-weights", "--lpips-weights"])
def test_eval_cli_refuses_a_bad_file_before_translating(tiny_run, weights, tmp_path, capsys, flag):
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(tiny_run), "--output", str(out), "--quiet", flag, str(weights["state_dict"])]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{flag} {weights['state_dict']}" in error and "TorchScript" in error
    assert not out.exists()  # nothing translated
