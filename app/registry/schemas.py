from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator, with_config
from typing_extensions import TypedDict

from app.core.validation import Feature, SafeMultilineText, SafeText
from app.registry.enums import Finalize, Strategy, VersionStatus

# A typed dictionary that keeps members beyond the ones it names (`additionalProperties`).
OPEN = ConfigDict(extra="allow")

ShardKey = Literal["record", "subject"]
Aggregation = Literal["mean", "vote"]


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText = Field(min_length=1, max_length=200)
    dataset_id: uuid.UUID
    architecture: SafeText = Field(min_length=1, max_length=100)
    strategy: Strategy = Strategy.SISA
    shards: int | None = Field(None, ge=1, le=256, description="SISA shards; default 16")
    slices: int | None = Field(None, ge=1, le=64, description="SISA slices; default 8")
    shard_key: ShardKey = Field(
        "record",
        description="Assign SISA shards by record, or by person (erasing a person then "
        "retrains one shard)",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    epochs: int | None = Field(None, ge=1, le=1000)
    aggregation: Aggregation = "mean"
    input_shape: list[Annotated[int, Field(ge=1, le=100_000)]] | None = Field(
        None, min_length=1, max_length=4, description="e.g. [1, 8, 8] for the cnn; default [d]"
    )
    approximate_policy: dict[str, JsonValue] | None = Field(
        None, description="The approximate method and its thresholds (approximate strategy)."
    )
    base_model_id: uuid.UUID | None = Field(
        None,
        description="For `architecture: causal_lm`: the registered base model it fine-tunes "
        "(`GET /v1/base-models`)",
    )
    finalize: Finalize = Field(
        Finalize.EXACT,
        description="For the approximate strategy: `exact` (the default) makes the approximate "
        "result a mitigation and closes each request with a scheduled exact retrain; "
        "`approximate` closes requests with the approximate result, certified as approximate "
        "(refused for a `causal_lm` policy's `edit`, which only suppresses answers)",
    )

    @model_validator(mode="after")
    def _strategy_fits(self) -> ModelCreate:
        if self.strategy != Strategy.SISA and (self.shards or 1, self.slices or 1) != (1, 1):
            raise ValueError("shards and slices apply only to the sisa strategy")
        if self.strategy != Strategy.APPROXIMATE and self.approximate_policy is not None:
            raise ValueError("approximate_policy applies only to the approximate strategy")
        if self.strategy != Strategy.APPROXIMATE and self.finalize != Finalize.EXACT:
            raise ValueError("finalize: approximate applies only to the approximate strategy")
        return self


@with_config(OPEN)
class VersionMetrics(TypedDict, total=False):
    """A version's figures, as recorded; the ones named here are typed, others (per-method
    details, the purge counts of its activation) may appear as further members."""

    test_accuracy: Annotated[float | None, Field(description="Accuracy on the test split.")]
    train_records: int
    test_records: int
    train_seconds: float


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    parent_id: uuid.UUID | None
    status: VersionStatus
    method: str = Field(
        description="How it was made: `train`, `sisa_train`, `sisa_unlearn`, `retrain`, "
        "`adapter_sisa_train`, `adapter_sisa_unlearn`, `approximate:<method>`, or `edit` (a "
        "language model's answers suppressed by a weight edit: a mitigation, not an erasure)."
    )
    exact: bool
    trained_records: int
    metrics: VersionMetrics
    job_id: uuid.UUID | None
    created_at: datetime
    activated_at: datetime | None
    purged_at: datetime | None


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    dataset_id: uuid.UUID
    architecture: str
    strategy: Strategy
    shards: int
    slices: int
    shard_key: ShardKey
    seed: int
    epochs: int | None
    aggregation: Aggregation
    input_shape: list[int] | None
    num_classes: int | None
    approximate_policy: dict[str, JsonValue] | None
    finalize: Finalize
    base_model_id: uuid.UUID | None = None
    active_version: VersionOut | None = None
    held_versions: list[VersionOut] = Field(
        default_factory=list,
        description="Versions of training runs much worse than the active one, held for an "
        "admin to release or discard; `metrics.hold` has their figures",
    )
    created_at: datetime


class ModelPage(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: list[list[Feature]] = Field(min_length=1, max_length=1000)


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: list[Annotated[SafeMultilineText, Field(min_length=1, max_length=2000)]] = Field(
        min_length=1, max_length=50
    )
    max_new_tokens: int = Field(16, ge=1, le=128)


class GenerateOut(BaseModel):
    model_id: uuid.UUID
    version_id: uuid.UUID
    completions: list[str] = Field(description="Greedy continuations, one per prompt")


class PredictOut(BaseModel):
    model_id: uuid.UUID
    version_id: uuid.UUID
    labels: list[int]
    probabilities: list[list[float]]


class BaseModelOut(BaseModel):
    """A pretrained language model registered with `lethe base-models add`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    model_type: str
    parameters: int
    files: dict[str, JsonValue] = Field(
        description="Each file's artifact key, SHA-256 and size in bytes"
    )
    created_at: datetime


class BaseModelList(BaseModel):
    items: list[BaseModelOut]
