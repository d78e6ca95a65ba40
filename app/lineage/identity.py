"""Identity normalization and keyed hashing.

An identity is stored only as HMAC-SHA256(pepper, hex(sha256(normalized value))). The inner
digest is what a caller sends with `format: sha256`, so pre-hashed identities (OpenDSR
`identity_format: sha256`) resolve to the same subject as raw ones.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum


class IdentityType(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    USER_ID = "user_id"
    CONTROLLER_CUSTOMER_ID = "controller_customer_id"
    CONTROLLER_PARTNER_ID = "controller_partner_id"
    ANDROID_ADVERTISING_ID = "android_advertising_id"
    IOS_ADVERTISING_ID = "ios_advertising_id"
    MICROSOFT_ADVERTISING_ID = "microsoft_advertising_id"
    MICROSOFT_PUBLISHER_ID = "microsoft_publisher_id"
    ROKU_PUBLISHER_DEVICE_ID = "roku_publisher_device_id"
    FIRE_ADVERTISING_ID = "fire_advertising_id"


class IdentityFormat(StrEnum):
    RAW = "raw"
    SHA256 = "sha256"


_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class IdentityError(ValueError):
    """A problem with an identity; the message never contains the value."""


def normalize(identity_type: IdentityType, value: str) -> str:
    if identity_type is IdentityType.EMAIL:
        return value.strip().lower()
    return value


def inner_digest(identity_type: IdentityType, value: str, identity_format: IdentityFormat) -> str:
    if identity_format is IdentityFormat.SHA256:
        if not _HEX64.match(value):
            raise IdentityError("a sha256 identity must be 64 hexadecimal characters")
        return value.lower()
    normalized = normalize(identity_type, value)
    if not normalized:
        raise IdentityError("identity value is empty after normalization")
    return hashlib.sha256(normalized.encode()).hexdigest()


def identity_hash(
    *, pepper: bytes, identity_type: IdentityType, value: str, identity_format: IdentityFormat
) -> str:
    digest = inner_digest(identity_type, value, identity_format)
    return hmac.digest(pepper, digest.encode(), "sha256").hex()
