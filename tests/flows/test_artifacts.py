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


def _scores() -> dict[str, float]:
    values = {"psnr": 31.0, "l1": 0.01, "improvement": 0.6, "omission": 0.3, "hallucination": 0.1}
    bicubic = {
        "psnr": 29.0,
        "l1": 0.02,
        "improvement": 0.1,
        "omission": 0.85,
        "hallucination": 0.05,
    }
    out = {f"val_metrics/{k}": v for k, v in values.items()}
    out |= {f"val_metrics/bicubic_{k}": v for k, v in bicubic.items()}
    out |= {f"val_metrics/{k}_gain": 0.0 for k in values}
    return out


def test_the_report_table_shows_the_shares_beside_psnr() -> None:
    """Broken by hand: METRICS back to the five classic metrics (the shares rows vanish)."""
    from tasks.artifacts import metrics_rows

    rows = {r["metric"]: r for r in metrics_rows(_scores())}
    assert list(rows) == ["l1", "psnr", "improvement", "omission", "hallucination"]
    assert (rows["hallucination"]["srgan"], rows["hallucination"]["bicubic"]) == (0.1, 0.05)


def test_the_retrain_table_has_a_row_per_model_and_one_for_bicubic() -> None:
    from tasks.retrain import evaluation_rows

    champion = {k: v for k, v in _scores().items() if "improvement" not in k}  # an older record
    rows = {
        r.pop("model"): r for r in evaluation_rows({"challenger": _scores(), "champion": champion})
    }
    assert list(rows) == ["challenger", "champion", "bicubic"]
    assert rows["challenger"]["hallucination"] == 0.1 and rows["bicubic"]["omission"] == 0.85
    assert rows["champion"]["improvement"] is None and rows["champion"]["psnr"] == 31.0
    assert list(rows["bicubic"]) == [
        "l1",
        "psnr",
        "ssim",
        "sam",
        "ergas",
        "improvement",
        "omission",
        "hallucination",
    ]
