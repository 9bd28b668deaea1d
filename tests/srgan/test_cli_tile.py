"""``s2-srgan tile``: the tiling flow's parameters without a Prefect server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from data.s2_products.data import Products
from data.s2_products.stac import BBOX, COLLECTION
from stac_api import StacCatalogue

from datasets.patch_store import store_info
from datasets.tiling_params import MaskSource
from srgan.cli import main


def _summary(out: str) -> dict[str, dict]:
    rows = json.loads(out)["summary"]
    return {row["scene"]: row for row in rows}


def test_tiles_products_and_prints_a_summary(
    capsys: pytest.CaptureFixture[str], s2_products: Products, tmp_path: Path
) -> None:
    store = tmp_path / "p.zarr"
    args = ["tile", str(s2_products.l2a_2023_zip), str(s2_products.l1c_2023), "--store", str(store)]
    args += ["--patch-size", "64", "--set", "split.mode=scene", "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    rows = _summary(out)
    l2a = rows["S2B_MSIL2A_20230615T155619_N0510_R054_T18SVG_20230615T180112"]
    assert (l2a["status"], l2a["kept"], l2a["dropped_masked"], l2a["mask"]) == (
        "added",
        10,
        6,
        "scl",
    )
    assert "product-metadata, offset -1000" in l2a["harmonisation"]
    info = store_info(str(store))
    assert info.patch_size == 64 and len(info.scenes) == 2
    assert rows["(whole store)"]["kept"] == sum(info.n_patches.values())
    assert "100%" in err  # the progress bar


def test_a_plain_table_and_a_no_validation_warning(
    capsys: pytest.CaptureFixture[str], s2_products: Products, tmp_path: Path
) -> None:
    store = tmp_path / "p.zarr"
    args = ["tile", str(s2_products.pre2022_l1c), "--store", str(store), "--patch-size", "64"]
    assert main([*args, "--set", "split.mode=scene", "--set", "split.val_fraction=0"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split()[:3] == ["scene", "status", "kept"]
    assert "holds no validation patches" in err and "split.block_size" in err


def test_bad_options_are_one_line_and_write_nothing(
    capsys: pytest.CaptureFixture[str], s2_products: Products, tmp_path: Path
) -> None:
    store = tmp_path / "p.zarr"
    for bad in (["--patch-size", "66"], ["--set", "split.mode=nope"], ["--bands", "B99"]):
        assert main(["tile", str(s2_products.l1c_2023), "--store", str(store), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("s2-srgan: error:") and len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_every_mask_source_is_offered_and_s2cloudless_reaches_the_tiler(
    capsys: pytest.CaptureFixture[str], s2_products: Products, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["tile", "--help"])
    assert "{" + ",".join(get_args(MaskSource)) + "}" in capsys.readouterr().out
    args = ["tile", str(s2_products.l2a_2023), "--store", str(tmp_path / "p.zarr")]
    assert main([*args, "--mask", "s2cloudless"]) == 1
    assert "is a Level-2A product" in capsys.readouterr().err


def test_a_scene_that_fails_is_reported_and_the_others_tiled(
    capsys: pytest.CaptureFixture[str], s2_products: Products, tmp_path: Path
) -> None:
    store = tmp_path / "p.zarr"
    scenes = [str(s2_products.bare_2023), str(s2_products.pre2022_l1c)]
    assert main(["tile", *scenes, "--store", str(store), "--patch-size", "64"]) == 1
    _, err = capsys.readouterr()
    assert "--offset -1000" in err and "Traceback" not in err
    assert len(store_info(str(store)).scenes) == 1
    assert (
        main(["tile", scenes[0], "--store", str(store), "--patch-size", "64", "--offset", "-1000"])
        == 0
    )


def test_scenes_from_a_stac_search(
    capsys: pytest.CaptureFixture[str],
    stac_catalogue: StacCatalogue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = stac_catalogue.options
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret"])
    store = tmp_path / "p.zarr"
    args = ["tile", "--stac-url", stac_catalogue.api.url, "--collection", COLLECTION]
    args += ["--bbox", *map(str, BBOX), "--max-cloud-cover", "15", "--store", str(store)]
    assert main([*args, "--patch-size", "64", "--mask", "none", "--json"]) == 0
    rows = _summary(capsys.readouterr().out)
    assert {"S2B_18SVG_20230615_0_L2A", "S2B_18SVG_20230615_1_L2A"} <= set(rows)
    assert len(store_info(str(store)).scenes) == 2
