from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.core.auth import LineageWriter
from app.core.db import SessionDep
from app.core.idempotency import Idempotent
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problems import Answer, problems
from app.lineage import service
from app.lineage.schemas import DatasetCreate, DatasetOut, DatasetPage, RecordsAdded, RecordsIn

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


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    client: LineageWriter,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> DatasetPage:
    rows, next_cursor = service.list_datasets(session, client=client, cursor=cursor, limit=limit)
    counts = service.record_counts_by_dataset(session, dataset_ids=[d.id for d in rows])
    items = [DatasetOut.model_validate(d) for d in rows]
    for item in items:
        item.record_counts = counts[item.id]
    return DatasetPage(items=items, next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(
    dataset_id: uuid.UUID, session: SessionDep, client: LineageWriter
) -> dict[str, Any]:
    return _dataset_out(session, service.get_dataset(session, client=client, dataset_id=dataset_id))


@router.post(
    "/{dataset_id}/records",
    status_code=201,
    response_model=RecordsAdded,
    responses=problems(
        Answer(409, "A record key is already used (`errors` points at each)"),
        Answer(409, "A record names a person erased on request and states no lawful basis"),
    ),
)
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
