"""One evaluation, read top to bottom: translate a split (or take a `pix2pix test` folder), measure each
image, add LPIPS and FID when their networks are given and the FCN-score where one side is a label map,
write metrics.json, metrics.csv and the report.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pix2pix.checkpoint import run_folder_of
from pix2pix.config import other_direction
from pix2pix.data.builtin import resolve_data_root
from pix2pix.data.images import DataError, list_images, load_image
from pix2pix.data.layout import find_pairs
from pix2pix.data.tools.unpair import read_unpair_record
from pix2pix.evaluate import fcn_score
from pix2pix.evaluate.perceptual import FID_RELIABLE_IMAGES, PerceptualModels, compute_frechet_distance
from pix2pix.evaluate.report import OPTIONAL_METRICS, render_error_map, write_report
from pix2pix.inference.folders import MANIFEST, translate_to_folder
from pix2pix.inference.formats import load_model
from pix2pix.inference.translator import ImageTranslator
from pix2pix.metrics import METRICS, SSIM_SETTINGS, compute_image_metrics, summarize_rows

FCN_MODES = ("auto", "on", "off")
PERCEPTUAL_BATCH = 16  # images per forward of the LPIPS and FID networks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FcnOptions:
    """Whether and how to compute the FCN-score: "auto" computes it where a side is a label map."""

    mode: str = "auto"
    palette: fcn_score.Palette = fcn_score.FACADES_PALETTE
    segmenter: fcn_score.SegmenterSettings = fcn_score.SegmenterSettings()
    saved_segmenter: fcn_score.Segmenter | None = None  # a saved one (load_segmenter_file), instead of one trained

    def __post_init__(self) -> None:
        if self.mode not in FCN_MODES:
            raise ValueError(f"unknown FCN-score mode {self.mode!r}; expected one of {FCN_MODES}")


@dataclass(frozen=True)
class ImageFiles:
    """One evaluated image: the translation, its ground truth and (when saved) the input."""

    name: str
    output: Path
    target: Path
    input: Path | None


@dataclass
class Evaluation:
    """Everything one evaluation measured; `folder` holds its metrics.json, metrics.csv and index.html."""

    label: str
    folder: Path
    split: str
    rows: list[dict[str, Any]]  # per image: name, metrics, and the image paths ("input", "output", ...)
    summary: dict[str, dict[str, float]]  # metric -> {mean, ci_low, ci_high, n}
    fcn: dict[str, Any] | None = None
    fid: dict[str, Any] | None = None  # value, n_images, feature_dim, weights
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None  # the training run, for its loss curves

    @property
    def metric_names(self) -> list[str]:
        return [*METRICS, *(name for name in OPTIONAL_METRICS if name in self.summary)]


def list_result_images(folder: Path) -> list[ImageFiles]:
    """The NAME.png + targets/NAME.png (+ inputs/NAME.png) triples of a `pix2pix test` output folder: those
    of its latest translation where `pix2pix test` wrote the folder, else every image in it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: results folder not found")
    manifest = folder / MANIFEST
    if manifest.is_file():
        outputs = [folder / name for name in json.loads(manifest.read_text())["outputs"]]
    else:
        outputs = list(list_images(folder).values())
    if not outputs:
        raise DataError(f"{folder}: no translated images (NAME.png) found")
    items = []
    for output in outputs:
        if not output.is_file():
            raise DataError(f"{output}: missing, though {MANIFEST} lists it as translated")
        target = folder / "targets" / source_name(output, folder)
        if not target.exists():
            raise DataError(f"{target}: missing ground truth for {output.name} (run `pix2pix test` on a paired split)")
        source = folder / "inputs" / target.name
        items.append(ImageFiles(output.stem, output, target, source if source.exists() else None))
    return items


SAMPLE_NAME = re.compile(r"(?P<name>.+)_sample\d+")


def source_name(output: Path, folder: Path) -> str:
    """The file name of the input and target of the translation `output`: its own, or NAME.png for
    NAME_sampleK.png, one of `pix2pix test --samples`' translations of NAME (each is measured)."""
    sample = SAMPLE_NAME.fullmatch(output.stem)
    if sample and not (folder / "targets" / output.name).exists():
        return f"{sample['name']}.png"
    return output.name


def translate_split(
    model: ImageTranslator,
    data_root: Path,
    split: str,
    folder: Path,
    *,
    dropout: bool,
    norm_stats: str,
    seed: int,
    progress: bool = True,
) -> list[ImageFiles]:
    """Translate the split into `folder` (as `pix2pix test` does); returns the split's images only, so
    files left in `folder` by an earlier evaluation are never measured."""
    names = [pair.name for pair in find_pairs(data_root, split)]
    translate_to_folder(
        model, data_root, folder, split=split, dropout=dropout, norm_stats=norm_stats, seed=seed, progress=progress
    )
    return [
        ImageFiles(name, folder / f"{name}.png", folder / "targets" / f"{name}.png", folder / "inputs" / f"{name}.png")
        for name in names
    ]


def find_run_dir(checkpoint: Path) -> Path | None:
    """The training run folder of a checkpoint, if it is one (holds log.csv); None for a file outside a run."""
    folder = run_folder_of(checkpoint)
    return folder if (folder / "log.csv").is_file() else None


def evaluation_data_root(data: str | None, model: ImageTranslator) -> Path:
    """`data`, or else the dataset the model was trained on (which an official checkpoint does not record)."""
    source = data or model.config.data.data
    if not source:
        raise ValueError("the model records no dataset (an official checkpoint): pass --data ROOT")
    return resolve_data_root(source)


def unpaired_source(model: ImageTranslator) -> tuple[str, str] | None:
    """For a CycleGAN run trained on a `pix2pix data unpair` layout: the paired dataset its halves were made
    from (ROOT/unpair.json) and the direction in which those pairs give this generator its input."""
    root = model.config.data.data
    record = read_unpair_record(Path(root)) if root and model.config.model.model == "cyclegan" else None
    if record is None:
        return None
    recorded = record["direction"]  # which half of the source's pairs became domain A
    return record["source"], recorded if model.config.data.direction == "AtoB" else other_direction(recorded)


def is_same_folder(first: str | Path, second: str | Path) -> bool:
    return Path(first).resolve() == Path(second).resolve()


def evaluate_checkpoint(
    checkpoint: str | Path,
    folder: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    dropout: bool | None = None,
    norm_stats: str | None = None,
    seed: int = 0,
    device: str = "auto",
    runtime: str = "auto",
    direction: str | None = None,
    reverse: bool = False,
    label: str | None = None,
    fcn: FcnOptions = FcnOptions(),
    perceptual: PerceptualModels | None = None,
    progress: bool = True,
) -> Evaluation:
    """Translate `split` of `data` (default: the dataset the run was trained on, or for a CycleGAN run on
    `data unpair`'s halves the pairs they came from) and evaluate it in `folder`.
    `direction` overrides which half of the pairs is the input; `reverse`, a CycleGAN run's B -> A generator.
    A mode keyword left None is the model's own (`mode_or_default`: the paper's protocol, or an export's mode)."""
    checkpoint, folder = Path(checkpoint), Path(folder)
    model = load_model(checkpoint, device=device, runtime=runtime, reverse=reverse)
    dropout, norm_stats = model.mode_or_default(dropout, norm_stats)
    source = unpaired_source(model)
    if source is not None and (data is None or is_same_folder(data, source[0])):
        # a CycleGAN run on `data unpair`'s halves, measured on their pairs: the generator's way round
        if direction is not None and direction != source[1]:
            logger.warning(
                "--direction %s gives this generator the other domain's images: %s's pairs read %s give it its "
                "own (its data's unpair.json); measuring as asked",
                direction,
                source[0],
                source[1],
            )
        data, direction = source[0], direction or source[1]
    if direction is not None:
        model.config = model.config.replace("data", direction=direction)
    data_root = evaluation_data_root(data, model)
    items = translate_split(
        model, data_root, split, folder / "images", dropout=dropout, norm_stats=norm_stats, seed=seed, progress=progress
    )
    settings = {
        "checkpoint": str(checkpoint),
        "data": str(data_root),
        "direction": model.config.data.direction,
        "dropout": "on" if dropout else "off",
        "norm stats": norm_stats,
        "seed": seed,
        "runtime": model.runtime_for(dropout=dropout, norm_stats=norm_stats),
    }
    if model.config.model.model == "cyclegan":  # which of its two generators the report measures
        settings["generator"] = "G_B, B -> A (--reverse)" if reverse else "G_A, A -> B"
    return evaluate_images(
        items,
        folder,
        label=label or checkpoint.name,
        split=split,
        fcn=fcn,
        perceptual=perceptual,
        data_root=data_root,
        run_dir=find_run_dir(checkpoint),
        settings=settings,
        progress=progress,
    )


def evaluate_images(
    items: list[ImageFiles],
    folder: Path,
    *,
    label: str,
    split: str,
    fcn: FcnOptions = FcnOptions(),
    perceptual: PerceptualModels | None = None,
    data_root: Path | None = None,
    run_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> Evaluation:
    """Measure `items`, write error maps, metrics.json, metrics.csv and index.html into `folder`."""
    if not items:
        raise ValueError("no images to evaluate")
    folder = Path(folder)
    (folder / "errors").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []  # as Evaluation.rows: a name, metrics and paths per image
    for item in tqdm(items, desc="measuring", disable=not progress, leave=False):
        output, target = np.asarray(load_image(item.output, 3)), np.asarray(load_image(item.target, 3))
        if output.shape != target.shape:
            raise DataError(
                f"{item.output} is {output.shape[1]}x{output.shape[0]} but its target "
                f"{item.target} is {target.shape[1]}x{target.shape[0]}"
            )
        error = folder / "errors" / f"{item.name}.png"
        render_error_map(output, target).save(error)
        paths = {"input": item.input, "output": item.output, "target": item.target, "error": error}
        rows.append({"name": item.name, **compute_image_metrics(output, target), "paths": paths})
    settings = {**(settings or {}), "SSIM": SSIM_SETTINGS}  # which SSIM, since papers' settings differ
    evaluation = Evaluation(
        label, folder, split, rows, summarize_rows(rows, list(METRICS)), settings=settings, run_dir=run_dir
    )
    if perceptual and (perceptual.lpips or perceptual.fid):
        add_perceptual_scores(evaluation, items, perceptual, progress)
    if fcn.mode != "off":
        add_fcn_score(evaluation, items, fcn, data_root, progress)
    write_metrics(evaluation)
    write_report(evaluation)
    return evaluation


def add_perceptual_scores(
    evaluation: Evaluation, items: list[ImageFiles], models: PerceptualModels, progress: bool
) -> None:
    """Per-image LPIPS, and the FID between the generated and the target images, a batch at a time."""
    distances: list[float] = []
    output_features, target_features = [], []
    for start in tqdm(range(0, len(items), PERCEPTUAL_BATCH), desc="LPIPS/FID", disable=not progress, leave=False):
        batch = items[start : start + PERCEPTUAL_BATCH]
        outputs = [np.asarray(load_image(item.output, 3)) for item in batch]
        targets = [np.asarray(load_image(item.target, 3)) for item in batch]
        if models.lpips:
            distances += models.lpips.measure(outputs, targets)
        if models.fid:
            output_features.append(models.fid.extract(outputs))
            target_features.append(models.fid.extract(targets))
    if models.lpips:
        evaluation.settings["LPIPS weights"] = str(models.lpips.path)
        for row, distance in zip(evaluation.rows, distances):
            row["lpips"] = distance
        evaluation.summary["lpips"] = summarize_rows(evaluation.rows, ["lpips"])["lpips"]
    if models.fid:
        evaluation.settings["FID weights"] = str(models.fid.path)
        if len(items) < 2:
            evaluation.notes.append("FID skipped: it needs at least 2 images")
            return
        features = np.concatenate(output_features), np.concatenate(target_features)
        evaluation.fid = {
            "value": compute_frechet_distance(*features),
            "n_images": len(items),
            "feature_dim": features[0].shape[1],
            "weights": str(models.fid.path),
        }
        if len(items) < FID_RELIABLE_IMAGES:
            evaluation.notes.append(
                f"FID from only {len(items)} images per side: biased upward, the more so the fewer the images; "
                f"compare FIDs only at equal n (the usual advice is {FID_RELIABLE_IMAGES} or more)"
            )


def add_fcn_score(
    evaluation: Evaluation, items: list[ImageFiles], fcn: FcnOptions, data_root: Path | None, progress: bool
) -> None:
    """FCN-score when the inputs (labels -> photo) or the targets (photo -> labels) are label maps.

    In mode "auto" a missing ingredient becomes a note in the report; in mode "on" it is an error.
    """

    def skip(reason: str) -> None:
        if fcn.mode == "on":
            raise ValueError(f"FCN-score: {reason}")
        evaluation.notes.append(f"FCN-score skipped: {reason}")

    def load_all(paths: list[Path]) -> list[np.ndarray]:
        return [np.asarray(load_image(path, 3)) for path in paths]

    probe = slice(None, None, max(1, len(items) // 8))  # about 8 images decide which side is a label map
    palette = fcn.palette
    targets, outputs = load_all([i.target for i in items]), load_all([i.output for i in items])
    if fcn_score.is_label_map(targets[probe], palette):
        scores, per_image = fcn_score.score_label_maps(outputs, targets, palette)
        evaluation.fcn = {"kind": "label maps", "generated": scores, "palette": list(palette.names)}
    else:
        input_paths = [i.input for i in items if i.input is not None]
        if len(input_paths) < len(items):
            return skip("the inputs are not saved (inputs/NAME.png), so there are no label maps to score against")
        inputs = load_all(input_paths)
        if not fcn_score.is_label_map(inputs[probe], palette):
            return skip("neither the inputs nor the targets are label maps in the palette")
        if fcn.saved_segmenter is not None:
            segmenter = fcn.saved_segmenter
        elif data_root is None:
            return skip("the segmenter learns from the dataset's training photos: pass --data ROOT")
        else:
            segmenter = fcn_score.load_or_train_segmenter(data_root, palette, fcn.segmenter, progress=progress)
        scores, per_image = fcn_score.score_photos(segmenter, outputs, inputs, palette)
        real_scores, _ = fcn_score.score_photos(segmenter, targets, inputs, palette)
        evaluation.fcn = {
            "kind": "photos",
            "generated": scores,
            "real": real_scores,
            "palette": list(palette.names),
            "segmenter": {
                "path": str(segmenter.path),
                "train_pixel_acc": segmenter.train_accuracy,
                **asdict(segmenter.settings),
            },
        }
    for row, accuracy in zip(evaluation.rows, per_image):
        row["fcn_acc"] = accuracy
    evaluation.summary["fcn_acc"] = summarize_rows(evaluation.rows, ["fcn_acc"])["fcn_acc"]


def replace_non_finite(value: Any) -> Any:
    """JSON has no inf or nan: write null (PSNR of identical images is inf; an interval of one value nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: replace_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_non_finite(item) for item in value]
    return value


def write_metrics(evaluation: Evaluation) -> None:
    """metrics.json (summary, FCN-score, per image) and metrics.csv (one row per image)."""
    names = evaluation.metric_names
    images = [{"name": row["name"], **{name: row[name] for name in names}} for row in evaluation.rows]
    document = {
        "label": evaluation.label,
        "split": evaluation.split,
        "settings": evaluation.settings,
        "n_images": len(evaluation.rows),
        "summary": evaluation.summary,
        "fcn_score": evaluation.fcn,
        "fid": evaluation.fid,
        "notes": evaluation.notes,
        "images": images,
    }
    (evaluation.folder / "metrics.json").write_text(json.dumps(replace_non_finite(document), indent=2) + "\n")
    with (evaluation.folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["name", *names])
        writer.writeheader()
        writer.writerows(images)
