"""Preview grids: LR | bicubic | SR | HR rows with a percentile stretch, saved as PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


def _stretch(images: list[Tensor], reference: Tensor, low: float, high: float) -> list[np.ndarray]:
    # One stretch per band, taken from HR, so all four panels share colours and are comparable.
    flat = reference.flatten(1).float()
    lo = torch.quantile(flat, low / 100.0, dim=1)[:, None, None]
    hi = torch.quantile(flat, high / 100.0, dim=1)[:, None, None]
    span = (hi - lo).clamp_min(1e-6)
    return [
        (((img.float() - lo) / span).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        for img in images
    ]


def preview_grid(
    lr: Tensor,
    bicubic: Tensor,
    sr: Tensor,
    hr: Tensor,
    bands: Sequence[int] = (2, 1, 0),
    max_samples: int = 4,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """Render a preview grid.

    Args:
        lr: ``(B, C, h, w)`` low-resolution input (shown nearest-upsampled).
        bicubic, sr, hr: ``(B, C, H, W)``.
        bands: three band indices shown as R, G, B (for B02, B03, B04, ... that is (2, 1, 0)).
        max_samples: rows in the grid.
        percentiles: stretch limits per band, computed on each HR sample.

    Returns:
        ``uint8`` array ``(rows*H, 4*W, 3)``.
    """
    idx = list(bands)[:3]
    while len(idx) < 3:
        idx.append(idx[-1])
    scale = hr.shape[-1] // lr.shape[-1]
    lr_big = F.interpolate(lr.float(), scale_factor=scale, mode="nearest")
    rows = []
    for i in range(min(max_samples, hr.shape[0])):
        panels = [t[i, idx].detach().cpu() for t in (lr_big, bicubic, sr, hr)]
        rows.append(np.concatenate(_stretch(panels, panels[-1], *percentiles), axis=1))
    return np.concatenate(rows, axis=0)


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
