"""Several evaluations side by side: one comparison table and a grid of the same test images."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

from pix2pix.evaluate.pipeline import Evaluation, replace_non_finite
from pix2pix.evaluate.report import (
    FCN_LABELS,
    format_interval,
    format_sort_key,
    format_value,
    link_to,
    metric_label,
    render_image_cell,
    render_page,
)

MAX_GRID_ROWS = 50  # the grid is for looking; the metrics cover every image


def summarize_evaluation(evaluation: Evaluation) -> dict[str, float | str | None]:
    """One flat row: the means, the FID, and the FCN-scores of the generated images when measured."""
    row: dict[str, float | str | None] = {"run": evaluation.label, "n_images": len(evaluation.rows)}
    for name, stats in evaluation.summary.items():
        row[name] = stats["mean"]
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = stats["ci_low"], stats["ci_high"]
    row["fid"] = evaluation.fid["value"] if evaluation.fid else None
    for key in FCN_LABELS:
        row[f"fcn_{key}"] = evaluation.fcn["generated"][key] if evaluation.fcn else None
    return row


def render_comparison_table(evaluations: list[Evaluation], folder: Path) -> str:
    metric_names = list(dict.fromkeys(name for e in evaluations for name in e.metric_names))
    with_fid, with_fcn = any(e.fid for e in evaluations), any(e.fcn for e in evaluations)
    headers = ["run", "images", *(metric_label(n) for n in metric_names)]
    headers += ["FID"] if with_fid else []
    headers += [f"FCN {label}" for label in FCN_LABELS.values()] if with_fcn else []
    head = "".join(f'<th class="sortable" onclick="sortBy(this)">{html.escape(h)}</th>' for h in headers)
    body = []
    for evaluation in evaluations:
        report = link_to(evaluation.folder / "index.html", folder)
        name = html.escape(evaluation.label)
        cells = [
            f'<td><a href="{html.escape(report)}">{name}</a></td>' if report else f"<td>{name}</td>",
            f"<td>{len(evaluation.rows)}</td>",
        ]
        for metric in metric_names:
            stats = evaluation.summary.get(metric)
            cells.append(
                "<td></td>"
                if stats is None
                else f'<td data-value="{format_sort_key(stats["mean"])}">{format_value(stats["mean"])}'
                f"<br><small>{format_interval(stats)}</small></td>"
            )
        values = [evaluation.fid["value"] if evaluation.fid else None] if with_fid else []
        values += (
            [evaluation.fcn["generated"][key] if evaluation.fcn else None for key in FCN_LABELS] if with_fcn else []
        )
        cells += [
            f'<td data-value="{format_sort_key(value)}">{format_value(value)}</td>'
            if value is not None
            else "<td></td>"
            for value in values
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"


def render_grid(evaluations: list[Evaluation], folder: Path) -> str:
    """input | one output per run | target, for the images every run translated."""
    by_name = [{row["name"]: row for row in e.rows} for e in evaluations]
    common = [row["name"] for row in evaluations[0].rows if all(row["name"] in rows for rows in by_name)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["name", "input", *(e.label for e in evaluations), "target"])
    body = []
    for name in common[:MAX_GRID_ROWS]:
        first = by_name[0][name]["paths"]
        cells = [render_image_cell(first["input"], folder)]
        cells += [render_image_cell(rows[name]["paths"]["output"], folder) for rows in by_name]
        cells.append(render_image_cell(first["target"], folder))
        body.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    shown = f"the first {MAX_GRID_ROWS} of " if len(common) > MAX_GRID_ROWS else ""
    return f"<h2>Same test images ({shown}{len(common)})</h2><table><tr>{head}</tr>\n" + "\n".join(body) + "\n</table>"


def write_comparison(folder: Path, evaluations: list[Evaluation]) -> Path:
    """folder/comparison.json, comparison.csv and index.html (table + grid); returns the page."""
    if not evaluations:
        raise ValueError("nothing to compare")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [summarize_evaluation(e) for e in evaluations]
    (folder / "comparison.json").write_text(json.dumps(replace_non_finite(rows), indent=2) + "\n")
    with (folder / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    split = evaluations[0].split
    sections = [
        "<p>Means over the images, with 95% confidence intervals below. Click a header to sort; "
        "a run's name opens its own report.</p>",
        render_comparison_table(evaluations, folder),
        render_grid(evaluations, folder),
    ]
    page = folder / "index.html"
    page.write_text(render_page(f"pix2pix eval: {len(evaluations)} runs compared ({split})", sections))
    return page
