"""Print what `make demo` produced: checkpoint paths, metrics vs bicubic, where to look next.

Reads the artifacts of one flow run, the train-srgan run the demo started (its id is the second
argument), so other runs on the same server do not show up in the report.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.sorting import ArtifactSort


async def run_artifact(flow_run_id: UUID, key: str) -> object | None:
    """The data of the newest artifact ``key`` of flow run ``flow_run_id`` (None: it has none)."""
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0].data if found else None


def main(run_key: str, flow_run_id: str) -> int:
    storage = os.environ.get("S2SR_STORAGE", ".s2sr")
    run = UUID(flow_run_id)
    rows = asyncio.run(run_artifact(run, "srgan-validation-metrics"))
    best = asyncio.run(run_artifact(run, "srgan-best-checkpoint"))
    if rows is None:
        print(
            f"flow run {run} has no validation metrics artifact: did train-srgan complete?",
            file=sys.stderr,
        )
        return 1
    table = json.loads(rows) if isinstance(rows, str) else rows
    print(f"run directory:   {storage}/runs/{run_key}")
    if isinstance(best, str) and best.startswith("["):  # a link artifact: [text](url)
        best = best[1 : best.index("]")]
    print(f"best checkpoint: {best}")
    print(f"patch store:     {storage}/patches/sentinel2.zarr\n")
    print(f"{'metric':<8}{'SRGAN':>12}{'bicubic':>12}{'gain':>12}")
    for row in table:
        print(
            f"{row['metric']:<8}{row['srgan']:>12.5f}{row['bicubic']:>12.5f}{row['gain']:>+12.5f}"
        )
    api = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    ui = api.removesuffix("/api")
    print(f"\nPrefect UI: {ui} (artifacts: srgan-training-report, srgan-preview)")
    print("Stop the server and worker with: make prefect-down")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: demo_report.py RUN_KEY FLOW_RUN_ID")
    sys.exit(main(sys.argv[1], sys.argv[2]))
