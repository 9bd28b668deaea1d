"""Open a scene whatever its layout, and find the scenes below a folder or S3 prefix.

The layout is told by content, not by name: a folder with a ``GRANULE/`` sub-folder is a
``.SAFE`` product; a zip archive holding one such folder is a zipped product; a folder with
files named after bands is a band folder; a single raster file is a multi-band scene whose band
descriptions name the bands; a STAC Item (JSON file or URL) names its band assets.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from datasets.errors import HarmonisationError, SceneReadError
from datasets.harmonise import HarmonisationParam, ProductMetadata, RadiometryHints, decide
from datasets.scenes.band_folder import band_files, band_folder_layout
from datasets.scenes.bands import DEFAULT_BANDS, check_bands
from datasets.scenes.base import Scene
from datasets.scenes.grid import resampling_method
from datasets.scenes.layout import Layout
from datasets.scenes.multiband import described_bands, multiband_sources
from datasets.scenes.product_metadata import METADATA_NAMES, parse_product_metadata
from datasets.scenes.safe import is_safe, product_metadata, safe_layout
from datasets.scenes.stac import Signer, is_stac_uri, resolve_signer, stac_layout
from datasets.scenes.storage import Entry, SceneStore
from datasets.scenes.zipped import ZipSceneStore, is_zip

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".j2k", ".vrt", ".img")
"""Files with these suffixes are probed as multi-band scenes by :func:`find_scenes`."""

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Folders of a .SAFE tree whose names every product shares; they cannot name a scene alone.
_GENERIC_FOLDER = re.compile(r"^(IMG_DATA|R\d+m)$", re.IGNORECASE)
_log = logging.getLogger(__name__)


def _basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _folder_scene_id(uri: str) -> str:
    """The scene id of a band folder: its name, or for the folders every ``.SAFE`` tree has
    (``IMG_DATA``, ``R10m``...) the granule's name, plus the resolution folder if any.

    ``…/GRANULE/L1C_T18SVG_A014802_20200101T155614/IMG_DATA`` → ``L1C_T18SVG_A014802_…``,
    ``…/GRANULE/L2A_T33UUP_A…/IMG_DATA/R10m`` → ``L2A_T33UUP_A…_R10m``.
    """
    parts = [part for part in uri.split("/") if part]
    generic: list[str] = []
    while len(parts) > 1 and _GENERIC_FOLDER.match(parts[-1]):
        generic.insert(0, parts.pop())
    if not generic:
        return parts[-1] if parts else "scene"
    suffix = [name for name in generic if name.upper() != "IMG_DATA"]
    return "_".join([parts[-1], *suffix])


def _missing(uri: str) -> SceneReadError:
    return SceneReadError(
        f"{uri} does not exist. Check the path; for S3 check the bucket and prefix and "
        "storage_options['endpoint_url']."
    )


def open_scene(
    uri: str | os.PathLike[str],
    bands: Sequence[str] = DEFAULT_BANDS,
    *,
    resolution: float | None = None,
    resampling: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    harmonisation: HarmonisationParam | None = None,
    sign: str | Signer | None = None,
) -> Scene:
    """Open the given bands of a Sentinel-2 scene on one grid, harmonised.

    Args:
        uri: Band folder, ``.SAFE`` product folder, zipped ``.SAFE`` (``….SAFE.zip``) or
            multi-band raster; local or ``s3://``.
        bands: Band names (see :data:`S2_BANDS`), in the order :meth:`Scene.read` returns them.
        resolution: Pixel size (m) of the scene grid. Picks the ``R<res>m`` files of Level-2A
            products; other bands must be at it natively unless ``resampling`` is given.
        resampling: Resampling method name (see :data:`RESAMPLING`, e.g. ``"bilinear"``,
            ``"average"``). Without it, bands of different resolutions are refused; with it,
            they are resampled onto the finest band's grid (or onto ``resolution``).
        storage_options: s3fs-style options for ``s3://`` URIs (``endpoint_url``, ``key``,
            ``secret``, ``token``, ``anon``).
        harmonisation: The radiometry of scenes that carry no product metadata (see
            :mod:`datasets.harmonise`); product metadata and STAC Items take precedence.
        sign: For STAC Items, a function (or a name of
            :data:`~datasets.scenes.stac.SIGNERS`) that signs asset URLs before use.

    Returns:
        An open :class:`Scene`; close it (or use ``with``) when done. Its ``scene_id`` is the
        product name of a ``.SAFE``, the name of a file without its suffix, or the name of a
        band folder; for the ``IMG_DATA`` and ``R<res>m`` folders of a ``.SAFE`` tree, the
        granule's name (plus ``_R<res>m``).

    Raises:
        ValueError: Unknown band or resampling name, or a non-positive resolution.
        HarmonisationError: The scene's radiometry cannot be told safely (see
            :mod:`datasets.harmonise`); the message names the parameter to set.
        SceneReadError: The scene is missing, unreadable, or its bands cannot be put on one
            grid as asked; the message says what to change.

    Example::

        with open_scene("S2A_MSIL2A_...SAFE", ("B02", "B05"), resolution=20) as scene:
            pixels = scene.read()  # (2, 5490, 5490) uint16
    """
    wanted = check_bands(bands)
    if resampling is not None:
        resampling_method(resampling)
    if resolution is not None and not resolution > 0:
        raise ValueError(f"resolution must be a positive pixel size in metres, not {resolution}.")
    signer = resolve_signer(sign)
    store = SceneStore.for_uri(uri, storage_options)
    text = os.fspath(uri)
    where = text if text.startswith(("http://", "https://")) else store.normalize(text)
    if is_stac_uri(where):
        store, layout = stac_layout(where, wanted, storage_options, signer)
    else:
        store, layout = _file_layout(store, where, wanted, resolution)
    scene_id = _UNSAFE_ID_CHARS.sub("_", layout.scene_id).strip("._") or "scene"
    return Scene(
        where,
        scene_id,
        layout.sources,
        store,
        resolution=resolution,
        resampling=resampling,
        harmonisation=decide(layout.hints, harmonisation, where, wanted),
        masks=layout.masks,
        grid_claims=layout.grid_claims,
    )


def _file_layout(
    store: SceneStore, where: str, wanted: Sequence[str], resolution: float | None
) -> tuple[SceneStore, Layout]:
    """The layout of a product, zip, band folder or multi-band raster at ``where``."""
    kind = store.kind(where)
    if kind is None:
        raise _missing(where)
    if kind == "file" and is_zip(where):
        store, layout = _zipped_layout(store, where, wanted, resolution)
    elif kind == "file":
        name = _basename(where)
        layout = Layout(
            name.rsplit(".", 1)[0],
            multiband_sources(store, where, wanted),
            RadiometryHints(names=[name]),
        )
    else:
        entries = store.listdir(where)
        if is_safe(entries):
            layout = safe_layout(store, where, wanted, resolution)
        else:
            hints = RadiometryHints(
                _folder_metadata(store, where, entries), names=[_basename(where)]
            )
            layout = band_folder_layout(
                entries, wanted, where, resolution, _folder_scene_id(where), hints
            )
    return store, layout


def _zipped_layout(
    store: SceneStore, where: str, bands: Sequence[str], resolution: float | None
) -> tuple[ZipSceneStore, Layout]:
    """The ``.SAFE`` product inside the zip archive ``where``, read in place."""
    archive = ZipSceneStore(where, store)
    products = [
        entry
        for entry in archive.top_level()
        if entry.is_dir and is_safe(archive.listdir(entry.uri))
    ]
    if len(products) != 1:
        names = ", ".join(entry.name for entry in archive.top_level()[:10]) or "nothing"
        raise SceneReadError(
            f"{where} holds {len(products)} .SAFE products (it holds: {names}); a zipped scene "
            "is one .SAFE folder at the top of the archive, as the Copernicus Data Space "
            "delivers it. Unzip it and tile the products one by one."
        )
    return archive, safe_layout(archive, products[0].uri, bands, resolution)


def _folder_metadata(
    store: SceneStore, where: str, entries: Sequence[Entry]
) -> ProductMetadata | HarmonisationError | None:
    """Product metadata of a band folder: a metadata file inside it, or that of the ``.SAFE``
    product whose ``GRANULE/<granule>/IMG_DATA[/R<res>m]`` it is; ``None`` when neither."""
    inside = [entry for entry in entries if entry.name in METADATA_NAMES]
    if inside:
        try:
            return parse_product_metadata(store.read_bytes(inside[0].uri), inside[0].uri)
        except HarmonisationError as err:
            return err
    parts = where.rstrip("/").split("/")
    if "GRANULE" in parts[:-1]:
        product = "/".join(parts[: len(parts) - 1 - parts[::-1].index("GRANULE")])
        if product and store.kind(product) == "dir":
            found = product_metadata(store, product, store.listdir(product))
            return found if not isinstance(found, HarmonisationError) else None
    return None


def find_scenes(
    root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Find the scenes at or below ``root``.

    A scene is a ``.SAFE`` product, a zip archive holding one, a folder holding band files, or
    a raster file (suffix in :data:`RASTER_SUFFIXES`) whose band descriptions name bands. The
    search does not descend into scenes, hidden folders or ``*.zarr`` stores. Files that cannot
    be opened are skipped with a warning in the log.

    Args:
        root: Local folder or ``s3://bucket/prefix`` (or one scene).
        storage_options: s3fs-style options for ``s3://`` URIs.

    Returns:
        Sorted scene URIs (absolute local paths or ``s3://`` URIs) for :func:`open_scene`;
        empty when ``root`` holds none.

    Raises:
        SceneReadError: ``root`` does not exist or cannot be listed (e.g. access denied).
    """
    store = SceneStore.for_uri(root, storage_options)
    where = store.normalize(root)
    kind = store.kind(where)
    if kind is None:
        raise _missing(where)
    found: list[str] = []
    if kind == "file":
        if _is_scene_file(store, where):
            found.append(where)
    else:
        _walk(store, where, found)
    return sorted(found)


def _walk(store: SceneStore, uri: str, found: list[str]) -> None:
    entries = store.listdir(uri)
    if is_safe(entries) or band_files(entries):
        found.append(uri)
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(".zarr"):
            continue
        if entry.is_dir:
            _walk(store, entry.uri, found)
        elif entry.name.lower().endswith((*RASTER_SUFFIXES, ".zip")) and _is_scene_file(
            store, entry.uri
        ):
            found.append(entry.uri)


def _is_scene_file(store: SceneStore, uri: str) -> bool:
    """Whether the file ``uri`` is a zipped product or a multi-band scene."""
    try:
        if is_zip(uri):
            archive = ZipSceneStore(uri, store)
            return any(
                entry.is_dir and is_safe(archive.listdir(entry.uri))
                for entry in archive.top_level()
            )
        return bool(described_bands(store, uri))
    except SceneReadError as err:
        _log.warning("Skipping %s: %s", uri, err)
        return False
