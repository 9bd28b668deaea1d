"""Preview grids: LR | bicubic | SR | HR crops with one shared percentile stretch, as PNG.

A few samples of a validation batch, each cropped to (at most) ``crop`` HR pixels around its
centre and shown at least ``crop`` pixels wide (small patches are magnified by an integer
factor, nearest neighbour, so pixels stay visible), in four columns labelled once at the top.
One stretch per band, from the HR crops of all samples together, colours every panel: the
same reflectance has the same colour everywhere in the picture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

#: Column titles, left to right.
COLUMNS = ("LR (nearest)", "bicubic", "SR", "HR")
#: Pixels between panels (and around the grid).
GAP = 4
GAP_COLOUR = 32


def _stretch(panels: Tensor, reference: Tensor, low: float, high: float) -> np.ndarray:
    """``(N, 3, H, W)`` → uint8 ``(N, H, W, 3)``; limits per band from all of ``reference``."""
    flat = reference.transpose(0, 1).flatten(1).float()
    lo = torch.quantile(flat, low / 100.0, dim=1)[None, :, None, None]
    hi = torch.quantile(flat, high / 100.0, dim=1)[None, :, None, None]
    scaled = ((panels.float() - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    return (scaled * 255).round().byte().permute(0, 2, 3, 1).numpy()


def _centre_crop(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = (h - min(size, h)) // 2, (w - min(size, w)) // 2
    return x[..., top : top + min(size, h), left : left + min(size, w)]


def _header(width: int, panel: int) -> np.ndarray:
    height = max(18, panel // 8)
    image = Image.new("RGB", (width, height), (GAP_COLOUR,) * 3)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(11, height * 2 // 3))
    for i, title in enumerate(COLUMNS):
        centre = GAP + i * (panel + GAP) + panel // 2
        draw.text((centre, height // 2), title, fill=(235, 235, 235), font=font, anchor="mm")
    return np.asarray(image)


def preview_grid(
    lr: Tensor,
    bicubic: Tensor,
    sr: Tensor,
    hr: Tensor,
    bands: Sequence[int] = (2, 1, 0),
    max_samples: int = 3,
    percentiles: tuple[float, float] = (2.0, 98.0),
    crop: int = 128,
) -> np.ndarray:
    """Render a preview grid.

    Args:
        lr: ``(B, C, h, w)`` low-resolution input (shown nearest-upsampled).
        bicubic, sr, hr: ``(B, C, H, W)``.
        bands: three band indices shown as R, G, B (for B02, B03, B04, ... that is (2, 1, 0)).
        max_samples: rows in the grid.
        percentiles: stretch limits per band, over the HR crops of all rows together.
        crop: HR pixels shown per panel side (centre crop; the whole patch when smaller, then
            magnified to at least ``crop`` screen pixels).

    Returns:
        ``uint8`` array ``(header + rows·(P + gap) + gap, 4·(P + gap) + gap, 3)``, ``P`` the
        panel side in screen pixels (the crop times the magnification).
    """
    idx = list(bands)[:3]
    while len(idx) < 3:
        idx.append(idx[-1])
    n = min(max_samples, hr.shape[0])
    scale = hr.shape[-1] // lr.shape[-1]
    lr_big = F.interpolate(lr[:n, idx].float(), scale_factor=scale, mode="nearest")
    side = min(crop, hr.shape[-2], hr.shape[-1])
    zoom = max(1, math.ceil(crop / side))
    columns = [_centre_crop(t[:n, idx].detach().float().cpu(), side) for t in (bicubic, sr, hr)]
    columns.insert(0, _centre_crop(lr_big.cpu(), side))
    if zoom > 1:
        columns = [F.interpolate(c, scale_factor=zoom, mode="nearest") for c in columns]
    stretched = [_stretch(c, columns[-1], *percentiles) for c in columns]
    panel = side * zoom
    width = 4 * (panel + GAP) + GAP
    grid = np.full((n * (panel + GAP) + GAP, width, 3), GAP_COLOUR, np.uint8)
    for row in range(n):
        top = GAP + row * (panel + GAP)
        for col, images in enumerate(stretched):
            left = GAP + col * (panel + GAP)
            grid[top : top + panel, left : left + panel] = images[row]
    return np.concatenate([_header(width, panel), grid], axis=0)


def save_preview(grid: np.ndarray, path: str | Path) -> str:
    """Write a grid from :func:`preview_grid` as PNG to a local path or an fsspec URL.

    Never partly visible: a local file is written under a temporary name and renamed; a remote
    object is uploaded in one request.
    """
    if "://" in str(path):
        import fsspec

        buffer = io.BytesIO()
        Image.fromarray(grid).save(buffer, format="PNG")
        with fsspec.open(str(path), "wb") as out:
            out.write(buffer.getvalue())
        return str(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(grid).save(tmp)
    tmp.replace(path)
    return str(path)


def preview_name(iteration: int) -> str:
    """File name of the preview written at ``iteration``."""
    return f"preview_{iteration:08d}.png"


def write_previews(grid: np.ndarray, folder: str, iteration: int) -> str:
    """Save ``grid`` as ``preview_<iteration>.png`` and ``latest.png`` in ``folder``; the first."""
    folder = folder.rstrip("/")
    save_preview(grid, f"{folder}/latest.png")
    return save_preview(grid, f"{folder}/{preview_name(iteration)}")
