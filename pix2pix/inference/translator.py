"""The torch-free image side of translation, shared by every backend.

`ImageTranslator` turns a PIL image into the network's input array and the output array back into an
image; `Pix2Pix` (torch, pix2pix.inference.torch_model) and `OnnxPix2Pix` (onnxruntime,
pix2pix.inference.onnx_model) inherit it, so they translate images identically and differ only in how
the network runs. The conversions come from the torch-free modules of pix2pix.data (images, lab).
Nothing here imports torch, directly or through another pix2pix module.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
from PIL import Image

from pix2pix.config import RunConfig
from pix2pix.data.images import array_to_image, convert_channels, image_to_array, resize_for_inference
from pix2pix.data.lab import image_to_lab_array, lab_array_to_image
from pix2pix.data.transforms import PreprocessOptions, test_time_size

RUNTIMES = ("auto", "torch", "onnxruntime")  # the engines `Pix2Pix.runtime` may name


class TranslationMode(TypedDict):
    """The test-time mode as one value: the keywords of `translate` and `translate_array`."""

    dropout: bool
    norm_stats: str
    seed: int | None


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

    def check_batch(self, shape: tuple[int, ...]) -> None:
        """A ValueError unless `shape` is (B, in_channels, H, W) with H and W multiples of `stride`."""
        channels = self.config.model.in_channels
        if len(shape) != 4 or shape[1] != channels:
            raise ValueError(f"expected a batch of shape (B, {channels}, H, W), got {tuple(shape)}")
        height, width = shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"input size {height}x{width} (HxW) is not divisible by the stride {self.stride}")

    def runtime_for(self, *, dropout: bool, norm_stats: str) -> str:
        """The engine that translates in this mode ("torch" or "onnxruntime"), for /info and logs."""
        return self.backend

    def mode_or_default(self, dropout: bool | None, norm_stats: str | None) -> tuple[bool, str]:
        """The mode asked for, with this model's default wherever a keyword is None: the paper's protocol
        (dropout on, batch statistics); an export's default is the mode it was exported in."""
        return (True if dropout is None else dropout), (norm_stats or "batch")

    def batch_coupling(self, *, dropout: bool, norm_stats: str) -> str | None:
        """Why, in this mode, images translated in one batch would change each other's results; None
        when each gets exactly what it gets alone (then requests may be batched)."""
        raise NotImplementedError

    def network_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) the network sees for an input of `size`: as at the end of training."""
        data = self.config.data
        options: PreprocessOptions = {
            "preprocess": data.preprocess,
            "load_size": data.load_size,
            "crop_size": data.crop_size,
        }
        width, height = test_time_size(size, size_multiple=self.stride, **options)
        # a ResNet reflection-pads its residual blocks' maps (H/4 x W/4) by 1, which needs 2 pixels a side
        least = 2 * self.stride if self.config.model.generator.startswith("resnet") else self.stride
        return max(width, least), max(height, least)

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
        if not np.isfinite(output).all():  # else NaN would be saved, and scored, as black pixels
            raise ValueError(
                "the network's output holds NaN or inf: its weights have diverged; use an earlier checkpoint"
            )
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

    def translate_batch(self, images: list[Image.Image], **mode: Any) -> list[Image.Image]:
        """Translate several images with one forward pass per network size; `mode` is `translate`'s
        keywords (a mode left out is `mode_or_default`'s). Only for a mode in which batching changes no
        result (`batch_coupling` is None): then each output is the one `translate` gives alone."""
        dropout, norm_stats = self.mode_or_default(mode.pop("dropout", None), mode.pop("norm_stats", None))
        coupling = self.batch_coupling(dropout=dropout, norm_stats=norm_stats)
        if coupling is not None:
            raise ValueError(f"cannot translate a batch in this mode: {coupling}")
        mode.update(dropout=dropout, norm_stats=norm_stats)
        sources = [self.prepare_source(image) for image in images]
        outputs: dict[int, np.ndarray] = {}
        for shape in dict.fromkeys(source.shape for source in sources):  # each size once, in order of appearance
            indices = [i for i, source in enumerate(sources) if source.shape == shape]
            outputs.update(zip(indices, self.translate_many([sources[i] for i in indices], **mode)))
        return [self.finish_output(outputs[i], image) for i, image in enumerate(images)]

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
