"""`Pix2Pix`: a trained generator from our checkpoints, official state dicts or the released models, run in
PyTorch or, where onnxruntime is installed and gives the same outputs faster, in onnxruntime from a cached
export (`runtime_for` chooses; protocol_onnx.py covers the paper's protocol).

Its image handling is pix2pix.inference.translator's, shared with the onnxruntime backend; `load`
opens any model file through pix2pix.inference.formats.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from pix2pix import __version__
from pix2pix.cache import cache_home, mark_used, prune_least_recently_used
from pix2pix.checkpoint import checkpoint_config, is_our_checkpoint, read_checkpoint_file, resolve_checkpoint
from pix2pix.config import DataConfig, ModelConfig, RunConfig
from pix2pix.devices import resolve_device
from pix2pix.inference.formats import load_model
from pix2pix.inference.onnx_export import ONNX_OPSET, export_onnx
from pix2pix.inference.onnx_model import OnnxPix2Pix
from pix2pix.inference.pretrained import download_pretrained, pretrained_entry
from pix2pix.inference.protocol_onnx import ProtocolSession, export_protocol_onnx
from pix2pix.inference.translator import RUNTIMES, ImageTranslator
from pix2pix.networks import build_generator_for, reverse_domains
from pix2pix.nn.fold import fold_batch_norm
from pix2pix.nn.generators import generator_stride
from pix2pix.nn.modes import run_for_inference, set_inference_mode
from pix2pix.nn.official import convert_official_state_dict, describe_official_generator
from pix2pix.nn.registry import build_generator

logger = logging.getLogger(__name__)


def onnxruntime_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def load_generator_weights(network: nn.Module, weights: object, path: Path) -> nn.Module:
    """`network` with the generator weights of the checkpoint at `path`; an edited or damaged checkpoint
    is one ValueError naming the file, not a KeyError or load_state_dict's page of missing keys."""
    if not isinstance(weights, dict):
        raise ValueError(f"{path}: a pix2pix checkpoint without its generator's weights (damaged or edited)")
    try:
        network.load_state_dict(weights)
    except RuntimeError as error:  # names or shapes that the saved config's network does not have
        reason = textwrap.shorten(str(error).strip().splitlines()[-1], 240, placeholder=" ...")
        message = f"{path}: the generator's weights do not fit the network its config describes ({reason})"
        raise ValueError(message) from None
    return network


Opened = TypeVar("Opened")


# the ONNX cache keeps its most recently used exports up to this total (the paper's U-Net: 218 MB each)
ONNX_CACHE_BYTES = 2 * 2**30


def open_cached(path: Path, export: Callable[[], object], open_file: Callable[[Path], Opened]) -> Opened:
    """Open the cached export at `path`, exporting it first if it is missing (and then pruning the cache to
    ONNX_CACHE_BYTES); a cached file that does not open (cut short, from a broken write) is exported
    again, once."""
    if path.exists():
        mark_used(path)
    else:
        export()
        prune_least_recently_used(path.parent, "*.onnx", ONNX_CACHE_BYTES, keep=path)
    try:
        return open_file(path)
    except Exception:  # whatever onnxruntime raises for a file it cannot read
        path.unlink(missing_ok=True)
        export()
        return open_file(path)


class Pix2Pix(ImageTranslator):
    """A trained generator with its config, translating PIL images to PIL images."""

    backend = "torch"

    def __init__(self, generator: nn.Module, config: RunConfig, device: torch.device, runtime: str = "auto"):
        self.generator = generator.to(device)
        self.config = config
        self.device = device
        self.runtime = runtime  # "auto", "torch" or "onnxruntime": see runtime_for
        # built on first use; each assumes `generator` is not trained further
        self._folded: nn.Module | None = None
        self._onnx: OnnxPix2Pix | None = None
        self._protocol: ProtocolSession | None = None
        self._onnx_failed = False  # runtime "auto" after a failed export: torch from then on
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        netg: str | None = None,
        norm: str | None = None,
        runtime: str = "auto",
        reverse: bool = False,
    ) -> Pix2Pix | OnnxPix2Pix:
        """Load a run folder, one of our checkpoints, an official state dict, or `pretrained:NAME`.

        `netg` and `norm` are optional hints for official files (they are inferred from the keys).
        A `.onnx` file from `pix2pix export` gives an onnxruntime-backed model with the same interface.
        (The same as `pix2pix.inference.load_model`.)
        """
        return load_model(path, device=device, netg=netg, norm=norm, runtime=runtime, reverse=reverse)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        netg: str | None = None,
        norm: str | None = None,
        generator: str = "a",
    ) -> Pix2Pix:
        """A run folder (its newest readable checkpoint), one of our checkpoints, or an official state dict.

        `generator="b"`: a CycleGAN run's B -> A generator (G_B) instead of its A -> B one."""
        if generator not in ("a", "b"):
            raise ValueError(f"generator {generator!r}: expected 'a' (A -> B) or 'b' (B -> A)")
        target_device = resolve_device(device)
        path = resolve_checkpoint(path)
        state = read_checkpoint_file(path)
        if is_our_checkpoint(state):
            config = checkpoint_config(state, path)
            # a run with --ema-decay translates with the moving average of its weights
            weights = state.get("generator_ema") or state.get("generator")
            if generator == "b":
                if "generator_b" not in state:
                    raise ValueError(f"{path}: not a CycleGAN run, so it has no B -> A generator")
                config, weights = reverse_domains(config), state["generator_b"]
            return cls(load_generator_weights(build_generator_for(config), weights, path), config, target_device)
        if generator == "b":  # an official CycleGAN run saves G_B in a file of its own
            raise ValueError(f"{path}: an official state dict holds one generator; load latest_net_G_B.pth for B -> A")
        try:
            return cls.from_official_state_dict(state, target_device, netg=netg, norm=norm)
        except ValueError as error:  # which file it was, beside what is wrong with it
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def from_pretrained(cls, name: str, *, device: str = "auto", progress: bool = True) -> Pix2Pix:
        """A generator the paper's authors released (`pix2pix models list`), downloaded into the cache on first
        use and checked against its recorded SHA-256 on every load; `name` with or without `pretrained:`."""
        entry = pretrained_entry(name)
        state = read_checkpoint_file(download_pretrained(entry.name, progress=progress))
        return cls.from_official_state_dict(state, resolve_device(device), data=entry.data_config())

    @classmethod
    def from_official_state_dict(
        cls,
        state_dict: dict,
        device: torch.device,
        *,
        netg: str | None = None,
        norm: str | None = None,
        data: DataConfig | None = None,
    ) -> Pix2Pix:
        """`data`: what the file does not record (a pretrained model's dataset, direction and size)."""
        spec = describe_official_generator(state_dict, netg=netg, norm=norm)
        generator = build_generator(**spec)
        generator.load_state_dict(convert_official_state_dict(state_dict, generator))
        model = ModelConfig(
            in_channels=spec["in_channels"],
            out_channels=spec["out_channels"],
            generator=spec["name"],
            base_channels=spec["base_channels"],
            norm=spec["norm"],
            dropout=spec["dropout"],
        )
        # data "": an official file records no dataset, so nothing downstream assumes the built-in one
        # (eval asks for --data, serve offers no label palette)
        data = data or DataConfig(data="", crop_size=spec["image_size"], load_size=spec["image_size"])
        config = RunConfig(data=data, model=model)
        return cls(generator, config, device)

    @property
    def stride(self) -> int:
        return generator_stride(self.generator)

    def runtime_for(self, *, dropout: bool, norm_stats: str) -> str:
        """The engine that translates in this mode. With `runtime="auto"` on the CPU, when onnxruntime is
        installed (the `export` extra), the deterministic mode (dropout off, running statistics) and the
        batch-statistics modes (the paper's protocol) run in onnxruntime, 1.3-2.3x eager PyTorch by CPU
        (docs/performance.md); the latter one image at a time (a batch of several runs in torch, whose batch
        norm then spans the batch). Running statistics with dropout, and `runtime="torch"`, run in PyTorch;
        `runtime="onnxruntime"` insists, and refuses that one mode."""
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r}: expected one of {', '.join(RUNTIMES)}")
        expressible = norm_stats == "batch" or not dropout
        if self.runtime == "onnxruntime":
            if not expressible:
                raise ValueError("runtime onnxruntime cannot run dropout with running statistics; use torch")
            return "onnxruntime"
        if self.runtime == "auto" and expressible and self.device.type == "cpu" and onnxruntime_installed():
            return "onnxruntime"
        return "torch"

    def onnx_output(self, batch: np.ndarray, *, dropout: bool, norm_stats: str, seed: int | None) -> np.ndarray | None:
        """The output from onnxruntime when `runtime_for` picks it for this mode and batch, else None. With
        `runtime="auto"`, an export or session that fails (a read-only cache, a broken install) is one
        warning and torch from then on, never a failed translation."""
        if self.runtime_for(dropout=dropout, norm_stats=norm_stats) != "onnxruntime" or self._onnx_failed:
            return None
        if norm_stats == "batch" and len(batch) != 1:
            return None
        try:  # only making the engine may turn onnxruntime off: a bad batch is the caller's error, not its
            engine = self.onnx_twin() if norm_stats == "running" else self.protocol_session()
        except Exception as error:  # onnxruntime's own errors derive from Exception alone
            if self.runtime != "auto":
                raise
            self._onnx_failed = True
            logger.warning("onnxruntime unavailable (%s); translating in torch", " ".join(str(error).split())[:200])
            return None
        if isinstance(engine, OnnxPix2Pix):
            return engine.translate_array(batch, dropout=False, norm_stats="running")
        return engine.run(batch, dropout=dropout, seed=seed)

    def onnx_twin(self) -> OnnxPix2Pix:
        """This generator exported to ONNX in the deterministic mode and opened in onnxruntime. The export
        is cached in CACHE/onnx under a digest of the weights and config, so a model is exported once
        (about 3 s for the paper's U-Net on a 2-core CPU), not in every process that translates with it."""
        with self._lock:  # serve's worker threads may all ask first
            if self._onnx is None:
                path = cache_home() / "onnx" / f"{self.digest()}.onnx"
                self._onnx = open_cached(path, lambda: export_onnx(self, path), OnnxPix2Pix.from_file)
            return self._onnx

    def protocol_session(self) -> ProtocolSession:
        """The batch-statistics network in onnxruntime, dropout masks drawn by torch (inference.protocol_onnx);
        exported once, cached beside the deterministic export."""
        with self._lock:
            if self._protocol is None:
                path = cache_home() / "onnx" / f"{self.digest()}-protocol.onnx"
                channels = self.config.model.in_channels
                export = lambda: export_protocol_onnx(self.generator, channels, self.stride, path)  # noqa: E731
                self._protocol = open_cached(path, export, lambda file: ProtocolSession(self.generator, file))
            return self._protocol

    def digest(self) -> str:
        """SHA-256 of the config, the generator's weights and buffers, and the versions that shape an export
        (pix2pix, torch, the opset): what the ONNX cache is keyed by."""
        versions = f"{__version__} {torch.__version__} {ONNX_OPSET}"
        digest = hashlib.sha256(versions.encode())
        digest.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for name, tensor in self.generator.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def translate_array(
        self, batch: np.ndarray, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> np.ndarray:
        self.check_batch(np.shape(batch))
        output = self.onnx_output(batch, dropout=dropout, norm_stats=norm_stats, seed=seed)
        if output is not None:
            return output
        source = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.translate_tensor(source, dropout=dropout, norm_stats=norm_stats, seed=seed).float().cpu().numpy()

    @torch.inference_mode()
    def translate_tensor(
        self, batch: torch.Tensor, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> torch.Tensor:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W); H and W must be multiples of `stride`.

        The engine is `runtime_for`'s. In torch, with running statistics batch norm is a fixed affine map,
        so it runs merged into the convolution before it (`fold_batch_norm`: one pass over the activations
        less, the same result to float error).
        """
        self.check_batch(batch.shape)
        if not batch.is_floating_point():
            raise ValueError(f"expected a float batch in [-1, 1], got {batch.dtype}")
        batch = batch.float()  # the networks run in fp32 (an fp16, bf16 or fp64 batch too)
        if self.runtime_for(dropout=dropout, norm_stats=norm_stats) == "onnxruntime":
            output = self.onnx_output(batch.cpu().numpy(), dropout=dropout, norm_stats=norm_stats, seed=seed)
            if output is not None:
                return torch.from_numpy(output).to(batch.device)
        generator = self.folded_generator() if norm_stats == "running" else self.generator
        return run_for_inference(generator, batch, dropout=dropout, norm_stats=norm_stats, seed=seed)

    def folded_generator(self) -> nn.Module:
        if self._folded is None:
            self._folded = fold_batch_norm(set_inference_mode(self.generator, dropout=False, norm_stats="running"))
        return self._folded

    def batch_coupling(self, *, dropout: bool, norm_stats: str) -> str | None:
        modules = list(self.generator.modules())
        if norm_stats == "batch" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules):
            return "batch norm normalises with the statistics of the whole batch (norm_stats batch)"
        if dropout and any(isinstance(m, nn.Dropout) for m in modules):
            # alone, every image is translated with the same seeded draw; in a batch each gets another
            return "dropout draws depend on the batch (dropout on)"
        return None
