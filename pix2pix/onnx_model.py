"""Torch-free inference: the image side of translation, and exported `.onnx` generators run by onnxruntime.

A deployment of an exported model needs onnxruntime, numpy and Pillow (and scikit-image for Lab
models), no PyTorch: `OnnxPix2Pix.from_file("model.onnx").translate(image)`, or `pix2pix serve --checkpoint model.onnx`.
Nothing here imports torch, directly or through another pix2pix module.

`ImageTranslator` turns a PIL image into the network's input array and the output array back into an
image; both backends inherit it (`Pix2Pix`, torch, in pix2pix.inference; `OnnxPix2Pix` here), so they
translate images identically and differ only in how the network runs. The conversions come from the
torch-free modules of pix2pix.data (images, lab).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.data.images import array_to_image, convert_channels, image_to_array, resize_for_inference
from pix2pix.data.lab import image_to_lab_array, lab_array_to_image
from pix2pix.data.transforms import test_time_size

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from torch import Tensor

REQUIRED_METADATA = ("config", "stride", "dropout", "norm_stats")


def is_onnx_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


class ImageTranslator:
    """PIL image -> network input (C, H, W) in [-1, 1] -> network output -> PIL image of the input's size.

    Subclasses provide `config`, `stride`, `translate_array` and `batch_coupling`.
    """

    config: RunConfig
    backend: str  # "torch" or "onnxruntime", for /info and logs

    @property
    def stride(self) -> int:
        raise NotImplementedError

    def translate_array(
        self, batch: np.ndarray, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> np.ndarray:
        """(B, in, H, W) float32 in [-1, 1] -> (B, out, H, W); H and W must be multiples of `stride`."""
        raise NotImplementedError

    def batch_coupling(self, *, dropout: bool, norm_stats: str) -> str | None:
        """Why, in this mode, images translated in one batch would change each other's results; None
        when each gets exactly what it gets alone (then requests may be batched)."""
        raise NotImplementedError

    def network_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) the network sees for an input of `size`: as at the end of training."""
        data = self.config.data
        options = {"preprocess": data.preprocess, "load_size": data.load_size, "crop_size": data.crop_size}
        return test_time_size(size, size_multiple=self.stride, **options)

    def prepare_source(self, image: Image.Image) -> np.ndarray:
        """The network input for `image`: (in_channels, H, W) float32 at `network_size`; Lab models see L."""
        if self.config.data.color_space == "lab":
            rgb = image.convert("RGB")
            return image_to_lab_array(resize_for_inference(rgb, self.network_size(rgb.size)))[:1]
        source = convert_channels(image, self.config.model.in_channels)
        return image_to_array(resize_for_inference(source, self.network_size(source.size)))

    def finish_output(self, output: np.ndarray, image: Image.Image) -> Image.Image:
        """The network's output (out_channels, H, W) for `image` as an image of `image`'s size.

        Lab models predict ab at the network size; it is joined to the image's own full-size L, so
        the output keeps the input's luminance (and is RGB).
        """
        if self.config.data.color_space == "lab":
            rgb = image.convert("RGB")
            ab = resize_bilinear(output, rgb.height, rgb.width)
            return lab_array_to_image(np.concatenate([image_to_lab_array(rgb)[:1], ab]))
        result = array_to_image(output)
        return result if result.size == image.size else result.resize(image.size, Image.Resampling.BICUBIC)

    def translate_many(self, sources: list[np.ndarray], **mode: Any) -> list[np.ndarray]:
        """Network outputs for `prepare_source` results of one shape, run as one batch; `mode` is
        `translate_array`'s keywords (dropout, norm_stats, seed)."""
        return list(self.translate_array(np.stack(sources), **mode))

    def translate(
        self, image: Image.Image, *, dropout: bool = True, norm_stats: str = "batch", seed: int | None = 0
    ) -> Image.Image:
        """Translate one image; the output has the input's size.

        Defaults follow the paper's protocol (dropout on, batch statistics); `seed` fixes the dropout
        draw (None leaves the global RNG alone). `dropout=False, norm_stats="running"` is the
        deterministic evaluation mode. Lab (colorization) models return an RGB image.
        """
        (output,) = self.translate_many([self.prepare_source(image)], dropout=dropout, norm_stats=norm_stats, seed=seed)
        return self.finish_output(output, image)


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
        return super().translate(
            image,
            dropout=self.dropout if dropout is None else dropout,
            norm_stats=norm_stats or self.norm_stats,
            seed=seed,
        )

    def translate_array(
        self,
        batch: np.ndarray,
        *,
        dropout: bool | None = None,
        norm_stats: str | None = None,
        seed: int | None = 0,
    ) -> np.ndarray:
        """(B, in, H, W) in [-1, 1] -> (B, out, H, W); `seed` is unused (the exported mode has no noise)."""
        self.check_mode(self.dropout if dropout is None else dropout, norm_stats or self.norm_stats)
        height, width = batch.shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"input size {height}x{width} (HxW) is not divisible by the stride {self.stride}")
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


def resize_bilinear(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) -> (C, height, width) by bilinear interpolation of pixel centres (torch's
    `F.interpolate(mode="bilinear", align_corners=False)`)."""

    def taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
        low = position.astype(np.int64)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (position - low).astype(np.float32)

    row_low, row_high, row_weight = taps(height, array.shape[1])
    col_low, col_high, col_weight = taps(width, array.shape[2])
    rows = array[:, row_low] * (1 - row_weight)[:, None] + array[:, row_high] * row_weight[:, None]
    return rows[:, :, col_low] * (1 - col_weight) + rows[:, :, col_high] * col_weight
