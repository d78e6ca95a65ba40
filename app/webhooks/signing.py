"""Standard Webhooks signatures.

Registered endpoints share an HMAC secret with us (`whsec_...`) and get `v1` signatures, made with
the `standardwebhooks` library. A request's `callback_url` has no shared secret, so those
deliveries carry a `v1a` signature (Ed25519, the Standard Webhooks asymmetric scheme) that anyone
can check against the public key at `GET /v1/webhook-signing-key`.

Each delivery target has one signer, which turns an outgoing body into headers. The two above
are built in; a package that adds a target registers its own (`register_signer`), so that
delivery never needs to know who added it.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from math import floor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from app.core.config import get_settings
from app.webhooks.models import Target

SECRET_PREFIX = "whsec_"
SIGNING_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_v1(secrets_: list[str], *, msg_id: str, timestamp: datetime, body: str) -> str:
    """One `v1,<base64>` per secret, space-separated (several while a rotation overlaps)."""
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets_)


def create_once(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read `path`, creating it (mode 0600) first if absent; safe across processes."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            partial = path.with_name(f".{path.name}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(make())
            partial.replace(path)
    return path.read_bytes()


def new_signing_key() -> bytes:
    return (SIGNING_KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()).encode()


@lru_cache
def callback_signing_key() -> Ed25519PrivateKey:
    settings = get_settings()
    if settings.webhook_signing_key is not None:
        encoded = settings.webhook_signing_key.get_secret_value()
    elif settings.webhook_signing_key_file is not None:
        encoded = settings.webhook_signing_key_file.read_text().strip()
    else:
        path = settings.var_dir / "webhooks" / "callback-signing-key"
        encoded = create_once(path, new_signing_key).decode().strip()
    seed = base64.b64decode(encoded.removeprefix(SIGNING_KEY_PREFIX))
    return Ed25519PrivateKey.from_private_bytes(seed)


def callback_public_key() -> str:
    raw = callback_signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def sign_v1a(*, msg_id: str, timestamp: datetime, body: str) -> str:
    signed = f"{msg_id}.{floor(timestamp.timestamp())}.{body}".encode()
    return "v1a," + base64.b64encode(callback_signing_key().sign(signed)).decode()


@dataclass(frozen=True)
class Outgoing:
    """One attempt of one delivery, as its signer sees it."""

    message_id: str
    body: bytes  # the exact bytes sent
    sent_at: datetime
    secrets: tuple[str, ...] = ()  # an endpoint's secrets valid now, newest first


Signer = Callable[[Outgoing], dict[str, str]]
_signers: dict[Target, Signer] = {}


def register_signer(target: Target, signer: Signer) -> None:
    """Sign every delivery to `target` with `signer`; registering it again is harmless."""
    if _signers.setdefault(target, signer) is not signer:
        raise ValueError(f"deliveries to {target.value!r} already have a signer")


def signer_for(target: Target) -> Signer:
    try:
        return _signers[target]
    except KeyError:
        raise LookupError(f"no signer registered for {target.value!r} deliveries") from None


def _standard_headers(outgoing: Outgoing, signature: str) -> dict[str, str]:
    return {
        "webhook-id": outgoing.message_id,
        "webhook-timestamp": str(int(outgoing.sent_at.timestamp())),
        "webhook-signature": signature,
    }


def _endpoint_headers(outgoing: Outgoing) -> dict[str, str]:
    if not outgoing.secrets:
        raise ValueError("a delivery to an endpoint is signed with the endpoint's secret")
    text = outgoing.body.decode()
    signature = sign_v1(
        list(outgoing.secrets), msg_id=outgoing.message_id, timestamp=outgoing.sent_at, body=text
    )
    return _standard_headers(outgoing, signature)


def _callback_headers(outgoing: Outgoing) -> dict[str, str]:
    text = outgoing.body.decode()
    signature = sign_v1a(msg_id=outgoing.message_id, timestamp=outgoing.sent_at, body=text)
    return _standard_headers(outgoing, signature)


register_signer(Target.ENDPOINT, _endpoint_headers)
register_signer(Target.CALLBACK, _callback_headers)
