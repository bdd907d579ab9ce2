"""pix2pix: paired image-to-image translation with conditional GANs (Isola et al., 2017)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pix2pix.lazy import lazy_exports  # imports nothing heavy, so it may come first

if TYPE_CHECKING:
    from pix2pix.config import RunConfig
    from pix2pix.inference.onnx_model import OnnxPix2Pix
    from pix2pix.inference.torch_model import Pix2Pix

__all__ = ["OnnxPix2Pix", "Pix2Pix", "RunConfig"]
__version__ = "0.1.0"  # the one place: pyproject.toml reads it (tool.setuptools.dynamic)

# Imported on first use, so `import pix2pix` loads no torch: an exported model runs with onnxruntime
# alone (`from pix2pix import OnnxPix2Pix`), and `pix2pix --help` stays fast.
_LAZY = {
    "Pix2Pix": "pix2pix.inference.torch_model",
    "OnnxPix2Pix": "pix2pix.inference.onnx_model",
    "RunConfig": "pix2pix.config",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

# Runtime events (a skipped image, a NaN roll-back, ...) go to the `pix2pix.*` loggers. A library adds no
# output of its own: the program decides where they go (the `pix2pix` command prints them to stderr).
logging.getLogger(__name__).addHandler(logging.NullHandler())
