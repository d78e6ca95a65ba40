"""Lethe's Ed25519 signing key and the JWKS that publishes its public half.

The key is a PEM file (`LETHE_SIGNING_KEY_FILE`); the embedded default generates one under the
var directory on first use. Its `kid` is the RFC 7638 thumbprint, so a verifier can pick the
right key after a rotation. Tokens use the fully specified JOSE algorithm `Ed25519` (RFC 9864).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from joserfc import jws
from joserfc.jwk import KeySet, KeySetSerialization, OKPKey

ALGORITHM = "Ed25519"


@lru_cache
def load_signing_key(path: Path) -> OKPKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generated = OKPKey.generate_key("Ed25519")
        path.write_bytes(generated.as_pem(private=True))
        path.chmod(0o600)
    key = OKPKey.import_key(path.read_bytes())
    return OKPKey.import_key(path.read_bytes(), parameters={"kid": key.thumbprint()})


def jwks(key: OKPKey) -> dict[str, Any]:
    public = key.as_dict(private=False)
    return {"keys": [{**public, "alg": ALGORITHM, "use": "sig"}]}


def sign_claims(key: OKPKey, claims: dict[str, Any], *, typ: str) -> str:
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
    return jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM])


class InvalidSignature(ValueError):
    pass


def verify_token(token: str, key_set: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a compact JWS against a JWKS document; returns (header, claims)."""
    try:
        # The document comes from outside (a file, a URL): import_key_set checks its shape.
        keys = KeySet.import_key_set(cast(KeySetSerialization, key_set))
        verified = jws.deserialize_compact(token, keys, algorithms=[ALGORITHM])
    except Exception as exc:  # joserfc raises several error types; all mean "not valid"
        raise InvalidSignature(f"signature does not verify: {type(exc).__name__}") from exc
    return verified.headers(), json.loads(verified.payload)
