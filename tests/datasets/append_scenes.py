"""Child process of the store tests: tile scenes into one store, as a tiling task would.

Transient errors (a lost commit race, another writer's turn) are retried, as the flow's task
retries them. With ``kill_scene``/``kill_row`` the process SIGKILLs itself while appending that
scene, after that many rows of patches were written.

Usage: ``python append_scenes.py SPEC_JSON``; prints one JSON line per scene.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from typing import Any

from datasets.errors import is_transient
from datasets.tiling import tile_scene


def main(spec: dict[str, Any]) -> None:
    for index, scene in enumerate(spec["scenes"]):

        def progress(done: int, total: int, index: int = index) -> None:
            if index == spec.get("kill_scene") and done == spec.get("kill_row"):
                os.kill(os.getpid(), signal.SIGKILL)

        for attempt in range(50):
            try:
                result = tile_scene(
                    scene,
                    spec["store"],
                    storage_options=spec.get("storage_options"),
                    backend=spec.get("backend"),
                    progress=progress,
                    **spec["tiling"],
                )
            except Exception as err:
                if not is_transient(err):
                    raise
                time.sleep(random.uniform(0.1, 1.0))  # as the flow's retry jitter
                continue
            print(
                json.dumps({"scene": scene, "attempts": attempt + 1, "kept": result.patches_kept})
            )
            break
        else:
            raise RuntimeError(f"{scene}: still losing after 50 attempts")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
