"""FID and LPIPS from TorchScript files the user supplies: no weights ship with pix2pix or download here.

The contracts (`torch.jit.load` alone reads the files, so neither torchvision nor the metric packages
are needed):

  --fid-weights FILE    module(images) -> (N, F) features; images (N, 3, H, W) float32 holding the 8-bit
                        values 0..255, at the evaluated images' own size. When `forward` declares a
                        `return_features` argument it is called with return_features=True, so NVIDIA's
                        Inception-v3 `inception-2015-12-05.pt` (StyleGAN2-ADA, clean-fid) gives its
                        2048 pool features, resizing to 299x299 inside.
  --lpips-weights FILE  module(output, target) -> (N,) or (N, 1, 1, 1) distances; both (N, 3, H, W)
                        float32 in [-1, 1].

Files are checked when loaded (exists, is TorchScript, answers a probe batch with the right shape), so
a wrong file fails before any translation starts, with one line naming the flag and the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import torch

from pix2pix.devices import resolve_device

FID_FLAG, LPIPS_FLAG = "--fid-weights", "--lpips-weights"
PROBE_SIZE = 64  # pixels of the probe images: small enough to be quick, large enough for a deep network
# the FID's upward bias grows as n shrinks (Chong & Forsyth 2020); pytorch-fid advises at least as many
# images as Inception has features, below which the covariance is rank-deficient
FID_RELIABLE_IMAGES = 2048


def describe_error(error: Exception) -> str:
    """One line of a foreign module's error: an argument mismatch gives its reason first, the TorchScript
    interpreter last, after its own traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1] if lines[0].startswith("The following operation failed") else lines[0]


def load_torchscript(path: Path, flag: str, device: torch.device) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: file not found")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as error:
        if "PytorchStreamReader" in str(error):  # no TorchScript archive inside: torch's miniz message misleads
            raise ValueError(
                f"{flag} {path}: not a TorchScript file (one written by torch.jit.save; "
                "a state dict or a training checkpoint will not do)"
            ) from None
        raise ValueError(f"{flag} {path}: cannot be loaded: {describe_error(error)}") from None
    return module.eval()


def probe_images(count: int = 2) -> list[np.ndarray]:
    return list(np.random.default_rng(0).integers(0, 256, (count, PROBE_SIZE, PROBE_SIZE, 3), dtype=np.uint8))


def runs_of_one_shape(images: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Consecutive images of one size stacked (N, H, W, C): a split may mix sizes, a batch cannot."""
    for _, run in groupby(images, key=lambda image: image.shape):
        yield np.stack(list(run))


def to_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 holding 0..255."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).to(device, torch.float32)


def call_module(
    module: torch.jit.ScriptModule, flag: str, path: Path, *inputs: torch.Tensor, **options: bool
) -> object:
    try:
        return module(*inputs, **options)
    except Exception as error:  # whatever the foreign module raises, name the flag and the file
        raise ValueError(f"{flag} {path}: the module failed: {describe_error(error)}") from None


def describe_output(output: object) -> str:
    return str(tuple(output.shape)) if isinstance(output, torch.Tensor) else type(output).__name__


@dataclass(frozen=True)
class FeatureExtractor:
    """The FID's feature network: 8-bit images -> one feature vector each."""

    path: Path
    module: torch.jit.ScriptModule
    device: torch.device
    takes_return_features: bool

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> FeatureExtractor:
        """Load and probe `path`; raises ValueError naming --fid-weights and the file when it does not fit."""
        resolved = resolve_device(device)
        module = load_torchscript(path, FID_FLAG, resolved)
        forward = module.forward
        assert isinstance(forward, torch.ScriptMethod)  # a loaded TorchScript module's methods are compiled
        arguments = {argument.name for argument in forward.schema.arguments}
        extractor = cls(path, module, resolved, "return_features" in arguments)
        extractor.extract(probe_images())
        return extractor

    @torch.inference_mode()
    def extract(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, F) float64 features of (H, W, 3) uint8 images."""
        options = {"return_features": True} if self.takes_return_features else {}
        features = []
        for run in runs_of_one_shape(images):
            output = call_module(self.module, FID_FLAG, self.path, to_batch(run, self.device), **options)
            if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != len(run):
                raise ValueError(
                    f"{FID_FLAG} {self.path}: returned {describe_output(output)} for {len(run)} images; "
                    "expected (N, F) features"
                )
            features.append(output.double().cpu().numpy())
        return np.concatenate(features)


@dataclass(frozen=True)
class LpipsModel:
    """A learned perceptual distance between each output and its target."""

    path: Path
    module: torch.jit.ScriptModule
    device: torch.device

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> LpipsModel:
        """Load and probe `path`; raises ValueError naming --lpips-weights and the file when it does not fit."""
        resolved = resolve_device(device)
        model = cls(path, load_torchscript(path, LPIPS_FLAG, resolved), resolved)
        images = probe_images()
        model.measure(images, images[::-1])
        return model

    @torch.inference_mode()
    def measure(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[float]:
        """One distance per (output, target) pair of (H, W, 3) uint8 images of equal size."""
        if [o.shape for o in outputs] != [t.shape for t in targets]:
            raise ValueError("LPIPS compares pairs of images of equal size")
        distances: list[float] = []
        for output_run, target_run in zip(runs_of_one_shape(outputs), runs_of_one_shape(targets)):
            pair = (to_batch(run, self.device) / 127.5 - 1 for run in (output_run, target_run))  # to [-1, 1]
            output = call_module(self.module, LPIPS_FLAG, self.path, *pair)
            count = len(output_run)
            if not isinstance(output, torch.Tensor) or output.shape[:1] != (count,) or output.numel() != count:
                raise ValueError(
                    f"{LPIPS_FLAG} {self.path}: returned {describe_output(output)} for {count} pairs; "
                    "expected (N,) or (N, 1, 1, 1) distances"
                )
            distances += output.double().flatten().cpu().tolist()
        return distances


@dataclass(frozen=True)
class PerceptualModels:
    """The networks `pix2pix eval` was pointed at; None where no file was given (the metric is skipped)."""

    fid: FeatureExtractor | None = None
    lpips: LpipsModel | None = None


def load_perceptual_models(
    fid_weights: Path | None, lpips_weights: Path | None, device: str = "cpu"
) -> PerceptualModels:
    return PerceptualModels(
        FeatureExtractor.load(fid_weights, device) if fid_weights else None,
        LpipsModel.load(lpips_weights, device) if lpips_weights else None,
    )


def compute_frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two (N, F) feature sets.

    Sample covariances (n - 1), as the TTUR reference, pytorch-fid and clean-fid. tr((S_a S_b)^(1/2))
    is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2): the eigenvalues of
    S_a S_b, from a symmetric matrix, so no complex round-off when n < F leaves S singular.
    """
    if features_a.ndim != 2 or features_a.shape[1:] != features_b.shape[1:]:
        raise ValueError(f"feature sets of shapes {features_a.shape} and {features_b.shape} cannot be compared")
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("the FID needs at least 2 images on each side")
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov_a)
    sqrt_a = (eigenvectors * np.sqrt(eigenvalues.clip(min=0))) @ eigenvectors.T
    trace_sqrt = np.sqrt(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clip(min=0)).sum()
    distance = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
    return max(distance, 0.0)  # identical sets can land a rounding error below zero
