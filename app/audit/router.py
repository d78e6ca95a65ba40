from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import service
from app.audit.schemas import AuditEventOut, AuditEventPage, ChainVerification
from app.core.auth import require
from app.core.db import SessionDep
from app.core.pagination import MAX_LIMIT
from app.core.scopes import Scope

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Admin = require(Scope.ADMIN)


@router.get("/verify", response_model=ChainVerification)
def verify(session: SessionDep, _: Admin) -> ChainVerification:
    return service.verify_chain(session)


@router.get("/events", response_model=AuditEventPage)
def export_events(
    session: SessionDep,
    _: Admin,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT * 5)] = 500,
) -> AuditEventPage:
    events = service.list_events(session, after_seq=after_seq, limit=limit)
    return AuditEventPage(
        items=[AuditEventOut.model_validate(e) for e in events],
        next_after_seq=events[-1].seq if len(events) == limit else None,
    )
