from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    model_id: uuid.UUID
    status: str
    stage: str
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    metrics: dict[str, Any]
    base_version_id: uuid.UUID | None
    result_version_id: uuid.UUID | None
    request_ids: list[uuid.UUID] = []
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
