"""Super-resolution applies the same harmonisation as tiling, records it, and can write the
product's own digital numbers back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from data.s2_products.data import OFFSET, Products

from datasets.errors import HarmonisationError
from datasets.harmonise import HarmonisationParam
from srgan.super_resolve_scene import super_resolve_scene

TILING = {"tile_size": 64, "overlap": 16, "batch_size": 8}


def _sr(scene: Path, checkpoint: str, out: Path, **options: object) -> tuple[np.ndarray, dict]:
    result = super_resolve_scene(scene, checkpoint, out, **TILING, **options)  # type: ignore[arg-type]
    with rasterio.open(result.output) as ds:
        return ds.read(), ds.tags()


def test_a_2023_product_super_resolves_like_its_2020_twin(
    s2_products: Products, tiny_checkpoint: str, tmp_path: Path
) -> None:
    """The model sees harmonised reflectance whatever the baseline: the 2023 re-encoding (DN +
    1000) gives the same output as the 2020 product. Fails if the offset reached the model."""
    before, _ = _sr(s2_products.pre2022_l1c, tiny_checkpoint, tmp_path / "2020.tif")
    after, tags = _sr(s2_products.l1c_2023, tiny_checkpoint, tmp_path / "2023.tif")
    assert np.array_equal(before, after)
    record = json.loads(tags["SR_HARMONISATION"])
    assert record["source"] == "product-metadata" and record["baseline"] == "05.09"
    assert record["offsets"]["B02"] == -1000 and record["output"] == "harmonised"
    assert tags["SR_UNITS"] == "reflectance x 10000"
    item = json.loads((tmp_path / "2023.stac-item.json").read_text())
    assert item["properties"]["s2sr:lineage"]["harmonisation"] == record


def test_the_products_offset_can_be_written_back(
    s2_products: Products, tiny_checkpoint: str, tmp_path: Path
) -> None:
    harmonised, _ = _sr(s2_products.l1c_2023, tiny_checkpoint, tmp_path / "h.tif")
    product, tags = _sr(
        s2_products.l1c_2023, tiny_checkpoint, tmp_path / "p.tif", reapply_offset=True
    )
    valid = harmonised != 0
    assert valid.any() and np.array_equal(product[~valid], harmonised[~valid])
    assert np.array_equal(product[valid].astype(int), harmonised[valid].astype(int) + OFFSET)
    assert tags["SR_UNITS"] == "product digital numbers"
    assert "offset re-applied" in json.loads(tags["SR_HARMONISATION"])["output"]
    with pytest.raises(ValueError, match="float32"):
        super_resolve_scene(
            s2_products.l1c_2023,
            tiny_checkpoint,
            tmp_path / "f.tif",
            dtype="float32",
            reapply_offset=True,
        )


def test_bare_2023_files_need_the_parameter(
    s2_products: Products, tiny_checkpoint: str, tmp_path: Path
) -> None:
    out = tmp_path / "bare.tif"
    with pytest.raises(HarmonisationError, match="harmonisation="):
        super_resolve_scene(s2_products.bare_2023, tiny_checkpoint, out, **TILING)
    assert not out.exists()
    bare, tags = _sr(
        s2_products.bare_2023, tiny_checkpoint, out, harmonisation=HarmonisationParam(offset=-1000)
    )
    reference, _ = _sr(s2_products.pre2022_l1c, tiny_checkpoint, tmp_path / "ref.tif")
    assert np.array_equal(bare, reference)
    assert json.loads(tags["SR_HARMONISATION"])["source"] == "parameter"
