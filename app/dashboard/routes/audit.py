"""Verify the audit chain, browse its latest events, export a period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from app.audit import export
from app.audit.service import verify_chain
from app.core.db import SessionDep, get_sessionmaker, utcnow
from app.dashboard.routes.common import page
from app.dashboard.security import DashboardError, SignedIn
from app.dashboard.views import audit as audit_view
from app.dashboard.views.names import actor_label, client_names

router = APIRouter()
FORMATS = {
    "jsonl": ("application/x-ndjson", export.as_json_lines),
    "csv": ("text/csv", export.as_csv),
}


@router.get("/audit")
def audit(request: Request, session: SessionDep, officer: SignedIn) -> HTMLResponse:
    q = request.query_params
    verification = verify_chain(session) if q.get("verify") else None
    broken = (
        audit_view.event(session, seq=verification.first_broken.seq)
        if verification is not None and verification.first_broken is not None
        else None
    )
    before = q.get("before", "")
    events, older = audit_view.latest(
        session, before=int(before) if before.isdigit() and len(before) < 19 else None
    )
    names = client_names(session)
    today = utcnow().date()
    return page(
        request,
        "audit.html",
        officer,
        verification=verification,
        broken_event=broken,
        events=events,
        older_than=older,
        actor=lambda raw: actor_label(raw, names),
        export_from=(today - timedelta(days=30)).isoformat(),
        export_to=today.isoformat(),
    )


def _day(value: str | None, name: str) -> date:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        raise DashboardError(400, f"`{name}` must be a date (YYYY-MM-DD).") from None


@router.get("/audit/export")
def export_events(request: Request, officer: SignedIn) -> Response:
    """The events of the period as a download, streamed (any size) from its own session."""
    q = request.query_params
    start, end = _day(q.get("from"), "from"), _day(q.get("to"), "to")
    if end < start:
        raise DashboardError(400, "The period ends before it starts.")
    kind = q.get("format", "jsonl")
    if kind not in FORMATS:
        raise DashboardError(400, "The format is `jsonl` or `csv`.")
    media_type, render = FORMATS[kind]
    begin = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    def lines() -> Iterator[str]:
        with get_sessionmaker()() as session:
            yield from render(export.events_between(session, start=begin, end=until))

    filename = f"lethe-audit-{start.isoformat()}-{end.isoformat()}.{kind}"
    return StreamingResponse(
        lines(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
