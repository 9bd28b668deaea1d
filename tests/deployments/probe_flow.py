"""A tiny flow used only by the deployment tests: it proves a worker can run a deployment.

The flow writes a markdown artifact (read back by the test through the Prefect client) and
returns a string, so a test can check parameters, working directory, interpreter and artifacts
end to end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

PROBE_ARTIFACT_KEY = "probe-report"


@flow(name="probe")
def probe(message: str = "hello", sleep_s: float = 0.0) -> str:
    """Write a markdown artifact describing where the flow run executes.

    Args:
        message: Free text echoed into the artifact and the return value.
        sleep_s: Seconds to sleep after writing the artifact; lets a test catch the flow-run
            process alive (teardown must still reap it).

    Returns:
        ``"probe:<message>"``.
    """
    markdown = "\n".join(
        [
            "# Probe",
            f"- message: `{message}`",
            f"- cwd: `{Path.cwd()}`",
            f"- python_prefix: `{sys.prefix}`",
        ]
    )
    create_markdown_artifact(markdown=markdown, key=PROBE_ARTIFACT_KEY, description="probe")
    time.sleep(sleep_s)
    return f"probe:{message}"
