"""Erasing a person in this process, as the worker's planning and purge would."""

from __future__ import annotations

import uuid
from datetime import timedelta


def erase(api, headers, email: str) -> str:
    """Submit an erasure request and plan it in this process (no model: planning purges)."""
    from app.core.db import get_sessionmaker
    from app.erasure.models import ErasureRequest
    from app.erasure.planning import plan_request

    body = {"identities": [{"type": "email", "value": email}]}
    request_id = api.post("/v1/erasure-requests", json=body, headers=headers).json()["id"]
    with get_sessionmaker()() as session:
        plan_request(session, request_id=uuid.UUID(request_id), window=timedelta(0), max_attempts=3)
        session.commit()
        request = session.get(ErasureRequest, uuid.UUID(request_id))
        assert request is not None and request.status in {"planned", "completed"}
    return request_id
