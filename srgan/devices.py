"""How a device is named in run reports, checkpoints' results and COG metadata."""

from __future__ import annotations

import torch


def device_name(device: torch.device) -> str:
    """``NVIDIA H100 80GB HBM3`` for a CUDA device, ``cpu (2 threads)`` for the CPU (with the
    threads torch uses), the device type otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
