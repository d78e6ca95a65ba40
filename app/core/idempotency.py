"""`Idempotency-Key` for mutating POSTs.

A key is claimed in its own committed transaction before the work starts, so a concurrent
second use sees it `in_flight` (409). The stored response is written in the same transaction as
the work itself, so a replay can never disagree with what was committed. A failed attempt
releases its claim, so the client may retry with the same key.

Releasing can fail too (the database went away mid-request, or the process died), so a claim
left `in_flight` is never trusted for long:
- On Postgres the request holds a transaction-scoped advisory lock on its key from before the
  claim until its work commits or rolls back; a connection that dies loses it. A retry that
  gets the lock knows no live request owns the key and takes the claim over at once.
- On SQLite (one process, the embedded default) a claim has a lease,
  `LETHE_IDEMPOTENCY_LEASE_SECONDS`; once it has run out, a retry takes the claim over.
Each claim carries a token and the work commits only while its token still holds the key, so a
request whose claim was taken over rolls back instead of committing its work a second time.

Routers take an `Idempotent` dependency (the `Idempotency-Key` header of the caller) and hand
it their one service call: `once.run(201, lambda: shape(service.create(...)), body=body)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    CursorResult,
    Integer,
    String,
    UniqueConstraint,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.auth import CurrentClient
from app.core.config import get_settings
from app.core.db import Base, SessionDep, UTCDateTime, utcnow
from app.core.errors import ProblemError
from app.core.problems import Answer, ValidationProblem, answers

IN_FLIGHT = "in_flight"
DONE = "done"
MAX_KEY_LENGTH = 255

log = structlog.get_logger(__name__)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "key", name="uq_idempotency_client_key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    client_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who holds an in-flight key, and until when (SQLite; Postgres asks the advisory lock).
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def fingerprint(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _key_problem(detail: str, status: int, *, retry_after: float | None = None) -> ProblemError:
    headers = None
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return ProblemError(
        status,
        detail,
        slug="idempotency-conflict" if status == 409 else "idempotency-mismatch",
        errors=[{"parameter": "Idempotency-Key", "in": "header", "detail": detail}],
        headers=headers,
    )


def _in_progress(retry_after: float) -> ProblemError:
    return _key_problem(
        "A request with this Idempotency-Key is still in progress", 409, retry_after=retry_after
    )


def _lock_id(client_id: uuid.UUID, key: str) -> int:
    digest = hashlib.sha256(f"lethe-idempotency:{client_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _owner_lock(session: Session, *, client_id: uuid.UUID, key: str) -> bool | None:
    """On Postgres, take the key's advisory lock for the caller's transaction: True when taken
    (no live request is inside its work for this key), False when another request holds it.
    None on SQLite, where leases decide."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    taken = session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _lock_id(client_id, key)}
    )
    return bool(taken)


def run_idempotent(
    session: Session,
    *,
    client_id: uuid.UUID,
    key: str | None,
    fingerprint: str,
    ttl: timedelta,
    lease: timedelta,
    work: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any]]:
    """Run `work` (which must not commit) at most once per (client, key)."""
    if key is None:
        status, body = work()
        session.commit()
        return status, body
    if not key or len(key) > MAX_KEY_LENGTH:
        raise _key_problem(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters", 400)
    session.commit()  # end any read transaction before claiming the key in another one
    owner_free = _owner_lock(session, client_id=client_id, key=key)
    if owner_free is False:
        session.rollback()
        raise _in_progress(1)
    try:
        claimed = _claim(
            session,
            client_id=client_id,
            key=key,
            fingerprint=fingerprint,
            ttl=ttl,
            lease=lease,
            owner_free=bool(owner_free),
        )
    except BaseException:
        session.rollback()
        raise
    if isinstance(claimed, tuple):
        session.rollback()
        return claimed
    try:
        status, body = work()
        stored: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(IdempotencyKey)
            .where(
                IdempotencyKey.client_id == client_id,
                IdempotencyKey.key == key,
                IdempotencyKey.state == IN_FLIGHT,
                IdempotencyKey.claim_token == claimed,
            )
            .values(state=DONE, response_status=status, response_body=body, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount != 1:
            raise _in_progress(1)  # our claim was taken over: this attempt must not commit
        session.commit()
        return status, body
    except BaseException:
        session.rollback()
        _release(session, client_id=client_id, key=key, token=claimed)
        raise


def _find(session: Session, *, client_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
        )
    )


def _claim(
    session: Session,
    *,
    client_id: uuid.UUID,
    key: str,
    fingerprint: str,
    ttl: timedelta,
    lease: timedelta,
    owner_free: bool,
) -> str | tuple[int, dict[str, Any]]:
    """Claim the key in a transaction of its own: the claim's token, or the stored response to
    replay. `owner_free`: no live request holds the key (known on Postgres)."""
    token = secrets.token_hex(16)
    with Session(bind=session.get_bind(), expire_on_commit=False) as claim:
        now = utcnow()
        existing = _find(claim, client_id=client_id, key=key)
        if existing is not None and existing.created_at < now - ttl:
            claim.delete(existing)
            claim.flush()
            existing = None
        if existing is None:
            claim.add(
                IdempotencyKey(
                    client_id=client_id,
                    key=key,
                    fingerprint=fingerprint,
                    state=IN_FLIGHT,
                    claim_token=token,
                    lease_expires_at=now + lease,
                )
            )
            try:
                claim.commit()
                return token
            except IntegrityError:
                claim.rollback()
                existing = _find(claim, client_id=client_id, key=key)
                if existing is None:  # released between our insert and this read
                    raise _in_progress(1) from None
        claim.commit()
        if existing.fingerprint != fingerprint:
            raise _key_problem("This Idempotency-Key was used with a different request body", 422)
        if existing.state == DONE:
            assert existing.response_status is not None and existing.response_body is not None
            return existing.response_status, existing.response_body
        lease_left = (
            (existing.lease_expires_at - now).total_seconds()
            if existing.lease_expires_at is not None
            else 0.0
        )
        if not owner_free and lease_left > 0:
            raise _in_progress(lease_left)
        # Its request failed or died without releasing the key: this attempt takes it over.
        taken: CursorResult[Any] = claim.execute(  # type: ignore[assignment]
            update(IdempotencyKey)
            .where(
                IdempotencyKey.id == existing.id,
                IdempotencyKey.state == IN_FLIGHT,
                IdempotencyKey.claim_token.is_(None)
                if existing.claim_token is None
                else IdempotencyKey.claim_token == existing.claim_token,
            )
            .values(claim_token=token, lease_expires_at=now + lease, created_at=now)
            .execution_options(synchronize_session=False)
        )
        claim.commit()
        if taken.rowcount != 1:
            raise _in_progress(1)
        reason = "no live request holds it" if owner_free else "its lease ran out"
        log.info("idempotency_key_taken_over", reason=reason)
        return token


def _release(session: Session, *, client_id: uuid.UUID, key: str, token: str) -> None:
    """Give the key back after a failed attempt. When that fails too (the database is gone),
    the next attempt takes the claim over: see the module's docstring."""
    try:
        with Session(bind=session.get_bind()) as release:
            release.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.client_id == client_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == IN_FLIGHT,
                    IdempotencyKey.claim_token == token,
                )
            )
            release.commit()
    except Exception as exc:
        log.warning("idempotency_release_failed", error_type=type(exc).__name__)


@dataclass(frozen=True)
class Idempotency:
    """One request's mutating call, run at most once per (client, key) and committed together
    with the response a replay will get. Without a key it simply runs and commits."""

    session: Session
    request: Request
    client_id: uuid.UUID
    key: str | None

    def fingerprint(self, body: BaseModel | dict[str, Any] | None) -> str:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body or {}
        return fingerprint(method=self.request.method, path=self.request.url.path, body=payload)

    def run(
        self,
        status: int,
        call: Callable[[], dict[str, Any]],
        *,
        body: BaseModel | dict[str, Any] | None = None,
    ) -> JSONResponse:
        """`call` does the work without committing and returns the response body; `body` is
        what the caller sent, which a replay must repeat."""
        settings = get_settings()
        answered, response = run_idempotent(
            self.session,
            client_id=self.client_id,
            key=self.key,
            fingerprint=self.fingerprint(body),
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
            lease=timedelta(seconds=settings.idempotency_lease_seconds),
            work=lambda: (status, call()),
        )
        return JSONResponse(response, status_code=answered)


@answers(
    Answer(400, f"The Idempotency-Key is longer than {MAX_KEY_LENGTH} characters or empty"),
    Answer(
        409, "A request with this Idempotency-Key is still in progress", headers=("Retry-After",)
    ),
    Answer(422, "This Idempotency-Key was used with a different request body", ValidationProblem),
)
def _from_header(
    request: Request,
    session: SessionDep,
    client: CurrentClient,
    key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Idempotency:
    return Idempotency(session=session, request=request, client_id=client.id, key=key)


Idempotent = Annotated[Idempotency, Depends(_from_header)]
