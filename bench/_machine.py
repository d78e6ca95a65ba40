"""What machine a benchmark ran on, in words. Standard library only (plus torch for a GPU's
name), so the engine benchmarks run where only numpy and torch are installed."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def machine(device: Any = None) -> str:
    """CPU model, core count and kernel; with a CUDA `device`, the card's name too."""
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    words = f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        words += f", {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return words
