"""Settings measured on this machine, remembered per CPU model, torch version, device and job.

Speed settings that do not change what is computed (memory format, optimizer kernel, tile and
batch sizes, …) are picked by a short timed trial (``s2-srgan tune``). The winners are stored
in one JSON file, ``$S2SR_TUNING`` or ``~/.cache/s2-srgan/tuning.json``, under a key made of
the machine (CPU model and the instruction set torch uses, or the GPU's name), the torch
version, the thread count and a fingerprint of the job (the parts of the config that decide the
work). Another machine, another torch or another network simply finds no entry and falls back
to the built-in defaults.

Example::

    key = tuning_key("training-step", {"generator": {...}, "batch_size": 16}, device)
    TuningCache().put(key, {"channels_last": True})
    TuningCache().get(key)  # {"channels_last": True, ...} or None on another machine
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TUNING_ENV = "S2SR_TUNING"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_matrix_units() -> list[str]:
    """The CPU's bf16/matrix features torch's oneDNN can use (``amx_bf16``, ``avx512_bf16``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return sorted(flags & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16"})
    return []


def machine_identity(device: torch.device) -> dict[str, Any]:
    """What a measurement depends on besides the job: the processor, torch and threads."""
    identity: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "matrix_units": cpu_matrix_units(),
    }
    if device.type == "cuda":
        identity["gpu"] = torch.cuda.get_device_name(device)
    return identity


def tuning_key(kind: str, job: dict[str, Any], device: torch.device) -> str:
    """A stable key for ``job`` (JSON-able) of ``kind`` on this machine and ``device``."""
    payload = {"kind": kind, "job": job, "machine": machine_identity(device)}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


def default_path() -> Path:
    """``$S2SR_TUNING`` if set, else ``~/.cache/s2-srgan/tuning.json``."""
    if os.environ.get(TUNING_ENV):
        return Path(os.environ[TUNING_ENV])
    return Path.home() / ".cache" / "s2-srgan" / "tuning.json"


class TuningCache:
    """The JSON file of measured settings (see the module docstring).

    Args:
        path: The file; default :func:`default_path`. It need not exist; a damaged file
            reads as empty (the settings are measured again) and is replaced on the next put.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The settings stored under ``key``, or ``None``."""
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, settings: dict[str, Any]) -> None:
        """Store ``settings`` under ``key`` (with the time), atomically replacing the file."""
        data = self._read()
        data[key] = {**settings, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tuning-", dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
