from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.validation import Feature, NonNegativeInt32, SafeMultilineText, SafeText
from app.lineage.identity import IdentityFormat, IdentityType, inner_digest
from app.suppression.schemas import LawfulBasisIn

Split = Literal["train", "holdout", "test"]


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: IdentityType
    value: str = Field(min_length=1, max_length=512)
    format: IdentityFormat = IdentityFormat.RAW

    @model_validator(mode="after")
    def _check_value(self) -> IdentityIn:
        inner_digest(self.type, self.value, self.format)  # raises IdentityError (no value in it)
        return self


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText = Field(min_length=1, max_length=200)
    description: SafeMultilineText | None = Field(None, max_length=2000)


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    feature_count: int | None
    record_kind: str | None = None
    created_at: datetime
    record_counts: dict[str, int] = Field(default_factory=dict)


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


TEXT_MAX_CHARS = 20_000


class RecordIn(BaseModel):
    """A tabular record (`features` and `label`) or a text record for a language model: `text`,
    or a `prompt` and the `completion` the model learns to give."""

    model_config = ConfigDict(extra="forbid")

    key: SafeText = Field(min_length=1, max_length=200)
    identities: list[IdentityIn] = Field(min_length=1, max_length=20)
    features: list[Feature] | None = Field(None, min_length=1, max_length=100_000)
    label: NonNegativeInt32 | None = None
    text: SafeMultilineText | None = Field(None, min_length=1, max_length=TEXT_MAX_CHARS)
    prompt: SafeMultilineText | None = Field(None, min_length=1, max_length=TEXT_MAX_CHARS)
    completion: SafeMultilineText | None = Field(None, min_length=1, max_length=TEXT_MAX_CHARS)
    split: Split = "train"
    # Needed only for a person erased on request (see "Suppression after erasure").
    lawful_basis: LawfulBasisIn | None = None


class RecordsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[RecordIn] = Field(min_length=1)


class RecordsAdded(BaseModel):
    dataset_id: uuid.UUID
    added: int
    new_subjects: int
