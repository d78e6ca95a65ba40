"""API clients: hashed bearer keys (`lth_...`) with scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import JSON, Boolean, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base, SessionDep, UTCDateTime, new_id, utcnow
from app.core.errors import ProblemError
from app.core.problems import Answer, ScopeProblem, answers
from app.core.scopes import ALL_SCOPES, Scope

KEY_PREFIX = "lth_"


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN.value in self.scopes

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def actor(self) -> str:
        """How the audit log names this client when it acts."""
        return f"client:{self.id}"


def _hash_secret(secret: str) -> str:
    # Keys are 256-bit random values, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    client: ApiClient
    key: str


def create_client(
    session: Session, *, name: str, scopes: list[str], requires_approval: bool = False
) -> IssuedKey:
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {sorted(ALL_SCOPES)}")
    if not scopes:
        raise ValueError("at least one scope is required")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        name=name,
        key_id=key_id,
        key_hash=_hash_secret(secret),
        scopes=sorted(set(scopes)),
        requires_approval=requires_approval,
    )
    session.add(client)
    session.flush()
    return IssuedKey(client=client, key=f"{KEY_PREFIX}{key_id}_{secret}")


def _load_client(session: Session, key_id: str) -> ApiClient | None:
    """The client row of a key id, read on every request: a revocation takes effect at once in
    every API process. No cache: this is one lookup on a unique index, measured in
    bench/RESULTS.md against the intake endpoint's other work."""
    client = session.scalar(select(ApiClient).where(ApiClient.key_id == key_id))
    if client is not None:
        # A detached snapshot: a later rollback in the request cannot expire (and re-read) it.
        session.expunge(client)
    return client


def authenticate(session: Session, *, key: str) -> ApiClient | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not secret:
        return None
    client = _load_client(session, key_id)
    if client is None or client.is_revoked:
        return None
    if not hmac.compare_digest(client.key_hash, _hash_secret(secret)):
        return None
    return client


# The OpenAPI document's security scheme; the check itself is `_current_client`'s.
bearer = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="lth_<key_id>_<secret>",
    description="An API key, `Authorization: Bearer lth_...` (`lethe clients create` or "
    "`POST /v1/clients` issues one). Each key holds scopes: "
    + ", ".join(f"`{s.value}`" for s in Scope)
    + "; `admin` holds every scope and sees every client's resources. An operation lists the "
    "scope it requires in its security requirement.",
    auto_error=False,
)


@answers(
    Answer(
        401, "No API key, or one that is not valid or was revoked", headers=("WWW-Authenticate",)
    )
)
def _current_client(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiClient:
    if credentials is None or not credentials.credentials:
        raise ProblemError(
            401,
            "Send an API key as `Authorization: Bearer lth_...`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    client = authenticate(session, key=credentials.credentials.strip())
    if client is None:
        raise ProblemError(
            401, "The API key is not valid or was revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    request.state.client_id = str(client.id)
    return client


CurrentClient = Annotated[ApiClient, Depends(_current_client)]


def scope_check(scope: Scope) -> Callable[[ApiClient], ApiClient]:
    """A dependency that passes the current client on when it holds `scope` (admin holds every
    scope), else answers 403."""

    @answers(
        Answer(403, f"The API key lacks the `{scope.value}` scope", ScopeProblem, scope=scope.value)
    )
    def _check(client: CurrentClient) -> ApiClient:
        if not client.has(scope):
            raise ProblemError(
                403, f"This API key lacks the `{scope.value}` scope", required_scope=scope.value
            )
        return client

    return _check


# The current client, holding one scope: annotate a route's parameter with one of these.
RequestsWriter = Annotated[ApiClient, Depends(scope_check(Scope.REQUESTS_WRITE))]
RequestsReader = Annotated[ApiClient, Depends(scope_check(Scope.REQUESTS_READ))]
LineageWriter = Annotated[ApiClient, Depends(scope_check(Scope.LINEAGE_WRITE))]
ModelsWriter = Annotated[ApiClient, Depends(scope_check(Scope.MODELS_WRITE))]
DashboardViewer = Annotated[ApiClient, Depends(scope_check(Scope.DASHBOARD))]
AdminClient = Annotated[ApiClient, Depends(scope_check(Scope.ADMIN))]


def require(scope: Scope) -> type[ApiClient]:
    """The same alias built at run time. FastAPI reads it, but a type checker cannot take a
    function's result as a type: prefer the aliases above (`RequestsWriter`, ...)."""
    # An Annotated form is no `type` to mypy; FastAPI reads it at run time all the same.
    return Annotated[ApiClient, Depends(scope_check(scope))]  # type: ignore[return-value]
