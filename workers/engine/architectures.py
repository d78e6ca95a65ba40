"""Model architectures the engine can train, by name.

Built-in: `mlp` (tabular features) and `cnn` (small images, input shape (channels, h, w)).
Other packages add their own through the entry-point group `lethe.architectures`; an entry point
resolves to an `ArchitectureSpec` or to a callable returning one:

    [project.entry-points."lethe.architectures"]
    resnet-tiny = "mypackage.models:resnet_tiny_spec"
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from torch import nn

ENTRY_POINT_GROUP = "lethe.architectures"

ModelBuilder = Callable[[tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to build a model and the hyperparameters it trains with by default.

    `build(input_shape, num_classes)` returns a fresh, untrained module. Bump `version` when the
    builder changes, so checkpoints of the old definition are not reused.
    """

    name: str
    build: ModelBuilder = field(compare=False)
    learning_rate: float = 1e-3
    epochs: int = 20
    batch_size: int = 128
    weight_decay: float = 0.0
    version: str = "1"

    def hyperparameters(self) -> dict[str, Any]:
        """Everything about the spec that changes a trained model, as plain JSON values."""
        return {
            "architecture": self.name,
            "version": self.version,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
        }

    def with_hyperparameters(self, **overrides: Any) -> ArchitectureSpec:
        """A copy with some hyperparameters replaced (e.g. `epochs=5`)."""
        return dataclasses.replace(self, **overrides)


def build_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two hidden layers, sized for Purchase-100-like tabular data."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def build_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two 3x3 convolutions and a small classifier head, for images like 8x8 digits."""
    if len(input_shape) != 3:
        raise ValueError(f"cnn expects input shape (channels, height, width), got {input_shape}")
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


BUILTIN_ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "mlp": ArchitectureSpec(
        name="mlp", build=build_mlp, learning_rate=1e-3, epochs=20, batch_size=128
    ),
    "cnn": ArchitectureSpec(
        name="cnn", build=build_cnn, learning_rate=2e-3, epochs=30, batch_size=64
    ),
}

_plugin_cache: dict[str, ArchitectureSpec] | None = None


def load_entry_point_architectures(
    *, entry_points_to_load: Iterable[EntryPoint] | None = None
) -> dict[str, ArchitectureSpec]:
    """Specs from entry points (by default every installed one in `lethe.architectures`),
    keyed by spec name."""
    if entry_points_to_load is None:
        entry_points_to_load = entry_points(group=ENTRY_POINT_GROUP)
    specs: dict[str, ArchitectureSpec] = {}
    for entry_point in entry_points_to_load:
        loaded = entry_point.load()
        spec = loaded if isinstance(loaded, ArchitectureSpec) else loaded()
        if not isinstance(spec, ArchitectureSpec):
            raise TypeError(
                f"entry point {entry_point.name!r} gave {type(spec).__name__}, "
                "expected an ArchitectureSpec"
            )
        specs[spec.name] = spec
    return specs


def _all_architectures() -> dict[str, ArchitectureSpec]:
    global _plugin_cache
    if _plugin_cache is None:
        _plugin_cache = load_entry_point_architectures()
    # Built-ins win over plugins of the same name, so a plugin cannot redefine `mlp`.
    return {**_plugin_cache, **BUILTIN_ARCHITECTURES}


def list_architectures() -> list[str]:
    """Names of every architecture available: built-in and installed plugins."""
    return sorted(_all_architectures())


def get_architecture(name: str) -> ArchitectureSpec:
    """The spec registered under `name`; KeyError names the known ones when it is missing."""
    available = _all_architectures()
    if name not in available:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(sorted(available))}")
    return available[name]
