"""`Idempotency-Key` for mutating POSTs.

A key is claimed in its own committed transaction before the work starts, so a concurrent
second use sees it `in_flight` (409). The stored response is written in the same transaction as
the work itself, so a replay can never disagree with what was committed. A failed attempt
releases its claim, so the client may retry with the same key.

Routers take an `Idempotent` dependency (the `Idempotency-Key` header of the caller) and hand
it their one service call: `once.run(201, lambda: shape(service.create(...)), body=body)`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.auth import CurrentClient
from app.core.config import get_settings
from app.core.db import Base, SessionDep, UTCDateTime, get_sessionmaker, utcnow
from app.core.errors import ProblemError

IN_FLIGHT = "in_flight"
DONE = "done"
MAX_KEY_LENGTH = 255


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


def fingerprint(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _key_problem(detail: str, status: int) -> ProblemError:
    return ProblemError(
        status,
        detail,
        slug="idempotency-conflict" if status == 409 else "idempotency-mismatch",
        errors=[{"parameter": "Idempotency-Key", "in": "header", "detail": detail}],
    )


def run_idempotent(
    session: Session,
    *,
    client_id: uuid.UUID,
    key: str | None,
    fingerprint: str,
    ttl: timedelta,
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
    replay = _claim(client_id=client_id, key=key, fingerprint=fingerprint, ttl=ttl)
    if replay is not None:
        return replay
    try:
        status, body = work()
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
            .values(state=DONE, response_status=status, response_body=body)
        )
        session.commit()
        return status, body
    except BaseException:
        session.rollback()
        _release(client_id=client_id, key=key)
        raise


def _claim(
    *, client_id: uuid.UUID, key: str, fingerprint: str, ttl: timedelta
) -> tuple[int, dict[str, Any]] | None:
    with get_sessionmaker()() as claim:
        existing = claim.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
            )
        )
        if existing is not None and existing.created_at < utcnow() - ttl:
            claim.delete(existing)
            claim.flush()
            existing = None
        if existing is None:
            claim.add(
                IdempotencyKey(
                    client_id=client_id, key=key, fingerprint=fingerprint, state=IN_FLIGHT
                )
            )
            try:
                claim.commit()
                return None
            except IntegrityError:
                claim.rollback()
                existing = claim.scalar(
                    select(IdempotencyKey).where(
                        IdempotencyKey.client_id == client_id, IdempotencyKey.key == key
                    )
                )
                if existing is None:  # released between our insert and this read
                    raise _key_problem("This Idempotency-Key is being used; retry", 409) from None
        claim.commit()
        if existing.fingerprint != fingerprint:
            raise _key_problem("This Idempotency-Key was used with a different request body", 422)
        if existing.state == IN_FLIGHT:
            raise _key_problem("A request with this Idempotency-Key is still in progress", 409)
        assert existing.response_status is not None and existing.response_body is not None
        return existing.response_status, existing.response_body


def _release(*, client_id: uuid.UUID, key: str) -> None:
    with get_sessionmaker()() as release:
        release.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.client_id == client_id,
                IdempotencyKey.key == key,
                IdempotencyKey.state == IN_FLIGHT,
            )
        )
        release.commit()


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
        answered, response = run_idempotent(
            self.session,
            client_id=self.client_id,
            key=self.key,
            fingerprint=self.fingerprint(body),
            ttl=timedelta(hours=get_settings().idempotency_ttl_hours),
            work=lambda: (status, call()),
        )
        return JSONResponse(response, status_code=answered)


def _from_header(
    request: Request,
    session: SessionDep,
    client: CurrentClient,
    key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Idempotency:
    return Idempotency(session=session, request=request, client_id=client.id, key=key)


Idempotent = Annotated[Idempotency, Depends(_from_header)]
