"""The generators the paper's authors released, by name: what each does and expects, and its download.

`pretrained:NAME` names one wherever a model file is taken (test, eval, export, serve, summary); the
first use downloads `NAME.pth` from the official model server (or `$PIX2PIX_MODELS_URL`) into
`cache_home()/pretrained/`, resuming an interrupted download, and records the file's SHA-256 beside
it. Every later load checks the file against that digest, so a file changed or cut short is refused,
never loaded. The official files are plain generator state dicts (unet_256, batch norm, 256 px), which
`pix2pix.nn.official` reads; what they do not record (direction, size, the dataset and so the label
palette) comes from the table here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pix2pix.cache import cache_home, taking_turns
from pix2pix.config import DataConfig, Direction
from pix2pix.data.tools.download import DownloadError, fetch_file, sha256_of

DEFAULT_URL = "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"
URL_VARIABLE = "PIX2PIX_MODELS_URL"
PREFIX = "pretrained:"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    task: str
    dataset: str  # the official dataset it was trained on: `pix2pix data download DATASET`
    direction: Direction  # which half of that dataset's pairs it translates from, as the official test command
    expects: str  # what input to give it
    size: int = 256  # it translates 256x256 images; others are resized to that and back

    def data_config(self) -> DataConfig:
        """Where `pix2pix data download` puts its dataset, the direction, and the official test-time resize."""
        return DataConfig(
            data=f"datasets/{self.dataset}", direction=self.direction, load_size=self.size, crop_size=self.size
        )


PRETRAINED = {
    model.name: model
    for model in (
        PretrainedModel(
            "facades_label2photo",
            "facade label map -> photo",
            "facades",
            "BtoA",
            "a label map in the CMP facades colours (the drawing palette of `pix2pix serve`)",
        ),
        PretrainedModel("sat2map", "aerial photo -> map", "maps", "AtoB", "a Google Maps satellite view"),
        PretrainedModel("map2sat", "map -> aerial photo", "maps", "BtoA", "a Google Maps street map"),
        PretrainedModel("edges2shoes", "edges -> shoe photo", "edges2shoes", "AtoB", "black shoe edges on white"),
        PretrainedModel("day2night", "daytime scene -> night", "night2day", "BtoA", "an outdoor photo by day"),
    )
}


def is_pretrained_name(path: str | os.PathLike[str]) -> bool:
    return str(path).startswith(PREFIX)


def pretrained_entry(name: str) -> PretrainedModel:
    """The table entry of `name` or `pretrained:name`; an unknown name is a ValueError listing the known ones."""
    name = name.removeprefix(PREFIX)
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)}")
    return PRETRAINED[name]


def models_url() -> str:
    url = os.environ.get(URL_VARIABLE, DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"${URL_VARIABLE} = {url!r}: must start with http:// or https://")
    return url


def cached_path(name: str) -> Path:
    return cache_home() / "pretrained" / f"{pretrained_entry(name).name}.pth"


def digest_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".sha256")


def download_pretrained(name: str, *, progress: bool = True, force: bool = False) -> Path:
    """The verified cached file of `name`, downloaded first if it is not cached (or `force`). Processes that
    ask for the same model at once take turns (an flock), so one downloads and the others find it cached."""
    path = cached_path(name)
    if path.exists() and digest_path(path).exists() and not force:
        verify(path)  # no lock needed to read: a shared, read-only cache works
        return path
    with taking_turns(path):
        if force:
            path.unlink(missing_ok=True)
            digest_path(path).unlink(missing_ok=True)
        if not path.exists():
            download(path, progress=progress)
            digest_path(path).write_text(sha256_of(path) + "\n")
            return path
        verify(path)
    return path


def download(path: Path, *, progress: bool) -> None:
    """Fetch the model file into `path` (resuming a partial download); refuse what is not a torch file."""
    url = f"{models_url()}/{path.name}"
    try:
        fetch_file(url, path, progress=progress)
    except DownloadError as error:
        raise DownloadError(
            f"{error}. Without network access, fetch {url} by hand and save it as {path}"
            f" (or point ${URL_VARIABLE} at a mirror)"
        ) from None
    with path.open("rb") as file:
        start = file.read(2)
    if start[:2] != b"PK" and start[:1] != b"\x80":  # torch.save's zip archive, or an older pickle
        path.unlink()
        raise DownloadError(f"{url}: the server answered with something that is not a model file; deleted it")


def verify(path: Path) -> None:
    """Refuse a cached file whose SHA-256 is not the one recorded when it arrived. A file put there by hand
    (the offline route) has none yet: its digest is recorded now, and checked from then on."""
    recorded_file = digest_path(path)
    actual = sha256_of(path)
    if not recorded_file.exists():
        recorded_file.write_text(actual + "\n")
        logger.info("%s: recorded its SHA-256 %s", path, actual)
        return
    recorded = recorded_file.read_text().strip()
    if actual != recorded:
        raise DownloadError(
            f"{path}: SHA-256 {actual[:16]}... differs from {recorded[:16]}... recorded when it was downloaded "
            f"(the file changed or was cut short); refusing to load it. Download it again with: "
            f"pix2pix models download {path.stem} --force"
        )
