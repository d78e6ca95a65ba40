"""Models: their versions with status, strategy and accuracy, and the erasures each absorbed;
held versions with the figures that held them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.jobs.enums import JobKind, JobStatus
from app.jobs.models import Job, JobRequest
from app.lineage.models import Dataset
from app.registry.enums import VersionStatus
from app.registry.models import MlModel, ModelVersion


@dataclass(frozen=True)
class VersionRow:
    id: uuid.UUID
    number: int
    status: str
    method: str
    exact: bool
    trained_records: int
    test_accuracy: float | None
    erasures: int
    created_at: datetime
    activated_at: datetime | None
    purged_at: datetime | None
    # A held version's figures: the active version's accuracy, the fall and the threshold.
    hold: dict[str, Any] | None = None


@dataclass
class ModelRow:
    id: uuid.UUID
    name: str
    client_name: str
    dataset_name: str
    architecture: str
    strategy: str
    shards: int
    slices: int
    active_number: int | None = None
    test_accuracy: float | None = None
    erasures: int = 0
    versions: list[VersionRow] = field(default_factory=list)
    running_job: str | None = None

    @property
    def held(self) -> list[VersionRow]:
        return [v for v in self.versions if v.status == VersionStatus.HELD]


def _accuracy(version: ModelVersion) -> float | None:
    value = (version.metrics or {}).get("test_accuracy")
    return float(value) if isinstance(value, int | float) else None


def _erasures_by_version(session: Session) -> dict[uuid.UUID, int]:
    """Requests each version absorbed: those its unlearning job carried out."""
    rows = session.execute(
        select(Job.result_version_id, func.count(JobRequest.request_id.distinct()))
        .join(JobRequest, JobRequest.job_id == Job.id)
        .where(Job.kind == JobKind.UNLEARN.value, Job.result_version_id.is_not(None))
        .group_by(Job.result_version_id)
    )
    return {version_id: count for version_id, count in rows if version_id is not None}


def models(session: Session, *, model_id: uuid.UUID | None = None) -> list[ModelRow]:
    query = (
        select(MlModel, ApiClient.name, Dataset.name)
        .join(ApiClient, ApiClient.id == MlModel.client_id)
        .join(Dataset, Dataset.id == MlModel.dataset_id)
        .order_by(MlModel.created_at.desc())
    )
    if model_id is not None:
        query = query.where(MlModel.id == model_id)
    found = session.execute(query).all()
    ids = [m.id for m, _, _ in found]
    versions: dict[uuid.UUID, list[ModelVersion]] = defaultdict(list)
    for version in session.scalars(
        select(ModelVersion)
        .where(ModelVersion.model_id.in_(ids))
        .order_by(ModelVersion.number.desc())
    ):
        versions[version.model_id].append(version)
    running: dict[uuid.UUID, str] = {
        model_id: stage
        for model_id, stage in session.execute(
            select(Job.model_id, Job.stage).where(
                Job.model_id.in_(ids), Job.status == JobStatus.RUNNING.value
            )
        )
    }
    erasures = _erasures_by_version(session)
    rows = []
    for model, client_name, dataset_name in found:
        row = ModelRow(
            id=model.id,
            name=model.name,
            client_name=client_name,
            dataset_name=dataset_name,
            architecture=model.architecture,
            strategy=model.strategy,
            shards=model.shards,
            slices=model.slices,
            running_job=running.get(model.id),
        )
        for version in versions[model.id]:
            row.versions.append(
                VersionRow(
                    id=version.id,
                    number=version.number,
                    status=version.status,
                    method=version.method,
                    exact=version.exact,
                    trained_records=version.trained_records,
                    test_accuracy=_accuracy(version),
                    erasures=erasures.get(version.id, 0),
                    created_at=version.created_at,
                    activated_at=version.activated_at,
                    purged_at=version.purged_at,
                    hold=(version.metrics or {}).get("hold")
                    if version.status == VersionStatus.HELD
                    else None,
                )
            )
            if version.id == model.active_version_id:
                row.active_number = version.number
                row.test_accuracy = _accuracy(version)
        row.erasures = sum(v.erasures for v in row.versions)
        rows.append(row)
    return rows
