"""The champion registry (one reader for every flow) and the retrain decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.registry import ChampionError, ChampionRecord, read_champion, resolve_checkpoint
from tasks.retrain import decide


def _write(storage: Path, text: str) -> None:
    path = storage / "registry" / "champion.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_champion_before_the_first_promotion(tmp_path: Path) -> None:
    assert read_champion(str(tmp_path)) is None


def test_a_relative_checkpoint_is_relative_to_the_storage_root(tmp_path: Path) -> None:
    """``retrain-srgan`` warm-starts from what this returns, as ``super-resolve`` resolves it."""
    _write(tmp_path, json.dumps({"checkpoint": "runs/r1/checkpoints/best.ckpt", "score": 31.5}))
    champion = read_champion(str(tmp_path))
    assert champion == ChampionRecord(
        checkpoint=f"{tmp_path}/runs/r1/checkpoints/best.ckpt", score=31.5
    )
    assert resolve_checkpoint.fn("champion", str(tmp_path)) == champion.checkpoint


def test_absolute_and_remote_checkpoints_stay_as_written(tmp_path: Path) -> None:
    for uri in ("/data/best.ckpt", "s3://bucket/runs/r1/best.ckpt"):
        _write(tmp_path, json.dumps({"checkpoint": uri, "unknown_key": 1}))
        record = read_champion(str(tmp_path))
        assert record is not None and record.checkpoint == uri


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("{}", "names no checkpoint"),
        ('{"checkpoint": ""}', "names no checkpoint"),
    ],
)
def test_an_unusable_record_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ChampionError, match=message) as err:
        read_champion(str(tmp_path))
    assert "champion.json" in str(err.value)


def _scores(challenger: float, champion: float | None = None) -> dict[str, dict[str, float]]:
    scores = {"challenger": {"val_metrics/psnr": challenger, "val_metrics/l1": -challenger}}
    if champion is not None:
        scores["champion"] = {"val_metrics/psnr": champion, "val_metrics/l1": -champion}
    return scores


def test_decision() -> None:
    assert decide(_scores(20.0), "psnr", 0.0).outcome == "promoted"
    assert decide(_scores(20.0), "psnr", 0.0).reason == "no champion yet"
    assert decide(_scores(30.0, 29.0), "psnr", 0.5).promote
    assert not decide(_scores(30.0, 29.0), "psnr", 1.0).promote  # gain must exceed min_gain
    # l1: lower is better; the challenger's PSNR 29 goes with l1 -29, higher than -30
    kept = decide(_scores(29.0, 30.0), "l1", 0.0)
    assert kept.outcome == "kept champion" and kept.champion_score == -30.0
    assert kept.reason == "challenger l1 -29.00000 vs champion -30.00000"
    assert decide(_scores(30.0, 29.0), "l1", 0.0).promote
