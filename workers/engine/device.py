"""Where the engine trains: the first CUDA device when there is one, else the CPU."""

from __future__ import annotations

import torch


def pick_device(*, prefer: str | None = None) -> torch.device:
    """`prefer` ("cpu", "cuda", "cuda:1") overrides the choice; CUDA is used only when present."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA device is available")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
