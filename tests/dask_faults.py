"""Faults injected into a Dask cluster by a worker plugin (importable by the workers)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin


class KillWorkerAfterFirstTask(WorkerPlugin):
    """SIGKILL the worker process that finished a task first, once per cluster.

    The task's own work is done (its effects are in the store) but its result dies with the
    worker before the scheduler hears of it, so the scheduler runs the task again elsewhere:
    a worker lost at the worst moment. ``marker`` (a path every worker sees) records the kill.
    """

    name = "kill-worker-after-first-task"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish != "memory":
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()} {key}\n".encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def killed(marker: str) -> bool:
    """Whether the plugin killed a worker."""
    return Path(marker).is_file()
