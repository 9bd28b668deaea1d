"""What the benchmark ran on, and how busy the machine was while it ran.

The machine is shared: other processes' CPU use during a run is measured from ``/proc/stat``
(all CPU time spent, minus this run's own child-process time) and recorded with every result.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import lightning
import torch

from srgan.tuning_cache import cpu_matrix_units, cpu_model

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user, nice, system, irq, softirq (jiffies)
_STEAL_FIELD = 7


def machine() -> dict[str, object]:
    """CPU, core count, instruction set torch uses, library versions, git revision."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_matrix_units": cpu_matrix_units(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "git_revision": git_revision(),
    }


def git_revision() -> str:
    """Short hash of HEAD, with ``+dirty`` when tracked files differ from it (the benchmark
    outputs aside, as for the tables' stamps: :func:`bench.stamp.uncommitted`)."""
    from bench.stamp import uncommitted

    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = uncommitted()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}+dirty" if dirty else rev


def _cpu_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[i] for i in _BUSY_FIELDS), fields[_STEAL_FIELD]


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadProbe:
    """Measures other processes' CPU use over a span in which this process waits on a child.

    Example::

        probe = LoadProbe.start()
        subprocess.run(...)
        probe.stop()  # {"foreign_cpus": 0.4, "steal_cpus": 0.0, "loadavg_1min": ...}
    """

    wall: float
    busy: int
    steal: int
    own: float

    @classmethod
    def start(cls) -> LoadProbe:
        """Snapshot the counters."""
        busy, steal = _cpu_jiffies() if Path("/proc/stat").exists() else (0, 0)
        return cls(time.perf_counter(), busy, steal, _children_cpu_seconds())

    def stop(self) -> dict[str, float]:
        """Average CPUs used by other processes and stolen by the hypervisor since start."""
        wall = time.perf_counter() - self.wall
        if not Path("/proc/stat").exists() or wall <= 0:
            return {"foreign_cpus": float("nan"), "steal_cpus": float("nan")}
        busy, steal = _cpu_jiffies()
        tick = os.sysconf("SC_CLK_TCK")
        own = _children_cpu_seconds() - self.own
        foreign = max(0.0, (busy - self.busy) / tick - own)
        return {
            "foreign_cpus": round(foreign / wall, 3),
            "steal_cpus": round((steal - self.steal) / tick / wall, 3),
            "loadavg_1min": os.getloadavg()[0],
        }


def isa_label(m: dict[str, object]) -> str:
    """``AVX512 + amx_bf16`` style: the vector ISA torch uses and any bf16 matrix units."""
    units = [u for u in m.get("cpu_matrix_units") or [] if u in ("amx_bf16", "avx512_bf16")]  # type: ignore[attr-defined]
    return " + ".join([str(m.get("torch_cpu_capability", "?")), *units])
