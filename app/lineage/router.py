from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from app.core.auth import require
from app.core.config import get_settings
from app.core.db import SessionDep
from app.core.errors import ProblemError
from app.core.idempotency import idempotent_json
from app.core.scopes import Scope
from app.lineage import service
from app.lineage.schemas import DatasetCreate, DatasetOut, RecordsAdded, RecordsIn

router = APIRouter(prefix="/v1/datasets", tags=["lineage"])
LineageWriter = require(Scope.LINEAGE_WRITE)
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def _dataset_out(session: SessionDep, dataset: object) -> dict:
    out = DatasetOut.model_validate(dataset)
    out.record_counts = service.record_counts(session, dataset_id=out.id)
    return out.model_dump(mode="json")


@router.post("", status_code=201, response_model=DatasetOut)
def create_dataset(
    body: DatasetCreate,
    request: Request,
    session: SessionDep,
    client: LineageWriter,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def work() -> tuple[int, dict]:
        dataset = service.create_dataset(
            session, client=client, name=body.name, description=body.description
        )
        return 201, _dataset_out(session, dataset)

    return idempotent_json(
        session,
        request=request,
        client_id=client.id,
        key=idempotency_key,
        body=body,
        work=work,
    )


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: uuid.UUID, session: SessionDep, client: LineageWriter) -> dict:
    return _dataset_out(session, service.get_dataset(session, client=client, dataset_id=dataset_id))


@router.post("/{dataset_id}/records", status_code=201, response_model=RecordsAdded)
def add_records(
    dataset_id: uuid.UUID,
    body: RecordsIn,
    request: Request,
    session: SessionDep,
    client: LineageWriter,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    settings = get_settings()
    if len(body.records) > settings.max_records_per_call:
        raise ProblemError(
            422,
            f"At most {settings.max_records_per_call} records per call; "
            "use `lethe records import` for larger sets",
            slug="too-many-records",
            errors=[{"pointer": "#/records", "detail": "too many records"}],
        )
    dataset = service.get_dataset(session, client=client, dataset_id=dataset_id)

    def work() -> tuple[int, dict]:
        rows, feature_count = service.rows_from_api(
            pepper=settings.pepper_bytes(), records=body.records
        )
        result = service.add_records(
            session, dataset=dataset, rows=rows, feature_count=feature_count
        )
        out = RecordsAdded(
            dataset_id=dataset.id, added=result.added, new_subjects=result.new_subjects
        )
        return 201, out.model_dump(mode="json")

    return idempotent_json(
        session,
        request=request,
        client_id=client.id,
        key=idempotency_key,
        body=body,
        work=work,
    )
