"""The training report's summary of the validation curve."""

from __future__ import annotations

from tasks.artifacts import CURVE_ROWS, curve_markdown


def _history(n: int, best: int) -> list[dict[str, float]]:
    rows = []
    for i in range(n):
        l1 = 0.05 - 0.0001 * i if i != best else 0.001
        rows.append(
            {
                "iteration": float(100 * (i + 1)),
                "val_metrics/l1": l1,
                "val_metrics/psnr": 30.0 + i / 10,
                "val_metrics/psnr_gain": 0.5 + i / 100,
            }
        )
    return rows


def _iterations(table: str) -> list[str]:
    return [line.split("|")[1].strip() for line in table.splitlines()[2:]]


def test_short_history_is_shown_whole_with_the_best_marked() -> None:
    table = curve_markdown(_history(3, best=1), "l1")
    assert _iterations(table) == ["100", "200 (best)", "300"]
    assert table.splitlines()[0] == "| iteration | l1 | psnr | PSNR gain over bicubic |"
    assert "| +0.520 |" in table.splitlines()[-1]


def test_long_history_is_thinned_but_keeps_first_best_and_last() -> None:
    table = curve_markdown(_history(200, best=137), "l1")
    shown = _iterations(table)
    assert len(shown) <= CURVE_ROWS + 2
    assert shown[0] == "100" and shown[-1] == "20000" and "13800 (best)" in shown
    # higher is better for PSNR: the last row is then the best one
    assert _iterations(curve_markdown(_history(200, best=137), "psnr"))[-1] == "20000 (best)"


def test_no_validation_says_so() -> None:
    assert "no validation" in curve_markdown([], "l1")


def test_history_without_the_best_metric_marks_no_row() -> None:
    table = curve_markdown(_history(3, best=1), "sam")
    assert "(best)" not in table and _iterations(table) == ["100", "200", "300"]


def test_the_report_lists_each_scene_with_its_harmonisation(s2_products, tmp_path) -> None:
    from datasets.tiling import tile_scene
    from datasets.tiling_params import TilingParams
    from tasks.artifacts import training_data_markdown

    store = str(tmp_path / "p.zarr")
    params = TilingParams(patch_size=64, scale=4)
    tile_scene(str(s2_products.l2a_2023_zip), store, params)
    last = tile_scene(str(s2_products.pre2022_l1c), store, params)
    table = training_data_markdown(store, last.version)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    l2a = rows["S2B_MSIL2A_20230615T155619_N0510_R054_T18SVG_20230615T180112"]
    assert "| product-metadata | 05.10 | -1000 | 256 | scl |" in l2a
    assert (
        "| product-metadata | 02.08 | 0 | 0 | none |"
        in rows["S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"]
    )
    assert "scenes unavailable" in training_data_markdown(str(tmp_path / "nowhere"), None)
