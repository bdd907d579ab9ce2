"""pix2pix: paired image-to-image translation with conditional GANs (Isola et al., 2017)."""

from pix2pix.config import RunConfig
from pix2pix.inference import Pix2Pix

__all__ = ["Pix2Pix", "RunConfig"]
__version__ = "0.1.0"
