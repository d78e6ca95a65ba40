"""Identity normalization and keyed hashing.

An identity is stored only as HMAC-SHA256(pepper, hex(sha256(normalized value))). The inner
digest is what a caller sends with `format: sha256`, so pre-hashed identities (OpenDSR
`identity_format: sha256`) resolve to the same subject as raw ones.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from enum import StrEnum

from app.core.validation import text_problem


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
# E.164: a plus sign, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# An address as people and mail systems use it: a dot-atom local part (RFC 5322 atext, which
# also covers internationalized addresses), one `@`, and a domain of at least two labels.
_EMAIL_LOCAL = re.compile(r"^[\w!#$%&'*+/=?^`{|}~-]+(\.[\w!#$%&'*+/=?^`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?$")
# Advertising ids that their platforms define as UUIDs (AAID, IDFA, Amazon's AFAI, Microsoft's
# advertising id). Publisher-scoped ids have no fixed format.
UUID_TYPES = frozenset(
    {
        IdentityType.ANDROID_ADVERTISING_ID,
        IdentityType.IOS_ADVERTISING_ID,
        IdentityType.FIRE_ADVERTISING_ID,
        IdentityType.MICROSOFT_ADVERTISING_ID,
    }
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class IdentityError(ValueError):
    """A problem with an identity; the message never contains the value."""


def normalize(identity_type: IdentityType, value: str) -> str:
    if identity_type is IdentityType.EMAIL:
        return value.strip().lower()
    return value


def _email_ok(address: str) -> bool:
    if len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not 0 < len(local) <= 64 or not _EMAIL_LOCAL.match(local):
        return False
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and all(_DOMAIN_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    )


def check_format(
    identity_type: IdentityType, normalized: str, *, text_checked: bool = False
) -> None:
    """Raise IdentityError when a raw value does not have its type's format (`text_checked`:
    the caller already found no unsafe character in it)."""
    problem = None if text_checked else text_problem(normalized)
    if problem is not None:
        raise IdentityError(f"an identity value {problem}")
    if identity_type is IdentityType.EMAIL and not _email_ok(normalized):
        raise IdentityError("an email identity must be an e-mail address (name@domain)")
    if identity_type is IdentityType.PHONE and not _E164.match(normalized):
        raise IdentityError(
            "a phone identity must be in E.164 format: +, country code and number, digits only"
        )
    if identity_type in UUID_TYPES and not _UUID.match(normalized):
        raise IdentityError(f"an {identity_type.value} must be a UUID (8-4-4-4-12 hex digits)")


def inner_digest(
    identity_type: IdentityType,
    value: str,
    identity_format: IdentityFormat,
    *,
    text_checked: bool = False,
) -> str:
    if identity_format is IdentityFormat.SHA256:
        if not _HEX64.match(value):
            raise IdentityError("a sha256 identity must be 64 hexadecimal characters")
        return value.lower()
    normalized = normalize(identity_type, value)
    if not normalized:
        raise IdentityError("identity value is empty after normalization")
    check_format(identity_type, normalized, text_checked=text_checked)
    return hashlib.sha256(normalized.encode()).hexdigest()


def identity_hash(
    *, pepper: bytes, identity_type: IdentityType, value: str, identity_format: IdentityFormat
) -> str:
    digest = inner_digest(identity_type, value, identity_format)
    return hmac.digest(pepper, digest.encode(), "sha256").hex()


# Types whose raw value is hashed as it is, once it is safe text (no normalization, no format).
_FREE_FORM = frozenset(IdentityType) - UUID_TYPES - {IdentityType.EMAIL, IdentityType.PHONE}


class IdentityErrorAt(IdentityError):
    """An identity problem in a batch, at `position`; the message never contains the value."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


def identity_hashes(
    *, pepper: bytes, identities: Sequence[tuple[IdentityType, str, IdentityFormat]]
) -> list[str]:
    """`identity_hash` of each (type, value, format), for imports of many records. The raw
    values are searched for unsafe characters once, all together (a character that matches in
    the joined text matches in one value, and none is added by joining); each value is checked
    alone only when that search finds one. Raises IdentityErrorAt."""
    text_checked = text_problem("".join(v for _, v, f in identities if f is IdentityFormat.RAW))
    plain = text_checked is None
    hashes = []
    for position, (identity_type, value, identity_format) in enumerate(identities):
        if (
            plain
            and identity_format is IdentityFormat.RAW
            and identity_type in _FREE_FORM
            and value
        ):
            # No normalization and no format beyond safe text: the common case, inline.
            digest = hashlib.sha256(value.encode()).hexdigest()
        else:
            try:
                digest = inner_digest(identity_type, value, identity_format, text_checked=plain)
            except IdentityError as exc:
                raise IdentityErrorAt(str(exc), position=position) from None
        hashes.append(hmac.digest(pepper, digest.encode(), "sha256").hex())
    return hashes


def identity_hashes_of(
    *, pepper: bytes, types: Sequence[str], values: Sequence[str], formats: Sequence[str]
) -> list[str]:
    """`identity_hashes` of parallel columns of type names, values and format names (names
    already checked). When every identity is a raw value of a free-form type, as in most
    imports, the values are hashed in one pass with the pepper's key schedule computed once.
    Raises IdentityErrorAt."""
    if (
        set(formats) == {IdentityFormat.RAW}
        and set(types) <= _FREE_FORM
        and all(values)
        and text_problem("".join(values)) is None
    ):
        keyed = hmac.new(pepper, digestmod="sha256")
        hashes = []
        for value in values:
            mac = keyed.copy()
            mac.update(hashlib.sha256(value.encode()).hexdigest().encode())
            hashes.append(mac.hexdigest())
        return hashes
    return identity_hashes(
        pepper=pepper,
        identities=[
            (IdentityType(t), v, IdentityFormat(f))
            for t, v, f in zip(types, values, formats, strict=True)
        ],
    )
