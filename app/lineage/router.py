from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.auth import LineageWriter
from app.core.db import SessionDep
from app.core.idempotency import Idempotent
from app.lineage import service
from app.lineage.schemas import DatasetCreate, DatasetOut, RecordsAdded, RecordsIn

router = APIRouter(prefix="/v1/datasets", tags=["lineage"])


def _dataset_out(session: SessionDep, dataset: object) -> dict[str, Any]:
    out = DatasetOut.model_validate(dataset)
    out.record_counts = service.record_counts(session, dataset_id=out.id)
    return out.model_dump(mode="json")


@router.post("", status_code=201, response_model=DatasetOut)
def create_dataset(
    body: DatasetCreate, session: SessionDep, client: LineageWriter, once: Idempotent
) -> JSONResponse:
    def call() -> dict[str, Any]:
        dataset = service.create_dataset(
            session, client=client, name=body.name, description=body.description
        )
        return _dataset_out(session, dataset)

    return once.run(201, call, body=body)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(
    dataset_id: uuid.UUID, session: SessionDep, client: LineageWriter
) -> dict[str, Any]:
    return _dataset_out(session, service.get_dataset(session, client=client, dataset_id=dataset_id))


@router.post("/{dataset_id}/records", status_code=201, response_model=RecordsAdded)
def add_records(
    dataset_id: uuid.UUID,
    body: RecordsIn,
    session: SessionDep,
    client: LineageWriter,
    once: Idempotent,
) -> JSONResponse:
    def call() -> dict[str, Any]:
        dataset, result = service.add_api_records(
            session, client=client, dataset_id=dataset_id, records=body.records
        )
        out = RecordsAdded(
            dataset_id=dataset.id, added=result.added, new_subjects=result.new_subjects
        )
        return out.model_dump(mode="json")

    return once.run(201, call, body=body)
