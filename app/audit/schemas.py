from __future__ import annotations

from datetime import datetime
from typing import Annotated, NotRequired

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config
from typing_extensions import TypedDict

from app.audit.enums import Guarantee

# A typed dictionary that keeps members beyond the ones it names (`additionalProperties`).
OPEN = ConfigDict(extra="allow")


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: dict[str, JsonValue] = Field(
        description="What the event records; its members depend on `action` (never an "
        "identity value)."
    )
    prev_hash: str
    hash: str


class BrokenLink(BaseModel):
    seq: int
    reason: str


class ChainVerification(BaseModel):
    ok: bool
    events_checked: int
    head_seq: int | None
    head_hash: str | None
    first_broken: BrokenLink | None


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_after_seq: int | None


class CheckpointClaims(BaseModel):
    iss: str
    head_seq: int = Field(description="The last event's `seq` (0 for an empty chain).")
    head_hash: str
    signed_at: str = Field(description="RFC 3339, as signed.")


class SignedCheckpoint(BaseModel):
    jws: str
    claims: CheckpointClaims


class ChainHead(TypedDict):
    seq: int
    hash: str


class VersionRef(TypedDict):
    id: str
    number: int


@with_config(OPEN)
class PurgeClaims(TypedDict):
    """Artifacts deleted for one model, by kind; and, per artifact store (`local` or
    `s3://bucket/prefix`), the stored object versions (delete markers included) that removed."""

    checkpoints: int
    artifacts: int
    references: int
    object_versions: NotRequired[dict[str, int]]


# Claims are shown exactly as they were signed: typed dictionaries, no member added or dropped.
@with_config(OPEN)
class ModelClaims(TypedDict):
    """What was done to one model. Further members may appear (`limitations` of an
    approximate result, its `mitigation`)."""

    model_id: str
    job_id: str
    exact: bool
    records: NotRequired[Annotated[int | None, Field(description="The request's own records.")]]
    old_version: NotRequired[VersionRef | None]
    new_version: NotRequired[VersionRef | None]
    method: NotRequired[str | None]
    verification: NotRequired[dict[str, JsonValue] | None]
    batch: NotRequired[
        Annotated[
            dict[str, JsonValue] | None,
            Field(description="The job's figures over every request it carried."),
        ]
    ]
    purge: NotRequired[PurgeClaims]
    started_at: NotRequired[str | None]
    finished_at: NotRequired[str | None]


@with_config(OPEN)
class CertificateClaims(TypedDict):
    """The signed statement, as signed (times are RFC 3339 strings); `jws` carries the same
    claims. Further members may appear (`outcome` when no training data was found)."""

    iss: str
    sub: str
    iat: int
    request_id: str
    subject_hashes: Annotated[
        list[str], Field(description="Keyed hashes of the person's identities.")
    ]
    received_at: str
    completed_at: str
    records_erased: int
    models: list[ModelClaims]
    data_purge: Annotated[
        dict[str, int | bool],
        Field(
            description="Rows deleted (`records_deleted`, `subjects_deleted`), and whether the "
            "storage was scrubbed."
        ),
    ]
    guarantee: NotRequired[Guarantee]
    mitigated_at: NotRequired[str | None]
    audit_chain_head: NotRequired[ChainHead | None]


class CertificateOut(BaseModel):
    request_id: str
    jws: str
    claims: CertificateClaims
    kid: str
    jwks_url: str = "/v1/.well-known/jwks.json"


@with_config(OPEN)
class Jwk(TypedDict):
    """An Ed25519 public key (RFC 8037)."""

    kty: str
    crv: str
    x: str
    alg: str
    use: str
    kid: NotRequired[str]


class Jwks(BaseModel):
    keys: list[Jwk]
