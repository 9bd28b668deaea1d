"""Scenes stored as one multi-band raster whose band descriptions name the bands (``B02``, ...)."""

from __future__ import annotations

from collections.abc import Sequence

from datasets.errors import SceneReadError
from datasets.scenes.bands import canonical_band
from datasets.scenes.base import BandSource
from datasets.scenes.storage import SceneStore


def described_bands(store: SceneStore, uri: str) -> dict[str, int]:
    """Map band name → 1-based index from the band descriptions of the raster at ``uri``.

    Descriptions that name no Sentinel-2 band (``"mask"``, empty) are skipped.

    Raises:
        SceneReadError: The file cannot be opened, or two bands carry the same name.
    """
    with store.open_raster(uri) as dataset:
        descriptions = dataset.descriptions
    named: dict[str, int] = {}
    for index, description in enumerate(descriptions, start=1):
        band = canonical_band(description) if description else None
        if band is None:
            continue
        if band in named:
            raise SceneReadError(
                f"{uri} describes bands {named[band]} and {index} both as {band}; give each "
                "band a distinct description."
            )
        named[band] = index
    return named


def multiband_sources(store: SceneStore, uri: str, bands: Sequence[str]) -> list[BandSource]:
    """Sources for ``bands`` in one multi-band raster file.

    Raises:
        SceneReadError: The file has no band descriptions naming bands, or lacks a requested
            band (the message lists the bands found).
    """
    named = described_bands(store, uri)
    if not named:
        raise SceneReadError(
            f"{uri} has no band descriptions naming Sentinel-2 bands (B02, B03, ...), so its "
            "bands cannot be identified. Set them (rasterio: dst.set_band_description(1, 'B02')) "
            "or store one file per band in a folder (B02.tif, B03.tif, ...)."
        )
    missing = [band for band in bands if band not in named]
    if missing:
        raise SceneReadError(
            f"Band(s) {', '.join(missing)} missing in {uri}; bands found: {', '.join(named)}. "
            "Choose bands from those found."
        )
    return [BandSource(band, uri, named[band]) for band in bands]
