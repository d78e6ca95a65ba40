from __future__ import annotations

import functools
import uuid
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from app.core.auth import require
from app.core.broker import RUN_JOB, TRAINING_QUEUE, enqueue, predict_remotely
from app.core.config import get_settings
from app.core.db import SessionDep
from app.core.errors import ProblemError
from app.core.idempotency import idempotent_json
from app.core.scopes import Scope
from app.jobs import service as jobs
from app.registry import service
from app.registry.schemas import ModelCreate, ModelOut, PredictIn, PredictOut, VersionOut

router = APIRouter(prefix="/v1/models", tags=["registry"])
ModelWriter = require(Scope.MODELS_WRITE)
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("", status_code=201, response_model=ModelOut)
def create_model(
    body: ModelCreate,
    request: Request,
    session: SessionDep,
    client: ModelWriter,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def work() -> tuple[int, dict]:
        model = service.create_model(session, client=client, body=body)
        return 201, service.to_out(session, model).model_dump(mode="json")

    return idempotent_json(
        session,
        request=request,
        client_id=client.id,
        key=idempotency_key,
        body=body,
        work=work,
    )


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: uuid.UUID, session: SessionDep, client: ModelWriter) -> ModelOut:
    return service.to_out(session, service.get_model(session, client=client, model_id=model_id))


@router.get("/{model_id}/versions", response_model=list[VersionOut])
def list_versions(model_id: uuid.UUID, session: SessionDep, client: ModelWriter) -> list:
    model = service.get_model(session, client=client, model_id=model_id)
    return [VersionOut.model_validate(v) for v in service.versions(session, model_id=model.id)]


@router.post("/{model_id}/train", status_code=202)
def train(model_id: uuid.UUID, session: SessionDep, client: ModelWriter) -> JSONResponse:
    model = service.get_model(session, client=client, model_id=model_id)
    job = jobs.create_train_job(
        session,
        model_id=model.id,
        client_id=model.client_id,
        max_attempts=get_settings().job_max_attempts,
    )
    session.commit()
    enqueue(RUN_JOB, args=[str(job.id)], queue=TRAINING_QUEUE)
    return JSONResponse(
        jobs.to_out(session, job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


# Predictions wait on a worker; they get their own threads so they never hold up the API's.
_PREDICTION_THREADS = anyio.CapacityLimiter(16)


@router.post("/{model_id}/predict", response_model=PredictOut)
async def predict(
    model_id: uuid.UUID, body: PredictIn, session: SessionDep, client: ModelWriter
) -> PredictOut:
    def active_version() -> tuple[uuid.UUID, uuid.UUID]:
        model = service.get_model(session, client=client, model_id=model_id)
        version = service.active_version(session, model=model)
        if version is None:
            raise ProblemError(
                409, "The model has no active version yet; train it first", slug="not-trained"
            )
        session.commit()
        return model.id, version.id

    model_key, version_key = await anyio.to_thread.run_sync(active_version)
    result = await anyio.to_thread.run_sync(
        functools.partial(
            predict_remotely, model_id=model_key, version_id=version_key, features=body.features
        ),
        limiter=_PREDICTION_THREADS,
    )
    return PredictOut(model_id=model_key, version_id=version_key, **result)
