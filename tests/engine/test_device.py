"""Choosing where the engine trains: `LETHE_DEVICE` and the engine's `configure`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from pydantic import ValidationError

from app.core.config import Settings
from workers.engine import device as engine_device


@pytest.fixture(autouse=True)
def _restore_default() -> Iterator[None]:
    yield
    engine_device.configure(device="auto")


def test_configure_sets_the_default_device() -> None:
    assert engine_device.configure(device="cpu").type == "cpu"
    assert engine_device.pick_device().type == "cpu"
    assert engine_device.pick_device(prefer="cpu").type == "cpu"


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:0", "", "mps"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        engine_device.configure(device=name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run() -> None:
    with pytest.raises(RuntimeError, match="no CUDA device"):
        engine_device.configure(device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        engine_device.pick_device(prefer="cuda:1")


def test_mixed_precision_is_off_on_the_cpu() -> None:
    engine_device.configure(device="cpu", mixed_precision="bf16")
    layer = torch.nn.Linear(4, 2)
    with engine_device.autocast(torch.device("cpu")):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="mixed precision"):
        engine_device.configure(device="cpu", mixed_precision="fp8")


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:1"])
def test_settings_accept_device_names(value: str) -> None:
    assert Settings(device=value).device == value


@pytest.mark.parametrize("value", ["gpu", "cuda:", "CPU"])
def test_settings_refuse_other_device_names(value: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        Settings(device=value)


def test_threads_are_set_for_the_process_and_negative_is_refused() -> None:
    before = torch.get_num_threads()
    try:
        engine_device.configure(device="cpu", threads=1)
        assert torch.get_num_threads() == 1
        engine_device.configure(device="cpu", threads=0)  # keeps what the process has
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads"):
            engine_device.configure(device="cpu", threads=-1)
    finally:
        torch.set_num_threads(before)
