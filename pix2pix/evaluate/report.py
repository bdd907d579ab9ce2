"""The evaluation report: summary table, loss curves, and one sortable row per image.

Every link is relative to the report and written only when its file exists, so the folder can be moved
or served as it is.
"""

from __future__ import annotations

import csv
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pix2pix.metrics import METRICS

if TYPE_CHECKING:
    from pix2pix.evaluate.pipeline import Evaluation

# |output - target| (mean over channels, 0-255) at or above this is drawn at the top of the colour map;
# one fixed scale keeps the maps of different images and runs comparable
ERROR_SCALE = 128.0
LOSS_CURVES = ("G_GAN", "G_L1", "D_real", "D_fake")
# a CycleGAN run's terms, a row for each direction
CYCLE_LOSS_CURVES = (("D_A", "G_A", "cycle_A", "idt_A"), ("D_B", "G_B", "cycle_B", "idt_B"))
# with --val-every: the generator's loss on the validation pairs beside an image score, epoch by epoch (a
# CycleGAN run's: its cycle terms on the validation images)
VALIDATION_CURVES = ("val_G_GAN", "val_G_L1", "val_G", "val_ssim", "val_cycle_A", "val_cycle_B")
# per-image metrics measured only in some evaluations, as METRICS: name -> (label, True when higher is better)
OPTIONAL_METRICS = {"lpips": ("LPIPS", False), "fcn_acc": ("FCN per-pixel acc", True)}
FCN_LABELS = {"pixel_acc": "per-pixel accuracy", "class_acc": "per-class accuracy", "class_iou": "class IoU"}
IMAGE_COLUMNS = ("input", "output", "target", "error")

SORT_SCRIPT = """<script>
// click a header to sort by that column; click again to reverse
function sortBy(th) {
  const body = th.closest("table").tBodies[0], col = th.cellIndex, up = th.dataset.order !== "up";
  th.dataset.order = up ? "up" : "down";
  const key = row => {
    const cell = row.cells[col];
    return cell.dataset.value === undefined ? cell.textContent : parseFloat(cell.dataset.value);
  };
  [...body.rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (up ? 1 : -1))
    .forEach(row => body.appendChild(row));
}
</script>"""

STYLE = """<style>
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: center; }
th.sortable { cursor: pointer; text-decoration: underline dotted; }
img.cell { width: 192px; image-rendering: pixelated; }
.note { color: #a50; }
</style>"""


def render_error_map(output: np.ndarray, target: np.ndarray) -> Image.Image:
    """Heat map (inferno) of |output - target| averaged over channels; black is 0, yellow >= ERROR_SCALE."""
    from matplotlib import colormaps  # the colour map only: no figure, no backend

    error = np.abs(output.astype(np.float32) - target.astype(np.float32))
    error = error.mean(-1) if error.ndim == 3 else error
    colours = colormaps["inferno"](np.clip(error / ERROR_SCALE, 0.0, 1.0))  # (H, W, 4) in [0, 1]
    return Image.fromarray((colours[:, :, :3] * 255).round().astype(np.uint8))


def plot_loss_curves(log_csv: Path, path: Path) -> bool:
    """Per-epoch training losses from a run's log.csv as a PNG, and under them the validation loss terms
    and SSIM where the run logged them; False when there is nothing to plot."""
    if not log_csv.exists():
        return False
    with log_csv.open() as f:
        rows = list(csv.DictReader(f))
    logged_columns = set(rows[0]) if rows else set()
    loss_rows = [names for names in (LOSS_CURVES, *CYCLE_LOSS_CURVES) if set(names) <= logged_columns]
    if not loss_rows:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    from matplotlib import pyplot as plt

    validation = [name for name in VALIDATION_CURVES if any(row.get(name) for row in rows)]
    panels = [*loss_rows, *([validation] if validation else [])]
    columns = max(len(names) for names in panels)
    figure, axes = plt.subplots(
        len(panels), columns, figsize=(4 * columns, 3 * len(panels)), constrained_layout=True, squeeze=False
    )
    for axes_row, names in zip(axes, panels):
        for axis, name in zip(axes_row, names):
            logged = [(int(row["epoch"]), float(row[name])) for row in rows if row.get(name)]
            axis.plot(*zip(*logged), marker="o" if len(logged) < 30 else None)
            axis.set_title(name)
            axis.set_xlabel("epoch")
            axis.xaxis.get_major_locator().set_params(integer=True)
            axis.grid(alpha=0.3)
        for axis in axes_row[len(names) :]:
            axis.set_visible(False)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True


def link_to(path: Path | None, folder: Path) -> str | None:
    """`path` relative to `folder`, or None when there is no such file."""
    if path is None or not Path(path).exists():
        return None
    return Path(os.path.relpath(path, folder)).as_posix()


def format_value(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.1f}"


def format_sort_key(value: float) -> str:
    """A number JavaScript's parseFloat reads, infinity included."""
    return ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else repr(value)


def format_interval(stats: dict[str, float]) -> str:
    if math.isnan(stats["ci_low"]):
        return "–"
    return f"[{format_value(stats['ci_low'])}, {format_value(stats['ci_high'])}]"


def metric_label(name: str) -> str:
    return {**METRICS, **OPTIONAL_METRICS}[name][0]


def render_image_cell(path: Path | None, folder: Path) -> str:
    link = link_to(path, folder)
    if link is None:
        return "<td></td>"
    src = html.escape(link)
    return f'<td><a href="{src}"><img class="cell" src="{src}" loading="lazy"></a></td>'


def render_summary_table(evaluation: Evaluation) -> str:
    rows = []
    for name in evaluation.metric_names:
        stats = evaluation.summary[name]
        better = "higher" if {**METRICS, **OPTIONAL_METRICS}[name][1] else "lower"
        rows.append(
            f"<tr><td>{html.escape(metric_label(name))}</td><td>{format_value(stats['mean'])}</td>"
            f"<td>{format_interval(stats)}</td><td>{better}</td></tr>"
        )
    return "<table><tr><th>metric</th><th>mean</th><th>95% CI</th><th>better</th></tr>" + "".join(rows) + "</table>"


def render_fid(fid: dict) -> str:
    return (
        f"<p>FID between the {fid['n_images']} generated and the {fid['n_images']} target images: "
        f"<b>{format_value(fid['value'])}</b> (lower is better; {fid['feature_dim']} features from "
        f"{html.escape(Path(fid['weights']).name)})</p>"
    )


def render_fcn_table(fcn: dict) -> str:
    real = fcn.get("real")
    head = "<tr><th>FCN-score</th><th>generated</th>" + ("<th>real photos (upper bound)</th>" if real else "") + "</tr>"
    rows = [
        f"<tr><td>{label}</td><td>{format_value(fcn['generated'][key])}</td>"
        + (f"<td>{format_value(real[key])}</td>" if real else "")
        + "</tr>"
        for key, label in FCN_LABELS.items()
    ]
    what = (
        "a segmenter trained on the real training photos labels the generated photos"
        if fcn["kind"] == "photos"
        else "generated label maps against the real ones"
    )
    return f"<p>FCN-score ({what}; {len(fcn['palette'])} classes)</p><table>{head}{''.join(rows)}</table>"


def render_image_table(evaluation: Evaluation, folder: Path) -> str:
    names = evaluation.metric_names
    head = "".join(f'<th class="sortable" onclick="sortBy(this)">{html.escape(metric_label(n))}</th>' for n in names)
    body = []
    for row in evaluation.rows:
        images = "".join(render_image_cell(row["paths"].get(column), folder) for column in IMAGE_COLUMNS)
        values = "".join(f'<td data-value="{format_sort_key(row[n])}">{format_value(row[n])}</td>' for n in names)
        body.append(f"<tr><td>{html.escape(row['name'])}</td>{images}{values}</tr>")
    columns = "".join(f"<th>{column}</th>" for column in IMAGE_COLUMNS)
    return (
        f'<table class="images"><thead><tr><th class="sortable" onclick="sortBy(this)">name</th>{columns}{head}'
        f"</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    )


def render_page(title: str, sections: Sequence[str]) -> str:
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n{STYLE}\n'
        f"{SORT_SCRIPT}\n</head><body>\n<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_report(evaluation: Evaluation) -> Path:
    """Write evaluation.folder/index.html (and loss_curves.png when the run's log is known)."""
    folder = evaluation.folder
    sections = [render_summary_table(evaluation)]
    if evaluation.fid:
        sections.append(render_fid(evaluation.fid))
    if evaluation.fcn:
        sections.append(render_fcn_table(evaluation.fcn))
    sections += [f'<p class="note">{html.escape(note)}</p>' for note in evaluation.notes]
    if evaluation.settings:
        settings = ", ".join(f"{key}: {value}" for key, value in evaluation.settings.items())
        sections.append(f"<p>{html.escape(settings)}</p>")
    curves = folder / "loss_curves.png"
    if evaluation.run_dir is not None and plot_loss_curves(evaluation.run_dir / "log.csv", curves):
        sections.append(f'<h2>Training losses</h2><img src="{link_to(curves, folder)}">')
    sections.append(
        f"<h2>Images ({len(evaluation.rows)})</h2><p>Click a column header to sort. Error map: "
        f"|output − target|, black 0, yellow ≥ {ERROR_SCALE:.0f} of 255.</p>"
    )
    sections.append(render_image_table(evaluation, folder))
    page = folder / "index.html"
    page.write_text(render_page(f"pix2pix eval: {evaluation.label} ({evaluation.split})", sections))
    return page
