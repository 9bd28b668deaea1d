"""The three files of a super-resolved scene, written all or nothing.

``<stem>.tif`` (the COG), ``<stem>_qa.tif`` (per-block QA scores, a small float32 COG on a grid of
``block_size`` output pixels) and ``<stem>.stac-item.json`` (the STAC Item), side by side, local
or ``s3://``. :func:`check_bundle` proves all three can be written before any work starts;
:class:`BundlePublisher` publishes the evidence first and the COG last, and removes what it
published if a later step fails, so a COG never appears without its QA and Item.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from affine import Affine

from datasets.cog_writer import CogWriter, RasterProfile
from datasets.errors import OutputError
from datasets.output_location import check_output, is_remote, local_path, publish
from srgan.provenance import OutputGrid

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = "_qa.tif"
ITEM_SUFFIX = ".stac-item.json"


def _stem(out: str) -> str:
    return out[: -len(".tif")] if out.lower().endswith(".tif") else out


def sidecar_uri(out: str) -> str:
    """``<stem>_qa.tif`` beside ``out``."""
    return _stem(out) + SIDECAR_SUFFIX


def item_uri(out: str) -> str:
    """``<stem>.stac-item.json`` beside ``out``."""
    return _stem(out) + ITEM_SUFFIX


def check_bundle(
    out: str, *, overwrite: bool = False, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Fail before any work when the COG, its QA sidecar or its Item cannot be written.

    Raises:
        OutputError: One of the three exists (and not ``overwrite``), is a folder, or its
            location is not writable (the message names which).
    """
    for uri in (out, sidecar_uri(out), item_uri(out)):
        check_output(uri, overwrite=overwrite, storage_options=storage_options)


def remove(uri: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete a published file (best effort: a failure is logged, not raised)."""
    try:
        if is_remote(uri):
            fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
            fs.rm(path)
        else:
            local_path(uri).unlink(missing_ok=True)
    except Exception as err:
        log.warning("could not remove %s after a failed write: %s", uri, err)


class BundlePublisher:
    """Publishes the sidecar and the Item, and takes them back if the COG fails.

    Args:
        out: The COG's path or URI.
        overwrite: Replace existing files.
        storage_options: s3fs options for ``s3://``.
        work_dir: Temporary folder for ``s3://`` outputs.
    """

    def __init__(
        self,
        out: str,
        *,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        work_dir: str | None = None,
    ) -> None:
        self.out = out
        self.overwrite = overwrite
        self.storage_options = storage_options
        self.work_dir = work_dir
        self.published: list[str] = []

    def sidecar(self, grids: dict[str, np.ndarray], grid: OutputGrid, block_size: int) -> str:
        """Write the per-block grids as a float32 COG (one named band per grid, nan nodata)."""
        names = list(grids)
        stack = np.stack([grids[n] for n in names]).astype(np.float32)
        profile = RasterProfile(
            width=stack.shape[2],
            height=stack.shape[1],
            crs=grid.crs,
            transform=grid.transform @ Affine.scale(block_size),
            band_names=names,
            dtype="float32",
            nodata=float("nan"),
            compress="deflate",
            compress_level=6,
            tags={"QA_BLOCK_SIZE": str(block_size), "QA_OF": self.out},
        )
        uri = sidecar_uri(self.out)
        with CogWriter(
            uri,
            profile,
            overwrite=self.overwrite,
            storage_options=self.storage_options,
            work_dir=self.work_dir,
            threads=1,
        ) as writer:
            writer.write(0, stack)
            published = writer.commit()
        self.published.append(published)
        return published

    def item(self, item: dict[str, Any]) -> str:
        """Write the Item's JSON beside the COG (atomic rename or one upload)."""
        uri = item_uri(self.out)
        folder = self.work_dir if is_remote(uri) else str(local_path(uri).parent)
        with tempfile.TemporaryDirectory(prefix=".item-", dir=folder) as tmp:
            path = Path(tmp) / "item.json"
            try:
                path.write_text(json.dumps(item, indent=2, default=str))
            except OSError as err:
                raise OutputError(f"cannot write the STAC Item for {self.out}: {err}") from err
            published = publish(
                path, uri, overwrite=self.overwrite, storage_options=self.storage_options
            )
        self.published.append(published)
        return published

    def roll_back(self) -> None:
        """Remove everything published so far (after a failure)."""
        for uri in reversed(self.published):
            remove(uri, self.storage_options)
        self.published.clear()
