"""One harmonisation rule for every reader: digital numbers in, reflectance ×10000 out.

Since processing baseline 04.00 (every product from 2022-01-25 on) Sentinel-2 L1C and L2A
digital numbers carry an offset: reflectance = (DN + offset) / quantification, with offset −1000
and quantification 10000. The patch store and every output hold *harmonised* values::

    stored = round((DN + offset) × 10000 / quantification)        (uint16)

so a 2023 scene and a 2021 scene of the same surface store the same numbers. Where the offset
and quantification come from, first match wins (:func:`decide`):

1. the product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` of a ``.SAFE``, zipped or not,
   or the metadata file a STAC Item links);
2. the STAC Item (``earthsearch:boa_offset_applied``, ``raster:bands`` scale/offset,
   ``s2:processing_baseline``);
3. the explicit ``harmonisation`` parameter (:class:`HarmonisationParam`);
4. the names: a product or file name dated before 2022-01-25 (or naming a baseline before
   04.00) carries no offset; one dated on or after it is refused, since guessing would store
   it 0.1 reflectance too bright or too dark;
5. nothing dates the scene: no offset, recorded as such.

DN 0 (or the files' declared nodata) stays nodata (0). A DN from 1 up to −offset is zero or
negative reflectance (common over dark water in L2A): it is never wrapped but clamped to 1, the
smallest valid stored value, and counted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from datasets.errors import HarmonisationError

STORED_SCALE = 10000
"""Stored and produced values are reflectance × this factor."""
OFFSET_DATE = date(2022, 1, 25)
"""First day of processing baseline 04.00, which introduced the radiometric offset."""
OFFSET_BASELINE = (4, 0)
ESA_OFFSET = -1000.0
"""The offset (DN) ESA applies from baseline 04.00 on, in every band."""
_UINT16_MAX = 65535
# Dates (YYYYMMDD, optionally followed by THHMMSS) and baselines (_N0400_) in product names.
_NAME_DATE = re.compile(r"(?<![0-9])(20[1-9][0-9])(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])")
_NAME_BASELINE = re.compile(r"_N(\d{2})(\d{2})(?=_|$|\.)")

_BASELINE = re.compile(r"^\s*(\d{1,2})\.(\d{1,2})\s*$")

Source = Literal["product-metadata", "stac-item", "parameter", "name", "undated"]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductMetadata:
    """Radiometry of one product, as its metadata file declares it.

    Attributes:
        name: The metadata file (for messages and records), e.g. ``…SAFE/MTD_MSIL2A.xml``.
        level: ``"L1C"`` or ``"L2A"``.
        baseline: Processing baseline, e.g. ``"04.00"``.
        quantification: Digital numbers per unit reflectance (10000).
        offsets: Additive offset per band in DN (ESA's sign: −1000), empty before 04.00.
        sensing_date: Date of ``PRODUCT_START_TIME``, if present.
    """

    name: str
    level: str
    baseline: str
    quantification: float
    offsets: dict[str, float]
    sensing_date: date | None


def baseline_tuple(baseline: str) -> tuple[int, int] | None:
    """``"04.00"`` → ``(4, 0)``; ``None`` when the text is not a baseline."""
    match = _BASELINE.match(baseline)
    return (int(match.group(1)), int(match.group(2))) if match else None


class HarmonisationParam(BaseModel):
    """An explicit statement of how a scene's DNs become reflectance, for scenes that carry no
    product metadata: reflectance = (DN + ``offset``) / ``quantification``.

    Examples: ``{"offset": -1000}`` for bare band files of a product from 2022-01-25 on;
    ``{"offset": 0}`` for files already harmonised; ``{"quantification": 255}`` for an 8-bit
    export whose 255 means reflectance 1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset: float = Field(default=0.0, ge=-10000, le=10000)
    quantification: float = Field(default=10000.0, gt=0, le=1e6)


@dataclass(frozen=True)
class ItemRadiometry:
    """What a STAC Item says about its pixels' radiometry.

    Attributes:
        item_id: The Item's id, for records and messages.
        offset_applied: ``earthsearch:boa_offset_applied``, if present.
        baseline: ``s2:processing_baseline``, if present.
        band_scaling: Band → ``(scale, offset)`` from the asset's ``raster:bands``
            (reflectance = DN × scale + offset), for the bands that declare both.
    """

    item_id: str
    offset_applied: bool | None = None
    baseline: str | None = None
    band_scaling: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RadiometryHints:
    """Everything a reader found that may tell a scene's radiometry (see :func:`decide`).

    Attributes:
        metadata: The parsed product metadata, or the error that reading it raised.
        item: What a STAC Item says.
        names: Product, folder and file names that may carry a date or a baseline.
    """

    metadata: ProductMetadata | HarmonisationError | None = None
    item: ItemRadiometry | None = None
    names: Sequence[str] = ()


@dataclass(frozen=True)
class Harmonisation:
    """How one scene's digital numbers become stored reflectance ×10000.

    Attributes:
        source: Which rule decided it: ``product-metadata``, ``stac-item``, ``parameter``,
            ``name`` (dated or baselined by its names) or ``undated``.
        detail: Human-readable origin, e.g. ``MTD_MSIL2A.xml: BOA_ADD_OFFSET``.
        offsets: Additive offset (DN) per band, ESA's sign; bands not listed have none.
        quantification: DNs per unit reflectance.
        baseline: Processing baseline, when known.
    """

    source: Source
    detail: str
    offsets: Mapping[str, float] = field(default_factory=dict)
    quantification: float = float(STORED_SCALE)
    baseline: str | None = None

    def offset(self, band: str) -> float:
        """Offset of ``band`` in DN (0 when none is declared)."""
        return float(self.offsets.get(band, 0.0))

    def is_identity(self, bands: Iterable[str]) -> bool:
        """Whether ``bands`` are stored as read (no offset, quantification 10000)."""
        return self.quantification == STORED_SCALE and all(self.offset(b) == 0 for b in bands)

    def apply(
        self, dn: np.ndarray, bands: Sequence[str], nodata: float | None
    ) -> tuple[np.ndarray, int]:
        """Harmonise ``(C, h, w)`` digital numbers of ``bands``.

        Args:
            dn: Integer digital numbers as read from the files.
            bands: Band of each of the ``C`` planes.
            nodata: The files' nodata value (``None``: 0, Sentinel-2's fill value).

        Returns:
            ``(values, clamped)``: uint16 reflectance ×10000 with nodata as 0, and the number
            of valid values clamped to 1 (zero or negative reflectance). For identity
            harmonisation ``dn`` itself is returned, unconverted.
        """
        if self.is_identity(bands):
            return dn, 0
        missing = 0 if nodata is None else nodata
        gain = STORED_SCALE / self.quantification
        out = np.empty(dn.shape, dtype=np.uint16)
        clamped = 0
        for i, band in enumerate(bands):
            raw = dn[i]
            offset = self.offset(band)
            if gain == 1.0 and float(offset).is_integer():
                value = raw.astype(np.int64) + int(offset)  # exact and twice as fast
            else:
                value = np.rint((raw.astype(np.float64) + offset) * gain)
            valid = raw != missing
            low = value < 1
            clamped += int(np.count_nonzero(low & valid))
            np.clip(value, 1, _UINT16_MAX, out=value)
            value[~valid] = 0
            out[i] = value
        return out, clamped

    def count_clamped(self, dn: np.ndarray, bands: Sequence[str], nodata: float | None) -> int:
        """How many valid values of ``(C, h, w)`` digital numbers :meth:`apply` clamps to 1."""
        if self.is_identity(bands):
            return 0
        missing = 0 if nodata is None else nodata
        gain = STORED_SCALE / self.quantification
        return sum(
            int(
                np.count_nonzero(
                    (dn[i] != missing) & (np.rint((dn[i] + self.offset(band)) * gain) < 1)
                )
            )
            for i, band in enumerate(bands)
        )

    def restore(self, values: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        """Undo :meth:`apply` on ``(C, h, w)`` reflectance ×10000 (float or integer): back to
        the product's own DN convention, e.g. +1000 for baseline 04.00. 0 stays 0."""
        gain = self.quantification / STORED_SCALE
        out = values.astype(np.float64)
        for i, band in enumerate(bands):
            valid = out[i] != 0
            out[i][valid] = out[i][valid] * gain - self.offset(band)
        return out

    def to_record(self, bands: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready record of what was applied (for the store, COG metadata, STAC Items)."""
        chosen = list(bands) if bands is not None else sorted(self.offsets)
        return {
            "source": self.source,
            "detail": self.detail,
            "baseline": self.baseline,
            "quantification": self.quantification,
            "offsets": {band: self.offset(band) for band in chosen},
        }


def name_evidence(names: Iterable[str]) -> tuple[date | None, str | None]:
    """The latest date and the baseline (``"04.00"``) named in ``names``, if any.

    The latest date is used because a product name ends with its generation date: a 2018 scene
    reprocessed in 2023 carries the offset.
    """
    dates: list[date] = []
    baseline = None
    for name in names:
        for match in _NAME_DATE.finditer(name):
            try:
                dates.append(date(*(int(part) for part in match.groups())))
            except ValueError:
                continue
        found = _NAME_BASELINE.search(name)
        if found is not None:
            baseline = f"{found.group(1)}.{found.group(2)}"
    return (max(dates) if dates else None), baseline


def decide(
    hints: RadiometryHints, param: HarmonisationParam | None, where: str, bands: Sequence[str]
) -> Harmonisation:
    """Apply the harmonisation rule (module docstring) to what a reader found.

    Args:
        hints: Product metadata, STAC Item radiometry and names found by the reader.
        param: The user's explicit harmonisation, if any.
        where: The scene URI, for messages.
        bands: The requested bands (a STAC Item must declare scaling for all of them).

    Raises:
        HarmonisationError: The product metadata is unreadable and no parameter is given, or the
            names date the scene on or after 2022-01-25 and nothing else tells its offset.
    """
    metadata = hints.metadata
    if isinstance(metadata, ProductMetadata):
        _note_ignored(param, where, metadata.name)
        return Harmonisation(
            "product-metadata",
            f"{metadata.name} ({metadata.level}, baseline {metadata.baseline})",
            dict(metadata.offsets),
            metadata.quantification,
            metadata.baseline,
        )
    if isinstance(metadata, HarmonisationError) and param is None:
        raise metadata
    if hints.item is not None:
        from_item = _from_item(hints.item, bands)
        if from_item is not None:
            _note_ignored(param, where, f"STAC Item {hints.item.item_id}")
            return from_item
    if param is not None:
        return Harmonisation(
            "parameter",
            f"harmonisation parameter (offset {param.offset:g}, "
            f"quantification {param.quantification:g})",
            dict.fromkeys(bands, param.offset),
            param.quantification,
        )
    return _from_names(hints.names, where)


def _from_item(item: ItemRadiometry, bands: Sequence[str]) -> Harmonisation | None:
    where = f"STAC Item {item.item_id}"
    if item.offset_applied:
        return Harmonisation(
            "stac-item", f"{where}: earthsearch:boa_offset_applied", {}, 10000.0, item.baseline
        )
    if bands and all(band in item.band_scaling for band in bands):
        scalings = {item.band_scaling[band] for band in bands}
        if len({scale for scale, _ in scalings}) == 1:
            scale = next(iter(scalings))[0]
            offsets = {band: item.band_scaling[band][1] / scale for band in bands}
            return Harmonisation(
                "stac-item", f"{where}: raster:bands", offsets, 1.0 / scale, item.baseline
            )
    version = baseline_tuple(item.baseline or "")
    if version is not None:
        offset = ESA_OFFSET if version >= OFFSET_BASELINE else 0.0
        return Harmonisation(
            "stac-item",
            f"{where}: s2:processing_baseline {item.baseline}",
            dict.fromkeys(bands, offset),
            10000.0,
            item.baseline,
        )
    return None


def _from_names(names: Sequence[str], where: str) -> Harmonisation:
    dated, baseline = name_evidence(names)
    version = baseline_tuple(baseline) if baseline else None
    after = (
        (version >= OFFSET_BASELINE) if version else (dated is not None and dated >= OFFSET_DATE)
    )
    if after:
        evidence = f"baseline {baseline}" if version else f"date {dated}"
        raise HarmonisationError(
            f"{where} is named with {evidence}, so its digital numbers may carry the −1000 "
            "offset of processing baseline 04.00 (from 2022-01-25), but it comes without "
            "product metadata saying so. Tile the whole .SAFE product (zipped or not), or pass "
            "harmonisation={'offset': -1000} if these are ESA's digital numbers, or "
            "harmonisation={'offset': 0} if they are already harmonised."
        )
    if version or dated:
        evidence = f"baseline {baseline}" if version else f"date {dated}"
        return Harmonisation(
            "name", f"named with {evidence} (before 2022-01-25)", {}, 10000.0, baseline
        )
    return Harmonisation("undated", "no metadata, no date in its names: stored as read")


def _note_ignored(param: HarmonisationParam | None, where: str, source: str) -> None:
    if param is not None:
        _log.warning(
            "%s: the harmonisation parameter is not used, since %s states the radiometry",
            where,
            source,
        )
