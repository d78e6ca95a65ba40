"""Imports every table so that `Base.metadata` is complete (Alembic, tests)."""

from app.audit.models import AuditEvent, ErasureCertificate
from app.core.auth import ApiClient
from app.core.db import Base
from app.core.idempotency import IdempotencyKey
from app.dashboard.models import DashboardSession
from app.erasure.models import ErasureRequest
from app.jobs.models import Job, JobRequest, JobShard
from app.lineage.models import Dataset, DataSubject, SubjectIdentity, TrainingRecord
from app.opendsr.models import OpenDsrRequest
from app.registry.models import MlModel, ModelVersion, ShardCheckpoint
from app.suppression.models import Suppression, SuppressionOverride
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiClient",
    "AuditEvent",
    "Base",
    "DashboardSession",
    "DataSubject",
    "Dataset",
    "ErasureCertificate",
    "ErasureRequest",
    "IdempotencyKey",
    "Job",
    "JobRequest",
    "JobShard",
    "MlModel",
    "ModelVersion",
    "OpenDsrRequest",
    "ShardCheckpoint",
    "SubjectIdentity",
    "Suppression",
    "SuppressionOverride",
    "TrainingRecord",
    "WebhookDelivery",
    "WebhookEndpoint",
]
