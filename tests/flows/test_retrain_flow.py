"""Flow ``retrain-srgan`` run in-process: promote a better challenger, keep a better champion.

A promotion writes the champion's model card and STAC MLM record first (the MLM record is
validated against its schema here). Both decisions are made deterministic by construction: a
champion trained with a destructive generator learning rate (PSNR ~10 dB against ~25 dB for
bicubic) loses to any sane challenger, and a challenger trained that way loses to a normally
trained champion. The promotion is decided on L1 (lower is better), the other decision on PSNR
(higher is better), so a decision that ignored the metric's direction fails one of the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from stac_schemas import validate_item

from flows.retrain import retrain_srgan
from srgan.config import load_config
from srgan.data import datamodule_for
from srgan.train import fit
from tasks.registry import resolve_checkpoint

pytestmark = pytest.mark.usefixtures("prefect_api")

#: Adam steps of ~0.05 per weight from the first iteration: the generator forgets how to upsample.
DESTRUCTIVE = {"optim": {"generator": {"lr": 0.05, "warmup_iterations": 1}}}


@pytest.fixture(scope="module")
def champions(
    patch_store: Path, tmp_path_factory: pytest.TempPathFactory, tiny: Any, iterations: int
) -> dict[str, str]:
    """``{"good": ..., "bad": ...}``: tiny-architecture checkpoints, trained without Prefect."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("champions")
    out = {}
    for name, extra in (("good", {}), ("bad", DESTRUCTIVE)):
        overrides = tiny(
            data={"store": str(patch_store)}, schedule={"max_iterations": iterations}, **extra
        )
        cfg = load_config("cpu-tiny", overrides)
        result = fit(cfg, datamodule_for(cfg.data), root / name, final_validation=False)
        assert result.last_checkpoint is not None
        out[name] = result.last_checkpoint
    return out


def register(storage: Path, checkpoint: str) -> Path:
    """Write ``champion.json`` in the format ``super-resolve`` reads; returns its path."""
    record = storage / "registry" / "champion.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"checkpoint": checkpoint, "run_key": "seeded-by-test"}))
    return record


def test_better_challenger_is_promoted(
    champions: dict[str, str],
    patch_store: Path,
    storage: Path,
    read_artifacts: Any,
    tiny: Any,
    iterations: int,
) -> None:
    record = register(storage, champions["bad"])

    state = retrain_srgan(
        store=str(patch_store),
        overrides=tiny(),
        max_iterations=iterations,
        warm_start=False,  # a challenger warm-started from the bad champion would inherit it
        metric="l1",
        return_state=True,
    )

    assert state.is_completed(), state
    result = state.result()
    assert result.decision.outcome == "promoted"
    scores = result.scores
    assert scores["challenger"]["val_metrics/psnr"] > scores["champion"]["val_metrics/psnr"] + 5
    assert scores["challenger"]["val_metrics/l1"] < scores["champion"]["val_metrics/l1"]
    flow_run_id = state.state_details.flow_run_id
    promoted = json.loads(record.read_text())
    assert promoted["checkpoint"] == result.challenger
    assert promoted["checkpoint"].startswith(str(storage / "runs" / f"retrain-{flow_run_id}"))
    assert promoted["metric"] == "l1"
    assert promoted["score"] == scores["challenger"]["val_metrics/l1"]
    # what super-resolve's checkpoint="champion" resolves to now
    assert resolve_checkpoint.fn("champion") == result.challenger
    assert Path(result.challenger).is_file()

    artifacts = read_artifacts(flow_run_id)
    assert artifacts["retrain-decision"].data.startswith("# Retrain decision: promoted")
    assert f"challenger: `{result.challenger}`" in artifacts["retrain-decision"].data
    assert result.challenger in artifacts["srgan-champion"].data
    # the champion's model card and MLM record, linked from champion.json and the artifacts
    card, mlm = Path(promoted["model_card"]), Path(promoted["mlm_record"])
    assert card.parent == storage / "registry" / "champions" / f"retrain-{flow_run_id}"
    assert card.read_text().startswith(f"# Model card: s2-srgan retrain-{flow_run_id}")
    item = json.loads(mlm.read_text())
    validate_item(item)
    assert item["assets"]["model"]["href"] == result.challenger
    assert item["properties"]["s2sr:training"]["store_version"] == promoted["store_version"]
    assert (
        str(card) in artifacts["srgan-champion"].data
        and str(mlm) in artifacts["srgan-champion"].data
    )
    assert artifacts["srgan-model-card"].data == card.read_text()
    rows = json.loads(artifacts["retrain-evaluation"].data)
    assert [r["model"] for r in rows] == ["challenger", "champion", "bicubic"]
    assert all(r["hallucination"] is not None for r in rows)


def test_worse_challenger_keeps_the_champion(
    champions: dict[str, str],
    patch_store: Path,
    storage: Path,
    read_artifacts: Any,
    tiny: Any,
    iterations: int,
) -> None:
    record = register(storage, champions["good"])
    before = record.read_text()

    state = retrain_srgan(
        store=str(patch_store),
        overrides=tiny(**DESTRUCTIVE),
        max_iterations=iterations,
        return_state=True,
    )

    assert state.is_completed(), state
    result = state.result()
    assert result.decision.outcome == "kept champion"
    scores = result.scores
    assert scores["challenger"]["val_metrics/psnr"] < scores["champion"]["val_metrics/psnr"] - 5
    assert record.read_text() == before
    assert resolve_checkpoint.fn("champion") == champions["good"]
    artifacts = read_artifacts(state.state_details.flow_run_id)
    decision = artifacts["retrain-decision"].data
    assert decision.startswith("# Retrain decision: kept champion")
    assert f"champion: `{champions['good']}`" in decision
    assert "srgan-champion" not in artifacts
