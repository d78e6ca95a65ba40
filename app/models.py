"""Imports every table so that `Base.metadata` is complete (Alembic, tests)."""

from app.audit.models import AuditEvent
from app.core.auth import ApiClient
from app.core.db import Base
from app.core.idempotency import IdempotencyKey
from app.erasure.models import ErasureRequest
from app.lineage.models import Dataset, DataSubject, SubjectIdentity, TrainingRecord

__all__ = [
    "ApiClient",
    "AuditEvent",
    "Base",
    "DataSubject",
    "Dataset",
    "ErasureRequest",
    "IdempotencyKey",
    "SubjectIdentity",
    "TrainingRecord",
]
