"""Signing in to the dashboard with an API key, and the server-side session that follows.

The key is checked once, at sign-in; the browser then holds only a random session token in an
HttpOnly, SameSite=Strict cookie (Secure behind HTTPS). Each page view re-reads the session and
its client, so a revoked key or a sign-out ends the session at once, in every process. Every
form carries the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.audit.service import append_event
from app.core.auth import ApiClient, authenticate
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.scopes import Scope
from app.dashboard.models import DashboardSession

# A page view moves `last_seen_at` (the idle clock) at most this often: no write per view.
_SEEN_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Officer:
    """Who is signed in: the client whose key they used, and their session."""

    client: ApiClient
    session_id: uuid.UUID
    csrf_token: str

    @property
    def can_act(self) -> bool:
        """Admins act; `dashboard` keys only read."""
        return self.client.is_admin


class SignInRefused(Exception):
    """The key is unknown, revoked, or lacks the `admin` and `dashboard` scopes."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_sign_in(client: ApiClient) -> bool:
    return client.has(Scope.DASHBOARD)  # admin holds every scope


def sign_in(session: Session, *, key: str) -> tuple[str, DashboardSession, ApiClient]:
    """A new session for the key's client; returns the cookie token (kept only hashed)."""
    client = authenticate(session, key=key.strip())
    if client is None or not may_sign_in(client):
        raise SignInRefused
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Sessions past their end are useless; sweeping them here keeps the table small.
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
    row = DashboardSession(
        token_hash=_digest(token),
        client_id=client.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + timedelta(hours=settings.dashboard_session_hours),
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    append_event(
        session,
        actor=client.actor,
        action="dashboard.signed_in",
        entity_type="api_client",
        entity_id=str(client.id),
        data={"session_id": str(row.id)},
    )
    return token, row, client


def current(session: Session, *, token: str) -> Officer | None:
    """The officer a cookie token belongs to, or None when the session has ended, expired,
    idled out, or its client was revoked or lost the scopes."""
    found = session.execute(
        select(DashboardSession, ApiClient)
        .join(ApiClient, ApiClient.id == DashboardSession.client_id)
        .where(DashboardSession.token_hash == _digest(token))
    ).first()
    if found is None:
        return None
    row, client = found
    now = utcnow()
    idle = timedelta(minutes=get_settings().dashboard_idle_minutes)
    if (
        row.ended_at is not None
        or row.expires_at <= now
        or row.last_seen_at + idle <= now
        or client.is_revoked
        or not may_sign_in(client)
    ):
        return None
    if now - row.last_seen_at >= _SEEN_RESOLUTION:
        row.last_seen_at = now
        session.commit()
    session.expunge(client)
    return Officer(client=client, session_id=row.id, csrf_token=row.csrf_token)


def csrf_ok(officer: Officer, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(officer.csrf_token, submitted or "")


def sign_out(session: Session, *, officer: Officer) -> None:
    session.execute(
        update(DashboardSession)
        .where(DashboardSession.id == officer.session_id, DashboardSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    append_event(
        session,
        actor=officer.client.actor,
        action="dashboard.signed_out",
        entity_type="api_client",
        entity_id=str(officer.client.id),
        data={"session_id": str(officer.session_id)},
    )
