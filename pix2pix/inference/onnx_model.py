"""Exported `.onnx` generators run by onnxruntime, without PyTorch.

A deployment of an exported model needs onnxruntime, numpy and Pillow (and scikit-image for Lab
models), no PyTorch: `OnnxPix2Pix.from_file("model.onnx").translate(image)`, or `pix2pix serve --checkpoint model.onnx`.
Nothing here imports torch, directly or through another pix2pix module; the image handling is
pix2pix.inference.translator's, shared with the torch backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.inference.translator import ImageTranslator

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from torch import Tensor

REQUIRED_METADATA = ("config", "stride", "dropout", "norm_stats")


class OnnxPix2Pix(ImageTranslator):
    """A generator exported by `pix2pix export --format onnx`; it runs only in the mode it was exported in."""

    backend = "onnxruntime"

    def __init__(
        self, session: InferenceSession, config: RunConfig, *, stride: int, dropout: bool, norm_stats: str, source: Path
    ):
        self.session = session  # run() is thread-safe: the server's workers share it
        self.input_name = session.get_inputs()[0].name
        self.config = config
        self.dropout = dropout
        self.norm_stats = norm_stats
        self.source = source
        self._stride = stride

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "auto") -> OnnxPix2Pix:
        """Open a file written by `pix2pix export --format onnx`; `device` "cpu" keeps to the CPU provider
        (else onnxruntime's best available, e.g. CUDA)."""
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model not found")
        providers = ["CPUExecutionProvider"] if device == "cpu" else onnxruntime.get_available_providers()
        try:
            session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:
            message = " ".join(str(error).split())[:200]
            raise ValueError(f"{path}: not a readable ONNX model ({message})") from error
        metadata = session.get_modelmeta().custom_metadata_map
        missing = [key for key in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise ValueError(f"{path}: no pix2pix metadata ({', '.join(missing)}); write it with `pix2pix export`")
        return cls(
            session,
            RunConfig.from_dict(json.loads(metadata["config"])),
            stride=int(metadata["stride"]),
            dropout=metadata["dropout"] == "on",
            norm_stats=metadata["norm_stats"],
            source=path,
        )

    @property
    def stride(self) -> int:
        return self._stride

    def translate(
        self, image: Image.Image, *, dropout: bool | None = None, norm_stats: str | None = None, seed: int | None = 0
    ) -> Image.Image:
        """As `ImageTranslator.translate`; the mode defaults to the exported one, the only one the file can run."""
        dropout, norm_stats = self.mode_or_default(dropout, norm_stats)
        return super().translate(image, dropout=dropout, norm_stats=norm_stats, seed=seed)

    def mode_or_default(self, dropout: bool | None, norm_stats: str | None) -> tuple[bool, str]:
        """The mode asked for, with the exported one (the only one the file runs) wherever a keyword is None."""
        return (self.dropout if dropout is None else dropout), (norm_stats or self.norm_stats)

    def translate_array(
        self,
        batch: np.ndarray,
        *,
        dropout: bool | None = None,
        norm_stats: str | None = None,
        seed: int | None = 0,
    ) -> np.ndarray:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W); `seed` is unused (the exported mode has no noise)."""
        self.check_mode(*self.mode_or_default(dropout, norm_stats))
        self.check_batch(np.shape(batch))
        (target,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return target

    def translate_tensor(
        self, batch: Tensor, *, dropout: bool | None = None, norm_stats: str | None = None, seed: int | None = 0
    ) -> Tensor:
        """`translate_array` for callers holding torch tensors (parity tests, benchmarks), which have torch."""
        import torch

        source = batch.detach().cpu().numpy()
        return torch.from_numpy(self.translate_array(source, dropout=dropout, norm_stats=norm_stats, seed=seed))

    def batch_coupling(self, *, dropout: bool, norm_stats: str) -> str | None:
        self.check_mode(dropout, norm_stats)
        return None  # the only exportable mode: running statistics, no dropout, so images never interact

    def check_mode(self, dropout: bool, norm_stats: str) -> None:
        if dropout != self.dropout or norm_stats != self.norm_stats:
            exported = f"dropout {'on' if self.dropout else 'off'}, {self.norm_stats} norm statistics"
            asked = f"dropout {'on' if dropout else 'off'}, {norm_stats} norm statistics"
            raise ValueError(
                f"{self.source}: exported with {exported}, cannot translate with {asked} "
                "(use the checkpoint, or a TorchScript export, for other modes)"
            )
