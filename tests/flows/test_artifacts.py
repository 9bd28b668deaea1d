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
