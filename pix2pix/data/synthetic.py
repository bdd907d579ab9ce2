"""The built-in dataset: procedural facades, label map -> textured "photo".

Each pair is a CMP-Facades-style label map and a photo rendered from it. The photo is
deliberately *not* a per-pixel function of the label colour (bricks, window panes, shadows,
gradients, a wall tint chosen by the number of floors) so that a model has to use context,
yet every detail follows the layout, so a small U-Net learns it in minutes on a CPU.
Files hold label | photo side by side, so labels -> photo is the default AtoB (the real facades
release has the halves the other way round: BtoA there).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix.cache import cache_home

# Measured from the facades release (median colour of flat label regions, JPEG noise removed);
# the order is the CMP class order, which the release renders through a jet colour map.
SYNTHETIC_PALETTE: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 222),
    "facade": (0, 48, 255),
    "window": (0, 128, 255),
    "door": (0, 207, 255),
    "cornice": (32, 255, 224),
    "sill": (112, 254, 142),
    "balcony": (192, 255, 63),
    "blind": (255, 240, 0),
    "deco": (255, 159, 0),
    "molding": (255, 80, 0),
    "pillar": (253, 0, 0),
    "shop": (174, 0, 0),
}
_PALETTE_ARRAY = np.array(list(SYNTHETIC_PALETTE.values()), dtype=np.uint8)  # (classes, 3)
# Class indices: positions in SYNTHETIC_PALETTE.
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(12)
# Overhanging parts cast a shadow on whatever lies below them, never on themselves.
_CASTERS = (CORNICE, SILL, BALCONY, MOLDING)

# Wall (brick, mortar) and shutter colours keyed by the number of upper floors, which the label
# map shows as rows of windows: the tint is learnable, not noise.
_MIN_FLOORS, _MAX_FLOORS = 2, 5
_WALLS = {
    2: ((0.60, 0.30, 0.22), (0.80, 0.76, 0.70), (0.18, 0.35, 0.22)),  # red brick, green shutters
    3: ((0.80, 0.66, 0.45), (0.92, 0.88, 0.80), (0.45, 0.25, 0.15)),  # sand brick, brown shutters
    4: ((0.58, 0.58, 0.56), (0.78, 0.78, 0.76), (0.20, 0.28, 0.45)),  # grey stone, blue shutters
    5: ((0.85, 0.78, 0.66), (0.70, 0.65, 0.56), (0.30, 0.40, 0.25)),  # cream stone, olive shutters
}
_STONE = np.array((0.86, 0.83, 0.77), dtype=np.float32)
_WOOD = np.array((0.36, 0.21, 0.13), dtype=np.float32)
_METAL = np.array((0.13, 0.13, 0.15), dtype=np.float32)

DEFAULT_COUNTS = {"train": 400, "val": 20, "test": 20}
_FORMAT_VERSION = 2  # bump when the rendering changes so cached datasets are regenerated


@dataclass
class _Canvas:
    """Class map plus, per pixel, its position inside the element that painted it."""

    labels: np.ndarray  # (H, W) class index
    local_x: np.ndarray  # (H, W) pixels from the element's left edge
    local_y: np.ndarray  # (H, W) pixels from the element's top edge
    width: np.ndarray  # (H, W) element width in pixels
    height: np.ndarray  # (H, W) element height in pixels
    shade: np.ndarray  # (H, W) light multiplier from cast shadows

    @classmethod
    def empty(cls, size: int) -> _Canvas:
        def plane(value: float) -> np.ndarray:
            return np.full((size, size), value, dtype=np.float32)

        labels = np.zeros((size, size), dtype=np.int64)
        canvas = cls(labels, local_x=plane(0), local_y=plane(0), width=plane(0), height=plane(0), shade=plane(1))
        canvas.put(BACKGROUND, 0, 0, size, size)
        return canvas

    def put(self, label: int, left: float, top: float, right: float, bottom: float) -> None:
        """Paint an axis-aligned element over what is there (coordinates are rounded)."""
        size = self.labels.shape[0]
        x0, y0 = max(0, round(left)), max(0, round(top))
        if x0 >= size or y0 >= size:
            return
        # At least one pixel, so thin parts (sills, bands) survive small sizes.
        x1, y1 = min(size, max(x0 + 1, round(right))), min(size, max(y0 + 1, round(bottom)))
        box = np.s_[y0:y1, x0:x1]
        self.labels[box] = label
        self.local_x[box] = np.arange(x1 - x0, dtype=np.float32)[None, :]
        self.local_y[box] = np.arange(y1 - y0, dtype=np.float32)[:, None]
        self.width[box] = x1 - x0
        self.height[box] = y1 - y0
        if label in _CASTERS:
            # Light from the upper left: the shadow falls below, shifted right, fading out.
            depth = max(2, (y1 - y0) + 1)
            fade = np.linspace(0.55, 0.95, depth, dtype=np.float32)[:, None]
            under = self.shade[y1 : y1 + depth, x0 + 1 : x1 + 1]
            np.minimum(under, fade[: under.shape[0]], out=under)


@dataclass
class _Style:
    """Per-building colours and the random tables its textures read from."""

    brick: np.ndarray
    mortar: np.ndarray
    shutter: np.ndarray
    brick_size: tuple[int, int]  # (height, width) in pixels
    brick_jitter: np.ndarray  # (64, 64) per-brick brightness offsets
    sky_top: np.ndarray
    sky_horizon: np.ndarray


def _draw_layout(rng: random.Random, size: int) -> tuple[_Canvas, int]:
    """Lay out one building; returns the canvas and its number of upper floors."""
    canvas = _Canvas.empty(size)
    floors = rng.randint(_MIN_FLOORS, _MAX_FLOORS)
    cols = rng.randint(3, 6)
    has_blinds = rng.random() < 0.35
    has_hoods = rng.random() < 0.5
    has_floor_bands = rng.random() < 0.5
    has_shop = rng.random() < 0.5

    # Sky above and sometimes a gap to the neighbours on either side.
    top = size * rng.uniform(0.04, 0.16)
    left = size * rng.uniform(0.03, 0.12) if rng.random() < 0.3 else 0.0
    right = size - (size * rng.uniform(0.03, 0.12) if rng.random() < 0.3 else 0.0)
    canvas.put(FACADE, left, top, right, size)
    roof = max(2.0, size * rng.uniform(0.03, 0.05))
    canvas.put(MOLDING, left, top, right, top + roof)

    floor_h = (size - top - roof) / (floors + 1.3)  # the ground floor is taller
    col_w = (right - left) / cols
    win_w = col_w * rng.uniform(0.3, 0.4) if has_blinds else col_w * rng.uniform(0.35, 0.55)
    win_h = floor_h * rng.uniform(0.5, 0.62)
    centres = [left + (j + 0.5) * col_w for j in range(cols)]
    band = max(1.0, size / 90)

    def put_window(cx: float, y0: float, *, sill: bool) -> None:
        x0, x1 = cx - win_w / 2, cx + win_w / 2
        if has_blinds:
            canvas.put(BLIND, x0 - win_w / 2, y0, x0, y0 + win_h)
            canvas.put(BLIND, x1, y0, x1 + win_w / 2, y0 + win_h)
        if has_hoods:
            canvas.put(CORNICE, x0 - band, y0 - 2 * band, x1 + band, y0)
        canvas.put(WINDOW, x0, y0, x1, y0 + win_h)
        if sill:
            canvas.put(SILL, x0 - band, y0 + win_h, x1 + band, y0 + win_h + band)

    for floor in range(floors):
        floor_top = top + roof + floor * floor_h
        if has_floor_bands and floor > 0:
            canvas.put(MOLDING, left, floor_top, right, floor_top + band)
        win_top = floor_top + floor_h * 0.25
        balcony = rng.choice(("none", "none", "none", "each", "across"))
        for cx in centres:
            put_window(cx, win_top, sill=balcony == "none")
        rail_top, rail_bottom = win_top + win_h * 0.6, win_top + win_h + band
        if balcony == "across":
            canvas.put(BALCONY, left + col_w * 0.1, rail_top, right - col_w * 0.1, rail_bottom)
        elif balcony == "each":
            for cx in centres:
                canvas.put(BALCONY, cx - win_w * 0.8, rail_top, cx + win_w * 0.8, rail_bottom)
    if floors >= 3 and rng.random() < 0.5:
        # Ornaments between the top floor's windows.
        y = top + roof + floor_h * 0.25 + win_h / 2
        for cx in centres[:-1]:
            canvas.put(DECO, cx + col_w / 2 - band * 2, y - band * 2, cx + col_w / 2 + band * 2, y + band * 2)

    ground = top + roof + floors * floor_h
    ground_h = size - ground
    door_col = rng.randrange(cols)
    door_w = min(col_w * 0.6, max(win_w * 1.2, 3.0))
    for j, cx in enumerate(centres):
        if j == door_col:
            door_top = ground + ground_h * rng.uniform(0.25, 0.35)
            canvas.put(DOOR, cx - door_w / 2, door_top, cx + door_w / 2, size)
            if rng.random() < 0.6:
                canvas.put(DECO, cx - door_w / 2 - band, door_top - 3 * band, cx + door_w / 2 + band, door_top)
        elif has_shop:
            canvas.put(SHOP, cx - col_w * 0.4, ground + ground_h * 0.2, cx + col_w * 0.4, size - ground_h * 0.06)
        else:
            put_window(cx, ground + ground_h * 0.3, sill=True)
    if has_shop and rng.random() < 0.6:
        pillar_w = max(2.0, col_w * 0.1)
        for j in range(cols + 1):
            x = left + j * col_w
            canvas.put(PILLAR, x - pillar_w / 2, ground, x + pillar_w / 2, size)
    canvas.put(MOLDING, left, ground, right, ground + max(band, roof * 0.6))
    return canvas, floors


def _make_style(rng: random.Random, noise: np.random.Generator, size: int, floors: int) -> _Style:
    brick, mortar, shutter = (np.array(c, dtype=np.float32) for c in _WALLS[floors])
    brick_h = max(3, size // 32)
    sky_shift = np.float32(rng.uniform(-0.06, 0.06))
    return _Style(
        brick=brick,
        mortar=mortar,
        shutter=shutter,
        brick_size=(brick_h, 2 * brick_h),
        brick_jitter=noise.normal(0.0, 0.07, (64, 64)).astype(np.float32),
        sky_top=np.array((0.42, 0.60, 0.86), dtype=np.float32) + sky_shift,
        sky_horizon=np.array((0.84, 0.88, 0.93), dtype=np.float32),
    )


@dataclass
class _Pixels:
    """The pixels of one class: image and element coordinates, as flat arrays."""

    x: np.ndarray  # column in the image
    y: np.ndarray  # row in the image
    lx: np.ndarray  # column inside the element
    ly: np.ndarray  # row inside the element
    u: np.ndarray  # lx / width, in [0, 1)
    v: np.ndarray  # ly / height, in [0, 1)
    w: np.ndarray  # element width
    h: np.ndarray  # element height


def _edge(p: _Pixels, thickness: int) -> np.ndarray:
    """Pixels within `thickness` of their element's border (window frames, door frames)."""
    return (p.lx < thickness) | (p.ly < thickness) | (p.lx >= p.w - thickness) | (p.ly >= p.h - thickness)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend from colour a (t=0) to colour b (t=1): (N, 3)."""
    return a + (b - a) * t[:, None]


def _paint_sky(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    return _mix(s.sky_top, s.sky_horizon, np.clip(p.y / (size * 0.2), 0, 1))


def _paint_bricks(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    brick_h, brick_w = s.brick_size
    row = p.y.astype(np.int64) // brick_h
    shifted = p.x.astype(np.int64) + (row % 2) * (brick_w // 2)  # running bond
    mortar = (p.y.astype(np.int64) % brick_h == 0) | (shifted % brick_w == 0)
    jitter = s.brick_jitter[row % 64, (shifted // brick_w) % 64]
    colour = s.brick * (1 + jitter)[:, None]
    colour[mortar] = s.mortar
    # Facades catch more light towards the top.
    return colour * (1.08 - 0.16 * p.y / size)[:, None]


def _paint_window(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    # Glass reflects the sky at the top and darkens downwards, with a diagonal glint.
    colour = _mix(np.array((0.55, 0.66, 0.78), np.float32), np.array((0.12, 0.15, 0.2), np.float32), p.v)
    glint = np.abs(((p.u * 0.7 + p.v) % 1.0) - 0.45) < 0.08
    colour[glint] += 0.12
    # The pane is set into the wall: its top and left strips lie in shadow.
    colour[(p.ly < 2) | (p.lx < 1)] *= 0.6
    # Tiny windows (at 64 px) keep only their glass; bars would cover them entirely.
    mullion = (p.w >= 7) & (np.abs(p.lx - (p.w - 1) / 2) < 0.6)
    crossbar = (p.h >= 7) & (np.abs(p.ly - np.round(p.h * 0.35)) < 0.6)
    frame = (p.w >= 5) & _edge(p, max(1, size // 96))
    colour[mullion | crossbar | frame] = (0.93, 0.92, 0.88)
    return colour


def _paint_door(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    colour = np.broadcast_to(_WOOD, (len(p.x), 3)).copy()
    in_panel_x = ((p.u > 0.18) & (p.u < 0.44)) | ((p.u > 0.56) & (p.u < 0.82))
    in_panel_y = ((p.v > 0.1) & (p.v < 0.45)) | ((p.v > 0.55) & (p.v < 0.9))
    colour[in_panel_x & in_panel_y] *= 1.35
    colour[_edge(p, max(1, size // 96))] = _STONE * 0.8
    return colour


def _paint_ledge(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    # Cornices, sills and moldings: lit from above, their lower face in shade.
    light = np.where(p.v < 0.34, 1.08, np.where(p.v > 0.66, 0.72, 0.92)).astype(np.float32)
    return _STONE * light[:, None]


def _paint_molding(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    colour = _paint_ledge(p, s, size)
    # Dentils along the lower half of thick moldings.
    dentils = (p.h >= 4) & (p.v > 0.5) & (p.lx.astype(np.int64) % 4 < 2)
    colour[dentils] *= 0.75
    return colour


def _paint_balcony(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    # Railing: a stone slab at the bottom, a metal top rail, balusters with shade behind them.
    colour = np.broadcast_to(s.brick * 0.4, (len(p.x), 3)).copy()
    colour[p.lx.astype(np.int64) % max(3, size // 48) == 0] = _METAL + 0.12
    colour[p.ly < 1] = _METAL
    colour[p.v > 0.72] = _STONE * 0.9
    return colour


def _paint_blind(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    slats = np.where(p.ly.astype(np.int64) % 2 == 0, 1.0, 0.7).astype(np.float32)
    colour = s.shutter * slats[:, None]
    colour[_edge(p, 1)] = s.shutter * 0.55
    return colour


def _paint_deco(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    diamond = np.abs(p.u - 0.5) + np.abs(p.v - 0.5)
    return _STONE * (0.78 + 0.22 * np.cos(diamond * 4 * np.pi))[:, None]


def _paint_pillar(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    # A round column: bright down the middle, dark at the sides.
    return _STONE * (0.6 + 0.45 * np.sin(np.pi * (p.lx + 0.5) / p.w))[:, None]


def _paint_shop(p: _Pixels, s: _Style, size: int) -> np.ndarray:
    colour = _mix(np.array((0.3, 0.34, 0.4), np.float32), np.array((0.06, 0.07, 0.09), np.float32), p.v)
    glint = np.abs(((p.u * 0.5 + p.v) % 1.0) - 0.3) < 0.06
    colour[glint] += 0.15
    thirds = (np.abs(p.u - 1 / 3) * p.w < 0.6) | (np.abs(p.u - 2 / 3) * p.w < 0.6)
    colour[thirds | _edge(p, max(1, size // 96))] = _METAL
    return colour


_PAINTERS = {
    BACKGROUND: _paint_sky,
    FACADE: _paint_bricks,
    WINDOW: _paint_window,
    DOOR: _paint_door,
    CORNICE: _paint_ledge,
    SILL: _paint_ledge,
    BALCONY: _paint_balcony,
    BLIND: _paint_blind,
    DECO: _paint_deco,
    MOLDING: _paint_molding,
    PILLAR: _paint_pillar,
    SHOP: _paint_shop,
}


def _paint_photo(canvas: _Canvas, style: _Style, noise: np.random.Generator, exposure: float) -> np.ndarray:
    size = canvas.labels.shape[0]
    photo = np.empty((size, size, 3), dtype=np.float32)
    for label, paint in _PAINTERS.items():
        ys, xs = np.nonzero(canvas.labels == label)
        if len(ys) == 0:
            continue
        w, h = canvas.width[ys, xs], canvas.height[ys, xs]
        lx, ly = canvas.local_x[ys, xs], canvas.local_y[ys, xs]
        pixels = _Pixels(xs.astype(np.float32), ys.astype(np.float32), lx, ly, lx / w, ly / h, w, h)
        photo[ys, xs] = paint(pixels, style, size)
    receives = ~np.isin(canvas.labels, (*_CASTERS, BACKGROUND))
    photo[receives] *= canvas.shade[receives][:, None]
    photo = photo * exposure + noise.normal(0.0, 0.02, photo.shape).astype(np.float32)
    return np.clip(photo * 255 + 0.5, 0, 255).astype(np.uint8)


def render_facade(rng: random.Random, size: int) -> tuple[Image.Image, Image.Image]:
    """Render one (photo, label_map) pair, both RGB `size` x `size`, from `rng` alone."""
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels to draw a facade, got {size}")
    canvas, floors = _draw_layout(rng, size)
    noise = np.random.default_rng(rng.getrandbits(64))
    style = _make_style(rng, noise, size, floors)
    photo = _paint_photo(canvas, style, noise, exposure=rng.uniform(0.92, 1.08))
    label_map = _PALETTE_ARRAY[canvas.labels]
    return Image.fromarray(photo, "RGB"), Image.fromarray(label_map, "RGB")


def _read_marker(root: Path) -> object:
    """The parameters a finished dataset was made with, or None."""
    try:
        return json.loads((root / "DONE").read_text())
    except (OSError, ValueError):
        return None


def generate_synthetic_facades(
    root: Path, *, size: int = 128, counts: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """Write root/{split}/{i}.png (label | photo) once; later calls with the same parameters reuse it."""
    root = Path(root)
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    for split, count in counts.items():
        if split not in DEFAULT_COUNTS or count < 0:
            raise ValueError(f"bad count {split}={count}; splits are {', '.join(DEFAULT_COUNTS)} with counts >= 0")
    params = {"format_version": _FORMAT_VERSION, "size": size, "counts": counts, "seed": seed}
    marker = _read_marker(root)
    if marker == params:
        return root
    if root.exists() and marker is None:
        # Only ever replace a folder we made: never delete someone's data.
        raise FileExistsError(f"{root} exists but holds no synthetic dataset (no DONE marker); pick another root")

    root.parent.mkdir(parents=True, exist_ok=True)
    # Build beside root and rename, so a crash never leaves a half-written dataset behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for split, count in counts.items():
            (staging / split).mkdir()
            for index in range(1, count + 1):
                photo, label_map = render_facade(random.Random(f"{seed}/{split}/{index}"), size)
                pair = Image.new("RGB", (2 * size, size))
                pair.paste(label_map, (0, 0))
                pair.paste(photo, (size, 0))
                pair.save(staging / split / f"{index}.png")
        (staging / "DONE").write_text(json.dumps(params, sort_keys=True))
        if marker is not None:
            shutil.rmtree(root)  # stale: made with other parameters
        try:
            staging.rename(root)
        except OSError:
            # Another process (e.g. another torchrun rank) finished first with the same set.
            if _read_marker(root) != params:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def default_synthetic_root() -> Path:
    """CACHE/datasets/synthetic-facades (see pix2pix.cache)."""
    return cache_home() / "datasets" / "synthetic-facades"
