"""Where a super-resolved scene came from, as a STAC Item written beside its COG.

The Item (STAC 1.1, pystac) describes the COG asset with the projection, raster and eo
extensions, links the QA sidecar as a second asset, and carries two fields of this product:
``s2sr:lineage`` (input scene id and URI, harmonisation applied, checkpoint path and sha256,
weights, training run key, patch store and version, degradation, software version) and
``s2sr:qa`` (the QA summary, :class:`~srgan.qa_record.QASummary`).

Example::

    item = stac_item(OutputGrid(...), OutputLineage(...), qa_summary, cog_href, sidecar_href)
    item.to_dict()
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import pystac
from affine import Affine
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension
from rasterio.crs import CRS
from rasterio.warp import transform_bounds, transform_geom

#: Common name and centre wavelength (µm) of each Sentinel-2 MSI band (S2A values).
S2_BAND_INFO: dict[str, tuple[str | None, float]] = {
    "B01": ("coastal", 0.443),
    "B02": ("blue", 0.490),
    "B03": ("green", 0.560),
    "B04": ("red", 0.665),
    "B05": ("rededge", 0.705),
    "B06": ("rededge", 0.740),
    "B07": ("rededge", 0.783),
    "B08": ("nir", 0.842),
    "B8A": ("nir08", 0.865),
    "B09": ("nir09", 0.945),
    "B10": ("cirrus", 1.375),
    "B11": ("swir16", 1.610),
    "B12": ("swir22", 2.190),
}
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_ACQUIRED = re.compile(r"(\d{8}T\d{6})")


@dataclass(frozen=True)
class OutputGrid:
    """The output raster: grid and pixel encoding.

    Attributes:
        crs: Its CRS; ``transform`` its affine transform; ``width``/``height`` in pixels.
        bands: Band names in file order.
        dtype: ``"uint16"`` (reflectance ×10000) or ``"float32"`` (reflectance).
        nodata: The nodata value in the file.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int
    bands: tuple[str, ...]
    dtype: str
    nodata: float


@dataclass(frozen=True)
class OutputLineage:
    """Everything an output was made from (``s2sr:lineage`` of its Item).

    Attributes:
        scene_id: The input scene's identifier; ``scene`` its URI.
        harmonisation: The radiometric harmonisation applied to the input (processing
            baseline, per-band offsets, quantification, source of the decision) as recorded
            by the scene reader, or ``None`` when none was recorded.
        checkpoint: Checkpoint path or URI; ``checkpoint_sha256`` the hash of its bytes.
        weights: ``"ema"`` or ``"generator"``.
        run_key: Training run key (the run folder's name), if recorded.
        store: Patch store URI and ``store_version`` its version, if recorded.
        degradation: Degradation of the training LR patches, if recorded.
        software: ``s2-srgan <version>``.
    """

    scene_id: str
    scene: str
    harmonisation: dict[str, Any] | None
    checkpoint: str
    checkpoint_sha256: str
    weights: str
    run_key: str | None
    store: str | None
    store_version: str | None
    degradation: dict[str, Any] | None
    software: str


def file_sha256(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """sha256 (hex) of a local or fsspec-reachable file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    options = storage_options if "://" in uri and not uri.startswith("file://") else {}
    with fsspec.open(uri, "rb", **(options or {})) as f:
        while chunk := f.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def eo_bands(names: Sequence[str]) -> list[Band]:
    """eo band objects (name, common name, centre wavelength) of Sentinel-2 band names."""
    return [
        Band.create(
            name=name,
            common_name=S2_BAND_INFO.get(name, (None, 0.0))[0],
            center_wavelength=S2_BAND_INFO[name][1] if name in S2_BAND_INFO else None,
        )
        for name in names
    ]


def acquisition_time(scene_id: str) -> datetime | None:
    """The sensing time in a Sentinel-2 product name (``…_20220105T154651_…``), if any."""
    found = _ACQUIRED.search(scene_id)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def _geometry(grid: OutputGrid) -> tuple[dict[str, Any], list[float]]:
    left, top = grid.transform @ (0, 0)
    right, bottom = grid.transform @ (grid.width, grid.height)
    ring = [[left, top], [right, top], [right, bottom], [left, bottom], [left, top]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    geometry = transform_geom(grid.crs, "EPSG:4326", polygon, precision=7)
    bounds = transform_bounds(grid.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    return dict(geometry), [float(v) for v in bounds]


def stac_item(
    item_id: str,
    grid: OutputGrid,
    lineage: OutputLineage,
    qa: dict[str, Any] | None,
    cog_href: str,
    sidecar_href: str | None,
    created: datetime | None = None,
) -> pystac.Item:
    """The STAC Item of one super-resolved scene.

    Args:
        item_id: Item id (the output's file stem).
        grid: The output raster.
        lineage: Where it came from.
        qa: ``QASummary.as_dict()``, or ``None`` when QA was not run.
        cog_href: URI of the COG; ``sidecar_href`` of the QA sidecar COG.
        created: Processing time (default: now).

    Returns:
        A STAC 1.1 Item with projection, raster and eo extensions; ``datetime`` is the
        acquisition time parsed from the scene id, else the processing time (then
        ``s2sr:datetime_source`` says so).
    """
    created = created or datetime.now(UTC)
    acquired = acquisition_time(lineage.scene_id)
    geometry, bbox = _geometry(grid)
    properties: dict[str, Any] = {
        "created": created.isoformat().replace("+00:00", "Z"),
        "s2sr:datetime_source": "scene id" if acquired else "processing time",
        "s2sr:lineage": asdict(lineage),
        "processing:software": {"s2-srgan": lineage.software.removeprefix("s2-srgan ")},
    }
    if qa is not None:
        properties["s2sr:qa"] = qa
    item = pystac.Item(item_id, geometry, bbox, acquired or created, properties)
    item.add_link(pystac.Link("derived_from", lineage.scene, title=lineage.scene_id))
    resolution = abs(grid.transform.a)
    asset = pystac.Asset(cog_href, title="super-resolved reflectance", media_type=COG_MEDIA_TYPE)
    asset.roles = ["data"]
    item.add_asset("data", asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = grid.crs.to_epsg()
    if epsg is not None:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.code = None
        proj.wkt2 = grid.crs.to_wkt()
    proj.shape = [grid.height, grid.width]
    proj.transform = list(grid.transform)[:6]
    left, top = grid.transform @ (0, 0)
    right, bottom = grid.transform @ (grid.width, grid.height)
    proj.bbox = [left, min(top, bottom), right, max(top, bottom)]
    uint16 = grid.dtype == "uint16"
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=grid.nodata if uint16 else NoDataStrings.NAN,
            data_type=DataType.UINT16 if uint16 else DataType.FLOAT32,
            spatial_resolution=resolution,
            scale=1e-4 if uint16 else 1.0,
            offset=0.0,
        )
        for _ in grid.bands
    ]
    EOExtension.ext(asset, add_if_missing=True).bands = eo_bands(grid.bands)
    if sidecar_href is not None:
        sidecar = pystac.Asset(
            sidecar_href, title="QA: per-block consistency scores", media_type=COG_MEDIA_TYPE
        )
        sidecar.roles = ["metadata", "qa"]
        item.add_asset("qa", sidecar)
    return item
