"""pix2pix: paired image-to-image translation with conditional GANs (Isola et al., 2017)."""

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning. On a machine whose cores are
# shared (laptops, CI, other jobs) spinning threads fight the busy ones; measured here, a training step
# was up to 18x faster under load (see the README's performance section). Same results; a user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pix2pix.config import RunConfig  # noqa: E402
from pix2pix.inference import Pix2Pix  # noqa: E402

__all__ = ["Pix2Pix", "RunConfig"]
__version__ = "0.1.0"
