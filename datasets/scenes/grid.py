"""The pixel grid a scene is read on, and the rules for putting several bands on one grid."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader

from datasets.errors import SceneReadError

RESAMPLING: dict[str, Resampling] = {
    name: Resampling[name]
    for name in (
        "nearest",
        "bilinear",
        "cubic",
        "cubic_spline",
        "lanczos",
        "average",
        "mode",
        "min",
        "max",
        "med",
        "q1",
        "q3",
        "rms",
    )
}
"""Resampling methods accepted by ``open_scene(resampling=...)``; names as in rasterio."""


def resampling_method(name: str) -> Resampling:
    """The rasterio resampling enum for ``name``.

    Raises:
        ValueError: ``name`` is not a key of :data:`RESAMPLING`; the message lists them.
    """
    try:
        return RESAMPLING[name]
    except KeyError:
        raise ValueError(
            f"Unknown resampling {name!r}; choose one of {', '.join(RESAMPLING)}."
        ) from None


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid: CRS, affine transform (pixel → CRS units) and shape in px."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, dataset: DatasetReader) -> Grid:
        """The grid of an open rasterio dataset."""
        return cls(dataset.crs, dataset.transform, dataset.width, dataset.height)

    @property
    def resolution(self) -> float:
        """Pixel width in CRS units (metres for UTM)."""
        return abs(self.transform.a)

    def matches(self, other: Grid) -> bool:
        """Same CRS, same shape and the same transform up to floating-point noise."""
        return (
            self.crs == other.crs
            and (self.width, self.height) == (other.width, other.height)
            and self.transform.almost_equals(other.transform)
        )

    def covers(self, other: Grid) -> bool:
        """Whether this grid's extent holds ``other``'s (same CRS; up to half a pixel of this
        grid at each edge, the rounding of a coarser grid)."""
        if self.crs != other.crs:
            return False
        tol_x, tol_y = abs(self.transform.a) / 2, abs(self.transform.e) / 2
        mine, theirs = self.bounds, other.bounds
        return (
            mine[0] <= theirs[0] + tol_x
            and mine[1] <= theirs[1] + tol_y
            and mine[2] >= theirs[2] - tol_x
            and mine[3] >= theirs[3] - tol_y
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units (north-up grids)."""
        t = self.transform
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    def rescaled(self, resolution: float) -> Grid:
        """A grid with the same upper-left corner and square ``resolution`` pixels that fits
        inside this grid's extent (partial pixels at the right/bottom edge are dropped)."""
        t = self.transform
        width = math.floor(self.width * abs(t.a) / resolution + 1e-6)
        height = math.floor(self.height * abs(t.e) / resolution + 1e-6)
        if width < 1 or height < 1:
            raise SceneReadError(
                f"resolution={resolution:g} is coarser than the whole {self.width}×{self.height} "
                f"grid at {self.resolution:g}; pass a finer resolution."
            )
        sx = math.copysign(resolution, t.a)
        sy = math.copysign(resolution, t.e)
        return Grid(self.crs, Affine(sx, t.b, t.c, t.d, sy, t.f), width, height)

    def describe(self) -> str:
        """Short human description: ``1933×1947 px at 10 m, origin (435730, 4179460)``."""
        t = self.transform
        return f"{self.width}×{self.height} px at {self.resolution:g} m, origin ({t.c:g}, {t.f:g})"


def target_grid(
    grids: Mapping[str, Grid], where: str, resolution: float | None, resampling: str | None
) -> Grid:
    """Choose the grid that bands with native ``grids`` are read on.

    Without ``resampling`` every band must already lie on one grid (at ``resolution`` if given).
    With it, the grid is that of the first band natively at ``resolution`` or, if none is, that of
    the finest band (first in request order on ties) rescaled to ``resolution`` (same corner).

    Args:
        grids: Native grid of each requested band, in request order.
        where: The scene URI, for messages.
        resolution: Requested pixel size in CRS units, or ``None`` for the native one.
        resampling: Resampling method name, or ``None`` to refuse resampling.

    Raises:
        SceneReadError: Bands in different CRSs; or, without ``resampling``: different
            resolutions, a resolution other than ``resolution``, or mismatched grids.
    """
    crss = {band: grid.crs for band, grid in grids.items()}
    if len({crs.to_string() for crs in crss.values()}) > 1:
        listing = ", ".join(f"{band} {crs}" for band, crs in crss.items())
        raise SceneReadError(
            f"Bands of {where} are in different CRSs ({listing}), so they are not one scene; "
            "choose bands of one product."
        )
    resolutions = {band: grid.resolution for band, grid in grids.items()}
    finest = min(grids.values(), key=lambda grid: grid.resolution)
    if resampling is None:
        listing = ", ".join(f"{band} {res:g} m" for band, res in resolutions.items())
        if len(set(resolutions.values())) > 1:
            raise SceneReadError(
                f"Bands of {where} have different native resolutions ({listing}). Pass "
                "resampling='bilinear' (or 'average', 'nearest', 'cubic', ...) to resample them "
                "onto one grid, or choose bands of one resolution."
            )
        if resolution is not None and not math.isclose(finest.resolution, resolution):
            raise SceneReadError(
                f"resolution={resolution:g} was requested but the bands of {where} are at "
                f"{finest.resolution:g} m; pass resampling='average' (coarser) or 'bilinear' "
                "(finer) to resample them, or leave resolution unset."
            )
        mismatched = [band for band, grid in grids.items() if not grid.matches(finest)]
        if mismatched:
            listing = "; ".join(f"{band}: {grid.describe()}" for band, grid in grids.items())
            raise SceneReadError(
                f"Bands of {where} lie on mismatched grids ({listing}). Pass "
                "resampling='nearest' to align them on the finest band's grid, or fix the files."
            )
        return finest
    resampling_method(resampling)
    if resolution is None:
        return finest
    # A band already at the requested resolution keeps its own grid, so it is read unresampled.
    native = [grid for grid in grids.values() if math.isclose(grid.resolution, resolution)]
    return native[0] if native else finest.rescaled(resolution)
