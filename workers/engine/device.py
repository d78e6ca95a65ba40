"""Where the engine trains, and how: the device, deterministic kernels and mixed precision.

A worker calls `configure` once at start (from `LETHE_DEVICE` and `LETHE_MIXED_PRECISION`);
`pick_device()` then answers with that choice wherever a caller names no device.

Reproducibility: on the CPU a model is a bit-exact function of its records, spec and seed. On
CUDA, `configure` asks PyTorch for deterministic algorithms (and the cuBLAS workspace setting
they need), so the same process on the same card, driver and PyTorch repeats itself; results
are not bit-identical to the CPU's, nor across card models or library versions. Mixed precision
(bf16 autocast, CUDA only) is off by default: it is faster on large models and changes results.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("off", "bf16")


@dataclass(frozen=True)
class DeviceChoice:
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    mixed_precision: str = "off"  # off or bf16


_choice = DeviceChoice()


def check_device_name(name: str) -> str:
    """`name` if it is auto, cpu, cuda or cuda:N; a ValueError naming the choices otherwise."""
    base, _, index = name.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of auto, cpu, cuda or cuda:N, not {name!r}")
    return name


def configure(
    *, device: str = "auto", mixed_precision: str = "off", threads: int = 0
) -> torch.device:
    """Set the process's default device, precision and CPU threads (0 keeps torch's default,
    one per core); return the device it resolves to.

    Raises ValueError for an unknown name and RuntimeError when CUDA is asked for and absent,
    so a misconfigured worker stops at start rather than at its first job.
    """
    global _choice
    check_device_name(device)
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"mixed precision must be one of {', '.join(PRECISIONS)}")
    if threads < 0:
        raise ValueError("threads must be 0 (torch's default) or more")
    _choice = DeviceChoice(device=device, mixed_precision=mixed_precision)
    if threads:
        torch.set_num_threads(threads)
    resolved = pick_device()
    if resolved.type == "cuda":
        # cuBLAS needs a fixed workspace for deterministic results; it is read at CUDA start.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return resolved


def pick_device(*, prefer: str | None = None) -> torch.device:
    """`prefer` ("cpu", "cuda", "cuda:1") overrides the configured choice; `auto` uses CUDA
    when present. Asking for CUDA where there is none is an error, never a silent CPU run."""
    name = prefer if prefer is not None else _choice.device
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(check_device_name(name))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer read afterwards measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA when mixed precision is configured; otherwise nothing."""
    if device.type == "cuda" and _choice.mixed_precision == "bf16":
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def describe(device: torch.device) -> str:
    """The device in words, with the card's name on CUDA."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return "CPU"
