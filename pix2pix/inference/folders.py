"""Translate a folder or a dataset split to a folder of images with an index.html (`pix2pix test`), with
any backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from pix2pix.atomic import write_atomically
from pix2pix.data.images import DataError, list_images, load_image
from pix2pix.data.lab import image_to_gray
from pix2pix.data.layout import PairFile, find_pairs, load_pair
from pix2pix.inference.translator import ImageTranslator
from pix2pix.visuals import write_index_html


@dataclass(frozen=True)
class TestItem:
    name: str
    source: Image.Image
    target: Image.Image | None


def list_inputs(path: Path, *, split: str, paired: bool) -> tuple[list[PairFile], list[Path]]:
    """Pairs from a dataset (root with `split`, a split folder with A/ and B/, or `paired`), else plain images."""
    if path.is_file():
        return [], [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: input not found")
    if (path / split).is_dir():
        return find_pairs(path, split), []
    if paired or ((path / "A").is_dir() and (path / "B").is_dir()):
        return find_pairs(path.parent, path.name), []
    images = list(list_images(path).values())
    if not images:
        folders = sorted(child.name for child in path.iterdir() if child.is_dir())
        hint = f"; it holds {', '.join(folders)}: pass --split NAME or one of those folders" if folders else ""
        raise DataError(f"{path}: no images found and no {split}/ split{hint}")
    return [], images


def iterate_items(model: ImageTranslator, pairs: list[PairFile], images: list[Path]) -> Iterator[TestItem]:
    """Decode lazily so a large split never sits in memory."""
    channels = model.config.model
    if model.config.data.color_space == "lab":
        yield from iterate_colorization_items(model, pairs, images)
        return
    for pair in pairs:
        source, target = load_pair(
            pair,
            direction=model.config.data.direction,
            in_channels=channels.in_channels,
            out_channels=channels.out_channels,
        )
        yield TestItem(pair.name, source, target)
    for path in images:
        yield TestItem(path.stem, load_image(path, channels.in_channels), None)


def iterate_colorization_items(model: ImageTranslator, pairs: list[PairFile], images: list[Path]) -> Iterator[TestItem]:
    """Lab models: the input is the gray (L only) version of the photo, the target the photo itself (RGB)."""
    for pair in pairs:
        _, photo = load_pair(pair, direction=model.config.data.direction, in_channels=3, out_channels=3)
        yield TestItem(pair.name, image_to_gray(photo), photo)
    for path in images:
        yield TestItem(path.stem, image_to_gray(load_image(path, 3)), None)


def refuse_to_overwrite_inputs(output: Path, pairs: list[PairFile], images: list[Path], *, samples: int) -> None:
    """`--output` the input folder itself (or a split of the dataset being read) would replace the
    originals by their translations: refused before anything is written."""
    inputs = {path.resolve() for pair in pairs for path in (pair.a_path, pair.b_path) if path is not None}
    inputs |= {path.resolve() for path in images}
    names = [pair.name for pair in pairs] + [path.stem for path in images]
    for name in names:
        written = [output / "inputs" / f"{name}.png", output / "targets" / f"{name}.png"]
        written += [output / file for file in result_files(name, samples)]
        for path in written:
            if path.resolve() in inputs:
                raise ValueError(f"--output {output} would overwrite the input {path}; write to another folder")


BATCH = 8  # images per forward pass when batching changes no result
# the output files of the folder's latest translation, so that `eval --results` measures those and not
# what an earlier translation of other images left beside them
MANIFEST = "translated.json"


def chunks(items: Iterator[TestItem], size: int) -> Iterator[list[TestItem]]:
    chunk: list[TestItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def result_files(name: str, samples: int) -> list[str]:
    """Where one input's translations go: NAME.png, or NAME_sampleK.png for several samples."""
    return [f"{name}.png"] if samples == 1 else [f"{name}_sample{k}.png" for k in range(samples)]


def save_item(item: TestItem, results: list[Image.Image], output: Path) -> tuple[str, list[str]]:
    """Write the input, each result (`result_files`) and the target; the row of the index page."""
    cells = [f"inputs/{item.name}.png"]
    item.source.save(output / cells[0])
    for file, result in zip(result_files(item.name, len(results)), results, strict=True):
        cells.append(file)
        result.save(output / file)
    if item.target is not None:
        cells.append(f"targets/{item.name}.png")
        item.target.save(output / cells[-1])
    else:
        cells.append("")
    return item.name, cells


def translate_to_folder(
    model: ImageTranslator,
    input_path: Path,
    output: Path,
    *,
    split: str = "test",
    paired: bool = False,
    dropout: bool = True,
    norm_stats: str = "batch",
    seed: int = 0,
    samples: int = 1,
    progress: bool = True,
) -> Path:
    """Write output/NAME.png (or NAME_sampleK.png), inputs/, targets/ and index.html; returns the page.

    Where batching changes no result (the deterministic mode) images go through the network `BATCH` at a
    time; otherwise one by one, each with its own seeded dropout draw."""
    if samples < 1:
        raise ValueError(f"samples must be 1 or more, got {samples}")
    input_path, output = Path(input_path), Path(output)
    pairs, images = list_inputs(input_path, split=split, paired=paired)
    refuse_to_overwrite_inputs(output, pairs, images, samples=samples)
    for folder in ("inputs", "targets"):
        (output / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    items = iterate_items(model, pairs, images)
    uncoupled = model.batch_coupling(dropout=dropout, norm_stats=norm_stats) is None
    batch_size = BATCH if uncoupled and samples == 1 else 1
    with tqdm(total=len(pairs) + len(images), desc="translating", disable=not progress) as bar:
        for chunk in chunks(items, batch_size):
            sources = [item.source for item in chunk]
            if batch_size > 1:
                translated = model.translate_batch(sources, dropout=dropout, norm_stats=norm_stats, seed=seed)
                results = [[result] for result in translated]
            else:
                # each sample is one dropout draw; seed + k keeps every draw reproducible
                results = [
                    [
                        model.translate(source, dropout=dropout, norm_stats=norm_stats, seed=seed + k)
                        for k in range(samples)
                    ]
                    for source in sources
                ]
            rows += [save_item(item, outputs, output) for item, outputs in zip(chunk, results)]
            bar.update(len(chunk))
    written = [file for name, _ in rows for file in result_files(name, samples)]
    write_atomically(output / MANIFEST, lambda file: file.write(json.dumps({"outputs": written}).encode()))
    outputs = ["output"] if samples == 1 else [f"sample {k}" for k in range(samples)]
    page = output / "index.html"
    settings = f"dropout {'on' if dropout else 'off'}, norm stats {norm_stats}, seed {seed}"
    write_index_html(page, f"pix2pix: {input_path} ({settings})", ["input", *outputs, "target"], rows)
    return page
