from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.core.auth import AdminClient
from app.core.db import SessionDep
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.suppression import service
from app.suppression.schemas import OverrideOut, SuppressionOut, SuppressionPage

router = APIRouter(prefix="/v1/suppressions", tags=["suppression"])


@router.get("", response_model=SuppressionPage)
def list_suppressions(
    session: SessionDep,
    _: AdminClient,
    identity_type: Annotated[str | None, Query(max_length=50)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> SuppressionPage:
    """The suppression list (admin): erased identities, newest first, with the clients that
    stated a lawful basis to process one again. It holds no identity values."""
    rows, overrides, next_cursor = service.list_suppressions(
        session,
        identity_type=identity_type,
        cursor=cursor,
        limit=limit,
    )
    items = [
        SuppressionOut(
            id=row.id,
            identity_type=row.type,
            suppressed_at=row.suppressed_at,
            erasure_request_id=row.request_id,
            lawful_basis_overrides=[OverrideOut.model_validate(o) for o in overrides[row.id]],
        )
        for row in rows
    ]
    return SuppressionPage(items=items, next_cursor=next_cursor)
