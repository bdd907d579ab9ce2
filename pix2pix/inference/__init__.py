"""The one inference entry point: `load_model(path).translate(image)` (or `Pix2Pix.load`, the same).

Used by `pix2pix test`, evaluation, export and the web demo.

  translator.py   ImageTranslator: image -> network input array -> output -> image, torch-free
  torch_model.py  Pix2Pix: our checkpoints and official state dicts, run in PyTorch
  onnx_model.py   OnnxPix2Pix: `.onnx` exports, run in onnxruntime without torch
  formats.py      load_model: opens any model file; the one check of which kind it is
  folders.py      translate_to_folder: folders or dataset splits to images and an index.html (`pix2pix test`)

Names are imported on first use (PEP 562), so importing this package, or its torch-free modules
(translator, onnx_model, formats for an .onnx file), loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pix2pix.lazy import lazy_exports

if TYPE_CHECKING:
    from pix2pix.inference.folders import translate_to_folder
    from pix2pix.inference.formats import load_model
    from pix2pix.inference.onnx_model import OnnxPix2Pix
    from pix2pix.inference.torch_model import Pix2Pix
    from pix2pix.inference.translator import ImageTranslator

__all__ = ["ImageTranslator", "OnnxPix2Pix", "Pix2Pix", "load_model", "translate_to_folder"]
_LAZY = {
    "ImageTranslator": "pix2pix.inference.translator",
    "OnnxPix2Pix": "pix2pix.inference.onnx_model",
    "Pix2Pix": "pix2pix.inference.torch_model",
    "load_model": "pix2pix.inference.formats",
    "translate_to_folder": "pix2pix.inference.folders",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
