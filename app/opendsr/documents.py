"""The bodies OpenDSR routes answer with, for the OpenAPI document: the routes send signed
bytes (`signed_json`), so these models describe them rather than produce them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.opendsr.enums import OpenDsrStatus
from app.opendsr.mapping import ApiVersion
from app.opendsr.signing import DOMAIN_HEADER, SIGNATURE_HEADER

RFC3339 = "RFC 3339, UTC, whole seconds."


class SupportedIdentity(BaseModel):
    identity_type: str
    identity_format: str


class Discovery(BaseModel):
    api_version: ApiVersion
    supported_identities: list[SupportedIdentity]
    supported_subject_request_types: list[str]
    processor_certificate: str = Field(description="The URL of the signing certificate (PEM).")


class RequestReceived(BaseModel):
    controller_id: str
    expected_completion_time: str = Field(description=RFC3339)
    received_time: str = Field(description=RFC3339)
    subject_request_id: uuid.UUID
    api_version: ApiVersion


class RequestStatusOut(BaseModel):
    controller_id: str
    expected_completion_time: str = Field(description=RFC3339)
    subject_request_id: uuid.UUID
    request_status: OpenDsrStatus
    api_version: ApiVersion
    extensions: dict[str, dict[str, JsonValue]] = Field(
        description="Lethe's details (its request id and status), under the processor domain."
    )


class RequestCancelled(BaseModel):
    controller_id: str
    subject_request_id: uuid.UUID
    received_time: str = Field(description=RFC3339)
    api_version: ApiVersion


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    domain: str
    reason: str
    message: str
    location: str | None = Field(None, description="The field or parameter, when there is one.")


class ErrorBody(BaseModel):
    code: int = Field(description="The HTTP status.")
    message: str
    errors: list[ErrorDetail] | None = None


class OpenDsrError(BaseModel):
    """An OpenDSR error: the specification's shape, never a problem document."""

    error: ErrorBody


def signed(status: int) -> dict[int | str, dict[str, Any]]:
    """A success response's headers: the signature over the exact body bytes."""
    string = {"type": "string"}
    return {
        status: {
            "headers": {
                SIGNATURE_HEADER: {"description": "Signature over the body.", "schema": string},
                DOMAIN_HEADER: {"description": "The processor's domain.", "schema": string},
            }
        }
    }
