from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic_core import PydanticCustomError

from app.webhooks.events import ALL_EVENTS, event_types
from app.webhooks.models import DeliveryStatus, EndpointStatus, Ordering, Target

MAX_OVERLAP_HOURS = 7 * 24


def _max_events() -> int:
    # Every registered type and `*`; read when validating, since publishers register at wiring.
    return len(event_types()) + 1


def _subscribed_schema(schema: dict[str, Any]) -> None:
    # Publishers register their types when the process is wired, before any schema is made.
    schema["items"] = {"type": "string", "enum": [ALL_EVENTS, *sorted(event_types())]}


def _events_schema(schema: dict[str, Any]) -> None:
    schema["maxItems"] = _max_events()
    _subscribed_schema(schema)


ORDERING = (
    "`ordered`: a delivery waits while an earlier one about the same erasure request (or, for "
    "model events, the same model) is undelivered and being retried; `independent`: no "
    "delivery waits for another."
)


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="Where to POST events; http or https, a public address.")
    events: list[str] = Field(
        min_length=1,
        description="Event types to receive, or `*` for all of them.",
        json_schema_extra=_events_schema,
    )
    ordering: Ordering = Field(Ordering.ORDERED, description=ORDERING)

    @field_validator("url")
    @classmethod
    def _short_enough(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2000:
            raise ValueError("the URL is longer than 2000 characters")
        return url

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        if len(events) > _max_events():
            raise PydanticCustomError(
                "too_long",
                "List should have at most {max_length} items after validation, not {actual_length}",
                {"field_type": "List", "max_length": _max_events(), "actual_length": len(events)},
            )
        known = event_types()
        unknown = sorted(set(events) - known - {ALL_EVENTS})
        if unknown:
            raise ValueError(
                f"{len(unknown)} unknown event type(s); known: *, {', '.join(sorted(known))}"
            )
        return sorted(set(events))


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ordering: Ordering = Field(
        description=ORDERING + " Deliveries queued later follow the new ordering; a change to "
        "`independent` also ends the waiting of pending ones."
    )


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_hours: float = Field(
        24,
        ge=0,
        le=MAX_OVERLAP_HOURS,
        description="How long deliveries also carry a signature made with the old secret.",
    )


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str] = Field(
        description="Event types received, or `*`.", json_schema_extra=_subscribed_schema
    )
    status: EndpointStatus
    ordering: Ordering = Field(description=ORDERING)
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    links: dict[str, str] = Field(
        default_factory=dict, description="`self` and `deliveries`: the endpoint's URLs."
    )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret, shown only in this response.")


class DeliveryAttempt(BaseModel):
    """One attempt to deliver; the log keeps the latest ones."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    at: datetime
    status_code: int | None = Field(description="The receiver's answer; none if it gave none.")
    error: str | None
    duration_ms: int | None = None


class WaitingOn(BaseModel):
    """The earlier delivery of the same stream (same destination, same erasure request or
    model) that a pending delivery waits for."""

    delivery_id: int
    event_type: str
    attempts: int
    next_attempt_at: datetime | None = Field(description="When that delivery is next attempted.")


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The `webhook-id` header; the same on every attempt.")
    event_type: str = Field(
        description="An event type endpoints subscribe to, or the type of a callback that is "
        "not subscribed to (an OpenDSR status callback)."
    )
    target: Target
    endpoint_id: uuid.UUID | None
    erasure_request_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int = Field(description="Every attempt made, redeliveries included.")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due. None once finished, and while `waiting_on` "
        "names the delivery this one waits for: it is attempted right after that one succeeds "
        "or is given up."
    )
    waiting_on: WaitingOn | None = Field(
        description="The earlier undelivered delivery this pending one waits for."
    )
    first_attempt_at: datetime | None = Field(
        description="The first attempt since the delivery was queued or last redelivered; the "
        "retry schedule counts from it."
    )
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[DeliveryAttempt]
    created_at: datetime
    succeeded_at: datetime | None
    payload: dict[str, JsonValue] = Field(
        description="The body sent: `{type, timestamp, data}` for endpoints and request "
        "callbacks, the OpenDSR status for OpenDSR callbacks."
    )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class SigningKeyOut(BaseModel):
    signature_version: str = "v1a"
    algorithm: str = "ed25519"
    public_key: str = Field(description="`whpk_` + base64 of the raw Ed25519 public key.")
