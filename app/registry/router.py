from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.core.auth import AdminClient, ApiClient, ModelsWriter
from app.core.broker import generate_remotely, predict_remotely
from app.core.db import SessionDep
from app.core.idempotency import Idempotent
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problems import Answer, problems
from app.jobs import service as jobs
from app.jobs.schemas import JobOut, ModelBusy
from app.registry import base_models, holds, service
from app.registry.schemas import (
    BaseModelList,
    BaseModelOut,
    GenerateIn,
    GenerateOut,
    ModelCreate,
    ModelOut,
    ModelPage,
    PredictIn,
    PredictOut,
    VersionOut,
)

router = APIRouter(prefix="/v1/models", tags=["registry"])
base_models_router = APIRouter(prefix="/v1/base-models", tags=["registry"])


@base_models_router.get("", response_model=BaseModelList)
def list_base_models(session: SessionDep, client: ModelsWriter) -> BaseModelList:
    """Pretrained bases a `causal_lm` model can fine-tune (`lethe base-models add`)."""
    return BaseModelList(
        items=[BaseModelOut.model_validate(b) for b in base_models.list_base_models(session)]
    )


@base_models_router.get(
    "/{base_model_id}", response_model=BaseModelOut, responses=problems(Answer(404, "No such base"))
)
def get_base_model(
    base_model_id: uuid.UUID, session: SessionDep, client: ModelsWriter
) -> BaseModelOut:
    return BaseModelOut.model_validate(
        base_models.get_base_model(session, base_model_id=base_model_id)
    )


@router.post(
    "",
    status_code=201,
    response_model=ModelOut,
    responses=problems(Answer(404, "The dataset does not exist or is not visible to this key")),
)
def create_model(
    body: ModelCreate, session: SessionDep, client: ModelsWriter, once: Idempotent
) -> JSONResponse:
    def call() -> dict[str, Any]:
        model = service.create_model(session, client=client, body=body)
        return service.to_out(session, model).model_dump(mode="json")

    return once.run(201, call, body=body)


@router.get("", response_model=ModelPage)
def list_models(
    session: SessionDep,
    client: ModelsWriter,
    dataset_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ModelPage:
    rows, next_cursor = service.list_models(
        session, client=client, dataset_id=dataset_id, cursor=cursor, limit=limit
    )
    return ModelPage(items=[service.to_out(session, m) for m in rows], next_cursor=next_cursor)


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: uuid.UUID, session: SessionDep, client: ModelsWriter) -> ModelOut:
    return service.to_out(session, service.get_model(session, client=client, model_id=model_id))


@router.get("/{model_id}/versions", response_model=list[VersionOut])
def list_versions(
    model_id: uuid.UUID, session: SessionDep, client: ModelsWriter
) -> list[VersionOut]:
    model = service.get_model(session, client=client, model_id=model_id)
    return [VersionOut.model_validate(v) for v in service.versions(session, model_id=model.id)]


@router.post(
    "/{model_id}/versions/{version_id}/activate",
    response_model=VersionOut,
    responses=problems(
        Answer(409, "The version is not held, or a job of the model is pending or running")
    ),
)
def release_held_version(
    model_id: uuid.UUID, version_id: uuid.UUID, session: SessionDep, client: AdminClient
) -> VersionOut:
    """Activate a held version (admin): the active one is superseded. 409 when the version is
    not held or a job of the model runs."""
    version = holds.release(session, client=client, model_id=model_id, version_id=version_id)
    session.commit()
    return VersionOut.model_validate(version)


@router.post(
    "/{model_id}/versions/{version_id}/discard",
    response_model=VersionOut,
    responses=problems(
        Answer(409, "The version is not held, or a job of the model is pending or running")
    ),
)
def discard_held_version(
    model_id: uuid.UUID, version_id: uuid.UUID, session: SessionDep, client: AdminClient
) -> VersionOut:
    """Discard a held version (admin): the files only it owns are deleted through the purge
    outbox. 409 when the version is not held or a job of the model runs."""
    version = holds.discard(session, client=client, model_id=model_id, version_id=version_id)
    session.commit()
    return VersionOut.model_validate(version)


@router.post(
    "/{model_id}/train",
    status_code=202,
    response_model=JobOut,
    responses={
        202: {"headers": {"Location": {"description": "The job.", "schema": {"type": "string"}}}},
        **problems(Answer(409, "The model already has a job pending or running", ModelBusy)),
    },
)
def train(model_id: uuid.UUID, session: SessionDep, client: ModelsWriter) -> JSONResponse:
    job = service.start_training(session, client=client, model_id=model_id)
    session.commit()
    return JSONResponse(
        jobs.to_out(session, job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


# Predictions wait on a worker; they get their own threads so they never hold up the API's.
_PREDICTION_THREADS = anyio.CapacityLimiter(16)


def _serving(
    session: Session, *, client: ApiClient, model_id: uuid.UUID, text: bool
) -> tuple[uuid.UUID, uuid.UUID]:
    """The model and version that answer; the session is committed so that no connection is
    held while a worker computes."""
    version = service.serving_version(session, client=client, model_id=model_id, text=text)
    session.commit()
    return version.model_id, version.id


@router.post(
    "/{model_id}/predict",
    response_model=PredictOut,
    responses=problems(
        Answer(409, "The model has no active version yet"),
        Answer(503, "No worker answered in time"),
    ),
)
async def predict(
    model_id: uuid.UUID, body: PredictIn, session: SessionDep, client: ModelsWriter
) -> PredictOut:
    model_key, version_key = await anyio.to_thread.run_sync(
        functools.partial(_serving, session, client=client, model_id=model_id, text=False)
    )
    result = await anyio.to_thread.run_sync(
        functools.partial(
            predict_remotely, model_id=model_key, version_id=version_key, features=body.features
        ),
        limiter=_PREDICTION_THREADS,
    )
    return PredictOut(model_id=model_key, version_id=version_key, **result)


@router.post(
    "/{model_id}/generate",
    response_model=GenerateOut,
    responses=problems(
        Answer(409, "The model has no active version yet"),
        Answer(503, "No worker answered in time"),
    ),
)
async def generate(
    model_id: uuid.UUID, body: GenerateIn, session: SessionDep, client: ModelsWriter
) -> GenerateOut:
    """A `causal_lm` model's greedy completions of the prompts, from its active version."""
    model_key, version_key = await anyio.to_thread.run_sync(
        functools.partial(_serving, session, client=client, model_id=model_id, text=True)
    )
    result = await anyio.to_thread.run_sync(
        functools.partial(
            generate_remotely,
            model_id=model_key,
            version_id=version_key,
            prompts=body.prompts,
            max_new_tokens=body.max_new_tokens,
        ),
        limiter=_PREDICTION_THREADS,
    )
    return GenerateOut(model_id=model_key, version_id=version_key, **result)
