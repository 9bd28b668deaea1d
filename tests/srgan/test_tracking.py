"""Experiment tracking: ``trainer.logger: csv | tensorboard | mlflow``.

TensorBoard: the event files are read back with TensorBoard's own reader. MLflow: a real
tracking server (``mlflow server``, SQLite backend, artifacts proxied) is started on
127.0.0.1 by the test module and stopped at its end; a run is trained, resumed and its
checkpoint registered as the champion. Broken by hand once each: the preview not handed to the
loggers (the TensorBoard image and MLflow preview assertions fail); the MLflow run id not
reused on resume (the resume test finds a second run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import LOOPBACK, free_loopback_port
from process_tree import stop_process_trees

from srgan.config import ConfigError
from srgan.tracking import MLFLOW_RUN_FILE, log_champion, read_mlflow_run
from srgan.train import fit


def test_csv_is_the_default_and_writes_no_tracker_files(make_config, datamodule, tmp_path):
    config = make_config()
    assert config.trainer.logger.name == "csv"
    fit(config, datamodule, tmp_path, final_validation=False)
    assert (tmp_path / "logs" / "metrics.csv").is_file()
    assert not (tmp_path / "tensorboard").exists() and read_mlflow_run(str(tmp_path)) == {}


def test_tensorboard_gets_the_scalars_and_the_previews(make_config, datamodule, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(make_config(trainer={"logger": "tensorboard"}), datamodule, tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"generator/content_loss", "discriminator/D(G(x))_prob", "val_metrics/psnr"} <= scalars
    assert "val_metrics/hallucination" in scalars
    previews = events.Images("previews")
    assert [p.step for p in previews] == [5, 10, 10]  # two validations during fit, the final one
    assert previews[0].width == 4 * (128 + 4) + 4
    assert (tmp_path / "logs" / "metrics.csv").is_file()  # the run's own record stays


def test_mlflow_without_a_server_is_refused_naming_the_key(
    make_config, datamodule, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match=r"trainer.logger.tracking_uri"):
        fit(make_config(trainer={"logger": "mlflow"}), datamodule, tmp_path)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of an MLflow tracking server started for this module."""
    pytest.importorskip("mlflow", reason="install s2-srgan[mlflow] to test MLflow tracking")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_loopback_port()
    uri = f"http://{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK, "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180  # migrations and imports take ~25 s on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        yield uri
    finally:
        assert stop_process_trees([server], timeout=15) == []
        log.close()


@pytest.mark.slow
def test_mlflow_logs_metrics_config_previews_curves_and_the_champion(
    mlflow_server, make_config, datamodule, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = {"logger": {"name": "mlflow", "tracking_uri": mlflow_server, "experiment": "tests"}}
    run_dir = tmp_path / "run"
    first = fit(make_config(trainer=tracker), datamodule, run_dir)
    recorded = read_mlflow_run(str(run_dir))
    assert recorded["tracking_uri"] == mlflow_server and recorded["run_id"]
    client = MlflowClient(mlflow_server)
    run = client.get_run(recorded["run_id"])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    metrics = run.data.metrics
    assert {"generator/content_loss", "discriminator/D_G_x_prob", "discriminator/D_y_prob"} <= set(
        metrics
    )
    assert metrics["val_metrics/psnr"] == pytest.approx(first.metrics["val_metrics/psnr"], rel=1e-5)
    assert "val_metrics/bicubic_hallucination" in metrics
    assert run.data.params["config/data/scale"] == "4"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "previews", "loss_curves"} <= artifacts
    previews = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "previews")}
    assert {"preview_00000005.png", "preview_00000010.png"} <= previews
    config = json.loads(
        Path(client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))).read_text()
    )
    assert config["trainer"]["logger"]["name"] == "mlflow"

    # a resumed run (more iterations, same folder) goes on in the same MLflow run
    before = len(client.get_metric_history(run.info.run_id, "val_metrics/psnr"))
    fit(make_config(trainer=tracker, schedule={"max_iterations": 14}), datamodule, run_dir)
    assert read_mlflow_run(str(run_dir))["run_id"] == run.info.run_id
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert len(client.get_metric_history(run.info.run_id, "val_metrics/psnr")) > before

    card = tmp_path / "model-card.md"
    card.write_text("# Model card\n")
    version = log_champion(str(run_dir), str(first.last_checkpoint), [str(card)])
    assert version == "1"
    champion = client.get_model_version_by_alias("s2-srgan", "champion")
    assert champion.run_id == run.info.run_id and champion.version == "1"
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "champion")}
    assert logged == {"last.ckpt", "model-card.md"}
    assert client.get_run(run.info.run_id).data.tags["s2sr.champion"] == "true"


def test_a_run_not_tracked_with_mlflow_logs_no_champion(tmp_path):
    assert log_champion(str(tmp_path), str(tmp_path / "x.ckpt"), []) is None
    assert not (tmp_path / "logs" / MLFLOW_RUN_FILE).exists()
