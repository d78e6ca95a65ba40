from __future__ import annotations

import uuid

from fastapi import APIRouter

from app.core.auth import CurrentClient
from app.core.db import SessionDep
from app.jobs import service
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, client: CurrentClient) -> JobOut:
    return service.to_out(session, service.get_job(session, client=client, job_id=job_id))
