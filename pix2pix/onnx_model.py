"""An exported `.onnx` generator run by onnxruntime, behind the `Pix2Pix` interface.

`Pix2Pix.load("model.onnx")` returns one. Image handling (channel conversion, resizing to the network
size and back) is inherited from `Pix2Pix`, so both backends translate images identically; only the
network call differs. The network runs in onnxruntime; torch is still imported by the package for the
tensor conversions around it (see the README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.export import INPUT_NAME
from pix2pix.inference import Pix2Pix
from pix2pix.nn.generators import check_divisible

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

REQUIRED_METADATA = ("config", "stride", "dropout", "norm_stats")


class OnnxPix2Pix(Pix2Pix):
    """A Pix2Pix whose generator is an onnxruntime session; it runs only in the mode it was exported in."""

    def __init__(
        self, session: InferenceSession, config: RunConfig, *, stride: int, dropout: bool, norm_stats: str, source: Path
    ):
        self.session = session  # run() is thread-safe: the server's workers share it
        self.config = config
        self.device = torch.device("cpu")  # inputs are handed to onnxruntime as numpy arrays
        self.dropout = dropout
        self.norm_stats = norm_stats
        self.source = source
        self._stride = stride

    @classmethod
    def from_file(cls, path: str | Path, *, device: str = "auto") -> OnnxPix2Pix:
        """Open a file written by `pix2pix export --format onnx`; `device` "cpu" keeps to the CPU provider."""
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ONNX model not found")
        providers = onnxruntime.get_available_providers()
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
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
        """As `Pix2Pix.translate`; the mode defaults to the exported one, the only one the file can run."""
        return super().translate(
            image,
            dropout=self.dropout if dropout is None else dropout,
            norm_stats=norm_stats or self.norm_stats,
            seed=seed,
        )

    def translate_tensor(
        self,
        batch: torch.Tensor,
        *,
        dropout: bool | None = None,
        norm_stats: str | None = None,
        seed: int | None = 0,
    ) -> torch.Tensor:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W); `seed` is unused (the exported mode has no noise)."""
        self.check_mode(self.dropout if dropout is None else dropout, norm_stats or self.norm_stats)
        check_divisible(batch, self.stride)
        source = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (target,) = self.session.run(None, {INPUT_NAME: source})
        return torch.from_numpy(target)

    def check_mode(self, dropout: bool, norm_stats: str) -> None:
        if dropout != self.dropout or norm_stats != self.norm_stats:
            exported = f"dropout {'on' if self.dropout else 'off'}, {self.norm_stats} norm statistics"
            asked = f"dropout {'on' if dropout else 'off'}, {norm_stats} norm statistics"
            raise ValueError(
                f"{self.source}: exported with {exported}, cannot translate with {asked} "
                "(use the checkpoint, or a TorchScript export, for other modes)"
            )
