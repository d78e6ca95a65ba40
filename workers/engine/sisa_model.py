"""A SISA model's manifest: its configuration and the checkpoint keys of every shard and slice.

Imports no torch, so the registry can store and read model versions without the training stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from workers.engine.partition import ShardKey

if TYPE_CHECKING:
    from workers.engine.architectures import ArchitectureSpec

Aggregation = Literal["mean", "vote"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "vote")


@dataclass(frozen=True)
class SisaConfig:
    """Shards S, slices R, seed, the epoch budget of plain training, and how to aggregate."""

    shards: int
    slices: int
    seed: int = 0
    epochs: int | None = None  # plain-training epochs; None takes the architecture's default
    aggregation: Aggregation = "mean"
    shard_key: ShardKey = "record"

    def __post_init__(self) -> None:
        if self.shards < 1 or self.slices < 1:
            raise ValueError("shards and slices must be >= 1")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}")
        if self.shard_key not in ("record", "subject"):
            raise ValueError("shard_key must be 'record' or 'subject'")

    def slice_epochs(self, *, spec: ArchitectureSpec) -> float:
        """Epochs per slice stage, 2e/(R+1): summed over the R growing stages this processes as
        many samples as e epochs of plain training on the shard (the SISA paper's schedule)."""
        plain = spec.epochs if self.epochs is None else self.epochs
        return 2.0 * plain / (self.slices + 1)

    def theoretical_speedup(self) -> float:
        """Expected cost of full retraining over the cost of unlearning one record: 3RS/(2R+1)."""
        return 3.0 * self.slices * self.shards / (2 * self.slices + 1)


@dataclass(frozen=True)
class ShardState:
    """A shard of a SISA model: the key of each slice checkpoint (None while no records yet)."""

    shard: int
    slice_keys: tuple[str | None, ...]
    records: int

    @property
    def final_key(self) -> str | None:
        return self.slice_keys[-1] if self.slice_keys else None


@dataclass(frozen=True)
class SisaModel:
    """A trained SISA model: what the registry stores as a model version's manifest."""

    architecture: str
    hyperparameters: dict[str, Any]
    config: SisaConfig
    input_shape: tuple[int, ...]
    num_classes: int
    shards: tuple[ShardState, ...]

    def checkpoint_keys(self) -> list[str]:
        """Every slice checkpoint key of the model."""
        return [key for shard in self.shards for key in shard.slice_keys if key is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "hyperparameters": self.hyperparameters,
            "config": asdict(self.config),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "shards": [
                {"shard": s.shard, "slice_keys": list(s.slice_keys), "records": s.records}
                for s in self.shards
            ],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> SisaModel:
        return cls(
            architecture=document["architecture"],
            hyperparameters=document["hyperparameters"],
            config=SisaConfig(**document["config"]),
            input_shape=tuple(document["input_shape"]),
            num_classes=document["num_classes"],
            shards=tuple(
                ShardState(
                    shard=s["shard"], slice_keys=tuple(s["slice_keys"]), records=s["records"]
                )
                for s in document["shards"]
            ),
        )
