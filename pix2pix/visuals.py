"""Pictures for people: image grids and the HTML index pages of translations."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, 3) uint8; one channel is shown as gray."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    array = array.transpose(1, 2, 0)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def make_grid(rows: Sequence[Sequence[torch.Tensor]], padding: int = 2) -> Image.Image:
    """Tile rows of same-sized (C, H, W) tensors on a white background."""
    height, width = rows[0][0].shape[-2:]
    columns = max(len(row) for row in rows)
    canvas = np.full(
        (len(rows) * (height + padding) + padding, columns * (width + padding) + padding, 3), 255, np.uint8
    )
    for r, row in enumerate(rows):
        for c, tensor in enumerate(row):
            y, x = padding + r * (height + padding), padding + c * (width + padding)
            canvas[y : y + height, x : x + width] = tensor_to_uint8(tensor)
    return Image.fromarray(canvas)


# the animation is rebuilt after every sample epoch: with a frame per epoch that would cost O(epochs^2)
# (15 s a rebuild at 100 frames on a 2-core CPU), so a long run shows this many, evenly spaced
PROGRESS_FRAMES = 48


def write_progress_gif(frames: Sequence[Path], path: Path, seconds_per_frame: float = 0.5) -> None:
    """Assemble the per-epoch sample grids into an animation of training progress: all of them, or
    PROGRESS_FRAMES evenly spaced from the first to the last."""
    if len(frames) > PROGRESS_FRAMES:  # the spacing is >= 1, so the rounded indices are distinct
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, PROGRESS_FRAMES).round().astype(int)]
    images = [Image.open(frame).convert("RGB") for frame in frames]
    if images:
        duration = int(seconds_per_frame * 1000)
        # the last frame lingers so the final result can be looked at
        durations = [duration] * (len(images) - 1) + [duration * 4]
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)


def write_index_html(path: Path, title: str, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> None:
    """A table of images: one row per item, `columns` headers, cells are paths relative to `path`."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("name", *columns))
    body = []
    for name, cells in rows:
        images = "".join(
            f'<td><a href="{html.escape(cell)}"><img src="{html.escape(cell)}" loading="lazy"></a></td>'
            if cell
            else "<td></td>"
            for cell in cells
        )
        body.append(f"<tr><td>{html.escape(name)}</td>{images}</tr>")
    path.write_text(
        f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px; border-bottom: 1px solid #ddd; text-align: center; }}
img {{ width: 256px; image-rendering: pixelated; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<table><tr>{head}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    )
