from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.auth import CurrentClient
from app.core.db import SessionDep
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.jobs import service
from app.jobs.enums import JobKind, JobStatus
from app.jobs.schemas import JobOut, JobPage

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    client: CurrentClient,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    model_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JobPage:
    rows, next_cursor = service.list_jobs(
        session,
        client=client,
        status=status,
        kind=kind,
        model_id=model_id,
        cursor=cursor,
        limit=limit,
    )
    return JobPage(items=[service.to_out(session, j) for j in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, client: CurrentClient) -> JobOut:
    return service.to_out(session, service.get_job(session, client=client, job_id=job_id))
