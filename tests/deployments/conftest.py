"""Shared fixtures of the deployment tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_harness import PROJECT_ROOT

PREFECT_FILE = PROJECT_ROOT / "deployments" / "prefect.yaml"


@pytest.fixture
def prefect_config() -> dict[str, Any]:
    """``deployments/prefect.yaml`` parsed, YAML anchors resolved."""
    return _load_prefect_file()


def _load_prefect_file() -> dict[str, Any]:
    with PREFECT_FILE.open() as f:
        config: dict[str, Any] = yaml.safe_load(f)
    return config


@pytest.fixture(scope="session")
def probe_prefect_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prefect.yaml deploying only ``probe/probe``, built from the real file's structure.

    Build and pull steps and the ``srgan-local`` work-pool block are the real ones, so the probe
    exercises the same working-directory mechanics as the project's deployments.
    """
    config = _load_prefect_file()
    config["name"] = "probe"
    config["deployments"] = [
        {
            "name": "probe",
            "entrypoint": "tests/deployments/probe_flow.py:probe",
            "parameters": {"message": "from-yaml"},
            "work_pool": config["definitions"]["work_pools"]["srgan_local"],
        }
    ]
    path = tmp_path_factory.mktemp("probe-deployment") / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
