"""How OpenDSR names map onto Lethe's: request statuses, identity types and formats."""

from __future__ import annotations

from typing import Literal, get_args

from app.erasure.enums import RequestStatus
from app.lineage.identity import IdentityFormat, IdentityType
from app.opendsr.enums import OpenDsrStatus

ApiVersion = Literal["2.0"]  # what a request's `api_version` may name
API_VERSION: ApiVersion = "2.0"
API_VERSIONS: tuple[str, ...] = get_args(ApiVersion)
SUBJECT_REQUEST_TYPES = ("erasure",)
REGULATIONS = ("gdpr", "ccpa")

PENDING = OpenDsrStatus.PENDING
IN_PROGRESS = OpenDsrStatus.IN_PROGRESS
COMPLETED = OpenDsrStatus.COMPLETED
CANCELLED = OpenDsrStatus.CANCELLED

# failed stays in_progress: an admin can retry it, and OpenDSR has no failure status.
_STATUS: dict[str, str] = {
    RequestStatus.RECEIVED: PENDING,
    RequestStatus.PENDING_APPROVAL: PENDING,
    RequestStatus.APPROVED: PENDING,
    RequestStatus.PLANNING: IN_PROGRESS,
    RequestStatus.PLANNED: IN_PROGRESS,
    RequestStatus.RUNNING: IN_PROGRESS,
    RequestStatus.VERIFYING: IN_PROGRESS,
    RequestStatus.MITIGATED: IN_PROGRESS,
    RequestStatus.FAILED: IN_PROGRESS,
    RequestStatus.COMPLETED: COMPLETED,
    RequestStatus.CANCELLED: CANCELLED,
    RequestStatus.DENIED: CANCELLED,
}


def request_status(lethe_status: str) -> str:
    # A status added to the lifecycle later is work under way until it is mapped here.
    return _STATUS.get(lethe_status, IN_PROGRESS)


# OpenDSR identity type names that differ from Lethe's.
_TYPE_ALIASES = {"roku_publisher_id": IdentityType.ROKU_PUBLISHER_DEVICE_ID}
_LETHE_TO_OPENDSR = {v: k for k, v in _TYPE_ALIASES.items()}

SUPPORTED_IDENTITY_TYPES: tuple[str, ...] = tuple(
    _LETHE_TO_OPENDSR.get(t, t.value) for t in IdentityType
)
SUPPORTED_IDENTITY_FORMATS: tuple[str, ...] = tuple(f.value for f in IdentityFormat)


def identity_type(name: str) -> IdentityType:
    """The Lethe identity type for an OpenDSR `identity_type` (ValueError if unsupported)."""
    if name in _TYPE_ALIASES:
        return _TYPE_ALIASES[name]
    try:
        return IdentityType(name)
    except ValueError:
        raise ValueError(
            f"identity_type must be one of: {', '.join(sorted(SUPPORTED_IDENTITY_TYPES))}"
        ) from None


def identity_format(name: str) -> IdentityFormat:
    if name not in SUPPORTED_IDENTITY_FORMATS:
        raise ValueError(f"identity_format must be one of: {', '.join(SUPPORTED_IDENTITY_FORMATS)}")
    return IdentityFormat(name)
